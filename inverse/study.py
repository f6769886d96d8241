"""Pseudo-experiment studies: many simulated data sets at known truths, each fitted, then
coverage, SBC ranks, pulls and widths aggregated.

    python -m inverse.study --case C --n 300 --fitters mle,posterior --workers 2 --out runs/study-C

Pseudo-experiment i of a study seeded S is `pseudo_experiment(theory, case, i, S, truths)`: its
truth and its data depend on (S, i) only, never on the worker count, the engine or which other
experiments ran, so a rerun, a resumed run and a peer method see the very same data sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from surrogates.data import CASES, ObservedData, simulate_observed
from surrogates.errors import InputError
from surrogates.generators import seed_for
from surrogates.likelihood import crb_std
from surrogates.theory.base import Module2

__all__ = ["TRUTHS", "pseudo_experiment", "draw_truth"]

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
    parameter, chosen at random, moved to within 1 σ_CRB(case) of a random face of the box (its
    distance to the face uniform in [0, σ_CRB], σ_CRB evaluated at the moved point; clipped to
    the box when σ_CRB exceeds the box width).
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
    for _ in range(2):  # σ_CRB at the prior draw, then at the moved point
        sigma = float(crb_std(theory, theta, counts)[j])
        d = min(u * sigma, high[j] - low[j])
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
