r"""Pseudo-experiment studies: many simulated data sets at known truths, each fitted by the outer
GAN, the MLE and the exact posterior, then coverage, SBC ranks, pulls and widths aggregated.

    python -m inverse.study --case C --n 300 --fitters mle,posterior --workers 2 --out runs/study-C
    python -m inverse.study --case B --n 20 --truths near-face --fitters gan,mle,posterior \
        --config configs/inverse/proxy.yaml --source exact --workers 2 --out runs/study-B-face
    python -m inverse.study report runs/study-C          # aggregate what is there again

Pseudo-experiment i of a study seeded S is `pseudo_experiment(theory, case, i, S, truths)`: its
truth and its data depend on (S, i) only, never on the worker count, the engine or which other
experiments ran, so a rerun, a resumed run and a peer method see the very same data sets.

Each finished experiment is written atomically as ``OUT/experiments/NNNNN.json`` (truth, data seed
and counts; per fitter: mean, std, seconds, and the rank of the truth among the posterior's draws or
in what the GAN reports: its bootstrap replicas, or the face rule's cut Gaussian); a rerun skips
those, so a kill (even ``kill -9``) loses only the experiments in flight. ``OUT/manifest.json``
records the settings: a rerun with other settings is refused (a larger ``--n`` extends the
study). The experiments run on `surrogates.parallel.Engine` (local processes, or a Ray or Dask
cluster: ``--engine ray`` starts a local Ray cluster of ``--workers`` CPUs, ``--address`` joins a
running one); the aggregate is ``OUT/summary.json`` with ``coverage.png``, ``sbc.png`` and
``pulls.png`` (docs/guide/studies.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import brentq

from inverse.config import FitConfig, to_dict
from inverse.faces import reported_ranks
from inverse.training import load_config
from surrogates.data import CASES, ObservedData, parse_theta, simulate_observed
from surrogates.errors import InputError
from surrogates.generators import seed_for
from surrogates.likelihood import fisher_information, fit_mle
from surrogates.likelihood.surrogate import crb_from_information
from surrogates.parallel import ENGINES, Engine
from surrogates.runs import atomic_path, claim_run_dir, cli_errors, environment, write_json
from surrogates.theory import get_theory
from surrogates.theory.base import Module2
from surrogates.validation import ArgumentParser, check_seed

__all__ = [
    "FITTERS",
    "TRUTHS",
    "Study",
    "pseudo_experiment",
    "draw_truth",
    "run_experiment",
    "run_study",
    "aggregate",
    "main",
]

FITTERS = ("gan", "mle", "posterior")
SBC_DRAWS = 99  # posterior draws (evenly thinned) the truth is ranked among: ranks 0 … 99
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6827, 0.7, 0.8, 0.9, 0.95)  # expected-coverage curve
MANIFEST = "manifest.json"
EXPERIMENTS = "experiments"
POSTERIOR_HINT = (
    "the 'posterior' fitter needs emcee and arviz-stats, which surrogate-zoo requires: "
    "pip install emcee arviz-stats, or leave 'posterior' out of --fitters"
)

TRUTHS = ("prior", "fixed", "near-face")


def _case_counts(case: str) -> list[int]:
    if case not in CASES:
        raise InputError(f"unknown case '{case}'; choose one of {', '.join(CASES)}")
    return list(CASES[case])


def draw_truth(
    theory: Module2,
    case: str,
    i: int,
    seed: int,
    truths: str | Sequence[float] | np.ndarray = "prior",
) -> np.ndarray:
    """The truth θ (P,) of pseudo-experiment ``i`` of a study seeded ``seed``.

    ``truths``: ``"prior"`` (uniform in the prior box), ``"fixed"`` (the theory's reference
    truth), a θ (the same truth for every experiment), or ``"near-face"``: a prior draw with one
    parameter, chosen at random, moved to within 1 σ_CRB(case) of a random face of the box: its
    distance d to the face is u σ_CRB with u uniform in [0, 1] and σ_CRB evaluated at the moved
    point itself (d solved for); where σ_CRB exceeds the box width, d is u × the width.
    """
    counts = _case_counts(case)
    if not isinstance(truths, str):
        return theory.check_theta(np.asarray(truths, dtype=float))[0].numpy()
    if truths not in TRUTHS:
        raise InputError(f"--truths must be one of {', '.join(TRUTHS)} or a θ, not {truths!r}")
    if truths == "fixed":
        return theory.truth.numpy().astype(float)
    rng = np.random.default_rng(seed_for(seed, i))
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    theta = low + (high - low) * rng.random(len(low))
    if truths == "prior":
        return theta
    j, upper, u = int(rng.integers(len(low))), bool(rng.integers(2)), float(rng.random())
    width = float(high[j] - low[j])

    def excess(d: float) -> float:  # d − u σ_CRB at the point d from the face
        theta[j] = high[j] - d if upper else low[j] + d
        info = fisher_information(theory, theta, counts).numpy()
        sigma = float(crb_from_information(info)[j])  # inf on a face without information
        return d - u * min(sigma, 10 * width)

    if excess(width) <= 0:  # σ_CRB wider than the box: anywhere is within it
        d = u * width
    else:
        d = brentq(excess, 0.0, width, xtol=1e-9 * width)
    theta[j] = high[j] - d if upper else low[j] + d
    return theta


def pseudo_experiment(
    theory: Module2,
    case: str,
    i: int,
    seed: int,
    truths: str | Sequence[float] | np.ndarray = "prior",
) -> tuple[np.ndarray, ObservedData]:
    """Pseudo-experiment ``i`` of a study seeded ``seed``: its truth (see `draw_truth`) and data
    simulated there with the case's expected counts (Poisson-fluctuated), seeded
    ``seed_for(seed, i)``. The same (theory, case, i, seed, truths) give the same data anywhere.
    """
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
        raise InputError(f"pseudo-experiment index must be a whole number ≥ 0, got {i!r}")
    truth = draw_truth(theory, case, int(i), seed, truths)
    with torch.no_grad():
        data = simulate_observed(theory, truth, _case_counts(case), seed=seed_for(seed, i))
    data.meta.update(case=case, pseudo_experiment=int(i), study_seed=int(seed))
    return truth, data


# ---------------------------------------------------------------- one experiment, on a worker
@dataclass(frozen=True)
class Study:
    """What every experiment of a study shares (sent to each worker once).

    ``truths`` is "prior", "near-face", "fixed", or a θ tuple (fixed there); ``config`` is the
    outer GAN's config (its ``theory`` names the theory; its ``source`` the GAN's EventSource);
    ``posterior``: keywords of `exact_posterior` (e.g. ``min_ess``) other than its defaults.
    """

    config: FitConfig
    case: str
    truths: str | tuple[float, ...]
    fitters: tuple[str, ...]
    seed: int
    out: str
    posterior: dict = field(default_factory=dict)  # exact_posterior's keywords (min_ess, steps…)

    def manifest(self) -> dict:
        """The settings a rerun must match to reuse the finished experiments."""
        return json.loads(
            json.dumps(
                {
                    "theory": self.config.theory,
                    "case": self.case,
                    "counts": list(CASES[self.case]),
                    "truths": list(self.truths) if isinstance(self.truths, tuple) else self.truths,
                    "fitters": list(self.fitters),
                    "seed": self.seed,
                    "gan": to_dict(self.config) if "gan" in self.fitters else None,
                    "posterior": self.posterior if "posterior" in self.fitters else None,
                }
            )
        )


_CACHE: dict[tuple, Any] = {}  # a worker's theory and source, built once per process


def _theory(name: str) -> Module2:
    key = ("theory", name)
    if key not in _CACHE:
        _CACHE[key] = get_theory(name)
    return _CACHE[key]


def _source(spec: str, theory: Module2) -> Any:
    from inverse.sources import make_source

    key = ("source", spec, theory.name)
    if key not in _CACHE:
        _CACHE[key] = make_source(spec, theory)
    return _CACHE[key]


def _truths(study: Study) -> str | np.ndarray:
    return np.asarray(study.truths) if isinstance(study.truths, tuple) else study.truths


def _rank(samples: np.ndarray, truth: np.ndarray) -> list[int]:
    """Per parameter: how many of the samples (S, P) lie below the truth (0 … S)."""
    return (np.asarray(samples) < truth).sum(0).astype(int).tolist()


def _fit_mle(theory: Module2, data: ObservedData, seed: int) -> tuple[dict, np.ndarray]:
    mle = fit_mle(theory, data, seed=seed)
    return {
        "mean": mle.theta,
        "std": mle.std,
        "seconds": mle.seconds,
        "at_boundary": list(mle.at_boundary),
        "success": bool(mle.success),
    }, mle.theta


def _fit_posterior(
    theory: Module2,
    data: ObservedData,
    truth: np.ndarray,
    start: np.ndarray | None,
    seed: int,
    options: dict,
) -> dict:
    from surrogates.likelihood.posterior import exact_posterior

    logging.getLogger("emcee").setLevel(logging.ERROR)  # its τ warnings; R̂ and ESS are kept
    post = exact_posterior(theory, data, start=start, seed=seed, **options)
    draws = np.asarray(post.draws)
    thin = draws[np.linspace(0, len(draws) - 1, min(SBC_DRAWS, len(draws))).round().astype(int)]
    return {
        "mean": post.mean,
        "std": post.std,
        "seconds": post.seconds,
        "rhat": post.rhat,
        "ess": post.ess,
        "converged": bool(post.converged),
        "method": post.method,
        "start": "mle" if start is not None else "its own mle",
        "rank": _rank(thin, truth),
        "rank_of": len(thin),
    }


def _fit_gan(study: Study, theory: Module2, data: ObservedData, truth: np.ndarray, i: int) -> dict:
    from inverse.training import run_outer_gan

    cfg = replace(study.config, seed=seed_for(study.seed, i) % 2**31, compare_mle=False)
    if hasattr(cfg, "posterior"):  # the study fits the posterior itself, once
        cfg = replace(cfg, posterior=False)
    cfg = replace(cfg, overwrite=True)  # a fit cut by a kill is redone from the start
    out = Path(study.out) / "fits" / f"{i:05d}"
    # hundreds of fits: each keeps its CSV log, none starts a wandb run (a wandb-core and a
    # system-monitor process per fit, and a run per pseudo-experiment in the user's project)
    saved = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "disabled"
    try:
        m = run_outer_gan(theory, data, _source(cfg.source, theory), cfg, out, progress=False)
    finally:
        if saved is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = saved
    with np.load(out / "params.npz") as f:
        final = f["theta"]
    boot = final[cfg.data_replicas :]
    names = list(theory.param_names)
    cut = {names.index(n): found for n, found in (m.get("at_face") or {}).items()}
    replicas_rank, rank = reported_ranks(
        boot, truth, np.asarray(m["replicas_mean"]), np.asarray(m["replicas_std"]),
        np.asarray(m["params_mean"]), np.asarray(m["params_std"]), cut,
        theory.prior_low, theory.prior_high,
    )  # fmt: skip
    return {
        "mean": m["params_mean"],
        "std": m["params_std"],
        # every replica's θ (the data replicas first) and the parameters cut by the box
        # (inverse.faces): what benchmarks/faces.py needs to judge the face rule again
        "replicas": final,
        "at_face": sorted(m.get("at_face") or {}),
        "seconds": m["seconds"],
        "steps": m["steps"],
        # SBC: the truth's rank in what the fit reports (for a parameter the face rule cut, its
        # cut Gaussian's draws as a rank among the replicas' count; inverse.faces.reported_ranks)
        # and among the bootstrap replicas themselves
        "rank": rank,
        "rank_replicas": replicas_rank,
        "rank_of": len(boot),
        "run": str(out),
    }


def _guarded(fit: Any, *args: Any) -> dict:
    """A fitter's record, or ``{"error": ...}`` when it fails: one failed fit is counted in the
    summary, and does not stop a study of hundreds."""
    try:
        return fit(*args)
    except Exception as err:  # noqa: BLE001 - any failure of one fit is recorded
        return {"error": f"{type(err).__name__}: {str(err)[:300]}"}


def run_experiment(study: Study, i: int) -> dict:
    """Pseudo-experiment ``i``: its data, fitted by each of ``study.fitters`` (the MLE first:
    the posterior's walkers start there). One torch thread: the workers share the cores."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    theory = _theory(study.config.theory)
    truth, data = pseudo_experiment(theory, study.case, i, study.seed, _truths(study))
    fits: dict[str, dict] = {}
    start = None
    fit_seed = seed_for(study.seed, i) % 2**31
    if "mle" in study.fitters or "posterior" in study.fitters:
        mle, start = _fit_mle(theory, data, fit_seed)
        if "mle" in study.fitters:
            fits["mle"] = mle
    if "posterior" in study.fitters:
        fits["posterior"] = _guarded(
            _fit_posterior, theory, data, truth, start, fit_seed, study.posterior
        )
    if "gan" in study.fitters:
        fits["gan"] = _guarded(_fit_gan, study, theory, data, truth, i)
    return json.loads(
        json.dumps(
            {
                "i": i,
                "truth": truth,
                "data_seed": seed_for(study.seed, i),
                "counts": data.counts,
                "fits": fits,
                "seconds": time.perf_counter() - t0,
            },
            default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v),
        )
    )


