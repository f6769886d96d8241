"""Closure of the outer GAN through a surrogate, at truths drawn at random, for any theory.

    python benchmarks/closures.py --config configs/inverse/peak.yaml \
        --source runs/flow-peak/checkpoints/best.ckpt --truths 3 --results docs/results

For each truth (drawn uniformly inside the prior box shrunk by ``--inset`` per side, from its own
seed ``TRUTH_SEED``, never used to choose anything), data of the theory's reference size
(``reference_counts``, or ``--counts``) are simulated with the exact theory, fitted by the outer
GAN of ``--config`` with ``--source`` as its event source, and compared with the maximum
likelihood of the exact theory on the same data: (GAN − MLE)/σ_CRB and σ/σ_CRB per parameter.
Writes ``closures-<theory>.json`` and ``.md`` into ``--results``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inverse.sources import make_source  # noqa: E402
from inverse.training import fit_outer_gan, load_config  # noqa: E402
from surrogates.data import CASES, simulate_observed  # noqa: E402
from surrogates.runs import write_json, write_text  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402

TRUTH_SEED = 20261203


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--source", required=True, help="exact, a zoo name or a .ckpt")
    p.add_argument("--truths", type=int, default=3)
    p.add_argument(
        "--inset", type=float, default=0.1, help="fraction of the box kept free per side"
    )
    p.add_argument("--counts", default=None, help="N1,N2 (default: the theory's reference_counts)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--truth-seed", type=int, default=TRUTH_SEED, help="seed of the truths")
    p.add_argument("--out", default="runs/benchmarks/closures")
    p.add_argument("--results", default="docs/results")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    cfg = replace(
        cfg, progress=False, source=args.source, **({"steps": args.steps} if args.steps else {})
    )
    theory = get_theory(cfg.theory)
    counts = (
        [float(v) for v in args.counts.split(",")]
        if args.counts
        else list(theory.reference_counts or CASES["A"])
    )
    source = make_source(args.source, theory)
    rng = np.random.default_rng(args.truth_seed)
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    rows = []
    t0 = time.perf_counter()
    for k in range(args.truths):
        u = args.inset + (1 - 2 * args.inset) * rng.random(theory.n_params)
        theta = low + u * (high - low)
        data = simulate_observed(theory, theta, counts, seed=args.truth_seed + k)
        out = Path(args.out) / f"{theory.name}-truth-{k}"
        m = fit_outer_gan(theory, data, source, replace(cfg, overwrite=True), out)
        row = {
            "truth": theta.tolist(),
            "gan_mean": np.asarray(m["params_mean"]).tolist(),
            "gan_std": np.asarray(m["params_std"]).tolist(),
            "mle": np.asarray(m["mle"]["params"]).tolist(),
            "crb": np.asarray(m["crb_std"]).tolist(),
            "gan_minus_mle_crb": np.asarray(m["gan_minus_mle_crb"]).tolist(),
            "std_over_crb": np.asarray(m["std_over_crb"]).tolist(),
            "seconds": m["seconds"],
        }
        rows.append(row)
        print(
            f"truth {k}: (GAN − MLE)/σ_CRB {np.round(row['gan_minus_mle_crb'], 2).tolist()}, "
            f"σ/σ_CRB {np.round(row['std_over_crb'], 2).tolist()}, {row['seconds']:.0f} s",
            flush=True,
        )
    result = {
        "theory": theory.name,
        "config": args.config,
        "source": args.source,
        "counts": counts,
        "steps": cfg.steps,
        "truth_seed": args.truth_seed,
        "inset": args.inset,
        "closures": rows,
        "seconds": time.perf_counter() - t0,
    }
    name = f"closures-{theory.name}"
    write_json(Path(args.results) / f"{name}.json", result)
    text = table(result, theory.param_names)
    write_text(Path(args.results) / f"{name}.md", text)
    print(text)
    return 0


def table(r: dict, names: tuple[str, ...]) -> str:
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = []
    for k, c in enumerate(r["closures"]):
        rows.append(
            f"| truth {k}: (GAN − MLE)/σ_CRB | "
            + " | ".join(f"{v:+.2f}" for v in c["gan_minus_mle_crb"])
            + " |"
        )
        rows.append(
            f"| truth {k}: σ/σ_CRB | " + " | ".join(f"{v:.2f}" for v in c["std_over_crb"]) + " |"
        )
    worst = max(max(abs(v) for v in c["gan_minus_mle_crb"]) for c in r["closures"])
    secs = [c["seconds"] for c in r["closures"]]
    return (
        f"# Outer GAN closures on `{r['theory']}` through `{r['source']}`\n\n"
        f"Generated by `python benchmarks/closures.py --config {r['config']} --source {r['source']} "
        f"--truths {len(r['closures'])}`: data of {r['counts']} expected events per channel at truths "
        f"drawn at random (seed {r['truth_seed']}, box inset {r['inset']:g} per side), the outer GAN "
        f"({r['steps']} steps, {min(secs):.0f}–{max(secs):.0f} s each) against the exact maximum "
        "likelihood on the same data.\n\n"
        + head
        + "\n".join(rows)
        + f"\n\nLargest |GAN − MLE| / σ_CRB: {worst:.2f}.\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
