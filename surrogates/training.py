"""The training run behind ``python -m surrogates.fit``: `fit_surrogate` from Python, in named steps.

    from surrogates.training import fit_surrogate
    metrics = fit_surrogate("flow", overrides=["--trainer.max_epochs", "3"], out="runs/flow")

A run is LightningCLI over a surrogate family and `TrainingDataModule`: the family's shipped
recommended config (``configs/surrogates/FAMILY.yaml``) unless another config is given, then
command-line style overrides. The steps: `build_cli` (parse, check, instantiate; before the
Trainer, `init_weights` copies ``--init_from`` and `check_training_data` reads the set),
`write_config` (the resolved ``config.yaml``, once, before training), `train`,
`evaluate` (fidelity at held-out validation θ against the exact theory, and
the density-free view against fresh generator events) and `write_outputs` (``metrics.json``,
``environment.json``, the wandb summary).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from jsonargparse import DefaultHelpFormatter
from pytorch_lightning import seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger

from surrogates.data import TrainingDataModule
from surrogates.errors import InputError
from surrogates.metrics import (
    VALIDATION_SEED_OFFSET,
    evaluate_density_free,
    evaluate_surrogate,
    plot_held_out_events,
    reference_counts,
    sampling_rate,
)
from surrogates.models import Surrogate, get_family
from surrogates.resources import config_file, resolve_config
from surrogates.runs import (
    SafeCheckpointIO,
    claim_run_dir,
    default_run_dir,
    environment,
    is_rank_zero,
    unused_parameters_strategy,
    write_json,
)
from surrogates.theory import get_theory
from surrogates.theory.base import Module2
from surrogates.tracking import finish_wandb, per_name, wandb_logger, wandb_mode
from surrogates.validation import check_accelerator, non_negative_int, positive_int, seed_value
from surrogates.zoo import load_surrogate

__all__ = [
    "fit_surrogate",
    "run_fit",
    "SurrogateCLI",
    "build_cli",
    "check_training_data",
    "default_config",
    "write_config",
    "init_weights",
    "train",
    "schedule_state",
    "schedule_warning",
    "evaluate",
    "write_outputs",
]

EVAL_CHECKPOINTS = ("best", "last")


def fit_surrogate(
    family: str,
    config: dict | str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train a surrogate of ``family`` and measure it; the Python face of ``surrogates.fit``.

    Args:
        family: "flow", "gan", "vae" or "vaim".
        config: the run's config with the YAML's structure (``model``, ``data``, ``trainer``,
            ``eval``, ``seed_everything``) as a dict, or a YAML path (a shipped one by its name
            under ``configs/``, e.g. ``"surrogates/flow-dis.yaml"``); None: the family's shipped
            recommended config. A given config replaces the shipped one (class defaults fill
            what it leaves out).
        overrides: command-line style options applied after ``config``, e.g.
            ``["--trainer.max_epochs", "3", "--data", "train.npz"]``.
        out: the run directory (default ``runs/FAMILY-<time>``).
        progress: False hides Lightning's progress bar.

    Returns:
        The metrics, as written to ``out/metrics.json``. Under DDP (``--trainer.devices 2``)
        Lightning starts the calling script again in each further process; there it returns {}.
    """
    args = _config_args(config)
    if not progress:
        args += ["--trainer.enable_progress_bar", "false"]
    args += list(overrides)
    if out is not None:
        args += ["--out", str(out)]
    return run_fit(family, args)[1]


def run_fit(family: str, args: Sequence[str], description: str | None = None) -> tuple[Path, dict]:
    """One run from command-line style ``args`` (those after the family, ``description`` the
    ``--help`` text); returns the run directory and the metrics."""
    cli = build_cli(family, args, description)  # --init_from and the training set checked too
    out = Path(cli.config["out"])
    wandb_mode()
    with _claim(out, cli):
        write_config(cli, out)
        seconds = train(cli)
        if cli.trainer.global_rank != 0:  # under DDP the other processes stop here
            return out, {}
        metrics = evaluate(cli, out, seconds)
        write_outputs(cli, out, metrics)
    return out, metrics


