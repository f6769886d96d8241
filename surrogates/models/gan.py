"""Conditional GAN event generator: y = G(z, θ, channel), trained against sampled events.

References: I. Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017
(arXiv:1704.00028); A. Gretton et al., "A Kernel Two-Sample Test", JMLR 13 (2012) (the MMD term).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from surrogates.errors import InputError, check_choice
from surrogates.models.base import OPTIMIZERS, Surrogate, mlp

__all__ = ["GANSurrogate", "energy_to_logistic", "mmd"]


def mmd(a: Tensor, b: Tensor, scales: Sequence[float] = (0.1, 0.3, 1.0, 3.0)) -> Tensor:
    """Unbiased squared maximum mean discrepancy per row, Gaussian kernels: a (B, n, d), b (B, m, d)
    → (B,), n, m ≥ 2.

    The within-sample terms leave out the diagonal (Gretton et al.'s U-statistic). With it, the
    generator's self-term would carry weight (n − 1)/n against the cross term, and its optimum
    would be a distribution narrower than the data's by a bias of order 1/n.
    """

    def k(x: Tensor, y: Tensor) -> Tensor:
        d2 = torch.cdist(x, y).pow(2)
        return sum(torch.exp(-d2 / (2 * s * s)) for s in scales)

    def within(x: Tensor) -> Tensor:
        n = x.shape[-2]
        kxx = k(x, x)
        return (kxx.sum((-1, -2)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))

    return within(a) + within(b) - 2 * k(a, b).mean((-1, -2))


def energy_to_logistic(w: Tensor) -> Tensor:
    """Unbiased energy distance of samples w (B, m), m ≥ 2, to the standard logistic law, per row.

    The energy distance 2E|w − W| − E|w − w'| − E|W − W'| is the MMD of the kernel −|a − b|; in
    one dimension it is 2∫(G − Λ)², zero only when G = Λ. Against the logistic W it needs no
    sample: E|w − W| = w + 2 log(1 + e^−w) and E|W − W'| = 2. The self-term is the U-statistic
    over pairs i ≠ j (from the sorted w: Σ_{i<j} |w_i − w_j| = Σ_k w_(k) (2k − m − 1)), so the
    estimate is unbiased for every G and its expected minimum is G = Λ exactly.
    """
    m = w.shape[-1]
    cross = (w + 2 * nn.functional.softplus(-w)).mean(-1)
    ranks = torch.arange(1, m + 1, device=w.device, dtype=w.dtype)
    pairs = (w.sort(-1).values * (2 * ranks - m - 1)).sum(-1) / (m * (m - 1) / 2)
    return 2 * cross - pairs - 2


class GANSurrogate(Surrogate):
    """Conditional WGAN-GP (or least-squares GAN) over the event variable y, with an MMD term.

    Args:
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md (set from data.theory).
        latent: noise dimension of the generator.
        hidden: generator widths; critic_hidden: critic widths.
        loss: "wgan-gp" or "lsgan".
        gp_weight: gradient-penalty weight (WGAN-GP).
        n_critic: critic updates per generator update.
        mmd_weight: weight of the MMD between generated and real events of the same θ.
        mmd_target: "events": that MMD (Gaussian kernels) against real events; "pdf": the energy
            distance (the MMD of the kernel −|a − b|) against the training set's tabulated
            density itself, after the probability-integral transform w = logit F_θ(x)
            (`energy_to_logistic`): no real-event noise, unbiased, and with the weight of an
            Anderson–Darling test in the tails (1-D events).
        fake_per_real: generated events per real event in each step.
        resample_events: > 0: the real events are this many per θ and channel drawn afresh each
            step from the training set's tabulated densities (`Surrogate.training_events`).
        lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps, log_theta,
            norm_log_theta: see `Surrogate` (the networks read `theta_features`).

    >>> gan = GANSurrogate(hidden=(8,), critic_hidden=(8,))
    >>> gan.sample(gan.prior_low + 0.5 * (gan.prior_high - gan.prior_low), 4)[0].shape
    torch.Size([1, 4, 1])
    """

    family = "gan"

    def __init__(
        self,
        theory: str = "proxy",
        latent: int = 4,
        hidden: Sequence[int] = (128, 128, 128),
        critic_hidden: Sequence[int] = (128, 128, 128),
        activation: str = "silu",
        loss: str = "wgan-gp",
        gp_weight: float = 10.0,
        n_critic: int = 3,
        mmd_weight: float = 10.0,
        mmd_target: str = "events",
        fake_per_real: int = 4,
        resample_events: int = 0,
        lr: float = 2e-4,
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
        check_choice("GAN loss", loss, ("wgan-gp", "lsgan"))
        check_choice("gan.mmd_target", mmd_target, ("events", "pdf"))
        if mmd_target == "pdf" and self.event_dim != 1:
            raise InputError("mmd_target: pdf needs 1-D events; set mmd_target: events")
        self.automatic_optimization = False
        self.generator = mlp(latent + self.context_dim, self.event_dim, list(hidden), activation)
        self.critic = mlp(
            self.event_dim + self.context_dim, 1, list(critic_hidden), activation="elu"
        )

    def needs_density(self) -> list[tuple[str, str]]:
        hp, out = self.hparams, []
        if hp.resample_events > 0:
            out.append(
                (
                    f"resample_events: {hp.resample_events}",
                    "resample_events: 0 (train on the set's own events)",
                )
            )
        if hp.mmd_target == "pdf":
            out.append(("mmd_target: pdf", "mmd_target: events"))
        return out

    def _sample_unit(
        self, theta: Tensor, channel: int, n: int, generator: torch.Generator | None
    ) -> Tensor:
        z = torch.randn(
            theta.shape[0], n, self.hparams.latent, generator=generator, dtype=theta.dtype
        )
        return self.unit_from_normals(theta, channel, z.to(theta.device))

    @property
    def noise_dim(self) -> int:
        """Standard normals per event: the generator's latent."""
        return int(self.hparams.latent)

    def unit_from_normals(self, theta: Tensor, channel: int, normals: Tensor) -> Tensor:
        """Events in the unit variable from given standard normals (B, n, `noise_dim`): the
        sampler with its randomness handed in (quasi-Monte Carlo histograms, benchmarks)."""
        n = normals.shape[1]
        return self.generator(torch.cat([normals, self.event_context(theta, channel, n)], -1))

    def _critic_loss(self, real: Tensor, fake: Tensor, ctx_r: Tensor, ctx_f: Tensor) -> Tensor:
        d_real = self.critic(torch.cat([real, ctx_r], -1))
        d_fake = self.critic(torch.cat([fake, ctx_f], -1))
        if self.hparams.loss == "lsgan":
            return ((d_real - 1) ** 2).mean() + (d_fake**2).mean()
        # gradient penalty on interpolates between real and (a subset of) fake events
        fk = fake[:, : real.shape[1]]
        eps = torch.rand(real.shape[0], real.shape[1], 1, device=real.device)
        mix = (eps * real + (1 - eps) * fk).requires_grad_(True)
        d_mix = self.critic(torch.cat([mix, ctx_r], -1))
        (grad,) = torch.autograd.grad(d_mix.sum(), mix, create_graph=True)
        gp = ((grad.norm(dim=-1) - 1) ** 2).mean()
        return d_fake.mean() - d_real.mean() + self.hparams.gp_weight * gp

    def _shape_distance(
        self, batch: dict[str, Tensor], channel: int, real: Tensor, fake: Tensor
    ) -> Tensor:
        """The MMD term per θ (B,): against the real events, or (mmd_target: pdf) the energy
        distance of logit F_θ(x_fake) to the logistic law, F_θ from the batch's tabulated density."""
        if self.hparams.mmd_target == "events":
            return mmd(fake, real)
        from surrogates.sampling import eval_cdf, grid_cdf

        grid = batch["grid"][..., 0].double()  # (B, G): each θ's own grid
        q, cdf = grid_cdf(grid, batch["pdf"][:, channel].double())
        u = eval_cdf(grid, q, cdf, self.from_unit(fake)[..., 0].double())
        u = u.clamp(1e-12, 1 - 1e-12)
        return energy_to_logistic(torch.log(u) - torch.log1p(-u)).to(fake.dtype)

    def _generator_loss(
        self, batch: dict[str, Tensor], channel: int, real: Tensor, fake: Tensor, ctx_f: Tensor
    ) -> Tensor:
        d_fake = self.critic(torch.cat([fake, ctx_f], -1))
        adv = ((d_fake - 1) ** 2).mean() if self.hparams.loss == "lsgan" else -d_fake.mean()
        shape = self._shape_distance(batch, channel, real, fake).mean()
        return adv + self.hparams.mmd_weight * shape

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        theta = batch["theta"]
        events = self.training_events(batch, self.hparams.resample_events)
        k = events.shape[2]
        m = k * self.hparams.fake_per_real
        d_loss = g_loss = torch.zeros((), device=theta.device)
        for c in range(self.n_channels):
            real, _ = self.to_unit(events[:, c])
            ctx_r, ctx_f = self.event_context(theta, c, k), self.event_context(theta, c, m)
            for _ in range(self.hparams.n_critic):
                fake = self._sample_unit(theta, c, m, None).detach()
                loss_d = self._critic_loss(real, fake, ctx_r, ctx_f)
                opt_d.zero_grad()
                self.manual_backward(loss_d)
                opt_d.step()
            fake = self._sample_unit(theta, c, m, None)
            loss_g = self._generator_loss(batch, c, real, fake, ctx_f)
            if c == 0:
                loss_g = loss_g + self.hparams.norm_weight * self.norm_loss(
                    theta, batch["log_norms"]
                )
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()
            d_loss, g_loss = d_loss + loss_d.detach(), g_loss + loss_g.detach()
        self.log_dict(
            {"train_d_loss": d_loss, "train_g_loss": g_loss},
            prog_bar=True,
            on_epoch=True,
            on_step=False,
            sync_dist=True,
        )

    def on_train_epoch_end(self) -> None:
        for sched in self.lr_schedulers() or []:
            sched.step()

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Validation score: the MMD term of training (per θ, summed over channels) plus the norm
        loss."""
        theta = batch["theta"]
        k = batch["events"].shape[2]
        shape = sum(
            self._shape_distance(
                batch,
                c,
                self.to_unit(batch["events"][:, c])[0],
                self._sample_unit(theta, c, k * self.hparams.fake_per_real, None),
            ).mean()
            for c in range(self.n_channels)
        )
        norm = self.norm_loss(theta, batch["log_norms"])
        return {
            "loss": shape + self.hparams.norm_weight * norm,
            "shape_loss": shape,
            "norm_loss": norm,
        }

    def configure_optimizers(self):  # noqa: ANN201
        hp = self.hparams
        gen_params = [
            p for p in self.shape_parameters() if not any(p is q for q in self.critic.parameters())
        ]
        if self.optimizer_name == "sgd":
            make = OPTIMIZERS["sgd"]
        else:  # Adam(W) with the β₁ = 0.5 that WGAN-GP training wants
            adam = torch.optim.Adam if self.optimizer_name == "adam" else torch.optim.AdamW
            make = functools.partial(adam, betas=(0.5, 0.9))
        opt_g = make(gen_params, lr=hp.lr, weight_decay=hp.weight_decay)
        opt_d = make(self.critic.parameters(), lr=hp.lr, weight_decay=0.0)
        if hp.scheduler == "none":
            return [opt_g, opt_d]
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        scheds = [
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs, eta_min=hp.lr / 100)
            for o in (opt_g, opt_d)
        ]
        return [opt_g, opt_d], scheds
