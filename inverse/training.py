"""The outer GAN's run as named steps: `fit_outer_gan(theory, data, source, cfg, out)` checks the
config against the data, builds the model, trains it with Lightning, summarizes, compares with the
maximum likelihood and writes the run directory."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from inverse.config import FitConfig, from_dict, to_dict
from inverse.config import load_config as load_typed_config
from inverse.gan import OuterGAN, check_score_source
from inverse.report import (
    SurrogateYardstick,
    Yardstick,
    compare_with_mle,
    compare_with_posterior,
    log_to_wandb,
    make_yardstick,
    summarize,
    write_outputs,
)
from inverse.sources import check_detector
from surrogates.data import ObservedData
from surrogates.errors import InputError
from surrogates.likelihood import FoldedModel
from surrogates.runs import (
    SafeCheckpointIO,
    claim_run_dir,
    is_rank_zero,
    unused_parameters_strategy,
)
from surrogates.sampling import InverseCDFSampler
from surrogates.theory import Theory
from surrogates.tracking import wandb_logger, wandb_mode
from surrogates.types import EventSource

__all__ = [
    "load_config",
    "fit_outer_gan",
    "run_outer_gan",
    "prepare_run_dir",
    "ensemble_members",
    "build_model",
    "make_trainer",
    "train",
]


def load_config(path: str | Path | None) -> FitConfig:
    """The outer GAN's config from a YAML (a path or a shipped name); None: the defaults."""
    return load_typed_config(path, FitConfig)


def prepare_run_dir(out: str | Path, resume: bool) -> Path:
    """The run directory, checked before anything is written: with ``resume`` its last
    checkpoint must exist; it must not be a file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file, not a folder; choose a folder path")
    if resume and not (out / "checkpoints" / "last.ckpt").is_file():
        raise InputError(
            f"--resume: no {out / 'checkpoints' / 'last.ckpt'} to continue from; check --out"
        )
    return out


def claim(out: Path, cfg: FitConfig) -> contextlib.AbstractContextManager:
    """Rank 0 holds the run folder for the run (`claim_run_dir`: one writer; a finished run only
    with ``--resume`` or ``--overwrite``); under DDP the other processes write nothing."""
    if not is_rank_zero():
        return contextlib.nullcontext(out)
    return claim_run_dir(
        out, resume=cfg.resume, overwrite=cfg.overwrite, resume_hint=", --resume to continue it"
    )


def ensemble_members(cfg: FitConfig, source: EventSource) -> list[int] | None:
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
    source: EventSource,
    cfg: FitConfig,
    yardstick: Yardstick | SurrogateYardstick,
    members: list[int] | None,
) -> OuterGAN:
    """The outer GAN of ``cfg`` on ``data`` through ``source`` (seeded by ``cfg.seed``). An
    exact sampler with adaptive tables keeps each replica's nodes from step to step while they
    stay accurate (`InverseCDFSampler.keeping_nodes`, a new one per fit)."""
    if isinstance(source, InverseCDFSampler):
        source = source.keeping_nodes()
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
        stop=cfg.stop,
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
        plugins=[SafeCheckpointIO()],
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
    trainer.fit(model, steps, ckpt_path=str(last) if cfg.resume else None, weights_only=True)
    seconds = time.perf_counter() - t0
    trainer.save_checkpoint(last, weights_only=False)  # with the optimizers: --resume
    return seconds


def fit_outer_gan(
    theory: Theory,
    data: ObservedData,
    source: EventSource,
    cfg: FitConfig,
    out: str | Path,
) -> dict:
    """Train the outer GAN on ``data`` through ``source`` and write the run directory.

    The steps: check the config against the data, build the model, train, summarize, compare with
    the MLE and the exact posterior, write the outputs (``config.yaml`` = ``cfg`` resolved, ``metrics.json``,
    ``params.npz``, plots). Returns the metrics (``{}`` in DDP processes other than rank 0).
    """
    members = ensemble_members(cfg, source)
    detector = check_detector(cfg.detector, theory, data)
    if cfg.gan.d_score:  # refused before the run folder is touched
        check_score_source(source, data.events[0].shape[1], detector)
    out = prepare_run_dir(out, cfg.resume)
    wandb_mode()  # an unknown WANDB_MODE stops here, before the folder is touched
    with claim(out, cfg):
        folded = None if detector is None else FoldedModel(theory, detector)
        yardstick = make_yardstick(theory, data, source, folded)
        model = build_model(theory, data, source, cfg, yardstick, members)
        trainer, loggers = make_trainer(model, cfg, theory, source.is_exact, out)
        seconds = train(trainer, model, cfg, out)
        if trainer.global_rank != 0:  # under DDP the other processes stop here
            return {}
        names = getattr(source, "names", None) if members is not None else None
        metrics, summary = summarize(model, cfg, theory, yardstick, members, names, seconds)
        mle = compare_with_mle(metrics, yardstick) if cfg.compare_mle else None
        if mle is not None and cfg.posterior:  # the walkers start around the MLE
            compare_with_posterior(metrics, yardstick, mle, cfg.seed)
        write_outputs(out, to_dict(cfg), metrics, summary, theory, data, source, detector, mle)
        log_to_wandb(loggers, metrics, out)
    return metrics


def run_outer_gan(
    theory: Theory,
    data: ObservedData,
    source: EventSource,
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
