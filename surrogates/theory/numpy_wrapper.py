"""Wrap a plain NumPy function f(x, θ) → σ into a Theory with no gradients (a user's black box)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from surrogates.errors import InputError, call_user_code
from surrogates.theory.base import Theory

__all__ = ["NumpyTheory", "NoGradientError"]


class NoGradientError(InputError):
    """Gradients were requested from a theory that has none."""


class NumpyTheory(Theory):
    """A Theory around a NumPy function: the slow, non-differentiable code a physicist brings.

    Args:
        fn: ``fn(x, theta) -> sigma`` with x of shape (n,) (or (n, event_dim)), θ of shape (P,),
            returning σ of shape (C, n). With ``vectorized=True`` it instead takes x (B, n, d)
            and θ (B, P) and returns (B, C, n).
        name: registry name written into files.
        param_names, channels: names, in order.
        prior_low, prior_high: the prior box.
        x_low, x_high: the event range per dimension.
        truth: the true θ when known.
        event_dim: dimension of one event.
        vectorized: whether ``fn`` is batched over θ.

    Its densities and norms are plain numbers: asking for a gradient raises `NoGradientError`.
    That is the point: a surrogate trained on its samples supplies the gradients instead.

    >>> from surrogates.theory.proxy import proxy_numpy
    >>> t = NumpyTheory(proxy_numpy, "toy", ("N_u", "a_u", "b_u", "N_d", "a_d", "b_d"), ("s1", "s2"),
    ...                 [0, -1, 0, 0, -1, 0], [3, 1, 5, 3, 1, 5], [0.1], [1.0])
    >>> t.density(torch.tensor([[0.5]]), [2.1875, -0.5, 3, 1.09375, -0.5, 4]).shape
    torch.Size([1, 2, 1])
    """

    differentiable = False

    def __init__(
        self,
        fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
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

    def _refuse_gradients(self, theta: Tensor) -> None:
        if torch.is_grad_enabled() and theta.requires_grad:
            raise NoGradientError(
                f"theory '{self.name}' is NumPy code with no gradients; train a surrogate on its "
                "samples (python -m surrogates.fit) or evaluate it under torch.no_grad()"
            )

    def _density(self, x: Tensor, theta: Tensor) -> Tensor:
        self._refuse_gradients(theta)
        xs = x.detach().cpu().numpy()
        ts = theta.detach().cpu().numpy()
        what = f"the density function of theory '{self.name}'"
        if self.vectorized:
            where = f"θ = {ts[0].tolist()} (or another of a batch of {len(ts)})"
            out = np.asarray(call_user_code(self.fn, what, where, xs, ts), dtype=float)
        else:
            pts = [xs[i, :, 0] if self.event_dim == 1 else xs[i] for i in range(len(ts))]
            out = np.stack(
                [
                    np.asarray(
                        call_user_code(self.fn, what, f"θ = {t.tolist()}", p, t), dtype=float
                    )
                    for p, t in zip(pts, ts)
                ]
            )
        expected = (len(ts), self.n_channels, xs.shape[1])
        if out.shape != expected:
            raise InputError(
                f"theory function of '{self.name}' returned shape {out.shape}, expected {expected}"
            )
        return torch.as_tensor(out, dtype=self.dtype, device=x.device)

    def _norms(self, theta: Tensor) -> Tensor:
        self._refuse_gradients(theta)
        return super()._norms(theta.detach())
