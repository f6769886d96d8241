"""The outer GAN's σ against the exact posterior's, and what a σ from few replicas does to pulls.

    python benchmarks/replica_sigma.py validation=RUN_DIR ... fresh=RUN_DIR ... --results docs/results

Each argument is a finished ``inverse.fit`` run folder (``params.npz``, ``metrics.json`` with the
exact posterior, ``config.yaml``), optionally prefixed by the name of the set it belongs to
(``validation=DIR``: runs a choice may have looked at; ``fresh=DIR``: truths nothing was chosen
on). Per run and parameter, in units of the posterior's σ on the same data: the bootstrap
replicas' spread (σ before `inverse.report.interval_factor`) and one generator's scatter s (the
data replicas' spread), beside the range a single fit's spread/σ_post takes by chance with its
number of bootstrap replicas B (the 16–84% quantiles of √(χ²_{B−1}/(B−1))).

Then a simulation with the runs' B, K and mean scatter (and ``--simulate B:K:S`` settings): θ
error ~ N(0, σ² + s²/K), bootstrap spread² ~ (σ² + s²) χ²_{B−1}/(B−1), the data replicas'
spread² ~ s² χ²_{K−1}/(K−1). For the spread, σ as reported (the spread × the Student-t factor)
and σ with s taken out (√(σ² − s²(1 − 1/K)), floored at half the spread, × the same factor): 1σ
coverage, rms pull and mean σ. Prints tables, writes JSON (``--out``) and, with ``--results``,
the page ``docs/results/NAME.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import results  # benchmarks/results.py (the docs/results pages)
import yaml
from scipy import stats

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from inverse.report import interval_factor, replica_estimate  # noqa: E402
from surrogates.errors import InputError  # noqa: E402
from surrogates.runs import cli_errors, environment  # noqa: E402

VIEWS = ("spread", "as reported", "scatter taken out")


def _values(v: np.ndarray | list | None) -> np.ndarray:
    """A row's per-parameter ratios, empty where there are none (no scatter with one data
    replica)."""
    return np.asarray([] if v is None else v, dtype=float)


def _mean(v: np.ndarray | list | None) -> float | None:
    """The mean of a row's per-parameter ratios, None where there are none."""
    return None if v is None else float(np.mean(v))


def run_row(folder: Path, group: str) -> dict:
    """One run's bootstrap spread, σ and scatter over the exact posterior's σ, per parameter."""
    for name in ("params.npz", "metrics.json", "config.yaml"):
        if not (folder / name).is_file():
            raise InputError(f"{folder}: no {name}; give finished inverse.fit run folders")
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        with np.load(folder / "params.npz") as f:
            final = np.asarray(f["theta"], dtype=float)
        post_std = np.asarray((metrics.get("posterior") or {})["std"], dtype=float)
        names = list(metrics["param_names"])
        k = int(cfg.get("data_replicas", 1))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            f"{folder}: not an inverse.fit run with the exact posterior ({type(err).__name__}: "
            f"{err}); fit with posterior: true"
        ) from None
    if final.ndim != 2 or final.shape[1] != len(names) or post_std.shape != (len(names),):
        raise InputError(f"{folder}: params.npz θ, the posterior's σ and param_names disagree")
    if not 1 <= k <= len(final) - 2:
        raise InputError(f"{folder}: {len(final)} replicas and data_replicas {k}: need ≥ 2 bootstrap")
    _, std, scatter = replica_estimate(final, k)
    return {
        "set": group, "run": str(folder), "data_replicas": k, "bootstrap": len(final) - k,
        "d_steps": (cfg.get("gan") or {}).get("d_steps"), "param_names": names,
        "spread_over_post": std / interval_factor(len(final) - k) / post_std,
        "sigma_over_post": std / post_std,
        # one data replica (K = 1): no scatter measured
        "scatter_over_post": None if scatter is None else scatter / post_std,
        "crb_over_post": np.asarray(metrics["crb_std"], dtype=float) / post_std,
    }  # fmt: skip


def chance_range(bootstrap: int) -> tuple[float, float]:
    """The 16–84% range of a σ estimated from ``bootstrap`` Gaussian draws, over the true σ."""
    dof = bootstrap - 1
    return tuple(float(np.sqrt(stats.chi2.ppf(q, dof) / dof)) for q in (0.16, 0.84))


