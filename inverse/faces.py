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
centred on the GAN's θ with the cut parameters moved onto their faces (the widest such
posterior). A fit with no parameter at a face keeps the replicas' mean and spread.

How the rule was chosen (on the case-B pseudo-experiments of study-B-prior and study-B-face3) and
what it gave on others: docs/notes/2026-12-01-faces.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import truncnorm

__all__ = [
    "FACE_NEAR",
    "FACE_SHARE",
    "STEP_MAX",
    "cdf_rank",
    "cut_by_box",
    "cut_gaussian_draws",
    "reported_ranks",
]

# a bootstrap replica within FACE_NEAR Fisher σ of a face is at that face; a parameter with at
# least FACE_SHARE of its bootstrap replicas at one face is cut there
FACE_NEAR = 0.25
FACE_SHARE = 0.5
# the cut Gaussian's draws: batches of DRAWS until KEEP fall inside the box (at most ROUNDS)
DRAWS, KEEP, ROUNDS = 20_000, 4_000, 50
# a Newton step Σ·score longer than this in Σ's metric (√(scoreᵀ Σ score)) is not trusted: the
# likelihood is too far from quadratic between the fit and that peak
STEP_MAX = 5.0


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
    score: Callable[[np.ndarray], np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mean and σ per parameter: the replicas', or the box-cut Gaussian's when a parameter is cut
    (see the module).

    Args:
        boot: (R, P) the bootstrap replicas' θ.
        mean, std: (P,) the GAN's θ (the data replicas' mean) and the replicas' spread.
        cov: (P, P) the data's Cramér–Rao covariance at ``mean`` (inverse Fisher information).
        low, high: (P,) the prior box.
        near, share: a parameter is cut when at least ``share`` of its replicas lie within
            ``near`` of its Fisher σ of one face.
        seed: of the cut Gaussian's draws.
        score: θ → ∇log L of the data (P,), called at ``mean`` only when a parameter is cut;
            None (or a None from it): the Gaussian is centred on the faces.

    Returns:
        The mean and σ to report (copies: the cut parameters' replaced, and an uncut one's where
        the cut Gaussian is wider than its replicas) and, per cut parameter index, what was
        found: the face, the share of replicas at it, its Fisher σ, the replicas' own mean and
        spread, ``centre`` ("score": the Gaussian centred at θ + Σ·score, whose value for this
        parameter is ``peak``; "face": on the faces), ``step`` (the Newton step's length in Σ's
        metric; None without a score), ``gaussian_loc`` and ``gaussian_cov`` (the Gaussian's
        centre, every parameter, and its covariance ``cov``), ``seed`` and ``method`` ("box":
        the Gaussian cut by the whole box; "face": by its own face range alone, when too few
        draws land in the box).
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
        if max(at_low, at_high) < share:
            continue
        if at_high != at_low:
            face = high[j] if at_high > at_low else low[j]
        else:  # a σ wider than the box reaches both faces: the one the replicas are nearer
            face = high[j] if high[j] - mean[j] < mean[j] - low[j] else low[j]
        loc[j] = face
        cut[j] = {
            "face": float(face),
            "replicas_at_face": max(at_low, at_high),
            "fisher_sigma": float(s),
            "replicas_mean": float(mean[j]),
            "replicas_std": float(std[j]),
        }
    if not cut:
        return out_mean, out_std, cut
    draws, centre, peak, step = None, "face", None, None
    grad = None if score is None else score(mean)
    if grad is not None and np.isfinite(grad).all():
        grad = np.asarray(grad, dtype=float)
        shift = cov @ grad
        step = float(np.sqrt(max(float(grad @ shift), 0.0)))
        if step <= STEP_MAX:
            peak = mean + shift
            draws = cut_gaussian_draws(peak, cov, low, high, seed)
            centre = "score" if draws is not None else "face"
    gaussian_loc = peak if centre == "score" else np.clip(loc, low, high)
    if draws is None:
        draws = cut_gaussian_draws(gaussian_loc, cov, low, high, seed)
    moments = None if draws is None else (draws.mean(0), draws.std(0))
    if moments is not None:
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
        if moments is not None:
            found["method"] = "box"
        else:  # the box keeps almost none of the Gaussian: its own face range alone
            s, face = sigma[j], found["face"]
            m, v = truncnorm.stats((low[j] - face) / s, (high[j] - face) / s, face, s, "mv")
            out_mean[j], out_std[j] = float(m), float(np.sqrt(v))
            found["method"] = "face"
    return out_mean, out_std, cut


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
    rule's distribution as a rank among L (`cdf_rank`): the cut Gaussian's draws, regenerated from
    the recorded ``gaussian_loc``, ``gaussian_cov`` and ``seed``, or the one-face fallback's
    truncated normal. A calibrated rule gives uniform ranks for truths drawn from the prior; the
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
    if first.get("method") == "box":
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
        if draws is not None:
            cdf = float(np.mean(draws[:, j] < truth[j]))
        elif j in cut:  # the one-face fallback: its face's truncated normal
            s, face = cut[j]["fisher_sigma"], cut[j]["face"]
            cdf = float(truncnorm.cdf(truth[j], (low[j] - face) / s, (high[j] - face) / s, face, s))
        else:
            continue
        if np.isfinite(cdf):
            rule[j] = cdf_rank(cdf, of)
    return replicas, rule
