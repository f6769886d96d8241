"""VAIM: Variational Autoencoder Inverse Mapper; a forward surrogate θ → densities and an inverse θ ← densities.

References: M. Almaeen, Y. Alanazi, N. Sato, W. Melnitchouk, M. P. Kuchera, Y. Li, "Variational
Autoencoder Inverse Mapper: An End-to-End Deep Learning Framework for Inverse Problems",
IJCNN 2021 (arXiv:2106.01456).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from surrogates.errors import check_choice
from surrogates.models.base import Surrogate, mlp
from surrogates.sampling import counts_per_channel, grid_cdf, interp_grid, invert_cdf
from surrogates.theory.base import chebyshev_grid

__all__ = ["VAIMNet", "VAIMSurrogate"]


class VAIMNet(nn.Module):
    """The VAIM pair: forward θ → (observable, latent w), backward (observable, w) → θ.

    Training minimizes |ŷ − y|² + |θ̂ − θ|² + β KL(q(w | θ) ‖ N(0, I)), with θ̂ decoded from
    the observable and a latent w drawn from q(w | θ). Inversion draws w ~ N(0, I) for a given observable,
    so an ill-posed problem (several θ giving one observable) yields every branch.

    >>> net = VAIMNet(1, 1, latent=2, hidden=(8,))
    >>> net.invert(torch.tensor([[0.25]]), 5).shape
    torch.Size([1, 5, 1])
    """

    def __init__(
        self,
        params: int,
        observables: int,
        latent: int = 4,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "silu",
        features: int | None = None,
    ) -> None:
        super().__init__()
        self.latent = latent
        # the forward mapper may read more than θ itself (features: θ and its log features)
        self.forward_net = mlp(
            params if features is None else features,
            observables + 2 * latent,
            list(hidden),
            activation,
        )
        self.backward_net = mlp(observables + latent, params, list(hidden), activation)

    def forward(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Predicted observable, latent mean and log-variance."""
        out = self.forward_net(theta)
        obs, mu, log_var = (
            out[..., : -2 * self.latent],
            *out[..., -2 * self.latent :].chunk(2, dim=-1),
        )
        return obs, mu, log_var.clamp(-10, 5)

    def loss(
        self,
        theta: Tensor,
        obs: Tensor,
        beta: float = 1.0,
        forward_loss: Callable[[Tensor], Tensor] | None = None,
        features: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The three terms and their sum; ``forward_loss(pred)`` replaces the forward mapper's
        squared error against ``obs`` (VAIM from events: the events' likelihood); ``features``:
        what the forward mapper reads in place of θ itself, when it reads more."""
        pred, mu, log_var = self(theta if features is None else features)
        w = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
        # the backward mapper reads the true observable (as at inversion time), so θ cannot be
        # smuggled through the predicted one: the latent alone must carry what y does not fix
        back = self.backward_net(torch.cat([obs, w], -1))
        fwd = (pred - obs).pow(2).mean() if forward_loss is None else forward_loss(pred)
        backward_loss = (back - theta).pow(2).mean()
        kl = (0.5 * (mu**2 + log_var.exp() - 1 - log_var)).sum(-1).mean()
        return {
            "loss": fwd + backward_loss + beta * kl,
            "forward_loss": fwd,
            "backward_loss": backward_loss,
            "kl": kl,
        }

    def invert(self, obs: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n parameter samples per observable: obs (B, O) → (B, n, P)."""
        w = torch.randn(obs.shape[0], n, self.latent, generator=generator, dtype=obs.dtype).to(
            obs.device
        )
        return self.backward_net(torch.cat([obs.unsqueeze(1).expand(-1, n, -1), w], -1))


class VAIMSurrogate(Surrogate):
    """VAIM on module-2: the observable is log p_c(x | θ) on an x grid, for every channel.

    From densities (a density theory's training set) the forward mapper regresses the tabulated
    log densities on the grid. From events alone (an event generator's set, or ``target:
    events``) each θ's observable is the normalized histogram of its K events per channel in the
    intervals between the grid's nodes (`histogram_pdf`: each node the mean of its two
    intervals, floored at half an event over the range), which the backward mapper reads; the
    forward mapper learns p(x | θ) as a template by maximum likelihood of the events (the
    negative log-likelihood of the piecewise-linear density at each event replaces its squared
    error: a histogram of ~100 events is far too noisy to regress in the log), so it is unbiased
    however few events each θ has.

    As an EventSource it samples events from its predicted densities with the package's
    differentiable inverse CDF (so events are differentiable in θ); `log_prob` interpolates the
    same piecewise-linear density; `invert(observable, n)` returns θ samples.

    Args:
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md (set from data.theory).
        grid_size: points of its own x grid (Chebyshev, clustered at both ends); the training
            densities are interpolated onto it from each θ's grid, linearly, which errs in the
            log where a density is small. A training set simulated with `--grid chebyshev
            --grid-size` equal to this holds the densities at these nodes themselves (how the
            shipped VAIM is trained: checkpoints/train.sh).
        latent: latent dimension; hidden: widths of both mappers; beta: KL weight.
        floor: added to the normalized densities before the log (dynamic-range floor).
        target: "auto" (the training set's densities when it has them, else its events),
            "pdf" or "events" (see above).
        pdf_loss: how the forward mapper meets tabulated densities: "log-mse" (the squared
            error of the observable log(p + floor), every node alike, as in the paper) or
            "cross-entropy" (−∫ p log q̂ of the normalized piecewise-linear prediction q̂, the
            trapezoid rule on the grid: the Kullback–Leibler divergence up to a constant, which
            weights each node by its probability as a likelihood does; plus (log ∫ exp(ŷ))², which
            pins the prediction's free constant so that ŷ ≈ log q̂).
        lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps, log_theta,
            norm_log_theta: see `Surrogate` (the forward mapper reads `theta_features`).
    """

    has_density = True

    family = "vaim"
    # best.ckpt by the forward mapper and norms alone (the surrogate); the inverse's backward
    # loss, most of val_loss, plateaus or rises while the forward mapper still improves
    selection_metric = "val_surrogate_loss"

    def __init__(
        self,
        theory: str = "proxy",
        grid_size: int = 128,
        latent: int = 4,
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "silu",
        beta: float = 0.1,
        floor: float = 1e-6,
        target: str = "auto",
        pdf_loss: str = "log-mse",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        optimizer: str = "adam",
        norm_hidden: Sequence[int] = (128, 128, 128),
        norm_weight: float = 1.0,
        norm_steps: int = 20000,
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
        check_choice("vaim target", target, ("auto", "pdf", "events"))
        check_choice("vaim pdf_loss", pdf_loss, ("log-mse", "cross-entropy"))
        grid = chebyshev_grid(float(self.x_low[0]), float(self.x_high[0]), grid_size)
        self.register_buffer("grid", torch.as_tensor(grid, dtype=torch.float32))
        self.vaim = VAIMNet(
            len(self.param_names),
            self.n_channels * grid_size,
            latent,
            hidden,
            activation,
            features=self.feature_dim,
        )

    def needs_density(self) -> list[tuple[str, str]]:
        if self.hparams.target == "pdf":
            return [("target: pdf", "target: events (histograms of the set's events)")]
        return []

    def observable(self, pdf: Tensor, floor: float | None = None) -> Tensor:
        """Normalized grid densities (B, C, G) → the VAIM observable log(p + floor), flattened."""
        return torch.log(pdf + (self.hparams.floor if floor is None else floor)).flatten(1)

    def histogram_pdf(self, events: Tensor) -> Tensor:
        """Events (B, C, K[, 1]) → node densities (B, C, G) of their normalized histogram.

        The K events of each θ and channel are counted in the G − 1 intervals between the grid's
        nodes; each node gets the mean density of its two intervals (an end node: its one).
        """
        x = events[..., 0] if events.dim() == 4 else events
        g = self.grid.to(x.dtype)
        idx = (torch.searchsorted(g, x.contiguous()) - 1).clamp(0, g.numel() - 2)
        counts = torch.zeros(*x.shape[:-1], g.numel() - 1, dtype=x.dtype, device=x.device)
        counts.scatter_add_(-1, idx, torch.ones_like(x))
        dens = counts / (x.shape[-1] * g.diff())
        inner = (dens[..., 1:] + dens[..., :-1]) / 2
        return torch.cat([dens[..., :1], inner, dens[..., -1:]], -1)

    def histogram_floor(self, k: int) -> float:
        """The floor of a K-event histogram's observable: half an event spread over the range."""
        return max(self.hparams.floor, 0.5 / (k * float(self.x_high[0] - self.x_low[0])))

    def _event_nll(self, pred: Tensor, x: Tensor) -> Tensor:
        """Mean −log p̂(x) of events x (B, C, K) under the forward mapper's densities exp(pred)
        (B, C·G), piecewise linear between the nodes and normalized per channel."""
        q = grid_cdf(self.grid.to(pred.dtype), pred.view(*x.shape[:2], -1).exp())[0]
        return -self._density_at(q, x).clamp(min=1e-30).log().mean()

    def _density_at(self, q: Tensor, x: Tensor) -> Tensor:
        """The piecewise-linear density q (B, C, G) on the grid at x (B, C, n)."""
        g = self.grid.to(q.dtype)
        idx = (torch.searchsorted(g, x.contiguous()) - 1).clamp(0, g.numel() - 2)
        frac = ((x - g[idx]) / (g[idx + 1] - g[idx])).clamp(0, 1)
        return q.gather(2, idx) * (1 - frac) + q.gather(2, idx + 1) * frac

    def _grid_log_weights(self, dtype: torch.dtype) -> Tensor:
        """log of the trapezoid weights w of the grid (∫ f ≈ Σ w f for f linear between nodes)."""
        h = self.grid.to(dtype).diff()
        w = torch.cat([h[:1], h[1:] + h[:-1], h[-1:]]) / 2
        return w.log()

    def _pdf_cross_entropy(self, pred: Tensor, pdf: Tensor) -> Tensor:
        """Mean over θ and channels of ∫ p log(p / q̂) on the grid (trapezoid rule), with q̂ the
        normalized exp(pred), plus (log ∫ exp(pred))²; pred (B, C·G), pdf (B, C, G)."""
        log_w = self._grid_log_weights(pred.dtype)
        log_pred = pred.view(pdf.shape)
        log_z = torch.logsumexp(log_pred + log_w, -1, keepdim=True)
        p = grid_cdf(self.grid.to(pdf.dtype), pdf)[0]
        w = log_w.exp()
        kl = (w * (torch.xlogy(p, p) - p * (log_pred - log_z))).sum(-1)
        return kl.mean() + log_z.pow(2).mean()

    def predicted_pdf(self, theta: Tensor) -> Tensor:
        """Predicted normalized densities on the grid, (B, C, G)."""
        obs, _, _ = self.vaim(self.theta_features(theta))
        floor = 0.0 if self.hparams.get("pdf_loss") == "cross-entropy" else self.hparams.floor
        pdf = (obs.exp() - floor).clamp(min=0).view(theta.shape[0], self.n_channels, -1)
        return grid_cdf(self.grid.to(pdf.dtype), pdf)[0]

    def sample(
        self, theta: Tensor, n: int | Sequence[int], generator: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        t = self.check_theta(theta)
        counts = counts_per_channel(n, self.n_channels)
        grid = self.grid.to(t.dtype)
        q, cdf = grid_cdf(grid, self.predicted_pdf(t.to(self.grid.dtype)).to(t.dtype))
        out = []
        for c, n_c in enumerate(counts):
            u = torch.rand(t.shape[0], n_c, generator=generator, dtype=t.dtype).to(t.device)
            out.append(invert_cdf(grid, q[:, c], cdf[:, c], u).unsqueeze(-1))
        return tuple(out)

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        t = self.check_theta(theta).to(self.grid.dtype)
        x = torch.as_tensor(x, dtype=t.dtype, device=t.device).reshape(
            t.shape[0] if torch.as_tensor(x).shape[0] != 1 else 1, -1
        )
        x = x.expand(t.shape[0], -1)
        q = self.predicted_pdf(t)
        dens = self._density_at(q, x.unsqueeze(1).expand(-1, self.n_channels, -1))
        return dens.clamp(min=1e-30).log()

    def invert(self, pdf: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """θ samples from observed normalized densities on the grid: pdf (B, C, G) → (B, n, P)."""
        scaled = self.vaim.invert(self.observable(pdf.to(self.grid.dtype)), n, generator)
        return self.prior_low + (scaled + 1) * (self.prior_high - self.prior_low) / 2

    def training_pdf(self, batch: dict[str, Tensor]) -> Tensor:
        """The batch's normalized densities on the VAIM's own grid, (B, C, G_vaim): interpolated
        linearly from each θ's training grid (the values themselves when the grids agree)."""
        grid, pdf = batch["grid"][..., 0], batch["pdf"]
        own = self.grid.to(pdf).expand(pdf.shape[0], -1)
        if grid.shape == own.shape and torch.equal(grid.to(pdf), own):
            return pdf
        return interp_grid(grid.to(pdf), pdf, own)

    def invert_events(
        self, events: Tensor, n: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """θ samples from observed events (B, C, K[, 1]) through their histogram observable."""
        floor = self.histogram_floor(events.shape[2])
        obs = self.observable(self.histogram_pdf(events.to(self.grid.dtype)), floor)
        scaled = self.vaim.invert(obs, n, generator)
        return self.prior_low + (scaled + 1) * (self.prior_high - self.prior_low) / 2

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        target = self.hparams.target
        if target == "events" or (target == "auto" and "pdf" not in batch):
            return self._events_loss(batch)
        self.check_training_set("pdf" in batch)
        theta = batch["theta"]
        pdf = self.training_pdf(batch)
        ce = self.hparams.get("pdf_loss") == "cross-entropy"
        losses = self.vaim.loss(
            self.scale_theta(theta),
            self.observable(pdf),
            self.hparams.beta,
            forward_loss=(lambda pred: self._pdf_cross_entropy(pred, pdf)) if ce else None,
            features=self.theta_features(theta),
        )
        return self._with_norm(losses, theta, batch)

    def _with_norm(
        self, losses: dict[str, Tensor], theta: Tensor, batch: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Add the norm network's loss, and the surrogate's own (forward and norm) loss."""
        norm = self.norm_loss(theta, batch["log_norms"])
        losses["loss"] = losses["loss"] + self.hparams.norm_weight * norm
        losses["norm_loss"] = norm
        losses["surrogate_loss"] = losses["forward_loss"] + self.hparams.norm_weight * norm
        return losses

    def _events_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """VAIM from events: the histogram observable, the template's likelihood (see the class)."""
        theta = batch["theta"]
        x = batch["events"][..., 0].to(self.grid.dtype)  # (B, C, K)
        obs = self.observable(self.histogram_pdf(x), self.histogram_floor(x.shape[-1]))
        losses = self.vaim.loss(
            self.scale_theta(theta),
            obs,
            self.hparams.beta,
            forward_loss=lambda pred: self._event_nll(pred, x),
            features=self.theta_features(theta),
        )
        return self._with_norm(losses, theta, batch)
