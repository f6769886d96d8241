"""`python -m inverse.blackbox`: the seed's "no need to make the theory code differentiable", end to end.

    python -m inverse.blackbox --config configs/inverse/blackbox.yaml --out runs/blackbox

With a theory that has no gradients at all (default ``proxy-numpy``: the proxy as plain NumPy code
behind the black-box wrapper) it

1. simulates a training set from the theory (events and densities on a grid, no gradients),
2. trains a surrogate on it (`surrogates.fit.fit_surrogate`, any family; VAIM by default, the
   quickest to train well on two cores),
3. simulates observed data at ``theta`` (default the truth) for ``case``,
4. recovers θ with the outer GAN through the surrogate (`inverse.fit.fit_outer_gan`), and compares
   with the maximum likelihood on the same data (finite-difference gradients of the black box).

Each stage writes its own run directory under ``--out``; a stage whose output exists is reused,
so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from inverse.closure import closure_theta
from inverse.config import BlackboxConfig, parse_cli, to_dict
from inverse.fit import fit_outer_gan, format_table, load_config, make_source
from surrogates.data import read_events, simulate_observed, simulate_training, write_events
from surrogates.resources import resolve_config
from surrogates.runs import cli_errors
from surrogates.simulate import parse_counts
from surrogates.theory import Theory, get_theory

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
        config = str(resolve_config(cfg.surrogate.config))
        try:
            from surrogates.fit import fit_surrogate
        except ImportError:  # TODO(merge): fit_surrogate comes with branch fitcli; drop this
            from surrogates.fit import main as fit_main

            progress = ["--trainer.enable_progress_bar", str(cfg.progress).lower()]
            fit_main([family, "--config", config, "--out", str(fit_dir), *progress, *overrides])
        else:
            fit_surrogate(family, config, overrides=overrides, out=fit_dir, progress=cfg.progress)
    return fit_dir / "checkpoints" / "best.ckpt"


def observe(cfg: BlackboxConfig, theory: Theory, out: Path) -> Path:
    """Stage 3: observed events at ``cfg.theta`` for ``cfg.case`` (``out/observed.npz``)."""
    observed = out / "observed.npz"
    if not observed.is_file():
        counts, case = parse_counts(cfg.case, None, theory)
        print(f"[3/4] simulating observed data, case {case}")
        data = simulate_observed(theory, closure_theta(cfg.theta, theory), counts, cfg.data_seed)
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
    print(f"[4/4] outer GAN through the surrogate {ckpt}")
    data = read_events(observed, theory)
    return fit_outer_gan(theory, data, make_source(str(ckpt), theory), inverse, inverse.out)


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(BlackboxConfig, argv, "python -m inverse.blackbox", __doc__)
    theory = get_theory(cfg.theory)
    load_config(cfg.inverse)  # a bad outer-GAN config fails now, not after the training
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "blackbox.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
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
