"""The statistical yardstick: extended maximum likelihood, its covariance, and the Cramér–Rao bound.

Extended likelihood of observed data (events x_ci per channel, measured norms m_c ± s_c):

    log L(θ) = Σ_c [ Σ_i log σ_c(x_ci; θ) − L_c ∫σ_c(x; θ) dx ] + const,   L_c = m_c / s_c²,

where L_c is the exposure (events per unit norm); for Poisson-measured norms L_c m_c = N_c and this
is the textbook extended likelihood. The expected (Fisher) information for expected counts ν_c at θ
is I(θ) = Σ_c L_c ∫ ∇σ_c ∇σ_cᵀ / σ_c dx with L_c = ν_c / ∫σ_c; its inverse bounds the covariance
of any unbiased estimator (Cramér–Rao).

References: R. Barlow, "Extended maximum likelihood", NIM A297 (1990) 496.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from surrogates.data import ObservedData
from surrogates.likelihood.optimize import MLEResult, maximize, numeric_jacobian
from surrogates.theory import Theory

__all__ = ["negative_log_likelihood", "fisher_information", "crb_std", "fit_mle"]


def negative_log_likelihood(theory: Theory, theta: Tensor, data: ObservedData) -> Tensor:
    """−log L(θ) of the extended likelihood (constants dropped), θ (B, P) → (B,)."""
    tiny = torch.finfo(theory.dtype).tiny
    exposure = torch.as_tensor(data.exposure, dtype=theory.dtype, device=theta.device)
    nll = exposure * theory._norms(theta)  # (B, C)
    total = nll.sum(-1)
    for c, ev in enumerate(data.events):
        x = torch.as_tensor(ev, dtype=theory.dtype, device=theta.device).unsqueeze(0)
        dens = theory._density(x.expand(theta.shape[0], -1, -1), theta)[:, c]
        total = total - dens.clamp(min=tiny).log().sum(-1)
    return total


def fisher_information(
    theory: Theory, theta: Sequence[float] | Tensor, expected_counts: Sequence[float]
) -> Tensor:
    """Expected information matrix (P, P) of the extended likelihood at θ for the expected counts."""
    t = theory.check_theta(theta)[0]
    nodes, weights = theory.quadrature()

    def sigma(p: Tensor) -> Tensor:
        return theory._density(nodes.unsqueeze(0), p.unsqueeze(0))[0]  # (C, Q)

    if theory.differentiable:
        jac = torch.autograd.functional.jacobian(sigma, t, vectorize=True)  # (C, Q, P)
    else:
        with torch.no_grad():
            jac = numeric_jacobian(sigma, t)
    with torch.no_grad():
        s = sigma(t)
        exposure = torch.as_tensor(expected_counts, dtype=t.dtype) / (s @ weights)
        inv_s = torch.where(s > 0, 1.0 / s.clamp(min=torch.finfo(t.dtype).tiny), 0.0)
        return torch.einsum("c,cqi,cqj,q,cq->ij", exposure, jac, jac, weights, inv_s)


def crb_std(
    theory: Theory, theta: Sequence[float] | Tensor, expected_counts: Sequence[float]
) -> np.ndarray:
    """Cramér–Rao 1σ per parameter at θ for the expected counts.

    >>> from surrogates.theory import ProxyTheory
    >>> t = ProxyTheory()
    >>> (100 * crb_std(t, t.truth, [100_000, 50_000]) / abs(t.truth.numpy())).round(1)
    array([ 3.8,  3.5,  1.3, 11.5,  9.9,  3.5])
    """
    info = fisher_information(theory, theta, expected_counts)
    return torch.linalg.inv(info).diagonal().clamp(min=0).sqrt().numpy()


def fit_mle(
    theory: Theory,
    data: ObservedData,
    n_starts: int = 4,
    seed: int = 0,
    start: Sequence[float] | None = None,
) -> MLEResult:
    """Maximize the extended likelihood with L-BFGS-B inside the prior box.

    Starts from the box centre, ``start`` (if given) and random points of the box, and keeps the
    best optimum, so a poor start cannot trap the fit in a local minimum.

    Args:
        theory: the theory (NumPy theories work too, with finite-difference gradients).
        data: observed data, validated against the theory.
        n_starts: number of starting points in all.
        seed: seed of the random starting points.
        start: an extra starting point (e.g. a previous answer).

    Returns:
        MLEResult with θ̂, covariance (inverse Hessian of −log L at θ̂) and timing.
    """
    data.validate(theory)
    return maximize(
        theory, lambda t: negative_log_likelihood(theory, t, data), n_starts, seed, start
    )
