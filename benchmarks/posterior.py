"""The exact posterior as a yardstick: its speed, convergence and how it compares with the MLE.

    python benchmarks/posterior.py [--cases A B C] [--dis] [--unbinned-a] [--seed 0]
        [--out runs/benchmarks/posterior.json] [--results docs/results]

For the proxy's cases A, B and C at the truth and at two θ drawn from the prior box with ``--seed``
(the second with b_d = 4.9, within σ_CRB of the box's face at 5), and for DIS through the
detector of ``configs/inverse/dis.yaml`` at case-B counts, one data set is simulated, fitted by
maximum likelihood, and its posterior sampled with `surrogates.likelihood.exact_posterior`
(emcee, the defaults every inverse run uses). Per row: seconds of the sampling, max R̂, min ESS,
whether it converged, (posterior mean − MLE)/σ_CRB and σ_post/σ_CRB per parameter, with σ_CRB of
the data's own counts at the MLE. ``--unbinned-a`` also samples case A at the truth with the
unbinned likelihood (slow) to show the fine binned one agrees. Writes ``--out`` (JSON) and, with
``--results``, the page ``posterior.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path
import torch

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from surrogates.data import CASES, simulate_observed  # noqa: E402
from surrogates.detector import make_detector  # noqa: E402
from surrogates.likelihood import FoldedModel, crb_std, exact_posterior, fit_mle  # noqa: E402
from surrogates.runs import environment, write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402

FACE_VALUE = 4.9  # b_d near the box's upper face (5)


def proxy_thetas(theory, seed: int) -> dict[str, np.ndarray]:  # noqa: ANN001
    """The truth and two θ drawn inside the box (10–90% of each range); the second near b_d's face."""
    rng = np.random.default_rng(seed)
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    draws = [low + (0.1 + 0.8 * rng.random(theory.n_params)) * (high - low) for _ in range(2)]
    draws[1][5] = FACE_VALUE
    return {"truth": theory.truth.numpy(), f"prior draw (seed {seed})": draws[0],
            f"prior draw, b_d = {FACE_VALUE} (seed {seed})": draws[1]}  # fmt: skip


def row(theory, data, label: str, case: str, theta: np.ndarray, folded=None, **kw) -> dict:  # noqa: ANN001
    """MLE and posterior of one data set, compared in σ_CRB of its counts at the MLE."""
    mle = folded.fit(data, start=theta) if folded is not None else fit_mle(theory, data)
    if folded is not None:
        crb = folded.crb_std(mle.theta, data.counts)
    else:
        crb = crb_std(theory, mle.theta, data.counts)
    post = exact_posterior(theory, data, folded=folded, start=mle.theta, **kw)
    r = {
        "theory": theory.name,
        "case": case,
        "theta": label,
        "theta_true": theta,
        "counts": data.counts,
        "mle": mle.theta,
        "mle_seconds": mle.seconds,
        "crb_std_at_mle": crb,
        "posterior": post.to_dict(),
        "post_minus_mle_crb": (post.mean - mle.theta) / crb,
        "post_std_over_crb": post.std / crb,
        "mle_std_over_crb": mle.std / crb,
    }
    print(
        f"{theory.name} {case} {label}: {post.seconds:.1f} s, R̂ ≤ {post.rhat.max():.4f}, ESS ≥ "
        f"{post.ess.min():.0f}, converged {post.converged}; (post − MLE)/σ_CRB "
        f"{np.round(r['post_minus_mle_crb'], 2).tolist()}; σ_post/σ_CRB "
        f"{np.round(r['post_std_over_crb'], 2).tolist()}",
        flush=True,
    )
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="*", default=["A", "B", "C"], choices=sorted(CASES))
    p.add_argument("--dis", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--unbinned-a", action="store_true", help="case A unbinned too (slow)")
    p.add_argument("--seed", type=int, default=0, help="seed of the θ draws and the data")
    p.add_argument("--out", default="runs/benchmarks/posterior.json")
    p.add_argument("--results", default=None, help="folder of the page posterior.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    proxy = get_theory("proxy")
    rows = []
    for case in args.cases:
        for k, (label, theta) in enumerate(proxy_thetas(proxy, args.seed).items()):
            data = simulate_observed(proxy, theta, CASES[case], seed=args.seed + 100 + k)
            rows.append(row(proxy, data, label, case, theta, seed=args.seed))
            if case == "A" and label == "truth" and args.unbinned_a:
                rows.append(
                    row(
                        proxy,
                        data,
                        "truth, unbinned",
                        case,
                        theta,
                        seed=args.seed,
                        unbinned_max=10**9,
                    )  # fmt: skip
                )
    if args.dis:
        dis = get_theory("dis")
        det = make_detector(results_detector(), dis)
        theta = dis.truth.numpy()
        data = simulate_observed(dis, theta, CASES["B"], seed=args.seed + 200, detector=det)
        rows.append(row(dis, data, "truth", "B", theta, FoldedModel(dis, det), seed=args.seed))
    payload = {
        "rows": rows,
        "seed": args.seed,
        "seconds": time.perf_counter() - t0,
        "environment": environment(),
    }
    write_json(Path(args.out), payload)
    print(f"wrote {args.out}")
    if args.results:
        results.write_benchmark_page("posterior", payload, args.results, args.out)
    return 0


def results_detector() -> dict:
    """The detector block of configs/inverse/dis.yaml."""
    import yaml

    from surrogates.resources import config_file

    return yaml.safe_load(config_file("inverse/dis.yaml").read_text())["detector"]


if __name__ == "__main__":
    raise SystemExit(main())
