"""`python -m inverse.fit`: recover θ from observed events with the outer GAN.

    python -m inverse.fit --config configs/inverse/proxy.yaml --events obs.npz --source exact --out DIR
    python -m inverse.fit --events obs.npz --source flow-zuko          # a shipped surrogate
    python -m inverse.fit --events obs.npz --source runs/flow/checkpoints/best.ckpt --resume

``--source`` is ``exact`` (the theory and its differentiable inverse-CDF sampler) or a trained
surrogate (a zoo name or a ``.ckpt`` path); its theory and prior box must be the data's. The run
directory receives ``metrics.json`` (params_mean, params_std, params_true, crb_std, pull, the MLE on
the same data for comparison, seconds, steps), ``params.npz`` (θ of every replica and the traces),
``traces.png``, ``curves.png``, ``events.png``, the resolved ``config.yaml``, ``environment.json``,
``checkpoints/last.ckpt`` (``--resume`` continues from it), CSV logs and the wandb run (offline
unless ``WANDB_MODE`` says otherwise).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from inverse.gan import OuterGAN
from inverse.plots import plot_curves, plot_events, plot_traces
from surrogates.data import ObservedData, event_sampler, read_events
from surrogates.detector import make_detector
from surrogates.ensemble import surrogate_share
from surrogates.errors import InputError
from surrogates.likelihood import (
    FoldedModel,
    crb_std,
    fisher_information,
    fit_mle,
    negative_log_likelihood,
    nll_excess,
)
from surrogates.runs import (
    cli_errors,
    default_run_dir,
    is_rank_zero,
    unused_parameters_strategy,
    write_run_files,
)
from surrogates.runs import load_config as read_config
from surrogates.theory import Theory, get_theory
from surrogates.tracking import finish_wandb, per_name, wandb_logger

__all__ = ["main", "DEFAULTS", "load_config", "make_source", "run_outer_gan", "format_table"]

DEFAULTS: dict = {
    "theory": "proxy",
    "source": "exact",
    "seed": 0,
    "steps": 3000,
    "replicas": 16,
    "data_replicas": 1,  # replicas on the observed data itself, θ = their mean; the rest bootstrap
    "events_per_step": 256,
    "average_last": 0.3,
    "compare_mle": True,
    "detector": None,
    "gan": {
        "lr_g": 6e-3,
        "lr_g_events": 15000,
        "lr_d": 1e-3,
        "d_steps": 1,
        "d_lr_floor": 1.0,
        "g_lr_floor": 0.01,
        "d_hidden": [32, 32],
        "shared": False,
        "g_latent": 4,
        "g_hidden": [32],
        "norm_weight": 1.0,
        "inset": 1e-3,
        "box_map": "sigmoid",
        "trace_every": 10,
        "precondition": False,
        "precondition_at": 0.1,
        "precondition_scale": "geometric",
        "precondition_diagonal": False,
        "d_dtype": "float64",
    },
    "trainer": {"accelerator": "auto", "devices": 1, "strategy": "auto", "checkpoint_every": 250},
}


def load_config(path: str | Path | None) -> dict:
    """DEFAULTS updated by a YAML file; unknown keys and malformed files get one-line errors."""
    return read_config(path, DEFAULTS, "configs/inverse/proxy.yaml")


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


def _trace_average(trace: np.ndarray, fraction: float) -> np.ndarray:
    """Mean θ per replica over the last ``fraction`` of the recorded trace (Polyak averaging)."""
    k0 = min(int(len(trace) * (1 - fraction)), len(trace) - 1)
    return trace[k0:].mean(0)


def run_outer_gan(
    theory: Theory,
    data: ObservedData,
    source,  # noqa: ANN001 - EventSource
    cfg: dict,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train the outer GAN on ``data`` through ``source`` and write the run directory.

    Returns the metrics dictionary (also written to ``out/metrics.json``).
    """
    out = Path(out)
    if is_rank_zero():  # under DDP the other processes write nothing
        out.mkdir(parents=True, exist_ok=True)
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise InputError(f"--resume: no {last} to continue from; check --out")
    if not 0 < cfg["average_last"] <= 1:
        raise InputError(f"average_last must be in (0, 1], got {cfg['average_last']}")
    if cfg["replicas"] < 1 or cfg["steps"] < 1 or cfg["events_per_step"] < 1:
        raise InputError("replicas, steps and events_per_step must be positive")
    k = cfg["data_replicas"]
    if not 1 <= k <= cfg["replicas"] or (k > 1 and cfg["replicas"] - k < 2):
        raise InputError(
            f"data_replicas {k} with replicas {cfg['replicas']}: need 1 ≤ data_replicas and at "
            "least 2 bootstrap replicas beside them; raise replicas or lower data_replicas"
        )
    pl.seed_everything(cfg["seed"], verbose=False)
    gan_cfg = dict(cfg["gan"])
    # the generator's steps must be small against σ_CRB ∝ 1/√N: data larger than lr_g_events
    # (case B) get lr_g scaled by √(lr_g_events / N); smaller data keep lr_g (faster is unstable)
    n_events = int(data.counts.sum())
    gan_cfg["lr_g"] *= min(1.0, (gan_cfg.pop("lr_g_events") / n_events) ** 0.5)
    precondition = gan_cfg.pop("precondition", False)
    detector = check_detector(cfg.get("detector"), theory, data)
    folded = FoldedModel(theory, detector) if detector is not None else None

    def covariance(theta: np.ndarray) -> np.ndarray:
        """The Cramér–Rao covariance for these counts (finite differences for black boxes)."""
        if folded is not None:
            info = folded.fisher_information(theta, data.counts)
        else:
            info = fisher_information(theory, theta, data.counts)
        return torch.linalg.pinv(info).numpy()

    def bound(theta: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if folded is not None:
            return folded.crb_std(theta, counts)
        return crb_std(theory, theta, counts)

    ensemble = source.n_members > 1
    members = None
    if ensemble:  # the K data replicas through the mixture, replica r ≥ K through member r−K mod M
        if cfg["replicas"] < 2 * source.n_members + k:
            raise InputError(
                f"an ensemble of {source.n_members} surrogates needs replicas ≥ "
                f"{2 * source.n_members + k} (2 per member, plus the data) to split the surrogates' "
                "share of the uncertainty; raise --replicas"
            )
        members = [-1] * k + [(r - k) % source.n_members for r in range(k, cfg["replicas"])]
    model = OuterGAN(
        source,
        data,
        theory.prior_low,
        theory.prior_high,
        theory.param_names,
        theory.x_low,
        theory.x_high,
        replicas=cfg["replicas"],
        data_replicas=k,
        events_per_step=cfg["events_per_step"],
        steps=cfg["steps"],
        seed=cfg["seed"],
        source_members=members,
        covariance=covariance if precondition else None,
        detector=detector,
        **gan_cfg,
    )
    loggers: list = [CSVLogger(out, name="logs", version="")]
    wandb = wandb_logger(
        out,
        group="inverse",
        job_type="outer-gan",
        tags=["inverse", theory.name, str(cfg["source"]).split("/")[-1]],
        config=cfg,
    )
    if wandb is not None:
        loggers.append(wandb)
    accelerator = cfg["trainer"]["accelerator"]
    if source.is_exact and accelerator == "auto":
        accelerator = "cpu"  # the exact theory's tensors live on the CPU (and it is cheap there)
    # the outer GAN steps discriminators and generator on separate losses (manual optimization)
    strategy = unused_parameters_strategy(cfg["trainer"]["strategy"], cfg["trainer"]["devices"])
    trainer = pl.Trainer(
        max_steps=model.trainer_steps,
        max_epochs=1,
        accelerator=accelerator,
        devices=cfg["trainer"]["devices"],
        strategy=strategy,
        use_distributed_sampler=False,  # under DDP every process runs all the steps
        logger=loggers,
        callbacks=[
            ModelCheckpoint(
                dirpath=out / "checkpoints",
                filename="last",
                every_n_train_steps=cfg["trainer"]["checkpoint_every"] * (1 + model.d_steps),
                save_top_k=1,
                enable_version_counter=False,
            )
        ],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=20,
        default_root_dir=str(out),
    )
    # Lightning warns that manual-optimization checkpoints hold the state after the step: that
    # is the state a resumed run needs
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    steps = torch.utils.data.DataLoader(range(cfg["steps"]), batch_size=None)
    t0 = time.perf_counter()
    trainer.fit(model, steps, ckpt_path=str(last) if resume else None)
    seconds = time.perf_counter() - t0
    trainer.save_checkpoint(last)
    if trainer.global_rank != 0:  # under DDP the other processes stop here
        return {}

    trace = np.asarray(model.trace)  # (K, R, P)
    trace_steps = np.asarray(model.trace_steps)
    final = _trace_average(trace, cfg["average_last"])  # (R, P)
    mean = final[:k].mean(0)
    boot = final[k:]
    std = boot.std(0, ddof=1) if len(boot) > 1 else np.full(len(mean), np.nan)
    counts = data.expected_counts if data.expected_counts is not None else data.counts
    truth = data.theta_true
    crb = bound(truth if truth is not None else mean, counts)
    metrics: dict = {
        "method": "outer-gan",
        "source": str(cfg["source"]),
        "theory": theory.name,
        "param_names": list(theory.param_names),
        "params_mean": mean,
        "params_std": std,
        "params_true": truth,
        "crb_std": crb,
        "crb_at": "truth" if truth is not None else "fit",
        "pull": None if truth is None else (mean - truth) / crb,
        "std_over_crb": std / crb,
        "counts": data.counts,
        "detector": None if detector is None else detector.describe(),
        "replicas": cfg["replicas"],
        "lr_g_used": gan_cfg["lr_g"],
        "seconds": seconds,
        "steps": int(model.step_count),
    }
    if ensemble:
        split = surrogate_share(boot, members[k:])
        metrics["ensemble"] = {"members": source.names, **split}
    mle = None
    if cfg["compare_mle"]:
        mle = fit_mle(theory, data, start=mean) if folded is None else folded.fit(data, start=mean)
        metrics["mle"] = {"params": mle.theta, "std": mle.std, "seconds": mle.seconds}
        if folded is not None:
            metrics["mle"]["kind"] = "binned, folded through the detector"
        metrics["gan_minus_mle_crb"] = (mean - mle.theta) / crb
        # the likelihood's own yardstick, valid where it is not Gaussian: −log L(θ_GAN) − min;
        # √(2Δ) is the Mahalanobis distance for a Gaussian one (≥ each parameter's offset in σ)
        nll = (
            (lambda t: negative_log_likelihood(theory, t, data))
            if folded is None
            else folded.nll_function(folded.histogram(data.events), data.exposure)
        )
        metrics["gan_minus_mle_nll"] = nll_excess(nll, mean, mle, theory.dtype)
    np.savez(
        out / "params.npz",
        theta=final,
        param_names=np.asarray(theory.param_names),
        trace=trace,
        trace_steps=trace_steps,
        **({"theta_true": truth} if truth is not None else {}),
    )
    write_run_files(out, cfg, metrics)
    plot_traces(
        out / "traces.png",
        list(theory.param_names),
        trace_steps,
        trace,
        truth,
        crb,
        None if mle is None else mle.theta,
    )
    plot_curves(out / "curves.png", theory, boot if len(boot) > 1 else final, truth)
    with torch.no_grad():
        gen = source.sample(torch.as_tensor(mean).unsqueeze(0), 100_000)
        weights = None
        if detector is not None:
            gen, w = detector.apply(gen)
            weights = [wc[0].numpy() for wc in w]
    plot_events(out / "events.png", theory, data, [g[0].double().numpy() for g in gen], weights)
    names = theory.param_names
    columns = ["param", "truth", "mean", "std", "crb_std", "pull", "mle", "gan_minus_mle_crb"]
    per_param = {
        "truth": metrics.get("params_true"),
        "mean": metrics["params_mean"],
        "std": metrics["params_std"],
        "crb_std": metrics.get("crb_std"),
        "pull": metrics.get("pull"),
        "mle": (metrics.get("mle") or {}).get("params"),
        "gan_minus_mle_crb": metrics.get("gan_minus_mle_crb"),
    }
    finish_wandb(
        loggers,
        metrics | {"seconds": seconds},
        images={name: out / f"{name}.png" for name in ("traces", "curves", "events")},
        table=(
            "recovered_theta",
            columns,
            [
                [n] + [None if per_param[c] is None else per_param[c][i] for c in columns[1:]]
                for i, n in enumerate(names)
            ],
        ),
        scalars={
            k: v
            for key in ("params_mean", "params_std", "pull", "crb_std", "gan_minus_mle_crb")
            for k, v in per_name(metrics, key, names).items()
        },
    )
    return metrics


def format_table(metrics: dict, title: str = "") -> str:
    """Truth, GAN θ ± σ, σ_CRB, pull and the MLE on the same data, as aligned text."""
    lines = [title] if title else []
    mle = metrics.get("mle")
    head = f"{'param':>6} {'truth':>9} {'GAN':>9} {'± σ':>8} {'σ_CRB':>8} {'pull':>6}"
    if mle:
        head += f" {'MLE':>9} {'(GAN−MLE)/σ_CRB':>16}"
    ens = metrics.get("ensemble")
    if ens:
        head += f" {'σ_surr':>9} {'share':>9}"
    lines.append(head)
    truth = metrics["params_true"]
    for i, name in enumerate(metrics["param_names"]):
        t = f"{truth[i]:9.4f}" if truth is not None else f"{'?':>9}"
        p = f"{metrics['pull'][i]:6.2f}" if metrics["pull"] is not None else f"{'':>6}"
        row = (
            f"{name:>6} {t} {metrics['params_mean'][i]:9.4f} {metrics['params_std'][i]:8.4f} "
            f"{metrics['crb_std'][i]:8.4f} {p}"
        )
        if mle:
            row += f" {mle['params'][i]:9.4f} {metrics['gan_minus_mle_crb'][i]:16.2f}"
        if ens:
            row += f" {ens['surrogate_std'][i]:9.4f} {ens['surrogate_share'][i]:9.2f}"
        lines.append(row)
    if ens:
        lines.append(
            f"ensemble of {len(ens['members'])} ({', '.join(ens['members'])}): σ_surr is the "
            "members' disagreement, σ_stat the spread within one member's replicas, "
            "share = σ_surr² / (σ_surr² + σ_stat²)"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inverse.fit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=None, help="YAML (default: built-in defaults)")
    parser.add_argument("--events", required=True, help="observed events (.npz or .csv)")
    parser.add_argument(
        "--source",
        default=None,
        help="exact, a zoo name or a .ckpt path; several, comma-separated: an ensemble",
    )
    parser.add_argument("--theory", default=None, help="theory of the data (default: config)")
    parser.add_argument("--steps", type=int, default=None, help="generator updates")
    parser.add_argument("--replicas", type=int, default=None, help="data replicas (≥ 3 for σ)")
    parser.add_argument("--events-per-step", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default=None, help="run directory (default runs/inverse-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue from --out's last.ckpt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--trainer.strategy", dest="strategy", default=None, help="e.g. ddp")
    parser.add_argument("--trainer.devices", dest="devices", type=int, default=None)
    return parser


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(args.config)
    for key in ("source", "theory", "steps", "replicas", "events_per_step", "seed"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    for key in ("strategy", "devices"):
        if getattr(args, key) is not None:
            cfg["trainer"][key] = getattr(args, key)
    theory = get_theory(cfg["theory"])
    data = read_events(args.events, theory)
    source = make_source(str(cfg["source"]), theory)
    out = Path(args.out or default_run_dir("inverse"))
    cfg["events"] = str(args.events)
    metrics = run_outer_gan(theory, data, source, cfg, out, args.resume, not args.no_progress)
    if not metrics:  # a DDP process other than rank 0
        return 0
    title = (
        f"outer GAN, source {cfg['source']}, counts {data.counts.tolist()}: "
        f"{metrics['steps']} steps, {metrics['seconds']:.0f} s"
    )
    print(format_table(metrics, title))
    print(f"plots (traces.png, curves.png, events.png), params.npz and metrics.json in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
