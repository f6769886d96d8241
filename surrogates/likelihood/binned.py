"""Binned extended likelihood of 10^6–10^8 events of a 1-D theory: the fidelity yardstick."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from surrogates.likelihood.optimize import MLEResult, maximize
from surrogates.theory import Theory

__all__ = ["BinnedEvents", "fit_binned_mle"]


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
    return maximize(theory, binned.nll, n_starts, seed, start)
