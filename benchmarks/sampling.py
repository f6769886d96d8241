"""Events per second of the exact samplers on this machine: inverse CDF with and without gradients, MCMC.

    python benchmarks/sampling.py [--out runs/benchmarks/sampling.json] [--repeats 5]

Prints a table and writes JSON. Rates are the median over repeats, after one warm-up call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path
import torch

from surrogates.runs import environment
from surrogates.sampling import InverseCDFSampler, MetropolisSampler
from surrogates.theory import get_theory


def rate(fn, events: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return events / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/benchmarks/sampling.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--results", default=None, help="also write its page into this folder (docs/results)"
    )
    args = parser.parse_args()
    theory = get_theory("proxy")
    gen = torch.Generator().manual_seed(0)
    sampler = InverseCDFSampler(theory)
    rows = []
    for batch, n in [(1, 100_000), (64, 1_000), (64, 10_000), (1024, 64)]:
        theta = theory.sample_prior(batch, gen)
        events = batch * n * theory.n_channels

        def no_grad(theta=theta, n=n) -> None:
            with torch.no_grad():
                sampler.sample(theta, n, generator=gen)

        def with_grad(theta=theta, n=n) -> None:
            th = theta.clone().requires_grad_()
            sum(e.sum() for e in sampler.sample(th, n, generator=gen)).backward()

        rows.append(
            {
                "sampler": "inverse-cdf",
                "theta": batch,
                "events_per_theta": n,
                "no_grad": rate(no_grad, events, args.repeats),
                "with_grad": rate(with_grad, events, args.repeats),
            }
        )
    mcmc = MetropolisSampler(theory)
    theta = theory.sample_prior(8, gen)
    rows.append(
        {
            "sampler": f"mcmc ({mcmc.burn_in}+{mcmc.steps} steps)",
            "theta": 8,
            "events_per_theta": 2_000,
            "no_grad": rate(lambda: mcmc.sample(theta, 2_000, generator=gen), 8 * 2_000 * 2, 1),
            "with_grad": None,
        }
    )
    print(f"{'sampler':<26}{'θ':>6}{'events/θ':>10}{'events/s':>14}{'events/s (grad)':>18}")
    for r in rows:
        grad = f"{r['with_grad']:18.3g}" if r["with_grad"] else f"{'—':>18}"
        print(
            f"{r['sampler']:<26}{r['theta']:>6}{r['events_per_theta']:>10}{r['no_grad']:14.3g}{grad}"
        )
    payload = {"rows": rows, "torch_threads": torch.get_num_threads(), "environment": environment()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    if args.results:
        results.write_benchmark_page("sampling", payload, args.results, out)


if __name__ == "__main__":
    main()
