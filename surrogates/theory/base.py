"""The module-2 interface: parameters θ in a prior box → channel densities σ_c(x; θ) and norms."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from surrogates.errors import InputError, ParameterError

__all__ = [
    "Module2",
    "Theory",
    "ArrayLike",
    "check_density_values",
    "chebyshev_grid",
    "gauss_legendre",
]

ArrayLike = Tensor | np.ndarray | Sequence[float] | Sequence[Sequence[float]]


@lru_cache(maxsize=16)
def _leggauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1.0) / 2.0, weights / 2.0  # on [0, 1]


def gauss_legendre(low: float, high: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights on [low, high], clustered at both ends.

    The substitution x = low + (high − low)(1 − cos πs)/2 turns endpoint behaviour such as
    (1 − x)^b with small b into a smooth integrand, so a few hundred Gauss–Legendre nodes in s
    integrate the proxy's densities to ~1e-10 relative accuracy anywhere in the prior box.

    >>> x, w = gauss_legendre(0.0, 1.0, 64)
    >>> round(float(np.sum(w * x**2)), 12)
    0.333333333333
    """
    s, ws = _leggauss(n)
    x = low + (high - low) * (1.0 - np.cos(np.pi * s)) / 2.0
    w = ws * (high - low) * np.pi / 2.0 * np.sin(np.pi * s)
    return x, w


def chebyshev_grid(low: float, high: float, n: int) -> np.ndarray:
    """n grid points on [low, high] including both ends, spaced ∝ h² near the ends."""
    s = np.linspace(0.0, 1.0, n)
    x = low + (high - low) * (1.0 - np.cos(np.pi * s)) / 2.0
    x[0], x[-1] = low, high
    return x


