"""Recovery of θ against the statistical limit: outer GAN per source and case, MLE, VAIM inverse.

    python benchmarks/inverse.py [--cases B] [--sources exact flow-zuko vaim] [--seed 1]
    python benchmarks/inverse.py --pseudo 20 --pseudo-case C        # pulls and coverage at random truths

Per source and case (data simulated at the truth, or at ``--theta``): the GAN's θ ± σ, the MLE on
the same data, σ_CRB, max |θ_GAN − θ_MLE|/σ_CRB, σ/σ_CRB, the generator steps and seconds after
which the running average stays within 0.5 σ_CRB of the MLE, and the MLE's own time. The VAIM
inverse (``invert`` on a kernel estimate of the observed densities) is scored in the same table.
With ``--pseudo N``: N data sets at truths drawn uniformly inside the prior box (10% inset), GAN
with the exact source on each; pull mean, rms and the ±1σ coverage per parameter.
Prints tables and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path
import torch

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from inverse.peers import train_peer, vaim_posterior  # noqa: E402
from inverse.sources import make_source  # noqa: E402
from inverse.training import load_config, run_outer_gan  # noqa: E402
from surrogates.data import CASES, ObservedData, simulate_observed  # noqa: E402
from surrogates.likelihood import (  # noqa: E402
    crb_std,
    fit_mle,
    negative_log_likelihood,
    nll_excess,
)
from surrogates.runs import environment  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402


def steps_to_mle(
    trace: np.ndarray,
    steps: np.ndarray,
    mle: np.ndarray,
    crb: np.ndarray,
    fraction: float,
    tol: float = 0.5,
    data_replicas: int = 1,
) -> int | None:
    """First step after which the running Polyak average of the estimate (the mean of the replicas
    on the data, 0 … data_replicas − 1) stays within tol σ_CRB."""
    ok = []
    for k in range(1, len(trace) + 1):
        k0 = min(int(k * (1 - fraction)), k - 1)
        avg = trace[k0:k, :data_replicas].mean((0, 1))
        ok.append(bool(np.all(np.abs(avg - mle) / crb <= tol)))
    for k in range(len(ok)):
        if all(ok[k:]):
            return int(steps[k])
    return None


def vaim_inverse(theory, data: ObservedData, name: str = "vaim", n: int = 2000) -> dict:  # noqa: ANN001
    """θ from the VAIM backward mapper fed with kernel estimates of the observed densities."""
    v = vaim_posterior(theory, data, name, n_draws=n, seed=0)
    return {"params": v.mean, "std": v.std, "seconds": v.seconds}


def npe_baseline(theory, data: ObservedData, counts, n_sims: int, seed: int) -> dict:  # noqa: ANN001
    """sbi's NPE (neural spline flow, `inverse.peers`) trained on ``n_sims`` simulated data sets."""
    t0 = time.perf_counter()
    peer = train_peer(theory, counts, "npe", n_sims=n_sims, seed=seed)
    v = peer.sample(data, 4000, seed=seed)
    return {
        "params": v.mean,
        "std": v.std,
        "n_sims": n_sims,
        "sim_seconds": peer.sim_seconds,
        "seconds": time.perf_counter() - t0,
    }


def delta_nll(theory, data: ObservedData, params, mle) -> float:  # noqa: ANN001
    """−log L(params) − −log L(θ_MLE): the likelihood's own distance, valid where it is skewed."""
    nll = lambda t: negative_log_likelihood(theory, t, data)  # noqa: E731
    return nll_excess(nll, params, mle, theory.dtype)


def peer_row(method: str, source: str, case: str, v: dict, mle, crb, theta, dnll) -> dict:  # noqa: ANN001
    """A table row for a method that reports params and std without GAN steps."""
    return {
        "method": method,
        "source": source,
        "case": case,
        "params": v["params"],
        "std": v["std"],
        "mle": mle.theta,
        "crb": crb,
        "pull": (v["params"] - theta) / crb,
        "max_dmle_crb": float(np.max(np.abs(v["params"] - mle.theta) / crb)),
        "dnll_mle": dnll,
        "std_over_crb": v["std"] / crb,
        "steps": None,
        "seconds": v["seconds"],
        "steps_to_0.5": None,
        "seconds_to_0.5": None,
        "mle_seconds": mle.seconds,
    }


