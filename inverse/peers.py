"""Amortized peers of the outer GAN: sbi's NPE and flow-matching NPE (FMPE), and the VAIM inverse.

A peer is trained once per theory and case on simulations (θ drawn uniformly from the prior box,
data = `simulate_observed` at θ with the case's expected counts), then gives posterior draws for
any observed data set of that case in a fraction of a second. The data enter through a fixed-length
**summary**: per channel, the normalized histogram of the events in bins at quantiles of the
simulated events (every bin equally filled on average over the prior), then the log measured norm
and the log count of each channel. A histogram is invariant under permutations of the events.

The simulation budget is matched to the outer GAN (`matched_n_sims`): one GAN fit of a case
generates ``steps × replicas × events_per_step × channels`` events; a peer gets that many events
in simulated data sets of the case's size. sbi is an optional extra (``pip install .[sbi]``) and is
imported only when a peer is trained.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from surrogates.data import ObservedData, simulate_observed
from surrogates.errors import InputError
from surrogates.theory import Theory

__all__ = [
    "METHODS",
    "PeerPosterior",
    "TrainedPeer",
    "matched_n_sims",
    "quantile_edges",
    "summaries",
    "simulate_training_set",
    "train_peer",
    "vaim_posterior",
]

METHODS = ("npe", "fmpe")


@dataclass
class PeerPosterior:
    """A peer's answer for one data set: posterior mean, std, draws (n, P), and seconds taken."""

    mean: np.ndarray
    std: np.ndarray
    draws: np.ndarray
    seconds: float


def _sbi():  # noqa: ANN202
    try:
        import sbi.inference
        import sbi.utils
    except ImportError as exc:
        raise InputError(
            f"the NPE/FMPE peers need sbi ({exc}); install it: pip install .[sbi]"
        ) from None
    return sbi.inference, sbi.utils


