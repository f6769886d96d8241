"""`python -m inverse.closure`: observed data → maximum likelihood for cases A, B, C, as a table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from inverse.mle import format_table, run_mle
from surrogates.data import simulate_observed, write_events
from surrogates.errors import InputError
from surrogates.runs import cli_errors, to_jsonable
from surrogates.simulate import parse_counts, parse_theta
from surrogates.theory import get_theory

__all__ = ["main"]


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config '{path}' not found; see configs/closure/proxy.yaml")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputError(f"config '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"config '{path}' must be a mapping of keys to values")
    unknown = set(cfg) - {"theory", "theta", "cases", "seed", "starts"}
    if unknown:
        raise InputError(f"config '{path}' has unknown keys {sorted(unknown)}")
    return {
        "theory": "proxy",
        "theta": "truth",
        "cases": ["A", "B", "C"],
        "seed": 1,
        "starts": 4,
        **cfg,
    }


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
    (out / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2) + "\n")
    worst = max(float(np.max(np.abs(m["pull"]))) for m in summary.values())
    print(f"largest |pull| {worst:.2f} σ_CRB; plots and metrics under {out}/case*/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
