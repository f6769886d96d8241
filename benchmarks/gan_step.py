"""What one outer-GAN step costs with float64 and with float32 discriminators, side by side.

    python benchmarks/gan_step.py --results docs/results

The same case-B data (a truth drawn inside the prior box from ``--seed``), fitted by the config's
outer GAN for ``--steps`` generator updates (fixed schedule, exact source, one torch thread) with
``gan.d_dtype`` float64 and float32 in turn, ``--repeats`` times, alternating, so that both see the
same machine load: milliseconds per step of each, and the ratio. The accuracy of the float32
setting over whole fits is `benchmarks/convergence.py --d-dtype float32` (convergence pages).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import results  # benchmarks/results.py (the docs/results pages)
import torch

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from inverse.sources import make_source  # noqa: E402
from inverse.training import load_config, run_outer_gan  # noqa: E402
from surrogates.data import CASES, simulate_observed  # noqa: E402
from surrogates.runs import environment, write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402

DTYPES = ("float64", "float32")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/inverse/proxy.yaml")
    parser.add_argument("--case", default="B")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", default="runs/benchmarks/gan_step")
    parser.add_argument("--out", default="runs/benchmarks/gan_step.json")
    parser.add_argument("--results", default=None, help="also write the page into this folder")
    args = parser.parse_args(argv)
    os.environ["WANDB_MODE"] = "disabled"
    torch.set_num_threads(1)
    theory = get_theory("proxy")
    cfg = load_config(args.config)
    rng = np.random.default_rng(args.seed)
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    theta = low + (high - low) * (0.1 + 0.8 * rng.random(len(low)))
    data = simulate_observed(theory, theta, CASES[args.case], seed=args.seed)
    rows = []
    for rep in range(args.repeats):
        for dtype in DTYPES:
            c = replace(cfg, steps=args.steps, stop=replace(cfg.stop, enabled=False), seed=0,
                        compare_mle=False, posterior=False, overwrite=True,
                        gan=replace(cfg.gan, d_dtype=dtype))  # fmt: skip
            t0 = time.perf_counter()
            out = Path(args.runs) / f"{dtype}-{rep}"
            m = run_outer_gan(theory, data, make_source("exact", theory), c, out, progress=False)
            rows.append({
                "d_dtype": dtype, "repeat": rep, "steps": m["steps"],
                "seconds": time.perf_counter() - t0, "train_seconds": m["seconds"],
                "ms_per_step": 1000 * m["seconds"] / m["steps"],
                "load_average": os.getloadavg()[0],
            })  # fmt: skip
            print(f"{dtype} #{rep}: {rows[-1]['ms_per_step']:.1f} ms/step "
                  f"(load {rows[-1]['load_average']:.1f})", flush=True)  # fmt: skip
    ms = {d: float(np.mean([r["ms_per_step"] for r in rows if r["d_dtype"] == d])) for d in DTYPES}
    payload = {
        "environment": environment(),
        "args": vars(args),
        "truth": theta.tolist(),
        "rows": rows,
        "ms_per_step": ms,
        "speedup_float32": ms["float64"] / ms["float32"],
        "cpu_count": os.cpu_count(),
    }
    print(f"float64 {ms['float64']:.1f} ms/step, float32 {ms['float32']:.1f}: "
          f"{payload['speedup_float32']:.2f}x")  # fmt: skip
    path = write_json(args.out, payload)
    print(f"wrote {path}")
    if args.results:
        results.write_benchmark_page("gan_step", payload, args.results, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
