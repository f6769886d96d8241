"""`python -m surrogates.hpo {flow,gan,vae,vaim} --max-evals N --out DIR`: hyperparameter search.

DeepHyper's centralized Bayesian optimization (``CBO``) proposes configurations; each evaluation
is a real ``python -m surrogates.fit FAMILY`` training (its own process and run directory under
``DIR/evals/``) scored by held-out fidelity: the objective, maximized, is −max ``theta_shift_crb``
(the induced parameter shift of the exact MLE on surrogate events, in σ_CRB of case A; see
`surrogates.metrics`). All evaluations share one training set (``DIR/train.npz``, simulated once
unless ``--data`` is given) and the training budget given here (``--epochs``).

The search space (``SPACE``; the family's YAML in ``configs/surrogates/`` fixes everything else):

    lr            1e-4 … 1e-2, log-uniform         learning rate (Adam)
    weight_decay  1e-7 … 1e-3, log-uniform
    batch_size    64, 128, 256, 512
    scheduler     cosine | none
    optimizer     adam | adamw | sgd (Nesterov momentum 0.9)
    activation    silu | relu | tanh | gelu | elu   (gan, vae, vaim; flow conditioners keep
                                                     each flow library's own activation)
    layers        1 … 3                             hidden layers of the main networks
    width         32, 64, 128, 256                  their width
    flow only:    bins 4 … 16, transforms 1 … 6, backend zuko | nflows | normflows,
                  event_variable logit | probit | unit | root, pdf_points grid | stratified
    gan only:     critic_width 32 … 256
    vae, vaim:    latent 1 … 8

Outputs in ``DIR``: ``results.csv`` (DeepHyper's table: parameters ``p:*``, ``objective``,
metadata ``m:*`` with each run directory, seconds and metrics), ``best.yaml`` (the best
evaluation's resolved config, which ``python -m surrogates.fit FAMILY --config DIR/best.yaml``
accepts unchanged), ``search.png`` (objective per evaluation and the best so far),
``search.json`` (settings, best objective and config, environment). Stopped searches resume with
``--resume``: finished evaluations are read back from ``results.csv`` and count towards
``--max-evals``.

On one machine the evaluations run in DeepHyper's process evaluator (``--workers`` at a time, no
server). On a cluster the same search runs with ``--evaluator mpicomm`` under MPI (rank 0
searches, the other ranks train; ``pip install .[hpo,mpi]``)::

    mpirun -np 17 python -m surrogates.hpo flow --evaluator mpicomm --max-evals 400 --out runs/hpo

or ``--evaluator ray`` (``pip install .[hpo,ray]``): DeepHyper's Ray evaluator, one training per
CPU of the cluster, on a running Ray cluster at ``--address`` (``auto``, ``host:6379`` — e.g. the
one a ``python -m inverse.study --engine ray`` run started, or ``ray start --head`` nodes) or, with
no address, a new local cluster of ``--workers`` CPUs. Each evaluation's row then names the Ray
node that ran it (``m:ray_node``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from surrogates.errors import InputError
from surrogates.models import FAMILIES
from surrogates.resources import config_file, source_checkout
from surrogates.runs import cli_errors, environment
from surrogates.validation import ArgumentParser, check_int, check_seed

__all__ = ["SPACE", "build_problem", "run_evaluation", "run_search", "main"]

ROOT = Path(__file__).resolve().parents[1]  # the repository in a source checkout

# name: (DeepHyper range or choices, prior kind, families) — see the module docstring
SPACE: dict[str, tuple] = {
    "lr": ((1e-4, 1e-2), "log-uniform", FAMILIES),
    "weight_decay": ((1e-7, 1e-3), "log-uniform", FAMILIES),
    "batch_size": ([64, 128, 256, 512], None, FAMILIES),
    "scheduler": (["cosine", "none"], None, FAMILIES),
    "optimizer": (["adam", "adamw", "sgd"], None, FAMILIES),
    "activation": (["silu", "relu", "tanh", "gelu", "elu"], None, ("gan", "vae", "vaim")),
    "layers": ((1, 3), None, FAMILIES),
    "width": ([32, 64, 128, 256], None, FAMILIES),
    "bins": ((4, 16), None, ("flow",)),
    "transforms": ((1, 6), None, ("flow",)),
    "backend": (["zuko", "nflows", "normflows"], None, ("flow",)),
    "event_variable": (["logit", "probit", "unit", "root"], None, ("flow",)),
    "pdf_points": (["grid", "stratified"], None, ("flow",)),
    "critic_width": ([32, 64, 128, 256], None, ("gan",)),
    "latent": ((1, 8), None, ("vae", "vaim")),
}


def build_problem(family: str, backends: Sequence[str] | None = None):  # noqa: ANN201 - HpProblem
    """DeepHyper's `HpProblem` for ``family`` (defaults: the family's shipped YAML)."""
    from deephyper.hpo import HpProblem

    defaults = yaml.safe_load(config_file(f"surrogates/{family}.yaml").read_text())
    model, data = defaults.get("model", {}), defaults.get("data", {})
    hidden = list(model.get("hidden", [128, 128]))
    start = {
        "lr": model.get("lr", 1e-3),
        "weight_decay": max(model.get("weight_decay", 0.0) or 0.0, 1e-7),
        "batch_size": data.get("batch_size", 256),
        "scheduler": model.get("scheduler", "cosine"),
        "optimizer": model.get("optimizer", "adam"),
        "activation": model.get("activation", "silu"),
        "layers": min(max(len(hidden), 1), 3),
        "width": hidden[0] if hidden and hidden[0] in (32, 64, 128, 256) else 128,
        "bins": model.get("bins", 8),
        "transforms": model.get("transforms", 4),
        "backend": model.get("backend", "zuko"),
        "event_variable": model.get("event_variable", "logit"),
        "pdf_points": model.get("pdf_points", "grid"),
        "critic_width": (model.get("critic_hidden") or [128])[0],
        "latent": model.get("latent", 2),
    }
    problem = HpProblem()
    for name, (values, prior, families) in SPACE.items():
        if family not in families:
            continue
        if name == "backend" and backends:
            values = list(backends)
        default = start[name]
        if isinstance(values, list) and default not in values:
            default = values[0]
        if isinstance(values, tuple):
            lo, hi = values
            default = min(max(default, lo), hi)
        spec = (*values, prior) if prior else values
        problem.add_hyperparameter(spec, name, default_value=default)
    return problem


def _overrides(family: str, p: dict) -> list[str]:
    """``surrogates.fit`` options for one configuration ``p``."""
    hidden = [int(p["width"])] * int(p["layers"])
    args = [
        "--model.lr",
        repr(float(p["lr"])),
        "--model.weight_decay",
        repr(float(p["weight_decay"])),
    ]
    args += [
        "--model.scheduler",
        str(p["scheduler"]),
        "--data.batch_size",
        str(int(p["batch_size"])),
    ]
    args += ["--model.hidden", json.dumps(hidden), "--model.optimizer", str(p["optimizer"])]
    if "activation" in p:
        args += ["--model.activation", str(p["activation"])]
    if family == "flow":
        args += [
            "--model.bins",
            str(int(p["bins"])),
            "--model.transforms",
            str(int(p["transforms"])),
        ]
        args += ["--model.backend", str(p["backend"])]
        args += ["--model.event_variable", str(p["event_variable"])]
        args += ["--model.pdf_points", str(p["pdf_points"])]
    if family == "gan":
        args += ["--model.critic_hidden", json.dumps([int(p["critic_width"])] * int(p["layers"]))]
    if family in ("vae", "vaim"):
        args += ["--model.latent", str(int(p["latent"]))]
    return args  # fmt: skip


def run_evaluation(job, family: str, out: str, budget: dict) -> dict | str:  # noqa: ANN001 - a DeepHyper job
    """One evaluation: train with ``surrogates.fit`` in a child process, score its fidelity."""
    params = dict(job.parameters)
    job_id = str(job.id).split(".")[-1]
    run_dir = (
        Path(out) / "evals" / f"{int(job_id):04d}"
        if job_id.isdigit()
        else Path(out) / "evals" / job_id
    )
    cmd = [sys.executable, "-m", "surrogates.fit", family]
    cmd += ["--config", str(config_file(f"surrogates/{family}.yaml"))]
    cmd += ["--data.path", budget["data"], "--trainer.max_epochs", str(budget["epochs"])]
    cmd += ["--trainer.enable_progress_bar", "false", "--seed_everything", str(budget["seed"])]
    cmd += [
        "--eval.held_out",
        str(budget["held_out"]),
        "--eval.shift_events",
        str(budget["shift_events"]),
    ]
    cmd += ["--eval.events", str(budget["events"]), *budget.get("extra", [])]
    cmd += [*_overrides(family, params), "--out", str(run_dir)]  # fmt: skip
    if run_dir.exists():  # a job cut short by a stopped search, rerun under its id on --resume
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    env = os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.setdefault("WANDB_MODE", "offline")
    cwd = ROOT if source_checkout() else Path(out)  # an installed package: never site-packages
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "fit.log").write_text(done.stdout + done.stderr)
    metrics_path = run_dir / "metrics.json"
    if done.returncode != 0 or not metrics_path.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return f"F_fit_failed: {last}"
    metrics = json.loads(metrics_path.read_text())
    # a module-2 with no density has only the density-free shift (surrogates.metrics)
    shift_key = "theta_shift_crb" if metrics.get("theta_shift_crb") else "theta_shift_surrogate_crb"
    shifts = np.asarray(metrics.get(shift_key) or [np.nan], dtype=float)
    if not np.all(np.isfinite(shifts)):  # a failed fit of one parameter must not look good
        return "F_no_fidelity"
    shift = float(shifts.max())
    return {
        "objective": -float(shift),
        "metadata": {
            "run_dir": str(run_dir),
            "seconds": seconds,
            "theta_shift_crb_max": float(shift),
            "c2st_auc_max": float(
                np.max(metrics.get("c2st_auc") or metrics.get("c2st_auc_generator") or [np.nan])
            ),
            "norm_error": float(metrics.get("norm_error", np.nan)),
            "val_loss": float(metrics.get("val_loss", np.nan)),
            **_ray_node(),
        },
    }


async def _run_evaluation_serial(job, **kwargs: object) -> dict | str:  # noqa: ANN001
    """`run_evaluation` for DeepHyper's serial evaluator, which awaits a coroutine."""
    return run_evaluation(job, **kwargs)