def _claim(out: Path, cli: SurrogateCLI) -> contextlib.AbstractContextManager:
    """Rank 0 holds ``out`` for the run: one writer; a finished run only resumed
    (``--ckpt_path``) or replaced (``--overwrite``)."""
    if not is_rank_zero():
        return contextlib.nullcontext(out)
    resume = bool(cli.config["ckpt_path"])
    if resume and cli.config["overwrite"]:
        raise InputError("--ckpt_path resumes a run and --overwrite replaces it: give one")
    return claim_run_dir(
        out,
        resume=resume,
        overwrite=cli.config["overwrite"],
        resume_hint=", --ckpt_path last to resume it",
    )


def _check_trainer(trainer: dict) -> None:
    """Training budgets that train something, on devices that exist: checked before writing."""
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if epochs is not None and epochs != -1 and epochs < 1:
        raise InputError(f"--trainer.max_epochs must be at least 1 (or -1: no limit), got {epochs}")
    if steps is not None and steps != -1 and steps < 1:
        raise InputError(f"--trainer.max_steps must be at least 1 (or -1: no limit), got {steps}")
    check_accelerator("--trainer.accelerator", trainer.get("accelerator"))
    devices = trainer.get("devices")
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < 1 and devices != -1:
        raise InputError(f"--trainer.devices must be at least 1 (or auto), got {devices}")


def default_config(family: str) -> Path:
    """The family's shipped recommended config, ``configs/surrogates/FAMILY.yaml``."""
    return config_file(f"surrogates/{family}.yaml")


