"""`python -m surrogates.fit {flow,gan,vae,vaim} [options]`: train a surrogate of module-2.

    python -m surrogates.fit flow                      # the shipped recommended settings
    python -m surrogates.fit flow --data train.npz --out runs/flow --trainer.max_epochs 5

Config: without --config a run starts from the family's shipped recommended config,
configs/surrogates/FAMILY.yaml (its settings and a budget for a first try: minutes on a laptop;
see them with --print_config); --config FILE (a path, or a shipped name such as
surrogates/flow-dis.yaml) replaces it, the class defaults filling what FILE leaves out. Options
given after it override single keys: any option of the model (--model.*), the data (--data.*)
and the Lightning Trainer (--trainer.*). --data FILE.npz is short for --data.path FILE.npz (no
path: a training set is simulated from the theory). --ckpt_path last resumes an interrupted run
in the same --out; --init_from CKPT starts a new run from a trained surrogate's weights
(fine-tuning: fresh optimizer and schedule). The θ shift is measured with --eval.shift_events
events per channel (10^6 by default; --eval.shift_events 10000000 for the zoo's full
measurement), in σ_CRB of data of --eval.reference_counts N1,N2 expected events per channel
(default: the theory's reference data size; the proxy's case A), stated in metrics.json. Before
the first epoch the norm network is fitted alone for --model.norm_steps Adam steps (20000 by
default: minutes on a CPU, with a one-line notice and no progress bar; 2000 suit a quick try).
A run stopped by --trainer.max_time before its cosine schedule ends is warned about and marked
schedule_completed: false (its learning rate never annealed). The run directory receives the resolved config.yaml, checkpoints/{last,best}.ckpt,
metrics.json, environment.json, CSV logs, PNG plots against the exact theory at held-out θ, and
the wandb run (offline unless WANDB_MODE says otherwise; disabled turns it off). From Python:
surrogates.training.fit_surrogate.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from surrogates.errors import InputError
from surrogates.models import FAMILIES
from surrogates.runs import cli_errors
from surrogates.training import run_fit

__all__ = ["main"]


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        raise InputError(
            f"say which surrogate to fit: python -m surrogates.fit {{{','.join(FAMILIES)}}} [options]"
        )
    family, *args = argv
    out, metrics = run_fit(family, args, description=__doc__)
    if metrics:  # rank zero
        seconds = metrics["train_seconds"]
        print(f"{family} surrogate trained in {seconds:.1f} s; metrics in {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
