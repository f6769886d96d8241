"""Conditional VAE event generator: y ~ p(y | w, θ, channel), w ~ N(0, I).

References: D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(arXiv:1312.6114); K. Sohn et al., "Learning Structured Output Representation using Deep
Conditional Generative Models", NeurIPS 2015 (the conditional VAE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from surrogates.models.base import Surrogate, mlp

__all__ = ["VAESurrogate"]


class VAESurrogate(Surrogate):
    """Conditional VAE whose decoder generates events given θ and the channel.

    The decoder is Gaussian in the event variable y with a learned mean and width per latent w;
    sampling is reparameterized (w and the decoder noise are standard normals), so events are
    differentiable in θ. It has no closed-form density (`log_prob` is not available).

    Args:
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md (set from data.theory).
        latent: latent dimension.
        hidden: encoder and decoder widths.
        beta: weight of the KL term.
        resample_events: > 0: train on this many events per θ and channel drawn afresh each step
            from the training set's tabulated densities (`Surrogate.training_events`); 0: on the
            set's own events.
        lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps, log_theta,
            norm_log_theta: see `Surrogate` (the networks read `theta_features`).

    >>> vae = VAESurrogate(hidden=(8,))
    >>> vae.sample(vae.prior_low + 0.5 * (vae.prior_high - vae.prior_low), 4)[1].shape
    torch.Size([1, 4, 1])
    """

    family = "vae"

    def __init__(
        self,
        theory: str = "proxy",
        latent: int = 2,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "silu",
        beta: float = 1.0,
        resample_events: int = 0,
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
        self.encoder = mlp(self.event_dim + self.context_dim, 2 * latent, list(hidden), activation)
        self.decoder = mlp(latent + self.context_dim, 2 * self.event_dim, list(hidden), activation)

    def needs_density(self) -> list[tuple[str, str]]:
        k = self.hparams.resample_events
        if k > 0:
            return [(f"resample_events: {k}", "resample_events: 0 (train on the set's own events)")]
        return []

    def _decode(self, w: Tensor, ctx: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.decoder(torch.cat([w, ctx], -1)).chunk(2, dim=-1)
        return mean, log_std.clamp(-7.0, 3.0)

    def _sample_unit(
        self, theta: Tensor, channel: int, n: int, generator: torch.Generator | None
    ) -> Tensor:
        b, d = theta.shape[0], self.event_dim
        w = torch.randn(b, n, self.hparams.latent, generator=generator, dtype=theta.dtype).to(
            theta.device
        )
        eps = torch.randn(b, n, d, generator=generator, dtype=theta.dtype).to(theta.device)
        mean, log_std = self._decode(w, self.event_context(theta, channel, n))
        return mean + log_std.exp() * eps

    @property
    def noise_dim(self) -> int:
        """Standard normals per event: the latent w, then the decoder's Gaussian in y."""
        return int(self.hparams.latent) + self.event_dim

    def unit_from_normals(self, theta: Tensor, channel: int, normals: Tensor) -> Tensor:
        """Events in the unit variable from given standard normals (B, n, `noise_dim`): the
        sampler with its randomness handed in (quasi-Monte Carlo histograms, benchmarks)."""
        latent = int(self.hparams.latent)
        w, eps = normals[..., :latent], normals[..., latent:]
        mean, log_std = self._decode(w, self.event_context(theta, channel, normals.shape[1]))
        return mean + log_std.exp() * eps

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        theta = batch["theta"]
        events = self.training_events(batch, self.hparams.resample_events)
        k = events.shape[2]
        recon = kl = torch.zeros((), device=theta.device)
        for c in range(self.n_channels):
            y, _ = self.to_unit(events[:, c])
            ctx = self.event_context(theta, c, k)
            mu, log_var = self.encoder(torch.cat([y, ctx], -1)).chunk(2, dim=-1)
            w = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
            mean, log_std = self._decode(w, ctx)
            nll = 0.5 * ((y - mean) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
            recon = recon + nll.sum(-1).mean()
            kl = kl + (0.5 * (mu**2 + log_var.exp() - 1 - log_var)).sum(-1).mean()
        norm = self.norm_loss(theta, batch["log_norms"])
        loss = recon + self.hparams.beta * kl + self.hparams.norm_weight * norm
        return {"loss": loss, "recon_loss": recon, "kl": kl, "norm_loss": norm}
