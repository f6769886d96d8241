"""VAIM: Variational Autoencoder Inverse Mapper; a forward surrogate θ → densities and an inverse θ ← densities.

References: M. Almaeen, Y. Alanazi, N. Sato, W. Melnitchouk, M. P. Kuchera, Y. Li, "Variational
Autoencoder Inverse Mapper: An End-to-End Deep Learning Framework for Inverse Problems",
IJCNN 2021 (arXiv:2106.01456).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

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
    ) -> None:
        super().__init__()
        self.latent = latent
        self.forward_net = mlp(params, observables + 2 * latent, list(hidden), activation)
        self.backward_net = mlp(observables + latent, params, list(hidden), activation)

    def forward(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Predicted observable, latent mean and log-variance."""
        out = self.forward_net(theta)
        obs, mu, log_var = (
            out[..., : -2 * self.latent],
            *out[..., -2 * self.latent :].chunk(2, dim=-1),
        )
        return obs, mu, log_var.clamp(-10, 5)

    def loss(self, theta: Tensor, obs: Tensor, beta: float = 1.0) -> dict[str, Tensor]:
        pred, mu, log_var = self(theta)
        w = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
        # the backward mapper reads the true observable (as at inversion time), so θ cannot be
        # smuggled through the predicted one: the latent alone must carry what y does not fix
        back = self.backward_net(torch.cat([obs, w], -1))
        forward_loss = (pred - obs).pow(2).mean()
        backward_loss = (back - theta).pow(2).mean()
        kl = (0.5 * (mu**2 + log_var.exp() - 1 - log_var)).sum(-1).mean()
        return {
            "loss": forward_loss + backward_loss + beta * kl,
            "forward_loss": forward_loss,
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

    As an EventSource it samples events from its predicted densities with the package's
    differentiable inverse CDF (so events are differentiable in θ); `log_prob` interpolates the
    same piecewise-linear density; `invert(observable, n)` returns θ samples.

    Args:
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md (set from data.theory).
        grid_size: points of its own x grid (Chebyshev, clustered at both ends); the training
            densities are interpolated onto it from each θ's grid.
        latent: latent dimension; hidden: widths of both mappers; beta: KL weight.
        floor: added to the normalized densities before the log (dynamic-range floor).
        lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps: see `Surrogate`.
    """

    has_density = True

    family = "vaim"

    def __init__(
        self,
        theory: str = "proxy",
        grid_size: int = 128,
        latent: int = 4,
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "silu",
        beta: float = 0.1,
        floor: float = 1e-6,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        optimizer: str = "adam",
        norm_hidden: Sequence[int] = (128, 128, 128),
        norm_weight: float = 1.0,
        norm_steps: int = 20000,
    ) -> None:
        super().__init__(
            theory, lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps, optimizer
        )
        self.save_hyperparameters()
        grid = chebyshev_grid(float(self.x_low[0]), float(self.x_high[0]), grid_size)
        self.register_buffer("grid", torch.as_tensor(grid, dtype=torch.float32))
        self.vaim = VAIMNet(
            len(self.param_names), self.n_channels * grid_size, latent, hidden, activation
        )

    def observable(self, pdf: Tensor) -> Tensor:
        """Normalized grid densities (B, C, G) → the VAIM observable log(p + floor), flattened."""
        return torch.log(pdf + self.hparams.floor).flatten(1)

    def predicted_pdf(self, theta: Tensor) -> Tensor:
        """Predicted normalized densities on the grid, (B, C, G)."""
        obs, _, _ = self.vaim(self.scale_theta(theta))
        pdf = (
            (obs.exp() - self.hparams.floor).clamp(min=0).view(theta.shape[0], self.n_channels, -1)
        )
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
        idx = (torch.searchsorted(self.grid, x.contiguous()) - 1).clamp(0, self.grid.numel() - 2)
        x0, x1 = self.grid[idx], self.grid[idx + 1]
        frac = ((x - x0) / (x1 - x0)).clamp(0, 1).unsqueeze(1)
        i = idx.unsqueeze(1).expand(-1, self.n_channels, -1)
        dens = q.gather(2, i) * (1 - frac) + q.gather(2, i + 1) * frac
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

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        theta = batch["theta"]
        losses = self.vaim.loss(
            self.scale_theta(theta), self.observable(self.training_pdf(batch)), self.hparams.beta
        )
        norm = self.norm_loss(theta, batch["log_norms"])
        losses["loss"] = losses["loss"] + self.hparams.norm_weight * norm
        losses["norm_loss"] = norm
        return losses
