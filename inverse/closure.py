"""`python -m inverse.closure`: observed data → maximum likelihood for cases A, B, C, as a table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inverse.mle import format_table, run_mle
from surrogates.data import simulate_observed, write_events
from surrogates.runs import cli_errors, write_json
from surrogates.runs import load_config as read_config
from surrogates.simulate import parse_counts, parse_theta
from surrogates.theory import get_theory

__all__ = ["main"]


DEFAULTS = {"theory": "proxy", "theta": "truth", "cases": ["A", "B", "C"], "seed": 1, "starts": 4}


def load_config(path: str | Path) -> dict:
    return read_config(path, DEFAULTS, "configs/closure/proxy.yaml")


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inverse.closure", description=__doc__)
    parser.add_argument("--config", default="configs/closure/proxy.yaml")
    parser.add_argument("--out", default="runs/closure")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    theory = get_theory(cfg["theory"])
    theta_text = cfg["theta"] if isinstance(cfg["theta"], str) else ",".join(map(str, cfg["theta"]))
    theta = parse_theta(theta_text, theory)
    out = Path(args.out)
    summary = {}
    for k, case in enumerate(cfg["cases"]):
        counts, case = parse_counts(str(case), None, theory)
        data = simulate_observed(theory, theta, counts, seed=cfg["seed"] + k)
        data.meta["case"] = case
        write_events(out / f"case{case}" / "observed.npz", data, theory.channels)
        config = {**cfg, "case": case, "data_seed": cfg["seed"] + k}
        metrics = run_mle(theory, data, out / f"case{case}", config, n_starts=cfg["starts"])
        summary[case] = metrics
        title = f"case {case}: counts {data.counts.tolist()} (expected {counts}), {metrics['seconds']:.2f} s"
        print(format_table(metrics, title), end="\n\n")
    write_json(out / "summary.json", summary)
    worst = max(float(np.max(np.abs(m["pull"]))) for m in summary.values())
    print(f"largest |pull| {worst:.2f} σ_CRB; plots and metrics under {out}/case*/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
