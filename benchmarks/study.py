"""Pseudo-experiment studies (`python -m inverse.study`): speed on workers, kill and resume, and
the coverage tables of finished study folders.

    python benchmarks/study.py speed [--n 12] [--case C] [--fitters mle,posterior]
        [--posterior-steps 1000] [--out runs/benchmarks/study_speed.json] [--results docs/results]
    python benchmarks/study.py table runs/study-C runs/study-B-face [--out runs/benchmarks/study.json]
        [--results docs/results] [--name study]

``speed`` runs the same study as a command on 1 and on 2 local workers (fresh folders; the wall
time of the whole command, and of its experiments alone, without start-up and aggregation; the
mean experiment's own compute time, which shows how much slower each fit runs beside another),
then starts it on 2 workers again, kills the command with SIGKILL
once a third of its experiments exist, reruns it and checks that only the unfinished ones were
computed and that every record equals the uninterrupted run's (timings aside). ``table`` gathers
the ``summary.json`` of study folders into one JSON and page (``study.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages)

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from inverse.study import read_records  # noqa: E402
from surrogates.runs import environment, write_json  # noqa: E402


def study_command(args: argparse.Namespace, out: Path, workers: int) -> list[str]:
    cmd = [sys.executable, "-m", "inverse.study", "--case", args.case, "--n", str(args.n)]
    cmd += ["--fitters", args.fitters, "--seed", str(args.seed), "--workers", str(workers)]
    cmd += ["--out", str(out), "--overwrite", "--no-progress"]
    if args.posterior_steps:
        cmd += ["--posterior-steps", str(args.posterior_steps)]
    return cmd


def experiment_seconds(out: Path) -> list[float]:
    """Each finished experiment's own compute time (its fits' seconds summed)."""
    return [
        sum(fit["seconds"] for fit in json.loads(f.read_text())["fits"].values())
        for f in sorted((out / "experiments").glob("[0-9]*.json"))
    ]


def speed(args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = Path(args.runs)
    rows = []
    for workers in (1, 2):
        out = base / f"speed-{workers}"
        t0 = time.perf_counter()
        subprocess.run(study_command(args, out, workers), check=True, env=env)
        seconds = time.perf_counter() - t0
        inside = json.loads((out / "summary.json").read_text())["run"]["seconds"]
        per = experiment_seconds(out)
        rows.append(
            {
                "workers": workers,
                "seconds": seconds,
                "study_seconds": inside,
                # the mean experiment's own time: 2 workers on 2 cores each run slower when the
                # cores share caches, memory bandwidth or a physical core (hyperthreads)
                "experiment_seconds_mean": sum(per) / len(per),
                # the fitting time the workers' summed compute allows with no start-up or tail
                "ideal_study_seconds": sum(per) / workers,
            }
        )
        print(f"{workers} worker(s): {seconds:.1f} s ({inside:.1f} s fitting)", flush=True)
    for r in rows:
        r["speedup"] = rows[0]["seconds"] / r["seconds"]
        r["study_speedup"] = rows[0]["study_seconds"] / r["study_seconds"]
    # kill -9 once a third exists, then rerun
    out = base / "kill"
    cmd = study_command(args, out, 2)
    proc = subprocess.Popen(cmd, env=env)
    while len(list((out / "experiments").glob("[0-9]*.json"))) < args.n // 3:
        if proc.poll() is not None:
            raise SystemExit("the study finished before it could be killed; raise --n")
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the workers notice their parent is gone and exit
    kept = len(list((out / "experiments").glob("[0-9]*.json")))
    resumed = subprocess.run(
        [c for c in cmd if c != "--overwrite"], env=env, check=True, capture_output=True, text=True
    )
    line = next(ln for ln in resumed.stdout.splitlines() if " computed, " in ln)
    computed = int(line.split()[0])
    same = read_records(out, timings=False) == read_records(base / "speed-2", timings=False)
    kill = {
        "workers": 2,
        "n": args.n,
        "kept_at_kill": kept,
        "computed_on_rerun": computed,
        "redid_only_unfinished": computed == args.n - kept,
        "same_as_uninterrupted": same,
    }
    print(f"kill -9: {kept} of {args.n} kept, {computed} computed on rerun, same records: {same}")
    return {
        "environment": environment(),
        "case": args.case,
        "n": args.n,
        "fitters": args.fitters,
        "posterior_steps": args.posterior_steps,
        "rows": rows,
        "kill": kill,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }


def table(args: argparse.Namespace) -> dict:
    studies = []
    for folder in args.folders:
        path = Path(folder) / "summary.json"
        if not path.is_file():
            raise SystemExit(f"error: '{path}' does not exist; run the study first")
        summary = json.loads(path.read_text())
        summary["folder"] = str(folder)
        studies.append(summary)
    return {"environment": environment(), "studies": studies}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--n", type=int, default=12)
    sp.add_argument("--case", default="C")
    sp.add_argument("--fitters", default="mle,posterior")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--posterior-steps", type=int, default=1000)
    sp.add_argument("--runs", default="runs/benchmarks/study")
    sp.add_argument("--out", default="runs/benchmarks/study_speed.json")
    sp.add_argument("--results", default=None, help="also write its page into this folder")
    tp = sub.add_parser("table")
    tp.add_argument("folders", nargs="+")
    tp.add_argument("--out", default="runs/benchmarks/study.json")
    tp.add_argument("--results", default=None, help="also write its page into this folder")
    tp.add_argument("--name", default="study", help="the page: study | study-B-prior")
    args = parser.parse_args()
    payload = speed(args) if args.what == "speed" else table(args)
    out = write_json(args.out, payload)
    print(f"wrote {out}")
    if args.results:
        name = "study_speed" if args.what == "speed" else args.name
        results.write_benchmark_page(name, payload, args.results, out)


if __name__ == "__main__":
    main()
