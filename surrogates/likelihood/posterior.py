"""The exact posterior: MCMC on the extended likelihood times the uniform prior box.

Near a face of the prior box the Cramér–Rao σ is the wrong yardstick for a width (the box cuts
the likelihood); the posterior p(θ | data) ∝ L(θ) · 1[θ in box] is the right one. It is sampled
with emcee's ensemble sampler (differential-evolution moves, the log-probability vectorized over
the walkers, log θ for parameters whose box starts at ≥ 0), started in a ball of ±½ σ_CRB around the maximum-likelihood θ (reflected into the
box), and judged by the rank-normalized split R̂ and the bulk effective sample size of ArviZ
(arviz-stats, treating each walker as a chain), the ESS capped by emcee's integrated
autocorrelation time (walkers of an ensemble are not independent chains).

The likelihood is the one the package's MLE maximizes: unbinned extended (`extended`), or binned
and folded through the detector (`FoldedModel`); for large 1-D data sets (more than
``unbinned_max`` events) a fine binned extended likelihood (`BinnedEvents`, Gauss–Legendre in
every bin) that agrees with the unbinned one (docs/notes/2026-12-01-exact-posterior.md) at a
fraction of the cost.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import emcee
import numpy as np
import torch
from arviz_stats.base import array_stats
from torch import Tensor

from surrogates.data import ObservedData
from surrogates.errors import InputError
from surrogates.likelihood.binned import BinnedEvents
from surrogates.likelihood.extended import crb_std, fit_mle, negative_log_likelihood
from surrogates.likelihood.folded import FoldedModel
from surrogates.theory import Theory

__all__ = ["Posterior", "exact_posterior", "posterior_nll"]

NLL = Callable[[Tensor], Tensor]


@dataclass
class Posterior:
    """Summary and thinned draws of the exact posterior.

    Attributes:
        mean, std: posterior mean and standard deviation per parameter, (P,).
        draws: thinned draws pooled over walkers, (S, P).
        rhat: rank-normalized split R̂ per parameter (walkers as chains).
        ess: effective sample size per parameter (the smaller of ArviZ's bulk ESS and emcee's
            draws / integrated autocorrelation time).
        converged: every R̂ < 1.01 and every ESS ≥ min_ess.
        seconds: wall time of the sampling.
        method: sampler, walkers, steps and diagnostics in words.
        likelihood: which likelihood was sampled.
        param_names: the parameters' names.
        acceptance: mean acceptance fraction of the walkers.
    """

    mean: np.ndarray
    std: np.ndarray
    draws: np.ndarray
    rhat: np.ndarray
    ess: np.ndarray
    converged: bool
    seconds: float
    method: str
    likelihood: str = ""
    param_names: list[str] = field(default_factory=list)
    acceptance: float = float("nan")

    def to_dict(self) -> dict:
        """JSON-able summary (without the draws)."""
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "rhat": self.rhat.tolist(),
            "ess": self.ess.tolist(),
            "converged": bool(self.converged),
            "seconds": float(self.seconds),
            "method": self.method,
            "likelihood": self.likelihood,
            "n_draws": int(len(self.draws)),
            "acceptance": float(self.acceptance),
        }


def posterior_nll(
    theory: Theory,
    data: ObservedData,
    folded: FoldedModel | None = None,
    unbinned_max: int = 5_000,
    bins: int = 1000,
) -> tuple[NLL, str]:
    """−log L(θ) (B, P) → (B,) of the data, and its description: folded and binned through the
    detector when there is one; else unbinned, or for 1-D data of more than ``unbinned_max``
    events the binned extended likelihood on ``bins`` bins per channel."""
    if folded is not None:
        return _sparse_folded_nll(folded, data), (
            "binned Poisson, folded through the detector (as the MLE; response entries below "
            "1e-12 of its largest dropped)"
        )
    if theory.event_dim == 1 and int(data.counts.sum()) > unbinned_max:
        binned = BinnedEvents(theory, data.events, data.norms, n_bins=bins, nodes=4)
        binned.exposure = torch.as_tensor(data.exposure, dtype=theory.dtype)
        return binned.nll, (
            f"extended, binned: {bins} bins per channel (uniform in logit x), 4 Gauss–Legendre "
            f"nodes each ({int(data.counts.sum())} events > {unbinned_max})"
        )
    return (
        lambda t: negative_log_likelihood(theory, t, data),
        "extended, unbinned (as the MLE)",
    )


def _sparse_folded_nll(folded: FoldedModel, data: ObservedData) -> NLL:
    """`FoldedModel.nll_function` with the detector's response as a sparse matrix: entries below
    1e-12 of the largest (Gaussian tails; ~97% of them for DIS) dropped, the matrix product 6×
    faster; −log L moves by < 1e-4 (tests/test_posterior.py; measured 7e-7 at 16 prior draws)."""
    resp = folded.response
    kept = torch.where(resp.abs() > 1e-12 * resp.abs().max(), resp, torch.zeros_like(resp))
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products are supported
        warnings.simplefilter("ignore", UserWarning)
        sparse = kept.to_sparse_csr()
    counts = folded.histogram(data.events)
    dtype = folded.theory.dtype
    lum = torch.as_tensor(np.asarray(data.exposure, dtype=float), dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    nodes = folded.nodes.unsqueeze(0)

    def nll(theta: Tensor) -> Tensor:
        dens = folded.theory._density(nodes.expand(theta.shape[0], -1, -1), theta)  # (B, C, Q)
        b, c, q = dens.shape
        folded_ = (sparse @ dens.reshape(b * c, q).T).T.reshape(b, c, -1)
        mu = (folded_ * lum.view(1, -1, 1)).clamp(min=tiny)
        return (mu - counts * mu.log()).sum((-1, -2))

    return nll


def _start_ball(
    start: np.ndarray,
    scale: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """n points start + scale·z (z ~ N(0, 1)), reflected at the box's faces and clipped into it."""
    pts = start + scale * rng.standard_normal((n, len(start)))
    pts = np.where(pts < low, 2 * low - pts, pts)
    pts = np.where(pts > high, 2 * high - pts, pts)
    return np.clip(pts, low, high)


