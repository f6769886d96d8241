"""The common base of every surrogate: a LightningModule that is also an EventSource."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from surrogates._version import __version__
from surrogates.errors import InputError, ParameterError, check_choice
from surrogates.sampling import counts_per_channel
from surrogates.theory import get_theory
from surrogates.validation import is_number, non_negative_int, widths

__all__ = ["Surrogate", "mlp", "EVENT_VARIABLES", "BOUNDED_VARIABLES"]

EVENT_VARIABLES = ("logit", "probit", "unit", "root")
BOUNDED_VARIABLES = ("unit", "root")  # y ∈ [0, 1]: bounded splines, uniform base
_UNIT_EPS = 1e-6  # s is kept this far inside [0, 1] (float32 resolves 1 − 1e-6)


# the main optimizer (the norm network fitted alone always uses Adam)
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": lambda params, **kw: torch.optim.SGD(params, momentum=0.9, nesterov=True, **kw),
}


def mlp(
    inputs: int, outputs: int, hidden: Sequence[int], activation: str = "silu"
) -> nn.Sequential:
    """A plain multilayer perceptron."""
    acts = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU}
    check_choice("activation", activation, acts)
    layers: list[nn.Module] = []
    sizes = [inputs, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), acts[activation]()]
    layers.append(nn.Linear(sizes[-1], outputs))
    return nn.Sequential(*layers)


class Surrogate(pl.LightningModule):
    """A learned p̂(x | θ, channel) and ∫σ_c(θ): the EventSource that replaces module-2.

    Subclasses implement `_sample_unit` (events in the event variable y) and, where the model has
    a density, `_log_prob_unit`, plus `training_loss`. This class owns what they share: the
    theory's description (prior box, channels, x range), the conditioning vector, the event
    variable y of s = (x − x_low)/(x_high − x_low) ∈ [0, 1] (`event_variable`: "logit", the
    default, y = logit(s), in which the edges of the densities become exponential tails;
    "probit", y = Φ⁻¹(s), in which a density that is finite at an edge becomes the standard
    normal's tail; "unit", y = s itself, for models with a bounded support; "root",
    y = 1 − √(1 − s), bounded too, in which a zero σ ∝ (1 − s)^b at the upper edge becomes
    (1 − y)^(2b + 1), with a finite slope instead of an infinite one for b < 1), the norm network,
    validation of public inputs, and the optimizer with its scheduler.

    Args:
        theory: the theory the surrogate learns: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md.
        lr: learning rate.
        optimizer: "adam" (default), "adamw" or "sgd" (Nesterov momentum 0.9) for the main networks.
        weight_decay: Adam weight decay.
        scheduler: "cosine" (decay to 1% over max_epochs) or "none".
        norm_hidden: hidden widths of the norm network θ → log ∫σ_c.
        norm_weight: weight of the norm regression loss (when trained jointly, norm_steps = 0).
        norm_steps: if > 0, the norm network is fitted alone to the training set's norms for this
            many Adam steps when training starts, then kept fixed; a plain regression converges
            far better on its own than inside the shape model's optimizer and schedule. These
            steps run before the first epoch, with no progress bar; at 20000 on a CPU they are
            most of a short run's time (a couple of thousand suit a quick try).
        log_theta: names of parameters that the networks also see on a log scale of their
            distance from the box's lower face, log((θ − low)/(high − low) + 0.01) scaled to
            [−1, 1] (`theta_features`): where a density's shape turns on fast near that face (for
            instance the ratio of two normalizations that both approach 0), a linear input needs
            a sharp network.
        norm_log_theta: the norm network reads the ``log_theta`` features too (a normalization
            parameter's log ∫σ_c goes as its log, steep near 0: the shipped flow-zuko's norm
            network, on scaled θ alone, erred by percent there). Off by default so that
            checkpoints saved without it load unchanged.
    """

    family: str = "surrogate"
    event_variable: str = "logit"
    # the logged validation metric that picks best.ckpt: what the surrogate's use depends on
    selection_metric: str = "val_loss"

    def __init__(
        self,
        theory: str = "proxy",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        norm_hidden: Sequence[int] = (128, 128, 128),
        norm_weight: float = 1.0,
        norm_steps: int = 20000,
        optimizer: str = "adam",
        log_theta: Sequence[str] = (),
        norm_log_theta: bool = False,
    ) -> None:
        super().__init__()
        check_choice("optimizer", optimizer, OPTIMIZERS)
        if not is_number(lr) or lr < 0:  # 0 freezes the weights (tests use it); < 0 climbs
            raise InputError(f"model.lr must be a number ≥ 0, got {lr!r}; e.g. model.lr: 0.001")
        if not is_number(weight_decay) or weight_decay < 0:
            raise InputError(f"model.weight_decay must be a number ≥ 0, got {weight_decay!r}")
        widths("model.norm_hidden", list(norm_hidden))
        non_negative_int("model.norm_steps", norm_steps)
        self.optimizer_name = optimizer
        self.norm_steps = norm_steps
        th = get_theory(theory)
        self.theory_name = th.name
        self.param_names = th.param_names
        self.channels = th.channels
        self.event_dim = th.event_dim
        self._theory = th
        log_theta = list(log_theta)
        unknown = [n for n in log_theta if n not in self.param_names]
        if unknown or len(set(log_theta)) != len(log_theta):
            raise InputError(
                f"model.log_theta = {log_theta}: give distinct parameter names of "
                f"'{self.theory_name}' ({', '.join(self.param_names)})"
            )
        self.log_index = [self.param_names.index(n) for n in log_theta]
        # the theory maps its event region onto the unit square (2-D DIS): s is that map, not x
        # scaled to its box
        self.support_map = bool(getattr(th, "support_map", False))
        self.register_buffer("prior_low", th.prior_low.float())
        self.register_buffer("prior_high", th.prior_high.float())
        self.register_buffer("x_low", th.x_low.float())
        self.register_buffer("x_high", th.x_high.float())
        if not isinstance(norm_log_theta, bool):
            raise InputError(f"model.norm_log_theta must be true or false, got {norm_log_theta!r}")
        if norm_log_theta and not self.log_index:
            raise InputError(
                "model.norm_log_theta: true reads the log_theta features, and model.log_theta "
                "names none; name the parameters, e.g. model.log_theta: [N_u, N_d]"
            )
        self.norm_log_theta = norm_log_theta
        norm_inputs = th.n_params + (len(self.log_index) if norm_log_theta else 0)
        self.norm_net = mlp(norm_inputs, th.n_channels, list(norm_hidden))
        self.register_buffer("norms_fitted", torch.tensor(False))

    def check_training_set(self, has_density: bool) -> None:
        """Refuse settings the training set cannot serve, before anything is written.

        ``has_density``: whether the set tabulates σ_c on a grid (a density theory's set) or
        holds events and rates only (an event generator's). Families that need the densities
        for a setting (`needs_density`) raise an `InputError` naming the setting to change.
        """
        if has_density:
            return
        for setting, fix in self.needs_density():
            raise InputError(
                f"model.{setting} needs the training set's densities, and this set has none "
                f"(events and rates only, from an event generator): set model.{fix}"
            )

    def needs_density(self) -> list[tuple[str, str]]:
        """The settings of this model that read the training set's densities, each with its
        density-free alternative: [("resample_events: 64", "resample_events: 0"), ...]."""
        return []

    def training_events(self, batch: dict[str, Tensor], resample: int = 0) -> Tensor:
        """Events (B, C, k, d) for an event-based loss: the batch's own, or with ``resample`` > 0
        while training, that many fresh events per θ and channel drawn from the batch's
        tabulated densities (piecewise linear between the nodes of each θ's grid, stratified in
        the CDF).

        A training set holds ~10 events per θ but its densities on the grid describe every
        event: redrawing them each step turns a fixed, small sample into an unlimited one (the
        same information the flow's pdf objective uses).
        """
        if resample <= 0 or not self.training:
            return batch["events"]
        if self.event_dim != 1:
            raise InputError(
                "resample_events needs 1-D events (its densities are tabulated on a 1-D grid); "
                "set resample_events: 0"
            )
        from surrogates.sampling import grid_cdf, invert_cdf

        pdf = batch["pdf"]
        b, c = pdf.shape[:2]
        grid = batch["grid"][..., 0].to(pdf).repeat_interleave(c, 0)  # each θ's grid, per channel
        q, cdf = grid_cdf(grid, pdf.reshape(b * c, -1))  # every θ and channel in one pass
        u = torch.arange(resample, device=pdf.device) + torch.rand(b * c, resample).to(pdf)
        x = invert_cdf(grid, q, cdf, u / resample)
        return x.view(b, c, resample, 1).to(batch["events"].dtype)

    # ------------------------------------------------------------------ conditioning
    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def feature_dim(self) -> int:
        """Length of `theta_features`: P scaled parameters and L log features."""
        return len(self.param_names) + len(self.log_index)

    @property
    def context_dim(self) -> int:
        return self.feature_dim + self.n_channels

    def scale_theta(self, theta: Tensor) -> Tensor:
        """θ mapped from the prior box to [−1, 1]."""
        return 2 * (theta - self.prior_low) / (self.prior_high - self.prior_low) - 1

    LOG_OFFSET = 0.01  # log_theta's offset, in units of the parameter's range

    def theta_features(self, theta: Tensor) -> Tensor:
        """What the networks read of θ: scaled θ, then its ``log_theta`` features, (..., P + L)."""
        scaled = self.scale_theta(theta)
        if not self.log_index:
            return scaled
        j = self.log_index
        low, high = self.prior_low[j], self.prior_high[j]
        u = (theta[..., j] - low) / (high - low)
        lo, hi = math.log(self.LOG_OFFSET), math.log(1 + self.LOG_OFFSET)
        feats = 2 * (torch.log(u.clamp(min=0) + self.LOG_OFFSET) - lo) / (hi - lo) - 1
        return torch.cat([scaled, feats.to(scaled.dtype)], dim=-1)

    def context(self, theta: Tensor, channel: Tensor) -> Tensor:
        """Conditioning vector: `theta_features` and the one-hot channel, shape (..., P + L + C)."""
        onehot = nn.functional.one_hot(channel.long(), self.n_channels).to(theta.dtype)
        return torch.cat([self.theta_features(theta), onehot], dim=-1)

    def event_context(self, theta: Tensor, channel: int, n: int) -> Tensor:
        """The conditioning vector repeated for n events per θ of one channel: (B, n, P + L + C)."""
        ch = torch.full((theta.shape[0],), channel, device=theta.device)
        return self.context(theta, ch).unsqueeze(1).expand(-1, n, -1)

    # ------------------------------------------------------------------ event variable
    def to_unit(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The event variable y of s ∈ [0, 1]^d and log|dy/dx| (summed over event dims).

        s = (x − lo)/(hi − lo), or the theory's map of its event region onto the unit square
        (`DISTheory.support_to_unit`) when it has one; then logit: y = log s − log(1 − s);
        probit: y = Φ⁻¹(s); unit: y = s; root: y = 1 − √(1 − s).
        """
        if self.support_map:
            s, log_jac = self._theory.support_to_unit(x)
        else:
            span = self.x_high - self.x_low
            s = (x - self.x_low) / span
            log_jac = -torch.log(span).sum(-1).expand(s.shape[:-1])
        y, log_dy = self._y_of_s(s)
        return y, log_jac + log_dy

    def _y_of_s(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """The event variable y of s ∈ [0, 1]^d and log|dy/ds| summed over dims."""
        if self.event_variable == "logit":
            s = s.clamp(1e-7, 1 - 1e-7)
            return torch.log(s) - torch.log1p(-s), -(torch.log(s) + torch.log1p(-s)).sum(-1)
        if self.event_variable == "probit":
            s = s.clamp(1e-7, 1 - 1e-7)
            y = torch.special.ndtri(s)
            return y, (0.5 * y**2 + 0.5 * math.log(2 * math.pi)).sum(-1)  # dy/ds = 1/φ(y)
        s = s.clamp(_UNIT_EPS, 1 - _UNIT_EPS)
        if self.event_variable == "root":  # dy/ds = 1/(2√(1 − s))
            r = torch.sqrt(1 - s)
            return 1 - r, -(torch.log(2 * r)).sum(-1)
        return s, torch.zeros_like(s[..., 0])

    def from_unit(self, y: Tensor) -> Tensor:
        """x of the event variable y, the inverse of `to_unit`."""
        if self.event_variable == "logit":
            s = torch.sigmoid(y)
        elif self.event_variable == "probit":
            s = torch.special.ndtr(y)
        elif self.event_variable == "root":
            s = 1 - (1 - y.clamp(0.0, 1.0)) ** 2
        else:
            s = y.clamp(0.0, 1.0)
        if self.support_map:
            return self._theory.support_from_unit(s)[0]
        return self.x_low + (self.x_high - self.x_low) * s

    # ------------------------------------------------------------------ EventSource
    def check_theta(self, theta: Tensor) -> Tensor:
        """θ as a (B, P) float tensor on this device, or a `ParameterError` naming the problem."""
        t = torch.as_tensor(theta)
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[-1] != len(self.param_names):
            raise ParameterError(
                f"theta has shape {tuple(t.shape)}; this {self.family} surrogate of "
                f"'{self.theory_name}' expects (B, {len(self.param_names)})"
            )
        if not torch.isfinite(t).all():
            raise ParameterError("theta contains NaN or inf; pass finite parameter values")
        low, high = self.prior_low.to(t), self.prior_high.to(t)
        tol = 1e-6 * (high - low)
        outside = ((t < low - tol) | (t > high + tol)).any(0)
        if outside.any():
            j = int(outside.nonzero()[0])
            raise ParameterError(
                f"{self.param_names[j]} outside the box [{float(low[j]):g}, {float(high[j]):g}] "
                f"this surrogate was trained on; retrain it on a wider prior"
            )
        return t.to(self.prior_low.device)

    is_exact = False
    n_members = 1
    has_density = False  # families with a normalized log_prob (flow, VAIM) declare True

    def norms(self, theta: Tensor) -> Tensor:
        """Predicted ∫σ_c dx, shape (B, C), differentiable with respect to θ."""
        t = self.check_theta(theta)
        return self.log_norms(t.to(self.prior_low.dtype)).exp().to(t.dtype)

    def log_norms(self, theta: Tensor) -> Tensor:
        """The norm network's log ∫σ_c, (B, C): it reads scaled θ, and the ``log_theta`` features
        with ``norm_log_theta``."""
        x = self.theta_features(theta) if self.norm_log_theta else self.scale_theta(theta)
        return self.norm_net(x)

    def sample(
        self, theta: Tensor, n: int | Sequence[int], generator: torch.Generator | None = None
    ) -> tuple[Tensor, ...]:
        """Events per channel, each (B, n_c, event_dim), reparameterized (differentiable in θ)."""
        t = self.check_theta(theta)
        counts = counts_per_channel(n, self.n_channels)
        tf = t.to(self.prior_low.dtype)
        out = []
        for c, n_c in enumerate(counts):
            y = self._sample_unit(tf, c, n_c, generator)  # (B, n_c, d)
            out.append(self.from_unit(y).to(t.dtype))
        return tuple(out)

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """log p̂_c(x | θ) for every channel, x (B, n, event_dim) → (B, C, n)."""
        t = self.check_theta(theta).to(self.prior_low.dtype)
        x = torch.as_tensor(x, dtype=t.dtype, device=t.device)
        if x.dim() == 2:
            x = x.unsqueeze(-1)
        if x.dim() != 3 or x.shape[-1] != self.event_dim or x.shape[0] not in (1, t.shape[0]):
            raise ParameterError(f"x has shape {tuple(x.shape)}; expected (B, n, {self.event_dim})")
        x = x.expand(t.shape[0], -1, -1)
        y, log_jac = self.to_unit(x)
        return torch.stack(
            [self._log_prob_unit(y, t, c) + log_jac for c in range(self.n_channels)], dim=1
        )

    def _sample_unit(
        self, theta: Tensor, channel: int, n: int, generator: torch.Generator | None
    ) -> Tensor:
        raise NotImplementedError

    def _log_prob_unit(self, y: Tensor, theta: Tensor, channel: int) -> Tensor:
        raise NotImplementedError(f"the {self.family} surrogate has no density")

    # ------------------------------------------------------------------ checkpoints
    def zoo_metadata(self) -> dict:
        """What a checkpoint must carry to be loaded safely: family, backend, theory, version."""
        th = get_theory(self.theory_name)
        return {
            "family": self.family,
            "backend": getattr(self, "backend", None),
            "theory": th.describe(),
            "version": __version__,
        }

    def stored_hparams(self) -> dict:
        """The hyperparameters a checkpoint stores: the theory by its registry name, not as the
        user typed it (a card's path or module:attribute), so a checkpoint loads wherever that
        theory is registered or installed, whatever path named it when it was trained."""
        hparams = dict(self.hparams)
        if "theory" in hparams:
            hparams["theory"] = self.theory_name
        return hparams

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["surrogate_zoo"] = self.zoo_metadata()
        if "hyper_parameters" in checkpoint:
            checkpoint["hyper_parameters"] = self.stored_hparams()

    # ------------------------------------------------------------------ training
    def norm_loss(self, theta: Tensor, log_norms: Tensor) -> Tensor:
        if self.norm_steps > 0:  # fitted on its own at the start; only monitored here
            with torch.no_grad():
                return nn.functional.mse_loss(self.log_norms(theta), log_norms)
        return nn.functional.mse_loss(self.log_norms(theta), log_norms)

    def fit_norms(
        self, theta: Tensor, log_norms: Tensor, steps: int, batch: int = 512, lr: float = 3e-3
    ) -> float:
        """Fit the norm network alone: Adam with cosine decay on (θ, log ∫σ_c); returns the last MSE."""
        opt = torch.optim.Adam(self.norm_net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 100)
        gen = torch.Generator().manual_seed(0)
        loss = torch.zeros(())
        frozen = not next(self.norm_net.parameters()).requires_grad
        self.norm_net.requires_grad_(True)
        with torch.enable_grad():
            for _ in range(steps):
                idx = torch.randint(0, len(theta), (min(batch, len(theta)),), generator=gen)
                loss = nn.functional.mse_loss(self.log_norms(theta[idx]), log_norms[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        self.norm_net.requires_grad_(not frozen)
        self.norms_fitted.fill_(True)
        return float(loss.detach())

    def setup(self, stage: str) -> None:
        # A norm network fitted on its own takes no part in the main loss: frozen before the
        # strategy wraps the model, so that DDP sees only the parameters the loss uses.
        if self.norm_steps > 0:
            self.norm_net.requires_grad_(False)

    def on_fit_start(self) -> None:
        data = getattr(self.trainer, "datamodule", None)
        training_set = getattr(data, "training_set", None)
        if training_set is not None:  # from Python as from the CLI: no KeyError on "pdf" later
            self.check_training_set(training_set.has_density)
        if self.norm_steps <= 0 or bool(self.norms_fitted) or data is None:
            return
        train = data.train_set
        self.print(
            f"fitting the norm network alone first: {self.norm_steps} Adam steps before the first "
            "epoch, no progress bar (model.norm_steps; 0 trains it jointly, ~2000 suit a quick try)"
        )
        mse = self.fit_norms(
            train.theta.to(self.device), train.log_norms.to(self.device), self.norm_steps
        )
        self.print(
            f"norm network fitted on its own: {self.norm_steps} steps, MSE(log norm) {mse:.2e}"
        )

    def shape_parameters(self) -> list[nn.Parameter]:
        """Parameters the main optimizer trains (all but the norm network when it is fitted alone)."""
        if self.norm_steps > 0:
            return [p for n, p in self.named_parameters() if not n.startswith("norm_net.")]
        return list(self.parameters())

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = self.training_loss(batch)
        self.log_dict(
            {f"train_{k}": v for k, v in losses.items()},
            prog_bar=True,
            on_epoch=True,
            on_step=False,
            sync_dist=True,  # averaged over processes under DDP
        )
        return losses["loss"]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        losses = self.training_loss(batch)
        self.log_dict({f"val_{k}": v for k, v in losses.items()}, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union of return types
        opt = OPTIMIZERS[self.optimizer_name](
            self.shape_parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.scheduler == "none":
            return opt
        check_choice("scheduler", self.hparams.scheduler, ("cosine", "none"))
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=epochs, eta_min=self.hparams.lr / 100
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
