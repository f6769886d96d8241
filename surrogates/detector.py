"""The experimental module: a differentiable detector between the event source and the data.

`DISDetector` turns true DIS events (x, Q²) into reconstructed ones:

* **efficiency** ε(x, Q²) = ε_max · sigmoid((E' − E_min)/ΔE) of the true kinematics, with
  E' = E(1 − y) the scattered electron's energy: a trigger threshold that removes high-y events;
* **smearing**: x_rec = x (1 + r_x ξ₁), Q²_rec = Q² (1 + r_Q ξ₂), ξ independent standard normals,
  so E[x_rec] = x, Var[x_rec] = r_x² x² (same for Q²), Cov = 0;
* **acceptance** of the analysis box: reconstructed events outside the theory's (x, Q²) box are
  lost.

For observed data the efficiency is a Bernoulli draw per event. In the outer GAN the same module
runs on generated events as a differentiable transformation: the smearing is reparameterized
(x_rec is a function of x and fixed noise, so gradients reach θ through x) and the efficiency is
a weight ε(x, Q²) per event, so the generated and observed events are compared like with like.
The expected reconstructed spectrum of the exact theory, for likelihood fits, is the forward
folding with `response` (see `surrogates.likelihood.folded`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import ndtr
from torch import Tensor

from surrogates.errors import InputError
from surrogates.theory import Theory

__all__ = ["DISDetector", "make_detector", "DETECTOR_DEFAULTS"]

DETECTOR_DEFAULTS = {
    "kind": "dis",
    "x_resolution": 0.03,
    "q2_resolution": 0.02,
    "efficiency_max": 0.9,
    "energy_threshold": 1.5,
    "energy_width": 0.3,
}


class DISDetector:
    """Efficiency, smearing and box acceptance of reconstructed DIS events; see the module docstring.

    Args:
        theory: the DIS theory (beam energy, box).
        x_resolution, q2_resolution: relative Gaussian resolutions r_x, r_Q.
        efficiency_max: plateau efficiency ε_max.
        energy_threshold, energy_width: E_min and ΔE of the scattered-electron threshold (GeV).
    """

    def __init__(
        self,
        theory: Theory,
        x_resolution: float = 0.03,
        q2_resolution: float = 0.02,
        efficiency_max: float = 0.9,
        energy_threshold: float = 1.5,
        energy_width: float = 0.3,
    ) -> None:
        if theory.event_dim != 2 or not hasattr(theory, "beam_energy"):
            raise InputError(f"the DIS detector needs the DIS theory, not '{theory.name}'")
        values = (x_resolution, q2_resolution, efficiency_max, energy_width)
        if min(values) <= 0 or efficiency_max > 1 or max(x_resolution, q2_resolution) >= 0.3:
            raise InputError(
                "detector: resolutions must be in (0, 0.3), efficiency_max in (0, 1] and "
                "energy_width > 0"
            )
        self.theory = theory
        self.r = torch.tensor([x_resolution, q2_resolution], dtype=torch.float64)
        self.efficiency_max = efficiency_max
        self.energy_threshold = energy_threshold
        self.energy_width = energy_width
        self._rules: dict[int | None, tuple[Tensor, Tensor, Tensor]] = {}

    def describe(self) -> dict:
        """The settings, as stored with data simulated through this detector."""
        return {
            "kind": "dis",
            "x_resolution": float(self.r[0]),
            "q2_resolution": float(self.r[1]),
            "efficiency_max": self.efficiency_max,
            "energy_threshold": self.energy_threshold,
            "energy_width": self.energy_width,
        }

    # ------------------------------------------------------------------ pieces
    def efficiency(self, x: Tensor) -> Tensor:
        """ε of true events x (…, 2) → (…)."""
        y = x[..., 1] / (x[..., 0] * self.theory.smm)
        energy = self.theory.beam_energy * (1 - y)
        return self.efficiency_max * torch.sigmoid(
            (energy - self.energy_threshold) / self.energy_width
        )

    def in_box(self, x: Tensor) -> Tensor:
        lo, hi = self.theory.x_low.to(x), self.theory.x_high.to(x)
        return ((x >= lo) & (x <= hi)).all(-1)

    def smear(
        self, x: Tensor, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> Tensor:
        """x_rec = x (1 + r ξ), differentiable in x; ``noise`` fixes ξ (…, 2)."""
        if noise is None:
            noise = torch.randn(x.shape, dtype=x.dtype, generator=generator).to(x.device)
        return x * (1 + self.r.to(x) * noise)

    def apply(
        self, events: Sequence[Tensor], generator: torch.Generator | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Reconstructed events and their weights ε · [inside the box], per channel (B, n, 2), (B, n).

        Differentiable: the weights carry the efficiency's dependence on the true events.
        """
        rec, weights = [], []
        for e in events:
            xr = self.smear(e, generator)
            inside = self.in_box(xr)
            rec.append(torch.where(inside.unsqueeze(-1), xr, e))  # lost events: weight 0
            weights.append(self.efficiency(e) * inside.to(e.dtype))
        return rec, weights

    def simulate(self, events: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Observed events: smear, keep each with probability ε, drop those outside the box."""
        x = torch.as_tensor(events, dtype=torch.float64)
        noise = torch.as_tensor(rng.standard_normal(x.shape))
        xr = self.smear(x, noise=noise)
        keep = (torch.as_tensor(rng.random(len(x))) < self.efficiency(x)) & self.in_box(xr)
        return xr[keep].numpy()

    # ------------------------------------------------------------------ folding
    def acceptance(self, nodes: Tensor) -> Tensor:
        """Probability that a true event at each node is reconstructed inside the box (Q,)."""
        lo, hi = self.theory.x_low.to(nodes), self.theory.x_high.to(nodes)
        s = self.r.to(nodes) * nodes
        p = torch.special.ndtr((hi - nodes) / s) - torch.special.ndtr((lo - nodes) / s)
        return self.efficiency(nodes) * p.prod(-1)

    def quadrature(self, n: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The theory's quadrature of its event region: nodes (Q, 2), weights (Q,) and the weights
        × `acceptance` (Q,), so that σ(nodes) @ the last = ∫σ ε acc dx (cached per ``n``)."""
        if n not in self._rules:
            nodes, weights = self.theory.quadrature(n)
            self._rules[n] = (nodes, weights, weights * self.acceptance(nodes))
        return self._rules[n]

    def accepted_norms(self, theta: Tensor, n: int | None = None) -> Tensor:
        """∫σ_c ε acc dx of the exact theory: the norms of reconstructed events, (B, C),
        differentiable in θ."""
        nodes, _, accepted = (r.to(theta) for r in self.quadrature(n))
        dens = self.theory._density(nodes.unsqueeze(0).expand(theta.shape[0], -1, -1), theta)
        return dens @ accepted

    def response(self, nodes: Tensor, x_edges: np.ndarray, q2_edges: np.ndarray) -> Tensor:
        """R[b, q]: probability that a true event at node q is reconstructed in bin b (x-major).

        Exact for this detector: ε(node) × the Gaussian probabilities of the bin's x and Q² ranges.
        """
        xn, qn = nodes[:, 0].numpy(), nodes[:, 1].numpy()
        rx, rq = float(self.r[0]), float(self.r[1])

        def probs(edges: np.ndarray, centre: np.ndarray, r: float) -> np.ndarray:
            cdf = ndtr((edges[:, None] - centre[None]) / (r * centre[None]))
            return np.diff(cdf, axis=0)  # (bins, Q)

        px, pq = probs(x_edges, xn, rx), probs(q2_edges, qn, rq)
        eff = self.efficiency(nodes).numpy()
        resp = (px[:, None, :] * pq[None, :, :]).reshape(-1, len(xn)) * eff
        return torch.as_tensor(resp, dtype=nodes.dtype)


def make_detector(spec: dict | None, theory: Theory) -> DISDetector | None:
    """A detector from a config mapping ({kind: dis, ...}; None or kind none: no detector)."""
    if not spec or spec in ("none", "None"):
        return None
    if not isinstance(spec, dict):
        raise InputError(
            f"detector must be a mapping (kind: dis, x_resolution: 0.03, ...), got {spec!r}"
        )
    if spec.get("kind", "dis") in (None, "none"):
        return None
    spec = dict(spec)
    kind = spec.pop("kind", "dis")
    if kind != "dis":
        raise InputError(f"unknown detector kind '{kind}'; choose dis or none")
    allowed = set(DETECTOR_DEFAULTS) - {"kind"}
    unknown = set(spec) - allowed
    if unknown:
        raise InputError(
            f"unknown detector option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}"
        )
    for key, value in spec.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"detector option {key} must be a number, got {value!r}")
    return DISDetector(theory, **spec)