def _ray_node() -> dict:
    """``{"ray_node": id}`` of the Ray node this runs on (in a Ray worker), else nothing."""
    ray = sys.modules.get("ray")  # never imported here: only a Ray worker has it loaded
    if ray is None or not ray.is_initialized():
        return {}
    return {"ray_node": ray.get_runtime_context().get_node_id()}


def _write_best(results, out: Path) -> dict | None:  # noqa: ANN001 - pandas DataFrame
    """``best.yaml`` (the best evaluation's config, runnable as is) and the best row."""
    import pandas as pd

    obj = pd.to_numeric(results.get("objective"), errors="coerce")
    if obj is None or obj.notna().sum() == 0:
        return None
    row = results.loc[obj.idxmax()]
    run_dir = Path(str(row["m:run_dir"]))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["out"] = None  # surrogates.fit picks a new run directory (or --out)
    config["ckpt_path"] = None
    with open(out / "best.yaml", "w") as f:
        f.write(f"# best of {len(results)} evaluations: objective {float(row['objective']):.4g}"
                f" (−max theta_shift_crb), run {run_dir}\n")  # fmt: skip
        yaml.safe_dump(config, f, sort_keys=False)
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def _plot(results, path: Path) -> None:  # noqa: ANN001 - pandas DataFrame
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    obj = pd.to_numeric(results["objective"], errors="coerce").to_numpy()
    shift = -obj
    k = np.arange(1, len(shift) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ok = np.isfinite(shift)
    ax.plot(k[ok], shift[ok], "o", ms=4, label="evaluation")
    best = np.fmin.accumulate(np.where(ok, shift, np.inf))
    ax.step(k[np.isfinite(best)], best[np.isfinite(best)], where="post", label="best so far")
    if (~ok).any():
        ax.plot(k[~ok], np.full((~ok).sum(), np.nanmax(shift) if ok.any() else 1), "x", c="r",
                label="failed")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("max θ shift (σ_CRB, case A)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_search(
    family: str,
    out: str | Path,
    max_evals: int,
    *,
    data: str | None = None,
    epochs: int = 10,
    evaluator: str = "process",
    workers: int = 1,
    address: str | None = None,
    seed: int = 1,
    held_out: int = 3,
    shift_events: int = 1_000_000,
    events: int = 20_000,
    training: dict | None = None,
    backends: Sequence[str] | None = None,
    resume: bool = False,
    extra: Sequence[str] = (),
) -> dict:
    """Run (or resume) a search; returns the summary written to ``out/search.json``.

    ``workers``: evaluations at a time (process, thread), or with ``evaluator="ray"`` and no
    ``address`` the size of a new local Ray cluster; ``address``: a running Ray cluster for the
    ray evaluator (it runs one evaluation per CPU of that cluster).
    """
    try:
        from deephyper.evaluator import Evaluator
        from deephyper.hpo import CBO
    except ImportError:
        raise InputError(
            "surrogates.hpo needs DeepHyper: pip install 'surrogate-zoo[hpo]' (or pip install deephyper)"
        ) from None
    if family not in FAMILIES:
        raise InputError(
            f"unknown surrogate family '{family}'; choose one of {', '.join(FAMILIES)}"
        )
    if max_evals < 1:
        raise InputError(f"--max-evals must be positive, got {max_evals}")
    if address is not None and evaluator != "ray":
        raise InputError("--address names a Ray cluster; pass it with --evaluator ray")
    if evaluator == "ray":
        try:
            import ray  # noqa: F401 - DeepHyper's Ray evaluator needs it
        except ImportError:
            raise InputError(
                "--evaluator ray needs Ray: pip install 'surrogate-zoo[ray]'"
            ) from None
        if address is not None:
            from surrogates.parallel import check_ray_address

            check_ray_address(address)
    out = Path(out).resolve()
    if (out / "results.csv").is_file() and not resume:
        raise InputError(
            f"{out} already holds a search; pass --resume to continue it or choose another --out"
        )
    if resume and not (out / "results.csv").is_file():
        raise InputError(f"--resume: no {out / 'results.csv'} to continue from; check --out")
    if data is not None:
        _grid_size(data)  # a given training set is checked before anything is written
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = str(out / "train.npz")
        if not Path(data).is_file():
            from surrogates.data import simulate_training
            from surrogates.theory import get_theory

            t = dict(theory="proxy", n_params=4000, events_per_param=10, grid_size=128, seed=seed)
            t.update(training or {})
            ts = simulate_training(get_theory(t.pop("theory")), **t)
            ts.save(data)
    grid_size = _grid_size(data)
    extra = ["--data.grid_size", str(grid_size), *extra]
    budget = dict(data=str(Path(data).resolve()), epochs=epochs, seed=seed, held_out=held_out,
                  shift_events=shift_events, events=events, extra=list(extra))  # fmt: skip
    problem = build_problem(family, backends)
    method_kwargs: dict = {
        "run_function_kwargs": {"family": family, "out": str(out), "budget": budget}
    }
    if evaluator in ("process", "thread", "serial"):
        method_kwargs["num_workers"] = workers
    if evaluator == "ray":  # one single-thread training per CPU: a joined cluster's, or `workers`
        method_kwargs |= {"address": address, "num_cpus_per_task": 1, "include_dashboard": False}
        if address is None:
            method_kwargs["num_cpus"] = workers
    t0 = time.perf_counter()
    try:
        run = _run_evaluation_serial if evaluator == "serial" else run_evaluation
        created = Evaluator.create(run, method=evaluator, method_kwargs=method_kwargs)
    except (ConnectionError, TimeoutError) as err:  # ray.init of an address that does not answer
        if evaluator != "ray":
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise InputError(
            f"cannot reach the Ray cluster at '{address}' ({first}); start it first or check "
            "--address"
        ) from None
    with created as ev:
        if evaluator == "ray":  # the cluster's CPUs, one evaluation each
            workers = int(ev.num_workers)
        if getattr(ev, "is_master", True):
            search = CBO(problem, random_state=seed, log_dir=str(out), checkpoint_restart=resume,
                         n_initial_points=min(max(2 * workers, 4), max_evals))  # fmt: skip
            results = search.search(ev, max_evals=max_evals, max_evals_strict=True)
        else:  # an MPI worker rank: it evaluated jobs until the search ended
            return {}
    best = _write_best(results, out)
    _plot(results, out / "search.png")
    summary = {
        "family": family,
        "evaluations": len(results),
        "failed": int(results["objective"].astype(str).str.startswith("F").sum()),
        "seconds": time.perf_counter() - t0,
        "budget": budget,
        "evaluator": evaluator,
        "workers": workers,
        "best": best,
        "environment": environment(),
    }
    (out / "search.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _grid_size(data: str | Path) -> int:
    """The x-grid size of a training set (the models' grid must be the same)."""
    if not Path(data).is_file():
        raise InputError(
            f"--data {data}: no such training set; make one with python -m surrogates.simulate training"
        )
    try:
        with np.load(data, allow_pickle=False) as arrays:
            return int(arrays["grid"].shape[-2])  # (G, d) shared or (M, G, 1) per θ
    except (OSError, ValueError, KeyError, EOFError):
        raise InputError(
            f"--data {data} is not a training set (.npz with a 'grid'); make one with "
            "python -m surrogates.simulate training"
        ) from None


def _check_args(args: argparse.Namespace) -> None:
    """Every number in range and every path usable, before the search writes anything."""
    check_int("--max-evals", args.max_evals)
    check_int("--epochs", args.epochs)
    check_int("--workers", args.workers)
    check_seed("--seed", args.seed)
    check_int("--held-out", args.held_out)
    check_int("--shift-events", args.shift_events, 0)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file; give a folder for the search")
    if args.data is not None and not Path(args.data).is_file():
        raise InputError(
            f"--data '{args.data}' not found; simulate one with python -m surrogates.simulate training"
        )


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m surrogates.hpo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("--max-evals", type=int, required=True, help="evaluations in all")
    parser.add_argument("--out", required=True, help="search directory")
    parser.add_argument("--data", default=None, help="training set (.npz); default: simulate one")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per evaluation")
    parser.add_argument(
        "--evaluator", default="process", choices=["process", "thread", "serial", "mpicomm", "ray"]
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="evaluations at a time (process); ray: a new local cluster's CPUs",
    )
    parser.add_argument(
        "--address", default=None, help="ray: a running Ray cluster (auto, host:port)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--held-out", type=int, default=3, help="held-out θ per evaluation")
    parser.add_argument(
        "--shift-events", type=int, default=1_000_000, help="events for theta_shift_crb"
    )
    parser.add_argument("--backends", nargs="*", default=None, help="flow backends to search")
    parser.add_argument("--resume", action="store_true", help="continue the search in --out")
    args, extra = parser.parse_known_args(argv)
    if any(not a.startswith("--") for a in extra[::2]):
        raise InputError(f"unrecognized arguments: {' '.join(extra)}")
    _check_args(args)
    s = run_search(args.family, args.out, args.max_evals, data=args.data, epochs=args.epochs,
                   evaluator=args.evaluator, workers=args.workers, address=args.address,
                   seed=args.seed,
                   held_out=args.held_out, shift_events=args.shift_events, backends=args.backends,
                   resume=args.resume, extra=extra)  # fmt: skip
    if not s:
        return 0
    best = s["best"] or {}
    print(f"{s['evaluations']} evaluations ({s['failed']} failed) in {s['seconds']:.0f} s")
    if best:
        params = {k[2:]: v for k, v in best.items() if k.startswith("p:")}
        print(f"best: max theta_shift_crb {-float(best['objective']):.3g} with {params}")
        print(
            f"best config: {Path(args.out) / 'best.yaml'} (python -m surrogates.fit {args.family} --config it)"
        )
    print(f"results: {Path(args.out) / 'results.csv'}, plot: {Path(args.out) / 'search.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
