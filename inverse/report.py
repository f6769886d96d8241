"""What an outer GAN run reports: θ ± σ against the Cramér–Rao bound and the MLE, and its files.

The steps after training, each a small function `inverse.training.fit_outer_gan` calls in turn:
`summarize` (θ, σ, pull from the replicas' traces), `compare_with_mle` (the likelihood's answer on
the same data), `compare_with_posterior` (the exact posterior's mean and σ: the width's yardstick
where the prior box cuts the likelihood), `write_outputs` (params.npz, metrics.json, config.yaml,
plots), `log_to_wandb`; `format_table` prints the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from inverse.faces import FACE_REACH, cut_by_box
from inverse.plots import plot_curves, plot_events, plot_traces
from surrogates.data import ObservedData
from surrogates.ensemble import surrogate_share
from surrogates.likelihood import (
    FoldedModel,
    MLEResult,
    Posterior,
    crb_std,
    exact_posterior,
    fisher_information,
    fit_mle,
    negative_log_likelihood,
    nll_excess,
)
from surrogates.likelihood.binned import BinnedEvents
from surrogates.likelihood.surrogate import SurrogateLikelihood, quantile_edges
from surrogates.runs import write_run_files
from surrogates.theory import Theory
from surrogates.theory.base import Module2
from surrogates.tracking import finish_wandb, per_name

__all__ = [
    "Yardstick",
    "SurrogateYardstick",
    "make_yardstick",
    "Summary",
    "interval_factor",
    "replica_estimate",
    "summarize",
    "face_cut",
    "disagreement",
    "compare_with_mle",
    "compare_with_posterior",
    "write_outputs",
    "log_to_wandb",
    "format_table",
]


# above this many events in a channel, the face rule's reweighting evaluates the likelihood of
# the events' fine histograms (Yardstick.loglik): case A's 10^5 events cost 20 times more unbinned
BINNED_ABOVE = 20_000


@dataclass
class Yardstick:
    """The likelihood of the data, the GAN's yardstick: the exact theory's, or binned and folded
    through the detector when there is one."""

    theory: Theory
    data: ObservedData
    folded: FoldedModel | None = None

    def covariance(self, theta: np.ndarray) -> np.ndarray:
        """The Cramér–Rao covariance for the observed counts (finite differences for black boxes)."""
        if self.folded is not None:
            info = self.folded.fisher_information(theta, self.data.counts)
        else:
            info = fisher_information(self.theory, theta, self.data.counts)
        return torch.linalg.pinv(info).numpy()

    def crb_std(self, theta: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """σ_CRB per parameter at θ for these counts."""
        if self.folded is not None:
            return self.folded.crb_std(theta, counts)
        return crb_std(self.theory, theta, counts)

    def fit(self, start: np.ndarray) -> MLEResult:
        """The maximum-likelihood fit of the data, started at ``start``."""
        if self.folded is None:
            return fit_mle(self.theory, self.data, start=start)
        return self.folded.fit(self.data, start=start)

    def _nll(self):  # noqa: ANN202 - θ (B, P) → −log L (B,)
        """−log L of the data as a batched torch function of θ."""
        if self.folded is None:
            return lambda t: negative_log_likelihood(self.theory, t, self.data)
        return self.folded.nll_function(self.folded.histogram(self.data.events), self.data.exposure)

    def nll_excess(self, theta: np.ndarray, mle: MLEResult) -> float:
        """−log L(θ) − min −log L: valid where the likelihood is not Gaussian."""
        return nll_excess(self._nll(), theta, mle, self.theory.dtype)

    @cached_property
    def _loglik_nll(self):  # noqa: ANN202 - θ (B, P) → −log L (B,)
        """`loglik`'s −log L, built once per yardstick (the reweighting calls it every round): the
        events' own, or above BINNED_ABOVE events that of their histograms (`BinnedEvents`)."""
        big = max(len(e) for e in self.data.events) > BINNED_ABOVE
        if self.folded is not None or self.theory.event_dim != 1 or not big:
            return self._nll()
        counts = np.array([len(e) for e in self.data.events], dtype=float)
        # the norms that give BinnedEvents the data's exposure (L_c = N_c / norm_c)
        binned = BinnedEvents(self.theory, self.data.events, counts / self.data.exposure)
        # the data's own exposure (an empty channel's N/norm would be 0/0)
        binned.exposure = torch.as_tensor(self.data.exposure, dtype=self.theory.dtype)
        return binned.nll

    def loglik(self, theta: np.ndarray, batch: int = 1000) -> np.ndarray:
        """log L of the data at each row of θ (B, P), up to a constant, in batches of ``batch``
        (the face rule's reweighting: thousands of θ). The extended likelihood of the events;
        for a 1-D theory with more than BINNED_ABOVE events in a channel, that of their
        histograms on `BinnedEvents`' fine bins (its cost no longer grows with the events)."""
        dtype, nll = self.theory.dtype, self._loglik_nll
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        out = []
        with torch.no_grad():
            for start in range(0, len(theta), batch):
                t = torch.as_tensor(theta[start : start + batch], dtype=dtype)
                out.append(-nll(t).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def score(self, theta: np.ndarray) -> np.ndarray:
        """∇log L of the data at θ (P,): by autograd, or for a theory without gradients by
        central differences (one batched call) whose steps turn back at the box's faces, so that
        a θ on a face is never evaluated outside the box."""
        nll, dtype = self._nll(), self.theory.dtype
        t = torch.as_tensor(np.asarray(theta, dtype=float), dtype=dtype).unsqueeze(0)
        if self.theory.differentiable:
            t.requires_grad_(True)
            (grad,) = torch.autograd.grad(nll(t).sum(), t)
            return -grad[0].detach().numpy().astype(float)
        low, high = self.theory.prior_low.to(dtype), self.theory.prior_high.to(dtype)
        h = 1e-4 * (high - low)
        up = torch.minimum(
            t + torch.diag(h), high
        )  # row j: θ with θ_j moved up (at most to the face)
        down = torch.maximum(t - torch.diag(h), low)
        with torch.no_grad():
            values = nll(torch.cat([up, down]))
        p = t.shape[1]
        return -((values[:p] - values[p:]) / (up - down).diagonal()).numpy().astype(float)

    def posterior(self, start: np.ndarray | None = None, seed: int = 0) -> Posterior:
        """The exact posterior of the data (this likelihood × the uniform prior box), sampled
        by MCMC from a ball around ``start`` (the MLE; None: fitted first)."""
        return exact_posterior(self.theory, self.data, folded=self.folded, start=start, seed=seed)


class SurrogateYardstick:
    """The yardstick when the module-2 has no density (an event generator): the source itself
    as the model (`surrogates.likelihood.surrogate.SurrogateLikelihood`: its density, or its
    histogram template, on bins of equal observed counts per channel). Its Cramér–Rao σ is the
    surrogate's own and its MLE shares the surrogate's errors: not an independent yardstick,
    and labelled so in metrics.json.

    Args:
        source: the outer GAN's EventSource (a surrogate or an ensemble).
        module2: the data's module-2 (its box and channels).
        data: the observed events and measured norms.
        events_per_bin: observed events per bin (5 to 100 bins per channel).
    """

    folded = None

    def __init__(
        self,
        source,  # noqa: ANN001 - EventSource
        module2: Module2,
        data: ObservedData,
        events_per_bin: int = 50,
    ) -> None:
        self.theory, self.data = module2, data
        lo, hi = float(module2.x_low[0]), float(module2.x_high[0])
        bins = [int(np.clip(len(e) // events_per_bin, 5, 100)) for e in data.events]
        edges = [
            quantile_edges([e[:, 0]], b, lo, hi)[0] for e, b in zip(data.events, bins, strict=True)
        ]
        template = int(np.clip(10 * data.counts.max(), 100_000, 1_000_000))
        self.likelihood = SurrogateLikelihood(source, module2, edges, template_events=template)
        self.counts = self.likelihood.histogram(data.events)
        self.exposure = np.asarray(data.exposure, dtype=float)
        what = "its density" if self.likelihood.method == "density" else "its histogram template"
        self.kind = (
            f"maximum likelihood with the surrogate as the model ({what}, binned): not an "
            "independent yardstick; the module-2 has no density"
        )
        self.crb_from = f"the surrogate's Fisher information ({what}, binned)"
        # the face rule reweights by the likelihood where it is cheap at many θ: a density's
        # (a template would draw its events afresh at every θ); else the box-cut Gaussian alone
        self.loglik = self._loglik if self.likelihood.method == "density" else None

    def _loglik(self, theta: np.ndarray) -> np.ndarray:
        """log L (B,) of the binned data at θ (B, P) with the surrogate as the model, up to a
        constant: what `inverse.faces` reweights the box-cut Gaussian by."""
        return -self.likelihood.nll_many(theta, self.counts, self.exposure)

    def covariance(self, theta: np.ndarray) -> np.ndarray:
        """The surrogate's Cramér–Rao covariance for the observed counts."""
        return np.linalg.pinv(self.likelihood.fisher_information(theta, self.data.counts))

    def crb_std(self, theta: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """σ_CRB per parameter at θ for these counts, from the surrogate's Fisher information."""
        return self.likelihood.crb_std(np.asarray(theta, dtype=float), counts)

    def fit(self, start: np.ndarray) -> MLEResult:
        """The maximum of the surrogate likelihood of the data, from ``start`` (Fisher scoring)."""
        return self.likelihood.fit(self.counts, self.exposure, start)

    def score(self, theta: np.ndarray) -> np.ndarray:
        """∇log L at θ of the surrogate likelihood of the binned data."""
        return self.likelihood.score(np.asarray(theta, dtype=float), self.counts, self.exposure)

    def nll_excess(self, theta: np.ndarray, mle: MLEResult) -> float:
        """−log L(θ) − min −log L of the surrogate likelihood."""
        return (
            self.likelihood.nll(np.asarray(theta, dtype=float), self.counts, self.exposure)
            - mle.nll
        )

    def posterior(self, start: np.ndarray | None = None, seed: int = 0) -> None:
        """None: a module-2 with no density has no exact posterior (the surrogate's would share
        the surrogate's errors)."""
        return None


def make_yardstick(
    theory: Module2,
    data: ObservedData,
    source,  # noqa: ANN001 - EventSource
    folded: FoldedModel | None,
) -> Yardstick | SurrogateYardstick:
    """The exact theory's likelihood (folded through the detector when there is one), or, for a
    module-2 with no density, the source's (`SurrogateYardstick`)."""
    if theory.has_density:
        return Yardstick(theory, data, folded)  # type: ignore[arg-type]
    return SurrogateYardstick(source, theory, data)


@dataclass
class Summary:
    """θ of every replica after training, and what the metrics are computed from."""

    trace: np.ndarray  # (K, R, P): θ of every replica at the recorded steps
    trace_steps: np.ndarray  # (K,)
    final: np.ndarray  # (R, P): each replica's θ averaged over the last part of the trace
    data_replicas: int

    @property
    def boot(self) -> np.ndarray:
        """The bootstrap replicas' θ, (R − K, P): their spread × `interval_factor` is σ."""
        return self.final[self.data_replicas :]


def interval_factor(bootstrap: int) -> float:
    """σ over the bootstrap spread: the Student-t quantile of the 1σ level with ``bootstrap`` − 1
    degrees of freedom, so that θ ± σ covers as a known σ's would (68.3%) although σ is estimated
    from a few replicas; 1 for fewer than 2."""
    if bootstrap < 2:
        return 1.0
    return float(stats.t.ppf(stats.norm.cdf(1.0), bootstrap - 1))


def sigma_chance_range(bootstrap: int, coverage: float = 0.95) -> tuple[float, float]:
    """Where σ/σ_true of an efficient, unbiased fitter falls with the given probability when σ is
    the spread of ``bootstrap`` replicas times `interval_factor`: the spread's own χ² scatter.
    Inside it a σ/σ_CRB says nothing about the fitter; of many entries, 1 − coverage fall outside
    by chance. (Not for a parameter cut by the box, whose σ is not the replicas' spread.)

    >>> lo, hi = sigma_chance_range(15)
    >>> 0.65 < lo < 0.7 and 1.4 < hi < 1.45
    True
    """
    dof = bootstrap - 1
    tail = (1 - coverage) / 2
    spread = [np.sqrt(stats.chi2.ppf(q, dof) / dof) for q in (tail, 1 - tail)]
    return tuple(float(v * interval_factor(bootstrap)) for v in spread)


def replica_estimate(final: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """θ, σ and one generator's scatter from the replicas' averaged θ, ``final`` (R, P), the first
    ``k`` on the data itself.

    θ is the mean of the K data replicas. σ is the spread of the B = R − K bootstrap replicas
    times `interval_factor` (B): with B replicas the spread is itself uncertain, pulls over it have
    a Student-t's heavier tails, and the factor makes θ ± σ the t interval of 68.3%. Each bootstrap
    replica is one generator, so the spread also holds the optimizer's own scatter s, which the K
    data replicas (independent generators on the same data) measure: the third value, None for
    K = 1. s is left in: taking it out made σ unbiased but the rms pull larger with the replica
    counts and scatter of case A (`benchmarks/replica_sigma.py`, docs/results/replica-sigma.md).
    """
    final = np.asarray(final, dtype=float)
    nan = np.full(final.shape[1], np.nan)
    boot = final[k:]
    std = boot.std(0, ddof=1) * interval_factor(len(boot)) if len(boot) > 1 else nan
    scatter = final[:k].std(0, ddof=1) if k > 1 else None
    return final[:k].mean(0), std, scatter


def trace_average(trace: np.ndarray, fraction: float) -> np.ndarray:
    """Mean θ per replica over the last ``fraction`` of the recorded trace (Polyak averaging)."""
    k0 = min(int(len(trace) * (1 - fraction)), len(trace) - 1)
    return trace[k0:].mean(0)


def summarize(
    model,  # noqa: ANN001 - a trained inverse.gan.OuterGAN
    cfg,  # noqa: ANN001 - inverse.config.FitConfig
    theory: Theory,
    yardstick: Yardstick,
    members: list[int] | None,
    source_names: list[str] | None,
    seconds: float,
) -> tuple[dict, Summary]:
    """The metrics of a trained outer GAN: θ (the data replicas' mean), σ (the bootstrap
    replicas' spread, `replica_estimate`), σ_CRB, pull, and for an ensemble the surrogates' share
    of σ."""
    trace = np.asarray(model.trace)
    k = cfg.data_replicas
    summary = Summary(
        trace, np.asarray(model.trace_steps), trace_average(trace, cfg.average_last), k
    )
    mean, std, scatter = replica_estimate(summary.final, k)
    boot = summary.boot
    replicas_mean, replicas_std = mean, std
    at_face: dict[int, dict] = {}
    if cfg.face_cut:
        mean, std, at_face = face_cut(theory, yardstick, boot, mean, std)
    data = yardstick.data
    counts = data.expected_counts if data.expected_counts is not None else data.counts
    truth = data.theta_true
    crb = yardstick.crb_std(truth if truth is not None else mean, counts)
    detector = yardstick.folded.detector if yardstick.folded is not None else None
    metrics: dict = {
        "method": "outer-gan",
        "source": str(cfg.source),
        "theory": theory.name,
        "param_names": list(theory.param_names),
        "params_mean": mean,
        "params_std": std,
        "params_true": truth,
        # the replicas' own mean and spread; they differ from the above only when a parameter
        # is cut by the prior box (at_face: inverse.faces)
        "replicas_mean": replicas_mean,
        "replicas_std": replicas_std,
        # the data replicas' spread: one generator's own scatter, a part of σ (replica_estimate);
        # None with one data replica
        "scatter_std": scatter,
        # data replicas further apart than σ: the fit found more than one answer (`disagreement`)
        "data_replicas_disagree": disagreement(scatter, replicas_std, theory.param_names),
        # σ over the bootstrap replicas' spread (the 68.3% Student-t quantile: interval_factor)
        "interval_factor": interval_factor(len(boot)),
        "at_face": {theory.param_names[j]: found for j, found in at_face.items()} or None,
        "crb_std": crb,
        "crb_at": "truth" if truth is not None else "fit",
        "crb_from": getattr(yardstick, "crb_from", "the exact theory's Fisher information"),
        # σ_CRB is that of the observed data's own size: the unit of every distance reported
        "reference_counts": np.asarray(counts, dtype=float),
        "pull": None if truth is None else (mean - truth) / crb,
        "std_over_crb": std / crb,
        "counts": data.counts,
        "detector": None if detector is None else detector.describe(),
        "replicas": cfg.replicas,
        "lr_g_used": model.lr_g,
        # how the generator's steps were scaled at step 0 (gan.precondition_start), or None
        "step_scale": getattr(model, "step_scale", None),
        # gan.data_restart: the data replicas restarted from the one closest to the data
        "data_restarts": getattr(model, "restarts", None) or None,
        "seconds": seconds,
        "steps": int(model.step_count),
        # stopped_at, stop_reason, schedule_completed, settled_at (stop: block)
        **getattr(model, "stop_summary", {}),
    }
    if members is not None:
        metrics["ensemble"] = {"members": source_names, **surrogate_share(boot, members[k:])}
    return metrics, summary


def disagreement(scatter: np.ndarray | None, std: np.ndarray, names: Sequence[str]) -> dict | None:
    """The parameters on which the data replicas (generators on the same data) are further
    apart than σ, the data's own uncertainty: one generator's own scatter is a fraction of σ, so
    such a spread means the generators settled on different answers (a search for a distant
    feature trapped on the way) and their mean is none of them. None when they agree, or with one
    data replica.

    >>> disagreement(np.array([0.1, 3.0]), np.array([1.0, 1.0]), ["a", "b"])
    {'params': ['b'], 'spread_over_sigma': [3.0]}
    >>> disagreement(np.array([0.1, 0.3]), np.array([1.0, 1.0]), ["a", "b"]) is None
    True
    >>> disagreement(np.array([0.0, 0.2]), np.array([0.0, 0.0]), ["a", "b"])["params"]
    ['b']
    """
    if scatter is None:
        return None
    scatter, std = np.asarray(scatter, dtype=float), np.asarray(std, dtype=float)
    # σ = 0 (replicas pinned at a face): flagged only where the data replicas are apart
    ratio = np.where(std > 0, scatter / np.where(std > 0, std, 1.0), np.where(scatter > 0, 1e9, 0))
    bad = np.flatnonzero(np.isfinite(scatter) & (ratio > 1.0))
    if not len(bad):
        return None
    return {"params": [names[j] for j in bad], "spread_over_sigma": ratio[bad].round(3).tolist()}


def face_cut(
    theory: Module2,
    yardstick: Yardstick | SurrogateYardstick,
    boot: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, dict[int, dict]]:
    """θ and σ to report and the parameters cut by the prior box: bootstrap replicas piled at a
    face, or θ within reach of one (`inverse.faces.cut_by_box`, with the data's Cramér–Rao
    covariance and the score of its likelihood at the GAN's θ); with none, the replicas' own."""
    if len(boot) < 2:
        return mean, std, {}
    try:
        cov = np.asarray(yardstick.covariance(mean), dtype=float)
    except Exception as err:  # noqa: BLE001 - no Fisher information: the replicas' spread stays
        print(f"face cut: no Fisher σ at the fit ({err}); θ and σ are the replicas' own")
        return mean, std, {}
    low = np.asarray(theory.prior_low, dtype=float)
    high = np.asarray(theory.prior_high, dtype=float)

    def score(theta: np.ndarray) -> np.ndarray | None:
        try:
            return np.asarray(yardstick.score(theta), dtype=float)
        except Exception as err:  # noqa: BLE001 - centred on the faces instead
            print(f"face cut: no score of the likelihood at the fit ({err}); centred on the faces")
            return None

    # the likelihood itself, where the yardstick has one (not a density-free module-2's), and
    # its maximum in the box: where the reweighting starts besides the GAN's θ
    loglik = getattr(yardstick, "loglik", None)

    def mode() -> tuple[np.ndarray, np.ndarray] | None:
        try:
            mle = yardstick.fit(start=mean)
            return np.asarray(mle.theta, dtype=float), yardstick.covariance(mle.theta)
        except Exception as err:  # noqa: BLE001 - the GAN's θ alone starts it
            print(f"face cut: no maximum likelihood to start from ({err})")
            return None

    return cut_by_box(boot, mean, std, cov, low, high, score=score, loglik=loglik, mode=mode)


def compare_with_mle(metrics: dict, yardstick: Yardstick) -> MLEResult:
    """Add the MLE on the same data, (GAN − MLE)/σ_CRB and −log L(θ_GAN) − min to ``metrics``."""
    mean = metrics["params_mean"]
    mle = yardstick.fit(start=mean)
    metrics["mle"] = {"params": mle.theta, "std": mle.std, "seconds": mle.seconds}
    if yardstick.folded is not None:
        metrics["mle"]["kind"] = "binned, folded through the detector"
    if isinstance(yardstick, SurrogateYardstick):
        metrics["mle"]["kind"] = yardstick.kind
        metrics["mle"]["converged"] = mle.success
    metrics["gan_minus_mle_crb"] = (mean - mle.theta) / metrics["crb_std"]
    # the likelihood's own yardstick, valid where it is not Gaussian: −log L(θ_GAN) − min;
    # √(2Δ) is the Mahalanobis distance for a Gaussian one (≥ each parameter's offset in σ)
    metrics["gan_minus_mle_nll"] = yardstick.nll_excess(mean, mle)
    return mle


def compare_with_posterior(
    metrics: dict,
    yardstick: Yardstick | SurrogateYardstick,
    mle: MLEResult | None,
    seed: int = 0,
) -> Posterior | None:
    """Add the exact posterior (mean, σ, R̂, ESS, ...), σ_GAN/σ_post and (θ_GAN − post mean)/σ_post
    to ``metrics``; its walkers start around the MLE (or the GAN's θ without one). A module-2 with
    no density has none: ``posterior`` says so and the ratios are None."""
    mean = metrics["params_mean"]
    post = yardstick.posterior(start=mean if mle is None else mle.theta, seed=seed)
    if post is None:
        metrics["posterior"] = {
            "skipped": "the module-2 has no density: there is no exact posterior to sample"
        }
        metrics["sigma_over_post"] = metrics["dist_post"] = None
        return None
    metrics["posterior"] = post.to_dict()
    metrics["sigma_over_post"] = metrics["params_std"] / post.std
    metrics["dist_post"] = (mean - post.mean) / post.std
    return post


def write_outputs(
    out: Path,
    config: dict,
    metrics: dict,
    summary: Summary,
    theory: Theory,
    data: ObservedData,
    source,  # noqa: ANN001 - EventSource
    detector,  # noqa: ANN001 - surrogates.detector.DISDetector or None
    mle: MLEResult | None,
) -> None:
    """params.npz, the run files (config.yaml, metrics.json, environment.json) and the plots."""
    truth = data.theta_true
    np.savez(
        out / "params.npz",
        theta=summary.final,
        param_names=np.asarray(theory.param_names),
        trace=summary.trace,
        trace_steps=summary.trace_steps,
        **({"theta_true": truth} if truth is not None else {}),
    )
    write_run_files(out, config, metrics)
    plot_traces(
        out / "traces.png",
        list(theory.param_names),
        summary.trace_steps,
        summary.trace,
        truth,
        metrics["crb_std"],
        None if mle is None else mle.theta,
    )
    boot = summary.boot
    if theory.has_density:  # a generator has no curves to draw
        plot_curves(out / "curves.png", theory, boot if len(boot) > 1 else summary.final, truth)
    with torch.no_grad():
        gen = source.sample(torch.as_tensor(metrics["params_mean"]).unsqueeze(0), 100_000)
        weights = None
        if detector is not None:
            gen, w = detector.apply(gen)
            weights = [wc[0].numpy() for wc in w]
    plot_events(out / "events.png", theory, data, [g[0].double().numpy() for g in gen], weights)


TABLE_COLUMNS = [
    "param",
    "truth",
    "mean",
    "std",
    "crb_std",
    "pull",
    "mle",
    "gan_minus_mle_crb",
    "post_mean",
    "post_std",
    "sigma_over_post",
]


def log_to_wandb(loggers: list, metrics: dict, out: Path) -> None:
    """The run's summary, plots and θ table to wandb (when it is on), then close it."""
    names = metrics["param_names"]
    per_param = {
        "truth": metrics.get("params_true"),
        "mean": metrics["params_mean"],
        "std": metrics["params_std"],
        "crb_std": metrics.get("crb_std"),
        "pull": metrics.get("pull"),
        "mle": (metrics.get("mle") or {}).get("params"),
        "gan_minus_mle_crb": metrics.get("gan_minus_mle_crb"),
        "post_mean": (metrics.get("posterior") or {}).get("mean"),
        "post_std": (metrics.get("posterior") or {}).get("std"),
        "sigma_over_post": metrics.get("sigma_over_post"),
    }
    rows = [
        [n] + [None if per_param[c] is None else per_param[c][i] for c in TABLE_COLUMNS[1:]]
        for i, n in enumerate(names)
    ]
    finish_wandb(
        loggers,
        metrics,
        images={name: out / f"{name}.png" for name in ("traces", "curves", "events")},
        table=("recovered_theta", TABLE_COLUMNS, rows),
        scalars={
            k: v
            for key in (
                "params_mean",
                "params_std",
                "pull",
                "crb_std",
                "gan_minus_mle_crb",
                "sigma_over_post",
                "dist_post",
            )
            if metrics.get(key) is not None
            for k, v in per_name(metrics, key, names).items()
        },
    )


def format_table(metrics: dict, title: str = "") -> str:
    """Truth, GAN θ ± σ, σ_CRB, pull, the MLE on the same data and the exact posterior (its mean,
    σ_GAN/σ_post, (GAN − post)/σ_post), as aligned text."""
    lines = [title] if title else []
    counts = metrics.get("reference_counts")
    if counts is not None:
        n = ", ".join(f"{float(c):.6g}" for c in counts)
        lines.append(f"σ_CRB at N = ({n}) events (the observed data's exposure)")
    mle = metrics.get("mle")
    head = f"{'param':>6} {'truth':>9} {'GAN':>9} {'± σ':>8} {'σ_CRB':>8} {'pull':>6}"
    if mle:
        head += f" {'MLE':>9} {'(GAN−MLE)/σ_CRB':>16}"
    post = metrics.get("posterior") or {}
    has_post = "mean" in post
    if has_post:
        head += f" {'post':>9} {'σ/σ_post':>9} {'(GAN−post)/σ_post':>18}"
    ens = metrics.get("ensemble")
    if ens:
        head += f" {'σ_surr':>9} {'share':>9}"
    lines.append(head)
    truth = metrics["params_true"]
    for i, name in enumerate(metrics["param_names"]):
        t = f"{truth[i]:9.4f}" if truth is not None else f"{'?':>9}"
        p = f"{metrics['pull'][i]:6.2f}" if metrics["pull"] is not None else f"{'':>6}"
        row = (
            f"{name:>6} {t} {metrics['params_mean'][i]:9.4f} {metrics['params_std'][i]:8.4f} "
            f"{metrics['crb_std'][i]:8.4f} {p}"
        )
        if mle:
            row += f" {mle['params'][i]:9.4f} {metrics['gan_minus_mle_crb'][i]:16.2f}"
        if has_post:
            row += (
                f" {post['mean'][i]:9.4f} {metrics['sigma_over_post'][i]:9.2f}"
                f" {metrics['dist_post'][i]:18.2f}"
            )
        if ens:
            row += f" {ens['surrogate_std'][i]:9.4f} {ens['surrogate_share'][i]:9.2f}"
        lines.append(row)
    split = metrics.get("data_replicas_disagree")
    if split:
        lines.append(
            f"warning: the generators on the data disagree on {', '.join(split['params'])} by "
            f"{', '.join(f'{v:.1f}' for v in split['spread_over_sigma'])} σ: the fit settled on "
            "more than one answer and θ is their mean; rerun with another seed or more steps, or "
            "look at each data replica in params.npz"
        )
    for restart in metrics.get("data_restarts") or []:  # the search before the restart
        b, d = restart["from"], restart["distances"]
        others = [x for i, x in enumerate(d) if i != b]
        lines.append(
            f"step {restart['step']}: every data replica restarted from replica {b}, the closest "
            f"to the data (KS distance {d[b]:.3f}; the other {len(others)}: "
            f"{min(others):.3f}–{max(others):.3f}; one several times further settled elsewhere)"
        )
    for name, found in (metrics.get("at_face") or {}).items():
        where = (
            f"θ within {found.get('reach', FACE_REACH):g} Fisher σ ({found['fisher_sigma']:.2g}) "
            "of the box's face "
            if found.get("trigger") == "reach"
            else f"{found['replicas_at_face']:.0%} of the bootstrap replicas at the box's face "
        )
        lines.append(
            f"{name}: {where}"
            f"{found['face']:g} (their θ {found['replicas_mean']:.4g} ± {found['replicas_std']:.2g}); "
            + (
                "θ ± σ above: the likelihood's posterior in the box, by importance sampling "
                f"(effective sample size {found['reweighted']['ess']:.0f}; inverse.faces)"
                if found.get("method") == "reweighted"
                else (
                    "θ ± σ above: the Fisher Gaussian from its likelihood's peak "
                    f"{found['peak']:.4g} "
                    if found.get("centre") == "score"
                    else "θ ± σ above: the Fisher Gaussian at the GAN's θ "
                    if found.get("centre") == "theta"
                    else "θ ± σ above: the Fisher Gaussian from the faces "
                )
                + "cut by the box (inverse.faces)"
            )
        )
    if ens:
        lines.append(
            f"ensemble of {len(ens['members'])} ({', '.join(ens['members'])}): σ_surr is the "
            "members' disagreement, σ_stat the spread within one member's replicas, "
            "share = σ_surr² / (σ_surr² + σ_stat²)"
        )
    if has_post:
        state = "converged" if post["converged"] else "NOT converged"
        lines.append(
            f"exact posterior ({post['likelihood']}): {state}, max R̂ {max(post['rhat']):.3f}, "
            f"min ESS {min(post['ess']):.0f}, {post['seconds']:.1f} s"
        )
    elif "skipped" in post:
        lines.append(f"exact posterior: skipped ({post['skipped']})")
    return "\n".join(lines)