def closure_rows(args: argparse.Namespace, theory) -> list[dict]:  # noqa: ANN001
    cfg = load_config(args.config)
    theta = np.asarray(args.theta, dtype=float) if args.theta else theory.truth.numpy()
    rows = []
    for case in args.cases:
        data = simulate_observed(theory, theta, CASES[case], seed=args.seed)
        crb = crb_std(theory, theta, CASES[case])
        mle = fit_mle(theory, data)
        for source in args.sources:
            c = replace(cfg, source=source, seed=args.seed, compare_mle=False)
            if args.steps:
                c = replace(c, steps=args.steps)
            if args.events_per_step:
                c = replace(c, events_per_step=args.events_per_step)
            if args.lr_g:
                c = replace(c, gan=replace(c.gan, lr_g=args.lr_g))
            out = Path(args.runs) / f"{case}-{source}"
            m = run_outer_gan(theory, data, make_source(source, theory), c, out, progress=False)
            p = np.load(out / "params.npz")
            trace, k = p["trace"], c.data_replicas
            reach = steps_to_mle(trace, p["trace_steps"], mle.theta, crb, c.average_last, 0.5, k)
            rows.append(
                {
                    "method": "outer-gan",
                    "source": source,
                    "case": case,
                    "params": m["params_mean"],
                    "std": m["params_std"],
                    "mle": mle.theta,
                    "crb": crb,
                    "max_dmle_crb": float(np.max(np.abs(m["params_mean"] - mle.theta) / crb)),
                    "dnll_mle": delta_nll(theory, data, m["params_mean"], mle),
                    "std_over_crb": np.asarray(m["params_std"]) / crb,
                    "steps": m["steps"],
                    "seconds": m["seconds"],
                    "steps_to_0.5": reach,
                    "seconds_to_0.5": None if reach is None else m["seconds"] * reach / m["steps"],
                    "mle_seconds": mle.seconds,
                }
            )
        if args.npe:
            cfg_steps = args.steps or cfg.steps
            budget = cfg_steps * cfg.replicas * cfg.events_per_step * len(CASES[case])
            v = npe_baseline(
                theory, data, CASES[case], max(budget // sum(CASES[case]), 50), args.seed
            )
            dnll = delta_nll(theory, data, v["params"], mle)
            rows.append(peer_row("sbi-npe", f"{v['n_sims']} sims", case, v, mle, crb, theta, dnll))
        if args.vaim:
            v = vaim_inverse(theory, data)
            dnll = delta_nll(theory, data, v["params"], mle)
            rows.append(peer_row("vaim-invert", "vaim", case, v, mle, crb, theta, dnll))
    return rows


def pseudo_experiments(args: argparse.Namespace, theory) -> dict:  # noqa: ANN001
    cfg = load_config(args.config)
    rng = np.random.default_rng(args.seed)
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    counts = CASES[args.pseudo_case]
    pulls, covered, dmle, ratio, mle_covered, dnll = [], [], [], [], [], []
    t0 = time.perf_counter()
    for k in range(args.pseudo):
        truth = low + (high - low) * (0.1 + 0.8 * rng.random(len(low)))
        data = simulate_observed(theory, truth, counts, seed=args.seed * 1000 + k)
        c = replace(cfg, seed=k)
        if args.steps:
            c = replace(c, steps=args.steps)
        m = run_outer_gan(
            theory,
            data,
            make_source("exact", theory),
            c,
            Path(args.runs) / f"pseudo-{args.pseudo_case}-{k}",
            progress=False,
        )
        pull = (np.asarray(m["params_mean"]) - truth) / np.asarray(m["params_std"])
        pulls.append(np.asarray(m["pull"]))
        covered.append(np.abs(pull) <= 1)
        dmle.append(np.asarray(m["gan_minus_mle_crb"]))
        dnll.append(m["gan_minus_mle_nll"])
        ratio.append(np.asarray(m["std_over_crb"]))
        # the same question for the MLE ± its Hessian σ on the same data: the yardstick
        mle_covered.append(
            np.abs(np.asarray(m["mle"]["params"]) - truth) <= np.asarray(m["mle"]["std"])
        )
        print(
            f"  pseudo-experiment {k}: pull/σ_CRB {np.round(m['pull'], 2).tolist()}, "
            f"max |GAN − MLE|/σ_CRB {np.abs(dmle[-1]).max():.2f}, √(2ΔNLL) "
            f"{np.sqrt(2 * max(dnll[-1], 0)):.2f}",
            flush=True,
        )
    pulls, covered, dmle, ratio, mle_covered = map(
        np.asarray, (pulls, covered, dmle, ratio, mle_covered)
    )
    pooled = covered.mean()
    return {
        "case": args.pseudo_case,
        "n": args.pseudo,
        "param_names": list(theory.param_names),
        "pull_mean": pulls.mean(0),
        "pull_mean_se": pulls.std(0, ddof=1) / np.sqrt(len(pulls)),
        "pull_rms": np.sqrt((pulls**2).mean(0)),
        "coverage_1sigma": covered.mean(0),
        "coverage_pooled": pooled,
        "coverage_pooled_se": np.sqrt(pooled * (1 - pooled) / covered.size),
        "mle_coverage_1sigma": mle_covered.mean(0),
        "mle_coverage_pooled": mle_covered.mean(),
        "std_over_crb_mean": ratio.mean(0),
        "gan_minus_mle_rms": np.sqrt((dmle**2).mean(0)),
        "gan_minus_mle_max_per_set": np.abs(dmle).max(1),
        "gan_minus_mle_nll_per_set": np.asarray(dnll),
        "pulls": pulls,
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/inverse/proxy.yaml")
    parser.add_argument("--cases", nargs="*", default=["B"])
    parser.add_argument("--sources", nargs="*", default=["exact"])
    parser.add_argument("--theta", nargs="*", type=float, default=None)
    parser.add_argument("--no-vaim", dest="vaim", action="store_false")
    parser.add_argument("--npe", action="store_true", help="add sbi's NPE (pip install .[sbi])")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--events-per-step", type=int, default=None)
    parser.add_argument("--lr-g", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pseudo", type=int, default=0, help="pseudo-experiments (0: none)")
    parser.add_argument("--pseudo-case", default="C")
    parser.add_argument("--runs", default="runs/benchmarks/inverse")
    parser.add_argument("--out", default="runs/benchmarks/inverse.json")
    parser.add_argument(
        "--results", default=None, help="also write its page into this folder (docs/results)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    theory = get_theory("proxy")
    result: dict = {"environment": environment(), "args": vars(args)}
    if args.pseudo:
        s = pseudo_experiments(args, theory)
        result["pseudo"] = s
        print(
            f"\n{s['n']} pseudo-experiments, case {s['case']}, truths uniform in the prior box "
            f"(10% inset), exact source, {s['seconds']:.0f} s"
        )
        print(
            f"{'param':>6} {'pull mean':>10} {'± se':>6} {'pull rms':>9} {'1σ coverage':>12} "
            f"{'rms (GAN−MLE)/σ_CRB':>20} {'σ/σ_CRB':>8} {'MLE coverage':>13}"
        )
        for i, name in enumerate(s["param_names"]):
            print(
                f"{name:>6} {s['pull_mean'][i]:10.2f} {s['pull_mean_se'][i]:6.2f} "
                f"{s['pull_rms'][i]:9.2f} {s['coverage_1sigma'][i]:12.2f} "
                f"{s['gan_minus_mle_rms'][i]:20.2f} {s['std_over_crb_mean'][i]:8.2f} "
                f"{s['mle_coverage_1sigma'][i]:13.2f}"
            )
        print(
            f"pooled 1σ coverage: GAN {s['coverage_pooled']:.2f} ± {s['coverage_pooled_se']:.2f}"
            f" (binomial se, parameters pooled), MLE ± Hessian σ {s['mle_coverage_pooled']:.2f}"
        )
        worst = s["gan_minus_mle_max_per_set"]
        print(
            f"max |GAN − MLE|/σ_CRB per set: {np.round(worst, 2).tolist()} "
            f"({int((worst <= 0.5).sum())} of {len(worst)} within 0.5); √(2ΔNLL) per set: "
            f"{np.round(np.sqrt(2 * np.clip(s['gan_minus_mle_nll_per_set'], 0, None)), 2).tolist()}"
        )
    else:
        rows = closure_rows(args, theory)
        result["rows"] = rows
        print(
            f"{'method':>12} {'source':>14} {'case':>4} {'max|Δ_MLE|/σ':>13} "
            f"{'σ/σ_CRB (min–max)':>18} {'steps':>6} {'s':>6} {'steps→0.5':>9} "
            f"{'s→0.5':>6} {'MLE s':>6} {'√(2ΔNLL)':>9}"
        )
        for r in rows:
            ratio = np.asarray(r["std_over_crb"])
            reach = r["steps_to_0.5"]
            print(
                f"{r['method']:>12} {r['source']:>14} {r['case']:>4} {r['max_dmle_crb']:13.2f} "
                f"{f'{ratio.min():.2f}–{ratio.max():.2f}':>18} {str(r['steps'] or '-'):>6} "
                f"{r['seconds']:6.1f} {str(reach if reach is not None else '-'):>9} "
                f"{(r['seconds_to_0.5'] or float('nan')):6.1f} {r['mle_seconds']:6.2f} "
                f"{np.sqrt(2 * max(r['dnll_mle'], 0)):9.2f}"
            )
    results.publish("inverse", result, args.out, args.results)


if __name__ == "__main__":
    main()
