"""The outer GAN against maximum likelihood on many data sets at one truth, with the exact source:
how far the GAN's θ falls from the MLE on the same data when no surrogate is involved.

The theory is the config's (``--config``; any theory with a differentiable density). At one truth
(drawn as `benchmarks/event_closure.py` and `benchmarks/closures.py` draw theirs: ``--truth-seed``,
the ``--truth-index``-th draw, uniform in the inner 80% of the box), data sets of ``--counts``
events (default: case B for the proxy, the theory's reference counts for others), one per
``--data-seeds`` seed. For the proxy, ``--detector smear`` (the default with
``configs/inverse/smeared.yaml``) takes them from proxy-smeared, the proxy followed by the smearing
detector. Each data set is fitted twice:

- by the outer GAN with the exact source: the theory's inverse CDF, then the detector when there
  is one. It is built, trained and summarized as `inverse.fit` does it, with the config and its
  ``--set`` overrides;
- by maximum likelihood: the exact density, folded through the detector when there is one.

For each data set the page gives (GAN − MLE)/σ_CRB at the truth (for the data's counts) and the spread of the GAN's
data replicas (independent generators on the same data, in σ_CRB). Over the data sets it gives the
mean, the standard deviation and the largest |GAN − MLE| per parameter. A mean away from 0 is a
bias of the GAN's estimate against the MLE. A standard deviation well above the data replicas'
spread / √(data replicas) means the GAN's estimate differs from the MLE's from data set to data
set, beyond the generators' own scatter.

    python benchmarks/gan_vs_mle.py --truth-seed 20261222 --truth-index 2 \\
        --data-seeds 101,102,103,104,105,106 --detector smear --results docs/results
    python benchmarks/gan_vs_mle.py --config configs/inverse/peak.yaml --truth-seed 4244 \\
        --truth-index 7 --data-seeds 1,2,3 --name gan_vs_mle-peak

Writes ``<name>.json`` and ``<name>.md`` into ``--results``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from event_closure import (  # noqa: E402
    draw_truths,
    folded_model,
    page_again,
    publish,
    run_exact_gan,
    smeared_case_b,
)

from inverse.config import FitConfig, to_dict, with_overrides  # noqa: E402
from inverse.training import load_config  # noqa: E402
from surrogates.data import CASES, simulate_observed  # noqa: E402
from surrogates.errors import InputError  # noqa: E402
from surrogates.runs import environment  # noqa: E402
from surrogates.theory import Theory, get_theory  # noqa: E402


def true_level_theory(cfg: FitConfig, detector: str) -> Theory:
    """The theory whose exact source the GAN runs: the config's, the proxy for proxy-smeared (the
    detector is then ``--detector``'s), or an InputError where ``--detector smear`` meets
    another theory, or another theory's config has a detector this benchmark would not apply."""
    name = "proxy" if cfg.theory == "proxy-smeared" else cfg.theory
    theory = get_theory(name)
    if detector == "smear" and theory.name != "proxy":
        raise InputError(
            f"--detector smear is the proxy's smearing detector; the config's theory is "
            f"'{theory.name}': use --detector none"
        )
    if theory.name != "proxy" and cfg.detector is not None:
        raise InputError(
            f"the config has a detector block for '{theory.name}', which this benchmark does not "
            "apply (it knows only the proxy's smearing detector): use a config without one"
        )
    return theory


def default_counts(theory: Theory) -> list[float]:
    """Case B for the proxy, else the theory's reference counts (case B when it has none)."""
    if theory.name == "proxy" or not theory.reference_counts:
        return [float(c) for c in CASES["B"]]
    return [float(c) for c in theory.reference_counts]


