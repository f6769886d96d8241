"""Peers of the outer GAN on the study's pseudo-experiments at a matched simulation budget.

    python benchmarks/peers.py [--cases C B] [--n 300 100] [--methods npe fmpe vaim]
        [--seed 1] [--results docs/results]

Per case: sbi's NPE (neural spline flow) and flow-matching NPE (FMPE) are trained once
(`inverse.peers.train_peer`) on data sets simulated at θ uniform in the prior box, as many events
in all as one outer-GAN fit of the case generates (``steps × replicas × events_per_step ×
channels`` of ``--config``); the VAIM inverse (`inverse.peers.vaim_posterior`, the shipped
``vaim`` checkpoint: no simulations at fit time) is scored beside them. Each peer then gives
posterior draws for every pseudo-experiment (`inverse.study.pseudo_experiment` when that module is
present, else the same recipe here: truth uniform in the prior box, `simulate_observed` at it),
and the exact posterior (`surrogates.likelihood.posterior.exact_posterior`: emcee on the exact
likelihood × the prior box) is the yardstick on the first ``--posterior-sets`` sets of each case
(minutes a set on 2 cores, so a subset), cached per set under ``--runs``: a rerun resumes, and
``--rescore`` keeps an earlier run's peer answers and only adds the yardstick.

Per peer and parameter: 1σ coverage of mean ± std with its binomial error, the SBC rank χ²
p-value (rank of the truth among the draws, 10 bins), rms pull (mean − truth)/std, the distance
to the exact posterior mean in σ_post, σ/σ_post, the training and per-data-set wall time and the
simulation budget. Prints a table, writes JSON (``--out``) and the page ``docs/results/peers.md``
with ``--results``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path
import torch
from scipy.stats import chisquare

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from inverse.peers import matched_n_sims, train_peer, vaim_posterior  # noqa: E402
from inverse.training import load_config  # noqa: E402
from surrogates.data import CASES, simulate_observed  # noqa: E402
from surrogates.errors import InputError  # noqa: E402
from surrogates.runs import cli_errors, environment, write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402

SBC_BINS = 10
SCORES = ("coverage_1sigma", "coverage_se", "coverage_pooled", "sbc_pvalue", "pull_mean",
          "pull_rms", "std_mean", "dpost_mean", "dpost_rms", "std_over_post")  # fmt: skip


def pseudo_source():  # noqa: ANN201
    """(function, name) making pseudo-experiment i: the study's when present, else the local one."""
    try:
        from inverse.study import pseudo_experiment

        return pseudo_experiment, "inverse.study.pseudo_experiment"
    except ImportError:

        def local(theory, case, i, seed, truths="prior"):  # noqa: ANN001, ANN202
            rng = np.random.default_rng([seed, i])
            low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
            truth = low + (high - low) * rng.random(len(low))
            return truth, simulate_observed(
                theory, truth, CASES[case], seed=int(rng.integers(2**62))
            )

        return local, "benchmarks/peers.py local (truth uniform in the prior box)"


def posterior_cached(theory, data, path: Path, seed: int, min_ess: int) -> dict:  # noqa: ANN001
    """The exact posterior's mean and std for one data set (`exact_posterior`: emcee on the
    exact likelihood × the prior box, walkers started around the MLE), cached as JSON under
    ``path`` so a rerun resumes."""
    if path.is_file():
        import json

        return json.loads(path.read_text())
    from surrogates.likelihood.posterior import exact_posterior

    post = exact_posterior(theory, data, seed=seed, min_ess=min_ess)
    rec = {"mean": post.mean, "std": post.std, "rhat": post.rhat, "ess": post.ess,
           "converged": bool(post.converged), "seconds": post.seconds}  # fmt: skip
    write_json(path, rec)
    return rec


def sbc_pvalues(ranks: np.ndarray, n_draws: int) -> np.ndarray:
    """χ² p-value per parameter of the ranks (0 … n_draws) against uniform, in SBC_BINS bins."""
    edges = np.linspace(0, n_draws + 1, SBC_BINS + 1)
    return np.array(
        [chisquare(np.histogram(ranks[:, j], edges)[0]).pvalue for j in range(ranks.shape[1])]
    )


def score(means, stds, ranks, truths, post, n_draws: int) -> dict:  # noqa: ANN001
    """The per-parameter statistics of one peer over the pseudo-experiments."""
    means, stds, truths = map(np.asarray, (means, stds, truths))
    covered = np.abs(means - truths) <= stds
    cov = covered.mean(0)
    pull = (means - truths) / stds
    out = {
        "coverage_1sigma": cov,
        "coverage_se": np.sqrt(cov * (1 - cov) / len(means)),
        "coverage_pooled": covered.mean(),
        "sbc_pvalue": sbc_pvalues(np.asarray(ranks), n_draws),
        "pull_mean": pull.mean(0),
        "pull_rms": np.sqrt((pull**2).mean(0)),
        "std_mean": stds.mean(0),
    }
    if post is not None:
        pm, ps = np.asarray(post["mean"]), np.asarray(post["std"])
        d = np.abs(means[: len(pm)] - pm) / ps
        out |= {
            "dpost_mean": d.mean(0),
            "dpost_rms": np.sqrt((d**2).mean(0)),
            "std_over_post": (stds[: len(pm)] / ps).mean(0),
        }
    return out


