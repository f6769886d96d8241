"""The outer GAN's stopping rule against the fixed schedule: wall seconds and accuracy.

    python benchmarks/convergence.py --results docs/results                 # case B × 5, case A × 2
    python benchmarks/convergence.py --case-b 2 --case-a 0 --seed 1          # a quick look

For each case, truths drawn uniformly inside the prior box (10% inset) by ``numpy`` seed
``--seed`` (the rule's settings were tuned on seed 0; report on another), data simulated there, and
each data set fitted twice with the exact source: by the config's fixed schedule (``stop.enabled:
false``, ``steps`` generator updates, case A ``--steps-a``; ``data_replicas`` 1 as shipped before the
rule, ``--fixed-data-replicas``) and by the stopping rule
(``stop.enabled: true``, the config's ``stop:`` block, ``steps`` the maximum). Per fit: wall
seconds of the training, generator steps, max |θ_GAN − θ_MLE|/σ_CRB (the MLE on the same data),
σ/σ_CRB (min–max), and the stop's reason. Run with one torch thread (the seconds are those of
one CPU core; ``--threads`` for more; ``--config-a`` gives case A its own config, e.g.
``configs/inverse/proxy-large.yaml``). The machine's speed on a fixed workload
(`surrogates.runs.machine_speed`) is recorded before and after, so that another day's seconds can be
compared in its units. Prints a table, writes JSON after every fit (``--out``) and, with ``--results``,
the page docs/results/convergence.md. Finished fits under ``--runs`` are read back, not redone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import results  # benchmarks/results.py (the docs/results pages)
import torch

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from inverse.sources import make_source  # noqa: E402
from inverse.training import load_config, run_outer_gan  # noqa: E402
from surrogates.data import CASES, simulate_observed  # noqa: E402
from surrogates.runs import environment, machine_speed, write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402


def truths(theory, n: int, seed: int) -> np.ndarray:  # noqa: ANN001
    """``n`` θ uniform inside the prior box shrunk by 10% at each edge."""
    rng = np.random.default_rng(seed)
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    return low + (high - low) * (0.1 + 0.8 * rng.random((n, len(low))))


def fit_row(theory, data, cfg, out: Path, schedule: str) -> dict:  # noqa: ANN001
    """One fit's row: seconds, steps, accuracy against the MLE, and the stop. A finished run in
    ``out`` (its metrics.json, written last) is read, not fitted again: a killed benchmark resumes."""
    done = out / "metrics.json"
    if done.is_file():
        m = json.loads(done.read_text())
    else:
        m = run_outer_gan(theory, data, make_source("exact", theory), cfg, out, progress=False)
    crb = np.asarray(m["crb_std"])
    d = np.abs(np.asarray(m["gan_minus_mle_crb"]))
    return {
        "schedule": schedule,
        "seconds": m["seconds"],
        "steps": m["steps"],
        "max_steps": cfg.steps,
        "max_dmle_crb": float(d.max()),
        "dmle_crb": d,
        "std_over_crb": np.asarray(m["std_over_crb"]),
        "stop_reason": m["stop_reason"],
        "settled_at": m["settled_at"],
        "schedule_completed": m["schedule_completed"],
        "crb": crb,
        # against the exact posterior on the same data (where the fit sampled it: posterior: true)
        "sigma_over_post": m.get("sigma_over_post"),
        "max_dist_post": None
        if m.get("dist_post") is None
        else float(np.max(np.abs(m["dist_post"]))),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/inverse/proxy.yaml")
    parser.add_argument(
        "--config-a", default=None, help="case A's config (default: --config), e.g. proxy-large.yaml"
    )
    parser.add_argument("--case-b", type=int, default=5, help="case-B truths")
    parser.add_argument("--case-a", type=int, default=2, help="case-A truths")
    parser.add_argument(
        "--steps-a",
        type=int,
        default=None,
        help="case A's steps (the fixed schedule's, and the rule's maximum); default: the steps "
        "of --config-a when given, else 6000",
    )
    parser.add_argument("--seed", type=int, default=2000, help="truths' seed (tuned on 0, 1000)")
    parser.add_argument(
        "--fixed-data-replicas",
        type=int,
        default=1,
        help="data_replicas of the fixed schedule (both cases; --steps-a is case A's steps either way)",
    )
    parser.add_argument(
        "--schedules", default="stop,fixed", help="which to run: stop (the rule), fixed, or both"
    )
    parser.add_argument(
        "--d-dtype", default=None, help="override the config's gan.d_dtype (float32 | float64)"
    )
    parser.add_argument("--runs", default="runs/benchmarks/convergence")
    parser.add_argument("--out", default="runs/benchmarks/convergence.json")
    parser.add_argument("--results", default=None, help="also write the page into this folder")
    parser.add_argument(
        "--name",
        default="convergence",
        help="the page: convergence | convergence-f32 | convergence-idle | convergence-2cores | "
        "convergence-1core | convergence-a | convergence-a-before",
    )
    parser.add_argument("--from-json", default=None, help="no fits: summarize this run's JSON")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per fit (1: one core's seconds)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    theory = get_theory("proxy")
    paths = {"B": args.config, "A": args.config_a or args.config}
    configs = {case: load_config(path) for case, path in paths.items()}
    if args.steps_a is None:
        args.steps_a = configs["A"].steps if args.config_a else 6000
    if args.d_dtype:
        configs = {k: replace(c, gan=replace(c.gan, d_dtype=args.d_dtype)) for k, c in configs.items()}
    chosen = [x.strip() for x in args.schedules.split(",")]
    if not chosen or not set(chosen) <= {"stop", "fixed"}:
        parser.error(f"--schedules takes stop, fixed or stop,fixed; got {args.schedules!r}")
    schedules = [(n, e) for n, e, k in (("stop rule", True, "stop"), ("fixed", False, "fixed"))
                 if k in chosen]  # fmt: skip
    payload: dict = {"environment": environment(), "args": vars(args), "rows": []}
    if args.from_json:  # the page from a run's JSON (a run stopped early keeps its fits)
        payload = json.loads(Path(args.from_json).read_text())
        args.out = args.from_json
    else:
        payload["machine"] = {"before": machine_speed()}  # this day's speed, in its units
        sets = {
            "B": (configs["B"].steps, truths(theory, args.case_b, args.seed), args.seed),
            "A": (args.steps_a, truths(theory, args.case_a, args.seed + 1), args.seed + 1),
        }
        # per truth the rule's fit then the fixed schedule's on the same data; case B first
        for case, (steps, thetas, seed) in sets.items():
            for i, theta in enumerate(thetas):
                for schedule, enabled in schedules:
                    data = simulate_observed(theory, theta, CASES[case], seed=seed * 100 + i)
                    cfg = configs[case]
                    c = replace(cfg, steps=steps, stop=replace(cfg.stop, enabled=enabled), seed=0)
                    if not enabled:  # the shipped config before the rule: one data replica
                        c = replace(c, data_replicas=args.fixed_data_replicas)
                    out = Path(args.runs) / f"{case}-{i}-{'stop' if enabled else 'fixed'}"
                    row = fit_row(theory, data, c, out, schedule)
                    row.update(case=case, truth=theta, truth_index=i, threads=args.threads,
                               config=paths[case])
                    row["load_average"] = os.getloadavg()[0]  # the machine is shared
                    payload["rows"].append(row)
                    r = np.asarray(row["std_over_crb"])
                    print(
                        f"case {case} truth {i} {schedule:>9}: {row['seconds']:6.1f} s, "
                        f"{row['steps']:5d} steps ({row['stop_reason']}), max |GAN − MLE|/σ_CRB "
                        f"{row['max_dmle_crb']:.2f}, σ/σ_CRB {r.min():.2f}–{r.max():.2f}"
                        + (
                            ""
                            if row["max_dist_post"] is None
                            else f", max |GAN − post|/σ_post {row['max_dist_post']:.2f}"
                        ),
                        flush=True,
                    )
                    write_json(args.out, payload)  # after every fit: a killed run keeps its fits
        payload["machine"]["after"] = machine_speed()
    payload["summary"] = summary(payload["rows"])
    print_summary(payload["summary"])
    out = write_json(args.out, payload)
    print(f"wrote {out}")
    if args.results:
        results.write_benchmark_page(args.name, payload, args.results, out)


def summary(rows: list[dict]) -> list[dict]:
    """Per case and schedule: fits, median and max seconds and steps, the worst accuracy."""
    out = []
    for case in ("B", "A"):
        for schedule in ("fixed", "stop rule"):
            rs = [r for r in rows if r["case"] == case and r["schedule"] == schedule]
            if not rs:
                continue
            ratio = np.concatenate([np.asarray(r["std_over_crb"]) for r in rs])
            out.append(
                {
                    "case": case,
                    "schedule": schedule,
                    "fits": len(rs),
                    "seconds_median": float(np.median([r["seconds"] for r in rs])),
                    "seconds_max": float(max(r["seconds"] for r in rs)),
                    "steps_median": float(np.median([r["steps"] for r in rs])),
                    "max_dmle_crb": float(max(r["max_dmle_crb"] for r in rs)),
                    "max_dmle_crb_per_fit": [r["max_dmle_crb"] for r in rs],
                    "std_over_crb_range": [float(ratio.min()), float(ratio.max())],
                    "settled": sum(r["stop_reason"] == "settled" for r in rs),
                    "max_dist_post": max(
                        (r["max_dist_post"] for r in rs if r.get("max_dist_post") is not None),
                        default=None,
                    ),
                }
            )
    return out


def print_summary(rows: list[dict]) -> None:
    print(
        f"\n{'case':>4} {'schedule':>9} {'fits':>4} {'s (median)':>10} {'s (max)':>8} "
        f"{'steps':>6} {'max|GAN−MLE|/σ':>15} {'σ/σ_CRB':>10} {'settled':>7}"
    )
    for s in rows:
        lo, hi = s["std_over_crb_range"]
        print(
            f"{s['case']:>4} {s['schedule']:>9} {s['fits']:4d} {s['seconds_median']:10.0f} "
            f"{s['seconds_max']:8.0f} {s['steps_median']:6.0f} {s['max_dmle_crb']:15.2f} "
            f"{f'{lo:.2f}–{hi:.2f}':>10} {s['settled']:7d}"
        )


if __name__ == "__main__":
    main()
