"""Inclusive deep-inelastic scattering e p → e X and e d → e X: 2-D events (x_Bj, Q²).

Kinematics (fixed target at rest, electron beam energy E, nucleon mass M, neglecting the electron
mass): s − M² = 2ME, Q² = x y (s − M²), W² = M² + Q²(1 − x)/x, scattered energy E' = E(1 − y).

Cross section (one-photon exchange, per nucleon; e.g. Particle Data Group, "Structure functions",
Eq. 18.11, with the Callan–Gross relation 2xF1 = F2, i.e. R = σ_L/σ_T = 0 and F_L = 0):

    d²σ/dx dQ² = 4πα² / (x Q⁴) · [1 − y + y²/2 − (Mxy)²/Q²] · F2(x, Q²)   (GeV⁻⁴ → nb/GeV² ×0.3894e6)

Structure functions at leading order with three light flavours and a flavour-symmetric sea
S = ū = d̄ = s = s̄ (per flavour):

    F2ᵖ = x [4/9 u_v + 1/9 d_v + 4/3 S],  F2ⁿ = x [4/9 d_v + 1/9 u_v + 4/3 S] (isospin),
    F2ᵈ = (F2ᵖ + F2ⁿ)/2 per nucleon (no nuclear corrections).

Parton densities (valence-like, Buras–Gaemers-type scale dependence, A. J. Buras and
K. J. F. Gaemers, Nucl. Phys. B132 (1978) 249):

    x q_v(x, Q²) = n_q x^{a_q} (1 − x)^{b_q(Q²)} / B(a_q, b_q(Q²) + 1),   n_u = 2, n_d = 1,
    b_q(Q²) = b_q + β s̄,   s̄ = ln[ln(Q²/Λ²) / ln(Q₀²/Λ²)],   Q₀² = 1 GeV², Λ = 0.25 GeV,
    x S(x, Q²) = A_s (1 + β s̄) x^{−0.2} (1 − x)^7.

The normalization makes the valence number sum rules ∫u_v dx = 2, ∫d_v dx = 1 hold at every Q²
(exactly as under QCD evolution); the growing b_q (valence softening at large x) and sea with Q² is
a parametric stand-in for DGLAP evolution, not a solution of it. θ = [a_u, b_u, a_d, b_d, A_s, β].

Cuts (the event region): Q² ≥ 1 GeV², W² ≥ 4 GeV², 0.01 ≤ y ≤ 0.95 (y ≥ 0.01 is never active
here: Q² ≥ 1 already needs y > 0.048; the quadrature splits x only where the W² cut takes over from
the Q² cut); at E = 11 GeV (JLab 12 GeV era) they give 0.051 < x < 0.841 and Q² < 16.5 GeV², the valence region. Events are (x, Q²); the
theory's box [0.04, 0.95] × [0.8, 20] GeV² contains the region with room for detector smearing.
The density is zero outside the region.

The region is mapped onto the unit square (`support_to_unit`): u₁ = ln x scaled between the
region's ends, u₂ = ln Q² scaled between the cuts at that x. Norms, Fisher information and the
exact sampler integrate in u, where the density is smooth and the support is a rectangle.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from surrogates.theory.base import Theory

__all__ = ["DISTheory", "DIS_TRUTH", "DIS_PRIOR_LOW", "DIS_PRIOR_HIGH", "DIS_TRUTH_2"]

ALPHA = 1 / 137.035999
PROTON_MASS = 0.938272  # GeV
GEV2_TO_NB = 0.3893794e6  # (ħc)² in nb GeV²
LAMBDA2 = 0.25**2  # GeV²
Q0_2 = 1.0  # GeV²
SEA_A, SEA_B = -0.2, 7.0  # fixed sea shape x^{−0.2}(1 − x)^7

DIS_TRUTH = (0.7, 3.0, 0.8, 4.0, 0.15, 0.6)
DIS_TRUTH_2 = (0.55, 3.6, 0.95, 3.3, 0.25, 1.0)  # a second truth for closures
DIS_PRIOR_LOW = (0.4, 2.0, 0.4, 2.0, 0.05, 0.0)
DIS_PRIOR_HIGH = (1.1, 5.0, 1.2, 6.0, 0.4, 1.5)


def _log_beta(a: Tensor, b: Tensor) -> Tensor:
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


class DISTheory(Theory):
    """Inclusive DIS on proton and deuteron targets; see the module docstring for the formulas.

    Args:
        beam_energy: electron beam energy in GeV (fixed target).
        q2_min, w2_min, y_min, y_max: kinematic cuts.

    >>> theory = DISTheory()
    >>> round(theory.x_min, 4), round(theory.x_max, 4)
    (0.051, 0.8409)
    >>> [round(v, 2) for v in theory.norms(theory.truth)[0].tolist()]  # nb
    [69.08, 60.37]
    """

    name = "dis"
    param_names = ("a_u", "b_u", "a_d", "b_d", "A_s", "beta")
    channels = ("proton", "deuteron")
    event_dim = 2
    support_map = True
    quadrature_nodes = 48
    closure_counts = (20_000, 20_000)  # expected true events per channel of the closure data

    def __init__(
        self,
        beam_energy: float = 11.0,
        q2_min: float = 1.0,
        w2_min: float = 4.0,
        y_min: float = 0.01,
        y_max: float = 0.95,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__(DIS_PRIOR_LOW, DIS_PRIOR_HIGH, (0.04, 0.8), (0.95, 20.0), DIS_TRUTH, dtype)
        self.beam_energy = beam_energy
        self.smm = 2 * PROTON_MASS * beam_energy  # s − M²
        self.q2_min, self.w2_min, self.y_min, self.y_max = q2_min, w2_min, y_min, y_max
        self.x_min = max(q2_min / (y_max * self.smm), 0.0)
        self.x_max = 1 - (w2_min - PROTON_MASS**2) / (y_max * self.smm)
        if not 0 < self.x_min < self.x_max < 1:
            raise ValueError("DIS cuts leave no kinematic region; loosen them")
        # the lower Q² bound switches from the Q² cut to the W² cut at x_kink
        self.x_kink = q2_min / (q2_min + w2_min - PROTON_MASS**2)
        self.log_x_span = math.log(self.x_max / self.x_min)

    def describe(self) -> dict:
        return super().describe() | {
            "beam_energy": self.beam_energy,
            "cuts": {
                "q2_min": self.q2_min,
                "w2_min": self.w2_min,
                "y_min": self.y_min,
                "y_max": self.y_max,
            },
        }

    # ------------------------------------------------------------------ kinematics
    def q2_limits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Lower and upper Q² of the region at x (inside x_min < x < x_max)."""
        lo = torch.maximum(
            torch.full_like(x, self.q2_min), (self.w2_min - PROTON_MASS**2) * x / (1 - x)
        )
        lo = torch.maximum(lo, self.y_min * x * self.smm)
        return lo, self.y_max * x * self.smm

    def y(self, x: Tensor, q2: Tensor) -> Tensor:
        return q2 / (x * self.smm)

    def inside(self, x: Tensor, q2: Tensor) -> Tensor:
        """Whether (x, Q²) passes the cuts."""
        ok = (x > self.x_min) & (x < self.x_max)
        xs = torch.where(ok, x, torch.full_like(x, 0.5))
        lo, hi = self.q2_limits(xs)
        return ok & (q2 >= lo) & (q2 <= hi)

    # ------------------------------------------------------------------ the unit-square map
    def support_from_unit(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(x, Q²) (…, 2) of u ∈ [0, 1]² and log|det ∂(x, Q²)/∂u| (…)."""
        u1, u2 = u[..., 0], u[..., 1]
        x = self.x_min * torch.exp(u1 * self.log_x_span)
        lo, hi = self.q2_limits(x)
        width = torch.log(hi / lo).clamp(min=0.0)
        q2 = lo * torch.exp(u2 * width)
        tiny = torch.finfo(u.dtype).tiny
        log_det = torch.log(x * self.log_x_span) + torch.log(q2 * width.clamp(min=tiny))
        return torch.stack([x, q2], -1), log_det

    def support_to_unit(self, xq: Tensor) -> tuple[Tensor, Tensor]:
        """u ∈ [0, 1]² of (x, Q²) inside the region, and log|det ∂u/∂(x, Q²)|."""
        x, q2 = xq[..., 0], xq[..., 1]
        xs = x.clamp(self.x_min * (1 + 1e-12), self.x_max * (1 - 1e-12))
        u1 = torch.log(xs / self.x_min) / self.log_x_span
        lo, hi = self.q2_limits(xs)
        tiny = torch.finfo(xq.dtype).tiny
        width = torch.log(hi / lo).clamp(min=tiny)
        u2 = torch.log(q2.clamp(min=tiny) / lo) / width
        log_det = -(torch.log(xs * self.log_x_span) + torch.log(q2 * width))
        return torch.stack([u1, u2], -1), log_det

    def unit_density(self, u: Tensor, theta: Tensor) -> Tensor:
        """σ_c in unit-square coordinates, σ(x(u)) |∂x/∂u|, u (B, n, 2) → (B, C, n)."""
        xq, log_det = self.support_from_unit(u)
        return self._density(xq, theta, check_region=False) * log_det.exp().unsqueeze(1)

    def quadrature(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """Gauss–Legendre nodes in u (split at the kink of the lower Q² bound) mapped to (x, Q²)."""
        n = n or self.quadrature_nodes
        g, w = np.polynomial.legendre.leggauss(n)
        g, w = (g + 1) / 2, w / 2
        u_kink = math.log(self.x_kink / self.x_min) / self.log_x_span
        u1 = np.concatenate([u_kink * g, u_kink + (1 - u_kink) * g])
        w1 = np.concatenate([u_kink * w, (1 - u_kink) * w])
        uu = torch.cartesian_prod(torch.as_tensor(u1), torch.as_tensor(g)).to(self.dtype)
        ww = torch.cartesian_prod(torch.as_tensor(w1), torch.as_tensor(w)).to(self.dtype).prod(-1)
        xq, log_det = self.support_from_unit(uu)
        return xq, ww * log_det.exp()

    # ------------------------------------------------------------------ physics
    def evolution(self, q2: Tensor) -> Tensor:
        """s̄ = ln[ln(Q²/Λ²)/ln(Q₀²/Λ²)]."""
        return torch.log(torch.log(q2 / LAMBDA2) / math.log(Q0_2 / LAMBDA2))

    def pdfs(self, x: Tensor, q2: Tensor, theta: Tensor) -> dict[str, Tensor]:
        """x u_v, x d_v and x S (per sea flavour) at (x, Q²), x and Q² (B, n), θ (B, 6)."""
        a_u, b_u, a_d, b_d, a_s, beta = (theta[:, i : i + 1] for i in range(6))
        sbar = self.evolution(q2)
        log_x, log_1mx = torch.log(x), torch.log1p(-x)

        def valence(n: float, a: Tensor, b0: Tensor) -> Tensor:
            b = b0 + beta * sbar
            return n * torch.exp(a * log_x + b * log_1mx - _log_beta(a, b + 1))

        sea = a_s * (1 + beta * sbar) * torch.exp(SEA_A * log_x + SEA_B * log_1mx)
        return {"xu_v": valence(2.0, a_u, b_u), "xd_v": valence(1.0, a_d, b_d), "xS": sea}

    def structure_functions(self, x: Tensor, q2: Tensor, theta: Tensor) -> dict[str, Tensor]:
        """F2 of proton, neutron and deuteron (per nucleon), each (B, n)."""
        p = self.pdfs(x, q2, theta)
        f2p = 4 / 9 * p["xu_v"] + 1 / 9 * p["xd_v"] + 4 / 3 * p["xS"]
        f2n = 4 / 9 * p["xd_v"] + 1 / 9 * p["xu_v"] + 4 / 3 * p["xS"]
        return {"proton": f2p, "neutron": f2n, "deuteron": (f2p + f2n) / 2}

    def kinematic_factor(self, x: Tensor, q2: Tensor) -> Tensor:
        """4πα²/(x Q⁴) [1 − y + y²/2 − (Mxy)²/Q²] in nb/GeV²: d²σ/dx dQ² = factor × F2."""
        y = self.y(x, q2)
        bracket = 1 - y + y**2 / 2 - (PROTON_MASS * x * y) ** 2 / q2
        return 4 * math.pi * ALPHA**2 / (x * q2**2) * bracket * GEV2_TO_NB

    def _density(self, x: Tensor, theta: Tensor, check_region: bool = True) -> Tensor:
        xb, q2 = x[..., 0], x[..., 1]
        if check_region:  # zero outside the cuts, with finite gradients there
            ok = self.inside(xb, q2)
            xb = torch.where(ok, xb, torch.full_like(xb, 0.3))
            q2 = torch.where(ok, q2, torch.full_like(q2, 3.0))
        f2 = self.structure_functions(xb, q2, theta)
        factor = self.kinematic_factor(xb, q2)
        dens = torch.stack([factor * f2[c] for c in self.channels], 1)
        return torch.where(ok.unsqueeze(1), dens, 0.0) if check_region else dens

    def curves(self, x: Tensor, theta: Tensor) -> dict[str, Tensor]:
        """x u_v, x d_v, x S and F2ᵖ, F2ᵈ at Q² = 4 GeV², for x (B, n) or (B, n, 1)."""
        t = self.check_theta(theta)
        x = torch.as_tensor(x, dtype=self.dtype)
        x = x[..., 0] if x.dim() == 3 else x
        x = x.expand(t.shape[0], -1)
        q2 = torch.full_like(x, 4.0)
        f2 = self.structure_functions(x, q2, t)
        return self.pdfs(x, q2, t) | {"F2p": f2["proton"], "F2d": f2["deuteron"]}