def run_case(args: argparse.Namespace, theory, case: str, n: int, previous=None) -> dict:  # noqa: ANN001
    cfg = load_config(args.config)
    counts = CASES[case]
    matched, events = matched_n_sims(cfg.steps, cfg.replicas, cfg.events_per_step, counts)
    n_sims = args.sims or matched
    make, pseudo_name = pseudo_source()
    sets = [make(theory, case, i, args.seed) for i in range(n)]
    truths = np.stack([np.asarray(t, dtype=float) for t, _ in sets])
    post = None
    k = min(dict(zip(args.cases, args.posterior_sets, strict=False)).get(case, n), n)
    if k > 0:
        t0 = time.perf_counter()
        recs = [
            posterior_cached(theory, data, Path(args.runs) / f"posterior-{case}-seed{args.seed}-{i}.json",
                             args.seed + i, args.min_ess)
            for i, (_, data) in enumerate(sets[:k])
        ]  # fmt: skip
        post = {
            "sets": k,
            "min_ess": args.min_ess,
            "mean": np.stack([r["mean"] for r in recs]),
            "std": np.stack([r["std"] for r in recs]),
            "rhat_max": float(np.max([r["rhat"] for r in recs])),
            "ess_min": float(np.min([r["ess"] for r in recs])),
            "converged": int(sum(r["converged"] for r in recs)),
            "seconds_per_set": float(np.mean([r["seconds"] for r in recs])),
            "seconds": time.perf_counter() - t0,
        }
        print(f"case {case}: exact posterior on {k} sets in {post['seconds']:.0f} s "
              f"({post['converged']} converged, max R̂ {post['rhat_max']:.3f})", flush=True)  # fmt: skip
    peers = {}
    for method in args.methods:
        done = (previous or {}).get(method)
        if done is not None:  # --rescore: the peer's answers kept, the yardstick recomputed
            keep = {k: v for k, v in done.items() if k not in SCORES}
            peers[method] = keep | score(
                done["means"], done["stds"], done["ranks"], truths, post, args.draws
            )
            continue
        rec: dict = {"method": method}
        if method == "vaim":
            rec |= {"n_sims": 0, "events_simulated": 0, "train_seconds": None,
                    "budget": "none at fit time (the shipped checkpoint's training set)"}  # fmt: skip
            fit = lambda d, i: vaim_posterior(theory, d, n_draws=args.draws, seed=i)  # noqa: E731
        else:
            peer = train_peer(
                theory, counts, method, n_sims=n_sims, seed=args.seed, bins=args.bins,
                max_epochs=args.max_epochs,
            )  # fmt: skip
            rec |= {"n_sims": peer.n_sims, "events_simulated": peer.events_simulated,
                    "sim_seconds": peer.sim_seconds, "train_seconds": peer.train_seconds,
                    "epochs": peer.epochs, "budget": f"{peer.n_sims} sets", **peer.info}  # fmt: skip
            fit = lambda d, i, p=peer: p.sample(d, args.draws, seed=i)  # noqa: E731
            print(
                f"case {case} {method}: {peer.n_sims} sets ({peer.events_simulated} events) "
                f"simulated in {peer.sim_seconds:.0f} s, trained {peer.epochs} epochs in "
                f"{peer.train_seconds:.0f} s",
                flush=True,
            )
        means, stds, ranks, secs = [], [], [], []
        for i, (truth, data) in enumerate(sets):
            r = fit(data, i)
            means.append(r.mean)
            stds.append(r.std)
            ranks.append((r.draws < np.asarray(truth)).sum(0))
            secs.append(r.seconds)
        rec |= score(means, stds, ranks, truths, post, args.draws)
        rec |= {"seconds_per_set": float(np.mean(secs)), "means": means, "stds": stds,
                "ranks": ranks}  # fmt: skip
        peers[method] = rec
    return {
        "case": case,
        "n": n,
        "counts": counts,
        "pseudo_experiments": pseudo_name,
        "matched_budget": {
            "n_sims": n_sims,
            "matched_n_sims": matched,
            "gan_events": events,
            "rule": f"one outer-GAN fit ({args.config}): steps {cfg.steps} × "
            f"replicas {cfg.replicas} × events_per_step {cfg.events_per_step} × "
            f"{len(counts)} channels = {events} events = {matched} data sets of "
            f"{int(sum(counts))} expected events"
            + (f" (this run: {n_sims}, set by --sims)" if n_sims != matched else ""),
        },
        "truths": truths,
        "exact_posterior": post,
        "peers": peers,
    }


