"""The seed's proxy toy: u(x), d(x) with beta-like shapes; σ1 = 4u + d, σ2 = 4d + u on [0.1, 1)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import quad
from scipy.special import beta as beta_fn
from scipy.special import betainc
from torch import Tensor

from surrogates.theory.base import Theory

__all__ = ["ProxyTheory", "PROXY_TRUTH", "PROXY_PRIOR_LOW", "PROXY_PRIOR_HIGH", "proxy_numpy"]

PROXY_TRUTH = (2.1875, -0.5, 3.0, 1.09375, -0.5, 4.0)  # N_u = 2/B(0.5, 4), N_d = 1/B(0.5, 4)
PROXY_PRIOR_LOW = (0.0, -1.0, 0.0, 0.0, -1.0, 0.0)
PROXY_PRIOR_HIGH = (3.0, 1.0, 5.0, 3.0, 1.0, 5.0)
PROXY_X_RANGE = (0.1, 1.0)


def _shape(x: Tensor, n: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """N x^a (1 − x)^b with finite values and gradients at x = 1 (0^0 = 1, as in the limit b → 0)."""
    log1m = torch.log1p(-x).clamp(min=-700.0)
    return n * torch.exp(a * torch.log(x) + b * log1m)


class ProxyTheory(Theory):
    """The proxy toy of the seed slides, exactly as DESIGN.md states it.

    u(x) = N_u x^a_u (1 − x)^b_u, d(x) = N_d x^a_d (1 − x)^b_d, θ = [N_u, a_u, b_u, N_d, a_d, b_d];
    channels σ1 = 4u + d (proton-like) and σ2 = 4d + u (neutron-like) on x ∈ [0.1, 1).

    >>> theory = ProxyTheory()
    >>> [round(v, 4) for v in theory.norms(theory.truth)[0].tolist()]
    [3.2685, 1.8726]
    """

    name = "proxy"
    param_names = ("N_u", "a_u", "b_u", "N_d", "a_d", "b_d")
    channels = ("sigma1", "sigma2")
    event_dim = 1

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        super().__init__(
            PROXY_PRIOR_LOW,
            PROXY_PRIOR_HIGH,
            PROXY_X_RANGE[:1],
            PROXY_X_RANGE[1:],
            PROXY_TRUTH,
            dtype,
        )

    def pdfs(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        """u(x) and d(x), x (B, n), θ (B, 6) → two (B, n) tensors."""
        p = [theta[:, i : i + 1] for i in range(6)]
        return _shape(x, *p[:3]), _shape(x, *p[3:])

    def curves(self, x: Tensor, theta: Tensor) -> dict[str, Tensor]:
        """u(x), d(x), σ1, σ2 for x (B, n, 1) or (B, n)."""
        t = self.check_theta(theta)
        x = self._check_x(torch.as_tensor(x), t.shape[0])
        u, d = self.pdfs(x[..., 0], t)
        return {"u": u, "d": d, "sigma1": 4 * u + d, "sigma2": 4 * d + u}

    def _density(self, x: Tensor, theta: Tensor) -> Tensor:
        u, d = self.pdfs(x[..., 0], theta)
        return torch.stack([4 * u + d, 4 * d + u], dim=1)

    def exact_norms(self, theta: np.ndarray) -> np.ndarray:
        """∫σ_c dx in closed form (regularized incomplete beta), NumPy, shape (B, 2): a reference."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        lo = PROXY_X_RANGE[0]

        def integral(n: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
            # 1 − I_lo(a+1, b+1) = I_{1−lo}(b+1, a+1); at a → −1 B(a+1, ·) diverges: use quad there.
            regular = a > -1 + 1e-6
            a_safe = np.where(regular, a, 0.0)
            closed = n * beta_fn(a_safe + 1, b + 1) * betainc(b + 1, a_safe + 1, 1.0 - lo)
            numeric = [
                n_
                * quad(
                    lambda x, a_=a_, b_=b_: x**a_ * (1 - x) ** b_, lo, 1.0, epsabs=0, epsrel=1e-13
                )[0]
                if not r
                else 0.0
                for n_, a_, b_, r in zip(n, a, b, regular, strict=True)
            ]
            return np.where(regular, closed, numeric)

        iu = integral(*theta[:, :3].T)
        idd = integral(*theta[:, 3:].T)
        return np.stack([4 * iu + idd, 4 * idd + iu], axis=1)


def proxy_numpy(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The proxy as plain NumPy code, one θ at a time: x (n,) → σ (2, n). A stand-in for a black box."""
    n_u, a_u, b_u, n_d, a_d, b_d = theta
    with np.errstate(divide="ignore"):
        one_minus = np.clip(1.0 - x, 0.0, None)
        u = n_u * x**a_u * one_minus**b_u
        d = n_d * x**a_d * one_minus**b_d
    return np.stack([4 * u + d, 4 * d + u])
