"""`python -m inverse.blackbox`: the seed's "no need to make the theory code differentiable", end to end.

    python -m inverse.blackbox --config configs/inverse/blackbox.yaml --out runs/blackbox

With a theory that has no gradients at all (default ``proxy-numpy``: the proxy as plain NumPy code
behind the black-box wrapper) it

1. simulates a training set from the theory (events and densities on a grid, no gradients),
2. trains a surrogate on it (``python -m surrogates.fit``, any family; VAIM by default, the
   quickest to train well on two cores),
3. simulates observed data at ``theta`` (default the truth) for ``case``,
4. recovers θ with the outer GAN through the surrogate (``python -m inverse.fit``), and compares
   with the maximum likelihood on the same data (finite-difference gradients of the black box).

Each stage writes its own run directory under ``--out``; a stage whose output exists is reused,
so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from inverse.fit import format_table, make_source, run_outer_gan
from inverse.fit import load_config as load_inverse_config
from surrogates.data import read_events, simulate_observed, simulate_training, write_events
from surrogates.runs import cli_errors, load_config
from surrogates.simulate import parse_counts, parse_theta
from surrogates.theory import get_theory

__all__ = ["main", "BLACKBOX_DEFAULTS"]

BLACKBOX_DEFAULTS: dict = {
    "theory": "proxy-numpy",
    "theta": "truth",
    "case": "B",
    "data_seed": 1,
    "training": {"n_params": 20000, "events_per_param": 10, "grid_size": 128, "seed": 1},
    "surrogate": {"family": "vaim", "config": "configs/surrogates/vaim.yaml", "args": []},
    "inverse": "configs/inverse/proxy.yaml",
}


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    from surrogates.fit import main as fit_main

    parser = argparse.ArgumentParser(
        prog="python -m inverse.blackbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default="configs/inverse/blackbox.yaml")
    parser.add_argument("--out", default="runs/blackbox")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, BLACKBOX_DEFAULTS, "configs/inverse/blackbox.yaml")
    theory = get_theory(cfg["theory"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "blackbox.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    train = out / "train.npz"
    if not train.is_file():
        t = cfg["training"]
        print(
            f"[1/4] simulating {t['n_params']} θ × {t['events_per_param']} events from "
            f"'{theory.name}' (differentiable: {theory.differentiable})"
        )
        simulate_training(
            theory, t["n_params"], t["events_per_param"], t["seed"], t["grid_size"]
        ).save(train)
    family = cfg["surrogate"]["family"]
    fit_dir = out / f"surrogate-{family}"
    ckpt = fit_dir / "checkpoints" / "best.ckpt"
    if not (fit_dir / "metrics.json").is_file():
        print(f"[2/4] training a {family} surrogate on {train}")
        fit_main(
            [
                family,
                "--config",
                cfg["surrogate"]["config"],
                "--data",
                str(train),
                "--data.theory",
                theory.name,
                "--data.grid_size",
                str(cfg["training"]["grid_size"]),
                "--out",
                str(fit_dir),
                "--trainer.enable_progress_bar",
                str(not args.no_progress).lower(),
                *map(str, cfg["surrogate"]["args"]),
            ]
        )
    observed = out / "observed.npz"
    if not observed.is_file():
        theta_text = (
            cfg["theta"] if isinstance(cfg["theta"], str) else ",".join(map(str, cfg["theta"]))
        )
        counts, case = parse_counts(str(cfg["case"]), None, theory)
        print(f"[3/4] simulating observed data, case {case}")
        data = simulate_observed(theory, parse_theta(theta_text, theory), counts, cfg["data_seed"])
        data.meta["case"] = case
        write_events(observed, data, theory.channels)
    data = read_events(observed, theory)
    inv = load_inverse_config(cfg["inverse"])
    inv.update(theory=theory.name, source=str(ckpt), events=str(observed))
    print(f"[4/4] outer GAN through the surrogate {ckpt}")
    metrics = run_outer_gan(
        theory,
        data,
        make_source(str(ckpt), theory),
        inv,
        out / "inverse",
        progress=not args.no_progress,
    )
    print(
        format_table(
            metrics,
            f"black-box closure: theory '{theory.name}' (no gradients), "
            f"{family} surrogate, {metrics['seconds']:.0f} s",
        )
    )
    print(f"plots and metrics in {out / 'inverse'}; the surrogate's fidelity in {fit_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