PER_SET = ("means", "stds", "ranks")


def compact(result: dict) -> dict:
    """The result without its per-set arrays (truths, answers, ranks, posterior means)."""
    cases = []
    for c in result["cases"]:
        post = c["exact_posterior"] and {
            k: v for k, v in c["exact_posterior"].items() if k not in ("mean", "std")
        }
        peers = {m: {k: v for k, v in r.items() if k not in PER_SET} for m, r in c["peers"].items()}
        cases.append(c | {"truths": None, "exact_posterior": post, "peers": peers})
    return result | {"cases": cases}


def print_case(c: dict, names) -> None:  # noqa: ANN001
    print(f"\ncase {c['case']}: {c['n']} pseudo-experiments ({c['pseudo_experiments']}); budget "
          f"{c['matched_budget']['rule']}")  # fmt: skip
    if c["exact_posterior"] is None:
        print("  no exact posterior in this run (--posterior-sets 0)")
    head = f"{'peer':>5} {'param':>5} {'cov':>5} {'±':>5} {'SBC p':>6} {'pull rms':>8}"
    print(head + f" {'|Δ|/σ_post':>10} {'σ/σ_post':>8} {'train s':>8} {'s/set':>6}")
    for m, r in c["peers"].items():
        for j, name in enumerate(names):
            dp = r.get("dpost_mean")
            sp = r.get("std_over_post")
            print(
                f"{m:>5} {name:>5} {r['coverage_1sigma'][j]:5.2f} {r['coverage_se'][j]:5.2f} "
                f"{r['sbc_pvalue'][j]:6.3f} {r['pull_rms'][j]:8.2f} "
                f"{'-' if dp is None else f'{dp[j]:.2f}':>10} "
                f"{'-' if sp is None else f'{sp[j]:.2f}':>8} "
                f"{r['train_seconds'] or 0:8.0f} {r['seconds_per_set']:6.3f}"
            )


@cli_errors
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/inverse/proxy.yaml", help="GAN budget")
    parser.add_argument("--cases", nargs="*", default=["C", "B"])
    parser.add_argument("--n", nargs="*", type=int, default=[300, 100], help="sets per case")
    parser.add_argument("--methods", nargs="*", default=["npe", "fmpe", "vaim"])
    parser.add_argument("--sims", type=int, default=0, help="override the matched budget (sets)")
    parser.add_argument("--bins", type=int, default=16)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--min-ess", type=int, default=400, help="exact posterior: ESS target")
    parser.add_argument(
        "--posterior-sets", nargs="*", type=int, default=[20, 5],
        help="per case: the first this many sets get the exact posterior (0: none; ~0.5-3 min "
        "a set on 2 busy cores)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", default="runs/benchmarks/peers")
    parser.add_argument("--out", default="runs/benchmarks/peers.json")
    parser.add_argument("--results", default=None, help="also write its page into this folder")
    parser.add_argument(
        "--rescore", default=None, help="JSON of an earlier run: keep its peers' answers, "
        "recompute the exact posterior and the scores (same --seed, --draws, cases and --n)"
    )  # fmt: skip
    args = parser.parse_args()
    if len(args.n) != len(args.cases):
        raise InputError(f"--n needs one count per case ({len(args.cases)}), got {len(args.n)}")
    if unknown := [c for c in args.cases if c not in CASES]:
        raise InputError(f"unknown case {unknown[0]}: choose from {', '.join(CASES)}")
    if unknown := [m for m in args.methods if m not in ("npe", "fmpe", "vaim")]:
        raise InputError(f"unknown peer {unknown[0]}: choose from npe fmpe vaim")
    torch.set_num_threads(1)
    theory = get_theory("proxy")
    result: dict = {"environment": environment(), "args": vars(args),
                    "param_names": list(theory.param_names), "cases": []}  # fmt: skip
    before = {}
    if args.rescore:
        import json

        old = json.loads(Path(args.rescore).read_text())
        if old["args"]["seed"] != args.seed or old["args"]["draws"] != args.draws:
            raise InputError(f"{args.rescore} was made with another --seed or --draws")
        before = {(c["case"], c["n"]): c["peers"] for c in old["cases"]}
    for case, n in zip(args.cases, args.n, strict=True):
        c = run_case(args, theory, case, n, before.get((case, n)))
        result["cases"].append(c)
        print_case(c, theory.param_names)
        write_json(args.out, result)  # each finished case kept
    out = write_json(args.out, result)
    print(f"wrote {out}")
    if args.results:  # the page and a compact JSON beside it (no per-set arrays)
        page = compact(result)
        kept = write_json(Path(args.results) / "peers.json", page)
        results.write_benchmark_page("peers", page, args.results, kept)
    return 0


if __name__ == "__main__":
    sys.exit(main())
