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
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from inverse.config import FitConfig, from_dict, parse_cli, to_dict
from inverse.config import load_config as load_typed_config
from inverse.gan import OuterGAN
from inverse.report import (
    Yardstick,
    compare_with_mle,
    format_table,
    log_to_wandb,
    summarize,
    write_outputs,
)
from surrogates.data import ObservedData, event_sampler, read_events
from surrogates.detector import make_detector
from surrogates.errors import InputError
from surrogates.likelihood import FoldedModel
from surrogates.runs import cli_errors, default_run_dir, is_rank_zero, unused_parameters_strategy
from surrogates.theory import Theory, get_theory
from surrogates.tracking import wandb_logger

__all__ = [
    "main",
    "load_config",
    "make_source",
    "check_detector",
    "fit_outer_gan",
    "run_outer_gan",
    "format_table",
]


def load_config(path: str | Path | None) -> FitConfig:
    """The outer GAN's config from a YAML (a path or a shipped name); None: the defaults."""
    return load_typed_config(path, FitConfig)


def make_source(spec: str, theory: Theory):  # noqa: ANN201 - an EventSource
    """The EventSource named by ``spec`` for data of ``theory``, or an InputError saying why not."""
    if spec == "exact":
        if not theory.differentiable:
            raise InputError(
                f"theory '{theory.name}' has no gradients, so --source exact cannot drive the GAN; "
                "train a surrogate (python -m surrogates.fit flow --data.theory "
                f"{theory.name}) and pass its checkpoint as --source"
            )
        return event_sampler(theory)
    if "," in spec:  # an ensemble: every member checked like a single surrogate
        from surrogates.ensemble import Ensemble, member_names

        specs = [s.strip() for s in spec.split(",") if s.strip()]
        members = [make_source(s, theory) for s in specs]
        if any(not isinstance(m, torch.nn.Module) for m in members):
            raise InputError("an ensemble source takes surrogates only, not 'exact'")
        return Ensemble(members, names=member_names(specs)).requires_grad_(False)
    from surrogates.zoo import card_of, load_surrogate, resolve_checkpoint

    info = card_of(resolve_checkpoint(spec)).get("theory", {})
    if info.get("theory") == theory.name and info.get("prior_low") is not None:
        lo, hi = np.asarray(info["prior_low"]), np.asarray(info["prior_high"])
        need_lo, need_hi = theory.prior_low.numpy(), theory.prior_high.numpy()
        narrow = (lo > need_lo + 1e-9) | (hi < need_hi - 1e-9)
        if narrow.any():
            j = int(np.flatnonzero(narrow)[0])
            raise InputError(
                f"surrogate '{spec}' was trained on {theory.param_names[j]} in "
                f"[{lo[j]:g}, {hi[j]:g}], narrower than the prior [{need_lo[j]:g}, "
                f"{need_hi[j]:g}] the data's theory needs; retrain it on the full box"
            )
    model = load_surrogate(spec, theory)
    model.requires_grad_(False)
    return model


def check_detector(spec: dict | None, theory: Theory, data: ObservedData):  # noqa: ANN201
    """The config's detector, checked against the one the data were simulated through (if known)."""
    detector = make_detector(spec, theory)
    if "detector" not in data.meta:  # data from elsewhere: the config says what the detector is
        return detector
    simulated = data.meta["detector"]
    have = None if detector is None else detector.describe()
    if simulated != have:
        what = "no detector" if simulated is None else f"detector {simulated}"
        config = "no detector" if have is None else f"detector {have}"
        raise InputError(
            f"the events were simulated with {what}, but the config has {config}; "
            "set the config's detector block to the data's settings"
        )
    return detector


def prepare_run_dir(out: str | Path, resume: bool) -> Path:
    """The run directory (made by rank 0); with ``resume`` its last checkpoint must exist."""
    out = Path(out)
    if is_rank_zero():  # under DDP the other processes write nothing
        out.mkdir(parents=True, exist_ok=True)
    if resume and not (out / "checkpoints" / "last.ckpt").is_file():
        raise InputError(
            f"--resume: no {out / 'checkpoints' / 'last.ckpt'} to continue from; check --out"
        )
    return out


def ensemble_members(cfg: FitConfig, source) -> list[int] | None:  # noqa: ANN001 - EventSource
    """Which member draws each replica's events for an ensemble source (None for one source):
    the K data replicas through the mixture (−1), replica r ≥ K through member r − K mod M."""
    m, k = source.n_members, cfg.data_replicas
    if m <= 1:
        return None
    if cfg.replicas < 2 * m + k:
        raise InputError(
            f"an ensemble of {m} surrogates needs replicas ≥ {2 * m + k} (2 per member, plus the "
            "data) to split the surrogates' share of the uncertainty; raise --replicas"
        )
    return [-1] * k + [(r - k) % m for r in range(k, cfg.replicas)]


