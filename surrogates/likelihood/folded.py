"""Likelihood of reconstructed events: the exact theory folded through the detector, binned.

For 1-D theories with a `SmearingDetector` and 2-D DIS with its `DISDetector`.

The expected count of reconstructed bin b in channel c is

    ν_cb(θ) = L_c Σ_q R_bq σ_c(x_q; θ) w_q,

with (x_q, w_q) the theory's quadrature of its event region and R the detector's response
(`DISDetector.response`: efficiency × the probability to land in the bin). L_c = m_c / s_c² is the
exposure of the measured (reconstructed) norm m_c ± s_c, so Σ_b ν_cb = L_c × the accepted norm.
The binned Poisson likelihood gives the maximum-likelihood yardstick on detector-level data and,
through ∂ν/∂θ, the Cramér–Rao bound for this theory and detector (the Fisher information
Σ_b ∂ν_b ∂ν_bᵀ / ν_b, by automatic differentiation of the folded model).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from surrogates.data import ObservedData
from surrogates.detector import DISDetector, SmearingDetector
from surrogates.likelihood.optimize import MLEResult, maximize
from surrogates.theory import Theory

__all__ = ["FoldedModel"]


class FoldedModel:
    """The theory folded through a detector on bins: uniform in x for 1-D events (a
    `SmearingDetector`), uniform in (ln x_rec, ln Q²_rec) for DIS.

    Args:
        theory, detector: the theory and its detector.
        bins: bins per axis over the theory's box.
        nodes: quadrature nodes (per axis; for DIS per unit-square axis segment).
    """

    def __init__(
        self,
        theory: Theory,
        detector: DISDetector | SmearingDetector,
        bins: int = 40,
        nodes: int | None = None,
    ) -> None:
        self.theory, self.detector = theory, detector
        lo, hi = theory.x_low.numpy(), theory.x_high.numpy()
        self.one_d = theory.event_dim == 1
        self.n_nodes = nodes or (512 if self.one_d else 48)
        self.nodes, self.weights, _ = detector.quadrature(self.n_nodes)
        if self.one_d:
            self.x_edges = np.linspace(lo[0], hi[0], bins + 1)
            resp = detector.response(self.nodes, self.x_edges)
        else:
            self.x_edges = np.exp(np.linspace(np.log(lo[0]), np.log(hi[0]), bins + 1))
            self.q2_edges = np.exp(np.linspace(np.log(lo[1]), np.log(hi[1]), bins + 1))
            resp = detector.response(self.nodes, self.x_edges, self.q2_edges)
        self.used = torch.nonzero(resp.sum(-1) > 1e-12)[:, 0]  # bins the region can reach
        self.response = resp[self.used] * self.weights  # (K, Q), quadrature weights folded in

    # ------------------------------------------------------------------ model
    def folded(self, theta: Tensor) -> Tensor:
        """Σ_q R_bq σ_c(x_q) w_q per used bin: (B, C, K), reconstructed cross section per bin."""
        dens = self.theory._density(self.nodes.unsqueeze(0).expand(theta.shape[0], -1, -1), theta)
        return dens @ self.response.T

    def accepted_norms(self, theta: Tensor) -> Tensor:
        """∫σ_c ε acc dx: the norm of reconstructed events inside the box, (B, C)."""
        return self.detector.accepted_norms(theta, self.n_nodes)

    def histogram(self, events: Sequence[np.ndarray]) -> Tensor:
        """Counts of reconstructed events in the used bins, (C, K)."""
        if self.one_d:
            counts = [np.histogram(e[:, 0], bins=self.x_edges)[0] for e in events]
        else:
            counts = [
                np.histogram2d(e[:, 0], e[:, 1], bins=[self.x_edges, self.q2_edges])[0].ravel()
                for e in events
            ]
        return torch.as_tensor(np.stack(counts), dtype=self.theory.dtype)[:, self.used]

    def nll_function(self, counts: Tensor, exposure: Sequence[float]):  # noqa: ANN201
        """θ (B, P) → Poisson −log L (B,) of histogrammed counts (C, K) for the exposures L_c."""
        lum = torch.as_tensor(np.asarray(exposure, dtype=float), dtype=self.theory.dtype)
        tiny = torch.finfo(self.theory.dtype).tiny

        def nll(theta: Tensor) -> Tensor:
            mu = (self.folded(theta) * lum.view(1, -1, 1)).clamp(min=tiny)
            return (mu - counts * mu.log()).sum((-1, -2))

        return nll

    # ------------------------------------------------------------------ fits and bounds
    def fit(
        self,
        data: ObservedData,
        start: Sequence[float] | None = None,
        n_starts: int = 4,
        seed: int = 0,
    ) -> MLEResult:
        """Binned extended maximum likelihood of reconstructed data (events + measured norms)."""
        data.validate(self.theory)
        nll = self.nll_function(self.histogram(data.events), data.exposure)
        return maximize(self.theory, nll, n_starts, seed, start)

    def fit_events(
        self, events: Sequence[np.ndarray], norms: Sequence[float], start: Sequence[float]
    ) -> MLEResult:
        """Fit many reconstructed events with given accepted norms (exposure N_c / norm_c)."""
        counts = self.histogram(events)
        exposure = counts.sum(-1).numpy() / np.asarray(norms, dtype=float)
        return maximize(self.theory, self.nll_function(counts, exposure), 2, 0, start)

    def fisher_information(
        self, theta: Sequence[float] | Tensor, expected_counts: Sequence[float]
    ) -> Tensor:
        """Σ_b ∂ν_b ∂ν_bᵀ / ν_b at θ for these expected reconstructed counts per channel, (P, P)."""
        t = self.theory.check_theta(theta)[0]
        with torch.no_grad():
            acc = self.accepted_norms(t.unsqueeze(0))[0]
        lum = torch.as_tensor(np.asarray(expected_counts, dtype=float), dtype=t.dtype) / acc

        def nu(p: Tensor) -> Tensor:
            return self.folded(p.unsqueeze(0))[0] * lum.unsqueeze(-1)  # (C, K)

        jac = torch.autograd.functional.jacobian(nu, t, vectorize=True)  # (C, K, P)
        with torch.no_grad():
            mu = nu(t)
            inv = torch.where(mu > 0, 1 / mu.clamp(min=torch.finfo(t.dtype).tiny), 0.0)
            return torch.einsum("cki,ckj,ck->ij", jac, jac, inv)

    def crb_std(
        self, theta: Sequence[float] | Tensor, expected_counts: Sequence[float]
    ) -> np.ndarray:
        """Cramér–Rao 1σ per parameter for reconstructed data of these expected counts."""
        info = self.fisher_information(theta, expected_counts)
        return torch.linalg.inv(info).diagonal().clamp(min=0).sqrt().numpy()
