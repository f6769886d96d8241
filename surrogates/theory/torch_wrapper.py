"""Wrap a differentiable torch function f(x, θ) → σ into a Theory (gradients flow through it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from surrogates.errors import InputError, call_user_code
from surrogates.theory.base import Theory

__all__ = ["TorchFunctionTheory"]


class TorchFunctionTheory(Theory):
    """A Theory around a torch function: a density a physicist wrote in torch operations.

    Args:
        fn: ``fn(x, theta) -> sigma`` with x of shape (n,) (or (n, event_dim)) and θ of shape (P,)
            as tensors, returning σ of shape (C, n). With ``vectorized=True`` it instead takes x
            (B, n, d) and θ (B, P) and returns (B, C, n).
        name, param_names, channels, prior_low, prior_high, x_low, x_high, truth, event_dim,
            vectorized: as for `surrogates.theory.NumpyTheory`.

    Unlike `NumpyTheory` its densities and norms carry gradients with respect to θ, so the
    maximum-likelihood fit, the Cramér–Rao bound and the outer GAN's ``source: exact`` use them.

    >>> t = TorchFunctionTheory(lambda x, th: torch.stack([th[0] * torch.exp(-x), th[1] + 0 * x]),
    ...                         "toy", ("a", "b"), ("c1", "c2"), [0, 0], [2, 2], [0.0], [1.0])
    >>> theta = torch.tensor([[1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    >>> t.norms(theta)[0, 0].backward(); round(float(theta.grad[0, 0]), 4)   # ∫ e^(−x) dx on [0, 1]
    0.6321
    """

    differentiable = True

    def __init__(
        self,
        fn: Callable[[Tensor, Tensor], Tensor],
        name: str,
        param_names: Sequence[str],
        channels: Sequence[str],
        prior_low: Sequence[float],
        prior_high: Sequence[float],
        x_low: Sequence[float],
        x_high: Sequence[float],
        truth: Sequence[float] | None = None,
        event_dim: int = 1,
        vectorized: bool = False,
    ) -> None:
        self.fn = fn
        self.declare(name, param_names, channels, event_dim)
        self.vectorized = vectorized
        super().__init__(prior_low, prior_high, x_low, x_high, truth)

    def _density(self, x: Tensor, theta: Tensor) -> Tensor:
        what = f"the density function of theory '{self.name}'"
        if self.vectorized:
            where = f"θ = {theta[0].tolist()} (or another of a batch of {len(theta)})"
            out = call_user_code(self.fn, what, where, x, theta)
        else:
            pts = [x[i, :, 0] if self.event_dim == 1 else x[i] for i in range(len(theta))]
            out = torch.stack(
                [
                    torch.as_tensor(call_user_code(self.fn, what, f"θ = {t.tolist()}", p, t))
                    for p, t in zip(pts, theta)
                ]
            )
        expected = (len(theta), self.n_channels, x.shape[1])
        if not isinstance(out, Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise InputError(
                f"theory function of '{self.name}' returned {got}, expected a tensor of shape "
                f"{expected}"
            )
        return out.to(self.dtype)
