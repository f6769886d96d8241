"""Conditional normalizing-flow surrogate p̂(x | θ, channel): neural spline flows from zuko, nflows or normflows.

References: C. Durkan et al., "Neural Spline Flows", NeurIPS 2019 (arXiv:1906.04032).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from surrogates.errors import InputError
from surrogates.models.base import Surrogate

__all__ = ["FlowSurrogate", "BACKENDS"]


class _Backend(nn.Module):
    """A conditional flow on R^d: log_prob(y, context) and inverse(z, context) → y."""

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        raise NotImplementedError


class _Zuko(_Backend):
    def __init__(
        self,
        dim: int,
        context: int,
        transforms: int,
        bins: int,
        hidden: Sequence[int],
        tail_bound: float,
    ) -> None:
        super().__init__()
        import zuko

        self.flow = zuko.flows.NSF(
            features=dim,
            context=context,
            transforms=transforms,
            bins=bins,
            hidden_features=list(hidden),
        )
        self.bound = tail_bound

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        # zuko's spline acts on [−5, 5]; scale the event variable into it
        s = 5.0 / self.bound
        return self.flow(context).log_prob(y * s) + y.shape[-1] * torch.log(torch.tensor(s))

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        return self.flow(context).transform.inv(z) * (self.bound / 5.0)


class _Nflows(_Backend):
    def __init__(
        self,
        dim: int,
        context: int,
        transforms: int,
        bins: int,
        hidden: Sequence[int],
        tail_bound: float,
    ) -> None:
        super().__init__()
        from nflows.distributions import StandardNormal
        from nflows.flows import Flow
        from nflows.transforms import CompositeTransform
        from nflows.transforms import (
            MaskedPiecewiseRationalQuadraticAutoregressiveTransform as Spline,
        )

        layers = [
            Spline(
                features=dim,
                hidden_features=hidden[0],
                context_features=context,
                num_blocks=max(len(hidden) - 1, 1),
                num_bins=bins,
                tails="linear",
                tail_bound=tail_bound,
            )
            for _ in range(transforms)
        ]
        self.flow = Flow(CompositeTransform(layers), StandardNormal([dim]))

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        return self.flow.log_prob(y, context=context)

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        return self.flow._transform.inverse(z, context=context)[0]


class _Normflows(_Backend):
    def __init__(
        self,
        dim: int,
        context: int,
        transforms: int,
        bins: int,
        hidden: Sequence[int],
        tail_bound: float,
    ) -> None:
        super().__init__()
        import normflows as nf

        flows = [
            nf.flows.AutoregressiveRationalQuadraticSpline(
                dim,
                max(len(hidden) - 1, 1),
                hidden[0],
                num_context_channels=context,
                num_bins=bins,
                tail_bound=tail_bound,
                init_identity=False,
            )
            for _ in range(transforms)
        ]
        self.flow = nf.ConditionalNormalizingFlow(
            nf.distributions.DiagGaussian(dim, trainable=False), flows
        )

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        return self.flow.log_prob(y, context=context)

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        for layer in self.flow.flows:
            z, _ = layer(z, context=context)
        return z


BACKENDS: dict[str, Callable[..., _Backend]] = {
    "zuko": _Zuko,
    "nflows": _Nflows,
    "normflows": _Normflows,
}


class FlowSurrogate(Surrogate):
    """Conditional neural spline flow over the event variable y = logit of x in its range.

    Args:
        theory: registry name of the theory.
        backend: "zuko" (maintained, default), "nflows" or "normflows".
        objective: "events" (maximum likelihood on sampled events) or "pdf" (cross-entropy
            against the exact normalized densities on the training set's x grid, lower variance).
        transforms: number of autoregressive spline transforms.
        bins: spline bins per transform.
        hidden: hidden widths of each transform's conditioner.
        tail_bound: half-width of the spline interval in y (linear tails outside).
        lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps: see `Surrogate`.

    >>> flow = FlowSurrogate(transforms=1, bins=4, hidden=(8, 8))
    >>> s1, s2 = flow.sample(flow.prior_low + 0.5 * (flow.prior_high - flow.prior_low), 10)
    >>> s1.shape, bool(((s1 >= 0.1) & (s1 <= 1.0)).all())
    (torch.Size([1, 10, 1]), True)
    """

    family = "flow"

    def __init__(
        self,
        theory: str = "proxy",
        backend: str = "zuko",
        objective: str = "events",
        transforms: int = 4,
        bins: int = 16,
        hidden: Sequence[int] = (128, 128),
        tail_bound: float = 10.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        norm_hidden: Sequence[int] = (128, 128, 128),
        norm_weight: float = 1.0,
        norm_steps: int = 20000,
    ) -> None:
        super().__init__(theory, lr, weight_decay, scheduler, norm_hidden, norm_weight, norm_steps)
        self.save_hyperparameters()
        if backend not in BACKENDS:
            raise InputError(
                f"unknown flow backend '{backend}'; choose one of {', '.join(BACKENDS)}"
            )
        if objective not in ("events", "pdf"):
            raise InputError(f"unknown objective '{objective}'; choose events or pdf")
        self.backend = backend
        self.objective = objective
        self.net = BACKENDS[backend](
            self.event_dim, self.context_dim, transforms, bins, list(hidden), tail_bound
        )

    def _flat_context(self, theta: Tensor, channel: int, n: int) -> Tensor:
        return self.event_context(theta, channel, n).reshape(theta.shape[0] * n, -1)

    def _sample_unit(
        self, theta: Tensor, channel: int, n: int, generator: torch.Generator | None
    ) -> Tensor:
        b = theta.shape[0]
        z = torch.randn(b * n, self.event_dim, generator=generator, dtype=theta.dtype).to(
            theta.device
        )
        return self.net.inverse(z, self._flat_context(theta, channel, n)).view(b, n, self.event_dim)

    def _log_prob_unit(self, y: Tensor, theta: Tensor, channel: int) -> Tensor:
        b, n, d = y.shape
        return self.net.log_prob(y.reshape(b * n, d), self._flat_context(theta, channel, n)).view(
            b, n
        )

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        theta = batch["theta"]
        terms = []
        for c in range(self.n_channels):
            if self.objective == "events":
                y, log_jac = self.to_unit(batch["events"][:, c])
                terms.append(-(self._log_prob_unit(y, theta, c) + log_jac).mean())
            else:
                y, log_jac = self.to_unit(
                    batch["grid"][0].unsqueeze(0).expand(theta.shape[0], -1, -1)
                )
                logq = self._log_prob_unit(y, theta, c) + log_jac
                # cross-entropy −∫ p log q dx with the grid's quadrature weights
                terms.append(-(batch["weights"][0] * batch["pdf"][:, c] * logq).sum(-1).mean())
        shape = torch.stack(terms).sum()
        norm = self.norm_loss(theta, batch["log_norms"])
        return {
            "loss": shape + self.hparams.norm_weight * norm,
            "shape_loss": shape,
            "norm_loss": norm,
        }
