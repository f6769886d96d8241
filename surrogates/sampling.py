"""Samplers that turn a Theory into events: a differentiable inverse CDF (1-D) and batched MCMC.

`InverseCDFSampler` is the exact EventSource of DESIGN.md: `sample(theta, n)` returns one
tensor per channel of shape (B, n, 1) whose values are differentiable functions of θ, and
`norms(theta)` / `log_prob(x, theta)` come from the theory. `MetropolisSampler` draws events
from densities with no cheap CDF (any event dimension), for generating data without gradients.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from surrogates.errors import InputError, check_choice
from surrogates.theory.base import ArrayLike, Theory, chebyshev_grid

__all__ = [
    "AdaptiveGrid",
    "GRID_KINDS",
    "GridToleranceWarning",
    "InverseCDFSampler",
    "InverseCDFSampler2D",
    "MetropolisSampler",
    "adaptive_grid",
    "counts_per_channel",
    "eval_cdf",
    "float32_width",
    "grid_cdf",
    "interp_grid",
    "invert_cdf",
    "warn_grid_error",
]

GRID_KINDS = ("adaptive", "chebyshev")


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


def _at(grid: Tensor, idx: Tensor) -> Tensor:
    """grid[idx] for a shared grid (G,), or row by row for per-row grids (B, G) and idx (B, n)."""
    return grid[idx] if grid.dim() == 1 else grid.gather(-1, idx)


def grid_cdf(grid: Tensor, dens: Tensor) -> tuple[Tensor, Tensor]:
    """Normalized densities and CDF of a piecewise-linear density on a grid.

    Args:
        grid: (G,) increasing x values shared by every row, or one grid per row broadcastable
            against ``dens`` ((B, G) for dens (B, G); (B, 1, G) for dens (B, C, G)).
        dens: (..., G) non-negative densities (unnormalized).

    Returns:
        q (..., G) normalized so that the trapezoid integral is 1, and F (..., G) with F[..., 0] = 0
        and F[..., -1] = 1. A density that vanishes (or overflows) everywhere becomes uniform.
    """
    dens = dens.clamp(min=0.0)
    h = grid.diff(dim=-1)
    mass = h * (dens[..., 1:] + dens[..., :-1]) / 2
    total = mass.sum(-1, keepdim=True)
    tiny = torch.finfo(dens.dtype).tiny ** 0.5
    degenerate = ~(total > tiny) | ~torch.isfinite(total)
    dens = torch.where(degenerate, torch.ones_like(dens), dens)
    mass = torch.where(degenerate, h.expand_as(mass), mass)
    cum = mass.cumsum(-1)
    total = cum[..., -1:]  # F = cum / total is then ≤ 1 exactly, and 1 at the last node
    cdf = torch.cat([torch.zeros_like(total), cum / total], dim=-1)
    return dens / total, cdf


def invert_cdf(grid: Tensor, q: Tensor, cdf: Tensor, u: Tensor) -> Tensor:
    """x with F(x) = u for the piecewise-linear density q on the grid; q, cdf (B, G), u (B, n);
    grid (G,) shared or (B, G) one per row.

    Inside a bin the CDF is quadratic, F = F_i + q_i t + (q_{i+1} − q_i) t²/(2h), and is inverted
    with the stable root t = 2c / (q_i + √(q_i² + 4ac)); every division is guarded.
    """
    n_bins = grid.shape[-1] - 1
    idx = torch.searchsorted(cdf.detach().contiguous(), u.detach().contiguous(), right=True) - 1
    idx = idx.clamp(0, n_bins - 1)
    x0 = _at(grid, idx)
    h = _at(grid.diff(dim=-1), idx)
    f0 = cdf.gather(1, idx)
    q0, q1 = q.gather(1, idx), q.gather(1, idx + 1)
    bin_mass = cdf.gather(1, idx + 1) - f0
    c = torch.minimum((u - f0).clamp(min=0.0), bin_mass.clamp(min=0.0))
    a = _safe_div(q1 - q0, 2 * h, 0.0)  # a zero-width bin (nodes equal after rounding): 0
    eps = torch.finfo(u.dtype).eps ** 2
    disc = (q0 * q0 + 4 * a * c).clamp(min=eps)
    t = _safe_div(2 * c, q0 + disc.sqrt(), eps)
    t = torch.where(u - f0 >= bin_mass, h, t)  # u = 1 past a tail whose mass rounds to 0: the end
    return x0 + torch.minimum(t.clamp(min=0.0), h)


def _bin_index(grid: Tensor, x: Tensor) -> Tensor:
    """The grid interval of each x (B, n): i with grid[i] ≤ x < grid[i + 1], clamped to the bins."""
    g = grid.contiguous() if grid.dim() == 1 else grid.contiguous().expand(x.shape[0], -1)
    idx = torch.searchsorted(g, x.detach().contiguous(), right=True) - 1
    return idx.clamp(0, grid.shape[-1] - 2)


def eval_cdf(grid: Tensor, q: Tensor, cdf: Tensor, x: Tensor) -> Tensor:
    """F(x) of the piecewise-linear density q on the grid (`grid_cdf`'s output); q, cdf (B, G),
    x (B, n) → (B, n), clamped to the grid's range; dF/dx is the interpolated density. The grid
    is (G,) shared or (B, G) one per row.

    The inverse of `invert_cdf`: inside a bin F = F_i + q_i t + (q_{i+1} − q_i) t²/(2h).
    """
    lo, hi = grid[..., :1], grid[..., -1:]
    x = torch.minimum(torch.maximum(x, lo), hi)
    idx = _bin_index(grid, x)
    t = x - _at(grid, idx)
    h = _at(grid.diff(dim=-1), idx)
    q0, q1 = q.gather(1, idx), q.gather(1, idx + 1)
    return cdf.gather(1, idx) + q0 * t + _safe_div((q1 - q0) * t * t, 2 * h, 0.0)


def interp_grid(grid: Tensor, values: Tensor, x: Tensor) -> Tensor:
    """Linear interpolation of values tabulated per row: grid (B, G) or (G,), values (B, C, G),
    x (B, n) → (B, C, n); x outside the grid takes the end values.

    >>> g = torch.tensor([[0.0, 1.0, 3.0]])
    >>> interp_grid(g, torch.tensor([[[0.0, 2.0, 6.0]]]), torch.tensor([[0.5, 2.0, 5.0]]))
    tensor([[[1., 4., 6.]]])
    """
    lo, hi = grid[..., :1], grid[..., -1:]
    x = torch.minimum(torch.maximum(x, lo), hi)
    idx = _bin_index(grid, x)
    x0, h = _at(grid, idx), _at(grid.diff(dim=-1), idx)
    frac = _safe_div(x - x0, h, 0.0).clamp(0.0, 1.0).unsqueeze(1)
    i = idx.unsqueeze(1).expand(-1, values.shape[1], -1)
    return values.gather(2, i) * (1 - frac) + values.gather(2, i + 1) * frac


@dataclass
class AdaptiveGrid:
    """Per-θ nodes placed by `adaptive_grid`, the densities there and the error they leave.

    Attributes:
        nodes: (B, G) increasing x, both ends of the range included.
        values: (B, C, G) the densities at the nodes (as the density function returned them).
        error: (B,) the estimated L1 distance ∫|p_lin − p| dx between the normalized density p
            and its piecewise-linear interpolant on the nodes, the worst channel of each θ.
    """

    nodes: Tensor
    values: Tensor
    error: Tensor


def _interval_errors(x: Tensor, f: Tensor, fm: Tensor) -> tuple[Tensor, Tensor]:
    """Each interval's interpolation error mass relative to its channel's norm, (B, C, G − 1),
    and the worst channel's per interval (B, G − 1).

    If the density is locally quadratic, the linear interpolant misses it by e(t) = 4 e_mid
    t(1 − t) across an interval of width h, e_mid = f(mid) − (f_l + f_r)/2, so ∫|e| = ⅔|e_mid| h.
    The norm is Simpson's rule on the nodes and midpoints.
    """
    h = x.diff(dim=-1).unsqueeze(1)
    fl, fr = f[..., :-1], f[..., 1:]
    norm = (h * (fl + 4 * fm + fr) / 6).sum(-1, keepdim=True)
    tiny = torch.finfo(f.dtype).tiny ** 0.5
    err = _safe_div((2.0 / 3.0) * (fm - (fl + fr) / 2).abs() * h, norm, tiny)
    err = torch.nan_to_num(err, nan=0.0, posinf=1.0)
    return err, err.amax(1)


@torch.no_grad()
def adaptive_grid(
    density: Callable[[Tensor, Tensor], Tensor],
    theta: Tensor,
    low: float,
    high: float,
    n_nodes: int,
    start: int | None = None,
    min_width: float | None = None,
) -> AdaptiveGrid:
    """Place ``n_nodes`` grid nodes per θ where linear interpolation of its densities errs most.

    Starts from a Chebyshev grid of ``start`` nodes (default n_nodes/4; clustered at both ends,
    so edge behaviour like (1 − x)^b is seen from the first step), evaluates the density at every
    interval's midpoint, and repeatedly bisects, for every θ at once, the intervals whose
    interpolation error mass ⅔|f(mid) − (f_l + f_r)/2|·h / ∫f (worst channel) is largest, until
    every θ has ``n_nodes`` nodes. A narrow interior peak, a steep edge and a flat density each
    get the nodes they need; each round bisects up to half of the intervals, so the density is
    called about 2·log₁.₅(n_nodes/start) times, at ≈ 3 n_nodes points per θ in all.

    Args:
        density: ``density(x, theta)`` with x (B, n, 1) → σ (B, C, n) (e.g. ``Theory._density``).
        theta: (B, P) parameters (validated by the caller); no gradients are taken here.
        low, high: the x range; both are nodes.
        n_nodes: nodes per θ (at least 2).
        start: nodes of the starting Chebyshev grid (3 ≤ start ≤ n_nodes).
        min_width: intervals narrower than this are not bisected (default 1e-12 of the range;
            tables stored in float32 need nodes that stay distinct there: see `float32_width`).

    Returns:
        `AdaptiveGrid` with nodes (B, G), the densities there (B, C, G) and each θ's estimated
        L1 interpolation error (the sum of the intervals' error masses).

    >>> peak = lambda x, t: torch.exp(-0.5 * ((x[..., 0] - t) / 0.01) ** 2).unsqueeze(1) + 0.1
    >>> g = adaptive_grid(peak, torch.tensor([[0.3], [0.7]], dtype=torch.float64), 0.0, 1.0, 256)
    >>> g.nodes.shape, bool((g.error < 1e-3).all())
    (torch.Size([2, 256]), True)
    """
    b = theta.shape[0]
    start = max(3, n_nodes // 4) if start is None else start
    x = torch.as_tensor(chebyshev_grid(low, high, min(start, n_nodes)), dtype=theta.dtype)
    x = x.to(theta.device).unsqueeze(0).expand(b, -1).contiguous()

    def call(points: Tensor) -> Tensor:
        return density(points.unsqueeze(-1), theta)

    f = call(x)
    if x.shape[1] < 3 or x.shape[1] >= n_nodes:
        x_mid = (x[:, :-1] + x[:, 1:]) / 2
        err, _ = _interval_errors(x, f, call(x_mid))
        return AdaptiveGrid(x, f, err.sum(-1).amax(-1))
    xm = (x[:, :-1] + x[:, 1:]) / 2
    fm = call(xm)
    min_width = 1e-12 * (high - low) if min_width is None else min_width
    while x.shape[1] < n_nodes:
        n = x.shape[1]
        _, worst = _interval_errors(x, f, fm)
        worst = torch.where(x.diff(dim=-1) > min_width, worst, torch.zeros_like(worst))
        k = min(n_nodes - n, max(1, (n - 1) // 2))
        pick = worst.topk(k, dim=-1).indices  # (B, k) intervals to bisect
        left, mid, right = x.gather(1, pick), xm.gather(1, pick), x.gather(1, pick + 1)
        quarter = torch.cat([(left + mid) / 2, (mid + right) / 2], 1)  # the halves' midpoints
        x, f, xm, fm = _bisect(x, f, xm, fm, pick, quarter, call(quarter))
    err, _ = _interval_errors(x, f, fm)
    return AdaptiveGrid(x, f, err.sum(-1).amax(-1))


def _rows(idx: Tensor, values: Tensor) -> Tensor:
    """idx (B, k) repeated for every channel of values (B, C, ·): (B, C, k)."""
    return idx.unsqueeze(1).expand(-1, values.shape[1], -1)


def float32_width(low: float, high: float) -> float:
    """The narrowest interval worth making on [low, high] when the nodes are stored in float32:
    16 float32 rounding steps at the larger end."""
    return 16 * float(torch.finfo(torch.float32).eps) * max(abs(low), abs(high), high - low)


def _bisect(
    x: Tensor, f: Tensor, xm: Tensor, fm: Tensor, pick: Tensor, quarter: Tensor, fq: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split the intervals ``pick`` (B, k) of nodes x (B, n) (values f (B, C, n), midpoints xm
    and their values fm): each midpoint becomes a node and the two halves' midpoints ``quarter``
    (B, 2k: left halves, then right halves) with values fq take its place. Order is kept by
    placing every point at its index in the refined grid (no sorting)."""
    b, n = x.shape
    k = pick.shape[1]
    picked = torch.zeros_like(xm, dtype=torch.bool).scatter(1, pick, True)
    before = picked.long().cumsum(1) - picked.long()  # bisected intervals left of each interval
    node_pos = torch.arange(n, device=x.device) + torch.cat(
        [before, before[:, -1:] + picked[:, -1:]], 1
    )
    mid_pos = torch.arange(n - 1, device=x.device) + before  # an interval's (left) slot
    new_pos = pick + 1 + before.gather(1, pick)  # a bisected interval's midpoint, now a node
    x2 = x.new_empty(b, n + k).scatter_(1, node_pos, x).scatter_(1, new_pos, xm.gather(1, pick))
    f2 = f.new_empty(b, f.shape[1], n + k).scatter_(2, _rows(node_pos, f), f)
    f2.scatter_(2, _rows(new_pos, f), fm.gather(2, _rows(pick, fm)))
    half = mid_pos.gather(1, pick)
    q_pos = torch.cat([half, half + 1], 1)
    xm2 = xm.new_empty(b, n + k - 1).scatter_(1, mid_pos, xm).scatter_(1, q_pos, quarter)
    fm2 = fm.new_empty(b, fm.shape[1], n + k - 1).scatter_(2, _rows(mid_pos, fm), fm)
    fm2.scatter_(2, _rows(q_pos, fm), fq)
    return x2, f2, xm2, fm2


class GridToleranceWarning(UserWarning):
    """An adaptive grid's interpolation error is above its tolerance for some θ (filterable:
    ``warnings.simplefilter("ignore", GridToleranceWarning)``)."""


def warn_grid_error(error: Tensor, tol: float, n_nodes: int, what: str) -> str | None:
    """A one-line `GridToleranceWarning` (returned, and issued) when some θ's interpolation
    error exceeds tol; None when none does."""
    above = int((error > tol).sum())
    if above == 0:
        return None
    message = (
        f"{what}: {above} of {error.numel()} θ have a grid interpolation error above grid_tol "
        f"{tol:g} (largest {float(error.max()):.2g}) with {n_nodes} nodes; raise the grid size"
    )
    warnings.warn(message, GridToleranceWarning, stacklevel=3)
    return message


class InverseCDFSampler:
    """Exact, differentiable 1-D event sampler for a Theory: the seed's inverse CDF, made safe.

    On a grid of `grid_size` points per θ the density is taken as piecewise linear; its CDF is
    then piecewise quadratic and is inverted in closed form with the numerically stable root
    2c / (b + √(b² + 4ac)). Every division is guarded, so flat CDF segments, u at 0 or 1, zero
    densities (N = 0) and exponents at the prior edges give finite events and finite gradients;
    a θ whose density vanishes everywhere falls back to a uniform distribution instead of 0/0.

    The grid adapts to each θ (`adaptive_grid`: nodes where linear interpolation errs most, so a
    narrow interior peak is resolved as well as an edge like (1 − x)^b); ``grid="chebyshev"``
    keeps one grid clustered at both ends for every θ. The nodes are placed without gradients and
    held fixed; the densities at them carry the gradients with respect to θ. With common random
    numbers (``u``), a change of θ that moves the nodes moves the events by at most the table's
    interpolation error (a 1e-5-level step for the default 2049 nodes), not smoothly; use
    ``grid="chebyshev"`` where exact smoothness in θ matters more than resolving peaks.

    Args:
        theory: a 1-D Theory. Gradients with respect to θ flow only if ``theory.differentiable``.
        grid_size: grid points in x per θ; the density error is O(h²) between them.
        grid: "adaptive" (default) or "chebyshev".
        grid_tol: the L1 interpolation error above which the sampler warns (once) that its
            table is too coarse for some θ; the last table's errors are in ``last_grid_error``.
        reuse_grid: keep each row's adaptive nodes from one call to the next (a batch of the
            same size, as the outer GAN's replicas are) while the interpolation error on them
            stays within twice the error they had when placed and within ``grid_tol``; rows
            that drift further get fresh nodes. Placing nodes costs several times the density
            evaluations it replaces, so a GAN step is cheaper; the accuracy bound holds row by
            row. ``reused_rows`` counts the rows that kept their nodes.

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

    def __init__(
        self,
        theory: Theory,
        grid_size: int = 2049,
        grid: str = "adaptive",
        grid_tol: float = 1e-4,
        reuse_grid: bool = False,
    ) -> None:
        if theory.event_dim != 1:
            raise InputError(
                f"the inverse-CDF sampler is 1-D; theory '{theory.name}' has {theory.event_dim}-D "
                "events: use MetropolisSampler"
            )
        check_choice("sampler grid", grid, GRID_KINDS)
        self.theory = theory
        self.grid_kind = grid
        self.grid_size = grid_size
        self.grid_tol = grid_tol
        self.last_grid_error: Tensor | None = None
        self._warned = False
        self.reuse_grid = reuse_grid
        self.reused_rows = 0
        self._kept: tuple[Tensor, Tensor] | None = None  # nodes (B, G), their error when placed
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

    def cdf_table(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The table of validated θ (B, P): grid (B, G) (one per θ), normalized grid densities
        q (B, C, G) and CDF F (B, C, G), F[..., 0] = 0, F[..., -1] = 1."""
        if self.grid_kind == "chebyshev":
            grid = self.grid.to(theta.device)
            dens = self.theory._density(grid.view(1, -1, 1).expand(theta.shape[0], -1, -1), theta)
            grid = grid.expand(theta.shape[0], -1)
        else:
            # the densities at the nodes carry the gradients with respect to θ when they are asked for
            table = self._adaptive_table(theta, torch.is_grad_enabled() and theta.requires_grad)
            grid, dens = table.nodes, table.values
            self.last_grid_error = table.error
            if not self._warned:
                self._warned = bool(
                    warn_grid_error(table.error, self.grid_tol, self.grid_size, "exact sampler")
                )
        q, cdf = grid_cdf(grid.unsqueeze(1), dens)
        return grid, q, cdf

    def keeping_nodes(self) -> InverseCDFSampler:
        """A new sampler of the same table settings with ``reuse_grid`` on and nothing kept yet:
        one per fit, so that no fit inherits the nodes (and so the events) of another. A fixed
        grid (``grid="chebyshev"``) has nothing to keep: the sampler itself."""
        if self.grid_kind != "adaptive":
            return self
        return self.copy(reuse_grid=True)

    def copy(self, reuse_grid: bool) -> InverseCDFSampler:
        """A new sampler of the same table settings, nothing kept, ``reuse_grid`` as given."""
        return InverseCDFSampler(
            self.theory, self.grid_size, self.grid_kind, self.grid_tol, reuse_grid=reuse_grid
        )

    def _adaptive_table(self, theta: Tensor, grad: bool = False) -> AdaptiveGrid:
        """Adaptive nodes for θ (B, P): the kept ones of the last call for rows whose error on
        them stays within bounds (``reuse_grid``), fresh ones (`adaptive_grid`) otherwise. The
        nodes are placed without gradients; with ``grad`` the densities at them (``values``) are
        evaluated with gradients with respect to θ, once: a kept row's error check reuses them."""
        lo, hi = float(self.theory.x_low[0]), float(self.theory.x_high[0])
        density, plain = self.theory._density, theta.detach()

        def values_at(nodes: Tensor, rows: Tensor, placed: Tensor) -> Tensor:
            return density(nodes.unsqueeze(-1), rows) if grad else placed

        kept = self._kept if self.reuse_grid else None
        if kept is None or kept[0].shape[0] != theta.shape[0] or kept[0].dtype != theta.dtype:
            with torch.no_grad():
                fresh = adaptive_grid(density, plain, lo, hi, self.grid_size)
            table = AdaptiveGrid(fresh.nodes, values_at(fresh.nodes, theta, fresh.values), fresh.error)
            placed = fresh.error
        else:
            nodes, placed = kept
            nodes = nodes.to(theta.device)
            with torch.set_grad_enabled(grad):
                f = density(nodes.unsqueeze(-1), theta if grad else plain)
            with torch.no_grad():
                fm = density(((nodes[:, :-1] + nodes[:, 1:]) / 2).unsqueeze(-1), plain)
                err, _ = _interval_errors(nodes, f.detach(), fm)
                error = err.sum(-1).amax(-1)
                limit = torch.minimum(2 * placed, placed.clamp(min=self.grid_tol))
                stale = ~(error <= limit)  # NaN errors are stale too
            nodes, placed = nodes.clone(), placed.clone()
            if stale.any():
                with torch.no_grad():
                    fresh = adaptive_grid(density, plain[stale], lo, hi, self.grid_size)
                nodes[stale], error[stale], placed[stale] = fresh.nodes, fresh.error, fresh.error
                rows = stale.nonzero().squeeze(1)
                f = f.index_put((rows,), values_at(fresh.nodes, theta[stale], fresh.values))
            table = AdaptiveGrid(nodes, f, error)
            self.reused_rows += int((~stale).sum())
        if self.reuse_grid:
            self._kept = (table.nodes, placed)
        return table

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
        grid, q, cdf = self.cdf_table(t)
        events = []
        for c, n_c in enumerate(counts):
            if u is None:
                uc = torch.rand(t.shape[0], n_c, dtype=t.dtype, generator=generator).to(t.device)
            else:
                uc = torch.as_tensor(u[c], dtype=t.dtype, device=t.device).clamp(0.0, 1.0)
            events.append(invert_cdf(grid, q[:, c], cdf[:, c], uc).unsqueeze(-1))
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

    def keeping_nodes(self) -> InverseCDFSampler2D:
        """Its grids are fixed: nothing is kept between calls, so the sampler itself."""
        return self

    def table(self, theta: Tensor) -> Tensor:
        """σ_c in u on the grid, (B, C, G₁, G₂)."""
        grid, grid2 = self.grid.to(theta.device), self.grid2.to(theta.device)
        uu = torch.cartesian_prod(grid, grid2)  # (G₁·G₂, 2), u₂ fastest
        dens = self.theory.unit_density(uu.unsqueeze(0).expand(theta.shape[0], -1, -1), theta)
        return dens.view(*dens.shape[:2], grid.numel(), grid2.numel()).clamp(min=0.0)

    def cdf_table(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Marginal of u₁: its grid (B, G₁), normalized grid densities q (B, C, G₁) and CDF F."""
        q, cdf = self._marginal(self.table(theta))
        return self.grid.to(q).expand(theta.shape[0], -1), q, cdf

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
