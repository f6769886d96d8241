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
from inverse.mle import format_table, run_mle
from surrogates.data import simulate_observed, write_events
from surrogates.runs import cli_errors, write_json
from surrogates.simulate import parse_counts, parse_theta
from surrogates.theory import Theory, get_theory

__all__ = ["main", "load_config", "closure_theta"]


def load_config(path: str | Path | None) -> ClosureConfig:
    """The closure's config from a YAML (a path or a shipped name); None: the defaults."""
    return load_typed_config(path, ClosureConfig)


def closure_theta(theta: str | list[float], theory: Theory) -> np.ndarray:
    """The config's ``theta`` (``truth`` or one number per parameter) checked against the box."""
    return parse_theta(theta if isinstance(theta, str) else ",".join(map(str, theta)), theory)


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(ClosureConfig, argv, "python -m inverse.closure", __doc__)
    theory = get_theory(cfg.theory)
    theta = closure_theta(cfg.theta, theory)
    out = Path(cfg.out)
    summary = {}
    for k, case in enumerate(cfg.cases):
        counts, case = parse_counts(str(case), None, theory)
        data = simulate_observed(theory, theta, counts, seed=cfg.seed + k)
        data.meta["case"] = case
        write_events(out / f"case{case}" / "observed.npz", data, theory.channels)
        config = {**to_dict(cfg), "case": case, "data_seed": cfg.seed + k}
        metrics = run_mle(theory, data, out / f"case{case}", config, n_starts=cfg.starts)
        summary[case] = metrics
        title = f"case {case}: counts {data.counts.tolist()} (expected {counts}), {metrics['seconds']:.2f} s"
        print(format_table(metrics, title), end="\n\n")
    write_json(out / "summary.json", summary)
    worst = max(float(np.max(np.abs(m["pull"]))) for m in summary.values())
    print(f"largest |pull| {worst:.2f} σ_CRB; plots and metrics under {out}/case*/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