def summarize(rows: list[dict]) -> list[dict]:
    """Per set: the mean over runs and parameters of each ratio, and its range; each fit's mean
    spread/σ_post."""
    out = []
    for group in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == group]
        entry: dict = {"set": group, "runs": len(mine)}
        for key in ("spread_over_post", "sigma_over_post", "scatter_over_post"):
            v = np.concatenate([_values(r[key]) for r in mine])
            entry[key] = (
                {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
                if len(v)
                else None
            )
        entry["fit_means"] = [_mean(r["spread_over_post"]) for r in mine]
        out.append(entry)
    return out


def calibration(
    bootstrap: int, data_replicas: int, scatter: float, n: int = 200_000, seed: int = 0
) -> dict:
    """Coverage, rms pull and mean σ (true σ = 1) of the bootstrap spread, of σ as reported (the
    spread × `interval_factor`) and of σ with s taken out (× the same factor)."""
    rng = np.random.default_rng(seed)
    b, k, s2 = bootstrap, data_replicas, scatter**2
    spread2 = (1.0 + s2) * rng.chisquare(b - 1, n) / (b - 1)
    scatter2 = s2 * rng.chisquare(k - 1, n) / (k - 1) if k > 1 else np.zeros(n)
    error = rng.normal(0.0, np.sqrt(1.0 + s2 / k), n)
    views = {
        "spread": np.sqrt(spread2),
        "as reported": np.sqrt(spread2) * interval_factor(b),
        "scatter taken out": np.sqrt(np.maximum(spread2 - scatter2 * (1 - 1 / k), 0.25 * spread2))
        * interval_factor(b),
    }
    out = {"bootstrap": b, "data_replicas": k, "scatter": scatter}
    for name, sigma in views.items():
        pull = error / sigma
        out[name] = {
            "coverage": float(np.mean(np.abs(pull) < 1.0)),
            "pull_rms": float(np.sqrt(np.mean(pull**2))),
            "sigma_mean": float(np.mean(sigma)),
        }
    return out


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="[SET=]RUN_FOLDER (inverse.fit output)")
    parser.add_argument("--simulate", nargs="*", default=[], metavar="B:K:S",
                        help="more simulated settings: bootstrap replicas, data replicas, scatter "
                        "over σ (e.g. 14:2:0.2, case B's proxy.yaml)")  # fmt: skip
    parser.add_argument("--name", default="replica-sigma")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/replica-sigma.json"))
    parser.add_argument("--results", default=None, help="write the page into this folder")
    args = parser.parse_args(argv)
    rows = []
    for spec in args.runs:
        group, _, folder = spec.rpartition("=")
        rows.append(run_row(Path(folder), group or "runs"))
    stats_ = summarize(rows)
    shapes = {(r["bootstrap"], r["data_replicas"]) for r in rows}
    scatters = np.concatenate([_values(r["scatter_over_post"]) for r in rows])
    scatter = float(scatters.mean()) if len(scatters) else 0.0
    settings = [(b, k, s) for b, k in sorted(shapes) for s in sorted({0.0, scatter})]
    for spec in args.simulate:
        try:
            b, k, s = spec.split(":")
            settings.append((int(b), int(k), float(s)))
        except ValueError:
            raise InputError(f"--simulate {spec!r}: give B:K:S, e.g. 14:2:0.2") from None
        if settings[-1][0] < 2 or settings[-1][1] < 1 or settings[-1][2] < 0:
            raise InputError(f"--simulate {spec!r}: B ≥ 2, K ≥ 1 and S ≥ 0")
    simulation = [calibration(b, k, s) for b, k, s in settings]
    for r in rows:
        print(f"{r['set']:14s} {r['run']:44s} B {r['bootstrap']:2d} K {r['data_replicas']:2d} "
              f"spread/σ_post {np.mean(r['spread_over_post']):.2f} "
              f"(chance 16–84%: {'–'.join(f'{v:.2f}' for v in chance_range(r['bootstrap']))}) "
              f"s/σ_post {results.fmt(_mean(r['scatter_over_post']), '.2f')}")  # fmt: skip
    for s in stats_:
        print(f"{s['set']:14s} runs {s['runs']:2d} spread/σ_post {s['spread_over_post']['mean']:.2f} "
              f"σ/σ_post {s['sigma_over_post']['mean']:.2f} "
              f"s/σ_post {results.fmt((s['scatter_over_post'] or {}).get('mean'), '.2f')}")  # fmt: skip
    for c in simulation:
        print(f"simulated B {c['bootstrap']} K {c['data_replicas']} s {c['scatter']:.2f}: " + "; ".join(
            f"{v}: cover {c[v]['coverage']:.3f} rms pull {c[v]['pull_rms']:.3f} mean σ "
            f"{c[v]['sigma_mean']:.3f}" for v in VIEWS))  # fmt: skip
    payload = {
        "rows": rows, "summary": stats_, "simulation": simulation,
        "chance": {str(b): chance_range(b) for b, _ in shapes},
        "environment": environment(), "args": {k: str(v) for k, v in vars(args).items()},
    }  # fmt: skip
    results.publish(args.name, payload, args.out, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