def matched_n_sims(
    steps: int, replicas: int, events_per_step: int, counts: Sequence[float]
) -> tuple[int, int]:
    """(simulated data sets, events) for a peer matched to one outer-GAN fit of a case: the fit
    generates steps × replicas × events_per_step events per channel; the peer gets as many events
    in data sets of the case's expected size."""
    events = int(steps) * int(replicas) * int(events_per_step) * len(counts)
    return max(events // int(round(sum(counts))), 1), events


def quantile_edges(events: Sequence[np.ndarray], bins: int, x_low: float, x_high: float) -> list:
    """Per channel, ``bins + 1`` edges at quantiles of the pooled events (first coordinate), with
    the range's ends as outer edges, so every bin holds ~1/bins of the events over the prior."""
    if bins < 1:
        raise InputError(f"bins must be ≥ 1, got {bins}")
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    return [np.concatenate([[x_low], np.quantile(e[:, 0], inner), [x_high]]) for e in events]


def summaries(data: Sequence[ObservedData], edges: Sequence[np.ndarray]) -> np.ndarray:
    """The (n_sets, C × bins + 2C) summaries: per channel the normalized histogram of the events
    in ``edges``, then log measured norms and log counts per channel."""
    rows = []
    for d in data:
        if len(d.events) != len(edges):
            raise InputError(f"data have {len(d.events)} channels, the edges {len(edges)}")
        parts = []
        for ev, e in zip(d.events, edges, strict=True):
            h = np.histogram(np.clip(ev[:, 0], e[0], e[-1]), e)[0].astype(float)
            parts.append(h / max(h.sum(), 1.0))
        parts.append(np.log(np.asarray(d.norms, dtype=float)))
        parts.append(np.log(np.maximum(d.counts, 1)).astype(float))
        rows.append(np.concatenate(parts))
    return np.stack(rows)


def simulate_training_set(
    theory: Theory, counts: Sequence[float], n_sims: int, seed: int
) -> tuple[np.ndarray, list[ObservedData]]:
    """θ uniform in the prior box and a data set at each (the case's expected counts)."""
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    rng = np.random.default_rng(seed)
    thetas = low + (high - low) * rng.random((n_sims, len(low)))
    seeds = rng.integers(2**62, size=n_sims)
    data = [simulate_observed(theory, t, counts, seed=int(s)) for t, s in zip(thetas, seeds)]
    return thetas, data


@dataclass
class TrainedPeer:
    """An amortized posterior for one theory and case, with what it cost."""

    method: str
    theory: Theory
    counts: tuple
    edges: list
    posterior: object  # sbi's posterior
    n_sims: int
    events_simulated: int
    sim_seconds: float
    train_seconds: float
    epochs: int
    info: dict = field(default_factory=dict)

    def sample(self, data: ObservedData, n_draws: int = 2000, seed: int = 0) -> PeerPosterior:
        """Posterior draws for one data set (inside the prior box)."""
        t0 = time.perf_counter()
        x = torch.as_tensor(summaries([data], self.edges)[0], dtype=torch.float32)
        torch.manual_seed(seed)
        draws = self.posterior.sample((n_draws,), x=x, show_progress_bars=False)
        draws = draws.double().numpy()
        return PeerPosterior(draws.mean(0), draws.std(0, ddof=1), draws, time.perf_counter() - t0)


def train_peer(
    theory: Theory,
    counts: Sequence[float],
    method: str = "npe",
    n_sims: int = 2000,
    seed: int = 0,
    bins: int = 16,
    max_epochs: int = 200,
    batch_size: int = 256,
    learning_rate: float = 5e-4,
    stop_after_epochs: int = 20,
) -> TrainedPeer:
    """Simulate ``n_sims`` data sets and train sbi's NPE (neural spline flow) or FMPE on them."""
    if method not in METHODS:
        raise InputError(f"unknown peer '{method}': choose one of {', '.join(METHODS)}")
    if n_sims < 20:
        raise InputError(f"n_sims must be ≥ 20 to train a peer, got {n_sims}")
    inference_mod, utils = _sbi()
    t0 = time.perf_counter()
    thetas, data = simulate_training_set(theory, counts, n_sims, seed)
    k = min(n_sims, 500)  # the quantile edges from the first sets' events
    pooled = [np.concatenate([d.events[c] for d in data[:k]]) for c in range(theory.n_channels)]
    edges = quantile_edges(pooled, bins, float(theory.x_low[0]), float(theory.x_high[0]))
    xs = torch.as_tensor(summaries(data, edges), dtype=torch.float32)
    sim_seconds = time.perf_counter() - t0
    prior = utils.BoxUniform(theory.prior_low.float(), theory.prior_high.float())
    torch.manual_seed(seed)
    t1 = time.perf_counter()
    if method == "npe":
        inference = inference_mod.NPE(
            prior=prior, density_estimator="nsf", show_progress_bars=False
        )
    else:
        inference = inference_mod.FMPE(prior=prior, show_progress_bars=False)
    inference.append_simulations(torch.as_tensor(thetas, dtype=torch.float32), xs)
    estimator = inference.train(
        training_batch_size=batch_size,
        learning_rate=learning_rate,
        max_num_epochs=max_epochs,
        stop_after_epochs=stop_after_epochs,
    )
    posterior = inference.build_posterior(estimator)
    summary = getattr(inference, "summary", {}) or {}
    epochs = len(summary.get("training_loss", [])) or int(getattr(inference, "epoch", 0))
    return TrainedPeer(
        method=method,
        theory=theory,
        counts=tuple(float(c) for c in counts),
        edges=edges,
        posterior=posterior,
        n_sims=n_sims,
        events_simulated=int(sum(int(d.counts.sum()) for d in data)),
        sim_seconds=sim_seconds,
        train_seconds=time.perf_counter() - t1,
        epochs=epochs,
        info={
            "bins": bins,
            "best_validation_loss": float(summary["best_validation_loss"][-1])
            if summary.get("best_validation_loss")
            else None,
        },
    )


def vaim_posterior(
    theory: Theory, data: ObservedData, name: str = "vaim", n_draws: int = 2000, seed: int = 0
) -> PeerPosterior:
    """θ draws from the VAIM backward mapper fed with kernel estimates of the observed densities
    (smoothed in logit of the scaled x, then mapped back onto the VAIM's grid)."""
    from scipy.stats import gaussian_kde

    from surrogates.zoo import load_surrogate

    t0 = time.perf_counter()
    model = _vaim_cache.get(name)
    if model is None:
        model = _vaim_cache[name] = load_surrogate(name, theory)
    grid = model.grid.double().numpy()
    lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
    pdfs = []
    for ev in data.events:
        s = np.clip((ev[:, 0] - lo) / (hi - lo), 1e-9, 1 - 1e-9)
        sg = np.clip((grid - lo) / (hi - lo), 1e-9, 1 - 1e-9)
        y = np.log(s) - np.log1p(-s)
        dens = gaussian_kde(y)(np.log(sg) - np.log1p(-sg)) / (sg * (1 - sg) * (hi - lo))
        pdfs.append(dens / np.trapezoid(dens, grid))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        draws = model.invert(torch.as_tensor(np.stack(pdfs)[None]), n_draws, gen)[0]
    draws = draws.double().numpy()
    return PeerPosterior(draws.mean(0), draws.std(0, ddof=1), draws, time.perf_counter() - t0)


_vaim_cache: dict = {}
