"""Samplers that turn a Theory into events: a differentiable inverse CDF (1-D) and batched MCMC.

`InverseCDFSampler` is the exact EventSource of DESIGN.md: `sample(theta, n)` returns one
tensor per channel of shape (B, n, 1) whose values are differentiable functions of θ, and
`norms(theta)` / `log_prob(x, theta)` come from the theory. `MetropolisSampler` draws events
from densities with no cheap CDF (any event dimension), for generating data without gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from surrogates.errors import InputError
from surrogates.theory.base import ArrayLike, Theory, chebyshev_grid

__all__ = [
    "InverseCDFSampler",
    "InverseCDFSampler2D",
    "MetropolisSampler",
    "counts_per_channel",
    "eval_cdf",
    "grid_cdf",
    "invert_cdf",
]


def counts_per_channel(n: int | Sequence[int], n_channels: int) -> list[int]:
    """Expand an event count (int, or one per channel) into a list with one entry per channel."""
    counts = [int(n)] * n_channels if isinstance(n, int) else [int(v) for v in n]
    if len(counts) != n_channels or any(v < 0 for v in counts):
        raise InputError(
            f"event counts {n!r} must be one non-negative integer or {n_channels} of them"
        )
    return counts


def _safe_div(num: Tensor, den: Tensor, eps: float, fallback: float | Tensor = 0.0) -> Tensor:
    """num / den where |den| > eps, else fallback, with finite gradients on both branches."""
    ok = den.abs() > eps
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), fallback)


def grid_cdf(grid: Tensor, dens: Tensor) -> tuple[Tensor, Tensor]:
    """Normalized densities and CDF of a piecewise-linear density on a grid.

    Args:
        grid: (G,) increasing x values.
        dens: (..., G) non-negative densities (unnormalized).

    Returns:
        q (..., G) normalized so that the trapezoid integral is 1, and F (..., G) with F[..., 0] = 0
        and F[..., -1] = 1. A density that vanishes (or overflows) everywhere becomes uniform.
    """
    dens = dens.clamp(min=0.0)
    h = grid.diff()
    mass = h * (dens[..., 1:] + dens[..., :-1]) / 2
    total = mass.sum(-1, keepdim=True)
    tiny = torch.finfo(dens.dtype).tiny ** 0.5
    degenerate = ~(total > tiny) | ~torch.isfinite(total)
    dens = torch.where(degenerate, torch.ones_like(dens), dens)
    mass = torch.where(degenerate, h.expand_as(mass), mass)
    total = torch.where(degenerate, h.sum().expand_as(total), total)
    cdf = torch.cat([torch.zeros_like(total), (mass / total).cumsum(-1)], dim=-1)
    return dens / total, cdf


def invert_cdf(grid: Tensor, q: Tensor, cdf: Tensor, u: Tensor) -> Tensor:
    """x with F(x) = u for the piecewise-linear density q on the grid; q, cdf (B, G), u (B, n).

    Inside a bin the CDF is quadratic, F = F_i + q_i t + (q_{i+1} − q_i) t²/(2h), and is inverted
    with the stable root t = 2c / (q_i + √(q_i² + 4ac)); every division is guarded.
    """
    n_bins = grid.numel() - 1
    idx = torch.searchsorted(cdf.detach().contiguous(), u.detach().contiguous(), right=True) - 1
    idx = idx.clamp(0, n_bins - 1)
    x0 = grid[idx]
    h = grid.diff()[idx]
    f0 = cdf.gather(1, idx)
    q0, q1 = q.gather(1, idx), q.gather(1, idx + 1)
    bin_mass = cdf.gather(1, idx + 1) - f0
    c = torch.minimum((u - f0).clamp(min=0.0), bin_mass.clamp(min=0.0))
    a = (q1 - q0) / (2 * h)
    eps = torch.finfo(u.dtype).eps ** 2
    disc = (q0 * q0 + 4 * a * c).clamp(min=eps)
    t = _safe_div(2 * c, q0 + disc.sqrt(), eps)
    return x0 + torch.minimum(t.clamp(min=0.0), h)


def eval_cdf(grid: Tensor, q: Tensor, cdf: Tensor, x: Tensor) -> Tensor:
    """F(x) of the piecewise-linear density q on the grid (`grid_cdf`'s output); q, cdf (B, G),
    x (B, n) → (B, n), clamped to the grid's range; dF/dx is the interpolated density.

    The inverse of `invert_cdf`: inside a bin F = F_i + q_i t + (q_{i+1} − q_i) t²/(2h).
    """
    n_bins = grid.numel() - 1
    x = x.clamp(grid[0], grid[-1])
    idx = (torch.searchsorted(grid.contiguous(), x.detach().contiguous(), right=True) - 1).clamp(
        0, n_bins - 1
    )
    t = x - grid[idx]
    h = grid.diff()[idx]
    q0, q1 = q.gather(1, idx), q.gather(1, idx + 1)
    return cdf.gather(1, idx) + q0 * t + (q1 - q0) * t * t / (2 * h)


class InverseCDFSampler:
    """Exact, differentiable 1-D event sampler for a Theory: the seed's inverse CDF, made safe.

    On a grid clustered at both ends of the x range (`grid_size` points) the density is taken as
    piecewise linear; its CDF is then piecewise quadratic and is inverted in closed form with the
    numerically stable root 2c / (b + √(b² + 4ac)). Every division is guarded, so flat CDF
    segments, u at 0 or 1, zero densities (N = 0) and exponents at the prior edges give finite
    events and finite gradients; a θ whose density vanishes everywhere falls back to a uniform
    distribution instead of 0/0.

    Args:
        theory: a 1-D Theory. Gradients with respect to θ flow only if ``theory.differentiable``.
        grid_size: number of grid points in x; the density error is O(h²) between them.

    >>> from surrogates.theory import ProxyTheory
    >>> sampler = InverseCDFSampler(ProxyTheory())
    >>> theta = ProxyTheory().truth.expand(4, -1).clone().requires_grad_()
    >>> s1, s2 = sampler.sample(theta, 1000, generator=torch.Generator().manual_seed(0))
    >>> s1.shape, s2.shape
    (torch.Size([4, 1000, 1]), torch.Size([4, 1000, 1]))
    >>> s1.mean().backward(); bool(torch.isfinite(theta.grad).all())
    True
    """

    has_density = True
    is_exact = True
    n_members = 1

    def __init__(self, theory: Theory, grid_size: int = 2049) -> None:
        if theory.event_dim != 1:
            raise InputError(
                f"the inverse-CDF sampler is 1-D; theory '{theory.name}' has {theory.event_dim}-D "
                "events: use MetropolisSampler"
            )
        self.theory = theory
        lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
        self.grid = torch.as_tensor(chebyshev_grid(lo, hi, grid_size), dtype=theory.dtype)

    @property
    def channels(self) -> tuple[str, ...]:
        return self.theory.channels

    def norms(self, theta: ArrayLike) -> Tensor:
        """∫σ_c dx, shape (B, C)."""
        return self.theory.norms(theta)

    def log_prob(self, x: Tensor, theta: ArrayLike) -> Tensor:
        """log p_c(x | θ) = log σ_c(x; θ) − log ∫σ_c, x (B, n, 1) → (B, C, n)."""
        t = self.theory.check_theta(theta)
        tiny = torch.finfo(t.dtype).tiny
        dens = self.theory.density(x, t).clamp(min=tiny)
        return dens.log() - self.theory.norms(t).clamp(min=tiny).log().unsqueeze(-1)

    def cdf_table(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Normalized grid densities q (B, C, G) and CDF F (B, C, G), F[..., 0] = 0, F[..., -1] = 1."""
        grid = self.grid.to(theta.device)
        dens = self.theory._density(grid.view(1, -1, 1).expand(theta.shape[0], -1, -1), theta)
        return grid_cdf(grid, dens)

    def sample(
        self,
        theta: ArrayLike,
        n: int | Sequence[int],
        generator: torch.Generator | None = None,
        u: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, ...]:
        """Draw events per channel, differentiable with respect to θ.

        Args:
            theta: (B, P) or (P,) parameters inside the prior box.
            n: events per θ, one number or one per channel.
            generator: torch random generator, for reproducibility.
            u: optional uniforms per channel, each (B, n_c) in [0, 1] (common random numbers).

        Returns:
            One tensor per channel, shape (B, n_c, 1), dtype of the theory.

        Raises:
            ParameterError: θ malformed, non-finite or outside the prior box.
        """
        t = self.theory.check_theta(theta)
        counts = counts_per_channel(n, self.theory.n_channels)
        q, cdf = self.cdf_table(t)
        events = []
        for c, n_c in enumerate(counts):
            if u is None:
                uc = torch.rand(t.shape[0], n_c, dtype=t.dtype, generator=generator).to(t.device)
            else:
                uc = torch.as_tensor(u[c], dtype=t.dtype, device=t.device).clamp(0.0, 1.0)
            events.append(invert_cdf(self.grid.to(t.device), q[:, c], cdf[:, c], uc).unsqueeze(-1))
        return tuple(events)


class InverseCDFSampler2D(InverseCDFSampler):
    """Exact, differentiable sampler for 2-D theories whose region maps onto the unit square.

    The theory provides ``support_from_unit`` (u ∈ [0, 1]² → event, with its Jacobian) and
    ``unit_density`` (σ_c in u). The density is tabulated on a G₁ × G₂ grid in u and taken as
    bilinear in each cell. Its u₁ marginal is then piecewise linear (trapezoid over u₂) and u₁ is
    drawn by the piecewise-linear inverse CDF of `InverseCDFSampler`; at the drawn u₁ the
    conditional density of u₂ is the blend of the two neighbouring grid rows, again piecewise
    linear, and u₂ is drawn the same way. The event is the map of (u₁, u₂): differentiable in θ,
    every division guarded, one density table per θ (no theory call per event).

    Args:
        theory: a Theory with ``support_map = True`` and ``event_dim = 2``.
        grid_size: grid points in u₁; conditional_size: grid points in u₂.
    """

    def __init__(self, theory: Theory, grid_size: int = 257, conditional_size: int = 81) -> None:
        if theory.event_dim != 2 or not getattr(theory, "support_map", False):
            raise InputError(
                f"theory '{theory.name}' has no unit-square map of 2-D events; use MetropolisSampler"
            )
        self.theory = theory
        self.grid = torch.linspace(0.0, 1.0, grid_size, dtype=theory.dtype)
        self.grid2 = torch.linspace(0.0, 1.0, conditional_size, dtype=theory.dtype)

    def table(self, theta: Tensor) -> Tensor:
        """σ_c in u on the grid, (B, C, G₁, G₂)."""
        grid, grid2 = self.grid.to(theta.device), self.grid2.to(theta.device)
        uu = torch.cartesian_prod(grid, grid2)  # (G₁·G₂, 2), u₂ fastest
        dens = self.theory.unit_density(uu.unsqueeze(0).expand(theta.shape[0], -1, -1), theta)
        return dens.view(*dens.shape[:2], grid.numel(), grid2.numel()).clamp(min=0.0)

    def cdf_table(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Marginal of u₁: normalized grid densities q (B, C, G₁) and CDF F (B, C, G₁)."""
        return self._marginal(self.table(theta))

    def _marginal(self, table: Tensor) -> tuple[Tensor, Tensor]:
        h = self.grid2.diff().to(table)
        marginal = ((table[..., 1:] + table[..., :-1]) / 2 * h).sum(-1)
        return grid_cdf(self.grid.to(table), marginal)

    def sample(
        self,
        theta: ArrayLike,
        n: int | Sequence[int],
        generator: torch.Generator | None = None,
        u: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, ...]:
        """Draw events per channel, each (B, n_c, 2), differentiable with respect to θ.

        ``u``: optional uniforms per channel, each (B, n_c, 2) (common random numbers).
        """
        t = self.theory.check_theta(theta)
        counts = counts_per_channel(n, self.theory.n_channels)
        table = self.table(t)
        q, cdf = self._marginal(table)
        grid, grid2 = self.grid.to(t.device), self.grid2.to(t.device)
        b, g1 = t.shape[0], grid.numel()
        events = []
        for c, n_c in enumerate(counts):
            if u is None:
                uc = torch.rand(b, n_c, 2, dtype=t.dtype, generator=generator).to(t.device)
            else:
                uc = torch.as_tensor(u[c], dtype=t.dtype, device=t.device).clamp(0.0, 1.0)
            u1 = invert_cdf(grid, q[:, c], cdf[:, c], uc[..., 0])  # (B, n)
            pos = u1 * (g1 - 1)
            i = pos.detach().floor().long().clamp(0, g1 - 2)  # u₁ = 1 lies in the last cell
            lam = (pos - i).unsqueeze(-1)
            rows = table[:, c]  # (B, G₁, G₂)
            lo = torch.gather(rows, 1, i.unsqueeze(-1).expand(-1, -1, rows.shape[-1]))
            hi = torch.gather(rows, 1, (i + 1).unsqueeze(-1).expand(-1, -1, rows.shape[-1]))
            q2, cdf2 = grid_cdf(grid2, ((1 - lam) * lo + lam * hi).reshape(b * n_c, -1))
            u2 = invert_cdf(grid2, q2, cdf2, uc[..., 1].reshape(b * n_c, 1)).view(b, n_c)
            x, _ = self.theory.support_from_unit(torch.stack([u1, u2], -1))
            events.append(x)
        return tuple(events)


class MetropolisSampler:
    """Random-walk Metropolis for densities with no cheap CDF, vectorized over θ, channels, chains.

    Each event is the final state of its own chain, so events are independent once the chains
    have forgotten their start. Chains move in logit coordinates of the x box (no boundary
    rejections), start uniformly in the box, and tune one step size per (θ, channel) to about
    35% acceptance during burn-in. No gradients: this is for generating data.

    Args:
        theory: any Theory (any event dimension; NumPy theories included).
        burn_in: steps with step-size adaptation.
        steps: further steps at fixed step size before the final state is taken.

    >>> from surrogates.theory import ProxyTheory
    >>> s1, s2 = MetropolisSampler(ProxyTheory(), burn_in=50, steps=10).sample(
    ...     ProxyTheory().truth, 100, generator=torch.Generator().manual_seed(0))
    >>> s1.shape
    torch.Size([1, 100, 1])
    """

    has_density = False  # it draws from the density but offers no normalized log_prob
    is_exact = True
    n_members = 1

    def __init__(self, theory: Theory, burn_in: int = 400, steps: int = 100) -> None:
        self.theory = theory
        self.burn_in = burn_in
        self.steps = steps

    @property
    def channels(self) -> tuple[str, ...]:
        return self.theory.channels

    def norms(self, theta: ArrayLike) -> Tensor:
        """∫σ_c dx, shape (B, C)."""
        return self.theory.norms(theta)

    def _log_target(self, z: Tensor, theta: Tensor) -> Tensor:
        """log density in logit coordinates, z (B, C, n, d) → (B, C, n)."""
        lo, hi = self.theory.x_low, self.theory.x_high
        s = torch.sigmoid(z)
        x = lo + (hi - lo) * s
        b, c, n, d = z.shape
        dens = self.theory._density(x.reshape(b, c * n, d), theta).reshape(b, c, c, n)
        own = dens.diagonal(dim1=1, dim2=2).permute(0, 2, 1)  # channel c at its own chains
        tiny = torch.finfo(z.dtype).tiny
        log_jac = (torch.nn.functional.logsigmoid(z) + torch.nn.functional.logsigmoid(-z)).sum(-1)
        return own.clamp(min=tiny).log() + log_jac

    @torch.no_grad()
    def sample(
        self, theta: ArrayLike, n: int | Sequence[int], generator: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        """Draw events per channel: one tensor (B, n_c, event_dim) per channel."""
        t = self.theory.check_theta(theta)
        counts = counts_per_channel(n, self.theory.n_channels)
        b, c, m, d = t.shape[0], self.theory.n_channels, max(counts), self.theory.event_dim
        dt = t.dtype

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, dtype=dt, generator=generator)

        s0 = rand(b, c, m, d).clamp(1e-6, 1 - 1e-6)
        z = torch.log(s0) - torch.log1p(-s0)
        logp = self._log_target(z, t)
        step = torch.full((b, c, 1, 1), 1.0, dtype=dt)
        accepted = torch.zeros(b, c, dtype=dt)
        for i in range(self.burn_in + self.steps):
            proposal = z + step * torch.randn(b, c, m, d, dtype=dt, generator=generator)
            logp_new = self._log_target(proposal, t)
            accept = torch.log(rand(b, c, m)) < (logp_new - logp)
            z = torch.where(accept.unsqueeze(-1), proposal, z)
            logp = torch.where(accept, logp_new, logp)
            accepted += accept.to(dt).mean(-1)
            if i < self.burn_in and (i + 1) % 10 == 0:
                rate = accepted / 10
                step = step * torch.exp(rate - 0.35).view(b, c, 1, 1) ** 2
                accepted.zero_()
        x = self.theory.x_low + (self.theory.x_high - self.theory.x_low) * torch.sigmoid(z)
        return tuple(x[:, k, : counts[k]] for k in range(c))
