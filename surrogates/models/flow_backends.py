"""Every touch of the flow libraries' internals: one conditional spline flow per backend (zuko,
nflows, normflows) behind one small interface, so the flow surrogate never sees which one it has.

References: C. Durkan et al., "Neural Spline Flows", NeurIPS 2019 (arXiv:1906.04032).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["BACKENDS", "FlowBackend"]


class FlowBackend(nn.Module):
    """A conditional flow: log_prob(y, context) and inverse(z, context) → y, z standard normal.

    With ``bounded`` the flow lives on the unit box [0, 1]^d: a uniform base and splines without
    tails whose boundary slopes are learned, so that a density that is finite and nonzero at an
    edge of the x range needs no tail; `inverse` still takes standard-normal z (mapped to the
    uniform base by Φ), so that sampling is the same for every backend. Otherwise the flow is on
    R^d with a standard-normal base and linear tails outside ±tail_bound.

    y and z are (N, d) with context (N, c); a backend with ``broadcasts`` also takes y, z
    (B, n, d) with context (B, 1, c) and returns (B, n) log densities or (B, n, d) events.
    """

    broadcasts = False

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        raise NotImplementedError


def _zuko_bounded_rqs() -> type:
    """zuko's monotonic rational-quadratic spline on [−bound, bound] with learned end slopes.

    zuko's `MonotonicRQSTransform` fixes the slope at both ends to 1 (it is the identity outside);
    on a bounded domain with a uniform base those end slopes set the density at the edges, so here
    they are parameters too: ``derivatives`` has bins + 1 entries instead of bins − 1.
    """
    import math

    import torch.nn.functional as F
    from zuko.transforms import MonotonicRQSTransform

    class BoundedRQSTransform(MonotonicRQSTransform):
        def __init__(
            self,
            widths: Tensor,
            heights: Tensor,
            derivatives: Tensor,
            bound: float = 5.0,
            slope: float = 1e-3,
            **kwargs: object,
        ) -> None:
            super(MonotonicRQSTransform, self).__init__(**kwargs)
            soft = -math.log(slope)  # keeps every slope and bin above `slope`, as zuko does
            widths = widths / (1 + abs(2 * widths / soft))
            heights = heights / (1 + abs(2 * heights / soft))
            derivatives = derivatives / (1 + abs(derivatives / soft))
            widths = F.pad(F.softmax(widths, dim=-1), (1, 0), value=0)
            heights = F.pad(F.softmax(heights, dim=-1), (1, 0), value=0)
            self.horizontal = bound * (2 * torch.cumsum(widths, dim=-1) - 1)
            self.vertical = bound * (2 * torch.cumsum(heights, dim=-1) - 1)
            self.derivatives = torch.exp(derivatives)

    return BoundedRQSTransform


class _Zuko(FlowBackend):
    # zuko's splines act on [−5, 5]
    BOUND = 5.0
    broadcasts = True  # zuko's transforms broadcast their parameters over the events

    def __init__(
        self,
        dim: int,
        context: int,
        transforms: int,
        bins: int,
        hidden: Sequence[int],
        tail_bound: float,
        bounded: bool = False,
    ) -> None:
        super().__init__()
        import zuko

        self.bounded = bounded
        if bounded:
            self.flow = zuko.flows.MAF(
                features=dim,
                context=context,
                transforms=transforms,
                univariate=_zuko_bounded_rqs(),
                shapes=[(bins,), (bins,), (bins + 1,)],
                hidden_features=list(hidden),
            )
            self.flow.base = zuko.flows.UnconditionalDistribution(
                zuko.distributions.BoxUniform,
                torch.full((dim,), -self.BOUND),
                torch.full((dim,), self.BOUND),
                buffer=True,
            )
            self.scale = 2 * self.BOUND  # y ∈ [0, 1] → [−5, 5]
        else:
            self.flow = zuko.flows.NSF(
                features=dim,
                context=context,
                transforms=transforms,
                bins=bins,
                hidden_features=list(hidden),
            )
            self.scale = self.BOUND / tail_bound  # y ∈ [−tail_bound, tail_bound] → [−5, 5]

    def _to_flow(self, y: Tensor) -> Tensor:
        return y * self.scale - self.BOUND if self.bounded else y * self.scale

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        if self.bounded:
            # the uniform base's log density by hand: its support is half-open, and a spline
            # output rounded onto the upper end would get −inf
            _, ladj = self.flow(context).transform.call_and_ladj(self._to_flow(y))
            return ladj  # + d log(scale) − d log(2 bound) = 0
        return self.flow(context).log_prob(self._to_flow(y)) + y.shape[-1] * math.log(self.scale)

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        if self.bounded:
            u = (torch.special.ndtr(z) * 2 - 1) * self.BOUND
            u = u.clamp(-self.BOUND * (1 - 1e-6), self.BOUND * (1 - 1e-6))
            return (self.flow(context).transform.inv(u) + self.BOUND) / self.scale
        return self.flow(context).transform.inv(z) / self.scale


def _made_spline_pass(
    layers: Sequence[nn.Module], y: Tensor, context: Tensor, inverse: bool, bounded: bool
) -> tuple[Tensor, Tensor]:
    """1-D events through nflows-style masked autoregressive spline layers, conditioner once per θ.

    For one event dimension a MADE's outputs do not depend on its input (the masks cut it), only
    on the context, so the spline parameters are computed once per θ row and repeated over that
    row's events. ``layers`` are in data → base order; y is (B, n, 1), context (B, 1, c). Returns
    the transformed events (B, n, 1) and, for the data → base direction, log|det| (B, n).
    """
    b, n, _ = y.shape
    ctx = context[:, 0]
    flat = y.reshape(b * n, 1)
    total = torch.zeros(b * n, dtype=y.dtype, device=y.device)
    for layer in reversed(layers) if inverse else layers:
        params = layer.autoregressive_net(torch.zeros_like(ctx[:, :1]), ctx)
        params = params.repeat_interleave(n, dim=0)
        if bounded:
            flat = flat.clamp(0.0, 1.0)
        if inverse:
            flat, _ = layer._elementwise_inverse(flat, params)
        else:
            flat, ladj = layer._elementwise_forward(flat, params)
            total = total + ladj
    return flat.view(b, n, 1), total.view(b, n)


def _normal_log_prob(z: Tensor) -> Tensor:
    """Log density of a standard normal in the last dimension, summed over it."""
    return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)


class _Nflows(FlowBackend):
    def __init__(
        self,
        dim: int,
        context: int,
        transforms: int,
        bins: int,
        hidden: Sequence[int],
        tail_bound: float,
        bounded: bool = False,
    ) -> None:
        super().__init__()
        from nflows.distributions import StandardNormal
        from nflows.flows import Flow
        from nflows.transforms import CompositeTransform
        from nflows.transforms import (
            MaskedPiecewiseRationalQuadraticAutoregressiveTransform as Spline,
        )

        self.bounded = bounded
        layers = [
            Spline(
                features=dim,
                hidden_features=hidden[0],
                context_features=context,
                num_blocks=max(len(hidden) - 1, 1),
                num_bins=bins,
                # tails=None: a spline on [0, 1] with learned end slopes
                tails=None if bounded else "linear",
                tail_bound=tail_bound,
            )
            for _ in range(transforms)
        ]
        if bounded:
            self.layers = nn.ModuleList(layers)
        else:
            self.flow = Flow(CompositeTransform(layers), StandardNormal([dim]))
        # 1-D events: the conditioner runs once per θ (see `_made_spline_pass`)
        self.broadcasts = dim == 1

    def _made_layers(self) -> Sequence[nn.Module]:  # data → base order
        return self.layers if self.bounded else self.flow._transform._transforms

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        if self.broadcasts:
            z, ladj = _made_spline_pass(self._made_layers(), y, context, False, self.bounded)
            return ladj if self.bounded else ladj + _normal_log_prob(z)
        if not self.bounded:
            return self.flow.log_prob(y, context=context)
        total = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        for layer in self.layers:  # data → uniform base, whose log density is 0
            y, ladj = layer(y.clamp(0.0, 1.0), context=context)
            total = total + ladj
        return total

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        if self.broadcasts:
            u = torch.special.ndtr(z) if self.bounded else z
            return _made_spline_pass(self._made_layers(), u, context, True, self.bounded)[0]
        if not self.bounded:
            return self.flow._transform.inverse(z, context=context)[0]
        u = torch.special.ndtr(z)
        for layer in reversed(self.layers):
            u = layer.inverse(u.clamp(0.0, 1.0), context=context)[0]
        return u


class _Normflows(FlowBackend):
    def __init__(
        self,
        dim: int,
        context: int,
        transforms: int,
        bins: int,
        hidden: Sequence[int],
        tail_bound: float,
        bounded: bool = False,
    ) -> None:
        super().__init__()
        import normflows as nf

        self.bounded = bounded
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
        if bounded:
            # normflows' wrapper always asks for linear tails; rebuild its spline on [0, 1]
            from normflows.flows.neural_spline.autoregressive import (
                MaskedPiecewiseRationalQuadraticAutoregressive,
            )

            for f in flows:
                f.mprqat = MaskedPiecewiseRationalQuadraticAutoregressive(
                    features=dim,
                    hidden_features=hidden[0],
                    context_features=context,
                    num_bins=bins,
                    tails=None,
                    num_blocks=max(len(hidden) - 1, 1),
                    use_residual_blocks=True,
                    random_mask=False,
                    permute_mask=False,
                    activation=nn.ReLU(),
                    dropout_probability=0.0,
                    use_batch_norm=False,
                    init_identity=False,
                )
        self.flow = nf.ConditionalNormalizingFlow(
            nf.distributions.DiagGaussian(dim, trainable=False), flows
        )
        # 1-D events: the conditioner runs once per θ (see `_made_spline_pass`)
        self.broadcasts = dim == 1

    def _made_layers(self) -> list[nn.Module]:  # data → base order: normflows lists base → data
        return [f.mprqat for f in reversed(self.flow.flows)]

    def log_prob(self, y: Tensor, context: Tensor) -> Tensor:
        if self.broadcasts:
            z, ladj = _made_spline_pass(self._made_layers(), y, context, False, self.bounded)
            return ladj if self.bounded else ladj + _normal_log_prob(z)
        if not self.bounded:
            return self.flow.log_prob(y, context=context)
        total = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        for layer in reversed(self.flow.flows):  # data → uniform base, whose log density is 0
            y, ladj = layer.inverse(y.clamp(0.0, 1.0), context=context)
            total = total + ladj
        return total

    def inverse(self, z: Tensor, context: Tensor) -> Tensor:
        if self.bounded:
            z = torch.special.ndtr(z)
        if self.broadcasts:
            return _made_spline_pass(self._made_layers(), z, context, True, self.bounded)[0]
        for layer in self.flow.flows:
            z, _ = layer(z.clamp(0.0, 1.0) if self.bounded else z, context=context)
        return z


BACKENDS: dict[str, Callable[..., FlowBackend]] = {
    "zuko": _Zuko,
    "nflows": _Nflows,
    "normflows": _Normflows,
}
