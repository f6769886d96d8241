"""`python -m surrogates.fit {flow,...}`: train a surrogate of module-2 with LightningCLI.

    python -m surrogates.fit flow --config configs/surrogates/flow.yaml \\
        --data train.npz --out runs/flow --model.backend zuko --trainer.max_epochs 5

Any option of the model (``--model.*``), the data (``--data.*``) and the Lightning Trainer
(``--trainer.*``) can be set on the command line or in the YAML; ``--data FILE.npz`` is short for
``--data.path FILE.npz`` (no path: a training set is simulated from the theory). ``--ckpt_path
last`` resumes an interrupted run in the same ``--out``; ``--init_from CKPT`` starts a new run
from a trained surrogate's weights (fine-tuning: fresh optimizer and schedule). The run directory
receives the resolved ``config.yaml``, ``checkpoints/{last,best}.ckpt``, ``metrics.json``,
``environment.json``, CSV logs, PNG plots against the exact theory at held-out θ, and the wandb
run (offline unless ``WANDB_MODE`` says otherwise; ``disabled`` turns it off).
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger

from surrogates.data import TrainingDataModule
from surrogates.errors import InputError
from surrogates.metrics import HELD_OUT_SEED_OFFSET, evaluate_surrogate
from surrogates.models import FAMILIES, Surrogate, get_family
from surrogates.runs import (
    cli_errors,
    default_run_dir,
    is_rank_zero,
    unused_parameters_strategy,
    write_run_files,
)
from surrogates.theory import get_theory
from surrogates.tracking import finish_wandb, per_name, wandb_logger

__all__ = ["main", "SurrogateCLI"]


class SurrogateCLI(LightningCLI):
    """LightningCLI with ``--out`` and ``--ckpt_path``, the theory linked from data to model."""

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
            default=10_000_000,
            help="events per channel for theta_shift_crb (0: skip)",
        )
        parser.link_arguments("data.theory", "model.theory")
        if "grid_size" in inspect.signature(self.model_class).parameters:
            parser.link_arguments("data.grid_size", "model.grid_size")

    def instantiate_trainer(self, **kwargs):  # noqa: ANN003, ANN201
        out = Path(self.config["out"])
        family = self.model_class.family
        # best.ckpt by validation loss; last.ckpt rewritten every epoch (the resume point) whether
        # or not the validation loss improved (save_last=True refreshes it only with a new best);
        # after the user's own --trainer.callbacks, which these kwargs would otherwise replace
        user = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        kwargs["callbacks"] = [
            *(user if isinstance(user, list) else [user]),
            ModelCheckpoint(
                dirpath=out / "checkpoints", filename="best", monitor="val_loss", save_top_k=1
            ),
            ModelCheckpoint(
                dirpath=out / "checkpoints",
                filename="last",
                save_top_k=1,
                enable_version_counter=False,
            ),
        ]
        cfg = self.config.as_dict()
        loggers: list = [CSVLogger(out, name="logs", version="")]
        wandb = wandb_logger(
            out,
            group=family,
            job_type="fit",
            tags=[family, cfg["model"].get("backend"), cfg["data"]["theory"]],
            config={
                "family": family,
                "backend": cfg["model"].get("backend"),
                "theory": cfg["data"]["theory"],
                "seed": cfg["seed_everything"],
                "model": cfg["model"],
                "data": cfg["data"],
                "trainer": {
                    k: cfg["trainer"].get(k)
                    for k in ("max_epochs", "max_steps", "accelerator", "devices", "strategy")
                },
                "eval": cfg["eval"],
            },
        )
        if wandb is not None:
            loggers.append(wandb)
        kwargs["logger"] = loggers
        kwargs["default_root_dir"] = str(out)
        trainer = cfg["trainer"]
        strategy = unused_parameters_strategy(
            trainer.get("strategy"), trainer.get("devices"), trainer.get("num_nodes") or 1
        )
        if not self.model.automatic_optimization and strategy != trainer.get("strategy"):
            kwargs["strategy"] = strategy  # the GAN: critic and generator on separate losses
        return super().instantiate_trainer(**kwargs)


def _expand_shorthand(argv: list[str]) -> list[str]:
    """``--data FILE.npz`` → ``--data.path FILE.npz`` (``--data`` alone would read a YAML)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--data" and i + 1 < len(argv) and argv[i + 1].endswith(".npz"):
            out += ["--data.path", argv[i + 1]]
            i += 2
            continue
        if a.startswith("--data=") and a.endswith(".npz"):
            a = "--data.path=" + a.split("=", 1)[1]
        out.append(a)
        i += 1
    return out


