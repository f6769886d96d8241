"""The inclusive-DIS closure through the detector: outer GAN per source and truth against the MLE.

    python benchmarks/dis_closure.py [--sources exact flow-dis] [--truths 1 2] [--steps 3000] [--out DIR]

For each truth (1 = the theory's truth, 2 = `DIS_TRUTH_2`, both inside the prior box) one data set
of 20,000 + 20,000 expected true events is simulated and reconstructed through the detector of
``configs/inverse/dis.yaml``; the outer GAN recovers θ through each source (the exact 2-D sampler or a
surrogate) and the same detector, and is compared with the binned maximum likelihood of the exact
theory folded through the detector, on the same data. Per run: max |θ_GAN − θ_MLE|/σ_CRB (targets:
≤ 0.5 exact, ≤ 1 surrogate), the range of σ/σ_CRB (target: within a factor 2), the pull of the MLE
and the seconds. A run directory with a finished ``metrics.json`` is reused, so an interrupted
benchmark continues. Prints a table and writes ``DIR/dis.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from inverse.config import to_dict  # noqa: E402
from inverse.sources import check_detector, make_source  # noqa: E402
from inverse.training import load_config, run_outer_gan  # noqa: E402
from surrogates.data import read_events, simulate_observed, write_events  # noqa: E402
from surrogates.detector import make_detector  # noqa: E402
from surrogates.runs import environment, to_jsonable  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402
from surrogates.theory.dis import DIS_TRUTH, DIS_TRUTH_2  # noqa: E402

TRUTHS = {1: DIS_TRUTH, 2: DIS_TRUTH_2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=["exact", "flow-dis"])
    parser.add_argument("--truths", nargs="+", type=int, default=[1, 2], choices=sorted(TRUTHS))
    parser.add_argument("--config", default="configs/inverse/dis.yaml")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--replicas", type=int, default=None)
    parser.add_argument("--events-per-step", type=int, default=None)
    parser.add_argument("--events", default="20000,20000", help="expected true events")
    parser.add_argument("--out", default="runs/benchmarks/dis")
    parser.add_argument(
        "--results", default=None, help="also write its page into this folder (docs/results)"
    )
    args = parser.parse_args()
    cfg = load_config(args.config)
    for key in ("steps", "replicas", "events_per_step"):
        if getattr(args, key):
            cfg = replace(cfg, **{key: getattr(args, key)})
    theory = get_theory("dis")
    detector = make_detector(cfg.detector, theory)
    out = Path(args.out)
    rows = []
    for k in args.truths:
        path = out / f"obs-truth{k}.npz"
        if not path.is_file():
            counts = [float(v) for v in args.events.split(",")]
            data = simulate_observed(theory, TRUTHS[k], counts, seed=k, detector=detector)
            write_events(path, data, theory.channels)
        data = read_events(path, theory)
        check_detector(cfg.detector, theory, data)
        for spec in args.sources:
            run = out / f"{spec.replace('/', '_')}-truth{k}"
            if (run / "metrics.json").is_file():
                metrics = json.loads((run / "metrics.json").read_text())
            else:
                run_cfg = replace(cfg, source=spec, events=str(path))
                metrics = run_outer_gan(
                    theory, data, make_source(spec, theory), run_cfg, run, progress=False
                )
            diff = np.abs(np.asarray(metrics["gan_minus_mle_crb"]))
            ratio = np.asarray(metrics["std_over_crb"])
            mle_pull = (np.asarray(metrics["mle"]["params"]) - np.asarray(TRUTHS[k])) / np.asarray(
                metrics["crb_std"]
            )
            rows.append(
                {
                    "source": spec,
                    "truth": k,
                    "counts": metrics["counts"],
                    "max_gan_minus_mle_crb": float(diff.max()),
                    "gan_minus_mle_crb": metrics["gan_minus_mle_crb"],
                    "std_over_crb": metrics["std_over_crb"],
                    "mle_pull": mle_pull.tolist(),
                    "pull": metrics["pull"],
                    "steps": metrics["steps"],
                    "seconds": metrics["seconds"],
                    "target": 0.5 if spec == "exact" else 1.0,
                    "met": bool(diff.max() <= (0.5 if spec == "exact" else 1.0))
                    and bool(((ratio > 0.5) & (ratio < 2)).all()),
                    "run": str(run),
                }
            )
    print(
        f"{'source':>12} {'truth':>5} {'counts':>15} {'max|GAN−MLE|/σ':>15} {'σ/σ_CRB':>11} "
        f"{'max|MLE pull|':>13} {'steps':>6} {'s':>6}  met"
    )
    for r in rows:
        ratio = np.asarray(r["std_over_crb"])
        print(
            f"{r['source']:>12} {r['truth']:>5} {str(r['counts']):>15} "
            f"{r['max_gan_minus_mle_crb']:15.2f} {ratio.min():5.2f}–{ratio.max():4.2f} "
            f"{np.abs(r['mle_pull']).max():13.2f} {r['steps']:6d} {r['seconds']:6.0f}  "
            f"{'yes' if r['met'] else 'NO'}"
        )
    out.mkdir(parents=True, exist_ok=True)
    result = {"rows": rows, "config": to_dict(cfg), "environment": environment()}
    (out / "dis.json").write_text(json.dumps(to_jsonable(result), indent=1))
    print(f"wrote {out / 'dis.json'}")
    if args.results:
        results.write_benchmark_page("dis", result, args.results, out / "dis.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