def fit_data_set(
    truth: np.ndarray,
    data_seed: int,
    detector: str,
    cfg: FitConfig,
    out: Path,
    counts: list[float] | None = None,
) -> dict:
    """One data set at ``truth`` (``counts`` events, default `default_counts`): the exact-source
    outer GAN against the MLE."""
    theory = true_level_theory(cfg, detector)
    counts = default_counts(theory) if counts is None else counts
    if detector == "smear":
        folded = folded_model(90)
        data = smeared_case_b(truth, data_seed, counts)
    else:
        folded = None
        data = simulate_observed(theory, truth, counts, seed=data_seed)
    metrics, seconds, yardstick = run_exact_gan(data, folded, cfg, out, theory)
    mle = yardstick.fit(start=truth)
    counts = data.expected_counts if data.expected_counts is not None else data.counts
    crb = np.asarray(yardstick.crb_std(truth, counts))
    mean = np.asarray(metrics["params_mean"])
    scatter = metrics.get("scatter_std")
    return {
        "data_seed": data_seed,
        "gan_minus_mle_crb": ((mean - mle.theta) / crb).tolist(),
        "mle_minus_truth_crb": ((mle.theta - truth) / crb).tolist(),
        "std_over_crb": (np.asarray(metrics["params_std"]) / crb).tolist(),
        "data_replicas_spread_crb": None
        if scatter is None
        else (np.asarray(scatter) / crb).tolist(),
        "cut_by_box": sorted((metrics.get("at_face") or {}).keys()),
        "steps": metrics.get("steps"),
        "stop_reason": metrics.get("stop_reason"),
        "seconds": seconds,
    }