# ---------------------------------------------------------------- the study, on the driver
def _experiment_path(out: Path, i: int) -> Path:
    return out / EXPERIMENTS / f"{i:05d}.json"


def _finished(out: Path, n: int, fitters: Sequence[str]) -> set[int]:
    """Indices < n whose result files are whole and hold every fitter; strays of writes cut by a
    kill (``.*.part``) are removed."""
    folder = out / EXPERIMENTS
    if not folder.is_dir():
        return set()
    for stray in folder.glob(".*.part"):
        stray.unlink(missing_ok=True)
    done = set()
    for i in range(n):
        record = _read_record(_experiment_path(out, i))
        if record is not None and record.get("i") == i and set(fitters) <= set(record["fits"]):
            done.add(i)
    return done


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("fits"), dict) else None


def read_records(out: str | Path, timings: bool = True) -> dict[int, dict]:
    """A study folder's finished experiments by index. ``timings=False`` drops what depends on
    the run rather than on the data (each record's and each fit's seconds, the fit's method), so
    that two runs of one study compare equal."""
    records = {}
    for f in sorted((Path(out) / EXPERIMENTS).glob("[0-9]*.json")):
        record = _read_record(f)
        if record is None:
            continue
        if not timings:
            record.pop("seconds", None)
            for fit in record["fits"].values():
                fit.pop("seconds", None)
                fit.pop("method", None)
        records[record["i"]] = record
    return records


