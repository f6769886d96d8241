"""The one protocol of the design: an EventSource turns parameters θ into events per channel.

The exact theory with its samplers and every trained surrogate satisfy it, so the outer GAN and
the fidelity metrics take any of them. What a source can do is declared, not probed:

- ``has_density``: it has ``log_prob(x, θ)`` (flows, VAIM, the exact samplers) — a
  `DensitySource`; GAN and VAE surrogates do not.
- ``is_exact``: it is the theory itself (inverse CDF, Metropolis), not a learned model.
- ``n_members``: 1 for one model; an ensemble has more and routes θ rows to members through
  ``sample(theta, n, members=rows)`` and ``norms(theta, members=rows)`` (−1: the mixture).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["EventSource", "DensitySource", "require_density"]


@runtime_checkable
class EventSource(Protocol):
    """θ (B, P) → events per channel, each (B, n_c, event_dim), differentiable in θ where it can.

    >>> from surrogates.sampling import InverseCDFSampler
    >>> from surrogates.theory import ProxyTheory
    >>> source = InverseCDFSampler(ProxyTheory())
    >>> isinstance(source, EventSource), source.is_exact, source.has_density, source.n_members
    (True, True, True, 1)
    """

    has_density: bool
    is_exact: bool
    n_members: int

    @property
    def channels(self) -> tuple[str, ...]: ...

    def sample(
        self, theta: Tensor, n: int | Sequence[int], generator: torch.Generator | None = None
    ) -> Sequence[Tensor]: ...

    def norms(self, theta: Tensor) -> Tensor: ...


@runtime_checkable
class DensitySource(EventSource, Protocol):
    """An EventSource with a normalized density per channel: x (B, n, d), θ (B, P) → (B, C, n)."""

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor: ...


def require_density(source: EventSource, what: str) -> DensitySource:
    """``source`` as a DensitySource, or a one-line error naming ``what`` needed the density."""
    from surrogates.errors import InputError

    if not hasattr(source, "has_density"):
        raise InputError(
            f"{type(source).__name__} does not declare has_density; an EventSource declares "
            "has_density, is_exact and n_members (see surrogates.types.EventSource)"
        )
    if not source.has_density:
        kind = type(source).__name__
        raise InputError(
            f"{what} needs a density, and this {kind} has none (GAN and VAE surrogates only "
            "sample); use a flow, VAIM or the exact source"
        )
    return source  # type: ignore[return-value]
