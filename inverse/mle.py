"""`python -m inverse.mle`: the extended maximum-likelihood fit of observed events, and its CRB.

python -m inverse.mle --events obs.npz --out runs/mle --starts 8
python -m inverse.mle --events obs.npz --out runs/mle --posterior true   # and the exact posterior
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from inverse.config import MLEConfig, parse_cli, to_dict
from inverse.maxlik import format_table, run_mle
from surrogates.data import read_events
from surrogates.errors import InputError
from surrogates.runs import cli_errors
from surrogates.theory import get_theory

__all__ = ["main"]


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(MLEConfig, argv, "python -m inverse.mle", __doc__)
    if cfg.events is None:
        raise InputError("--events is required: the observed events (.npz or .csv) to fit")
    theory = get_theory(cfg.theory)  # run_mle refuses an events-only one before writing
    data = read_events(cfg.events, theory)
    metrics = run_mle(
        theory, data, cfg.out, to_dict(cfg), cfg.starts, cfg.seed, cfg.overwrite, cfg.posterior
    )
    print(format_table(metrics, f"MLE of {cfg.events} ({metrics['seconds']:.2f} s)"))
    print(f"wrote {Path(cfg.out) / 'metrics.json'} and fit.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