def _check_manifest(out: Path, manifest: dict, overwrite: bool) -> bool:
    """True when ``out`` holds experiments of this very study (resume); raises `InputError`
    when it holds another study's (one line naming the differences)."""
    if overwrite or not out.exists():
        return False
    if not out.is_dir():
        raise InputError(f"--out '{out}' is a file, not a folder; choose a folder path")
    path = out / MANIFEST
    if not path.is_file():
        if (out / EXPERIMENTS).is_dir():
            raise InputError(f"'{out}' holds experiments but no {MANIFEST}; pass --overwrite")
        return False
    try:
        old = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"'{path}' is not JSON; pass --overwrite to start again") from None
    diff = _differences(_with_defaults(old), manifest)
    if diff:
        raise InputError(
            f"'{out}' holds a study with other settings ({'; '.join(diff)[:300]}); rerun with the "
            "same settings to resume it, or pass --overwrite or another --out"
        )
    return True


# the outer GAN's settings (gan.*) added after studies could be resumed, each with the value that
# reproduces what the package did before the setting existed (a study started then ran that way);
# a setting missing from an old manifest and not listed here still counts as a difference
ADDED_SETTINGS = {
    "d_quantiles": 0,
    "d_smooth": 0,
    "d_smooth_from": 0.3,  # no smooth components before d_smooth: it had no effect
    "d_score": False,
    "bootstrap_restart": False,
    "data_restart": False,
    "spread_start": False,
}