def build_model(
    theory: Theory,
    data: ObservedData,
    source,  # noqa: ANN001 - EventSource
    cfg: FitConfig,
    yardstick: Yardstick,
    members: list[int] | None,
) -> OuterGAN:
    """The outer GAN of ``cfg`` on ``data`` through ``source`` (seeded by ``cfg.seed``)."""
    pl.seed_everything(cfg.seed, verbose=False)
    return OuterGAN(
        source,
        data,
        theory,
        cfg.gan,
        replicas=cfg.replicas,
        data_replicas=cfg.data_replicas,
        events_per_step=cfg.events_per_step,
        steps=cfg.steps,
        seed=cfg.seed,
        source_members=members,
        covariance=yardstick.covariance,
        detector=None if yardstick.folded is None else yardstick.folded.detector,
    )


def make_trainer(
    model: OuterGAN, cfg: FitConfig, theory: Theory, is_exact: bool, out: Path
) -> tuple[pl.Trainer, list]:
    """Lightning's trainer for ``model``: CSV (and wandb) logs, a checkpoint every
    ``trainer.checkpoint_every`` generator steps, DDP that tolerates unused weights."""
    loggers: list = [CSVLogger(out, name="logs", version="")]
    wandb = wandb_logger(
        out,
        group="inverse",
        job_type="outer-gan",
        tags=["inverse", theory.name, str(cfg.source).split("/")[-1]],
        config=to_dict(cfg),
    )
    if wandb is not None:
        loggers.append(wandb)
    accelerator = cfg.trainer.accelerator
    if is_exact and accelerator == "auto":
        accelerator = "cpu"  # the exact theory's tensors live on the CPU (and it is cheap there)
    # the outer GAN steps discriminators and generator on separate losses (manual optimization)
    strategy = unused_parameters_strategy(cfg.trainer.strategy, cfg.trainer.devices)
    trainer = pl.Trainer(
        max_steps=model.trainer_steps,
        max_epochs=1,
        accelerator=accelerator,
        devices=cfg.trainer.devices,
        strategy=strategy,
        use_distributed_sampler=False,  # under DDP every process runs all the steps
        logger=loggers,
        callbacks=[
            ModelCheckpoint(
                dirpath=out / "checkpoints",
                filename="last",
                every_n_train_steps=cfg.trainer.checkpoint_every * (1 + model.d_steps),
                save_top_k=1,
                enable_version_counter=False,
            )
        ],
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        log_every_n_steps=20,
        default_root_dir=str(out),
    )
    return trainer, loggers


def train(trainer: pl.Trainer, model: OuterGAN, cfg: FitConfig, out: Path) -> float:
    """Run (or, with ``cfg.resume``, continue) the steps; save the last checkpoint; seconds."""
    last = out / "checkpoints" / "last.ckpt"
    # Lightning warns that manual-optimization checkpoints hold the state after the step: that
    # is the state a resumed run needs
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    steps = torch.utils.data.DataLoader(range(cfg.steps), batch_size=None)
    t0 = time.perf_counter()
    trainer.fit(model, steps, ckpt_path=str(last) if cfg.resume else None)
    seconds = time.perf_counter() - t0
    trainer.save_checkpoint(last)
    return seconds


def fit_outer_gan(
    theory: Theory,
    data: ObservedData,
    source,  # noqa: ANN001 - EventSource
    cfg: FitConfig,
    out: str | Path,
) -> dict:
    """Train the outer GAN on ``data`` through ``source`` and write the run directory.

    The steps: check the config against the data, build the model, train, summarize, compare with
    the MLE, write the outputs (``config.yaml`` = ``cfg`` resolved, ``metrics.json``,
    ``params.npz``, plots). Returns the metrics (``{}`` in DDP processes other than rank 0).
    """
    members = ensemble_members(cfg, source)
    detector = check_detector(cfg.detector, theory, data)
    out = prepare_run_dir(out, cfg.resume)
    yardstick = Yardstick(theory, data, None if detector is None else FoldedModel(theory, detector))
    model = build_model(theory, data, source, cfg, yardstick, members)
    trainer, loggers = make_trainer(model, cfg, theory, source.is_exact, out)
    seconds = train(trainer, model, cfg, out)
    if trainer.global_rank != 0:  # under DDP the other processes stop here
        return {}
    names = getattr(source, "names", None) if members is not None else None
    metrics, summary = summarize(model, cfg, theory, yardstick, members, names, seconds)
    mle = compare_with_mle(metrics, yardstick) if cfg.compare_mle else None
    write_outputs(out, to_dict(cfg), metrics, summary, theory, data, source, detector, mle)
    log_to_wandb(loggers, metrics, out)
    return metrics


def run_outer_gan(
    theory: Theory,
    data: ObservedData,
    source,  # noqa: ANN001 - EventSource
    cfg: FitConfig | Mapping,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """`fit_outer_gan` with ``resume`` and ``progress`` as arguments (and a config mapping of
    the YAML's keys accepted), as the benchmarks call it."""
    if isinstance(cfg, Mapping):
        cfg = from_dict(FitConfig, cfg)
    cfg = replace(cfg, resume=resume, progress=progress)
    return fit_outer_gan(theory, data, source, cfg, out)


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
    print(f"plots (traces.png, curves.png, events.png), params.npz and metrics.json in {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
