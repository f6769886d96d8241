#!/usr/bin/env bash
# How the shipped checkpoints were made: the flows, VAIM and flow-dis on the 2-core CPU (one torch
# thread per run, two runs at a time); vae on one H200 GPU with its 16 cores (406 s), the gan's
# first two stages there too (380 + 76 s), its last three on this CPU (see README).
# Usage: bash checkpoints/train.sh NAME   (NAME: flow-zuko flow-nflows flow-normflows gan vae vaim flow-dis
#        flow-proxy-smeared)
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
  $python -m surrogates.zoo export runs/dis/flow --name flow-dis --folder checkpoints
  exit 0
fi
if [ "$name" = flow-proxy-smeared ]; then  # an event generator (proxy + detector simulation): events only
  test -f runs/smeared/train.npz || $python -m surrogates.simulate training --theory proxy-smeared \
      --n-params 40000 --events-per-param 4096 --seed 51 --workers 2 --out runs/smeared/train.npz
  $python -m surrogates.fit flow --config configs/surrogates/flow-proxy-smeared.yaml \
      --data.path runs/smeared/train.npz --trainer.enable_progress_bar false --out runs/smeared/flow
  $python -m surrogates.zoo export runs/smeared/flow --name flow-proxy-smeared --folder checkpoints
  exit 0
fi
data=runs/zoo/train.npz  # each θ's density on its own adaptive grid
grid=auto
design=()
if [ "$name" = vaim ]; then  # the same θ and events, the densities on VAIM's own Chebyshev nodes
  data=runs/zoo/train-chebyshev.npz
  grid=chebyshev
fi
if [ "$name" = flow-zuko ] || [ "$name" = flow-nflows ]; then  # a quarter of the θ with b_u, b_d
  # log-uniform: more θ near b → 0, where the flows missed most
  # (docs/notes/2026-12-07-log-uniform-designs.md, docs/notes/2026-12-08-guides-and-bad-input.md)
  data=runs/zoo/train-logb.npz
  design=(--log-uniform b_u,b_d --log-fraction 0.25)
fi
test -f "$data" || $python -m surrogates.simulate training --theory proxy --n-params 20000 \
    --events-per-param 10 --grid-size 128 --grid "$grid" --seed 1 "${design[@]}" --out "$data"
case $name in
  flow-zuko) family=flow; extra=(--model.backend zuko --model.event_variable root --model.pdf_points stratified \
      --model.log_theta "[N_u, N_d]" --trainer.max_epochs "${EPOCHS:-150}") ;;
  flow-nflows) family=flow; extra=(--model.backend nflows --model.event_variable root \
      --model.pdf_points stratified --model.log_theta "[N_u, N_d]" --trainer.max_epochs "${EPOCHS:-120}") ;;
  flow-normflows) family=flow; extra=(--model.backend normflows --model.event_variable unit \
      --model.pdf_points stratified --model.log_theta "[N_u, N_d]" --trainer.max_epochs "${EPOCHS:-60}") ;;
  gan)  # configs/surrogates/gan.yaml for 51 epochs, then 20 more from those weights at lr 5e-5 (both on
    # the GPU; the first ran before the MMD term lost its (n − 1)/n bias); then on the CPU the pdf
    # target (energy distance to the tabulated densities; one critic step and 128 generated events
    # per θ): 20 epochs at lr 5e-4, 20 at lr 1e-4, 10 at lr 5e-5 (two runs at a time, one thread each)
    stage() {
      local out=$1; shift
      $python -m surrogates.fit gan --config configs/surrogates/gan.yaml --data runs/zoo/train.npz \
          --trainer.enable_progress_bar false --eval.shift_events 0 --eval.checkpoint last \
          --out "runs/zoo/$out" "$@"
    }
    pdf=(--model.mmd_target pdf --model.n_critic 1 --model.fake_per_real 2)
    stage gan-stage1 --trainer.max_epochs "${EPOCHS:-51}"
    stage gan-stage2 --init_from runs/zoo/gan-stage1/checkpoints/last.ckpt --model.lr 5e-5 \
        --trainer.max_epochs 20
    stage gan-stage3 --init_from runs/zoo/gan-stage2/checkpoints/last.ckpt --model.lr 5e-4 \
        --trainer.max_epochs 20 "${pdf[@]}"
    stage gan-stage4 --init_from runs/zoo/gan-stage3/checkpoints/last.ckpt --model.lr 1e-4 \
        --trainer.max_epochs 20 "${pdf[@]}"
    family=gan; extra=(--init_from runs/zoo/gan-stage4/checkpoints/last.ckpt --model.lr 5e-5 --trainer.max_epochs 10
      --eval.checkpoint last "${pdf[@]}") ;;
  vae) family=vae; extra=(--trainer.max_epochs "${EPOCHS:-175}") ;;
  vaim) family=vaim; extra=(--model.log_theta "[N_u, N_d]" --eval.checkpoint last
      --trainer.max_epochs "${EPOCHS:-300}") ;;
  *) echo "unknown checkpoint name '$name'" >&2; exit 2 ;;
esac
run=runs/zoo/$name
$python -m surrogates.fit "$family" --config "configs/surrogates/$family.yaml" --data "$data" \
    --trainer.enable_progress_bar false --eval.shift_events "${SHIFT_EVENTS:-2000000}" \
    --out "$run" "${extra[@]}"
# the flows then go on in cosine cycles, each from the last one's best weights with a fresh
# optimizer (the norm network kept), at lr 1e-3 and then 3e-4 (flow-normflows: 3e-4 twice):
# flow-zuko 150 epochs each, the other two 60; VAIM in one of 300 epochs at 1e-3, from its last
# weights; each chosen on box-filling validation θ (the notes say against which alternatives):
# docs/notes/2026-12-07-flow-backends-log-theta.md, docs/notes/2026-12-07-vaim-cross-entropy.md
cycle_lrs=${CYCLE_LRS:-0.001 0.0003}
start=best
case $name in
  flow-zuko) cycle_epochs=150 ;;
  flow-nflows) cycle_epochs=60 ;;
  flow-normflows) cycle_epochs=60; cycle_lrs=${CYCLE_LRS:-0.001 0.0003 0.0003} ;;
  vaim) cycle_epochs=300; start=last; cycle_lrs=${CYCLE_LRS:-0.001} ;;
  *) cycle_lrs= ;;
esac
k=0
for lr in $cycle_lrs; do
  k=$((k + 1))
  $python -m surrogates.fit "$family" --config "configs/surrogates/$family.yaml" --data "$data" \
      "${extra[@]}" --trainer.max_epochs "$cycle_epochs" --model.lr "$lr" --model.norm_steps 0 \
      --init_from "$run/checkpoints/$start.ckpt" --trainer.enable_progress_bar false \
      --eval.shift_events "${SHIFT_EVENTS:-2000000}" --out "runs/zoo/$name-cycle$k"
  run=runs/zoo/$name-cycle$k
done
$python -m surrogates.zoo export "$run" --name "$name" --folder checkpoints
