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

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.special import ndtr
from torch import Tensor

from surrogates.errors import InputError
from surrogates.theory import Theory

__all__ = [
    "truncated_smear",
    "DISDetector",
    "SmearingDetector",
    "make_detector",
    "DETECTOR_DEFAULTS",
    "SMEARING_DEFAULTS",
]

DETECTOR_DEFAULTS = {
    "kind": "dis",
    "x_resolution": 0.03,
    "q2_resolution": 0.02,
    "efficiency_max": 0.9,
    "energy_threshold": 1.5,
    "energy_width": 0.3,
}


def truncated_smear(
    x: Tensor, width: Tensor, low: Tensor, high: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Smear events x (…, d) by Gaussians of ``width`` (…, d), each axis truncated to
    [low, high) (d,): x_rec from the truncated Gaussian's inverse CDF at a uniform, so
    differentiable in x, and the probability (…) that the untruncated x + width · ξ lands inside.

    Weighted by that probability, the events have the density that smearing and then dropping the
    events outside gives; but none crosses an edge as x moves, so a pathwise gradient through
    them leaves nothing out. (An indicator of x + width · ξ inside has a zero derivative almost
    everywhere: the gradient misses the events that cross the edges, which biased the outer GAN
    at detector level; docs/notes/2026-12-06-gan-at-detector-level.md.)
    """
    lo, hi = low.to(x), high.to(x)
    u = torch.rand(x.shape, dtype=x.dtype, generator=generator).to(x.device)
    below = torch.special.ndtr((lo - x) / width)
    inside = torch.special.ndtr((hi - x) / width) - below
    tiny = torch.finfo(x.dtype).eps
    q = (below + u * inside).clamp(tiny, 1 - tiny)
    xr = x + width * torch.special.ndtri(q)
    top = torch.nextafter(hi, lo)  # rounding at the edges: x_rec stays in [low, high)
    return torch.minimum(torch.maximum(xr, lo), top), inside.prod(-1)


def _reconstruct(
    detector: DISDetector | SmearingDetector,
    events: Sequence[Tensor],
    width: Callable[[Tensor], Tensor],
    generator: torch.Generator | None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Both detectors' `apply`: per channel, the events reconstructed by `truncated_smear` with
    the smearing ``width(events)`` inside the theory's box, weighted by ε(x) × P(inside)."""
    lo, hi = detector.theory.x_low, detector.theory.x_high
    rec, weights = [], []
    for e in events:
        xr, inside = truncated_smear(e, width(e), lo, hi, generator)
        rec.append(xr)
        weights.append(detector.efficiency(e) * inside)
    return rec, weights


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
        """Reconstructed events and their weights per channel, (B, n, 2) and (B, n): the outer
        GAN's exact source through the detector. Each axis is reconstructed from its Gaussian
        (width r · x) truncated to the box and the event weighted by ε(x) × the probability of
        landing inside (`truncated_smear`): the folded density, with a pathwise gradient that
        leaves nothing out at the box's edges."""
        return _reconstruct(self, events, lambda e: self.r.to(e) * e, generator)

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


SMEARING_DEFAULTS = {
    "kind": "smear",
    "resolution": 0.02,
    "efficiency_at_low": 0.9,
    "efficiency_slope": -0.3,
}


class SmearingDetector:
    """A 1-D detector: efficiency linear in the true x, Gaussian smearing, box acceptance.

    A true event at x is kept with probability ε(x) = ε₀ + k (x − x_low) (clipped to [0, 1]),
    reconstructed at x_rec = x + r ξ with ξ a standard normal, and lost when x_rec leaves the
    theory's range [x_low, x_high). As an event-by-event simulation (`__call__`, `simulate`) it
    is what a physicist's detector code is: random, not differentiable. Its exact response
    (`response`, `accepted_norms`) lets a measurement fold the exact density through it, and
    `apply` makes the outer GAN's exact source through it (a control; a generator's own fits
    never need it).

    Args:
        theory: a 1-D theory (its x range is the acceptance).
        resolution: r, in units of x.
        efficiency_at_low: ε₀ = ε(x_low).
        efficiency_slope: k, the change of ε per unit x.
    """

    def __init__(
        self,
        theory: Theory,
        resolution: float = 0.02,
        efficiency_at_low: float = 0.9,
        efficiency_slope: float = -0.3,
    ) -> None:
        if theory.event_dim != 1:
            raise InputError(f"the smearing detector is 1-D; theory '{theory.name}' is not")
        lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
        ends = (efficiency_at_low, efficiency_at_low + efficiency_slope * (hi - lo))
        if not 0 < resolution < hi - lo or min(ends) < 0 or max(ends) > 1:
            raise InputError(
                "detector: resolution must be in (0, the x range) and the efficiency within "
                "[0, 1] over the range"
            )
        self.theory = theory
        self.r = float(resolution)
        self.eps0, self.slope = float(efficiency_at_low), float(efficiency_slope)
        self._rules: dict[int | None, tuple[Tensor, Tensor, Tensor]] = {}

    def describe(self) -> dict:
        """The settings, as stored with data simulated through this detector."""
        return {
            "kind": "smear",
            "resolution": self.r,
            "efficiency_at_low": self.eps0,
            "efficiency_slope": self.slope,
        }

    def efficiency(self, x: Tensor) -> Tensor:
        """ε of true events x (…, 1) → (…)."""
        lo = float(self.theory.x_low[0])
        return (self.eps0 + self.slope * (x[..., 0] - lo)).clamp(0.0, 1.0)

    def in_box(self, x: Tensor) -> Tensor:
        lo, hi = float(self.theory.x_low[0]), float(self.theory.x_high[0])
        return (x[..., 0] >= lo) & (x[..., 0] < hi)

    def smear(
        self, x: Tensor, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> Tensor:
        """x_rec = x + r ξ, differentiable in x; ``noise`` fixes ξ."""
        if noise is None:
            noise = torch.randn(x.shape, dtype=x.dtype, generator=generator).to(x.device)
        return x + self.r * noise

    def apply(
        self, events: Sequence[Tensor], generator: torch.Generator | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Reconstructed events and their weights, per channel: the outer GAN's exact source.

        Each true event x is reconstructed inside the range from the Gaussian of width r
        truncated to it and weighted by its acceptance ε(x) · P(x + r ξ inside the range)
        (`truncated_smear`): the folded density, with no event crossing the range's ends as θ
        moves, so the pathwise gradient leaves nothing out.
        """
        return _reconstruct(self, events, lambda e: torch.full_like(e, self.r), generator)

    def simulate(self, events: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Observed events: keep each with probability ε(x), smear, drop those leaving the range."""
        x = torch.as_tensor(np.asarray(events, dtype=float).reshape(-1, 1))
        keep = torch.as_tensor(rng.random(len(x))) < self.efficiency(x)
        xr = self.smear(x, noise=torch.as_tensor(rng.standard_normal(x.shape)))
        return xr[keep & self.in_box(xr)].numpy()

    def __call__(self, events: np.ndarray, channel: int, rng: np.random.Generator) -> np.ndarray:
        """The detector as `surrogates.generators.TheoryGenerator` calls it (same for every channel)."""
        return self.simulate(events, rng)

    # ------------------------------------------------------------------ folding
    def acceptance(self, nodes: Tensor) -> Tensor:
        """Probability that a true event at each node is reconstructed inside the range (Q,)."""
        lo, hi = float(self.theory.x_low[0]), float(self.theory.x_high[0])
        x = nodes[..., 0]
        p = torch.special.ndtr((hi - x) / self.r) - torch.special.ndtr((lo - x) / self.r)
        return self.efficiency(nodes) * p

    def quadrature(self, n: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Nodes (Q, 1), weights (Q,) and weights × `acceptance` (cached per ``n``)."""
        if n not in self._rules:
            nodes, weights = self.theory.quadrature(n)
            self._rules[n] = (nodes, weights, weights * self.acceptance(nodes))
        return self._rules[n]

    def accepted_norms(self, theta: Tensor, n: int | None = None) -> Tensor:
        """∫σ_c ε acc dx: the norms of reconstructed events, (B, C), differentiable in θ."""
        nodes, _, accepted = (r.to(theta) for r in self.quadrature(n))
        dens = self.theory._density(nodes.unsqueeze(0).expand(theta.shape[0], -1, -1), theta)
        return dens @ accepted

    def response(self, nodes: Tensor, edges: np.ndarray) -> Tensor:
        """R[b, q]: probability that a true event at node q is reconstructed in bin b."""
        xn = nodes[:, 0].numpy()
        cdf = ndtr((edges[:, None] - xn[None]) / self.r)
        resp = np.diff(cdf, axis=0) * self.efficiency(nodes).numpy()
        return torch.as_tensor(resp, dtype=nodes.dtype)


def make_detector(spec: dict | None, theory: Theory) -> DISDetector | SmearingDetector | None:
    """A detector from a config mapping ({kind: dis | smear, ...}; None or kind none: none)."""
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
    kinds = {
        "dis": (DISDetector, DETECTOR_DEFAULTS),
        "smear": (SmearingDetector, SMEARING_DEFAULTS),
    }
    if kind not in kinds:
        raise InputError(f"unknown detector kind '{kind}'; choose dis, smear or none")
    cls, defaults = kinds[kind]
    allowed = set(defaults) - {"kind"}
    unknown = set(spec) - allowed
    if unknown:
        raise InputError(
            f"unknown detector option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}"
        )
    for key, value in spec.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"detector option {key} must be a number, got {value!r}")
    return cls(theory, **spec)
