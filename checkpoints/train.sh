#!/usr/bin/env bash
# How the shipped checkpoints were made: the flows, VAIM and flow-dis on the 2-core CPU (one torch
# thread per run, two runs at a time); vae and gan on one H200 GPU with its 16 cores (406 s and
# 380 + 76 s of training; on this CPU an epoch of either takes minutes, see README).
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
  gan)  # configs/surrogates/gan.yaml for 51 epochs, then 20 more from those weights at lr 5e-5; the
    # shipped first stage ran before the MMD term lost its (n − 1)/n bias, the second with the fix
    $python -m surrogates.fit gan --config configs/surrogates/gan.yaml --data runs/zoo/train.npz \
        --trainer.enable_progress_bar false --eval.shift_events 0 --eval.checkpoint last \
        --trainer.max_epochs "${EPOCHS:-51}" --out runs/zoo/gan-stage1
    family=gan; extra=(--init_from runs/zoo/gan-stage1/checkpoints/last.ckpt --model.lr 5e-5
      --trainer.max_epochs 20 --eval.checkpoint last) ;;
  vae) family=vae; extra=(--trainer.max_epochs "${EPOCHS:-175}") ;;
  vaim) family=vaim; extra=(--trainer.max_epochs "${EPOCHS:-40}") ;;
  *) echo "unknown checkpoint name '$name'" >&2; exit 2 ;;
esac
$python -m surrogates.fit "$family" --config "configs/surrogates/$family.yaml" --data runs/zoo/train.npz \
    --trainer.enable_progress_bar false --eval.shift_events "${SHIFT_EVENTS:-2000000}" \
    --out "runs/zoo/$name" "${extra[@]}"
$python -m surrogates.zoo export "runs/zoo/$name" --name "$name"
