r"""Closure of the outer GAN through a surrogate, at truths drawn at random, for any theory.

    python benchmarks/closures.py --config configs/inverse/peak.yaml \
        --source runs/flow-peak/checkpoints/best.ckpt --truths 3 --results docs/results

For each truth (drawn uniformly inside the prior box shrunk by ``--inset`` per side, from its own
seed ``TRUTH_SEED``, never used to choose anything), data of the theory's reference size
(``reference_counts``, or ``--counts``) are simulated with the exact theory, fitted by the outer
GAN of ``--config`` with ``--source`` as its event source, and compared with the maximum
likelihood of the exact theory on the same data: (GAN − MLE)/σ_CRB and σ/σ_CRB per parameter.
Writes ``NAME.json`` and ``NAME.md`` into ``--results`` (``--name``, default ``closures-<theory>``;
name runs through different sources apart, e.g. ``--name closures-proxy-flow-zuko``). The page's
command is the one that ran (``sys.argv``); each row also holds the steps the stopping rule took,
σ/σ_post against the exact posterior, the MLE's distance to the box's nearest face in σ_CRB (the
box cuts the likelihood where that is small) and, for a surrogate with a density, its own
noise-free θ shift at the truth (`theta_shift_expected`): the source at θ looks like the exact
theory at θ + shift, so a perfect fitter through it lands at MLE − shift; the page shows −shift
beside GAN − MLE as the surrogate's share. On the truth's own data, with no noise-free
approximation, the same split is made by `split_miss`: the maximum likelihood with the surrogate
as the model against the exact one, binned alike, is the surrogate's share of the miss, and the
rest is the outer GAN's own.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inverse.config import to_dict, with_overrides  # noqa: E402
from inverse.report import sigma_chance_range  # noqa: E402
from inverse.sources import make_source  # noqa: E402
from inverse.training import fit_outer_gan, load_config  # noqa: E402
from surrogates.data import CASES, event_sampler, simulate_observed  # noqa: E402
from surrogates.errors import InputError  # noqa: E402
from surrogates.likelihood.optimize import best_of_starts  # noqa: E402
from surrogates.likelihood.surrogate import SurrogateLikelihood, quantile_edges  # noqa: E402
from surrogates.metrics import theta_shift_expected  # noqa: E402
from surrogates.runs import environment, write_json, write_text  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402

TRUTH_SEED = 20261203


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument(
        "--source",
        required=True,
        help="exact, a zoo name or a .ckpt, or several of the last two joined by commas: their "
        "equal-weight mixture (an ensemble)",
    )
    p.add_argument("--truths", type=int, default=3)
    p.add_argument(
        "--inset", type=float, default=0.1, help="fraction of the box kept free per side"
    )
    p.add_argument("--counts", default=None, help="N1,N2 (default: the theory's reference_counts)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--truth-seed", type=int, default=TRUTH_SEED, help="seed of the truths")
    p.add_argument("--out", default="runs/benchmarks/closures")
    p.add_argument("--results", default="docs/results")
    p.add_argument("--name", default=None, help="page and JSON name (default closures-<theory>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of --config (repeatable): replicas=64, gan.d_steps=3",
    )
    args = p.parse_args(argv)
    command = shlex.join(
        ["python", "benchmarks/closures.py", *(sys.argv[1:] if argv is None else argv)]
    )
    try:
        cfg = with_overrides(load_config(args.config), args.set)
    except InputError as err:
        p.error(str(err))
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
            "steps": m.get("steps"),
            "stop_reason": m.get("stop_reason"),
            "settled_at": m.get("settled_at"),
            "gan_minus_mle_nll": m.get("gan_minus_mle_nll"),
            "sigma_over_post": None
            if m.get("sigma_over_post") is None
            else np.asarray(m["sigma_over_post"]).tolist(),
            "mle_face_crb": face_distance(np.asarray(m["mle"]["params"]), low, high, m["crb_std"]),
            "source_shift_crb": source_shift(source, theory, theta, counts),
            **split_miss(source, theory, data, m),
        }
        rows.append(row)
        if "split_error" in row:
            print(f"truth {k}: no split of the miss ({row['split_error']})", flush=True)
        print(
            f"truth {k}: (GAN − MLE)/σ_CRB {np.round(row['gan_minus_mle_crb'], 2).tolist()}, "
            f"σ/σ_CRB {np.round(row['std_over_crb'], 2).tolist()}, {row['steps']} steps, "
            f"{row['seconds']:.0f} s",
            flush=True,
        )
    result = {
        "theory": theory.name,
        "config": args.config,
        "overrides": args.set,
        "fit_config": to_dict(cfg),
        "source": args.source,
        "counts": counts,
        "steps": cfg.steps,
        "truth_seed": args.truth_seed,
        "inset": args.inset,
        "closures": rows,
        "seconds": time.perf_counter() - t0,
        "command": command,
        "environment": environment(),
    }
    name = args.name or f"closures-{theory.name}"
    write_json(Path(args.results) / f"{name}.json", result)
    text = table(result, theory.param_names)
    write_text(Path(args.results) / f"{name}.md", text)
    print(text)
    return 0


def source_shift(source, theory, theta: np.ndarray, counts) -> list[float] | None:  # noqa: ANN001
    """A surrogate's own noise-free θ shift at ``theta`` in σ_CRB at ``counts``: where a perfect
    fitter through it would land against the exact theory (None for the exact source or one
    with no density)."""
    if source.is_exact or not source.has_density:
        return None
    t = torch.as_tensor(theta, dtype=theory.dtype).unsqueeze(0)
    return np.asarray(theta_shift_expected(source, theory, t, counts=counts)).tolist()


def split_miss(source, theory, data, metrics: dict, per_bin: int = 100) -> dict:  # noqa: ANN001
    """A density source's miss split on this truth's own data: the maximum likelihood with the
    source as the model minus the exact one, both binned alike (``per_bin`` observed events per
    bin, 50–300 bins per channel, edges at the data's quantiles, so the binning's own loss
    largely cancels), is the source's share (``source_mle_minus_mle_crb``); GAN − MLE minus that
    share is the outer GAN's own (``gan_own_crb``); ``split_converged`` says whether both fits
    converged inside the box. Empty for the exact source, one without a density or events of
    more than one dimension; ``split_error`` alone where no start of a fit succeeded."""
    if source.is_exact or not source.has_density or theory.event_dim != 1:
        return {}
    lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
    edges = [
        quantile_edges([e[:, 0]], int(np.clip(len(e) // per_bin, 50, 300)), lo, hi)[0]
        for e in data.events
    ]
    exposure = np.asarray(data.exposure, dtype=float)
    mle, crb = np.asarray(metrics["mle"]["params"]), np.asarray(metrics["crb_std"])
    starts = (mle, np.asarray(metrics["params_mean"]))
    # the exact density's own sampler: it needs no gradients here (the fits take finite
    # differences), so a density theory without them is split too
    likes = [
        SurrogateLikelihood(model, theory, edges, method="density", nodes=8)
        for model in (event_sampler(theory), source)
    ]
    counts = likes[0].histogram(data.events)  # the same bins: the same counts for both
    fits = []
    for like in likes:
        # from the MLE and from the GAN's θ, the lower −log L kept
        fit, errors = best_of_starts(partial(like.fit, counts, exposure), starts)
        if fit is None:  # the closure's numbers stand without the split
            return {"split_error": errors[0][:200]}
        fits.append(fit)
    share = (np.asarray(fits[1].theta) - np.asarray(fits[0].theta)) / crb
    return {
        "source_mle_minus_mle_crb": share.tolist(),
        "gan_own_crb": (np.asarray(metrics["gan_minus_mle_crb"]) - share).tolist(),
        "split_converged": all(f.success and not f.at_boundary for f in fits),
        "split_bins": [len(e) - 1 for e in edges],
    }


def face_distance(theta: np.ndarray, low: np.ndarray, high: np.ndarray, crb) -> list[float]:
    """Per parameter, the distance of θ to the prior box's nearest face in units of ``crb``.

    >>> face_distance(np.array([0.5, 0.9]), np.zeros(2), np.ones(2), [0.1, 0.05])
    [5.0, 2.0]
    """
    d = np.minimum(theta - low, high - theta) / np.asarray(crb, dtype=float)
    return [round(float(v), 6) for v in d]


def table(r: dict, names: tuple[str, ...]) -> str:
    """The page: per truth (GAN − MLE)/σ_CRB and σ/σ_CRB per parameter, and where the run holds
    them σ/σ_post, a density source's noise-free shift and its share of the miss on the data
    against the GAN's own (`split_miss`), the MLE's distance to the box's nearest face in σ_CRB
    and the steps taken."""
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = []

    def line(label: str, values, spec: str) -> None:
        if values is not None:
            rows.append(f"| {label} | " + " | ".join(format(v, spec) for v in values) + " |")

    for k, c in enumerate(r["closures"]):
        line(f"truth {k}: θ", c["truth"], ".4g")
        line(f"truth {k}: (GAN − MLE)/σ_CRB", c["gan_minus_mle_crb"], "+.2f")
        line(f"truth {k}: σ/σ_CRB", c["std_over_crb"], ".2f")
        line(f"truth {k}: σ/σ_post", c.get("sigma_over_post"), ".2f")
        shift = c.get(
            "source_shift_crb"
        )  # the source at θ looks like the exact theory at θ + shift
        line(
            f"truth {k}: source alone, −θ shift / σ_CRB",
            None if shift is None else [-v for v in shift],
            "+.2f",
        )
        unsure = "" if c.get("split_converged", True) else " (a fit did not converge)"
        line(
            f"truth {k}: the source's share: its own MLE − the MLE, binned alike{unsure} / σ_CRB",
            c.get("source_mle_minus_mle_crb"),
            "+.2f",
        )
        line(
            f"truth {k}: the GAN's own: (GAN − MLE) − the source's share / σ_CRB",
            c.get("gan_own_crb"),
            "+.2f",
        )
        line(f"truth {k}: MLE to the box's face / σ_CRB", c.get("mle_face_crb"), ".1f")
    worst = max(max(abs(v) for v in c["gan_minus_mle_crb"]) for c in r["closures"])
    secs = [c["seconds"] for c in r["closures"]]
    steps = [c["steps"] for c in r["closures"] if c.get("steps") is not None]
    command = r.get("command") or (
        f"python benchmarks/closures.py --config {r['config']} --source {r['source']} "
        f"--truths {len(r['closures'])}"
    )
    ran = (
        f"{min(steps)}–{max(steps)} of at most {r['steps']} steps"
        if steps
        else f"{r['steps']} steps"
    )
    return (
        f"# Outer GAN closures on `{r['theory']}` through `{r['source']}`\n\n"
        f"Generated by `{command}`: data of {r['counts']} expected events per channel at truths "
        f"drawn at random (seed {r['truth_seed']}, box inset {r['inset']:g} per side), the outer GAN "
        f"({ran}, {min(secs):.0f}–{max(secs):.0f} s of training each) against the exact maximum "
        "likelihood on the same data.\n\n"
        + head
        + "\n".join(rows)
        + f"\n\nLargest |GAN − MLE| / σ_CRB: {worst:.2f}.\n"
        + chance_line(r.get("fit_config"))
    )


def chance_line(fit_config: dict | None) -> str:
    """The page's note on σ's own scatter: with B bootstrap replicas an efficient fitter's σ/σ_CRB
    falls in `sigma_chance_range` (B) 95% of the time ('' for a JSON without its config)."""
    if not fit_config:
        return ""
    b = fit_config["replicas"] - fit_config["data_replicas"]
    lo, hi = sigma_chance_range(b)
    return (
        f"\nσ is the spread of {b} bootstrap replicas, itself uncertain: an efficient fitter's "
        f"σ/σ_CRB falls in [{lo:.2f}, {hi:.2f}] 95% of the time, so about 1 entry in 20 falls "
        "outside by chance (`inverse.report.sigma_chance_range`).\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
