"""The two fidelity views of a proxy surrogate side by side, at the fit CLI's held-out θ.

    python benchmarks/density_free.py [NAME_OR_CKPT ...] [--points 3] [--events 2000000]
        [--template 200000] [--out runs/benchmarks/density_free.json]

Per surrogate (the shipped flow-zuko by default) and held-out θ (seed 1 + HELD_OUT_SEED_OFFSET,
as `surrogates.fit` draws them): the density-free view (`surrogates.metrics.theta_shift_surrogate`:
``--events`` exact events per channel fitted with the surrogate as the model, its density or
its ``--template``-event histogram template, in the surrogate's own σ_CRB(A)) and, for a
surrogate with a density, the exact view without its noise (`theta_shift_expected`). To first
order they are equal and opposite: their sum shows where the surrogate's θ-dependence is off.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# benchmarks/surrogates.py is named like the package: keep this folder off the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from surrogates.data import CASES  # noqa: E402
from surrogates.generators import TheoryGenerator  # noqa: E402
from surrogates.likelihood.surrogate import quantile_edges, surrogate_shift_noise  # noqa: E402
from surrogates.metrics import (  # noqa: E402
    HELD_OUT_SEED_OFFSET,
    held_out_theta,
    theta_shift_expected,
    theta_shift_surrogate,
)
from surrogates.runs import write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402
from surrogates.zoo import load_surrogate  # noqa: E402


def views(name: str, points: int, events: int, template: int) -> list[dict]:
    """Both views of one surrogate at ``points`` held-out θ."""
    proxy = get_theory("proxy")
    generator = TheoryGenerator(proxy)
    model = load_surrogate(name, "proxy").eval()
    thetas = held_out_theta(proxy, points, 1 + HELD_OUT_SEED_OFFSET)
    rows = []
    for b in range(points):
        t0 = time.perf_counter()
        theta = thetas[b].numpy()
        pilot = generator.generate(theta, 100_000, 10 + b)
        edges = quantile_edges([e[:, 0] for e in pilot.events], 100, 0.1, 1.0)
        data = generator.generate(theta, events, 20 + b)
        free, crb, ok, method = theta_shift_surrogate(
            model, proxy, theta, data, edges, CASES["A"], template_events=template, seed=b
        )
        exact = theta_shift_expected(model, proxy, thetas[b : b + 1]) if model.has_density else None
        rows.append(
            {
                "surrogate": name,
                "point": b,
                "theta": theta,
                "method": method,
                "converged": ok,
                "density_free": free,
                "exact_expected": exact,
                "surrogate_crb_std": crb,
                "noise": surrogate_shift_noise(
                    CASES["A"], [events] * 2, None if method == "density" else [template] * 2
                ),
                "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"{name} θ{b} {method} converged={ok} density-free {np.round(free, 2)}"
            + (
                ""
                if exact is None
                else f" exact {np.round(exact, 2)} sum {np.round(free + exact, 2)}"
            )
            + f" noise≈{rows[-1]['noise']:.2f} ({rows[-1]['seconds']:.0f} s)",
            flush=True,
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("surrogates", nargs="*", default=["flow-zuko"])
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--template", type=int, default=200_000)
    parser.add_argument("--out", default="runs/benchmarks/density_free.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [r for s in args.surrogates for r in views(s, args.points, args.events, args.template)]
    write_json(args.out, {"rows": rows, "reference_counts": CASES["A"]})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