def _with_defaults(old: Any) -> Any:
    """An older manifest with the GAN settings added to the package since it was written
    (`ADDED_SETTINGS`) filled in at the values that reproduce the old behaviour: a study started
    before them still resumes, unless the rerun turns one on. Settings not listed are left out
    (a default that changed the behaviour, like ``face_cut``, still refuses).

    >>> _with_defaults({"gan": {"gan": {"lr_g": 0.01}}})["gan"]["gan"]["d_smooth"]
    0
    """
    fit = old.get("gan") if isinstance(old, dict) else None
    if not isinstance(fit, dict) or not isinstance(fit.get("gan"), dict):
        return old
    return {**old, "gan": {**fit, "gan": {**ADDED_SETTINGS, **fit["gan"]}}}


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """The settings that differ between two manifests, by dotted key (``gan.face_cut``), each as
    ``key old ≠ new`` (a key one side lacks shows as null there)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for k in sorted({*old, *new})
            for d in _differences(old.get(k), new.get(k), f"{where}{k}.")
        ]
    if old == new:
        return []
    return [f"{where.rstrip('.')} {json.dumps(old)[:60]} ≠ {json.dumps(new)[:60]}"]


def check_fitters(fitters: Sequence[str], theory: Module2) -> tuple[str, ...]:
    """The fitters, checked: known, not repeated, and usable for this theory."""
    fitters = tuple(f.strip() for f in fitters if f.strip())
    bad = [f for f in fitters if f not in FITTERS]
    if not fitters or bad:
        raise InputError(
            f"--fitters takes a comma-separated list of {', '.join(FITTERS)}, got "
            f"{','.join(fitters) or 'nothing'}"
        )
    if len(set(fitters)) != len(fitters):
        raise InputError(f"--fitters names a fitter twice: {','.join(fitters)}")
    if {"mle", "posterior"} & set(fitters) and not theory.has_density:
        raise InputError(
            f"'{theory.name}' has no density, so it has no exact likelihood for the mle and "
            "posterior fitters; use --fitters gan"
        )
    if "posterior" in fitters:
        try:
            from surrogates.likelihood.posterior import exact_posterior  # noqa: F401
        except ImportError:
            raise InputError(POSTERIOR_HINT) from None
    return fitters


def run_study(
    study: Study,
    n: int,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Run the experiments 0 … n−1 of ``study`` that are not finished, then aggregate.

    Raises:
        InputError: bad sizes, an engine that cannot start, or an ``out`` that holds another
            study (without ``overwrite``); before any experiment file is written.
    """
    from tqdm.auto import tqdm

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"--n must be a whole number ≥ 1, got {n!r}")
    out, manifest = Path(study.out), study.manifest()
    resuming = _check_manifest(out, manifest, overwrite)
    with Engine(engine, workers, address) as pool:
        if "gan" in study.fitters:  # a bad --source is one line here, not a crash on a worker
            _source(study.config.source, _theory(study.config.theory))
        with claim_run_dir(out, resume=not overwrite, overwrite=overwrite, finished=MANIFEST):
            if not resuming:
                write_json(out / MANIFEST, manifest)
            done = _finished(out, n, study.fitters)
            todo = [i for i in range(n) if i not in done]
            t0 = time.perf_counter()
            with tqdm(
                total=n, initial=len(done), unit="exp", desc="study", disable=not progress
            ) as bar:
                for i, record in pool.imap(run_experiment, study, todo):
                    write_json(_experiment_path(out, i), record)
                    bar.update(1)
            seconds = time.perf_counter() - t0
            summary = aggregate(out, n)
            summary["run"] = {
                "engine": pool.describe(),
                "computed": len(todo),
                "kept": len(done),
                "seconds": seconds,
                "environment": environment(),
            }
            write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------- aggregation
