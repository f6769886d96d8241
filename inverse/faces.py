"""θ and σ of the outer GAN for a parameter whose likelihood the prior box cuts.

The GAN's σ is the spread of its bootstrap replicas, each a maximum of its replica's likelihood
inside the box. Where the likelihood keeps rising towards a face of the box, every replica ends at
that face and the spread collapses (in a case-B study, σ 0.04 against an exact posterior σ of
0.65): the bootstrap of a constrained maximum says on which side the likelihood's maximum lies,
not how wide the posterior is (and the replicas of parameters correlated with it collapse too).
When a parameter's replicas pile up at a face, the GAN reports for it, and for every other
parameter whose width this widens, the mean and σ of the posterior that the likelihood's quadratic
expansion at the GAN's θ gives with the flat prior of the box: the Gaussian of the data's Fisher
covariance Σ centred where that expansion peaks, θ + Σ·score (the score, ∇log L at θ, says how
far beyond the face the likelihood keeps rising: a Newton step, exact for a Gaussian likelihood),
cut by the whole box (so that its other faces and the correlations shape it too), sampled by
rejection with a fixed seed. Without a score, or where the step is too long to trust the
expansion (more than STEP_MAX in Σ's metric) or the box keeps too few of its draws, the Gaussian is
centred on the GAN's θ with the piled parameters moved onto their faces (the widest such
posterior). The replicas need not pile up for the box to cut the likelihood: where a
normalization lies near 0 with the shape parameters it leaves unpinned, they can sit bunched just
inside the face, their spread and the Fisher σ there both far below the posterior's (case C: a
pull of 11.8). A parameter whose GAN θ lies within FACE_REACH of its Fisher σ of a face is therefore cut too (its
Gaussian is centred by the score as above, else on the GAN's θ; without the likelihood, it is
kept only where it widens the replicas' spread). A fit with no parameter at or near a face keeps
the replicas' mean and spread.

Where the likelihood itself can be evaluated (`inverse.report.Yardstick.loglik`), the cut Gaussian
is only where the search starts: `reweight_by_likelihood` turns it, by adaptive importance
sampling, into the posterior of the likelihood with the box's flat prior, and every parameter
reports that posterior's mean and σ. The quadratic expansion fails exactly where faces matter
most: a normalization near 0 (its Fisher σ vanishes at the face, while with a handful of events
its posterior reaches well inside) and shape parameters such a normalization leaves unpinned.

How the rule was chosen (on the case-B pseudo-experiments of study-B-prior and study-B-face3) and
what it gave on others: docs/notes/2026-12-01-faces.md; the reweighting (chosen on the first 104
experiments of study-C-gan, checked on the later ones): docs/notes/2026-12-02-reweighted-faces.md;
the reach (chosen on the same 104): docs/notes/2026-12-06-face-reach.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy.stats import truncnorm

__all__ = [
    "FACE_NEAR",
    "FACE_REACH",
    "FACE_SHARE",
    "QUANTILES",
    "STEP_MAX",
    "cdf_rank",
    "cut_by_box",
    "cut_gaussian_draws",
    "reported_ranks",
    "reweight_by_likelihood",
    "weighted_quantiles",
]

# a bootstrap replica within FACE_NEAR Fisher σ of a face is at that face; a parameter with at
# least FACE_SHARE of its bootstrap replicas at one face is cut there
FACE_NEAR = 0.25
FACE_SHARE = 0.5
# and a parameter whose GAN θ (the data replicas' mean) lies within FACE_REACH of its Fisher σ of
# a face is cut too, piled or not: the box cuts its likelihood there (a normalization near 0 with
# shape parameters it leaves unpinned: the replicas can sit together just inside the face, with
# a spread and a Fisher σ far below the posterior's). Chosen on the case-C experiments < 104
# (docs/notes/2026-12-06-face-reach.md); 0 turns it off
FACE_REACH = 1.0
# the cut Gaussian's draws: batches of DRAWS until KEEP fall inside the box (at most ROUNDS)
DRAWS, KEEP, ROUNDS = 20_000, 4_000, 50
# a Newton step Σ·score longer than this in Σ's metric (√(scoreᵀ Σ score)) is not trusted: the
# likelihood is too far from quadratic between the fit and that peak
STEP_MAX = 5.0
# the cut Gaussian reweighted by the likelihood itself (adaptive importance sampling): about
# IS_DRAWS likelihood evaluations a round, at most IS_ROUNDS rounds; each round draws from the
# last round's weighted Gaussian widened by IS_INFLATE and by IS_WIDE in variance (round 0: from
# each start as it is and widened by IS_WIDE), and IS_UNIFORM of its draws uniformly from the box
# (a defensive component: no weight grows without bound); kept once its effective sample size
# reaches IS_ESS; settled once the weighted mean and σ move by less than IS_SETTLE of the σ
IS_DRAWS, IS_ROUNDS, IS_INFLATE, IS_WIDE, IS_UNIFORM = 1000, 10, 1.5, 4.0, 0.1
IS_ESS, IS_SETTLE = 300, 0.1
# the reweighted posterior's marginal quantiles kept per parameter (the truth's SBC rank in it):
# 0 and 1 are the smallest and largest draws
QUANTILES = np.linspace(0.0, 1.0, 101)


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """A square root L (L Lᵀ = cov) of a covariance whose numerical eigenvalues may dip below 0."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return v * np.sqrt(np.clip(w, 0, None))


