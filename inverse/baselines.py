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

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from surrogates.data import ObservedData
from surrogates.theory import Theory

__all__ = [
    "negative_log_likelihood",
    "fisher_information",
    "crb_std",
    "fit_mle",
    "nll_excess",
    "fit_binned_mle",
    "BinnedEvents",
    "MLEResult",
]


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


def _numeric_jacobian(fn, theta: Tensor, rel_step: float = 1e-5) -> Tensor:
    """Central-difference Jacobian of fn: (P,) → (...), for theories with no gradients."""
    cols = []
    for j in range(theta.numel()):
        h = rel_step * max(1.0, abs(float(theta[j])))
        e = torch.zeros_like(theta)
        e[j] = h
        cols.append((fn(theta + e) - fn(theta - e)) / (2 * h))
    return torch.stack(cols, dim=-1)


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
            jac = _numeric_jacobian(sigma, t)
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


@contextmanager
def _torch_single_thread() -> Iterator[None]:
    """Run torch on one thread while scipy's optimizer alternates with it.

    OpenBLAS threads left spinning by L-BFGS-B compete with torch's OpenMP threads on a small
    machine; measured on 2 cores, a case-B fit took 10 s with both and 0.3 s with torch on one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class MLEResult:
    """The maximum-likelihood estimate with its covariance (inverse observed information)."""

    theta: np.ndarray
    cov: np.ndarray
    nll: float
    success: bool
    seconds: float
    n_starts: int
    at_boundary: list[str]

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))


NLL = Callable[[Tensor], Tensor]  # θ (B, P) → −log L (B,)


def _hessian(theory: Theory, nll: NLL, theta: Tensor) -> Tensor:
    def f(p: Tensor) -> Tensor:
        return nll(p.unsqueeze(0))[0]

    if theory.differentiable:
        return torch.autograd.functional.hessian(f, theta)
    with torch.no_grad():
        # central differences of the numeric gradient
        def grad(p: Tensor) -> Tensor:
            return _numeric_jacobian(lambda q: f(q).reshape(1), p, 1e-4)[0]

        h = _numeric_jacobian(grad, theta, 1e-4)
        return (h + h.T) / 2


def _maximize(
    theory: Theory, nll: NLL, n_starts: int, seed: int, start: Sequence[float] | None
) -> MLEResult:
    """Minimize −log L with L-BFGS-B in the unit-scaled prior box from several starts."""
    t0 = time.perf_counter()
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    span = high - low

    def objective(s: np.ndarray) -> tuple[float, np.ndarray] | float:
        theta = torch.as_tensor(low + span * s, dtype=theory.dtype)
        if theory.differentiable:
            theta.requires_grad_(True)
            value = nll(theta.unsqueeze(0))[0]
            (grad,) = torch.autograd.grad(value, theta)
            return float(value.detach()), grad.numpy() * span
        with torch.no_grad():
            return float(nll(theta.unsqueeze(0))[0])

    rng = np.random.default_rng(seed)
    starts = [np.full(len(low), 0.5)]
    if start is not None:
        starts.append(np.clip((np.asarray(start) - low) / span, 0, 1))
    while len(starts) < n_starts:
        starts.append(rng.uniform(0.05, 0.95, len(low)))
    best = None
    with _torch_single_thread(), torch.enable_grad():
        for s0 in starts:
            res = minimize(
                objective,
                s0,
                jac=theory.differentiable,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * len(low),
                options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
            )
            if best is None or res.fun < best.fun:
                best = res
        theta_hat = low + span * best.x
        hess = _hessian(theory, nll, torch.as_tensor(theta_hat, dtype=theory.dtype)).numpy()
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(hess)
    edge = np.minimum(best.x, 1 - best.x) < 1e-6
    return MLEResult(
        theta=theta_hat,
        cov=cov,
        nll=float(best.fun),
        success=bool(best.success),
        seconds=time.perf_counter() - t0,
        n_starts=len(starts),
        at_boundary=[n for n, e in zip(theory.param_names, edge, strict=True) if e],
    )


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
    return _maximize(
        theory, lambda t: negative_log_likelihood(theory, t, data), n_starts, seed, start
    )


def nll_excess(
    nll: NLL, theta: Sequence[float], mle: MLEResult, dtype: torch.dtype = torch.float64
) -> float:
    """−log L(θ) − −log L(θ̂) for the ``nll`` the MLE minimized: how far θ is by the likelihood's
    own measure (√(2Δ) is the Mahalanobis distance where the likelihood is Gaussian)."""
    with torch.no_grad():
        t = torch.as_tensor(np.asarray(theta, dtype=float), dtype=dtype).unsqueeze(0)
        return float(nll(t)[0]) - mle.nll


class BinnedEvents:
    """Events of a 1-D theory histogrammed on bins uniform in logit(x), for fits of 10^6–10^8 events.

    The expected count of bin k is μ_ck(θ) = L_c ∫_bin σ_c(x; θ) dx (Gauss–Legendre per bin), so
    Σ_k μ_ck = L_c ∫σ_c: the binned extended likelihood carries the norms through the totals.

    Args:
        theory: a 1-D theory.
        events: one array (N_c,) or (N_c, 1) per channel.
        norms: the measured ∫σ_c dx; the exposure is L_c = N_c / norm_c.
        n_bins: bins per channel; nodes: quadrature nodes per bin.
    """

    def __init__(
        self,
        theory: Theory,
        events: Sequence[np.ndarray],
        norms: Sequence[float],
        n_bins: int = 400,
        nodes: int = 6,
    ) -> None:
        lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
        eps = 1e-7
        u = np.linspace(np.log(eps) - np.log1p(-eps), np.log1p(-eps) - np.log(eps), n_bins + 1)
        edges = lo + (hi - lo) / (1 + np.exp(-u))
        edges[0], edges[-1] = lo, hi
        self.theory = theory
        self.set_counts(
            torch.as_tensor(
                np.stack([np.histogram(np.ravel(e), bins=edges)[0] for e in events]),
                dtype=theory.dtype,
            ),
            norms,
        )
        g, w = np.polynomial.legendre.leggauss(nodes)
        a, b = edges[:-1, None], edges[1:, None]
        self.nodes = torch.as_tensor(
            ((a + b) / 2 + (b - a) / 2 * g).reshape(-1, 1), dtype=theory.dtype
        )
        self.weights = torch.as_tensor(((b - a) / 2 * w), dtype=theory.dtype)  # (K, nodes)

    def set_counts(self, counts: Tensor, norms: Sequence[float] | Tensor) -> None:
        """Counts per channel and bin (C, K), whole or not (expected counts), with their measured
        ∫σ_c dx: the exposure is L_c = Σ_k counts_ck / norm_c."""
        self.counts = torch.as_tensor(counts, dtype=self.theory.dtype)
        norms = torch.as_tensor(np.asarray(norms, dtype=float), dtype=self.theory.dtype)
        self.exposure = self.counts.sum(-1) / norms

    def expected(self, theta: Tensor) -> Tensor:
        """μ_ck(θ), shape (B, C, K)."""
        dens = self.theory._density(self.nodes.unsqueeze(0).expand(theta.shape[0], -1, -1), theta)
        k, m = self.weights.shape
        return (dens.view(theta.shape[0], -1, k, m) * self.weights).sum(-1) * self.exposure.view(
            1, -1, 1
        )

    def nll(self, theta: Tensor) -> Tensor:
        """Poisson −log L of the histograms (constants dropped), θ (B, P) → (B,)."""
        mu = self.expected(theta).clamp(min=torch.finfo(theta.dtype).tiny)
        return (mu - self.counts * mu.log()).sum((-1, -2))


def fit_binned_mle(
    theory: Theory,
    binned: BinnedEvents,
    start: Sequence[float] | None = None,
    n_starts: int = 2,
    seed: int = 0,
) -> MLEResult:
    """Maximum likelihood of histogrammed events (see `BinnedEvents`), from ``start`` and the box centre."""
    return _maximize(theory, binned.nll, n_starts, seed, start)