def _diagnostics(chain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R̂ and ESS per parameter of a chain (steps, walkers, P); a walker that never moved makes
    emcee's τ undefined: then τ = the chain's length (one draw per walker)."""
    by_walker = np.moveaxis(chain, 1, 0)  # (walkers, steps, P)
    rhat = np.asarray(array_stats.rhat(by_walker, chain_axis=0, draw_axis=1), dtype=float)
    ess = np.asarray(array_stats.ess(by_walker, chain_axis=0, draw_axis=1), dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = emcee.autocorr.integrated_time(chain, tol=0)  # tol=0: an estimate, no warning
    tau = np.where(np.isfinite(tau), np.maximum(tau, 1.0), chain.shape[0])
    ess = np.minimum(np.nan_to_num(ess, nan=0.0), chain.shape[0] * chain.shape[1] / tau)
    return np.nan_to_num(rhat, nan=np.inf), ess


def exact_posterior(
    theory: Theory,
    data: ObservedData,
    *,
    folded: FoldedModel | None = None,
    start: Sequence[float] | None = None,
    seed: int = 0,
    walkers: int | None = None,
    steps: int = 6000,
    burn: int = 300,
    check_every: int = 250,
    min_ess: int = 1000,
    max_draws: int = 4000,
    unbinned_max: int = 5_000,
    bins: int = 1000,
    log_params: Sequence[bool] | None = None,
) -> Posterior:
    """Sample the posterior L(θ | data) × uniform prior box with emcee.

    After ``burn`` steps the sampler runs in blocks of ``check_every`` steps until every
    parameter has R̂ < 1.01 and ESS ≥ ``min_ess``, or ``steps`` steps after the burn-in.

    Args:
        theory: a theory with a density (NumPy black boxes work: no gradients are needed).
        data: observed events and measured norms (validated against the theory).
        folded: the detector's folded model, when the data are reconstructed events.
        start: the centre of the walkers' starting ball (e.g. the MLE); None: fit the MLE.
        seed: seed of the starting ball and of the sampler.
        walkers: ensemble size, ≥ 2 P (None: 16, or 2 P for more than 8 parameters).
        steps: most steps after the burn-in.
        burn: steps discarded at the start.
        check_every: steps between convergence checks.
        min_ess: the effective sample size per parameter that counts as converged.
        max_draws: most draws kept (thinned evenly).
        unbinned_max: more events than this in a 1-D data set with no detector: the fine binned
            likelihood (``bins`` bins per channel; it agrees with the unbinned one to ≤ 0.02
            σ_CRB in θ and 0.5% in σ at 1000 bins, cases A and B) at a fraction of the cost.
        bins: bins per channel of the fine binned likelihood.
        log_params: per parameter, whether to sample log θ (None: those whose box starts at
            ≥ 0).

    Returns:
        The `Posterior`: mean, σ, thinned draws, R̂, ESS, whether it converged, seconds.
    """
    if not getattr(theory, "has_density", False):
        raise InputError(
            f"module-2 '{theory.name}' has no density: there is no exact posterior to sample"
        )
    n_par = theory.n_params
    walkers = max(16, 2 * n_par) if walkers is None else walkers
    if log_params is not None and len(log_params) != n_par:
        raise InputError(
            f"posterior: log_params has {len(log_params)} entries; theory '{theory.name}' has "
            f"{n_par} parameters"
        )
    if walkers < 2 * n_par or steps < 1 or burn < 0 or check_every < 1:
        raise InputError(
            f"posterior: walkers ≥ {2 * n_par} (2 × parameters), steps ≥ 1, burn ≥ 0 and "
            f"check_every ≥ 1 are needed; got walkers={walkers}, steps={steps}, burn={burn}, "
            f"check_every={check_every}"
        )
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    if log_params is not None and (np.asarray(log_params, dtype=bool) & (low < 0)).any():
        bad = [
            n for n, b, lo in zip(theory.param_names, log_params, low, strict=True) if b and lo < 0
        ]
        raise InputError(
            f"posterior: log θ needs a box that starts at ≥ 0; {', '.join(bad)} can be "
            "negative: set their log_params entries false"
        )
    data.validate(theory)
    t0 = time.perf_counter()
    nll, kind = posterior_nll(theory, data, folded, unbinned_max, bins)
    if start is None:
        start = (folded.fit(data, seed=seed) if folded else fit_mle(theory, data, seed=seed)).theta
    start = np.clip(np.asarray(start, dtype=float), low, high)
    counts = data.counts
    try:  # σ_CRB sizes the walkers' starting ball; at an MLE on faces the information is singular
        if folded is not None:
            scale = np.asarray(folded.crb_std(start, counts), dtype=float)
        else:
            scale = np.asarray(crb_std(theory, start, counts), dtype=float)
    except (torch.linalg.LinAlgError, ValueError):
        scale = np.full(len(start), np.nan)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1e-3 * (high - low))

    # a parameter whose box starts at ≥ 0 (a norm, an exponent) is sampled in log θ, the uniform
    # prior's Jacobian θ added: the likelihood of a norm N times a shape is near Gaussian in log N
    # (emcee's τ 60–110 steps → about 20 on proxy case B). Sampling linearly those whose MLE is
    # < 2 σ_CRB above 0 helped DIS (β) but left 0 of 3 proxy case-C posteriors converged (2 of 3
    # with log θ): docs/notes/2026-12-01-exact-posterior.md. R̂ and ESS are those of θ itself
    pos = low >= 0
    if log_params is not None:
        pos = np.asarray(log_params, dtype=bool)

    def to_theta(z: np.ndarray) -> np.ndarray:
        theta = z.copy()
        with np.errstate(over="ignore"):  # far outside the box: inf, rejected
            theta[..., pos] = np.exp(z[..., pos])
        return theta

    def log_prob(z: np.ndarray) -> np.ndarray:
        thetas = to_theta(z)
        out = np.full(len(thetas), -np.inf)
        inside = ((thetas >= low) & (thetas <= high)).all(1)
        if inside.any():
            with torch.no_grad():
                t = torch.as_tensor(thetas[inside], dtype=theory.dtype)
                value = -nll(t).numpy() + z[inside][:, pos].sum(1)
            out[inside] = np.where(np.isfinite(value), value, -np.inf)
        return out

    rng = np.random.default_rng(seed)
    p0 = _start_ball(start, 0.5 * scale, low, high, walkers, rng)
    p0[:, pos] = np.log(np.maximum(p0[:, pos], 1e-9 * (high - low)[pos]))
    sampler = emcee.EnsembleSampler(
        walkers, n_par, log_prob, moves=emcee.moves.DEMove(), vectorize=True
    )
    sampler.random_state = np.random.RandomState(seed).get_state()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest on a shared machine
    try:
        state = sampler.run_mcmc(p0, burn, progress=False) if burn else p0
        sampler.reset()
        done = 0
        while done < steps:
            block = min(check_every, steps - done)
            state = sampler.run_mcmc(state, block, progress=False)
            done += block
            chain = to_theta(sampler.get_chain())
            rhat, ess = _diagnostics(chain) if done >= 4 else (np.full(n_par, np.inf),) * 2
            if np.all(rhat < 1.01) and np.all(ess >= min_ess):
                break
    finally:
        torch.set_num_threads(threads)
    chain = to_theta(sampler.get_chain())
    if done < 4:
        rhat, ess = np.full(n_par, np.nan), np.zeros(n_par)
    flat = chain.reshape(-1, n_par)
    converged = bool(np.all(rhat < 1.01) and np.all(ess >= min_ess))
    thin = max(1, math.ceil(len(flat) / max_draws))
    acceptance = float(np.mean(sampler.acceptance_fraction))
    logged = ", ".join(n for n, lg in zip(theory.param_names, pos, strict=True) if lg) or "none"
    return Posterior(
        mean=flat.mean(0),
        std=flat.std(0, ddof=1) if len(flat) > 1 else np.full(n_par, np.nan),
        draws=flat[::thin],
        rhat=rhat,
        ess=ess,
        converged=converged,
        seconds=time.perf_counter() - t0,
        method=(
            f"emcee {walkers} walkers × {done} steps after {burn} burn-in (differential-"
            f"evolution moves, log θ for {logged}), acceptance {acceptance:.2f}; R̂ "
            "rank-normalized split (arviz-stats, walkers as chains), ESS = min(arviz bulk ESS, "
            "draws / emcee τ)"
        ),
        likelihood=kind,
        param_names=list(theory.param_names),
        acceptance=acceptance,
    )