def table(r: dict, names: tuple[str, ...]) -> str:
    """The page: one row per data set, then the mean, sd and max |GAN − MLE| over them."""
    env = r.get("environment") or {}
    made = f" at commit {env['git_commit'][:7]}" if env.get("git_commit") else ""
    made += " with uncommitted changes" if env.get("git_dirty") else ""
    made += f" on {env['date']}" if env.get("date") else ""
    made += f" ({env['note']})" if env.get("note") else ""
    fit = r["fit_config"]
    gan = fit["gan"]
    scaling = (
        "steps scaled per parameter"
        if gan.get("precondition_diagonal", True)
        else "steps whitened with the correlations"
    )
    theory = r.get("theory", "proxy")  # pages before other theories: the proxy's
    where = (
        "proxy-smeared (the proxy, then the smearing detector)"
        if r["detector"] == "smear"
        else f"the {theory}, no detector"
        if theory == "proxy"
        else f"theory '{theory}', no detector"
    )
    counts = r.get("counts") or CASES["B"]
    size = "Case-B data" if list(counts) == list(CASES["B"]) else "Data"
    size += " (" + " + ".join(f"{int(c)}" for c in counts) + " events)"
    head = "| data set | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    lines = [
        "# The outer GAN against maximum likelihood, exact source\n",
        f"Generated by `{r['command']}`{made}.",
        f"{size} of {where} at one truth (truth seed {r['truth_seed']}, draw "
        f"{r['truth_index']}: {np.round(r['truth'], 3).tolist()}), {len(r['data_sets'])} data "
        f"sets. The outer GAN ({r['config']}{', ' + ', '.join(r['overrides']) if r['overrides'] else ''}: "
        f"{fit['data_replicas']} data replicas of {fit['replicas']}, {scaling}, "
        f"{fit['events_per_step']} events per step) with the exact source, against the exact"
        f"{' folded' if r['detector'] == 'smear' else ''} likelihood's MLE on the same data, in "
        "σ_CRB at the truth for these counts.\n",
        "(GAN − MLE)/σ_CRB:\n",
    ]
    rows = [
        f"| {d['data_seed']} | " + " | ".join(f"{v:+.2f}" for v in d["gan_minus_mle_crb"]) + " |"
        for d in r["data_sets"]
    ]
    diff = np.asarray([d["gan_minus_mle_crb"] for d in r["data_sets"]])
    rows.append("| mean | " + " | ".join(f"{v:+.2f}" for v in diff.mean(0)) + " |")
    if len(diff) > 1:
        rows.append("| sd | " + " | ".join(f"{v:.2f}" for v in diff.std(0, ddof=1)) + " |")
    rows.append("| max \\|·\\| | " + " | ".join(f"{v:.2f}" for v in np.abs(diff).max(0)) + " |")
    lines.append(head + "\n".join(rows))
    spread = [
        d["data_replicas_spread_crb"] for d in r["data_sets"] if d["data_replicas_spread_crb"]
    ]
    if spread:
        rms = np.sqrt(np.mean(np.square(spread), 0))
        lines.append(
            "\nThe data replicas' spread on the same data (rms over the data sets, σ_CRB): "
            + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, rms, strict=True))
            + f"; their mean's share of it is this / √{fit['data_replicas']}."
        )
    cut = [
        f"{d['data_seed']}: {', '.join(d['cut_by_box'])}" for d in r["data_sets"] if d["cut_by_box"]
    ]
    if cut:
        lines.append("\nCut by the prior box (θ and σ from the face rule): " + "; ".join(cut) + ".")
    stops = ", ".join(f"{d['steps']} ({d['stop_reason']})" for d in r["data_sets"])
    lines.append(f"\nSteps per data set: {stops}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from-json", help="only write the page again from this result JSON")
    p.add_argument("--truth-seed", type=int, help="seed of the truth draws (required)")
    p.add_argument("--truth-index", type=int, default=0, help="which draw of that seed")
    p.add_argument("--data-seeds", help="comma-separated seeds, one data set each (required)")
    p.add_argument(
        "--detector",
        choices=("smear", "none"),
        default=None,
        help="the proxy's smearing detector or none (default: smear for a proxy-smeared config)",
    )
    p.add_argument("--config", default="configs/inverse/smeared.yaml")
    p.add_argument("--counts", help="N1,N2,… events per channel (default: see the module's doc)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a fit-config setting (gan.precondition_diagonal=false, data_replicas=8)",
    )
    p.add_argument("--out", default="runs/gan-vs-mle")
    p.add_argument("--results", default="docs/results")
    p.add_argument("--name", default="gan_vs_mle")
    args = p.parse_args(argv)
    if args.from_json:

        def page(r: dict) -> str:
            return table(r, get_theory(r.get("theory", "proxy")).param_names)

        print(f"wrote {page_again(args.from_json, args.results, page)}")
        return 0
    if args.truth_seed is None or not args.data_seeds:
        p.error("give --truth-seed and --data-seeds (or --from-json)")
    try:
        seeds = [int(s) for s in args.data_seeds.split(",") if s.strip()]
        cfg = with_overrides(load_config(args.config), args.set)
        detector = args.detector or ("smear" if cfg.theory == "proxy-smeared" else "none")
        theory = true_level_theory(cfg, detector)
        counts = (
            [float(c) for c in args.counts.split(",")] if args.counts else default_counts(theory)
        )
        if len(counts) != len(theory.channels) or min(counts) <= 0:
            raise InputError(
                f"--counts needs {len(theory.channels)} positive numbers (one per channel of "
                f"'{theory.name}'), got {args.counts}"
            )
    except (ValueError, InputError) as err:
        p.error(str(err))
    if not seeds:
        p.error("--data-seeds needs at least one seed")
    cfg = replace(cfg, progress=False)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    names = theory.param_names
    truth = draw_truths(theory, args.truth_seed, args.truth_index + 1)[-1]
    t0 = time.perf_counter()
    runs = []
    for seed in seeds:
        out = Path(args.out) / f"data-{seed}"
        d = fit_data_set(truth, seed, detector, cfg, out, counts)
        runs.append(d)
        print(
            f"data set {seed}: GAN − MLE = {np.round(d['gan_minus_mle_crb'], 2).tolist()}",
            flush=True,
        )
    result = {
        "command": "python benchmarks/gan_vs_mle.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "truth_seed": args.truth_seed,
        "truth_index": args.truth_index,
        "truth": truth.tolist(),
        "theory": theory.name,
        "counts": counts,
        "detector": detector,
        "config": args.config,
        "overrides": args.set,
        "fit_config": to_dict(cfg),
        "data_sets": runs,
        "seconds": time.perf_counter() - t0,
        "environment": environment(),
    }
    print(publish(args.results, args.name, result, lambda r: table(r, names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
