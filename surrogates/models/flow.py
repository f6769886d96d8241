"""Conditional normalizing-flow surrogate p̂(x | θ, channel): neural spline flows from zuko, nflows or normflows.

References: C. Durkan et al., "Neural Spline Flows", NeurIPS 2019 (arXiv:1906.04032).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from surrogates.errors import InputError, check_choice
from surrogates.models.base import BOUNDED_VARIABLES, EVENT_VARIABLES, Surrogate
from surrogates.models.flow_backends import BACKENDS
from surrogates.validation import positive_int, positive_number, widths

__all__ = ["FlowSurrogate", "BACKENDS"]


class FlowSurrogate(Surrogate):
    """Conditional neural spline flow over an event variable y of x in its range (logit default).

    Args:
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md (set from data.theory).
        backend: "zuko" (maintained, default), "nflows" or "normflows".
        objective: "events" (maximum likelihood on sampled events) or "pdf" (the KL divergence
            ∫ p log(p/q) from the exact normalized densities p on the training set's x grid: the
            cross-entropy less p's entropy, lower variance than events; its logged losses are near
            0 for a good flow).
        pdf_points: where the "pdf" objective evaluates the flow: "grid" (the grid's nodes, with
            trapezoid weights; the flow is free between nodes, and the shipped logit flows
            oscillate by ±100% between the nodes near x_low) or "stratified" (one uniform random
            point in every grid interval, a new one each step, with the exact density
            interpolated linearly between the nodes: a stratified Monte Carlo estimate of the
            same divergence that penalizes the flow everywhere; validation uses fixed points).
        transforms: number of autoregressive spline transforms.
        bins: spline bins per transform.
        hidden: hidden widths of each transform's conditioner.
        tail_bound: half-width of the spline interval in y (linear tails outside); not used with
            a bounded event variable ("unit", "root").
        event_variable: "logit" (y = logit of x scaled to [0, 1]; splines on ±tail_bound with a
            normal base), "probit" (y = Φ⁻¹ of it; same flow) or "unit" (y = x scaled to [0, 1]
            itself; bounded splines with learned end slopes and a uniform base) or "root"
            (y = 1 − √(1 − s); bounded too, for densities that vanish as (1 − x)^b at x_high):
            see `Surrogate.to_unit`.
        lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps: see `Surrogate`.
        pdf_cells: "stratified" only, this many points per θ each training step (0, or at
            least the grid's number of intervals or cells: one in every one of them): an
            unbiased estimate of the same divergence at a fraction of the cost. 1-D: the
            points are drawn stratified in the probability of each interval (the channels' mean
            interpolated density, 9 parts, and the interval's width, 1 part, so that the tails
            are visited), each weighted by the inverse of that probability; 2-D: random cells of
            the grid, each weighted by 1/pdf_cells. Validation always uses every interval or
            cell.
        log_theta: see `Surrogate` (the conditioner reads `theta_features`); norm_log_theta: see
            `Surrogate`.

    >>> flow = FlowSurrogate(transforms=1, bins=4, hidden=(8, 8))
    >>> s1, s2 = flow.sample(flow.prior_low + 0.5 * (flow.prior_high - flow.prior_low), 10)
    >>> s1.shape, bool(((s1 >= 0.1) & (s1 <= 1.0)).all())
    (torch.Size([1, 10, 1]), True)
    """

    has_density = True

    family = "flow"

    def __init__(
        self,
        theory: str = "proxy",
        backend: str = "zuko",
        objective: str = "events",
        pdf_points: str = "grid",
        transforms: int = 4,
        bins: int = 16,
        hidden: Sequence[int] = (128, 128),
        tail_bound: float = 10.0,
        event_variable: str = "logit",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        optimizer: str = "adam",
        norm_hidden: Sequence[int] = (128, 128, 128),
        norm_weight: float = 1.0,
        norm_steps: int = 20000,
        pdf_cells: int = 0,
        log_theta: Sequence[str] = (),
        norm_log_theta: bool = False,
    ) -> None:
        super().__init__(
            theory,
            lr,
            weight_decay,
            scheduler,
            norm_hidden,
            norm_weight,
            norm_steps,
            optimizer,
            log_theta,
            norm_log_theta,
        )
        self.save_hyperparameters()
        check_choice("flow backend", backend, BACKENDS)
        check_choice("objective", objective, ("events", "pdf"))
        check_choice("pdf_points", pdf_points, ("grid", "stratified"))
        if pdf_cells < 0 or (pdf_cells > 0 and pdf_points != "stratified"):
            raise InputError(
                f"model.pdf_cells = {pdf_cells}: a number of points per θ needs "
                "model.pdf_points: stratified and is ≥ 0; set model.pdf_cells: 0 (every interval) "
                "or model.pdf_points: stratified"
            )
        check_choice("event_variable", event_variable, EVENT_VARIABLES)
        positive_int("model.transforms", transforms, 4)
        positive_int("model.bins", bins, 16)
        widths("model.hidden", list(hidden))
        positive_number("model.tail_bound", tail_bound, 10.0)
        self.backend = backend
        self.objective = objective
        self.pdf_points = pdf_points
        self.event_variable = event_variable
        self.net = BACKENDS[backend](
            self.event_dim,
            self.context_dim,
            transforms,
            bins,
            list(hidden),
            tail_bound,
            bounded=event_variable in BOUNDED_VARIABLES,
        )

    def needs_density(self) -> list[tuple[str, str]]:
        if self.objective == "pdf":
            return [("objective: pdf", "objective: events (maximum likelihood on its events)")]
        return []

    def _context(self, theta: Tensor, channel: int, n: int) -> Tensor:
        """The conditioning of n events per θ: (B, 1, P + C) for a backend that broadcasts it
        over the events (the conditioner then runs once per θ, not once per event), else
        (B·n, P + C)."""
        if self.net.broadcasts:
            return self.event_context(theta, channel, 1)
        return self.event_context(theta, channel, n).reshape(theta.shape[0] * n, -1)

    def _sample_unit(
        self, theta: Tensor, channel: int, n: int, generator: torch.Generator | None
    ) -> Tensor:
        b, d = theta.shape[0], self.event_dim
        z = torch.randn(b * n, d, generator=generator, dtype=theta.dtype).to(theta.device)
        if self.net.broadcasts:
            z = z.view(b, n, d)
        return self.net.inverse(z, self._context(theta, channel, n)).view(b, n, d)

    def _log_prob_unit(self, y: Tensor, theta: Tensor, channel: int) -> Tensor:
        b, n, d = y.shape
        if not self.net.broadcasts:
            y = y.reshape(b * n, d)
        return self.net.log_prob(y, self._context(theta, channel, n)).view(b, n)

    def _pdf_points(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Points x (B, G', d), exact normalized densities there (B, C, G') and weights (B, G')
        (or (G',), shared, on the unit square).

        "grid": each θ's grid nodes with their trapezoid weights. "stratified": one uniform point
        per interval of each θ's grid, the density interpolated linearly from the interval's
        ends, weight = the interval's width (1-D grids; fixed points, seed 0, when not training).
        """
        theta, grid, pdf = batch["theta"], batch["grid"], batch["pdf"]
        if self.support_map:
            return self._pdf_points_square(theta, grid[0], pdf)
        if self.pdf_points == "grid":
            return grid, pdf, batch["weights"]
        g = grid[..., 0]  # (B, G): each θ's own nodes
        k = self.hparams.pdf_cells
        if self.training and 0 < k < g.shape[1] - 1:
            return self._pdf_points_by_mass(g, pdf, k)
        gen = None if self.training else torch.Generator().manual_seed(0)
        u = torch.rand(theta.shape[0], 1, g.shape[1] - 1, generator=gen).to(g)
        h = g.diff(dim=-1).unsqueeze(1)  # (B, 1, G − 1)
        x = g[:, None, :-1] + u * h
        p = pdf[..., :-1] * (1 - u) + pdf[..., 1:] * u  # (B, C, G − 1)
        return x[:, 0, :, None], p, h[:, 0]

    @staticmethod
    def _pdf_points_by_mass(g: Tensor, pdf: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """k points per θ on 1-D grids g (B, G) with densities pdf (B, C, G): interval i is drawn
        with probability π_i = 0.9 · (its share of the channels' mean trapezoid mass) + 0.1 ·
        (its share of the range), by k stratified uniforms on the cumulative π; the point is
        uniform in the interval, with weight h_i / (k π_i): E[Σ w p log q] = ∫ p log q."""
        c = pdf.shape[1]
        h = g.diff(dim=-1)  # (B, G − 1)
        mass = 0.5 * (pdf[..., :-1] + pdf[..., 1:]).mean(1) * h
        pi = 0.9 * mass / mass.sum(-1, keepdim=True) + 0.1 * h / h.sum(-1, keepdim=True)
        cdf = pi.cumsum(-1)
        u = (torch.arange(k, device=g.device, dtype=g.dtype) + torch.rand_like(g[:, :k])) / k
        i = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp(max=h.shape[1] - 1)  # (B, k)
        r = torch.rand_like(u)
        width = h.gather(1, i)
        x = g.gather(1, i) + r * width
        ic = i.unsqueeze(1).expand(-1, c, -1)
        p = pdf.gather(2, ic) * (1 - r.unsqueeze(1)) + pdf.gather(2, ic + 1) * r.unsqueeze(1)
        return x.unsqueeze(-1), p, width / (k * pi.gather(1, i))

    def _pdf_points_square(
        self, theta: Tensor, grid: Tensor, pdf: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Points in the unit square of the event region (B, G', 2), the exact densities in u there
        (B, C, G') and weights (G'): the training set's densities are in u on a uniform G × G grid.

        "grid": the nodes (trapezoid weights); "stratified": one uniform point per cell, the
        density interpolated bilinearly from the cell's corners, weight = the cell's area.
        """
        g = int(round(math.sqrt(grid.shape[0])))
        if g * g != grid.shape[0]:
            raise InputError("a unit-square training grid must be G × G points")
        lin = torch.linspace(0.0, 1.0, g, device=theta.device, dtype=theta.dtype)
        b, c = pdf.shape[:2]
        if self.pdf_points == "grid":
            w1 = torch.full((g,), 1.0 / (g - 1), device=theta.device, dtype=theta.dtype)
            w1[0] = w1[-1] = 0.5 / (g - 1)
            u = torch.cartesian_prod(lin, lin).unsqueeze(0).expand(b, -1, -1)
            return u, pdf, torch.outer(w1, w1).reshape(-1)
        table = pdf.view(b, c, g, g)
        gen = None if self.training else torch.Generator().manual_seed(0)
        r = torch.rand(b, g - 1, g - 1, 2, generator=gen).to(theta)
        u = torch.stack(
            [
                (lin[:-1].view(1, -1, 1) + r[..., 0] / (g - 1)),
                (lin[:-1].view(1, 1, -1) + r[..., 1] / (g - 1)),
            ],
            -1,
        )  # (B, G−1, G−1, 2)
        a, bb = r[..., 0].unsqueeze(1), r[..., 1].unsqueeze(1)
        p = (
            table[..., :-1, :-1] * (1 - a) * (1 - bb)
            + table[..., 1:, :-1] * a * (1 - bb)
            + table[..., :-1, 1:] * (1 - a) * bb
            + table[..., 1:, 1:] * a * bb
        )
        u, p = u.reshape(b, -1, 2), p.reshape(b, c, -1)
        cells = (g - 1) ** 2
        k = self.hparams.pdf_cells
        if 0 < k < cells:  # a random subset of the cells per θ: unbiased, k/cells the cost
            pick = torch.rand(b, cells, generator=gen).argsort(-1)[:, :k].to(theta.device)
            u = torch.gather(u, 1, pick.unsqueeze(-1).expand(-1, -1, 2))
            p = torch.gather(p, 2, pick.unsqueeze(1).expand(-1, c, -1))
            cells = k
        area = torch.full((cells,), 1.0 / cells, device=theta.device, dtype=theta.dtype)
        return u, p, area

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        theta = batch["theta"]
        terms = []
        if self.objective == "pdf":
            x, pdf, weights = self._pdf_points(batch)
            if self.support_map:  # points and densities in the unit square: y of s = u
                y, log_jac = self._y_of_s(x)
            else:
                y, log_jac = self.to_unit(x)
        for c in range(self.n_channels):
            if self.objective == "events":
                y, log_jac = self.to_unit(batch["events"][:, c])
                terms.append(-(self._log_prob_unit(y, theta, c) + log_jac).mean())
            else:
                logq = self._log_prob_unit(y, theta, c) + log_jac
                # the KL divergence ∫ p log(p/q) dx with the points' quadrature weights: the
                # cross-entropy −∫ p log q less the target's entropy, the same gradient, but a
                # number near 0 that float32 still resolves between well-trained flows (their
                # cross-entropies differ by ~1e-5 at ~8, a few float32 steps)
                p = pdf[:, c]
                logp = torch.where(p > 0, p.clamp(min=torch.finfo(p.dtype).tiny).log(), 0.0)
                terms.append((weights * p * (logp - logq)).sum(-1).mean())
        shape = torch.stack(terms).sum()
        norm = self.norm_loss(theta, batch["log_norms"])
        return {
            "loss": shape + self.hparams.norm_weight * norm,
            "shape_loss": shape,
            "norm_loss": norm,
        }
