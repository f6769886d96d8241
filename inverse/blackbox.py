"""`python -m inverse.blackbox`: the seed's "no need to make the theory code differentiable", end to end.

    python -m inverse.blackbox --config configs/inverse/blackbox.yaml --out runs/blackbox

With a theory that has no gradients at all (default ``proxy-numpy``: the proxy as plain NumPy code
behind the black-box wrapper) it

1. simulates a training set from the theory (events and densities on a grid, no gradients),
2. trains a surrogate on it (`surrogates.fit.fit_surrogate`, any family; VAIM by default, the
   quickest to train well on two cores),
3. simulates observed data at ``theta`` (default the truth) for ``case``,
4. recovers θ with the outer GAN through the surrogate (`inverse.training.fit_outer_gan`), and compares
   with the maximum likelihood on the same data (finite-difference gradients of the black box).

Each stage writes its own run directory under ``--out``; a stage whose output exists is reused,
so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from inverse.config import BlackboxConfig, parse_cli, to_dict
from inverse.report import format_table
from inverse.sources import make_source
from inverse.training import fit_outer_gan, load_config
from surrogates.data import (
    parse_counts,
    parse_theta,
    read_events,
    simulate_observed,
    simulate_training,
    write_events,
)
from surrogates.errors import InputError
from surrogates.resources import resolve_config
from surrogates.runs import cli_errors, write_text
from surrogates.theory import Theory, get_theory
from surrogates.tracking import wandb_mode
from surrogates.training import fit_surrogate

__all__ = ["main", "simulate_training_set", "train_surrogate", "observe", "recover_theta"]


def simulate_training_set(cfg: BlackboxConfig, theory: Theory, out: Path) -> Path:
    """Stage 1: θ from the prior and events at each, from the black box (``out/train.npz``)."""
    train = out / "train.npz"
    if not train.is_file():
        t = cfg.training
        print(
            f"[1/4] simulating {t.n_params} θ × {t.events_per_param} events from "
            f"'{theory.name}' (differentiable: {theory.differentiable})"
        )
        simulate_training(theory, t.n_params, t.events_per_param, t.seed, t.grid_size).save(train)
    return train


def resolve_surrogate_config(cfg: BlackboxConfig) -> Path:
    """The surrogate stage's YAML (a path or a shipped name), which must exist."""
    config = resolve_config(cfg.surrogate.config)
    if not config.is_file():
        raise InputError(
            f"surrogate.config '{cfg.surrogate.config}' not found; give a YAML path or a shipped "
            "name such as configs/surrogates/vaim.yaml"
        )
    return config


def train_surrogate(cfg: BlackboxConfig, theory: Theory, train: Path, out: Path) -> Path:
    """Stage 2: a surrogate of ``cfg.surrogate.family`` trained on ``train``; its best checkpoint."""
    family = cfg.surrogate.family
    fit_dir = out / f"surrogate-{family}"
    if not (fit_dir / "metrics.json").is_file():
        print(f"[2/4] training a {family} surrogate on {train}")
        overrides = [
            "--data",
            str(train),
            "--data.theory",
            theory.name,
            "--data.grid_size",
            str(cfg.training.grid_size),
            *map(str, cfg.surrogate.args),
        ]
        config = str(resolve_surrogate_config(cfg))
        fit_surrogate(family, config, overrides=overrides, out=fit_dir, progress=cfg.progress)
    return fit_dir / "checkpoints" / "best.ckpt"


def observe(cfg: BlackboxConfig, theory: Theory, out: Path) -> Path:
    """Stage 3: observed events at ``cfg.theta`` for ``cfg.case`` (``out/observed.npz``)."""
    observed = out / "observed.npz"
    if not observed.is_file():
        counts, case = parse_counts(cfg.case, None, theory)
        print(f"[3/4] simulating observed data, case {case}")
        data = simulate_observed(theory, parse_theta(cfg.theta, theory), counts, cfg.data_seed)
        data.meta["case"] = case
        write_events(observed, data, theory.channels)
    return observed


def recover_theta(
    cfg: BlackboxConfig, theory: Theory, ckpt: Path, observed: Path, out: Path
) -> dict:
    """Stage 4: the outer GAN of ``cfg.inverse`` through the surrogate; its metrics."""
    inverse = replace(
        load_config(cfg.inverse),
        theory=theory.name,
        source=str(ckpt),
        events=str(observed),
        out=str(out / "inverse"),
        progress=cfg.progress,
    )
    done = Path(inverse.out) / "metrics.json"
    if done.is_file():  # like every stage: a finished one is reused
        print(f"[4/4] reusing the outer GAN's run in {inverse.out}")
        return json.loads(done.read_text())
    print(f"[4/4] outer GAN through the surrogate {ckpt}")
    data = read_events(observed, theory)
    return fit_outer_gan(theory, data, make_source(str(ckpt), theory), inverse, inverse.out)


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(BlackboxConfig, argv, "python -m inverse.blackbox", __doc__)
    theory = get_theory(cfg.theory)
    # every input checked before the first byte is written, not after the training
    load_config(cfg.inverse)
    parse_counts(cfg.case, None, theory)
    parse_theta(cfg.theta, theory)
    resolve_surrogate_config(cfg)
    wandb_mode()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file, not a folder; choose a folder path")
    write_text(out / "blackbox.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    train = simulate_training_set(cfg, theory, out)
    ckpt = train_surrogate(cfg, theory, train, out)
    observed = observe(cfg, theory, out)
    metrics = recover_theta(cfg, theory, ckpt, observed, out)
    title = (
        f"black-box closure: theory '{theory.name}' (no gradients), "
        f"{cfg.surrogate.family} surrogate, {metrics['seconds']:.0f} s"
    )
    print(format_table(metrics, title))
    print(
        f"plots and metrics in {out / 'inverse'}; the surrogate's fidelity in {ckpt.parent.parent}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
