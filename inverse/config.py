"""Typed, validated configs of the inverse commands, read from YAML and the command line.

One dataclass per YAML block, its defaults written once here, its ranges checked once in
``__post_init__`` (so a config built in Python is checked like one read from a file). The YAML keys
are those of the shipped files (``configs/inverse/*.yaml``, ``configs/closure/proxy.yaml``) and of
the ``config.yaml`` every run writes, so recorded runs stay valid.

`parse_cli` reads them through jsonargparse: ``--config FILE`` (a path, or the name of a shipped
config: ``configs/inverse/proxy.yaml`` works from any directory), then every key on the command
line (``--steps 30``, ``--gan.lr_g 0.003``, ``--trainer.devices 2``), ``--help`` from the field
docs below, ``--print_config`` for the resolved config. A bad value is one line naming the key.

>>> cfg = FitConfig(steps=30, gan=GanConfig(lr_g=3e-3))
>>> cfg.gan.lr_g, cfg.trainer.devices
(0.003, 1)
>>> FitConfig(average_last=1.5)
Traceback (most recent call last):
...
surrogates.errors.InputError: average_last must be a fraction in (0, 1], got 1.5; e.g. average_last: 0.3
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, get_type_hints

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter, Namespace

from surrogates.errors import InputError, check_choice
from surrogates.models import FAMILIES
from surrogates.resources import resolve_config
from surrogates.validation import (
    check_accelerator,
    flag,
    fraction,
    is_int,
    is_number,
    non_negative_int,
    positive_int,
    positive_number,
    seed_value,
    text,
    widths,
)

__all__ = [
    "GanConfig",
    "TrainerConfig",
    "StopConfig",
    "FitConfig",
    "ClosureConfig",
    "MLEConfig",
    "TrainingSetConfig",
    "SurrogateStageConfig",
    "BlackboxConfig",
    "BOX_MAPS",
    "PRECONDITION_SCALES",
    "D_DTYPES",
    "build_parser",
    "parse_cli",
    "load_config",
    "to_dict",
]

BOX_MAPS = ("sigmoid", "reflect")
PRECONDITION_SCALES = ("geometric", "softest", "absolute")
D_DTYPES = ("float64", "float32")

# ----------------------------------------------------------------------------- the outer GAN


@dataclass
class GanConfig:
    """The outer GAN's networks, learning rates and schedule (the ``gan:`` block).

    Args:
        lr_g: Adam learning rate of the θ generator.
        lr_g_events: lr_g suits data of up to this many events; larger data: lr_g × √(lr_g_events/N).
        lr_d: Adam learning rate of the discriminators.
        d_steps: discriminator updates per generator update.
        d_lr_floor: the discriminators' learning rate decays (cosine) to this fraction.
        g_lr_floor: the generator's learning rate decays (cosine) to this fraction.
        d_hidden: discriminator widths.
        shared: one discriminator for all channels (the channel one-hot as input).
        g_latent: generator latent size.
        g_hidden: generator widths.
        norm_weight: factor on the norm χ² (1 = the extended likelihood's balance).
        inset: fraction of the prior box kept free at each edge.
        box_map: how the generator reaches the box: sigmoid or reflect (for posteriors at the edges).
        trace_every: record every replica's θ each this many steps.
        precondition: scale the generator's step per parameter by its Cramér–Rao σ (false: one step size for the whole box).
        precondition_start: ... from the first step, each parameter by its own σ at the start (the likelihood's Fisher information there, or the source's sampled histograms').
        precondition_at: ... and again after this fraction of the steps (or a list of fractions, each in [0, 1)), at the data replicas' mean θ.
        precondition_scale: pace: absolute (each parameter lr_g's pace in units of its own σ), geometric or softest.
        precondition_diagonal: at precondition_at, each parameter by its own σ only (no correlations).
        d_dtype: the discriminators' precision: float64 or float32.
        d_quantiles: 0, or K > 0: the discriminators also see each event variable's probability
            integral transform under the observed events of its channel (piecewise linear through
            their K + 1 quantiles), so that a feature narrow against the x range (a resonance) is
            resolved as finely as its share of the events; the default features are the x range's
            edges only (log s, log(1 − s), logit s).
        d_smooth: 0, or J > 0 (with d_quantiles): also cos(π j F) of that transform F, j = 1…J: the
            components of Neyman's smooth test of fit, so that a shape inside the bulk of the events
            (a resonance's width) is a few of the discriminators' inputs, not a fine detail of one.
        d_smooth_from: the fraction of the steps before which those components are held at 0: the
            generator first finds the feature with the coarse inputs (with them from the first step
            a discriminator that resolves a resonance far from the start drives its yield to 0
            before its mass moves), then they refine it.
        d_score: the discriminators also see the source's score ∂ log p(x | θ)/∂θ of each event (one
            input per parameter, tabulated per channel on the observed events' quantiles at the
            data replicas' mean θ when the step d_smooth_from · steps is reached, 0 before):
            near the answer the best discriminator between two nearby θ is linear in the score,
            so near the θ where it is tabulated the fit's balance equation is, to first order,
            the likelihood's. Needs a source with a density (the exact theory, a flow, VAIM; an
            ensemble's mixture density), 1-D events, no detector and d_smooth_from > 0.
        bootstrap_restart: at the last precondition_at step, the bootstrap replicas restart from the
            data replicas' θ (each then moves only by its resample's share): a bootstrap replica
            left at a face of the box by the search for a distant feature is brought back.
        data_restart: at the last precondition_at step, with more than one data replica, every
            data replica restarts from the one whose events are closest to the observed events
            (Kolmogorov–Smirnov): generators that settled on different answers during the
            search (a distant narrow peak found with a part of its yield) go on from the best
            one; the choice is recorded in metrics.json (data_restarts). Needs precondition.
        spread_start: data replicas 1…K−1 start spread over the middle 80% of the prior box (a
            Latin hypercube: K − 1 strata per parameter, seeded), replica 0 at its centre, and the
            precondition_at steps take the covariance at the data replica closest to the data:
            a narrow feature far from the centre (a resonance at a third of the range away) is
            found by the generators that start near it, and data_restart carries the others
            there. Needs data_restart; with one data replica it changes nothing.
    """

    lr_g: float = 6e-3
    lr_g_events: int = 15000
    lr_d: float = 1e-3
    d_steps: int = 1
    d_lr_floor: float = 1.0
    g_lr_floor: float = 0.01
    d_hidden: list[int] = field(default_factory=lambda: [32, 32])
    shared: bool = False
    g_latent: int = 4
    g_hidden: list[int] = field(default_factory=lambda: [32])
    norm_weight: float = 1.0
    inset: float = 1e-3
    box_map: str = "sigmoid"
    trace_every: int = 10
    precondition: bool = True
    precondition_start: bool = True
    precondition_at: float | list[float] = 0.1
    precondition_scale: str = "absolute"
    precondition_diagonal: bool = True
    d_dtype: str = "float64"
    d_quantiles: int = 0
    d_smooth: int = 0
    d_smooth_from: float = 0.3
    d_score: bool = False
    bootstrap_restart: bool = False
    data_restart: bool = False
    spread_start: bool = False

    def __post_init__(self) -> None:
        positive_number("gan.lr_g", self.lr_g, 6e-3)
        positive_int("gan.lr_g_events", self.lr_g_events, 15000)
        positive_number("gan.lr_d", self.lr_d, 1e-3)
        positive_int("gan.d_steps", self.d_steps, 1)
        fraction("gan.d_lr_floor", self.d_lr_floor, 1.0, zero=True)
        fraction("gan.g_lr_floor", self.g_lr_floor, 0.01, zero=True)
        widths("gan.d_hidden", self.d_hidden)
        flag("gan.shared", self.shared)
        positive_int("gan.g_latent", self.g_latent, 4)
        widths("gan.g_hidden", self.g_hidden)
        if not is_number(self.norm_weight) or self.norm_weight < 0:
            raise InputError(f"gan.norm_weight must be a number ≥ 0, got {self.norm_weight!r}")
        if not is_number(self.inset) or not 0 <= self.inset < 0.5:
            raise InputError(f"gan.inset must be in [0, 0.5), got {self.inset!r}; e.g. 1.0e-3")
        check_choice("gan.box_map", self.box_map, BOX_MAPS)
        positive_int("gan.trace_every", self.trace_every, 10)
        flag("gan.precondition", self.precondition)
        flag("gan.precondition_start", self.precondition_start)
        self.precondition_at = precondition_fractions(self.precondition_at)
        check_choice("gan.precondition_scale", self.precondition_scale, PRECONDITION_SCALES)
        flag("gan.precondition_diagonal", self.precondition_diagonal)
        check_choice("gan.d_dtype", self.d_dtype, D_DTYPES)
        non_negative_int("gan.d_quantiles", self.d_quantiles)
        non_negative_int("gan.d_smooth", self.d_smooth)
        flag("gan.d_score", self.d_score)
        flag("gan.bootstrap_restart", self.bootstrap_restart)
        flag("gan.data_restart", self.data_restart)
        flag("gan.spread_start", self.spread_start)
        if not is_number(self.d_smooth_from) or not 0 <= self.d_smooth_from < 1:
            raise InputError(
                f"gan.d_smooth_from must be in [0, 1), got {self.d_smooth_from!r}; e.g. 0.3"
            )
        if self.data_restart and not self.precondition:
            raise InputError(
                "gan.data_restart acts at the last precondition_at step, which gan.precondition "
                "false turns off: set gan.precondition true, or gan.data_restart false"
            )
        if self.spread_start and not self.data_restart:
            raise InputError(
                "gan.spread_start starts the data replicas apart, and only gan.data_restart "
                "brings them to one answer (θ is their mean): set gan.data_restart true, or "
                "gan.spread_start false"
            )
        at = self.precondition_at
        last = max(at) if isinstance(at, list) else at
        if self.spread_start and self.d_score and self.d_smooth_from < last:
            raise InputError(
                f"gan.d_score is tabulated at gan.d_smooth_from {self.d_smooth_from} of the steps, "
                f"before the data replicas of gan.spread_start meet at the last precondition_at "
                f"({last}): raise gan.d_smooth_from to at least {last}, or turn one off"
            )
        if self.d_score and self.d_smooth_from == 0:
            raise InputError(
                "gan.d_score needs gan.d_smooth_from > 0: the score is tabulated at that step, "
                "near the answer, not at the box centre where the generator starts; e.g. 0.3"
            )
        if self.d_smooth and not self.d_quantiles:
            raise InputError(
                f"gan.d_smooth {self.d_smooth} needs gan.d_quantiles > 0 (it transforms their CDF); "
                "e.g. d_quantiles: 128"
            )


def precondition_fractions(at: object) -> float | list[float]:
    """``precondition_at`` checked: one fraction in [0, 1) or a list of them (lists kept lists)."""
    values = [at] if is_number(at) else at
    if not isinstance(values, list | tuple) or any(
        not is_number(f) or not 0 <= f < 1 for f in values
    ):
        raise InputError(
            f"gan.precondition_at must be fractions in [0, 1), got {at!r}; e.g. [0.1, 0.3]"
        )
    return at if is_number(at) else list(values)


@dataclass
class StopConfig:
    """When the outer GAN stops before ``steps`` (the ``stop:`` block; `inverse.convergence`).

    Once ``min_steps`` have run (and the last ``gan.precondition_at`` re-scaling is past), the
    trace is checked at every recorded point: the data replicas' mean θ and the bootstrap
    replicas' spread, in units of the data's Fisher σ, averaged over two adjacent windows. When
    their move is below ``k`` standard errors (batch means) at ``patience`` checks in a row, the
    learning rates are annealed over ``anneal`` steps; then the run stops once the last window's
    mean is known to better than ``tolerance`` σ and has stopped moving (``steps`` stays the
    maximum). How it was chosen: docs/notes/2026-12-01-convergence.md.

    Args:
        enabled: stop once settled (false: the fixed schedule of ``steps`` generator updates).
        window: trace points per window (each gan.trace_every generator steps).
        k: a common move of the replicas smaller than k standard errors counts as noise.
        tolerance: σ units: a move below it is negligible whatever its error.
        precision: σ units: to stop, a replica's window mean must be known to better than this (after the anneal).
        patience: checks in a row that must pass before the anneal.
        lag: compare the last window with the one this many windows before it (1: adjacent; a slow drift grows with the distance, the noise does not).
        min_steps: generator steps before the first check.
        anneal: generator steps over which the learning rates decay once settled (cosine to gan.g_lr_floor).
    """

    enabled: bool = False
    window: int = 20
    k: float = 3.0
    tolerance: float = 0.05
    precision: float = 0.15
    patience: int = 3
    lag: int = 2
    min_steps: int = 300
    anneal: int = 1200

    def __post_init__(self) -> None:
        flag("stop.enabled", self.enabled)
        positive_int("stop.window", self.window, 20)
        positive_number("stop.k", self.k, 3.0)
        positive_number("stop.tolerance", self.tolerance, 0.05)
        positive_number("stop.precision", self.precision, 0.15)
        positive_int("stop.patience", self.patience, 3)
        positive_int("stop.lag", self.lag, 2)
        positive_int("stop.min_steps", self.min_steps, 300)
        positive_int("stop.anneal", self.anneal, 1200)


@dataclass
class TrainerConfig:
    """Where and how the outer GAN trains (the ``trainer:`` block).

    Args:
        accelerator: cpu, gpu or auto (the exact theory runs on the CPU under auto).
        devices: number of devices (or auto); more than 1 runs DDP.
        strategy: Lightning strategy, e.g. auto or ddp.
        checkpoint_every: generator steps between checkpoints (--resume continues from the last).
    """

    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        text("trainer.accelerator", self.accelerator, "auto")
        check_accelerator("trainer.accelerator", self.accelerator)
        if not (is_int(self.devices) and self.devices >= 1) and self.devices != "auto":
            raise InputError(
                f"trainer.devices must be a positive integer or auto, got {self.devices!r}"
            )
        text("trainer.strategy", self.strategy, "ddp")
        positive_int("trainer.checkpoint_every", self.checkpoint_every, 250)


@dataclass
class FitConfig:
    """`python -m inverse.fit`: observed events → θ with the outer GAN (the whole YAML).

    Args:
        theory: the theory of the data, the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md.
        source: the EventSource: exact, a zoo name (flow-zuko, vaim, ...), a .ckpt path, or several, comma-separated (an ensemble).
        seed: seed of the replicas, the latents and the networks.
        steps: generator updates (learning rates decay over them, cosine); with stop.enabled the maximum.
        replicas: data replicas R: the data replicas plus bootstrap resamples (σ from the latter).
        data_replicas: replicas on the observed data itself (independent generators), θ = their mean.
        events_per_step: generated and observed events per replica and channel each step.
        average_last: θ = mean over this last fraction of the trace (Polyak averaging).
        face_cut: once a parameter's bootstrap replicas pile up at a face of the prior box (half of them within ¼ of its Fisher σ), or its θ lies within one Fisher σ of a face, the fit reports the posterior of the data's likelihood in the box (the Fisher Gaussian centred where the likelihood's quadratic expansion at the fit peaks, cut by the box, then reweighted by the likelihood itself where it can be evaluated), not the replicas' collapsed spread (inverse.faces).
        compare_mle: also fit the same data by maximum likelihood (the exact theory).
        posterior: with compare_mle, also sample the exact posterior (the MLE's likelihood × the prior box, MCMC, from the MLE) and report σ/σ_post.
        detector: the experimental module between source and discriminators ({kind: dis, ...}) or null.
        events: the observed events (.npz or .csv); required to run.
        out: the run directory (default runs/inverse-<time>).
        resume: continue from the run directory's checkpoints/last.ckpt.
        overwrite: replace a finished run in the run directory (refused otherwise).
        progress: show the progress bar (--no-progress: false).
        gan: the outer GAN's networks, learning rates and schedule.
        stop: when to stop before steps (the trace settled, judged against its own noise).
        trainer: where and how it trains.
    """

    theory: str = "proxy"
    source: str = "exact"
    seed: int = 0
    steps: int = 3000
    replicas: int = 16
    data_replicas: int = 1
    events_per_step: int = 256
    average_last: float = 0.3
    face_cut: bool = True
    compare_mle: bool = True
    posterior: bool = True
    detector: dict | None = None
    events: str | None = None
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    gan: GanConfig = field(default_factory=GanConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        text("theory", self.theory, "proxy")
        text("source", self.source, "exact")
        seed_value("seed", self.seed)
        positive_int("steps", self.steps, 3000)
        positive_int("replicas", self.replicas, 16)
        positive_int("data_replicas", self.data_replicas, 1)
        positive_int("events_per_step", self.events_per_step, 256)
        fraction("average_last", self.average_last, 0.3)
        flag("face_cut", self.face_cut)
        flag("compare_mle", self.compare_mle)
        flag("posterior", self.posterior)
        if self.detector is not None and not isinstance(self.detector, dict):
            raise InputError(
                f"detector must be a mapping (kind: dis, x_resolution: 0.03, ...) or null, "
                f"got {self.detector!r}"
            )
        flag("resume", self.resume)
        flag("overwrite", self.overwrite)
        if self.resume and self.overwrite:
            raise InputError("--resume continues a run and --overwrite replaces it: give one")
        flag("progress", self.progress)
        self.gan = _block(GanConfig, self.gan, "gan")
        self.stop = _block(StopConfig, self.stop, "stop")
        self.trainer = _block(TrainerConfig, self.trainer, "trainer")
        k, r = self.data_replicas, self.replicas
        if k > r or r - k < 2:
            raise InputError(
                f"data_replicas {k} with replicas {r}: need 1 ≤ data_replicas and at least 2 "
                "bootstrap replicas beside them; raise replicas or lower data_replicas"
            )


# ----------------------------------------------------------------------------- closure, MLE, black box


@dataclass
class ClosureConfig:
    """`python -m inverse.closure`: simulate observed data at θ and fit it by maximum likelihood.

    Args:
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md.
        theta: truth, or one number per parameter inside the prior box.
        cases: expected counts per DESIGN.md: A, B, C or counts like 1000,500.
        seed: data set seed (case k uses seed + k).
        starts: optimizer starting points per fit.
        out: the run directory (one folder per case).
        overwrite: replace a finished closure in the run directory (refused otherwise).
    """

    theory: str = "proxy"
    theta: str | list[float] = "truth"
    cases: list[str] = field(default_factory=lambda: ["A", "B", "C"])
    seed: int = 1
    starts: int = 4
    out: str = "runs/closure"
    overwrite: bool = False

    def __post_init__(self) -> None:
        text("theory", self.theory, "proxy")
        if not isinstance(self.cases, list | tuple) or not self.cases:
            raise InputError(f"cases must be a list of cases, got {self.cases!r}; e.g. [A, B, C]")
        self.cases = [str(c) for c in self.cases]
        seed_value("seed", self.seed)
        positive_int("starts", self.starts, 4)
        flag("overwrite", self.overwrite)


@dataclass
class MLEConfig:
    """`python -m inverse.mle`: the extended maximum-likelihood fit of observed events.

    Args:
        events: the observed events (.npz or .csv); required to run.
        theory: the theory of the data, the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md.
        out: the run directory.
        starts: optimizer starting points.
        seed: seed of the starting points (and of the posterior's walkers).
        overwrite: replace a finished fit in the run directory (refused otherwise).
        posterior: also sample the exact posterior (MCMC from the MLE): its mean, σ, R̂, ESS and σ_MLE/σ_post in metrics.json.
    """

    events: str | None = None
    theory: str = "proxy"
    out: str = "runs/mle"
    starts: int = 4
    seed: int = 0
    overwrite: bool = False
    posterior: bool = False

    def __post_init__(self) -> None:
        text("theory", self.theory, "proxy")
        positive_int("starts", self.starts, 4)
        seed_value("seed", self.seed)
        flag("overwrite", self.overwrite)
        flag("posterior", self.posterior)


@dataclass
class TrainingSetConfig:
    """The black box's training set (the ``training:`` block).

    Args:
        n_params: θ points drawn from the prior.
        events_per_param: events simulated at each θ.
        grid_size: x grid of the densities stored with them.
        seed: seed of the training set.
    """

    n_params: int = 20000
    events_per_param: int = 10
    grid_size: int = 128
    seed: int = 1

    def __post_init__(self) -> None:
        positive_int("training.n_params", self.n_params, 20000)
        positive_int("training.events_per_param", self.events_per_param, 10)
        positive_int("training.grid_size", self.grid_size, 128)
        seed_value("training.seed", self.seed)


@dataclass
class SurrogateStageConfig:
    """The surrogate the black box trains (the ``surrogate:`` block).

    Args:
        family: flow, gan, vae or vaim.
        config: its YAML (a path, or a shipped one like configs/surrogates/vaim.yaml).
        args: more settings of that surrogate's command line, e.g. [--trainer.max_epochs, 100].
    """

    family: str = "vaim"
    config: str = "configs/surrogates/vaim.yaml"
    args: list[str | int | float] = field(default_factory=list)

    def __post_init__(self) -> None:
        text("surrogate.family", self.family, "vaim")
        check_choice("surrogate.family", self.family, FAMILIES)
        text("surrogate.config", self.config, "configs/surrogates/vaim.yaml")


@dataclass
class BlackboxConfig:
    """`python -m inverse.blackbox`: a theory with no gradients → surrogate → outer GAN → θ.

    Args:
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md (default proxy-numpy: the proxy as plain NumPy code, no gradients).
        theta: truth, or one number per parameter inside the prior box.
        case: expected counts of the observed data: A, B, C or counts like 1000,500.
        data_seed: seed of the observed data.
        training: the training set simulated from the theory.
        surrogate: the surrogate trained on it.
        inverse: the outer GAN's YAML (its theory and source are set by this command).
        out: the run directory (one folder per stage; a stage whose output exists is reused).
        progress: show progress bars (--no-progress: false).
    """

    theory: str = "proxy-numpy"
    theta: str | list[float] = "truth"
    case: str = "B"
    data_seed: int = 1
    training: TrainingSetConfig = field(default_factory=TrainingSetConfig)
    surrogate: SurrogateStageConfig = field(default_factory=SurrogateStageConfig)
    inverse: str = "configs/inverse/proxy.yaml"
    out: str = "runs/blackbox"
    progress: bool = True

    def __post_init__(self) -> None:
        text("theory", self.theory, "proxy-numpy")
        self.case = str(self.case)
        seed_value("data_seed", self.data_seed)
        self.training = _block(TrainingSetConfig, self.training, "training")
        self.surrogate = _block(SurrogateStageConfig, self.surrogate, "surrogate")
        flag("progress", self.progress)


# ----------------------------------------------------------------------------- dicts and YAML

Config = TypeVar("Config")


def _block(cls: type[Config], value: object, key: str) -> Config:
    """A nested block as its dataclass (from a mapping, checked for unknown keys)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Namespace):
        value = value.as_dict()
    if not isinstance(value, Mapping):
        raise InputError(f"{key} must be a mapping of keys to values, got {value!r}")
    return from_dict(cls, value, f"{key}.")


def from_dict(cls: type[Config], values: Mapping, prefix: str = "") -> Config:
    """``cls`` from a mapping of its YAML keys; an unknown key is a one-line InputError."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in known]
    if unknown:
        raise InputError(
            f"unknown key '{prefix}{unknown[0]}'; known keys: {', '.join(prefix + k for k in known)}"
        )
    return cls(**values)


def to_dict(cfg: object) -> dict:
    """The config as plain YAML-able values (the resolved ``config.yaml`` of a run)."""
    return dataclasses.asdict(cfg)


def with_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """``cfg`` with dotted ``key=value`` overrides (``gan.precondition_diagonal=false``,
    ``data_replicas=8``); values are read as YAML scalars, the result checked as a config
    (`benchmarks/gan_vs_mle.py`'s and `benchmarks/closures.py`'s ``--set``)."""
    values = to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set takes key=value (e.g. data_replicas=8), got {item!r}")
        *path, last = key.split(".")
        node = values
        for part in path:
            if not isinstance(node.get(part), dict):
                raise InputError(f"--set {key}: '{part}' is not a section of the fit config")
            node = node[part]
        if last not in node:
            raise InputError(f"--set {key}: no such setting in the fit config")
        node[last] = yaml.safe_load(text)
    return from_dict(type(cfg), values)


def load_config(path: str | Path | None, cls: type[Config] = FitConfig) -> Config:
    """``cls`` from a YAML file (a path, or a shipped config's name); None: the defaults.

    A missing or malformed file, a non-mapping, an unknown key or a bad value is a one-line
    InputError naming the key.
    """
    if path is None:
        return cls()
    values = read_yaml(path, _EXAMPLES.get(cls, "configs/"))
    try:
        return from_dict(cls, values)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def read_yaml(path: str | Path, example: str = "configs/inverse/proxy.yaml") -> dict:
    """A YAML mapping from a path or a shipped config's name; a missing or malformed file or a
    non-mapping is a one-line InputError (pointing at ``example``)."""
    resolved = resolve_config(path)
    if not resolved.is_file():
        raise InputError(
            f"config '{path}' not found; give a YAML path or a shipped config's name, "
            f"e.g. {example}"
        )
    try:
        values = yaml.safe_load(resolved.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"config '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise InputError(f"config '{path}' must be a mapping of keys to values")
    return values


_EXAMPLES: dict[type, str] = {
    FitConfig: "configs/inverse/proxy.yaml",
    ClosureConfig: "configs/closure/proxy.yaml",
    BlackboxConfig: "configs/inverse/blackbox.yaml",
}

# ----------------------------------------------------------------------------- command line

# spellings of the argparse era that stay accepted: the flag → its jsonargparse form
ALIASES = {
    "--no-progress": "--progress=false",
    "--no_progress": "--progress=false",
    "--events-per-step": "--events_per_step",
    "--data-replicas": "--data_replicas",
    "--average-last": "--average_last",
    "--compare-mle": "--compare_mle",
    "--data-seed": "--data_seed",
}


class _HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help with the description printed as written (its examples' line breaks)."""


def build_parser(cls: type, prog: str, description: str | None) -> ArgumentParser:
    """The jsonargparse parser of ``cls``: ``--config FILE`` and one option per key."""
    parser = ArgumentParser(
        prog=prog,
        description=description,
        exit_on_error=False,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="a YAML of these keys (a path, or a shipped one: configs/inverse/proxy.yaml)",
    )
    parser.add_class_arguments(cls, None, fail_untyped=True, sub_configs=False)
    return parser


def parse_cli(
    cls: type[Config], argv: Sequence[str] | None, prog: str, description: str | None
) -> Config:
    """``cls`` from the command line (``--help`` and ``--print_config`` print and exit).

    Every error is one-line InputError naming the key (see `surrogates.runs.cli_errors`).
    """
    import sys

    argv = _normalize(list(sys.argv[1:] if argv is None else argv), cls)
    parser = build_parser(cls, prog, description)
    try:
        ns = parser.parse_args(argv)
    except argparse.ArgumentError as err:
        raise InputError(f"{one_line(str(err))}; see {prog} --help") from None
    values = ns.clone().as_dict()
    values.pop("config", None)
    values.pop("__path__", None)
    return from_dict(cls, values)


def _normalize(argv: list[str], cls: type) -> list[str]:
    """Aliases replaced, a bare boolean option (``--resume``) read as true, and ``--config NAME``
    resolved to the shipped file when not a path."""
    flags = set(bool_options(cls))
    out: list[str] = []
    for i, arg in enumerate(argv):
        arg = ALIASES.get(arg, arg)
        following = argv[i + 1].lower() if i + 1 < len(argv) else ""
        if out and out[-1] == "--config":
            read_yaml(arg)  # a missing or malformed file: one line saying so
            out.append(str(resolve_config(arg)))
        elif arg.startswith("--config="):
            name = arg.split("=", 1)[1]
            read_yaml(name)
            out.append(f"--config={resolve_config(name)}")
        elif arg in flags and following not in _BOOL_WORDS:
            out.append(f"{arg}=true")
        else:
            out.append(arg)
    return out


_BOOL_WORDS = {"true", "false", "yes", "no"}


def bool_options(cls: type, prefix: str = "--") -> list[str]:
    """The command-line names of the true/false keys of ``cls`` (nested blocks included)."""
    names = []
    for name, kind in get_type_hints(cls).items():
        if dataclasses.is_dataclass(kind):
            names += bool_options(kind, f"{prefix}{name}.")
        elif kind is bool:
            names.append(prefix + name)
    return names


_TYPE = re.compile(r"Parser key \"([^\"]+)\":\s*Expected a <class '(\w+)'>\. Got value: (.*)")
_UNION = re.compile(r"Parser key \"([^\"]+)\":\s*Does not validate.* Given value: (.*)")


def one_line(message: str) -> str:
    """jsonargparse's (multi-line) error as one line: ``steps must be int, got 'ten'``."""
    flat = " ".join(line.strip() for line in message.splitlines() if line.strip())
    match = _TYPE.match(flat)
    if match:
        key, kind, value = match.groups()
        return f"{key} must be {'an' if kind == 'int' else 'a'} {kind}, got {value!r}"
    match = _UNION.match(flat)
    if match:
        return f"{match.group(1)} has a value of the wrong type: {match.group(2)}"
    flat = re.sub(r"Group '(\w+)' does not accept option '(\w+)'", r"unknown key '\1.\2'", flat)
    return flat.replace('Parser key "', "key '").replace('":', "':")
