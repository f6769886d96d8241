#!/usr/bin/env bash
# How the shipped checkpoints were made (2-core CPU, one torch thread per run, two runs at a time).
# Usage: bash checkpoints/train.sh NAME   (NAME: flow-zuko flow-nflows flow-normflows gan vae vaim flow-dis)
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
python=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-offline}
if [ "$name" = flow-dis ]; then  # inclusive DIS: 2-D events on the unit square of the cut region
  test -f runs/dis/train.npz || $python -m surrogates.simulate training --theory dis --n-params 10000 \
      --events-per-param 10 --grid-size 33 --seed 1 --out runs/dis/train.npz
  $python -m surrogates.fit flow --config configs/surrogates/flow-dis.yaml --data runs/dis/train.npz \
      --trainer.max_epochs "${EPOCHS:-25}" --trainer.enable_progress_bar false \
      --eval.shift_events "${SHIFT_EVENTS:-1000000}" --out runs/dis/flow
  $python -m surrogates.zoo export runs/dis/flow --name flow-dis
  exit 0
fi
test -f runs/zoo/train.npz || $python -m surrogates.simulate training --theory proxy --n-params 20000 \
    --events-per-param 10 --grid-size 128 --seed 1 --out runs/zoo/train.npz
case $name in
  flow-zuko) family=flow; extra=(--model.backend zuko --model.event_variable unit --model.pdf_points stratified \
      --trainer.max_epochs "${EPOCHS:-150}") ;;
  flow-nflows|flow-normflows) family=flow; extra=(--model.backend "${name#flow-}" --model.event_variable unit \
      --model.pdf_points stratified --trainer.max_epochs "${EPOCHS:-120}") ;;
  gan) family=gan; extra=(--trainer.max_epochs "${EPOCHS:-10}") ;;  # best val MMD: after epoch 1
  vae) family=vae; extra=(--trainer.max_epochs "${EPOCHS:-30}") ;;
  vaim) family=vaim; extra=(--trainer.max_epochs "${EPOCHS:-40}") ;;
  *) echo "unknown checkpoint name '$name'" >&2; exit 2 ;;
esac
$python -m surrogates.fit "$family" --config "configs/surrogates/$family.yaml" --data runs/zoo/train.npz \
    --trainer.enable_progress_bar false --eval.shift_events "${SHIFT_EVENTS:-2000000}" \
    --out "runs/zoo/$name" "${extra[@]}"
$python -m surrogates.zoo export "runs/zoo/$name" --name "$name"
