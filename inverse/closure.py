"""`python -m inverse.closure`: observed data → maximum likelihood for cases A, B, C, as a table.

python -m inverse.closure --config configs/closure/proxy.yaml --out runs/closure
python -m inverse.closure --cases '[B]' --starts 8
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inverse.config import ClosureConfig, parse_cli, to_dict
from inverse.config import load_config as load_typed_config
from inverse.maxlik import format_table, require_density, run_mle
from surrogates.data import parse_counts, parse_theta, simulate_observed, write_events
from surrogates.runs import claim_run_dir, cli_errors, write_json
from surrogates.theory import get_theory

__all__ = ["main", "load_config"]


def load_config(path: str | Path | None) -> ClosureConfig:
    """The closure's config from a YAML (a path or a shipped name); None: the defaults."""
    return load_typed_config(path, ClosureConfig)


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(ClosureConfig, argv, "python -m inverse.closure", __doc__)
    theory = get_theory(cfg.theory)
    require_density(theory, "inverse.closure")
    theta = parse_theta(cfg.theta, theory)
    cases = [parse_counts(str(case), None, theory) for case in cfg.cases]
    summary = {}
    with claim_run_dir(cfg.out, overwrite=cfg.overwrite, finished="summary.json") as out:
        for k, (counts, case) in enumerate(cases):
            data = simulate_observed(theory, theta, counts, seed=cfg.seed + k)
            data.meta["case"] = case
            write_events(out / f"case{case}" / "observed.npz", data, theory.channels)
            config = {**to_dict(cfg), "case": case, "data_seed": cfg.seed + k}
            # the closure holds the whole folder: a case folder left by a stopped run is redone
            metrics = run_mle(theory, data, out / f"case{case}", config, cfg.starts, overwrite=True)
            summary[case] = metrics
            title = f"case {case}: counts {data.counts.tolist()} (expected {counts}), {metrics['seconds']:.2f} s"
            print(format_table(metrics, title), end="\n\n")
        write_json(out / "summary.json", summary)
    worst = max(float(np.max(np.abs(m["pull"]))) for m in summary.values())
    print(f"largest |pull| {worst:.2f} σ_CRB; plots and metrics under {out}/case*/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
