"""The surrogate as the model: a binned extended likelihood whose expected counts come from any
EventSource, for module-2s with no density (event generators).

With no σ_c(x; θ) to evaluate, a surrogate stands in for it. Per channel c and bin k the
expected count of data with exposure L_c (events per unit norm) is

    μ_ck(θ) = L_c n̂_c(θ) P̂_ck(θ),

n̂_c the surrogate's norm and P̂_ck its probability of bin k, from

* its density (``method="density"``: flows, VAIM, the exact samplers): Gauss–Legendre nodes in
  every bin, normalized over the bins;
* its events (``method="template"``: GAN, VAE, anything that only samples): the histogram
  template of ``template_events`` of its events per channel, drawn with the same random numbers
  at every θ (so P̂(θ) is a smooth function, not noise), each event shared linearly between the
  two nearest bin centres ("cloud in cell") so P̂ changes continuously as events move. Data
  are binned the same way, so the two sides agree by construction.

Derivatives with respect to θ are finite differences (any source, no gradients needed). The
maximum of the Poisson likelihood is found by Fisher scoring with step halving, and the Fisher
information Σ_ck ∂μ ∂μᵀ / μ at reference counts gives the surrogate's own Cramér–Rao σ.
Its template noise adds a variance of about ν/S (ν reference events, S template events) in
units of σ², reported by `surrogate_shift_noise`.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from surrogates.errors import InputError, check_choice
from surrogates.likelihood.optimize import MLEResult
from surrogates.theory.base import Module2

__all__ = [
    "SurrogateLikelihood",
    "quantile_edges",
    "surrogate_shift_noise",
    "crb_from_information",
    "Box",
]

METHODS = ("auto", "density", "template")


@contextlib.contextmanager
def float64(source: object) -> Iterator[None]:
    """A torch module source evaluated in float64 for the duration, then restored: a float32
    likelihood of 10^6 events is noisy at the 0.1 level, more than its change over a step of
    1% of σ, which stalls a fit near its optimum."""
    params = (
        list(source.parameters()) + list(source.buffers())
        if isinstance(source, torch.nn.Module)
        else []
    )
    dtypes = {p.dtype for p in params if p.is_floating_point()}
    if not dtypes or dtypes == {torch.float64}:
        yield
        return
    (dtype,) = dtypes if len(dtypes) == 1 else (torch.float32,)
    source.double()  # type: ignore[union-attr]
    try:
        yield
    finally:
        source.to(dtype)  # type: ignore[union-attr]


def _in_float64(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: SurrogateLikelihood, *args: Any, **kwargs: Any) -> Any:
        if self.method == "template":  # float32 events bin to the same template
            return method(self, *args, **kwargs)
        with float64(self.source):
            return method(self, *args, **kwargs)

    return wrapper


def quantile_edges(
    events: Sequence[np.ndarray], bins: int, low: float, high: float
) -> list[np.ndarray]:
    """Per channel, edges of ``bins`` bins of equal probability under ``events`` (1-D), the
    outer edges at the event range; repeated quantiles merged."""
    out = []
    for e in events:
        x = np.ravel(np.asarray(e, dtype=float))
        k = max(1, min(int(bins), len(x) // 2 if len(x) >= 2 else 1))
        q = np.quantile(x, np.linspace(0, 1, k + 1)[1:-1]) if k > 1 else np.empty(0)
        edges = np.unique(np.concatenate([[low], q[(q > low) & (q < high)], [high]]))
        out.append(edges)
    return out


def surrogate_shift_noise(
    reference: Sequence[float], data: Sequence[float], template: Sequence[float] | None
) -> float:
    """About the statistical noise of a θ shift in units of the reference σ: √(ν/N + ν/S) with ν,
    N and S the reference, data and template (None: exact density) events summed over channels."""
    nu = float(np.sum(reference))
    var = nu / float(np.sum(data))
    if template is not None:
        var += nu / float(np.sum(template))
    return float(np.sqrt(var))


@dataclass
class Box:
    """The parameter box and names of a module-2, as `surrogates.likelihood.maximize` reads
    them (a Theory's attributes), for likelihoods with no theory behind them."""

    prior_low: torch.Tensor
    prior_high: torch.Tensor
    param_names: tuple[str, ...]
    dtype: torch.dtype = torch.float64
    differentiable: bool = False


class SurrogateLikelihood:
    """Binned extended likelihood with an EventSource as the model (see the module docstring).

    Args:
        source: the model: a surrogate, an ensemble or an exact sampler.
        module2: its module-2 (parameter box and names, channels, 1-D event range).
        edges: one increasing array of bin edges per channel, spanning the event range.
        method: "density", "template" or "auto" (density when the source has one).
        template_events: events per channel of the template (method "template").
        seed: the template's random numbers (the same at every θ).
        rel_step: the central differences' step, a fraction of each parameter's prior range.
        nodes: Gauss–Legendre nodes per bin (method "density").
    """

    def __init__(
        self,
        source,  # noqa: ANN001 - any EventSource
        module2: Module2,
        edges: Sequence[np.ndarray],
        method: str = "auto",
        template_events: int = 200_000,
        seed: int = 0,
        rel_step: float = 1e-3,
        nodes: int = 4,
        chunk: int = 100_000,
    ) -> None:
        check_choice("likelihood method", method, METHODS)
        if module2.event_dim != 1:
            raise InputError(
                f"the surrogate likelihood bins 1-D events; '{module2.name}' has "
                f"{module2.event_dim}-D events"
            )
        if method == "auto":
            method = "density" if getattr(source, "has_density", False) else "template"
        if method == "density" and not getattr(source, "has_density", False):
            raise InputError("method density needs a source with a density; use template")
        if len(edges) != module2.n_channels:
            raise InputError(f"give bin edges for each of the {module2.n_channels} channels")
        self.source, self.module2, self.method = source, module2, method
        self.edges = [np.asarray(e, dtype=float) for e in edges]
        self.template_events, self.seed, self.chunk = int(template_events), int(seed), chunk
        self.low = module2.prior_low.numpy().astype(float)
        self.high = module2.prior_high.numpy().astype(float)
        self.step = rel_step * (self.high - self.low)
        self.box = Box(module2.prior_low, module2.prior_high, tuple(module2.param_names))
        if method == "density":
            g, w = np.polynomial.legendre.leggauss(nodes)
            self._nodes, self._weights = [], []
            for e in self.edges:
                a, b = e[:-1, None], e[1:, None]
                self._nodes.append(((a + b) / 2 + (b - a) / 2 * g).reshape(-1))
                self._weights.append((b - a) / 2 * w)  # (K, nodes)

    # ------------------------------------------------------------------ binning
    def _soft(self, c: int, x: np.ndarray) -> np.ndarray:
        """Cloud-in-cell counts (K,) of events x: each event split linearly between the centres
        of the two bins nearest to it (all in the end bin beyond the outer centres)."""
        e = self.edges[c]
        k = len(e) - 1
        i = np.clip(np.searchsorted(e, x, side="right") - 1, 0, k - 1)
        t = i + np.clip((x - e[i]) / (e[i + 1] - e[i]), 0, 1) - 0.5
        j = np.floor(t).astype(int)
        frac = t - j
        lo_w = np.where(j < 0, 1.0, np.where(j >= k - 1, 1.0, 1 - frac))
        j_lo = np.clip(j, 0, k - 1)
        hi_w = 1 - lo_w
        j_hi = np.clip(j + 1, 0, k - 1)
        return np.bincount(j_lo, lo_w, k) + np.bincount(j_hi, hi_w, k)

    def histogram(self, events: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Counts (K_c,) of data events per channel, binned as the model's probabilities are."""
        out = []
        for c, e in enumerate(events):
            x = np.ravel(np.asarray(e, dtype=float))
            if self.method == "template":
                out.append(self._soft(c, x))
            else:
                out.append(np.histogram(x, bins=self.edges[c])[0].astype(float))
        return out

    # ------------------------------------------------------------------ the model
    def _theta(self, theta: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(theta, dtype=float)).view(1, -1)

    def probabilities(self, theta: np.ndarray) -> list[np.ndarray]:
        """P̂_ck(θ), one array (K_c,) per channel summing to 1."""
        t = self._theta(theta)
        if self.method == "density":
            return [p[0] for p in self._density_probabilities(t)]
        with torch.no_grad():
            events = self._template(t)
        return [self._soft(c, e) / len(e) for c, e in enumerate(events)]

    def _density_probabilities(self, t: torch.Tensor) -> list[np.ndarray]:
        """P̂_ck at each θ of t (B, P) from the density at every bin's Gauss–Legendre nodes: one
        array (B, K_c) per channel, each row summing to 1."""
        out = []
        with torch.no_grad():
            for c, (nodes, w) in enumerate(zip(self._nodes, self._weights, strict=True)):
                x = torch.as_tensor(nodes).view(1, -1, 1).expand(len(t), -1, -1).contiguous()
                p = self.source.log_prob(x, t)[:, c].double().exp().numpy()
                prob = (p.reshape(len(t), *w.shape) * w).sum(-1)  # (B, K)
                out.append(prob / prob.sum(-1, keepdims=True))
        return out

    def _template(self, t: torch.Tensor) -> list[np.ndarray]:
        """template_events events per channel at θ, the same random numbers at every θ."""
        gen = torch.Generator().manual_seed(self.seed)
        parts: list[list[np.ndarray]] = []
        done = 0
        while done < self.template_events:
            k = min(self.chunk, self.template_events - done)
            parts.append(
                [e[0, :, 0].double().numpy() for e in self.source.sample(t, k, generator=gen)]
            )
            done += k
        return [np.concatenate([p[c] for p in parts]) for c in range(len(parts[0]))]

    def norms(self, theta: np.ndarray) -> np.ndarray:
        """The source's ∫σ_c at θ, (C,)."""
        with torch.no_grad():
            return self.source.norms(self._theta(theta))[0].double().numpy()

    @_in_float64
    def expected(self, theta: np.ndarray, exposure: np.ndarray) -> list[np.ndarray]:
        """μ_ck(θ) = L_c n̂_c(θ) P̂_ck(θ), one array per channel."""
        n = self.norms(theta)
        return [exposure[c] * n[c] * p for c, p in enumerate(self.probabilities(theta))]

    @_in_float64
    def jacobian(self, theta: np.ndarray, exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """μ (ΣK,) and ∂μ/∂θ (ΣK, P) at θ, channels concatenated: central differences for a
        density, forward differences for a template (P + 1 template draws instead of 2P + 1,
        its costly part; the O(step) error, 10⁻³ of the range, is far below its noise); steps
        turn back at the box's faces."""
        theta = np.asarray(theta, dtype=float)
        mu = np.concatenate(self.expected(theta, exposure))
        cols = []
        for j in range(len(theta)):
            up, down = theta.copy(), theta.copy()
            up[j] = min(theta[j] + self.step[j], self.high[j])
            down[j] = max(theta[j] - self.step[j], self.low[j])
            if self.method == "template":
                forward = up[j] > theta[j]
                other = up if forward else down
                diff = np.concatenate(self.expected(other, exposure)) - mu
                cols.append(diff / (other[j] - theta[j]))
                continue
            diff = np.concatenate(self.expected(up, exposure)) - np.concatenate(
                self.expected(down, exposure)
            )
            cols.append(diff / (up[j] - down[j]))
        return mu, np.stack(cols, -1)

    # ------------------------------------------------------------------ information and fits
    @_in_float64
    def fisher_information(self, theta: np.ndarray, counts: Sequence[float]) -> np.ndarray:
        """Σ ∂μ ∂μᵀ / μ (P, P) at θ for data of ``counts`` expected events per channel."""
        exposure = np.asarray(counts, dtype=float) / self.norms(theta)
        mu, jac = self.jacobian(theta, exposure)
        return _information(mu, jac)

    @_in_float64
    def crb_std(self, theta: np.ndarray, counts: Sequence[float]) -> np.ndarray:
        """The surrogate's own Cramér–Rao 1σ per parameter at θ for these expected counts;
        inf for a parameter in a direction the surrogate does not depend on (an untrained one)."""
        return crb_from_information(self.fisher_information(theta, counts))

    @_in_float64
    def nll(self, theta: np.ndarray, counts: Sequence[np.ndarray], exposure: np.ndarray) -> float:
        """Poisson −log L of binned counts (constants dropped)."""
        return _poisson(np.concatenate(self.expected(theta, exposure)), _flat(counts))

    @_in_float64
    def nll_many(
        self,
        theta: np.ndarray,
        counts: Sequence[np.ndarray],
        exposure: np.ndarray,
        batch: int = 256,
    ) -> np.ndarray:
        """`nll` (B,) at many θ (B, P): a density is evaluated at every node for a batch of θ in
        one call (the face rule's reweighting asks for thousands); a template θ by θ."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if len(theta) == 0:
            return np.zeros(0)
        if self.method != "density":
            return np.array([self.nll(t, counts, exposure) for t in theta])
        n = _flat(counts)
        out = []
        for i in range(0, len(theta), batch):
            t = torch.as_tensor(theta[i : i + batch])
            with torch.no_grad():
                norms = self.source.norms(t).double().numpy()  # (b, C)
            mu = [
                exposure[c] * norms[:, c : c + 1] * prob
                for c, prob in enumerate(self._density_probabilities(t))
            ]
            m = np.clip(np.concatenate(mu, axis=1), 1e-300, None)
            out.append((m - n * np.log(m)).sum(1))
        return np.concatenate(out)

    @_in_float64
    def score(
        self, theta: np.ndarray, counts: Sequence[np.ndarray], exposure: np.ndarray
    ) -> np.ndarray:
        """∇log L (P,) at θ of binned counts, Σ_b ∂μ_b (n_b/μ_b − 1)."""
        mu, jac = self.jacobian(np.asarray(theta, dtype=float), exposure)
        return _score(mu, jac, _flat(counts))

    @_in_float64
    def fit(
        self,
        counts: Sequence[np.ndarray],
        exposure: np.ndarray,
        start: Sequence[float],
        max_iter: int = 25,
        tol: float = 1e-2,
    ) -> MLEResult:
        """Maximum likelihood of binned counts from ``start`` by Fisher scoring: θ += I⁻¹ score,
        halved until −log L falls, until the step is below ``tol`` of the fit's own σ (or no
        step lowers −log L while the step is within that σ: the optimum within its noise)."""
        t0 = time.perf_counter()
        n = _flat(counts)
        theta = np.clip(np.asarray(start, dtype=float), self.low, self.high)
        mu, jac = self.jacobian(theta, exposure)
        info = _information(mu, jac)
        value = _poisson(mu, n)
        converged = False
        for _ in range(max_iter):
            cov = _inverse(info)
            step = self._step(info, _score(mu, jac, n), theta)
            sigma = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
            lam, moved = 1.0, False
            while lam >= 1 / 64:
                trial = np.clip(theta + lam * step, self.low, self.high)
                trial_value = _poisson(np.concatenate(self.expected(trial, exposure)), n)
                if trial_value <= value:
                    moved = True
                    break
                lam /= 2
            if not moved:  # no lower −log L along the step: at the optimum within its noise
                converged = bool(np.all(np.abs(step) < sigma))
                break
            # a step below tol σ, or a gain in log L below tol²/2 (what a step of tol σ gains)
            done = np.all(np.abs(trial - theta) < tol * sigma) or value - trial_value < tol**2 / 2
            theta, value = trial, trial_value
            mu, jac = self.jacobian(theta, exposure)
            info = _information(mu, jac)
            if done:
                converged = True
                break
        edge = np.minimum(theta - self.low, self.high - theta) < 1e-6 * (self.high - self.low)
        return MLEResult(
            theta=theta,
            cov=_inverse(info),
            nll=float(value),
            success=bool(converged),
            seconds=time.perf_counter() - t0,
            n_starts=1,
            at_boundary=[p for p, e in zip(self.module2.param_names, edge, strict=True) if e],
        )

    def _step(self, info: np.ndarray, score: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The scoring step I⁻¹ score, with the parameters at a face of the box that it would
        push outward held there (the others solved for alone): a fit whose optimum lies on the
        box's face stops there instead of stepping against it."""
        span = self.high - self.low
        held = np.zeros(len(theta), dtype=bool)
        while True:
            step = np.zeros(len(theta))
            free = ~held
            if free.any():
                step[free] = _inverse(info[np.ix_(free, free)]) @ score[free]
            out = ((theta <= self.low + 1e-9 * span) & (step < 0)) | (
                (theta >= self.high - 1e-9 * span) & (step > 0)
            )
            if not (out & free).any():
                return step
            held |= out

    @_in_float64
    def fit_events(
        self, events: Sequence[np.ndarray], norms: Sequence[float], start: Sequence[float]
    ) -> MLEResult:
        """Fit data events with measured norms ∫σ_c (exposure N_c / norm_c) from ``start``."""
        counts = self.histogram(events)
        totals = np.array([float(np.sum(c)) for c in counts])
        return self.fit(counts, totals / np.asarray(norms, dtype=float), start)


def _flat(counts: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(c) for c in counts])


def _poisson(mu: np.ndarray, n: np.ndarray) -> float:
    mu = np.clip(mu, 1e-300, None)
    return float(np.sum(mu - n * np.log(mu)))


def _score(mu: np.ndarray, jac: np.ndarray, n: np.ndarray) -> np.ndarray:
    return jac.T @ (n / np.clip(mu, 1e-300, None) - 1)


def _information(mu: np.ndarray, jac: np.ndarray) -> np.ndarray:
    w = np.where(mu > 0, 1 / np.clip(mu, 1e-300, None), 0.0)
    return (jac * w[:, None]).T @ jac


def crb_from_information(info: np.ndarray, rcond: float = 1e-12) -> np.ndarray:
    """√diag(I⁻¹), with inf where I has no information: eigen-directions of I with eigenvalue
    below ``rcond`` × the largest leave the parameters they involve unbounded."""
    values, vectors = np.linalg.eigh((info + info.T) / 2)
    flat = values <= rcond * max(float(values.max()), 0.0)
    variance = (vectors[:, ~flat] ** 2 / values[~flat]).sum(-1)
    involved = (np.abs(vectors[:, flat]) > 1e-6).any(-1)
    return np.where(involved, np.inf, np.sqrt(variance))


def _inverse(info: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(info)