class SurrogateCLI(LightningCLI):
    """LightningCLI with ``--out``, ``--ckpt_path``, ``--init_from`` and ``--eval.*``; the theory
    linked from data to model; the package's checkpoints and loggers beside the user's."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 - LightningArgumentParser
        parser.add_argument(
            "--out",
            type=str | None,
            default=None,
            help="run directory (default runs/<family>-<time>)",
        )
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="'last' resumes the run in --out"
        )
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="replace a finished run in --out (refused otherwise)",
        )
        parser.add_argument(
            "--init_from",
            type=str | None,
            default=None,
            help="start from the weights of this checkpoint (a .ckpt or zoo name of the same "
            "family, theory and network sizes) with a fresh optimizer and schedule: fine-tuning",
        )
        parser.add_argument(
            "--eval.checkpoint",
            type=str,
            default="best",
            help="evaluate and report 'best' (validation loss) or 'last'",
        )
        parser.add_argument(
            "--eval.held_out", type=int, default=5, help="held-out θ for the fidelity plots/metrics"
        )
        parser.add_argument(
            "--eval.events",
            type=int,
            default=100_000,
            help="events per channel per held-out θ (histograms, W1, KS, C2ST)",
        )
        parser.add_argument(
            "--eval.shift_events",
            type=int,
            default=1_000_000,
            help="events per channel per held-out θ for theta_shift_crb, whose noise falls as "
            "1/√N: 10000000 for the zoo's full measurement (several times slower); 0 skips it",
        )
        parser.add_argument(
            "--eval.reference_counts",
            type=str | None,
            default=None,
            help="N1,N2,...: expected events per channel of your reference data, the unit of "
            "theta_shift_crb (σ_CRB at that data size; metrics.json states it). Default: the "
            "theory's reference_counts (the proxy: its case A, 100000,50000)",
        )
        parser.add_argument(
            "--eval.template_events",
            type=int | None,
            default=None,
            help="surrogate events per channel of the histogram template with which families "
            "with no density (GAN, VAE) fit the generator's events for theta_shift_surrogate_crb "
            "(null: eval.shift_events); its noise adds √(reference counts / this) σ",
        )
        parser.link_arguments("data.theory", "model.theory")
        if "grid_size" in inspect.signature(self.model_class).parameters:
            parser.link_arguments("data.grid_size", "model.grid_size")

    def _set_seed(self) -> None:
        """The seed checked (an integer in [0, 2³² − 1], or true for a random one) before use, and
        set without Lightning's "Seed set to" line (config.yaml records it), so that an error
        found after it is the only line on stderr."""
        seed = self._get(self.config, "seed_everything")
        if seed is False:
            return
        if seed is not None and not isinstance(seed, bool):
            seed_value("seed_everything", seed)
        seed = seed_everything(None if seed is True else seed, workers=True, verbose=False)
        self.config["seed_everything"] = seed

    def before_instantiate_classes(self) -> None:
        """Fill in the run directory and the resume checkpoint; refuse a bad --eval.checkpoint."""
        config = self.config
        if not config["out"]:
            config["out"] = default_run_dir(self.model_class.family)
        if config["ckpt_path"] == "last":
            config["ckpt_path"] = str(_last_checkpoint(Path(config["out"])))
        elif config["ckpt_path"] and not Path(config["ckpt_path"]).is_file():
            raise InputError(
                f"--ckpt_path '{config['ckpt_path']}' not found; give a .ckpt or 'last'"
            )
        if config["ckpt_path"]:  # readable, weights only: checked before the run folder is touched
            SafeCheckpointIO().load_checkpoint(config["ckpt_path"])
        which = config["eval"]["checkpoint"]
        if which not in EVAL_CHECKPOINTS:
            raise InputError(f"--eval.checkpoint '{which}': choose best or last")
        _check_trainer(config["trainer"])
        seed = config.get("seed_everything")
        if seed is not None and not isinstance(seed, bool):
            seed_value("seed_everything", seed)
        for key in ("held_out", "events"):
            positive_int(f"eval.{key}", config["eval"][key], 5)
        non_negative_int("eval.shift_events", config["eval"]["shift_events"])
        given = config["eval"].get("reference_counts")
        if given is not None:  # one count per channel of the theory: checked before writing
            reference_counts(get_theory(config["data"]["theory"]), str(given))
        if config["eval"]["template_events"] is not None:
            positive_int("eval.template_events", config["eval"]["template_events"], 1_000_000)
        out = Path(config["out"])
        if out.exists() and not out.is_dir():
            raise InputError(f"--out '{out}' is a file, not a folder; choose a folder path")

    def instantiate_trainer(self, **kwargs):  # noqa: ANN003, ANN201
        # model and data exist now: --init_from and the training set are checked (and the weights
        # copied) before the Trainer prints its devices, so a bad one is the only line
        if self.config["init_from"]:
            init_weights(self.model, self.config["init_from"], self.config["data"]["theory"])
        check_training_data(self)
        out = Path(self.config["out"])
        # after the user's own --trainer.callbacks, which these kwargs would otherwise replace
        user = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        kwargs["callbacks"] = [
            *(user if isinstance(user, list) else [user]),
            *_checkpoints(out, self.model_class.selection_metric),
        ]
        cfg = self.config.as_dict()
        kwargs["logger"] = _loggers(out, self.model_class.family, cfg)
        kwargs["default_root_dir"] = str(out)
        kwargs["plugins"] = [*(kwargs.get("plugins") or []), SafeCheckpointIO()]
        trainer = cfg["trainer"]
        strategy = unused_parameters_strategy(
            trainer.get("strategy"), trainer.get("devices"), trainer.get("num_nodes") or 1
        )
        if not self.model.automatic_optimization and strategy != trainer.get("strategy"):
            kwargs["strategy"] = strategy  # the GAN: critic and generator on separate losses
        return super().instantiate_trainer(**kwargs)


def build_cli(family: str, args: Sequence[str], description: str | None = None) -> SurrogateCLI:
    """Parse ``args`` over the family's shipped config and instantiate model, data and trainer.

    Without ``--config`` the family's shipped recommended config comes first; a ``--config``
    (a path, or a shipped config's name such as ``surrogates/flow-dis.yaml``) replaces it.
    ``--data FILE.npz`` is short for ``--data.path FILE.npz``.
    """
    model_class = get_family(family)
    args = _resolve_configs(_expand_shorthand(list(args)))
    given = any(a in ("--config", "-c") or a.startswith("--config=") for a in args)
    # the shipped config as the parser's defaults: --help shows them, a --config replaces them
    defaults = [] if given else [str(default_config(family))]
    with warnings.catch_warnings():  # args are given on purpose, whatever sys.argv holds
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        try:
            return SurrogateCLI(
                model_class,
                TrainingDataModule,
                run=False,
                args=args,
                save_config_callback=None,
                seed_everything_default=1,
                trainer_defaults={
                    "accelerator": "auto",
                    "devices": 1,
                    "log_every_n_steps": 10,
                    "max_epochs": 10,
                },
                parser_kwargs={
                    "prog": f"python -m surrogates.fit {family}",
                    "description": description or __doc__,
                    "default_config_files": defaults,
                    "formatter_class": _HelpFormatter,
                    "exit_on_error": False,
                },
            )
        except argparse.ArgumentError as err:  # one line, not the usage text
            message = " ".join(str(err).split())
            raise InputError(
                f"{message[:400]} (see python -m surrogates.fit {family} --help)"
            ) from None


def check_training_data(cli: SurrogateCLI) -> None:
    """The training set fits the module-2 and the model's settings, checked before the run
    folder is touched: a file is read now (`load_training` checks its parameters, channels and
    θ box; the data module keeps it for training); a set still to be simulated has densities
    exactly when the module-2 has one. Settings that need densities (``resample_events``,
    ``objective: pdf``, ...) are refused for a set without them, naming the fix."""
    data = cli.datamodule
    if data.hparams.path:
        data.setup("fit")
        has_density = data.training_set.has_density
    else:
        has_density = get_theory(data.hparams.theory).has_density
    cli.model.check_training_set(has_density)


def write_config(cli: SurrogateCLI, out: Path) -> Path:
    """The resolved ``config.yaml`` of the run, written once before training (rank zero only)."""
    path = out / "config.yaml"
    if is_rank_zero():  # under DDP the other processes write nothing
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(cli.parser.dump(cli.config, format="yaml", skip_none=False))
    return path


def init_weights(model: Surrogate, source: str, theory: str) -> None:
    """Copy a trained surrogate's weights (its norm network too, marked fitted) into ``model``."""
    trained = load_surrogate(source, theory)

    def kind(m: Surrogate) -> str:
        return f"{m.family} surrogate ({getattr(m, 'backend', None) or 'no backend'})"

    if kind(trained) != kind(model):
        raise InputError(
            f"--init_from '{source}' is a {kind(trained)}; this fit trains a {kind(model)}: "
            "give a checkpoint of the same kind"
        )
    try:
        model.load_state_dict(trained.state_dict())
    except RuntimeError:
        raise InputError(
            f"--init_from '{source}': its networks have other sizes than this config's; "
            "use the same --model options it was trained with"
        ) from None


def train(cli: SurrogateCLI) -> float:
    """Fit the model (resuming from ``--ckpt_path``); returns the training wall time in seconds.

    A run that stops before its learning-rate schedule ends (``--trainer.max_time``, or
    ``max_steps`` inside the epochs) gets a warning here and ``schedule_completed: false`` in its
    metrics (`schedule_state`).
    """
    t0 = time.perf_counter()
    cli.trainer.fit(
        cli.model,
        datamodule=cli.datamodule,
        ckpt_path=cli.config["ckpt_path"],
        weights_only=True,
    )
    seconds = time.perf_counter() - t0
    state = schedule_state(cli.trainer)
    if state["schedule_completed"] is False and cli.trainer.global_rank == 0:
        print(f"warning: {schedule_warning(state)}", file=sys.stderr)
    return seconds


def schedule_state(trainer) -> dict:  # noqa: ANN001 - a pytorch_lightning.Trainer after fit
    """Whether the learning-rate schedule ran to its end: ``schedule_completed`` (None without
    an annealing schedule), ``schedule_epochs`` done of ``schedule_length``, and ``lr_fraction``,
    the learning rate left, as a fraction of the starting one.

    The cosine schedule is laid over ``max_epochs``; a run stopped earlier (``max_time``) keeps
    a learning rate far above the schedule's floor: weights that never annealed. The schedule
    does not follow the clock instead, on purpose: its learning rates would then depend on the
    machine's speed and load, and the same seed would no longer give the same weights.
    """
    configs = getattr(trainer, "lr_scheduler_configs", None) or []
    sched = configs[0].scheduler if configs else None
    length = getattr(sched, "T_max", None)
    if sched is None or length is None:
        return {"schedule_completed": None}
    done = int(sched.last_epoch)
    start = [float(g.get("initial_lr", g["lr"])) for g in sched.optimizer.param_groups]
    lr = [float(g["lr"]) for g in sched.optimizer.param_groups]
    return {
        "schedule_completed": done >= int(length),
        "schedule_epochs": done,
        "schedule_length": int(length),
        "lr_fraction": lr[0] / start[0] if start[0] > 0 else None,
    }


def schedule_warning(state: dict) -> str:
    """The one-line warning of a run whose schedule did not end (see `schedule_state`)."""
    left = state.get("lr_fraction")
    lr = "" if left is None else f" (the learning rate is still {left:.0%} of its start)"
    return (
        f"training stopped after {state['schedule_epochs']} of the cosine schedule's "
        f"{state['schedule_length']} epochs{lr}: the weights were not annealed "
        "(metrics.json: schedule_completed false); give --trainer.max_time room for "
        "--trainer.max_epochs, or fewer max_epochs so the schedule ends in time"
    )


def evaluate(cli: SurrogateCLI, out: Path, train_seconds: float) -> dict:
    """The run's metrics: its training summary and the fidelity of the ``--eval.checkpoint``
    model at held-out θ against the exact theory (plots into ``out``)."""
    model, checkpoint = _evaluated_model(cli, out)
    theory = get_theory(cli.config["data"]["theory"])
    trainer = cli.trainer
    ev = cli.config["eval"]
    # validation θ: the held-out numbers serve choices (checkpoint, stages, HPO), never the test set
    seed = int(cli.config["seed_everything"]) + VALIDATION_SEED_OFFSET
    counts = None if ev.get("reference_counts") is None else str(ev["reference_counts"])
    density_free = evaluate_density_free(
        model,
        theory,
        n_held_out=ev["held_out"],
        n_events=ev["events"],
        seed=seed,
        shift_events=ev["shift_events"],
        template_events=ev["template_events"],
        c2st=not theory.has_density,  # a density theory's C2ST is against its exact sampler
        counts=counts,
    )
    if theory.has_density:
        fidelity = evaluate_surrogate(
            model,
            theory,
            out,
            n_held_out=ev["held_out"],
            n_events=ev["events"],
            seed=seed,
            shift_events=ev["shift_events"],
            counts=counts,
        )
    else:
        fidelity = _generator_fidelity(model, theory, out, density_free, ev["events"])
    density_free.pop("_samples", None)
    return {
        "model": model.family,
        "backend": getattr(model, "backend", None),
        "objective": getattr(model, "objective", None),
        "theory": theory.name,
        "train_seconds": train_seconds,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "val_loss": float(trainer.callback_metrics.get("val_loss", torch.tensor(float("nan")))),
        "selection_metric": model.selection_metric,
        "checkpoint": checkpoint,
        "theta_set": "validation",
        "theta_set_note": (
            "held_out_theta are validation θ (seed_everything + VALIDATION_SEED_OFFSET): "
            "choices are made on them; reporting numbers come from the test set "
            "(surrogates.metrics.test_theta, benchmarks/fidelity.py: the card's test_set)"
        ),
        **schedule_state(trainer),
        **fidelity,
        **density_free,
    }


def _generator_fidelity(
    model: Surrogate, module2: Module2, out: Path, density_free: dict, n_events: int
) -> dict:
    """What stands for the exact-density metrics of a module-2 with no density: no
    ``theta_shift_crb`` (its reason stated), the sampling speed, ``heldout.png`` against the
    generator's events."""
    sur, generated = density_free["_samples"]
    theta = torch.as_tensor(density_free["held_out_theta"])
    with torch.enable_grad():
        rate = sampling_rate(model, theta[:1].float(), min(n_events, 100_000))
    plot_held_out_events(out / "heldout.png", module2, sur, generated, min(3, len(generated)))
    return {
        "theta_shift_crb": None,
        "theta_shift_crb_note": (
            f"'{module2.name}' has no density: the fidelity is the density-free report "
            "(theta_shift_surrogate_crb, c2st_auc_generator)"
        ),
        "sample_events_per_second": rate,
    }


def write_outputs(cli: SurrogateCLI, out: Path, metrics: dict) -> None:
    """``metrics.json`` and ``environment.json`` into ``out``; the wandb run closed with them."""
    write_json(out / "metrics.json", metrics)
    write_json(out / "environment.json", environment())
    theory = get_theory(cli.config["data"]["theory"])
    names = theory.param_names
    rows = zip(metrics.get("held_out_theta", []), metrics.get("theta_shift_crb_all", []))
    finish_wandb(
        cli.trainer.loggers,
        metrics,
        images={"heldout": out / "heldout.png"},
        table=(
            "held_out_fidelity",
            ["point", *names, *(f"shift_{n}" for n in names)],
            [[i, *theta, *shift] for i, (theta, shift) in enumerate(rows)],
        ),
        scalars=per_name(metrics, "theta_shift_crb", names)
        | per_name(metrics, "c2st_auc", theory.channels)
        | per_name(metrics, "w1", theory.channels),
    )


# --- the steps' parts ------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description's lines (its examples) kept as written."""


def _config_args(config: dict | str | Path | None) -> list[str]:
    """``--config`` options for `fit_surrogate`'s ``config`` (none: the shipped default)."""
    if config is None:
        return []
    if isinstance(config, dict):
        return ["--config", yaml.safe_dump(config, sort_keys=False)]
    path = resolve_config(config)
    if not path.is_file():
        raise InputError(
            f"config '{config}' not found; give a YAML file or a shipped config such as "
            "surrogates/flow.yaml"
        )
    return ["--config", str(path)]


def _expand_shorthand(argv: list[str]) -> list[str]:
    """``--data FILE.npz`` → ``--data.path FILE.npz`` (``--data`` alone would read a YAML); a bare
    ``--overwrite`` (last, or followed by another option) → ``--overwrite true``."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--overwrite" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out += ["--overwrite", "true"]
            i += 1
            continue
        if a == "--data" and i + 1 < len(argv) and argv[i + 1].endswith(".npz"):
            out += ["--data.path", argv[i + 1]]
            i += 2
            continue
        if a.startswith("--data=") and a.endswith(".npz"):
            a = "--data.path=" + a.split("=", 1)[1]
        out.append(a)
        i += 1
    return out


def _resolve_configs(argv: list[str]) -> list[str]:
    """Every ``--config NAME`` as a path: the file as given, or the shipped config of that name."""
    out = list(argv)
    for i, a in enumerate(out):
        if a in ("--config", "-c") and i + 1 < len(out):
            out[i + 1] = _resolved(out[i + 1])
        elif a.startswith("--config="):
            out[i] = "--config=" + _resolved(a.split("=", 1)[1])
    return out


def _resolved(value: str) -> str:
    if "\n" in value:  # the YAML text of a dict config (fit_surrogate), not a path
        return value
    path = resolve_config(value)
    return str(path) if path.is_file() else value


def _last_checkpoint(out: Path) -> Path:
    path = out / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise InputError(f"--ckpt_path last: no {path} to resume; check --out")
    return path


def _checkpoints(out: Path, monitor: str = "val_loss") -> list[ModelCheckpoint]:
    """best.ckpt by the family's validation metric (`Surrogate.selection_metric`); last.ckpt
    rewritten every epoch (the resume point) whether or not it improved (save_last=True
    refreshes it only with a new best)."""
    folder = out / "checkpoints"
    return [
        ModelCheckpoint(dirpath=folder, filename="best", monitor=monitor, save_top_k=1),
        ModelCheckpoint(
            dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False
        ),
    ]


def _loggers(out: Path, family: str, cfg: dict) -> list:
    """CSV logs in ``out/logs`` and, unless ``WANDB_MODE=disabled``, a wandb run."""
    loggers: list = [CSVLogger(out, name="logs", version="")]
    backend, theory = cfg["model"].get("backend"), cfg["data"]["theory"]
    trainer = cfg["trainer"]
    wandb = wandb_logger(
        out,
        group=family,
        job_type="fit",
        tags=[family, backend, theory],
        config={
            "family": family,
            "backend": backend,
            "theory": theory,
            "seed": cfg["seed_everything"],
            "model": cfg["model"],
            "data": cfg["data"],
            "trainer": {
                k: trainer.get(k)
                for k in ("max_epochs", "max_steps", "accelerator", "devices", "strategy")
            },
            "eval": cfg["eval"],
        },
    )
    return loggers if wandb is None else [*loggers, wandb]


def _evaluated_model(cli: SurrogateCLI, out: Path) -> tuple[Surrogate, str | None]:
    """The ``--eval.checkpoint`` model (the one in memory when there is no such file), in eval
    mode, and its checkpoint path."""
    path = out / "checkpoints" / f"{cli.config['eval']['checkpoint']}.ckpt"
    model = cli.model
    if path.is_file():
        model = type(model).load_from_checkpoint(str(path), map_location="cpu", weights_only=True)
    model.eval()
    return model, str(path) if path.is_file() else None
