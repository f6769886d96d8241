"""Speed-up of a training set built on 2 workers over 1, and what a kill -9 mid-build loses.

    python benchmarks/datasets.py [--theta 80] [--sleep 0.1] [--events 16] [--chunk 4]
        [--repeats 2] [--out runs/benchmarks/datasets.json] [--results docs/results]

The module-2 is a slow event generator: a NumPy toy (two channels) that sleeps ``--sleep`` s
per call, as an external program waiting on its own computation would. Each build is
`surrogates.datasets.build_training_set` from scratch (chunks written, merged, parts removed);
the wall time is the median over ``--repeats``. The first 2-worker build of the process also
starts the fork server that later pools reuse: it is timed apart ("cold"). Then, for 1 and 2
workers, a build in a child process is killed with SIGKILL once a third of its chunks exist and
run again: the chunks lost are those whose rows were simulated but not saved. Prints a table and
writes the JSON to ``--out`` and, with ``--results``, ``datasets.json`` and ``datasets.md`` there.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

try:  # benchmarks/results.py (the docs/results pages); it takes this folder off sys.path
    import results
except ImportError:  # a worker process re-importing this script: the folder is off sys.path
    results = None

from surrogates.data import load_training
from surrogates.datasets import build_training_set, parts_dir
from surrogates.generators import CallableGenerator, seed_for
from surrogates.runs import environment, write_json


class SlowToy:
    """g(θ, n, seed): a pause, then NumPy draws; each finished call's seed appended to ``log``."""

    def __init__(self, sleep: float, log: str | None = None) -> None:
        self.sleep, self.log = sleep, log

    def __call__(self, theta: np.ndarray, n: int, seed: int) -> tuple[list, np.ndarray]:
        time.sleep(self.sleep)
        rng = np.random.default_rng(seed)
        a = 0.5 + 0.2 * np.tanh(theta[0] + 0.3 * rng.standard_normal(n))
        b = rng.uniform(0.0, 1.0, n) ** (1.0 + theta[1])
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{seed}\n")
        return [a[:, None], b[:, None]], np.array([1.0 + theta[0], 2.0 + theta[1]])


def slow_toy(sleep: float, log: str | None = None) -> CallableGenerator:
    return CallableGenerator(
        SlowToy(sleep, log), "slow-toy", ["t0", "t1"], ["a", "b"], [0.0, 0.0], [1.0, 2.0],
        [0.0], [1.0],
    )  # fmt: skip


def timed_build(args, workers: int, out: Path) -> float:
    """Seconds of one build from scratch."""
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    build_training_set(
        slow_toy(args.sleep), args.theta, args.events, args.seed, out,
        chunk=args.chunk, workers=workers, progress=False,
    )  # fmt: skip
    return time.perf_counter() - t0


def _killed_build(args, workers: int, out: str, log: str) -> None:
    build_training_set(
        slow_toy(args.sleep, log), args.theta, args.events, args.seed, out,
        chunk=args.chunk, workers=workers, progress=False,
    )  # fmt: skip


def kill_and_resume(args, workers: int, tmp: Path, reference: Path) -> dict:
    """Kill a build (SIGKILL) once a third of its chunks exist, rerun it, count what was lost."""
    out, log = tmp / f"killed-{workers}.npz", tmp / f"calls-{workers}.log"
    n_chunks = -(-args.theta // args.chunk)
    child = multiprocessing.get_context("spawn").Process(
        target=_killed_build, args=(args, workers, str(out), str(log))
    )
    child.start()
    parts = parts_dir(out)
    while len(list(parts.glob("chunk-*.npz"))) < max(1, n_chunks // 3) and child.is_alive():
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    kept = {int(p.stem.split("-")[1]) for p in parts.glob("chunk-*.npz")}
    row_of = {seed_for(args.seed, i): i for i in range(args.theta)}
    done_rows = {row_of[int(s)] for s in log.read_text().split()} if log.exists() else set()
    lost = {i // args.chunk for i in done_rows} - kept
    log.write_text("")
    t0 = time.perf_counter()
    build_training_set(
        slow_toy(args.sleep, str(log)), args.theta, args.events, args.seed, out,
        chunk=args.chunk, workers=workers, progress=False,
    )  # fmt: skip
    redone = {row_of[int(s)] for s in log.read_text().split()}
    a, b = load_training(out), load_training(reference)
    return {
        "workers": workers,
        "chunks": n_chunks,
        "kept_at_kill": len(kept),
        "lost_chunks": len(lost),
        "rows_redone": len(redone),
        "redid_only_unfinished": redone
        == set(range(args.theta)) - {i for i in range(args.theta) if i // args.chunk in kept},
        "resume_seconds": time.perf_counter() - t0,
        "same_as_uninterrupted": bool(
            np.array_equal(a.events, b.events) and np.array_equal(a.norms, b.norms)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--theta", type=int, default=80, help="θ rows (one generator call each)")
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds per generator call")
    parser.add_argument("--events", type=int, default=16, help="events per channel per θ")
    parser.add_argument("--chunk", type=int, default=4, help="θ per chunk")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="runs/benchmarks/datasets.json")
    parser.add_argument(
        "--results", default="docs/results", help="folder for datasets.json and datasets.md"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    try:
        cold = timed_build(args, 2, tmp / "cold.npz")
        rows = []
        for workers in (1, 2):
            times = [
                timed_build(args, workers, tmp / f"w{workers}.npz") for _ in range(args.repeats)
            ]
            rows.append({"workers": workers, "seconds": statistics.median(times), "runs": times})
        for row in rows:
            row["speedup"] = rows[0]["seconds"] / row["seconds"]
        kills = [kill_and_resume(args, w, tmp, tmp / "w1.npz") for w in (1, 2)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    payload = {
        "theta": args.theta,
        "sleep": args.sleep,
        "events_per_theta": args.events,
        "chunk": args.chunk,
        "repeats": args.repeats,
        "serial_sleep_seconds": args.theta * args.sleep,
        "cold_two_workers_seconds": cold,
        "cold_speedup": rows[0]["seconds"] / cold,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "rows": rows,
        "kills": kills,
        "environment": environment(),
    }
    print(f"{'workers':>8}{'seconds':>10}{'speed-up':>10}")
    for r in rows:
        print(f"{r['workers']:>8}{r['seconds']:>10.2f}{r['speedup']:>10.2f}")
    print(f"2 workers, cold (fork server started): {cold:.2f} s, {payload['cold_speedup']:.2f}×")
    for k in kills:
        print(
            f"kill -9 with {k['workers']} worker(s): {k['kept_at_kill']}/{k['chunks']} chunks kept, "
            f"{k['lost_chunks']} lost, {k['rows_redone']} rows redone, "
            f"same set: {k['same_as_uninterrupted']}"
        )
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    if args.results:
        json_path = write_json(Path(args.results) / "datasets.json", payload)
        results.write_benchmark_page("datasets", payload, args.results, json_path)


if __name__ == "__main__":
    main()