def cut_gaussian_draws(
    loc: np.ndarray, cov: np.ndarray, low: np.ndarray, high: np.ndarray, seed: int = 0
) -> np.ndarray | None:
    """Draws (≥ KEEP // 4, P) of N(loc, cov) cut to the box by seeded rejection, or None if too
    few land in it: the distribution the rule reports the mean and σ of (`cut_by_box` records
    its ``loc`` as ``gaussian_loc``; the same seed gives the same draws)."""
    rng = np.random.default_rng(seed)
    loc = np.asarray(loc, dtype=float)
    root = _sqrt_psd(np.atleast_2d(np.asarray(cov, dtype=float)))
    kept: list[np.ndarray] = []
    n = 0
    for _ in range(ROUNDS):
        x = loc + rng.standard_normal((DRAWS, len(loc))) @ root.T
        x = x[((x >= low) & (x <= high)).all(1)]
        kept.append(x)
        n += len(x)
        if n >= KEEP:
            break
    if n < KEEP // 4:
        return None
    return np.concatenate(kept)


def _cut_normal(
    rng: np.random.Generator, loc: np.ndarray, root: np.ndarray, low: np.ndarray,
    high: np.ndarray, n: int,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """n draws of N(loc, root rootᵀ) inside the box (rejection) and the share that lands in it
    (the cut Gaussian's normalization); fewer draws when the box keeps almost none."""
    kept, drawn, got = [], 0, 0
    for _ in range(ROUNDS):
        x = loc + rng.standard_normal((n, len(loc))) @ root.T
        drawn += n
        x = x[((x >= low) & (x <= high)).all(1)]
        kept.append(x)
        got += len(x)
        if got >= n:
            break
    return np.concatenate(kept)[:n], got / drawn


def _log_normal(x: np.ndarray, loc: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x; loc, cov) per row, for a covariance made positive definite by the caller."""
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - loc).T)
    return -0.5 * (z**2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * len(loc) * np.log(2 * np.pi)


def _weighted_moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = w @ x
    d = x - mean
    return mean, (d * w[:, None]).T @ d


def reweight_by_likelihood(
    loglik: Callable[[np.ndarray], np.ndarray],
    starts: list[tuple[np.ndarray, np.ndarray]],
    low: np.ndarray,
    high: np.ndarray,
    seed: int = 0,
    draws: int = IS_DRAWS,
    rounds: int = IS_ROUNDS,
    log_params: np.ndarray | None = None,
) -> dict | None:
    """The posterior of the likelihood ``loglik`` with the box's flat prior, by adaptive importance
    sampling started from the Gaussians N(loc, cov) of ``starts`` cut by the box. Each round draws from the last
    round's weighted mean and covariance (widened by IS_INFLATE and by IS_WIDE), and every draw so
    far is weighted by prior × L / the mixture of all the rounds' proposals (deterministic-mixture
    weights: finite where a late proposal is narrower than an early one). The proposals are
    Gaussian in log θ for a parameter whose box starts at ≥ 0 (a normalization, an exponent; as
    in `surrogates.likelihood.exact_posterior`), so that a posterior from 0 up to many times the
    Fisher σ at the face is reached in a few rounds; in θ for the others. The quadratic
    expansion of the likelihood at a face starts it; where the likelihood is not quadratic (a
    normalization near 0, a shape it leaves unpinned) the rounds move and widen it towards the
    likelihood's own shape.

    Args:
        loglik: θ (B, P) → log L (B,), up to a constant.
        starts: the starting Gaussians (loc, cov), in θ.
        low, high: the prior box.
        log_params: per parameter, whether its proposals are Gaussian in log θ (None: those
            whose box starts at ≥ 0).

    Returns:
        ``draws`` (N, P, in θ), their normalized ``weights``, the effective sample size ``ess``,
        the ``rounds`` run and whether the moments ``settled`` (moved by less than IS_SETTLE of
        a σ in the last round); None when no start has draws in the box or the effective sample
        size of the last usable round is below IS_ESS.
    """
    rng = np.random.default_rng(seed)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    log = (low >= 0) if log_params is None else np.asarray(log_params, dtype=bool)
    if (log & (low < 0)).any():
        raise ValueError("reweight_by_likelihood: log θ needs a box that starts at ≥ 0")
    if rounds < 1:
        raise ValueError(f"reweight_by_likelihood: rounds must be ≥ 1, got {rounds}")
    width = high - low
    tiny = 1e-12 * width

    def to_u(x: np.ndarray) -> np.ndarray:
        return np.where(log, np.log(np.maximum(x, tiny)), x)

    def to_theta(u: np.ndarray) -> np.ndarray:
        return np.where(log, np.exp(np.where(log, u, 0.0)), u)

    # the box in u: log θ reaches down to −∞ where the box starts at 0
    low_u = np.where(log, np.log(np.where(log & (low > 0), low, 1.0)), low)
    low_u = np.where(log & (low == 0), -np.inf, low_u)
    high_u = np.where(log, np.log(np.where(log, high, 1.0)), high)
    floor = np.diag(np.where(log, 1e-6, 1e-6 * width) ** 2)
    # the starts in u: the moments of each starting Gaussian's draws, with a σ wider than the box
    # (a parameter the data leave unpinned) capped at half its width, correlations kept, and
    # the centre inside the box (else the box keeps almost none of it); its diagonal alone
    # where the box keeps too few of the correlated one
    firsts = []
    for loc, cov in starts:
        c = np.atleast_2d(np.asarray(cov, dtype=float))
        sd0 = np.sqrt(np.clip(np.diag(c), 0, None))
        c = c * np.outer(*[np.minimum(1.0, width / 2 / np.where(sd0 > 0, sd0, np.inf))] * 2)
        centre = np.clip(np.asarray(loc, dtype=float), low, high)
        x = cut_gaussian_draws(centre, c, low, high, seed)
        if x is None:
            x = cut_gaussian_draws(centre, np.diag(np.diag(c)), low, high, seed)
        if x is not None:
            u0 = to_u(x)
            firsts.append((u0.mean(0), np.atleast_2d(np.cov(u0.T))))
    if not firsts:
        return None
    current = firsts
    proposals: list[tuple[np.ndarray, np.ndarray, float, int]] = []
    us: list[np.ndarray] = []
    lls: list[np.ndarray] = []
    uniform = 0  # draws from the box's uniform distribution so far
    prev, result = None, None
    for k in range(rounds):
        got = 0
        for centre_u, cov_u in current:
            w_, v_ = np.linalg.eigh((cov_u + cov_u.T) / 2)
            psd = (v_ * np.clip(w_, 0, None)) @ v_.T
            n = int(draws * (1 - IS_UNIFORM)) // (2 * len(current))
            for factor in (1.0 if k == 0 else IS_INFLATE, IS_WIDE):
                cv = psd * factor + floor
                u, share = _cut_normal(rng, centre_u, np.linalg.cholesky(cv), low_u, high_u, n)
                if share >= 1e-3 and len(u) >= n // 4:
                    proposals.append((centre_u, cv, share, len(u)))
                    us.append(u)
                    lls.append(np.asarray(loglik(to_theta(u)), dtype=float))
                    got += 1
        if not got:
            break
        n_uniform = max(1, int(draws * IS_UNIFORM))
        u = to_u(low + width * rng.random((n_uniform, len(low))))
        us.append(u)
        lls.append(np.asarray(loglik(to_theta(u)), dtype=float))
        uniform += n_uniform
        allu, ll = np.concatenate(us), np.concatenate(lls)
        total = uniform + sum(n for *_, n in proposals)
        # the mixture of every proposal so far, each cut Gaussian normalized by the share of its
        # draws the box kept; the uniform one's density in u is Π θ_j (log θ) / the box's volume
        logq = np.logaddexp.reduce(
            [np.log(n / total) + _log_normal(allu, m, cv) - np.log(a) for m, cv, a, n in proposals]
            + [np.log(uniform / total) + (allu * log).sum(1) - np.log(width).sum()],
            axis=0,
        )
        # the prior is flat in θ: dθ = θ du for a parameter in log θ
        logw = ll + (allu * log).sum(1) - logq
        logw = np.where(np.isfinite(logw), logw, -np.inf)
        if not np.isfinite(logw).any():
            break
        w = np.exp(logw - logw.max())
        w /= w.sum()
        ess = float(1.0 / np.sum(w**2))
        current = [_weighted_moments(allu, w)]
        theta_mean, theta_cov = _weighted_moments(to_theta(allu), w)
        sd = np.sqrt(np.clip(np.diag(theta_cov), 0, None))
        settled = (
            prev is not None
            and ess >= IS_ESS
            and bool((np.abs(theta_mean - prev[0]) <= IS_SETTLE * sd).all())
            and bool((np.abs(sd - prev[1]) <= IS_SETTLE * sd).all())
        )
        result = {"draws": to_theta(allu), "weights": w, "ess": ess, "rounds": k + 1,
                  "settled": settled}  # fmt: skip
        if settled:
            break
        prev = (theta_mean, sd)
    if result is None or result["ess"] < IS_ESS:
        return None
    return result


def weighted_quantiles(x: np.ndarray, w: np.ndarray, q: np.ndarray = QUANTILES) -> np.ndarray:
    """(P, len(q)): per column of ``x`` the quantiles ``q`` of the weighted draws."""
    keep = w > 0
    x, w = x[keep], w[keep] / w[keep].sum()
    out = []
    for col in x.T:
        order = np.argsort(col)
        cdf = np.cumsum(w[order]) - 0.5 * w[order]
        out.append(np.interp(q, cdf, col[order]))
    return np.array(out)


def cut_by_box(
    boot: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    cov: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    near: float = FACE_NEAR,
    share: float = FACE_SHARE,
    seed: int = 0,
    reach: float = FACE_REACH,
    score: Callable[[np.ndarray], np.ndarray | None] | None = None,
    loglik: Callable[[np.ndarray], np.ndarray] | None = None,
    mode: Callable[[], tuple[np.ndarray, np.ndarray] | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mean and σ per parameter: the replicas', or when a parameter is cut the likelihood's
    reweighted posterior (with ``loglik``) or the box-cut Gaussian's (see the module).

    Args:
        boot: (R, P) the bootstrap replicas' θ.
        mean, std: (P,) the GAN's θ (the data replicas' mean) and the replicas' spread.
        cov: (P, P) the data's Cramér–Rao covariance at ``mean`` (inverse Fisher information).
        low, high: (P,) the prior box.
        near, share: a parameter is cut when at least ``share`` of its replicas lie within
            ``near`` of its Fisher σ of one face ("piled") ...
        seed: of the cut Gaussian's draws.
        reach: ... or when ``mean`` lies within ``reach`` of its Fisher σ of one face ("reach":
            the box cuts its likelihood there; the face is the one ``mean`` is nearer).
        score: θ → ∇log L of the data (P,), called at ``mean`` only when a parameter is cut;
            None (or a None from it): the Gaussian is centred on the piled parameters' faces and
            at the GAN's θ for the others.
        loglik: θ (B, P) → log L of the data (B,): the cut Gaussian is then only the first
            proposal of `reweight_by_likelihood`, and the numbers are those of the likelihood's
            own posterior in the box (``method`` "reweighted"); None, or a reweighting that
            fails: the cut Gaussian's.
        mode: () → the likelihood's maximum in the box and its Fisher covariance (or None),
            asked only when ``loglik`` is: a second start of the reweighting, where the GAN's θ
            is far from the posterior (its σ floored per parameter at the Fisher σ at the GAN's
            θ and the replicas' spread: at a face a normalization's Fisher σ is 0).

    Returns:
        The mean and σ to report (copies: reweighted, every parameter replaced; else the cut
        parameters' replaced, and an uncut one's where the cut Gaussian is wider than its
        replicas) and, per cut parameter index, what was
        found: the face, ``trigger`` ("piled" or "reach") and the ``reach`` used, the share of
        replicas at that face, its Fisher σ, the replicas' own mean and spread, ``centre``
        ("score": the Gaussian centred at θ + Σ·score, whose value for this parameter is
        ``peak``; "face": on the piled parameters' faces, at the GAN's θ for the others;
        "theta": at the GAN's θ, no parameter piled), ``step`` (the Newton step's length in Σ's
        metric; None without a score), ``gaussian_loc`` and ``gaussian_cov`` (the Gaussian's
        centre, every parameter, and its covariance ``cov``), ``seed`` and ``method`` ("reweighted": the
        Gaussian reweighted by ``loglik``, with ``reweighted`` (its effective sample size, rounds,
        whether it settled and its seconds, the MLE start's included) and ``quantiles`` (per
        parameter, its marginal QUANTILES); "box":
        the Gaussian cut by the whole box; "face": the Gaussian from its face cut by its own
        face range alone, for every cut parameter, when too few draws land in the box).
        Without the likelihood's posterior (no ``loglik``, or its reweighting failed), a
        parameter cut by reach alone whose "box" or "face" σ would be narrower than its
        replicas' spread is left uncut: the rule never narrows a width the replicas measured.
    """
    boot, mean, std, low, high = (np.asarray(a, dtype=float) for a in (boot, mean, std, low, high))
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    out_mean, out_std = mean.copy(), std.copy()
    cut: dict[int, dict] = {}
    if boot.ndim != 2 or len(boot) < 2 or not np.isfinite(cov).all():
        return out_mean, out_std, cut
    sigma = np.sqrt(np.clip(np.diag(cov), 0, None))
    loc = mean.copy()
    for j in range(len(mean)):
        s = sigma[j]
        if not s > 0:
            continue
        at_low = float(np.mean((boot[:, j] - low[j]) < near * s))
        at_high = float(np.mean((high[j] - boot[:, j]) < near * s))
        nearest = high[j] if high[j] - mean[j] < mean[j] - low[j] else low[j]
        if max(at_low, at_high) >= share:
            trigger = "piled"
            if at_high != at_low:
                face = high[j] if at_high > at_low else low[j]
            else:  # a σ wider than the box reaches both faces: the one the replicas are nearer
                face = nearest
            loc[j] = face
        elif abs(mean[j] - nearest) < reach * s:
            trigger, face = "reach", nearest
        else:
            continue
        cut[j] = {
            "face": float(face),
            "trigger": trigger,
            "reach": float(reach),
            "replicas_at_face": at_high if face == high[j] else at_low,
            "fisher_sigma": float(s),
            "replicas_mean": float(mean[j]),
            "replicas_std": float(std[j]),
        }
    if not cut:
        return out_mean, out_std, cut
    # without a usable score the Gaussian sits on the faces of the piled parameters (and at the
    # GAN's θ for the others): "face", or "theta" where none is piled
    piled = any(found["trigger"] == "piled" for found in cut.values())
    draws, centre, peak, step = None, "face" if piled else "theta", None, None
    grad = None if score is None else score(mean)
    if grad is not None and np.isfinite(grad).all():
        grad = np.asarray(grad, dtype=float)
        shift = cov @ grad
        step = float(np.sqrt(max(float(grad @ shift), 0.0)))
        if step <= STEP_MAX:
            peak = mean + shift
            draws = cut_gaussian_draws(peak, cov, low, high, seed)
            centre = "score" if draws is not None else centre
    gaussian_loc = peak if centre == "score" else np.clip(loc, low, high)
    if draws is None:
        draws = cut_gaussian_draws(gaussian_loc, cov, low, high, seed)
    moments = None if draws is None else (draws.mean(0), draws.std(0))
    reweighted = None
    seconds = None
    if loglik is not None:
        start = time.perf_counter()
        starts = [(gaussian_loc, cov)]
        found_mode = None if mode is None else mode()
        if found_mode is not None and all(np.isfinite(v).all() for v in found_mode):
            at, c = np.asarray(found_mode[0], dtype=float), np.atleast_2d(found_mode[1])
            sd = np.sqrt(np.clip(np.diag(c), 0, None))
            wider = np.maximum.reduce([sd, sigma, std]) / np.where(sd > 0, sd, 1.0)
            c = c * np.outer(wider, wider) + np.diag(
                np.where(sd > 0, 0.0, np.maximum(sigma, std) ** 2)
            )
            starts.append((at, c))
        try:
            reweighted = reweight_by_likelihood(loglik, starts, low, high, seed)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            print(f"face cut: no reweighting by the likelihood ({err}); the cut Gaussian's numbers")
            reweighted = None
        seconds = time.perf_counter() - start
    if reweighted is None:
        # without the likelihood's posterior, a parameter cut by reach alone keeps its replicas'
        # numbers where the rule's σ would be narrower: they did not collapse, and the rule
        # never narrows a width the replicas measured
        for j in [j for j, f in cut.items() if f["trigger"] == "reach"]:
            if _fallback_sigma(j, moments, sigma, cut[j]["face"], low, high) <= std[j]:
                del cut[j]
        if not cut:
            return out_mean, out_std, cut
    if reweighted is not None:
        # the likelihood's posterior in the box: every parameter takes its numbers (the
        # replicas' spread of a parameter correlated with a cut one is not a width either)
        m, c = _weighted_moments(reweighted["draws"], reweighted["weights"])
        out_mean, out_std = m, np.sqrt(np.clip(np.diag(c), 0, None))
    elif moments is not None:
        # the cut parameters take the cut Gaussian's numbers; an uncut one takes them only where
        # they widen it (its replicas collapsed with a cut neighbour): the rule undoes collapses
        # and never narrows a width the replicas measured (the Fisher σ of a normalization near
        # 0 can be far below the posterior's)
        widen = moments[1] > std
        for j in range(len(mean)):
            if j in cut or widen[j]:
                out_mean[j], out_std[j] = moments[0][j], moments[1][j]
    for j, found in cut.items():
        found["centre"], found["step"] = centre, step
        found["peak"] = float(peak[j]) if centre == "score" else None
        found["gaussian_loc"] = [float(v) for v in gaussian_loc]
        # with the seed, what regenerates the draws (cut_gaussian_draws; SBC: reported_ranks)
        found["gaussian_cov"] = cov.tolist()
        found["seed"] = int(seed)
        if reweighted is not None:
            found["method"] = "reweighted"
            found["reweighted"] = {k: reweighted[k] for k in ("ess", "rounds", "settled")}
            found["reweighted"]["seconds"] = seconds
            # the marginal quantiles QUANTILES per parameter: the truth's rank (reported_ranks)
            found["quantiles"] = weighted_quantiles(
                reweighted["draws"], reweighted["weights"]
            ).tolist()
        elif moments is not None:
            found["method"] = "box"
        else:  # the box keeps almost none of the Gaussian: its own face range alone
            s, face = sigma[j], found["face"]
            fallback = _one_face(sigma[j], face, low[j], high[j])
            out_mean[j], out_std[j] = float(fallback.mean()), float(fallback.std())
            found["method"] = "face"
    return out_mean, out_std, cut