def _binomial(hits: np.ndarray) -> tuple[float, float]:
    """Fraction of hits and its binomial standard error."""
    n = len(hits)
    c = float(np.mean(hits)) if n else float("nan")
    return c, float(np.sqrt(c * (1 - c) / n)) if n else float("nan")


def _sbc(ranks: np.ndarray, of: int) -> dict:
    """Rank histogram of the truth among ``of`` samples per experiment (ranks 0 … of) and the χ²
    p-value of uniformity; bins: the most that divide the of + 1 ranks evenly with ≥ 5 expected
    experiments in each (at most 20)."""
    from scipy.stats import chi2

    n = len(ranks)
    bins = max([b for b in range(2, 21) if (of + 1) % b == 0 and n / b >= 5] or [1])
    counts = np.bincount(np.asarray(ranks) * bins // (of + 1), minlength=bins)[:bins]
    if bins < 2:
        return {"bins": 1, "counts": counts.tolist(), "chi2": None, "p_value": None}
    expected = n / bins
    stat = float(((counts - expected) ** 2 / expected).sum())
    return {
        "bins": bins,
        "counts": counts.tolist(),
        "chi2": stat,
        "dof": bins - 1,
        "p_value": float(chi2.sf(stat, bins - 1)),
    }


def _ok(records: list[dict], *fitters: str) -> list[dict]:
    """The records in which every one of ``fitters`` gave a result (no error)."""
    return [r for r in records if all("error" not in r["fits"][f] for f in fitters)]


def _mean_or_nan(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _fitter_summary(records: list[dict], name: str, names: list[str]) -> dict:
    from scipy.stats import norm

    failed = [r["i"] for r in records if "error" in r["fits"][name]]
    records = _ok(records, name)

    truth = np.array([r["truth"] for r in records])
    mean = np.array([r["fits"][name]["mean"] for r in records], dtype=float)
    std = np.array([r["fits"][name]["std"] for r in records], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pull = (mean - truth) / std  # ±inf where σ = 0 (an MLE on a face: no Hessian σ there)
    seconds = np.array([r["fits"][name]["seconds"] for r in records], dtype=float)
    ranks = [r["fits"][name].get("rank") for r in records]
    has_ranks = all(rk is not None for rk in ranks) and name == "posterior"
    finite = np.isfinite(pull)
    # an MLE parameter on a face of the box has no meaningful Hessian σ (one-sided likelihood):
    # its pull is left out of the pull statistics (it counts as it falls in the coverage), and
    # how many were is recorded
    boundary = np.array(
        [[p in (r["fits"][name].get("at_boundary") or ()) for p in names] for r in records], bool
    ).reshape(len(records), len(names))
    pulled = finite & ~boundary
    out: dict = {"n": len(records), "failed": failed, "params": {}}
    if boundary.any():
        out["at_boundary"] = int(boundary.any(axis=1).sum())
    if name == "gan":
        # experiments with a face cut recorded before the study ranked the truth in the face
        # rule's distribution: their GAN ranks are the bootstrap replicas' (benchmarks/faces.py
        # ranks them in the rule's again)
        old = [r["i"] for r in records if r["fits"][name].get("at_face")
               and "rank_replicas" not in r["fits"][name]]  # fmt: skip
        if old:
            out["replica_ranks_at_face"] = old
    if name == "posterior":
        out["converged"] = int(sum(bool(r["fits"][name].get("converged")) for r in records))
    for j, p in enumerate(names):
        c, se = _binomial(np.abs(pull[:, j]) <= 1)
        curve = []
        for level in LEVELS:
            if has_ranks:  # the central credible interval of the posterior's draws
                frac = np.array([r["fits"][name]["rank"][j] / r["fits"][name]["rank_of"]
                                 for r in records])  # fmt: skip
                hits = np.abs(frac - 0.5) <= level / 2
            else:  # mean ± z σ
                hits = np.abs(pull[:, j]) <= norm.ppf(0.5 + level / 2)
            curve.append(_binomial(hits))
        row = {
            "coverage_1sigma": c,
            "coverage_1sigma_se": se,
            "coverage_curve": {
                "levels": list(LEVELS),
                "coverage": [v for v, _ in curve],
                "se": [e for _, e in curve],
                "interval": "posterior draws' central interval" if has_ranks else "mean ± z σ",
            },
            # pulls of the fits with a σ > 0 and (an MLE) no parameter on a face; the others
            # count as they fall in the coverage above
            "pull_mean": _mean_or_nan(pull[pulled[:, j], j]),
            "pull_rms": _mean_or_nan(pull[pulled[:, j], j] ** 2) ** 0.5,
            "pulls": int(pulled[:, j].sum()),
            "at_boundary": int(boundary[:, j].sum()),
            "zero_sigma": int((~finite[:, j]).sum()),
            "std_mean": float(np.mean(std[:, j])),
        }
        if all(rk is not None for rk in ranks):
            of = int(records[0]["fits"][name]["rank_of"])
            same = [r for r in records if r["fits"][name]["rank_of"] == of]
            row["sbc"] = _sbc(np.array([r["fits"][name]["rank"][j] for r in same]), of)
            row["sbc"]["ranked_among"] = of
        out["params"][p] = row
    out["seconds_mean"] = float(seconds.mean())
    out["seconds_median"] = float(np.median(seconds))
    out["seconds_total"] = float(seconds.sum())
    out["coverage_1sigma_pooled"] = _binomial((np.abs(pull) <= 1).ravel())
    return out


def _against_posterior(records: list[dict], name: str, names: list[str]) -> dict:
    """(mean − posterior mean)/σ_post and σ/σ_post of a fitter, per parameter."""
    records = _ok(records, name, "posterior")
    post_mean = np.array([r["fits"]["posterior"]["mean"] for r in records], dtype=float)
    post_std = np.array([r["fits"]["posterior"]["std"] for r in records], dtype=float)
    mean = np.array([r["fits"][name]["mean"] for r in records], dtype=float)
    std = np.array([r["fits"][name]["std"] for r in records], dtype=float)
    dist, ratio = (mean - post_mean) / post_std, std / post_std
    return {
        p: {
            "dist_post_mean": float(dist[:, j].mean()),
            "dist_post_rms": float(np.sqrt((dist[:, j] ** 2).mean())),
            "dist_post_max": float(np.abs(dist[:, j]).max()),
            "within_0.5_post": float((np.abs(dist[:, j]) <= 0.5).mean()),
            "sigma_over_post_mean": float(ratio[:, j].mean()),
            "sigma_over_post_median": float(np.median(ratio[:, j])),
            "sigma_over_post_in_0.8_1.25": float(((ratio[:, j] >= 0.8) & (ratio[:, j] <= 1.25)).mean()),
        }
        for j, p in enumerate(names)
    }  # fmt: skip


def aggregate(out: str | Path, n: int | None = None) -> dict:
    """The summary of a study folder's finished experiments (those < n, or all): per fitter and
    parameter coverage, the expected-coverage curve, SBC ranks, pulls, σ/σ_post and the distance
    to the posterior mean, wall time per fit; writes coverage.png, sbc.png and pulls.png."""
    out = Path(out)
    path = out / MANIFEST
    if not path.is_file():
        raise InputError(f"'{out}' holds no study ({MANIFEST} missing); check the folder")
    manifest = json.loads(path.read_text())
    records = [r for i, r in read_records(out).items() if n is None or i < n]
    if not records:
        raise InputError(f"'{out}' holds no finished experiment yet; run the study first")
    theory = get_theory(manifest["theory"])
    names = list(theory.param_names)
    fitters = [f for f in FITTERS if all(f in r["fits"] for r in records) and _ok(records, f)]
    summary: dict = {
        "manifest": manifest,
        "n": len(records),
        # SBC's ranks are uniform for a calibrated method only when the truths are drawn from
        # the prior: for fixed or near-face truths its p-values are no check of calibration
        "sbc_valid": manifest["truths"] == "prior",
        "param_names": names,
        "fitters": {f: _fitter_summary(records, f, names) for f in fitters},
    }
    if "posterior" in fitters:
        for f in fitters:
            if f != "posterior":
                summary["fitters"][f]["against_posterior"] = _against_posterior(records, f, names)
    plot_study(out, summary, records)
    return summary


# ---------------------------------------------------------------- plots
def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def plot_study(out: Path, summary: dict, records: list[dict]) -> None:
    """coverage.png (coverage against nominal level), sbc.png (rank histograms) and pulls.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    names, fitters = summary["param_names"], summary["fitters"]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.8), squeeze=False)
    for ax, p in zip(axes[0], names, strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1)
        for f, s in fitters.items():
            c = s["params"][p]["coverage_curve"]
            ax.errorbar(c["levels"], c["coverage"], c["se"], marker=".", label=f, capsize=2)
        ax.set(title=p, xlabel="nominal level", xlim=(0, 1), ylim=(0, 1))
    axes[0][0].set_ylabel("coverage")
    axes[0][0].legend(fontsize=7)
    _save(fig, out / "coverage.png")

    ranked = [f for f, s in fitters.items() if "sbc" in next(iter(s["params"].values()))]
    rows = max(len(ranked), 1)
    fig, axes = plt.subplots(
        rows, len(names), figsize=(2.6 * len(names), 2.2 * rows), squeeze=False
    )
    for row, f in enumerate(ranked):
        for ax, p in zip(axes[row], names, strict=True):
            sbc = fitters[f]["params"][p]["sbc"]
            counts, n = np.asarray(sbc["counts"]), sum(sbc["counts"])
            ax.bar(np.arange(len(counts)), counts, width=1.0, color="C0", alpha=0.7)
            e = n / len(counts)
            ax.axhspan(e - 2 * np.sqrt(e), e + 2 * np.sqrt(e), color="0.8", zorder=0)
            pv = sbc["p_value"]
            ax.set_title(f"{f} {p}" + ("" if pv is None else f" p={pv:.2f}"), fontsize=8)
            ax.set_xticks([])
    if not summary["sbc_valid"]:
        fig.suptitle(f"truths {summary['manifest']['truths']}, not from the prior: these ranks "
                     "are no check of calibration", fontsize=8)  # fmt: skip
    _save(fig, out / "sbc.png")

    fig, axes = plt.subplots(
        len(fitters), len(names), figsize=(2.6 * len(names), 2.2 * len(fitters)), squeeze=False
    )
    grid = np.linspace(-4, 4, 200)
    for row, f in enumerate(fitters):
        ok = _ok(records, f)
        truth = np.array([r["truth"] for r in ok])
        mean = np.array([r["fits"][f]["mean"] for r in ok], dtype=float)
        std = np.array([r["fits"][f]["std"] for r in ok], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            pull = (mean - truth) / std
        for j, (ax, p) in enumerate(zip(axes[row], names, strict=True)):
            shown = np.clip(pull[np.isfinite(pull[:, j]), j], -4, 4)
            ax.hist(shown, bins=16, range=(-4, 4), density=True, alpha=0.7)
            ax.plot(grid, norm.pdf(grid), color="k", lw=1)
            s = fitters[f]["params"][p]
            ax.set_title(f"{f} {p}: {s['pull_mean']:+.2f}, rms {s['pull_rms']:.2f}", fontsize=8)
    _save(fig, out / "pulls.png")


# ---------------------------------------------------------------- the command
def format_summary(summary: dict) -> str:
    """The coverage table on the terminal."""
    lines = [f"{summary['n']} pseudo-experiments, case {summary['manifest']['case']}, truths "
             f"{summary['manifest']['truths']}"]  # fmt: skip
    if not summary.get("sbc_valid", True):
        lines.append("SBC p: the truths are not drawn from the prior, so these p-values are no "
                     "check of calibration (not even the exact posterior's)")  # fmt: skip
    old = summary["fitters"].get("gan", {}).get("replica_ranks_at_face")
    if old:
        lines.append(f"SBC p of the gan: {len(old)} experiment(s) with a face cut were recorded "
                     "with the replicas' ranks, not the face rule's (benchmarks/faces.py ranks "
                     "them)")  # fmt: skip
    head = f"{'fitter':>10} {'param':>6} {'1σ cover':>13} {'pull mean':>9} {'pull rms':>8} "
    head += f"{'SBC p':>6} {'σ/σ_post':>8} {'|Δ|/σ_post':>10} {'s/fit':>6}"
    lines.append(head)
    for f, s in summary["fitters"].items():
        for p, row in s["params"].items():
            post = s.get("against_posterior", {}).get(p, {})
            sbc = row.get("sbc", {}).get("p_value")
            lines.append(
                f"{f:>10} {p:>6} {row['coverage_1sigma']:6.3f}±{row['coverage_1sigma_se']:.3f} "
                f"{row['pull_mean']:9.2f} {row['pull_rms']:8.2f} "
                f"{'-' if sbc is None else f'{sbc:.2f}':>6} "
                f"{post.get('sigma_over_post_mean', float('nan')):8.2f} "
                f"{post.get('dist_post_rms', float('nan')):10.2f} {s['seconds_mean']:6.2f}"
            )
    return "\n".join(lines)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m inverse.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default="configs/inverse/proxy.yaml", help="the GAN's config")
    parser.add_argument("--source", default=None, help="the GAN's source (default: the config's)")
    parser.add_argument("--case", default="C", help="A, B or C: the expected counts")
    parser.add_argument("--n", type=int, default=300, help="pseudo-experiments")
    parser.add_argument("--truths", default="prior", help="prior | fixed | near-face")
    parser.add_argument("--theta", default=None, help="with --truths fixed: the truth, a,b,c,...")
    parser.add_argument(
        "--fitters", default="mle,posterior", help="comma-separated gan,mle,posterior"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="experiments at a time (a new local cluster's size)"
    )
    parser.add_argument("--engine", default="local", help=f"{' | '.join(ENGINES)}")
    parser.add_argument(
        "--address",
        default=None,
        help="a running cluster: Ray (auto, host:6379, ray://host:10001) or a Dask scheduler "
        "address or file; default: a local cluster of --workers",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--posterior-min-ess",
        type=int,
        default=None,
        help="the posterior's ESS per parameter that counts as converged (default: its own)",
    )
    parser.add_argument(
        "--posterior-steps",
        type=int,
        default=None,
        help="the posterior's most emcee steps after burn-in (default: its own)",
    )
    parser.add_argument("--out", required=True, help="the study folder")
    parser.add_argument("--overwrite", action="store_true", help="start the folder again")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def build_study(args: argparse.Namespace) -> Study:
    """The `Study` of the command line, checked before anything is written."""
    check_seed("--seed", args.seed)
    cfg = load_config(args.config)
    if args.source is not None:
        cfg = replace(cfg, source=args.source)
    theory = get_theory(cfg.theory)
    if args.case not in CASES:
        raise InputError(f"--case must be one of {', '.join(CASES)}, not {args.case!r}")
    if args.truths not in TRUTHS:
        raise InputError(f"--truths must be one of {', '.join(TRUTHS)}, not {args.truths!r}")
    truths: str | tuple[float, ...] = args.truths
    if args.theta is not None:
        if args.truths != "fixed":
            raise InputError("--theta sets a fixed truth; pass it with --truths fixed")
        truths = tuple(float(v) for v in parse_theta(args.theta, theory))
    fitters = check_fitters(args.fitters.split(","), theory)
    posterior = {}
    if args.posterior_min_ess is not None:
        if args.posterior_min_ess < 1:
            raise InputError(f"--posterior-min-ess must be ≥ 1, got {args.posterior_min_ess}")
        posterior["min_ess"] = args.posterior_min_ess
    if args.posterior_steps is not None:
        if args.posterior_steps < 1:
            raise InputError(f"--posterior-steps must be ≥ 1, got {args.posterior_steps}")
        posterior["steps"] = args.posterior_steps
    return Study(cfg, args.case, truths, fitters, args.seed, str(args.out), posterior)


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        if len(argv) != 2:
            raise InputError("usage: python -m inverse.study report DIR")
        folder = Path(argv[1])
        summary = aggregate(folder)
        old = folder / "summary.json"
        if old.is_file():  # keep the last run's engine and timing
            summary["run"] = json.loads(old.read_text()).get("run")
        write_json(old, summary)
    else:
        args = _parser().parse_args(argv)
        torch.set_num_threads(1)
        study = build_study(args)
        folder = Path(study.out)
        summary = run_study(
            study,
            args.n,
            engine=args.engine,
            workers=args.workers,
            address=args.address,
            progress=args.progress,
            overwrite=args.overwrite,
        )
        run = summary["run"]
        print(
            f"{run['computed']} computed, {run['kept']} kept, {run['seconds']:.1f} s on "
            f"{run['engine']}"
        )
    print(format_summary(summary))
    print(f"wrote {folder / 'summary.json'} and coverage.png, sbc.png, pulls.png")
    return 0


if __name__ == "__main__":
    from inverse.study import main as _main  # its functions then pickle by reference for workers

    sys.exit(_main())