def _init_weights(model: Surrogate, source: str, theory: str) -> None:
    """Copy a trained surrogate's weights (its norm network too, marked fitted) into ``model``."""
    from surrogates.zoo import load_surrogate

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


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        raise InputError(
            f"say which surrogate to fit: python -m surrogates.fit {{{','.join(FAMILIES)}}} [options]"
        )
    family = argv.pop(0)
    model_class = get_family(family)
    argv = _expand_shorthand(argv)
    if "--out" not in " ".join(argv):
        argv += ["--out", default_run_dir(family)]
    if "--ckpt_path" in argv:
        i = argv.index("--ckpt_path")
        if i + 1 < len(argv) and argv[i + 1] == "last":
            out = Path(argv[argv.index("--out") + 1])
            if not (out / "checkpoints" / "last.ckpt").is_file():
                raise InputError(
                    f"--ckpt_path last: no {out}/checkpoints/last.ckpt to resume; check --out"
                )
            argv[i + 1] = str(out / "checkpoints" / "last.ckpt")
    cli = SurrogateCLI(
        model_class,
        TrainingDataModule,
        run=False,
        args=argv,
        save_config_callback=None,
        seed_everything_default=1,
        trainer_defaults={
            "accelerator": "auto",
            "devices": 1,
            "log_every_n_steps": 10,
            "max_epochs": 10,
        },
        parser_kwargs={"prog": f"python -m surrogates.fit {family}", "description": __doc__},
    )
    out = Path(cli.config["out"])
    if is_rank_zero():  # under DDP the other processes write nothing
        out.mkdir(parents=True, exist_ok=True)
        cli.parser.save(cli.config, out / "config.yaml", overwrite=True, skip_none=False)
    model: Surrogate = cli.model
    if cli.config["init_from"]:
        _init_weights(model, cli.config["init_from"], cli.config["data"]["theory"])
    t0 = time.perf_counter()
    cli.trainer.fit(model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
    train_seconds = time.perf_counter() - t0
    if cli.trainer.global_rank != 0:  # under DDP the other processes stop here
        return 0
    which = cli.config["eval"]["checkpoint"]
    if which not in ("best", "last"):
        raise InputError(f"--eval.checkpoint '{which}': choose best or last")
    best = str(out / "checkpoints" / f"{which}.ckpt")
    if Path(best).is_file():
        model = type(model).load_from_checkpoint(best, map_location="cpu")
    else:
        best = ""
    model.eval()
    theory = get_theory(cli.config["data"]["theory"])
    metrics = {
        "model": family,
        "backend": getattr(model, "backend", None),
        "objective": getattr(model, "objective", None),
        "theory": theory.name,
        "train_seconds": train_seconds,
        "epochs": cli.trainer.current_epoch,
        "steps": cli.trainer.global_step,
        "val_loss": float(cli.trainer.callback_metrics.get("val_loss", torch.tensor(float("nan")))),
        "checkpoint": best or None,
        **evaluate_surrogate(
            model,
            theory,
            out,
            n_held_out=cli.config["eval"]["held_out"],
            n_events=cli.config["eval"]["events"],
            seed=int(cli.config["seed_everything"]) + HELD_OUT_SEED_OFFSET,
            shift_events=cli.config["eval"]["shift_events"],
        ),
    }
    config = cli.parser.dump(cli.config, format="yaml", skip_none=False)
    write_run_files(out, {"cli": config}, metrics)
    (out / "config.yaml").write_text(config)
    names = theory.param_names
    finish_wandb(
        cli.trainer.loggers,
        metrics,
        images={"heldout": out / "heldout.png"},
        table=(
            "held_out_fidelity",
            ["point", *names, *(f"shift_{n}" for n in names)],
            [
                [i, *theta, *shift]
                for i, (theta, shift) in enumerate(
                    zip(metrics.get("held_out_theta", []), metrics.get("theta_shift_crb_all", []))
                )
            ],
        ),
        scalars=per_name(metrics, "theta_shift_crb", names)
        | per_name(metrics, "c2st_auc", theory.channels)
        | per_name(metrics, "w1", theory.channels),
    )
    print(f"{family} surrogate trained in {train_seconds:.1f} s; metrics in {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
