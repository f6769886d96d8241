"""What a theory evaluation buys: the flow's fidelity on the test set against its training budget.

    python benchmarks/budget.py [--sizes 2500,5000,10000,20000,40000] [--grids 32,64]
        [--grid-at 20000] [--steps 10650] [--workers 2] [--runs runs/budget]
        [--out runs/benchmarks/budget.json] [--results docs/results]

A user with a slow theory pays per θ evaluated: each θ of a training set is one density table of
G nodes. Per point of the curve:

* a training set of N θ from the prior (`python -m surrogates.simulate training`, seed 1, G nodes
  per θ placed by the adaptive grid, 10 events per θ);
* the shipped flow-zuko recipe trained on it (configs/surrogates/flow.yaml with the zuko backend,
  the root event variable and stratified pdf points, as in checkpoints/train.sh), for the same
  number of optimizer steps whatever N (``--steps``: flow-zuko's 10650, so a point differs from
  another by its data only), the best checkpoint chosen on the set's own validation θ (10%);
* the noise-free θ shift (`theta_shift_expected`: the exact theory fitted to the flow's expected
  histogram) at every θ of the theory's recorded test set (`test_theta`; read only here, to
  report), in σ_CRB of the theory's reference data: max, 95th percentile and median.

Two curves: N at 128 nodes per θ (``--sizes``), and the nodes per θ (``--grids``, beside 128) at N
= ``--grid-at``. The fits run on ``--workers`` local processes (`surrogates.parallel.Engine`, one
torch thread each); a finished point (its ``metrics.json`` and shifts) is read back, not redone,
so a killed run resumes. Prints a table, writes the JSON after each point and, with
``--results``, the page docs/results/budget.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shutil
import sys
import time
from pathlib import Path

# benchmarks/surrogates.py is named like the package: keep this folder off the import path (the
# pages' module, benchmarks/results.py, is imported in main(): the fits' worker processes import
# this file again without it)
HERE = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from surrogates.errors import InputError  # noqa: E402
from surrogates.metrics import (  # noqa: E402
    counts_label,
    reference_counts,
    shift_summary,
    test_set_record,
    theta_shift_expected,
)
from surrogates.parallel import Engine  # noqa: E402
from surrogates.runs import cli_errors, environment, write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402
from surrogates.zoo import load_surrogate  # noqa: E402

RECIPE = [  # flow-zuko's options in checkpoints/train.sh, beside configs/surrogates/flow.yaml
    "--model.backend", "zuko", "--model.event_variable", "root",
    "--model.pdf_points", "stratified",
]  # fmt: skip
EVENTS_PER_PARAM = 10
DATA_SEED = 1


def epochs_for(n_params: int, steps: int, batch: int = 256, val_fraction: float = 0.1) -> int:
    """Epochs of ``n_params`` θ (less the validation share) in batches of ``batch`` closest to
    ``steps`` optimizer steps (the cosine schedule is laid over epochs)."""
    per_epoch = math.ceil((n_params - int(round(n_params * val_fraction))) / batch)
    return max(1, round(steps / per_epoch))


def train_point(shared: dict, task: tuple[int, int]) -> dict:
    """One point: its training set, the flow trained on it, its test-set shifts (a finished
    point's files are read back)."""
    from surrogates.simulate import main as simulate
    from surrogates.training import fit_surrogate

    n, g = task
    runs = Path(shared["runs"])
    done = runs / f"point-{n}-{g}.json"
    epochs = epochs_for(n, shared["steps"])
    if done.is_file():
        row = json.loads(done.read_text())
        if row["epochs"] != epochs or row.get("seed", shared["seed"]) != shared["seed"]:
            raise InputError(
                f"{done} was made with other settings (epochs {row['epochs']}, seed "
                f"{row.get('seed')}); give another --runs folder"
            )
        return row
    data = runs / f"train-{n}-{g}.npz"
    t0 = time.perf_counter()
    if not data.is_file():
        argv = ["training", "--theory", shared["theory"], "--n-params", str(n),
                "--events-per-param", str(EVENTS_PER_PARAM), "--grid-size", str(g),
                "--seed", str(DATA_SEED), "--out", str(data), "--no-progress"]  # fmt: skip
        simulate(argv)
    simulate_s = time.perf_counter() - t0
    out = runs / f"flow-{n}-{g}"
    overrides = [
        "--data", str(data), "--data.theory", shared["theory"], *RECIPE,
        "--trainer.max_epochs", str(epochs), "--eval.shift_events", "0",
        "--seed_everything", str(shared["seed"]),
    ]  # fmt: skip
    if out.exists():  # a fit killed before its metrics: start it again from nothing
        shutil.rmtree(out)
    metrics = fit_surrogate("flow", overrides=overrides, out=out, progress=False)
    theory = get_theory(shared["theory"])
    checkpoint = metrics.get("checkpoint") or str(out / "checkpoints" / "best.ckpt")
    model = load_surrogate(checkpoint, theory=theory.name).eval().double()
    theta = torch.as_tensor(shared["test_theta"], dtype=torch.float64)
    counts = shared["counts"]
    t1 = time.perf_counter()
    shifts = np.stack(
        [
            theta_shift_expected(model, theory, theta[b : b + 1], counts=counts)
            for b in range(len(theta))
        ]
    )
    row = {
        "n_params": n,
        "grid_size": g,
        "seed": shared["seed"],
        "epochs": epochs,
        "steps": metrics.get("steps"),
        "train_seconds": metrics.get("train_seconds"),
        "simulate_seconds": simulate_s,
        "shift_seconds": time.perf_counter() - t1,
        "val_loss": metrics.get("val_loss"),
        # the train seconds' conditions: rows of other runs are read back beside this one's
        "run_date": datetime.date.today().isoformat(),
        "fits_at_a_time": shared["workers"],
        "checkpoint": checkpoint,
        "shifts": shifts.tolist(),
        **shift_summary(shifts),
    }
    write_json(done, row)
    return row


def print_rows(rows: list[dict], names: list[str]) -> None:
    print(
        f"{'θ':>7}{'nodes':>6}{'steps':>7}{'train s':>9}{'max':>7}{'p95':>7}{'median':>8}  max per parameter"
    )
    for r in sorted(rows, key=lambda r: (r["grid_size"], r["n_params"])):
        per = " ".join(f"{n} {v:.2f}" for n, v in zip(names, r["max"], strict=True))
        print(
            f"{r['n_params']:>7}{r['grid_size']:>6}{r['steps'] or 0:>7}{r['train_seconds'] or 0:>9.0f}"
            f"{r['max_all']:>7.2f}{r['p95_all']:>7.2f}{r['median_all']:>8.2f}  {per}"
        )


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{what} takes positive integers, got {text!r}")
    return values


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--theory", default="proxy")
    parser.add_argument(
        "--sizes", default="2500,5000,10000,20000,40000", help="θ per training set (128 nodes)"
    )
    parser.add_argument("--grids", default="32,64", help="nodes per θ at --grid-at θ (beside 128)")
    parser.add_argument("--grid-at", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=10650, help="optimizer steps of every fit")
    parser.add_argument("--seed", type=int, default=1, help="the fits' seed_everything")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", default="runs/budget")
    parser.add_argument("--out", default="runs/benchmarks/budget.json")
    parser.add_argument("--results", default=None, help="write the page into this folder")
    args = parser.parse_args()
    sizes = _ints(args.sizes, "--sizes")
    grids = _ints(args.grids, "--grids") if args.grids else []
    if args.steps < 1 or args.workers < 1 or args.grid_at < 1:
        raise InputError("--steps, --workers and --grid-at must be positive integers")
    if min(grids, default=2) < 2:
        raise InputError(f"--grids takes at least 2 nodes per θ, got {args.grids!r}")
    theory = get_theory(args.theory)
    record = test_set_record(theory)  # before anything is written: a theory with a test set
    counts = reference_counts(theory)
    tasks = [(n, 128) for n in sizes] + [(args.grid_at, g) for g in grids if g != 128]
    tasks = sorted(set(tasks), key=lambda t: -t[0] * t[1])  # the longest first
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    shared = {
        "theory": theory.name,
        "runs": args.runs,
        "steps": args.steps,
        "seed": args.seed,
        "test_theta": np.asarray(record["theta"]).tolist(),
        "counts": counts,
        "workers": args.workers,
    }
    payload = {
        "theory": theory.name,
        "param_names": list(theory.param_names),
        "test_set": {k: record[k] for k in ("id", "sha256", "n_fill", "n_near_face", "stream")},
        "points": len(record["theta"]),
        "reference_counts": counts,
        "unit": counts_label(counts),
        "steps": args.steps,
        "workers": args.workers,
        "recipe": ["configs/surrogates/flow.yaml", *RECIPE],
        "events_per_param": EVENTS_PER_PARAM,
        "data_seed": DATA_SEED,
        "rows": [],
        "environment": environment(),
    }
    print(
        f"{len(tasks)} fits of {args.steps} steps on {args.workers} workers; θ shift in {payload['unit']}"
    )
    with Engine("local", args.workers) as engine:
        for _, row in engine.imap(train_point, shared, tasks):
            payload["rows"].append(row)
            write_json(args.out, payload)  # after each point: a killed run keeps its rows
            print(
                f"  {row['n_params']} θ × {row['grid_size']} nodes: max {row['max_all']:.2f}",
                flush=True,
            )
    payload["rows"].sort(key=lambda r: (r["grid_size"], r["n_params"]))
    print_rows(payload["rows"], list(theory.param_names))
    sys.path.insert(0, str(HERE))
    import results  # noqa: PLC0415 - benchmarks/results.py

    results.publish("budget", payload, args.out, args.results)


if __name__ == "__main__":
    main()
