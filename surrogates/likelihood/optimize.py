"""Maximize a likelihood inside the prior box: L-BFGS-B from several starts, the covariance from
the Hessian (automatic or finite differences for theories with no gradients)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from surrogates.theory import Theory

__all__ = ["MLEResult", "NLL", "best_of_starts", "maximize", "numeric_jacobian", "nll_excess"]


def numeric_jacobian(
    fn: Callable[[Tensor], Tensor], theta: Tensor, rel_step: float = 1e-5
) -> Tensor:
    """Central-difference Jacobian of fn: (P,) → (...), for theories with no gradients."""
    cols = []
    for j in range(theta.numel()):
        h = rel_step * max(1.0, abs(float(theta[j])))
        e = torch.zeros_like(theta)
        e[j] = h
        cols.append((fn(theta + e) - fn(theta - e)) / (2 * h))
    return torch.stack(cols, dim=-1)


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
            return numeric_jacobian(lambda q: f(q).reshape(1), p, 1e-4)[0]

        h = numeric_jacobian(grad, theta, 1e-4)
        return (h + h.T) / 2


def maximize(
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


def nll_excess(
    nll: NLL, theta: Sequence[float], mle: MLEResult, dtype: torch.dtype = torch.float64
) -> float:
    """−log L(θ) − −log L(θ̂) for the ``nll`` the MLE minimized: how far θ is by the likelihood's
    own measure (√(2Δ) is the Mahalanobis distance where the likelihood is Gaussian)."""
    with torch.no_grad():
        t = torch.as_tensor(np.asarray(theta, dtype=float), dtype=dtype).unsqueeze(0)
        return float(nll(t)[0]) - mle.nll


def best_of_starts(
    fit: Callable[[Sequence[float]], MLEResult], starts: Sequence[Sequence[float]]
) -> tuple[MLEResult | None, list[str]]:
    """``fit`` from each of ``starts``, the lowest finite −log L kept (along a flat direction a
    local fitter such as Fisher scoring stops short of the maximum from one start). A start whose
    fit raises (a diverged fitter's NaN θ) is skipped; returns (None, why) when none gives a finite
    −log L, else (the best fit, the errors of the starts that raised)."""
    fits, errors = [], []
    for start in starts:
        try:
            result = fit(start)
        except Exception as err:  # noqa: BLE001 - the other starts may still succeed
            errors.append(f"{type(err).__name__}: {err}")
            continue
        if np.isfinite(result.nll):
            fits.append(result)
    if not fits:
        return None, errors or ["no finite −log L"]
    return min(fits, key=lambda f: f.nll), errors
