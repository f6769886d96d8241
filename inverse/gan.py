"""The outer GAN: a parameter generator, per-channel discriminators, any EventSource in between.

The seed's loop: a generator proposes θ, the event source (module-2 with the differentiable
inverse CDF, or a trained surrogate) turns θ into events, discriminators compare those with the
observed events, and the generator follows their gradients through the source back to θ. The
norms enter as a χ² against the measured norms with their uncertainties ("regulating norms").

Uncertainties come from data replicas, as in global PDF fits: replica 0 (or replicas 0…K−1,
``data_replicas``) is the observed data, the others bootstrap resamples of the events with the
norms fluctuated by their errors.
The generator maps one fixed latent vector per replica to θ_r, and every replica has its own
discriminators, so each θ_r is the GAN's estimate on its replica. The mean of θ_0…θ_{K−1} is the
answer and the spread of the bootstrap replicas' θ its uncertainty: posterior-like samples whose
width follows the data. Each bootstrap replica is one generator, so its spread also holds the
optimizer's own scatter, which the data replicas' spread measures; σ is the bootstrap spread times a
Student-t factor for the few replicas (`inverse.report.replica_estimate`).

What the seed's roadblocks need, and where it is handled:
- insensitive gradients: discriminators look at standardized logit(x), where the steep edges of
  the densities are resolved; the generator uses the non-saturating loss; the loss of each
  channel is weighted by its share of the events and the norm χ² by 1/(4 N) so that their balance
  is the likelihood's (near equilibrium the non-saturating loss is ¼ δθᵀ I₁ δθ per event).
- divide by zero: the sources guard every division; the generator maps into the prior box shrunk
  by ``inset`` so no θ reaches a degenerate edge (N = 0: both norms zero).
- slow convergence: Adam with cosine decay of both learning rates; all replicas train in one
  batched pass (batched matrix products for the R × C discriminators).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from inverse.config import BOX_MAPS, PRECONDITION_SCALES, GanConfig, StopConfig, to_dict
from inverse.convergence import AnnealSchedule, SettleRule
from surrogates.data import ObservedData
from surrogates.errors import check_choice
from surrogates.theory import Theory

__all__ = [
    "ParameterGenerator",
    "BatchedMLP",
    "OuterGAN",
    "make_replicas",
    "sampled_fisher",
    "check_score_source",
    "ks_distance",
    "source_score",
    "interpolate",
    "BOX_MAPS",
    "PACE_SIGMA",
]

# precondition_scale "absolute": a parameter whose σ, in the generator's logit coordinates s and
# for data of gan.lr_g_events events, is PACE_SIGMA takes the steps of an unscaled generator; one
# whose σ is smaller moves slower in proportion (the proxy's parameters: a few times slower). How
# it was chosen, on a narrow peak and the proxy: docs/notes/2026-12-01-step-scaling.md.
PACE_SIGMA = 1.0
# gan.d_score: the score's table per channel, at this many intervals of the observed events'
# quantiles (a narrow peak holding 10% of them: about 50 nodes across it)
SCORE_NODES = 512
# gan.data_restart: events per data replica and channel for its distance from the observed events
# (the KS distance's own noise ~ 1/√n)
RESTART_EVENTS = 4096
# gan.spread_start: the data replicas start spread over this middle fraction of the prior box
SPREAD_MIDDLE = 0.8
# the range of a parameter's step factor σ_s/pace with a diagonal scaling
ABSOLUTE_STEP_RANGE = (1e-4, 4.0)


class ParameterGenerator(nn.Module):
    """Noise → θ inside the prior box, one small generator per replica evaluated in one pass.

    Replica r maps its fixed latent vector z_r through its own MLP and a sigmoid into the prior
    box (shrunk by ``inset`` at each edge). Separate generators keep the replicas independent:
    with one shared network the replicas' common motion dominates and their spread, the
    uncertainty, comes out too small.

    Args:
        low, high: the prior box.
        replicas: number of replicas (rows of θ it returns).
        latent: latent dimension; hidden: MLP widths.
        inset: fraction of the box kept free at each edge.
        seed: seed of the latent vectors.
        box_map: "sigmoid" (u = σ(s)) or "reflect" (u = s/4 + 1/2 folded back at 0 and 1: a
            triangle wave with the sigmoid's slope at the centre). A replica that overshoots a
            prior edge through a sigmoid lands where dθ/ds ≈ 0 and Adam's memory of the earlier,
            larger gradients keeps it there; a reflecting wall keeps |dθ/ds| constant, so the
            likelihood's pull brings it back. Use it where σ_CRB is a large fraction of the box.
    """

    def __init__(
        self,
        low: Tensor,
        high: Tensor,
        replicas: int,
        latent: int = 4,
        hidden: Sequence[int] = (32,),
        inset: float = 1e-3,
        seed: int = 0,
        box_map: str = "sigmoid",
    ) -> None:
        super().__init__()
        check_choice("gan.box_map", box_map, BOX_MAPS)
        self.box_map = box_map
        g = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "z", torch.randn(replicas, 1, latent, generator=g, dtype=torch.float64)
        )
        self.register_buffer("low", low.to(torch.float64))
        self.register_buffer("high", high.to(torch.float64))
        self.inset = inset
        self.net = BatchedMLP(replicas, latent, hidden, torch.float64, outputs=len(low))
        # s = s0 + L·net(z) is the logit of the unit-box position; L = 1 until `precondition`
        self.register_buffer("s0", torch.zeros(replicas, len(low), dtype=torch.float64))
        self.register_buffer("L", torch.eye(len(low), dtype=torch.float64))
        self._zero_last_layer()

    def _zero_last_layer(self) -> None:
        # every replica starts where s0 says (the box centre at first): last layer small, bias 0
        with torch.no_grad():
            self.net.weights[-1].mul_(1e-2)
            self.net.biases[-1].zero_()

    @torch.no_grad()
    def spread(self, k: int, seed: int, middle: float = SPREAD_MIDDLE) -> None:
        """Replicas 1…k−1 start apart, replica 0 at the box centre (``gan.spread_start``).

        Their positions are a Latin hypercube of the box's middle fraction ``middle``: per
        parameter the centres of k − 1 equal strata, each used once, in an order drawn from
        ``seed``. So every parameter is started at k − 1 distinct values, a resonance mass among
        them within half a stratum of wherever the data put it inside that middle part (k = 2:
        the one stratum's centre is the box centre, nothing is spread).
        """
        if k < 2:
            return
        rng = np.random.default_rng(seed)
        strata = np.stack([rng.permutation(k - 1) for _ in range(len(self.low))], -1)
        u = torch.as_tensor(0.5 + middle * ((strata + 0.5) / (k - 1) - 0.5), dtype=self.s0.dtype)
        if self.box_map == "reflect":  # u = s/4 + 1/2 on the first rise of the triangle wave
            s = 4 * (u - 0.5)
        else:
            s = torch.logit(u)
        self.s0[1:k] = s.to(self.s0.device)

    def logit(self) -> Tensor:
        """s (R, P): the unit-box position through the box map."""
        return self.s0 + self.net(self.z)[:, 0] @ self.L.T

    def unit(self) -> Tensor:
        """θ scaled to [0, 1] per parameter, (R, P)."""
        return self.inset + (1 - 2 * self.inset) * self._box(self.logit())[0]

    def _box(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """The box map u(s) ∈ [0, 1] and its slope du/ds."""
        if self.box_map == "reflect":
            w = torch.remainder(s / 4 + 0.5, 2.0)
            return torch.where(w < 1, w, 2 - w), torch.where(w < 1, 0.25, -0.25).to(s)
        u = torch.sigmoid(s)
        return u, u * (1 - u)

    @torch.no_grad()
    def precondition(
        self,
        cov_theta: Tensor,
        at: int = 0,
        scale: str = "geometric",
        diagonal: bool = False,
        restart_after: int = 0,
        restart_from: tuple[int, int] | None = None,
    ) -> None:
        """Whiten the generator's coordinates with a θ covariance (the Cramér–Rao one).

        ``scale`` "absolute" (the default of `inverse.config.GanConfig`): ḡ = `PACE_SIGMA`, so each
        parameter moves at the pace lr_g has on the proxy, in units of its own σ; the caller
        passes the covariance of data of gan.lr_g_events events, so that the learning rate's
        √(lr_g_events/N) rule keeps setting the pace for larger data. A resonance mass whose σ is
        0.2% of its range then takes steps ~100× smaller than a parameter whose σ is 20%.

        The likelihood is ill-conditioned: N_u or the d-quark parameters are soft directions
        that move 10–100× slower than b_u under one learning rate, so they lag and their replicas
        never spread fully. With s = s0 + L·net(z), L = chol(cov in s)/ḡ, every direction moves
        at the same pace in units of its σ. ḡ sets that pace: "geometric", the geometric mean of
        the σ in s (the overall scale stays: soft directions speed up, stiff ones slow down);
        "softest", the largest σ in s (no parameter moves faster, in units of its σ, than it did
        before: only the stiff ones slow down). ``diagonal``: scale each parameter by its own σ
        but leave out the correlations. The full whitening moves a soft parameter with the
        gradients of the stiff ones it correlates with; where the GAN resolves that soft parameter
        less well than the likelihood does (N_u small), the replicas then wander along it and
        settle off the MLE (2.7 σ_CRB on such a case-A set, 0.37 with the diagonal). The
        covariance is converted to s at replica ``at``'s position. The current positions become
        s0 and the last layer restarts near zero, so θ is continuous; calling it again re-whitens
        from the current L. ``restart_after`` K > 0: replicas K, K+1, … (the bootstrap ones) move
        to the mean position of replicas 0…K−1 (the data's) instead of keeping their own.
        ``restart_from`` (b, K): first replicas 0…K−1 all move to replica b's position.
        """
        check_choice("gan.precondition_scale", scale, PRECONDITION_SCALES)
        s = self.logit()
        jac = (self.high - self.low) * (1 - 2 * self.inset) * self._box(s)[1][at]  # dθ/ds
        cov_s = cov_theta / torch.outer(jac, jac)
        if diagonal:  # each parameter at its own pace, no coupling through the correlations
            cov_s = torch.diag(cov_s.diagonal())
        var = cov_s.diagonal().clamp(min=1e-300)
        if scale == "absolute":
            g = torch.as_tensor(PACE_SIGMA, dtype=var.dtype)
        elif scale == "geometric":
            g = torch.exp(torch.log(var).mean() / 2)
        else:
            g = var.max().sqrt()
        if diagonal:  # bounded: a σ the likelihood cannot pin down does not freeze or fling it
            chol = torch.diag(
                (var.sqrt() / g).clamp(ABSOLUTE_STEP_RANGE[0], ABSOLUTE_STEP_RANGE[1])
            )
        else:
            eye = torch.eye(len(jac), dtype=cov_s.dtype)
            chol = torch.linalg.cholesky(cov_s + 1e-12 * eye) / g
        self.L.copy_(chol)
        self._zero_last_layer()
        if restart_from is not None:  # the data replicas from the one closest to the data
            s = s.clone()
            s[: restart_from[1]] = s[restart_from[0]]
        if restart_after:  # bootstrap fits started from the data's fit, as bootstrap practice does
            s = s.clone()
            s[restart_after:] = s[:restart_after].mean(0)
        self.s0.copy_(s - self.net(self.z)[:, 0] @ self.L.T)  # θ exactly continuous

    def forward(self) -> Tensor:
        return self.low + (self.high - self.low) * self.unit()


D_DTYPES = {"float64": torch.float64, "float32": torch.float32}  # gan.d_dtype's names → dtypes


class BatchedMLP(nn.Module):
    """K independent MLPs evaluated in one pass: x (K, n, d) → (K, n, outputs), or (K, n) for one."""

    def __init__(
        self, k: int, inputs: int, hidden: Sequence[int], dtype: torch.dtype, outputs: int = 1
    ) -> None:
        super().__init__()
        self.outputs = outputs
        sizes = [inputs, *hidden, outputs]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1 / math.sqrt(a)
            self.weights.append(
                nn.Parameter(torch.empty(k, a, b, dtype=dtype).uniform_(-bound, bound))
            )
            self.biases.append(
                nn.Parameter(torch.empty(k, 1, b, dtype=dtype).uniform_(-bound, bound))
            )

    def forward(self, x: Tensor) -> Tensor:
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < n_layers - 1:
                x = nn.functional.leaky_relu(x, 0.2)
        return x.squeeze(-1) if self.outputs == 1 else x


def make_replicas(
    data: ObservedData, replicas: int, seed: int, data_replicas: int = 1
) -> tuple[list[Tensor], Tensor]:
    """Bootstrap event indices per replica and channel, and fluctuated norms per replica.

    Returns:
        indices: one (R, N_c) long tensor per channel (rows 0…K−1, K = ``data_replicas``: the
            events themselves).
        norms: (R, C) measured norms (rows 0…K−1 the measured ones, the others ± their σ).
    """
    rng = np.random.default_rng(seed)
    indices = []
    for ev in data.events:
        n = len(ev)
        idx = rng.integers(0, n, size=(replicas, n))
        idx[:data_replicas] = np.arange(n)
        indices.append(torch.as_tensor(idx))
    norms = data.norms + data.norms_sigma * rng.standard_normal((replicas, len(data.norms)))
    norms[:data_replicas] = data.norms
    return indices, torch.as_tensor(np.maximum(norms, 1e-3 * data.norms))


class OuterGAN(pl.LightningModule):
    """θ generator + R × C discriminators + an EventSource, trained with manual optimization.

    The checkpoint's ``hyper_parameters`` hold the JSON-able settings (the ``gan`` block, replicas,
    steps, seed, ...); the source, data, theory, covariance and detector are not saved there.

    Args:
        source: the EventSource (`InverseCDFSampler` or a trained `Surrogate`).
        data: observed events and norms (validated against the source's theory beforehand).
        theory: the data's theory: its prior box, parameter names and event range.
        gan: the networks, learning rates and schedule (`inverse.config.GanConfig`, the YAML's
            ``gan:`` block; its docstring says what each key does). ``lr_g`` is scaled by
            √(lr_g_events / N) for data of N > lr_g_events events; ``precondition_at``: the
            fraction(s) of the steps after which the generator's coordinates are whitened with
            ``covariance`` at the mean θ of the data replicas (with ``spread_start``, at the one
            closest to the data; see `ParameterGenerator.precondition`); ``d_dtype`` float32:
            discriminators 2–3× faster on a CPU, the events, θ and the losses stay float64.
        replicas: R (1 = no uncertainty estimate).
        data_replicas: K ≥ 1 of the R replicas fit the observed data itself (independent
            generators and discriminators), the rest bootstrap resamples; the estimate averages
            the K, which removes part of the optimizer's own scatter.
        events_per_step: generated and observed events per replica and channel each step.
        steps: total steps (for the learning-rate schedule).
        seed: seed of the replicas and latents.
        source_members: for an ensemble source, the member that draws each replica's events
            (−1: the mixture).
        covariance: θ → Cramér–Rao covariance of the data (used when ``gan.precondition``).
        detector: the experimental module (`surrogates.detector.DISDetector`) between the source
            and the discriminators, or None. Generated events are reconstructed through it
            (reparameterized smearing) and weighted by its efficiency; the norm term compares the
            accepted norms (exact quadrature for the exact source, the mean acceptance of the
            generated events for a surrogate) with the measured ones.
    """

    def __init__(
        self,
        source,  # noqa: ANN001 - any EventSource
        data: ObservedData,
        theory: Theory,
        gan: GanConfig | None = None,
        *,
        replicas: int = 16,
        data_replicas: int = 1,
        events_per_step: int = 256,
        steps: int = 3000,
        seed: int = 0,
        source_members: Sequence[int] | None = None,
        covariance=None,  # noqa: ANN001 - callable θ (P,) → Cramér–Rao covariance (P, P)
        detector=None,  # noqa: ANN001 - surrogates.detector.DISDetector or None
        stop: StopConfig | None = None,
    ) -> None:
        super().__init__()
        gan = GanConfig() if gan is None else gan
        stop = StopConfig() if stop is None else stop
        # the checkpoint records the primitives; source, data, theory tensors, covariance and
        # detector are objects the caller rebuilds (from the run's config.yaml)
        self.save_hyperparameters(
            {
                "theory": theory.name,
                "replicas": replicas,
                "data_replicas": data_replicas,
                "events_per_step": events_per_step,
                "steps": steps,
                "seed": seed,
                "source_members": None if source_members is None else list(source_members),
                "gan": to_dict(gan),
                "stop": to_dict(stop),
            }
        )
        self.automatic_optimization = False
        self.detector = detector
        self._acceptance_quadrature = None
        self.covariance = covariance if gan.precondition else None
        fractions = gan.precondition_at
        fractions = [fractions] if isinstance(fractions, int | float) else fractions
        self.precondition_steps = (
            {int(f * steps) for f in fractions} if self.covariance is not None else set()
        )
        self.precondition_start = gan.precondition and gan.precondition_start
        self.precondition_scale = gan.precondition_scale
        self.precondition_diagonal = gan.precondition_diagonal
        self.data_events = int(data.counts.sum())
        self.lr_g_events = gan.lr_g_events
        self._counts = np.asarray(data.counts, dtype=float)
        self.step_scale: dict | None = None  # how the steps were scaled at the start (metrics)
        self.data_replicas = data_replicas
        self.source = source
        # an ensemble source: the member that draws each replica's events (−1: the mixture)
        self._route = {"members": list(source_members)} if source_members is not None else {}
        self.param_names = list(theory.param_names)
        self.n_channels = len(data.events)
        self.replicas = replicas
        self.events_per_step = events_per_step
        self.steps = steps
        # the generator's steps must be small against σ_CRB ∝ 1/√N: data larger than
        # lr_g_events (case B) get lr_g × √(lr_g_events / N); smaller data keep lr_g (faster is
        # unstable)
        self.lr_g = gan.lr_g * min(1.0, (gan.lr_g_events / int(data.counts.sum())) ** 0.5)
        self.lr_d, self.d_steps = gan.lr_d, gan.d_steps
        self.d_lr_floor, self.g_lr_floor = gan.d_lr_floor, gan.g_lr_floor
        self.shared = gan.shared
        self.trace_every = gan.trace_every
        self.seed = seed
        dtype = torch.float64
        self.generator_net = ParameterGenerator(
            theory.prior_low,
            theory.prior_high,
            replicas,
            gan.g_latent,
            gan.g_hidden,
            gan.inset,
            seed,
            gan.box_map,
        )
        self.spread_start = gan.spread_start
        if gan.spread_start:  # the data replicas search from apart (then data_restart)
            self.generator_net.spread(data_replicas, seed)
        event_dim = data.events[0].shape[1]
        # per event variable (`_raw_features`): log s, log(1 − s), logit s [, its CDF], then the
        # smooth components, which come last so that the gate below is one slice
        coarse_dim = 3 + (1 if gan.d_quantiles else 0)
        per_dim = coarse_dim + (gan.d_smooth if gan.d_quantiles else 0)
        if gan.d_score:
            check_score_source(source, event_dim, detector)
        self.d_score = gan.d_score
        n_score = theory.n_params if gan.d_score else 0  # the score's columns follow the raw ones
        inputs = per_dim * event_dim + n_score + (self.n_channels if gan.shared else 0)
        k = replicas * (1 if gan.shared else self.n_channels)
        self.d_dtype = D_DTYPES[gan.d_dtype]
        self.discriminator = BatchedMLP(k, inputs, gan.d_hidden, self.d_dtype)
        self.register_buffer("x_low", theory.x_low.to(dtype))
        self.register_buffer("x_high", theory.x_high.to(dtype))
        events = [torch.as_tensor(e, dtype=dtype) for e in data.events]
        self.d_quantiles, self.d_smooth = gan.d_quantiles, gan.d_smooth
        self.bootstrap_restart = gan.bootstrap_restart
        self.data_restart = gan.data_restart
        self.restarts: list[dict] = []  # gan.data_restart: when, from which data replica, why
        # the smooth components' columns of each event's features, held at 0 until this step
        self.smooth_start = int(gan.d_smooth_from * steps) if gan.d_smooth else 0
        coarse = torch.ones(inputs, dtype=self.d_dtype)
        coarse[coarse_dim * event_dim : per_dim * event_dim] = 0.0
        self.register_buffer("smooth_off", coarse, persistent=False)
        # gan.d_score: the source's score per channel at SCORE_NODES quantiles of the observed
        # events, filled at score_start (0 until then: no input); persistent, for --resume
        self.score_start = int(gan.d_smooth_from * steps) if gan.d_score else -1
        if gan.d_score:
            nodes = torch.stack([quantile_knots(e, SCORE_NODES)[:, 0] for e in events])
            self.register_buffer("score_nodes", nodes)
            self.register_buffer("score_values", torch.zeros(*nodes.shape, n_score, dtype=dtype))
            self.register_buffer("score_mean", torch.zeros(self.n_channels, n_score, dtype=dtype))
            self.register_buffer("score_std", torch.ones(self.n_channels, n_score, dtype=dtype))
            self.register_buffer("score_theta", torch.full((n_score,), math.nan, dtype=dtype))
        if gan.d_quantiles:  # each channel's observed quantiles: the knots of its events' CDF
            self.register_buffer(
                "quantile_knots", torch.stack([quantile_knots(e, gan.d_quantiles) for e in events])
            )
        feats = [self._raw_features(e, c) for c, e in enumerate(events)]
        self.register_buffer("feat_mean", torch.stack([f.mean(0) for f in feats]))
        self.register_buffer("feat_std", torch.stack([f.std(0).clamp(min=1e-6) for f in feats]))
        for c, e in enumerate(events):
            self.register_buffer(f"events_{c}", e)
            # their features once: the discriminators see the same events all along
            self.register_buffer(f"observed_feats_{c}", self.features(e, c), persistent=False)
        idx, norms = make_replicas(data, replicas, seed, data_replicas)
        for c, i in enumerate(idx):
            self.register_buffer(f"replica_idx_{c}", i)
        self.register_buffer("replica_norms", norms.to(dtype))
        self.register_buffer("norms_sigma", torch.as_tensor(data.norms_sigma, dtype=dtype))
        counts = torch.as_tensor(data.counts, dtype=dtype)
        self.register_buffer("channel_weight", counts / counts.sum())
        self.norm_scale = gan.norm_weight / (4 * float(counts.sum()))
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        self._previous_fake: list[tuple[Tensor, Tensor | None]] | None = None
        self.trace: list[np.ndarray] = []
        self.trace_steps: list[int] = []
        self._setup_stop(stop, gan)

    @property
    def trainer_steps(self) -> int:
        """Lightning's max_steps for ``steps`` generator updates (it counts every optimizer step)."""
        return self.steps * (1 + self.d_steps)

    # ------------------------------------------------------------------ pieces
    def _raw_features(self, x: Tensor, c: int) -> Tensor:
        """log s, log(1 − s) and logit s of s = x scaled to [0, 1] (the edges resolved) and, with
        ``gan.d_quantiles``, channel c's observed CDF at x: (…, 3d) or (…, 4d)."""
        s = ((x - self.x_low) / (self.x_high - self.x_low)).clamp(1e-12, 1 - 1e-12)
        lo, hi = torch.log(s), torch.log1p(-s)
        parts = [lo, hi, lo - hi]
        if self.d_quantiles:
            cdf = empirical_cdf(x, self.quantile_knots[c])
            parts.append(cdf)
            for j in range(1, self.d_smooth + 1):
                parts.append(torch.cos(math.pi * j * cdf))
        return torch.cat(parts, -1)

    def features(self, x: Tensor, c: int) -> Tensor:
        """Standardized features of channel c (with ``gan.d_score`` the source's score, and the
        channel one-hot when shared)."""
        f = (self._raw_features(x, c) - self.feat_mean[c]) / self.feat_std[c]
        if self.d_score:
            score = interpolate(x[..., 0], self.score_nodes[c], self.score_values[c])
            f = torch.cat([f, (score - self.score_mean[c]) / self.score_std[c]], -1)
        if self.shared:
            onehot = torch.zeros(*f.shape[:-1], self.n_channels, dtype=f.dtype, device=f.device)
            onehot[..., c] = 1
            f = torch.cat([f, onehot], -1)
        return f

    def theta(self) -> Tensor:
        """θ of every replica, (R, P)."""
        return self.generator_net()

    def observed_batch(self, c: int) -> Tensor:
        """The features of n events of channel c from each replica's events, (R, n, features)."""
        idx = getattr(self, f"replica_idx_{c}")
        pick = torch.randint(
            0, idx.shape[1], (self.replicas, self.events_per_step), device=idx.device
        )
        return getattr(self, f"observed_feats_{c}")[torch.gather(idx, 1, pick)]

    def logits(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Discriminator logits per channel, each (R, n), in float64 whatever ``d_dtype``
        (before ``gan.d_smooth_from`` of the steps, without the smooth components)."""
        if self.smooth_start and int(self.step_count) < self.smooth_start:
            feats = [f * self.smooth_off.to(f) for f in feats]
        if self.shared:
            n = [f.shape[1] for f in feats]
            out = self.discriminator(torch.cat(list(feats), 1).to(self.d_dtype))
            return list(out.to(torch.float64).split(n, dim=1))
        stacked = torch.cat(list(feats), 0).to(self.d_dtype)  # (C·R, n, d): channel-major
        return list(self.discriminator(stacked).to(torch.float64).split(self.replicas, 0))

    def norm_chi2(self, theta: Tensor, fake: Sequence[Tensor] | None = None) -> Tensor:
        """Per replica χ² of the predicted norms against the replica's measured norms, (R,).

        With a detector the prediction is the accepted norm ∫σ ε acc dx: by quadrature of the
        exact theory for the exact source; for a surrogate with a density, its norm × the
        acceptance averaged over its density by quadrature (∫p̂ acc / ∫p̂ on 512 nodes: 0.2%
        against 2·10^5 of its events; deterministic, differentiable); else its
        norm × the mean acceptance of its generated events ``fake`` (true level; noisy).
        """
        pred = self._predicted_norms(theta, fake)
        return (((pred - self.replica_norms) / self.norms_sigma) ** 2).sum(-1)

    def _predicted_norms(self, theta: Tensor, fake: Sequence[Tensor] | None) -> Tensor:
        """The norms `norm_chi2` compares with the measured ones, (R, C)."""
        if self.detector is None:
            return self.source.norms(theta, **self._route).to(theta.dtype)
        if self.source.is_exact:
            return self.detector.accepted_norms(theta)
        if self._acceptance_quadrature is None:
            # a coarser rule than the exact theory's: log_prob costs a network pass per node and
            # replica; 512 nodes hold 1e-3 in the ratio below
            nodes, plain, accepted = self.detector.quadrature(16)
            self._acceptance_quadrature = (nodes.to(theta), accepted.to(theta), plain.to(theta))
        nodes, weights, plain = self._acceptance_quadrature
        if self.source.has_density:
            p = self.source.log_prob(nodes.unsqueeze(0), theta).to(theta.dtype).exp()
            acc = (p @ weights) / (p @ plain)  # (R, C); the ratio cancels the rule's error in ∫p̂
        else:  # no density (GAN, VAE): the generated events' mean
            acc = torch.stack([self.detector.acceptance(f).mean(-1) for f in fake], -1)
        return self.source.norms(theta, **self._route).to(theta.dtype) * acc

    # ------------------------------------------------------------------ training
    def configure_optimizers(self):  # noqa: ANN201
        opt_g = torch.optim.Adam(self.generator_net.parameters(), lr=self.lr_g, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr_d, betas=(0.5, 0.999))

        # cosine over `steps`, or from the step the trace settled over stop.anneal steps
        # (`inverse.convergence.AnnealSchedule`). The generator's rate decays to 1%: its noise
        # shrinks as it settles; the discriminators' only to d_lr_floor: a frozen discriminator
        # turns the generator into a mode seeker
        return [opt_g, opt_d], [
            torch.optim.lr_scheduler.LambdaLR(opt_g, self.schedule_g),
            torch.optim.lr_scheduler.LambdaLR(opt_d, self.schedule_d),
        ]

    def set_score(self, theta: Tensor | None = None) -> None:
        """``gan.d_score``: the source's score at θ (default: the data replicas' mean) tabulated
        on each channel's nodes, standardized on the observed events; their features again."""
        if theta is None:
            theta, _ = self._replicas_centre()
        theta = theta.detach().to(self.score_values)
        box = (self.generator_net.low, self.generator_net.high)
        step = 1e-4 * (box[1] - box[0]).to(theta)
        for c in range(self.n_channels):
            values = source_score(self.source, self.score_nodes[c], theta, c, step, box)
            self.score_values[c] = values
            seen = interpolate(getattr(self, f"events_{c}")[:, 0], self.score_nodes[c], values)
            self.score_mean[c] = seen.mean(0)
            self.score_std[c] = seen.std(0).clamp(min=1e-12)
        self.score_theta.copy_(theta)
        self._refresh_observed()
        self._previous_fake = None  # features made before the score joined

    def _refresh_observed(self) -> None:
        """The observed events' features again (the score's columns changed, or were loaded)."""
        for c in range(self.n_channels):
            getattr(self, f"observed_feats_{c}").copy_(
                self.features(getattr(self, f"events_{c}"), c)
            )

    # ------------------------------------------------------------------ step scaling
    def _pace_covariance(self, cov: Tensor) -> Tensor:
        """The data's θ covariance as the one of data of lr_g_events events ("absolute" pace:
        lr_g's √(lr_g_events/N) rule stays the one that scales the steps with the data size)."""
        if self.precondition_scale != "absolute":
            return cov
        return cov * (self.data_events / self.lr_g_events)

    def _replicas_centre(self) -> tuple[Tensor, int]:
        """The data replicas' mean θ and the data replica nearest to it."""
        with torch.no_grad():
            theta = self.theta()
            mean = theta[: self.data_replicas].mean(0)
            at = int((theta - mean).abs().sum(-1)[: self.data_replicas].argmin())
        return mean, at

    def scale_from_start(self) -> None:
        """Step 0: each parameter's step scaled by its own σ at the generator's start.

        σ comes from the Fisher information at the start θ (the box centre): the likelihood's
        (``covariance``, the exact theory's or the folded one) where there is one, else the
        binned Fisher information of the source's own sampled histograms (`sampled_fisher`),
        else the steps stay unscaled, said in one line. Diagonal: the correlations at the box
        centre need not be those at the answer. Recorded in ``step_scale`` (metrics.json).
        """
        mean, at = self._replicas_centre()
        cov, origin = None, "none"
        if self.covariance is not None:
            try:
                cov = torch.as_tensor(self.covariance(mean.cpu().numpy()), dtype=torch.float64)
                origin = "likelihood"
            except Exception as err:  # noqa: BLE001 - no density, no gradient: try the samples
                print(f"step scaling: no likelihood Fisher information at the start ({err})")
        if cov is None or not _usable(cov):
            try:
                info = sampled_fisher(self.source, mean, self._counts, self.generator_net)
                cov, origin = torch.linalg.pinv(info), "sampled histograms"
            except Exception as err:  # noqa: BLE001 - the source cannot do it either
                cov, origin = None, f"none ({err})"
        if cov is None or not _usable(cov):
            print("step scaling: no usable Fisher information at the start; steps unscaled")
            self.step_scale = {"from": "none", "theta": mean.cpu().numpy()}
            return
        cov = cov.to(device=self.device)
        self.generator_net.precondition(
            self._pace_covariance(cov), at, self.precondition_scale, diagonal=True
        )
        self.stop_sigma = cov.diagonal().clamp(min=1e-300).sqrt().cpu().numpy()
        self.step_scale = {
            "from": origin,
            "theta": mean.cpu().numpy(),
            "sigma": cov.diagonal().clamp(min=0).sqrt().cpu().numpy(),
            "step_factor": self.generator_net.L.diagonal().cpu().numpy(),
        }

    def _reprecondition(self) -> None:
        """At a ``precondition_at`` step: whiten with the likelihood's covariance at the data
        replicas' mean θ (see `ParameterGenerator.precondition`); at the last one, with
        ``gan.data_restart``, the data replicas first restart from the one whose events are
        closest to the observed ones (`data_distances`), and the covariance is taken there. With
        ``gan.spread_start`` the data replicas are apart until then (their mean is no answer):
        every step takes the covariance at that closest replica."""
        last = int(self.step_count) == max(self.precondition_steps)
        k = self.data_replicas
        restart = self.data_restart and last and k > 1
        best = None
        if restart or (self.spread_start and k > 1):
            distances = self.data_distances()
            best = int(np.argmin(distances))
            trainer = getattr(self, "_trainer", None)
            if trainer is not None and trainer.world_size > 1:  # DDP: every process, rank 0's pick
                best = int(trainer.strategy.broadcast(best, src=0))
            if restart:
                self.restarts.append(
                    {"step": int(self.step_count), "from": best, "distances": distances.tolist()}
                )
        if best is None:
            mean, at = self._replicas_centre()
        else:
            with torch.no_grad():
                mean, at = self.theta()[best], best
        cov = self.covariance(mean.cpu().numpy())
        cov = torch.as_tensor(cov, dtype=torch.float64, device=self.device)
        self.stop_sigma = cov.diagonal().clamp(min=1e-300).sqrt().cpu().numpy()  # the checks' unit
        self.generator_net.precondition(
            self._pace_covariance(cov),
            at,
            self.precondition_scale,
            self.precondition_diagonal,
            k if self.bootstrap_restart and last else 0,
            (best, k) if restart else None,
        )

    def data_distances(self, n: int = RESTART_EVENTS) -> np.ndarray:
        """Each data replica's distance from the data, (K,): the Kolmogorov–Smirnov distance
        between n of its events (weighted, through a detector) and the observed events, the
        largest over each channel's event variables, averaged over the channels with their
        shares of the events. A replica that settled on another answer (a peak found with a
        third of its yield) is several times further than one at the data's answer."""
        k = self.data_replicas
        with torch.no_grad():
            fake = [e.to(torch.float64) for e in self.source.sample(self.theta(), n, **self._route)]
            weights: list[Tensor | None] = [None] * len(fake)
            if self.detector is not None:
                fake, weights = self.detector.apply(fake)
            total = torch.zeros(k, dtype=torch.float64)
            for c, f in enumerate(fake):
                seen = getattr(self, f"events_{c}")
                w = None if weights[c] is None else weights[c][:k]
                d = torch.stack(
                    [ks_distance(f[:k, :, j], w, seen[:, j]) for j in range(f.shape[-1])], -1
                )
                total += self.channel_weight[c].cpu() * d.max(-1).values.cpu()
        return total.numpy()

    # ------------------------------------------------------------------ stopping
    def _setup_stop(self, stop: StopConfig, gan: GanConfig) -> None:
        """The learning-rate schedules and, with ``stop.enabled``, the settle rule's state."""
        self.stop_enabled = stop.enabled
        self.stop_rule = SettleRule(
            stop.window, stop.k, stop.tolerance, stop.precision, stop.patience, stop.lag
        )
        self.schedule_g = AnnealSchedule(self.steps, gan.g_lr_floor, stop.anneal)
        self.schedule_d = AnnealSchedule(self.steps, gan.d_lr_floor, stop.anneal)
        # the first check: after min_steps, after the last re-scaling of the steps (the trace
        # before it moved under other step sizes) and after the smooth components joined the
        # discriminators' inputs (before, the fit is not yet the one asked for)
        self.check_from = max(
            [
                stop.min_steps,
                *(s + 1 for s in self.precondition_steps),
                self.smooth_start + 1 if self.smooth_start else 0,
                self.score_start + 1 if self.score_start > 0 else 0,
            ]
        )
        self.stop_sigma: np.ndarray | None = None  # the unit of the checks (the data's Fisher σ)
        self.settled_at: int | None = None  # the step the anneal started
        self.stop_at: int | None = None  # the step after which the run stops
        self.stop_reason = "max steps" if stop.enabled else "fixed schedule"
        self._passes = 0
        self._check = None

    def _check_settled(self, step: int) -> None:
        """At a recorded trace point: the settle rule (see `inverse.convergence`)."""
        if not self.stop_enabled or step < self.check_from:
            return
        if self.stop_sigma is None:  # no Fisher σ (no likelihood): the replicas' own spread
            boot = self.trace[-1][self.data_replicas :]
            spread = boot.std(0, ddof=1) if len(boot) > 1 else np.ones(boot.shape[1])
            self.stop_sigma = np.where(spread > 0, spread, 1.0)
        first = next(i for i, s in enumerate(self.trace_steps) if s >= self.check_from)
        final = self.settled_at is not None and step >= self.stop_at
        self._check = self.stop_rule.check(np.stack(self.trace[first:]), self.stop_sigma, final)
        self._passes = self._passes + 1 if self._check is not None and self._check.passed else 0
        if self.settled_at is None:
            if self._passes >= self.stop_rule.patience:  # stationary: anneal, then stop
                self.settled_at = step
                end = min(self.schedule_g.start_anneal(step), self.steps - 1)
                self.schedule_d.start_anneal(step)
                self.stop_at = end
                self._passes = 0
        elif step >= self.stop_at:
            if self._check is not None and self._check.passed:
                self.stop_reason = "settled"
                self.stop_at = step
                self.trainer.should_stop = True
            elif step < self.steps - 1:  # not yet: go on at the floor, one window at a time
                self.stop_at = min(step + self.trace_every, self.steps - 1)

    @property
    def stop_summary(self) -> dict:
        """What metrics.json records about the stop."""
        steps = int(self.step_count)
        check = self._check
        return {
            "stopped_at": steps,
            "stop_reason": self.stop_reason,
            # the learning rates reached their floor: the full cosine, or the whole anneal
            "schedule_completed": steps >= self.steps
            if self.settled_at is None
            else steps > self.settled_at + self.schedule_g.anneal,
            "settled_at": self.settled_at,
            "stop_sigma": self.stop_sigma,
            "last_check": None
            if check is None
            else {"passed": check.passed, "drift": check.drift, "error": check.error},
        }

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        sch_g, sch_d = self.lr_schedulers()
        step = int(self.step_count)
        if step == 0 and self.precondition_start:
            self.scale_from_start()
        if step in self.precondition_steps:
            self._reprecondition()
        if (step == 0 and self.precondition_start) or step in self.precondition_steps:
            opt_g.optimizer.state.clear()  # Adam's moments belong to the old coordinates
        if step == self.score_start:
            self.set_score()
        theta = self.theta()
        fake = [
            e.to(torch.float64)
            for e in self.source.sample(theta, self.events_per_step, **self._route)
        ]
        true_fake = fake
        weights: list[Tensor | None] = [None] * len(fake)
        if self.detector is not None:  # reconstructed events, weighted by efficiency × acceptance
            fake, w = self.detector.apply(fake)
            weights = [wc / wc.mean(-1, keepdim=True).clamp(min=1e-12) for wc in w]
        fake_feats = [self.features(f, c) for c, f in enumerate(fake)]
        bce = nn.functional.softplus

        def mean(v: Tensor, w: Tensor | None) -> Tensor:
            return v.mean(-1) if w is None else (w * v).mean(-1)

        d_loss = torch.zeros((), dtype=torch.float64)
        # the discriminators learn on the previous step's events, the generator's gradient comes
        # from fresh ones: a discriminator just fitted to the very events it then scores pushes
        # them apart, a bias toward broader densities
        current = [
            (f.detach(), None if w is None else w.detach())
            for f, w in zip(fake_feats, weights, strict=True)
        ]
        previous = self._previous_fake or current
        self._previous_fake = current
        for _ in range(self.d_steps):
            real_feats = [self.observed_batch(c) for c in range(self.n_channels)]
            real = self.logits(real_feats)
            gen = self.logits([f for f, _ in previous])
            d_loss = sum(
                (bce(-r).mean(-1) + mean(bce(g), w)).sum()
                for r, g, (_, w) in zip(real, gen, previous, strict=True)
            )
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
        # the generator's loss needs the discriminators' gradients with respect to their inputs
        # only: with their weights frozen for this pass the backward skips the weight gradients
        # (which the discriminators' own step would zero anyway); the numbers are the same
        self.discriminator.requires_grad_(False)
        try:
            gen = self.logits(fake_feats)
            shape = torch.stack(
                [mean(bce(-g), w) for g, w in zip(gen, weights, strict=True)], -1
            )  # (R, C) non-saturating
            chi2 = self.norm_chi2(theta, true_fake)
            g_loss = ((shape * self.channel_weight).sum(-1) + self.norm_scale * chi2).sum()
            opt_g.zero_grad()
            self.manual_backward(g_loss)
        finally:
            self.discriminator.requires_grad_(True)
        opt_g.step()
        sch_g.step()
        sch_d.step()
        step = int(self.step_count)
        self.step_count += 1
        last = step == self.steps - 1 or step == self.stop_at
        if step % self.trace_every and not last:
            return
        self.trace.append(theta.detach().cpu().numpy())
        self.trace_steps.append(step)
        self._check_settled(step)
        log = {"d_loss": d_loss.detach() / self.replicas, "g_shape": shape.detach()[0].sum()}
        log["norm_chi2"] = chi2.detach()[0]
        for name, v in zip(self.param_names, theta.detach()[0], strict=True):
            log[f"theta/{name}"] = v
        self.log_dict(log, prog_bar=False, on_step=True)
        self.log("chi2", chi2.detach()[0], prog_bar=True)

    def on_train_start(self) -> None:
        if self.trainer.world_size > 1:  # DDP: every process draws its own events
            torch.manual_seed(self.seed * 7919 + self.trainer.global_rank + 1)
        if isinstance(self.source, nn.Module):
            self.source.eval()  # a surrogate is a fixed function here, never in training mode
        if self.d_score and torch.isfinite(self.score_theta).all():  # resumed: the loaded score
            self._refresh_observed()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # tensors and ints only: checkpoints must load with torch.load(weights_only=True)
        theta = torch.as_tensor(np.stack(self.trace)) if self.trace else torch.zeros(0)
        checkpoint["outer_gan_trace"] = {"steps": list(self.trace_steps), "theta": theta}
        checkpoint["outer_gan_restarts"] = [
            {
                "step": r["step"],
                "from": r["from"],
                "distances": torch.as_tensor(r["distances"], dtype=torch.float64),
            }
            for r in self.restarts
        ]
        checkpoint["outer_gan_stop"] = {
            "settled_at": -1 if self.settled_at is None else self.settled_at,
            "stop_at": -1 if self.stop_at is None else self.stop_at,
            "passes": self._passes,
            "sigma": torch.zeros(0)
            if self.stop_sigma is None
            else torch.as_tensor(self.stop_sigma),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.restarts = [
            {"step": int(r["step"]), "from": int(r["from"]), "distances": r["distances"].tolist()}
            for r in checkpoint.get("outer_gan_restarts", [])
        ]
        tr = checkpoint.get("outer_gan_trace", {})
        self.trace_steps = [int(s) for s in tr.get("steps", [])]
        self.trace = [t.numpy() for t in tr.get("theta", torch.zeros(0))]
        st = checkpoint.get("outer_gan_stop")
        if st:
            self.settled_at = None if st["settled_at"] < 0 else int(st["settled_at"])
            self.stop_at = None if st["stop_at"] < 0 else int(st["stop_at"])
            self._passes = int(st["passes"])
            sigma = st["sigma"]
            self.stop_sigma = sigma.numpy() if len(sigma) else None
            if self.settled_at is not None:
                self.schedule_g.start_anneal(self.settled_at)
                self.schedule_d.start_anneal(self.settled_at)


def check_score_source(source: object, event_dim: int, detector: object) -> None:
    """``gan.d_score`` needs the source's density of 1-D events, with no detector between: one
    InputError line naming what is missing and the way out."""
    from surrogates.errors import InputError

    if not getattr(source, "has_density", False):
        raise InputError(
            f"gan.d_score needs a source with a density (the exact theory, a flow, VAIM); "
            f"{type(source).__name__} has none: set gan.d_score false"
        )
    if event_dim != 1:
        raise InputError(
            f"gan.d_score tabulates the score along a 1-D event variable; these events are "
            f"{event_dim}-D: set gan.d_score false"
        )
    if detector is not None:
        raise InputError(
            "gan.d_score needs the density of the reconstructed events, which a detector "
            "changes: set gan.d_score false with a detector"
        )


def source_score(
    source: object,
    nodes: Tensor,
    theta: Tensor,
    c: int,
    step: Tensor | None,
    bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """∂ log p_c(x | θ)/∂θ of channel c at the (M,) 1-D ``nodes``, (M, P): by autograd where the
    source's log_prob carries gradients in θ, else (a NumPy theory) by central differences of
    ``step`` (P,), one-sided where θ ± step would leave the box ``bounds`` = (low, high).

    >>> from surrogates.sampling import InverseCDFSampler
    >>> from surrogates.theory import ProxyTheory
    >>> proxy = ProxyTheory()
    >>> x = torch.linspace(0.2, 0.9, 5, dtype=torch.float64)
    >>> auto = source_score(InverseCDFSampler(proxy), x, proxy.truth, 0, None)
    >>> step = 1e-5 * (proxy.prior_high - proxy.prior_low)
    >>> diff = source_score(_NoGrad(InverseCDFSampler(proxy)), x, proxy.truth, 0, step)
    >>> bool(torch.allclose(auto, diff, rtol=1e-5, atol=1e-6))
    True
    """
    from surrogates.theory import NoGradientError

    m = nodes.shape[0]
    x = nodes.detach().to(torch.float64).view(m, 1, 1)
    t = theta.detach().to(torch.float64).expand(m, -1).clone().requires_grad_(True)
    grad = None
    try:
        with torch.enable_grad():
            lp = source.log_prob(x, t)[:, c, 0]
            if lp.requires_grad:
                (grad,) = torch.autograd.grad(lp.sum(), t, allow_unused=True)
    except NoGradientError:  # a NumPy theory: its densities are plain numbers
        grad = None
    if grad is not None and torch.isfinite(grad).all():
        return grad.detach().to(torch.float64)
    if step is None:
        raise ValueError("the source's log_prob has no gradient in θ: give a difference step")
    t = t.detach()
    cols = []
    with torch.no_grad():
        for k in range(t.shape[1]):
            up, down = t.clone(), t.clone()
            up[:, k] += float(step[k])
            down[:, k] -= float(step[k])
            if bounds is not None:  # one-sided at a face of the box: θ ± step stays inside it
                up[:, k] = up[:, k].clamp(max=float(bounds[1][k]))
                down[:, k] = down[:, k].clamp(min=float(bounds[0][k]))
            diff = source.log_prob(x, up)[:, c, 0] - source.log_prob(x, down)[:, c, 0]
            cols.append(diff.to(torch.float64) / (up[0, k] - down[0, k]))
    return torch.stack(cols, -1)


class _NoGrad:
    """A density source whose log_prob carries no gradient in θ, for the doctest and the tests."""

    def __init__(self, source: object) -> None:
        self.source = source

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        with torch.no_grad():
            return self.source.log_prob(x, theta.detach())


def interpolate(x: Tensor, nodes: Tensor, values: Tensor) -> Tensor:
    """``values`` (M, P) at the (M,) increasing ``nodes``, linear in x between them and held at
    the end values outside: x (…) → (…, P), differentiable in x between the nodes.

    >>> v = torch.tensor([[0.0], [2.0], [2.0]])
    >>> interpolate(torch.tensor([-1.0, 0.5, 1.5, 9.0]), torch.tensor([0.0, 1.0, 2.0]), v)[:, 0].tolist()
    [0.0, 1.0, 2.0, 2.0]
    """
    t = nodes.to(x.dtype).contiguous()
    i = torch.searchsorted(t, x.contiguous()).clamp(1, t.shape[0] - 1)
    lo, hi = t[i - 1], t[i]
    frac = ((x - lo) / (hi - lo).clamp_min(torch.finfo(t.dtype).tiny)).clamp(0.0, 1.0)
    v = values.to(x.dtype)
    return v[i - 1] + frac.unsqueeze(-1) * (v[i] - v[i - 1])


def ks_distance(x: Tensor, w: Tensor | None, observed: Tensor) -> Tensor:
    """Kolmogorov–Smirnov distance of each row of x (R, n) (weights w (R, n), or equal) from the
    observed values (N,): the largest gap between the two empirical CDFs, (R,).

    >>> obs = torch.linspace(0, 1, 1001, dtype=torch.float64)
    >>> x = torch.stack([torch.linspace(0, 1, 501), torch.linspace(0, 0.5, 501)]).double()
    >>> ks_distance(x, None, obs).round(decimals=2).tolist()
    [0.0, 0.5]
    """
    order = torch.argsort(x, -1)
    xs = torch.gather(x, -1, order)
    w = torch.ones_like(x) if w is None else w.to(x.dtype)
    ws = torch.gather(w, -1, order)
    total = ws.sum(-1, keepdim=True).clamp(min=1e-300)
    upper = ws.cumsum(-1) / total
    lower = upper - ws / total
    ref = torch.sort(observed.to(x.dtype)).values
    at = torch.searchsorted(ref, xs.contiguous(), right=True).to(x.dtype) / len(ref)
    return torch.maximum((upper - at).abs(), (at - lower).abs()).max(-1).values


def quantile_knots(events: Tensor, k: int) -> Tensor:
    """(k + 1, d) knots of each event variable's CDF: the events' quantiles at 0, 1/k, …, 1,
    nudged apart where equal (discrete values) so that tied knots stay in order (`empirical_cdf`
    also takes a zero-width interval: every event at one value). Events tied at one value sit at
    the bottom of their CDF's jump; continuous data have no ties.

    >>> quantile_knots(torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]]), 4)[:, 0].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    levels = np.linspace(0.0, 1.0, k + 1)  # numpy: torch.quantile refuses inputs over 2^24
    knots = torch.as_tensor(np.quantile(events.detach().cpu().numpy(), levels, axis=0))
    knots = knots.to(events)  # (k + 1, d)
    span = (knots[-1] - knots[0]).clamp(min=1e-12)
    step = torch.arange(k + 1, dtype=knots.dtype, device=knots.device).unsqueeze(-1)
    return torch.cummax(knots + 1e-9 * span * step, dim=0).values


def empirical_cdf(x: Tensor, knots: Tensor) -> Tensor:
    """Each event variable's CDF at x (…, d), linear between the (k + 1, d) ``knots`` (equal
    probability apart), 0 below and 1 above them: differentiable in x between the knots.

    >>> knots = torch.tensor([[0.0], [1.0], [3.0]])
    >>> empirical_cdf(torch.tensor([[-1.0], [0.5], [2.0], [5.0]]), knots)[:, 0].tolist()
    [0.0, 0.25, 0.75, 1.0]
    >>> same = quantile_knots(torch.ones(10, 1, dtype=torch.float64), 4)
    >>> empirical_cdf(torch.tensor([[1.0], [2.0]], dtype=torch.float64), same)[:, 0].tolist()
    [0.0, 1.0]
    """
    k = knots.shape[0] - 1
    levels = (torch.arange(k + 1, dtype=x.dtype, device=x.device) / k).unsqueeze(-1)
    # the levels j/k interpolated between the knots (a zero-width interval: no 0/0)
    return torch.cat(
        [interpolate(x[..., j], knots[:, j], levels) for j in range(knots.shape[1])], -1
    )


def _usable(cov: Tensor) -> bool:
    """A covariance whose variances are finite and positive."""
    var = cov.diagonal()
    return bool(torch.isfinite(cov).all() and (var > 0).all())


@torch.no_grad()
def sampled_fisher(
    source,  # noqa: ANN001 - any EventSource
    theta: Tensor,
    counts: np.ndarray,
    box: ParameterGenerator,
    n: int = 100_000,
    bins: int = 100,
    seed: int = 0,
) -> Tensor:
    """The binned Fisher information of the source's own sampled histograms at θ, (P, P).

    For a source without a likelihood (an event generator, a GAN): n events per channel at θ
    and at θ ± h per parameter (h = 1% of the box, the same random numbers each time),
    histogrammed in ``bins`` bins of equal content at θ (of the first event coordinate: a narrow
    peak gets bins of its own), with expected counts μ_cb = the data's ``counts`` ×
    norm_c(θ′)/norm_c(θ) × (fraction in bin b at θ′). I = Σ_cb ∂μ_cb ∂μ_cbᵀ / μ_cb, with the two
    derivatives of each product taken from independent draws (two seeds): the sampling noise of
    a finite difference, squared, would otherwise add to I. A coarse estimate, for step sizes.
    """
    theta = theta.to(torch.float64)
    low, high = box.low.to(theta), box.high.to(theta)
    h = 1e-2 * (high - low)
    float32 = _float32(source)

    def draw(t: Tensor, s: int) -> tuple[list[Tensor], Tensor]:
        t = torch.minimum(torch.maximum(t, low), high).unsqueeze(0)
        gen = torch.Generator().manual_seed(s)
        events = source.sample(t.to(torch.float32) if float32 else t, n, generator=gen)
        norms = source.norms(t.to(torch.float32) if float32 else t).to(torch.float64)[0]
        return [e[0, :, 0].to(torch.float64) for e in events], norms

    events0, norms0 = draw(theta, seed)
    inner = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    edges = [torch.quantile(e, inner).unique() for e in events0]  # interior edges per channel

    def expected(events: list[Tensor], norms: Tensor) -> Tensor:
        parts = []
        for c, (e, edge) in enumerate(zip(events, edges, strict=True)):
            frac = torch.bincount(torch.bucketize(e, edge), minlength=len(edge) + 1) / len(e)
            parts.append(float(counts[c]) * norms[c] / norms0[c] * frac.to(torch.float64))
        return torch.cat(parts)

    def jacobian(s: int) -> Tensor:
        columns = []
        for i in range(len(theta)):
            step = torch.zeros_like(theta)
            step[i] = h[i]
            up, down = expected(*draw(theta + step, s)), expected(*draw(theta - step, s))
            columns.append((up - down) / (2 * h[i]))
        return torch.stack(columns, -1)  # (bins, P)

    mu = expected(events0, norms0)
    j1, j2 = jacobian(seed + 1), jacobian(seed + 2)
    inv = torch.where(mu > 0, 1 / mu.clamp(min=1e-300), torch.zeros_like(mu))
    cross = torch.einsum("bi,bj,b->ij", j1, j2, inv)
    return (cross + cross.T) / 2


def _float32(source) -> bool:  # noqa: ANN001
    """Whether the source computes in float32 (a trained surrogate's networks)."""
    params = getattr(source, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first is not None and first.dtype == torch.float32
