"""What one outer-GAN step costs under two settings, side by side.

    python benchmarks/gan_step.py --results docs/results                       # discriminators
    python benchmarks/gan_step.py --compare nodes --name gan_step-nodes --results docs/results

The same case-B data (a truth drawn inside the prior box from ``--seed``), fitted by the config's
outer GAN for ``--steps`` generator updates (fixed schedule, exact source, one torch thread) under
each setting in turn, ``--repeats`` times, alternating, so that both see the same machine load:
milliseconds per step of each, and the ratio. ``--compare d_dtype``: ``gan.d_dtype`` float64
against float32 (their accuracy over whole fits: `benchmarks/convergence.py --d-dtype float32`).
``--compare nodes``: the exact sampler placing fresh adaptive nodes every step against keeping
each replica's nodes while they stay accurate (`InverseCDFSampler.keeping_nodes`, what every fit
does).
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
from surrogates.runs import environment  # noqa: E402
from surrogates.sampling import InverseCDFSampler  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402

VARIANTS = {"d_dtype": ("float64", "float32"), "nodes": ("fresh", "kept")}


def _fresh_nodes(self: InverseCDFSampler) -> InverseCDFSampler:
    """`keeping_nodes` turned off: a fit's sampler places new nodes at every call."""
    return self.copy(reuse_grid=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/inverse/proxy.yaml")
    parser.add_argument("--case", default="B")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compare", default="d_dtype", choices=sorted(VARIANTS))
    parser.add_argument("--name", default="gan_step", help="the page's name in --results")
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
    variants = VARIANTS[args.compare]
    keeping = InverseCDFSampler.keeping_nodes
    rows = []
    for rep in range(args.repeats):
        for variant in variants:
            gan = cfg.gan
            if args.compare == "d_dtype":
                gan = replace(cfg.gan, d_dtype=variant)
            InverseCDFSampler.keeping_nodes = _fresh_nodes if variant == "fresh" else keeping
            c = replace(cfg, steps=args.steps, stop=replace(cfg.stop, enabled=False), seed=0,
                        compare_mle=False, posterior=False, overwrite=True, gan=gan)  # fmt: skip
            t0 = time.perf_counter()
            out = Path(args.runs) / f"{variant}-{rep}"
            try:
                m = run_outer_gan(
                    theory, data, make_source("exact", theory), c, out, progress=False
                )
            finally:
                InverseCDFSampler.keeping_nodes = keeping
            rows.append({
                "variant": variant, "d_dtype": gan.d_dtype, "repeat": rep, "steps": m["steps"],
                "seconds": time.perf_counter() - t0, "train_seconds": m["seconds"],
                "ms_per_step": 1000 * m["seconds"] / m["steps"],
                "load_average": os.getloadavg()[0],
            })  # fmt: skip
            print(f"{variant} #{rep}: {rows[-1]['ms_per_step']:.1f} ms/step "
                  f"(load {rows[-1]['load_average']:.1f})", flush=True)  # fmt: skip
    ms = {
        v: float(np.mean([r["ms_per_step"] for r in rows if r["variant"] == v])) for v in variants
    }
    payload = {
        "environment": environment(),
        "args": vars(args),
        "compare": args.compare,
        "truth": theta.tolist(),
        "rows": rows,
        "ms_per_step": ms,
        "speedup": ms[variants[0]] / ms[variants[1]],
        "cpu_count": os.cpu_count(),
    }
    print(f"{variants[0]} {ms[variants[0]]:.1f} ms/step, {variants[1]} {ms[variants[1]]:.1f}: "
          f"{payload['speedup']:.2f}x")  # fmt: skip
    results.publish(args.name, payload, args.out, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