def _fallback_sigma(
    j: int,
    moments: tuple[np.ndarray, np.ndarray] | None,
    sigma: np.ndarray,
    face: float,
    low: np.ndarray,
    high: np.ndarray,
) -> float:
    """Parameter j's σ by the rule without the likelihood: the cut Gaussian's (``moments``), else
    the one-face fallback's truncated normal at ``face``."""
    if moments is not None:
        return float(moments[1][j])
    return float(_one_face(sigma[j], face, low[j], high[j]).std())


def _one_face(s: float, face: float, low: float, high: float):  # noqa: ANN202 - a frozen scipy law
    """The one-face fallback: N(face, s²) cut to the parameter's range [low, high]."""
    return truncnorm((low - face) / s, (high - face) / s, face, s)


def cdf_rank(cdf: float, of: int) -> int:
    """The truth's rank (0 … of) among ``of`` draws from a distribution whose CDF at the truth is
    ``cdf``, as its expected place ⌊(of + 1) cdf⌋: uniform on 0 … of when it is calibrated."""
    return min(int((of + 1) * cdf), of)


def reported_ranks(
    boot: np.ndarray,
    truth: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    out_mean: np.ndarray,
    out_std: np.ndarray,
    cut: dict[int, dict],
    low: np.ndarray,
    high: np.ndarray,
) -> tuple[list[int], list[int]]:
    """The truth's simulation-based-calibration rank per parameter, among the L = len(boot)
    bootstrap replicas and in what the fit reports (`cut_by_box`'s ``out_mean``/``out_std`` and
    ``cut``): the replicas' rank where the rule kept their numbers, else the truth's place in the
    rule's distribution as a rank among L (`cdf_rank`): the reweighted posterior's recorded
    marginal ``quantiles``, the cut Gaussian's draws, regenerated from the recorded
    ``gaussian_loc``, ``gaussian_cov`` and ``seed``, or the one-face fallback's truncated
    normal. A calibrated rule gives uniform ranks for truths drawn from the prior; the
    replicas piled at a face do not, nor would an uncut N(out_mean, out_std)."""
    boot, truth = np.asarray(boot, dtype=float), np.asarray(truth, dtype=float)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    of = len(boot)
    replicas = [int(v) for v in (boot < truth).sum(0)]
    rule = list(replicas)
    if not cut:
        return replicas, rule
    first = next(iter(cut.values()))
    draws = None
    quantiles = None
    if first.get("method") == "reweighted":
        quantiles = np.asarray(first["quantiles"], dtype=float)
    elif first.get("method") == "box":
        if "gaussian_cov" not in first:
            raise ValueError(
                "this face cut has no gaussian_cov (recorded before the cut Gaussian's covariance "
                "was kept): apply the rule again (benchmarks/faces.py does) to rank the truth in it"
            )
        draws = cut_gaussian_draws(
            np.asarray(first["gaussian_loc"]), np.asarray(first["gaussian_cov"]), low, high,
            seed=int(first.get("seed", 0)),
        )  # fmt: skip

    def same(a: float, b: float) -> bool:
        return bool(a == b or (np.isnan(a) and np.isnan(b)))

    for j in range(len(truth)):
        if j not in cut and same(out_mean[j], mean[j]) and same(out_std[j], std[j]):
            continue  # the replicas' numbers, kept by the rule
        if quantiles is not None:  # the reweighted posterior's marginal quantiles
            cdf = float(np.interp(truth[j], quantiles[j], QUANTILES, left=0.0, right=1.0))
        elif draws is not None:
            cdf = float(np.mean(draws[:, j] < truth[j]))
        elif j in cut:  # the one-face fallback: its face's truncated normal
            s, face = cut[j]["fisher_sigma"], cut[j]["face"]
            cdf = float(_one_face(s, face, low[j], high[j]).cdf(truth[j]))
        else:
            continue
        if np.isfinite(cdf):
            rule[j] = cdf_rank(cdf, of)
    return replicas, rule