class Module2:
    """What every module-2 declares: parameters with their prior box, channels, the event range.

    A density `Theory` and an event generator (`surrogates.generators.EventGenerator`) share it:
    names, the box every θ must lie in, and what a file or checkpoint must match to be used
    with it (`describe`).

    Attributes:
        name: registry name, stored in every file this module-2 writes.
        param_names: one name per parameter.
        channels: one name per observable channel.
        event_dim: dimension of one event x.
        reference_counts: expected events per channel of the user's reference data set, the
            unit of every fidelity number (θ shifts in σ_CRB at this data size); None: the
            proxy's case A.
        has_density: whether σ_c(x; θ) can be evaluated (a `Theory`) or only sampled.
    """

    name: str = "module2"
    param_names: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    event_dim: int = 1
    reference_counts: tuple[float, ...] | None = None
    has_density: bool = False

    def declare(
        self,
        name: str,
        param_names: Sequence[str],
        channels: Sequence[str],
        event_dim: int = 1,
        reference_counts: Sequence[float] | None = None,
    ) -> None:
        """Set the names, channels, event dimension (and reference counts) on this instance: what
        a wrapper of a user's code declares before `Module2.__init__` checks the box against it."""
        self.name = name
        self.param_names, self.channels = tuple(param_names), tuple(channels)
        self.event_dim = event_dim
        if reference_counts is not None:
            self.reference_counts = tuple(float(v) for v in reference_counts)

    def __init__(
        self,
        prior_low: Sequence[float],
        prior_high: Sequence[float],
        x_low: Sequence[float],
        x_high: Sequence[float],
        truth: Sequence[float] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.dtype = dtype
        self.prior_low = torch.as_tensor(prior_low, dtype=dtype)
        self.prior_high = torch.as_tensor(prior_high, dtype=dtype)
        self.x_low = torch.as_tensor(x_low, dtype=dtype)
        self.x_high = torch.as_tensor(x_high, dtype=dtype)
        self.truth = None if truth is None else torch.as_tensor(truth, dtype=dtype)
        if self.prior_low.shape != (self.n_params,) or self.prior_high.shape != (self.n_params,):
            raise ValueError(f"{self.name}: prior box must have {self.n_params} entries per side")
        if self.x_low.shape != (self.event_dim,):
            raise ValueError(f"{self.name}: x range must have {self.event_dim} entries per side")

    # ------------------------------------------------------------------ description
    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def describe(self) -> dict:
        """JSON-able description: what a file or checkpoint must match to be used with this theory."""
        return {
            "theory": self.name,
            "param_names": list(self.param_names),
            "channels": list(self.channels),
            "event_dim": self.event_dim,
            "prior_low": self.prior_low.tolist(),
            "prior_high": self.prior_high.tolist(),
            "x_low": self.x_low.tolist(),
            "x_high": self.x_high.tolist(),
            "has_density": bool(self.has_density),
        }

    # ------------------------------------------------------------------ validation
    def check_theta(self, theta: ArrayLike) -> Tensor:
        """Return θ as a (B, P) tensor of this theory's dtype, or raise `ParameterError`."""
        t = theta if isinstance(theta, Tensor) else torch.as_tensor(np.asarray(theta, dtype=float))
        if t.dtype != self.dtype:
            t = t.to(self.dtype)
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[-1] != self.n_params:
            raise ParameterError(
                f"theta has shape {tuple(t.shape)}; {self.name} expects (B, {self.n_params}) "
                f"with parameters {', '.join(self.param_names)}"
            )
        with torch.no_grad():
            if not torch.isfinite(t).all():
                raise ParameterError("theta contains NaN or inf; pass finite parameter values")
            low, high = self.prior_low.to(t.device), self.prior_high.to(t.device)
            tol = 1e-9 * (high - low)
            bad = ((t < low - tol) | (t > high + tol)).any(0)
            if bad.any():
                j = int(bad.nonzero()[0])
                v = t[:, j][(t[:, j] < low[j] - tol[j]) | (t[:, j] > high[j] + tol[j])][0]
                raise ParameterError(
                    f"{self.param_names[j]} = {float(v):.6g} is outside the prior box "
                    f"[{float(low[j]):g}, {float(high[j]):g}] of theory '{self.name}'; "
                    "choose a value inside it"
                )
        return t

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n points drawn uniformly from the prior box, shape (n, P)."""
        u = torch.rand(n, self.n_params, dtype=self.dtype, generator=generator)
        return self.prior_low + u * (self.prior_high - self.prior_low)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={list(self.param_names)})"


class Theory(Module2, ABC):
    """A module-2 theory: σ_c(x; θ) for each channel c, batched over θ.

    Subclasses set the class attributes of `Module2` and implement `_density`; the public
    methods validate their inputs (shape, finite, inside the prior box) and raise
    `ParameterError`.

    Attributes:
        differentiable: whether `density` and `norms` carry gradients with respect to θ.
        quadrature_nodes: Gauss–Legendre nodes per event dimension for the norms.
    """

    name: str = "theory"
    has_density = True
    differentiable: bool = True
    quadrature_nodes: int = 256
    # `_norms` is ∫σ by `quadrature` (as here): `checked_norms` then reuses the density values it
    # checks instead of evaluating σ twice; a subclass with its own rule for the norms sets False
    norms_by_quadrature: bool = True

    def _check_x(self, x: Tensor, batch: int) -> Tensor:
        if x.dim() == 2 and self.event_dim == 1:
            x = x.unsqueeze(-1)
        if x.dim() != 3 or x.shape[-1] != self.event_dim or x.shape[0] not in (1, batch):
            raise ParameterError(
                f"x has shape {tuple(x.shape)}; expected (B, n, {self.event_dim}) with B = {batch}"
            )
        return x.to(self.dtype).expand(batch, -1, -1)

    # ------------------------------------------------------------------ physics
    def density(self, x: Tensor, theta: ArrayLike) -> Tensor:
        """σ_c(x; θ) for every channel.

        Args:
            x: points, shape (B, n, event_dim) (or (B, n) for 1-D events); B may be 1 to share x.
            theta: parameters, shape (B, P) or (P,).

        Returns:
            Tensor of shape (B, C, n): the unnormalized differential cross section per channel.

        Raises:
            ParameterError: θ is malformed, non-finite or outside the prior box.
        """
        t = self.check_theta(theta)
        return self._density(self._check_x(torch.as_tensor(x), t.shape[0]), t)

    @abstractmethod
    def _density(self, x: Tensor, theta: Tensor) -> Tensor:
        """σ_c(x; θ), x (B, n, d) and θ (B, P) validated; returns (B, C, n)."""

    def quadrature(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """Tensor-product quadrature over the x box: nodes (Q, event_dim), weights (Q,)."""
        n = n or self.quadrature_nodes
        rules = [
            gauss_legendre(float(lo), float(hi), n)
            for lo, hi in zip(self.x_low, self.x_high, strict=True)
        ]
        nodes = torch.cartesian_prod(*[torch.as_tensor(r[0], dtype=self.dtype) for r in rules])
        weights = torch.cartesian_prod(*[torch.as_tensor(r[1], dtype=self.dtype) for r in rules])
        if self.event_dim == 1:
            return nodes.reshape(-1, 1), weights.reshape(-1)
        return nodes, weights.prod(-1)

    def norms(self, theta: ArrayLike) -> Tensor:
        """∫σ_c(x; θ) dx over the x range, shape (B, C), by quadrature (differentiable)."""
        t = self.check_theta(theta)
        return self._norms(t)

    def _norms(self, theta: Tensor) -> Tensor:
        dens, weights = self._at_quadrature(theta)
        return dens @ weights

    def _at_quadrature(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """σ at the quadrature nodes (B, C, Q) and the nodes' weights (Q,)."""
        nodes, weights = self.quadrature()
        nodes, weights = nodes.to(theta.device), weights.to(theta.device)
        return self._density(nodes.unsqueeze(0).expand(theta.shape[0], -1, -1), theta), weights

    def checked_norms(self, theta: Tensor) -> Tensor:
        """`norms` at checked θ (B, P) for simulation, refused in one line where σ is no density:
        non-finite or negative at a quadrature node, or an integral that is not positive."""
        with torch.no_grad():
            dens, weights = self._at_quadrature(theta)
            norms = dens @ weights if self.norms_by_quadrature else self._norms(theta)
        check_density_values(self, theta, dens, norms)
        return norms

    def curves(self, x: Tensor, theta: ArrayLike) -> dict[str, Tensor]:
        """Named functions of x to plot against the truth (B, n each); default: the channels' σ_c.

        Theories override it to add what a physicist reads off a fit (the PDFs themselves).
        """
        dens = self.density(x, theta)
        return {name: dens[:, c] for c, name in enumerate(self.channels)}


def check_density_values(
    theory: Theory,
    theta: Tensor,
    densities: Tensor | np.ndarray,
    norms: Tensor | np.ndarray | None = None,
) -> None:
    """One line naming the first θ and channel where ``densities`` (B, C, n) are non-finite or
    negative, or ``norms`` (B, C) are not finite and positive: the theory is no density there."""
    dens = torch.as_tensor(densities)
    bad = ~torch.isfinite(dens).all(-1) | (dens < 0).any(-1)
    what = "non-finite or negative σ"
    if norms is not None and not bad.any():
        n = torch.as_tensor(norms)
        bad = ~torch.isfinite(n) | (n <= 0)
        what = "an integral ∫σ dx that is not finite and positive"
    if bad.any():
        row, channel = (int(i) for i in bad.nonzero()[0])
        raise InputError(
            f"theory '{theory.name}' is no density at θ = {theta[row].tolist()}: channel "
            f"{theory.channels[channel]} has {what}; σ_c(x; θ) must be finite and ≥ 0 with a "
            "positive integral everywhere in the prior box (fix the function, or narrow the box)"
        )
