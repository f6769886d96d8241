"""`python -m inverse.fit`: recover θ from observed events with the outer GAN.

    python -m inverse.fit --config configs/inverse/proxy.yaml --events obs.npz --source exact --out DIR
    python -m inverse.fit --events obs.npz --source flow-zuko          # a shipped surrogate
    python -m inverse.fit --events obs.npz --source runs/flow/checkpoints/best.ckpt --out DIR --resume

``--source`` is ``exact`` (the theory and its differentiable inverse-CDF sampler) or a trained
surrogate (a zoo name or a ``.ckpt`` path); its theory and prior box must be the data's. The run
directory receives ``metrics.json`` (params_mean, params_std, params_true, crb_std, pull, the MLE on
the same data for comparison, seconds, steps), ``params.npz`` (θ of every replica and the traces),
``traces.png``, ``curves.png``, ``events.png``, the resolved ``config.yaml``, ``environment.json``,
``checkpoints/last.ckpt`` (``--resume`` continues from it), CSV logs and the wandb run (offline
unless ``WANDB_MODE`` says otherwise).

Every key of the YAML is an option (`inverse.config.FitConfig`): ``--gan.lr_g 0.003``,
``--trainer.devices 2``, ``--events_per_step 64`` (or ``--events-per-step``), ``--progress false``
(or ``--no-progress``); ``--print_config`` prints the resolved config and stops.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from inverse.config import FitConfig, parse_cli
from inverse.report import format_table
from inverse.sources import make_source
from inverse.training import fit_outer_gan
from surrogates.data import read_events
from surrogates.errors import InputError
from surrogates.runs import cli_errors, default_run_dir
from surrogates.theory import get_theory

__all__ = ["main"]


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(FitConfig, argv, "python -m inverse.fit", __doc__)
    if cfg.events is None:
        raise InputError("--events is required: the observed events (.npz or .csv) to fit")
    theory = get_theory(cfg.theory)
    data = read_events(cfg.events, theory)
    source = make_source(cfg.source, theory)
    cfg.out = cfg.out or default_run_dir("inverse")
    metrics = fit_outer_gan(theory, data, source, cfg, cfg.out)
    if not metrics:  # a DDP process other than rank 0
        return 0
    title = (
        f"outer GAN, source {cfg.source}, counts {data.counts.tolist()}: "
        f"{metrics['steps']} steps, {metrics['seconds']:.0f} s"
    )
    print(format_table(metrics, title))
    plots = "traces.png, curves.png, events.png" if theory.has_density else "traces.png, events.png"
    print(f"plots ({plots}), params.npz and metrics.json in {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
