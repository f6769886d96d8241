"""Fidelity of a surrogate against the exact theory at held-out θ (never used in training)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from surrogates.data import CASES, event_sampler  # noqa: E402
from surrogates.detector import DETECTOR_DEFAULTS, make_detector  # noqa: E402
from surrogates.errors import InputError, ParameterError  # noqa: E402
from surrogates.generators import EventGenerator, TheoryGenerator, seed_for  # noqa: E402
from surrogates.likelihood import BinnedEvents, FoldedModel, crb_std, fit_binned_mle  # noqa: E402
from surrogates.likelihood.surrogate import (  # noqa: E402
    SurrogateLikelihood,
    quantile_edges,
    surrogate_shift_noise,
)
from surrogates.runs import write_json  # noqa: E402
from surrogates.sampling import InverseCDFSampler  # noqa: E402
from surrogates.theory import Theory  # noqa: E402
from surrogates.theory.base import Module2  # noqa: E402
from surrogates.types import EventSource, require_density  # noqa: E402

__all__ = [
    "validation_theta",
    "held_out_theta",
    "VALIDATION_SEED_OFFSET",
    "HELD_OUT_SEED_OFFSET",
    "test_theta",
    "test_set_record",
    "make_test_set",
    "design_theta",
    "record_test_set",
    "TEST_SETS",
    "TEST_SET_SEED",
    "evaluate_surrogate",
    "evaluate_surrogate_2d",
    "evaluate_density_free",
    "theta_shift_surrogate",
    "reference_counts",
    "as_generator",
    "theta_shift_folded",
    "sampling_rate",
    "theta_shift",
    "theta_shift_expected",
    "theta_shift_of_events",
    "reference_counts",
    "parse_counts",
    "counts_label",
    "c2st_auc",
    "sample_in_chunks",
    "held_out_figure",
    "bin_probabilities",
]


def sample_in_chunks(
    source: EventSource, theta: torch.Tensor, n: int, chunk: int = 200_000, seed: int = 0
) -> list[np.ndarray]:
    """n events per channel at one θ (1, P), drawn in chunks to bound memory; float32 arrays (n,)
    for 1-D events, (n, d) otherwise."""
    gen = torch.Generator().manual_seed(seed)
    parts: list[list[np.ndarray]] = []
    with torch.no_grad():
        done = 0
        while done < n:
            k = min(chunk, n - done)
            parts.append(
                [
                    (e[0, :, 0] if e.shape[-1] == 1 else e[0]).float().numpy()
                    for e in source.sample(theta, k, generator=gen)
                ]
            )
            done += k
    return [np.concatenate([p[c] for p in parts]) for c in range(len(parts[0]))]


def reference_counts(theory: Theory, counts: Sequence[float] | str | None = None) -> np.ndarray:
    """The fidelity unit's data size: expected events per channel of the reference data.

    A θ shift is reported in σ_CRB of data of this size, so it means something only for the
    user's own data: ``counts`` when given (a sequence or "N1,N2"), else the theory's declared
    ``reference_counts``, else its ``closure_counts`` (the 2-D DIS theory), else the proxy's case A
    (100000, 50000) for a two-channel theory. Every report states the counts it used.

    >>> from surrogates.theory import ProxyTheory
    >>> reference_counts(ProxyTheory()).tolist(), reference_counts(ProxyTheory(), "2000,1000").tolist()
    ([100000.0, 50000.0], [2000.0, 1000.0])
    """
    if isinstance(counts, str):
        return parse_counts(counts, theory)
    if counts is None:
        counts = getattr(theory, "reference_counts", None)
    if counts is None:
        counts = getattr(theory, "closure_counts", None)
    if counts is None:
        if theory.n_channels != len(CASES["A"]):
            raise InputError(
                f"theory '{theory.name}' declares no reference_counts (expected events per "
                f"channel of its data, the unit of the θ shift); give {theory.n_channels} counts, "
                f"e.g. --eval.reference_counts {','.join(['10000'] * theory.n_channels)}"
            )
        counts = CASES["A"]
    return _checked_counts(np.asarray(counts, dtype=float).reshape(-1), theory, str(counts))


def parse_counts(text: str, theory: Theory, key: str = "reference_counts") -> np.ndarray:
    """ "N1,N2" (one expected count per channel of ``theory``) as an array, or a one-line
    InputError naming ``key``."""
    try:
        values = np.asarray([float(v) for v in str(text).strip("[]() ").split(",")])
    except ValueError:
        raise InputError(
            f"{key} '{text}' must be comma-separated numbers, one per channel "
            f"({', '.join(theory.channels)}), e.g. {','.join(['10000'] * theory.n_channels)}"
        ) from None
    return _checked_counts(values, theory, str(text), key)


def _checked_counts(
    values: np.ndarray, theory: Theory, given: str, key: str = "reference_counts"
) -> np.ndarray:
    if len(values) != theory.n_channels or not np.all(np.isfinite(values)) or values.min() <= 0:
        raise InputError(
            f"{key} '{given}' needs {theory.n_channels} positive counts, one per channel "
            f"({', '.join(theory.channels)}), e.g. {','.join(['10000'] * theory.n_channels)}"
        )
    return values


def counts_label(counts: Sequence[float]) -> str:
    """The unit of a θ shift in words: ``σ_CRB at N = (100000, 50000) events``."""
    return "σ_CRB at N = (" + ", ".join(f"{float(c):.6g}" for c in counts) + ") events"


def theta_shift(
    source: EventSource,
    theory: Theory,
    theta: torch.Tensor,
    n_events: int = 10_000_000,
    seed: int = 0,
    counts: Sequence[float] | None = None,
) -> np.ndarray:
    """(θ_fit − θ)/σ_CRB: the exact-theory MLE of the source's events and norms at θ.

    The source's events (n_events per channel) are histogrammed finely (`BinnedEvents`) and fitted
    with the exact theory's extended likelihood, with the source's own norms as the measured ones.
    σ_CRB is that of data of ``counts`` expected events per channel (`reference_counts`: the
    theory's reference data size unless given; the proxy's case A). Its statistical noise is about
    √(N_ref / n_events) σ_CRB: 0.1 at 10^7 events for the proxy's case A.
    """

    theta = theory.check_theta(theta)
    events = sample_in_chunks(source, theta.to(torch.float64), n_events, seed=seed)
    with torch.no_grad():
        norms = source.norms(theta).double()[0].numpy()
    return theta_shift_of_events(theory, theta, events, norms, counts)


def theta_shift_of_events(
    theory: Theory,
    theta: torch.Tensor,
    events: Sequence[np.ndarray],
    norms: np.ndarray,
    counts: Sequence[float] | None = None,
) -> np.ndarray:
    """(θ_fit − θ)/σ_CRB of given events per channel and measured norms at θ (1, P): the
    exact theory's binned extended-likelihood fit of `theta_shift`, for events drawn elsewhere
    (e.g. a quasi-Monte Carlo histogram of a surrogate with no density)."""
    binned = BinnedEvents(theory, list(events), norms)
    fit = fit_binned_mle(theory, binned, start=theta[0].numpy())
    unit = crb_std(theory, theta[0], reference_counts(theory, counts))
    return (fit.theta - theta[0].numpy()) / unit


def theta_shift_expected(
    source: EventSource,
    theory: Theory,
    theta: torch.Tensor,
    n_events: int = 10_000_000,
    counts: Sequence[float] | None = None,
) -> np.ndarray:
    """`theta_shift` without its sampling noise: the fit of the source's *expected* histogram.

    For a source with a density (a flow, the exact sampler): the counts are n_events × ∫_bin
    p̂_c(x | θ) dx on `theta_shift`'s bins (the same Gauss–Legendre nodes), the measured norms are
    the source's, and the same extended-likelihood fit gives (θ_fit − θ)/σ_CRB at ``counts``
    (`reference_counts`). This is the shift the sampled measurement scatters around (its noise ≈
    √(N_ref / n_events)); it takes seconds, so it can map a surrogate's bias over many θ.
    n_events only sets the scale of the counts.
    """
    source = require_density(source, "theta_shift_expected")
    theta = theory.check_theta(theta)
    if theta.shape[0] != 1:
        raise ParameterError(
            f"theta_shift_expected takes one θ, shape (1, P), got {tuple(theta.shape)}: call it per point"
        )
    binned = BinnedEvents(theory, [np.empty(0)] * theory.n_channels, [1.0] * theory.n_channels)
    k, m = binned.weights.shape
    with torch.no_grad():
        logp = source.log_prob(binned.nodes.view(1, -1, 1), theta).double()[0]  # (C, K·m)
        norms = source.norms(theta).double()[0]
    prob = (logp.exp().view(-1, k, m) * binned.weights).sum(-1)  # (C, K)
    binned.set_counts(n_events * prob / prob.sum(-1, keepdim=True), norms.numpy())
    fit = fit_binned_mle(theory, binned, start=theta[0].numpy())
    unit = crb_std(theory, theta[0], reference_counts(theory, counts))
    return (fit.theta - theta[0].numpy()) / unit


def shift_summary(shifts: np.ndarray) -> dict:
    """Max / 95th percentile / median of |θ shift| over a set of θ (rows: θ, columns: parameters).

    Per parameter (``max``, ``p95``, ``median``: lists) and over all parameters (``max_all``, and
    ``p95_all`` / ``median_all`` of each θ's largest |shift|): the test-set headline of the
    fidelity and budget benchmarks.
    """
    a = np.abs(np.asarray(shifts, dtype=float))
    if a.ndim != 2 or a.size == 0:
        raise ParameterError(
            f"shift_summary takes shifts of shape (points, parameters), got {a.shape}"
        )
    worst = a.max(1)
    return {
        "max": a.max(0).tolist(),
        "p95": np.percentile(a, 95, axis=0).tolist(),
        "median": np.median(a, axis=0).tolist(),
        "max_all": float(a.max()),
        "p95_all": float(np.percentile(worst, 95)),
        "median_all": float(np.median(worst)),
    }


def c2st_auc(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Classifier two-sample test: ROC AUC of a gradient-boosted classifier separating a from b.

    Half of each sample trains, half tests. Returns (AUC, standard error (Hanley–McNeil 1982)).
    0.5 means indistinguishable.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    x = np.concatenate([a, b]).reshape(len(a) + len(b), -1)
    y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    half = len(y) // 2
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(x[:half], y[:half])
    auc = float(roc_auc_score(y[half:], clf.predict_proba(x[half:])[:, 1]))
    n1, n0 = y[half:].sum(), len(y[half:]) - y[half:].sum()
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = np.sqrt(
        (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
    )
    return auc, float(se)


# The two θ streams. VALIDATION θ serve every choice (the best checkpoint, early stopping, the
# stages of a schedule, the HPO objective): the fit CLI's held-out evaluation draws them from
# seed_everything + VALIDATION_SEED_OFFSET (never a training seed). TEST θ serve reporting only:
# a set recorded once per theory in surrogates/theory/test_sets.json (`test_theta`), from its own
# random stream; nothing that makes a choice reads it (tests/test_test_set.py checks the fit CLI
# and the HPO objective with test_theta made to raise).
VALIDATION_SEED_OFFSET = 1_000_003
HELD_OUT_SEED_OFFSET = VALIDATION_SEED_OFFSET  # its older name: the fit CLI's "held-out" θ

TEST_SETS = Path(__file__).resolve().parent / "theory" / "test_sets.json"
# the test stream's entropy: a Sobol' scramble and near-face draws from SeedSequence([this, k]),
# never an integer seed the validation stream (Sobol' seeded with an int) could be given
TEST_SET_SEED = 20_261_201


def validation_theta(theory: Theory, n: int, seed: int) -> torch.Tensor:
    """n validation θ spread over the prior box (a scrambled Sobol' sequence of ``seed``), inset
    5% from its faces: the θ every choice is made on (the fit CLI's held-out evaluation)."""
    m = max(int(np.ceil(np.log2(max(n, 1)))), 0)
    points = stats.qmc.Sobol(theory.n_params, scramble=True, seed=seed).random_base2(m)[:n]
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    inset = 0.05 * (high - low)
    return torch.as_tensor(low + inset + points * (high - low - 2 * inset), dtype=theory.dtype)


held_out_theta = validation_theta  # its older name; the held-out θ are validation θ


def make_test_set(
    theory: Theory, n_fill: int = 64, n_face: int = 16, face: float = 0.02, key: int = 0
) -> dict:
    """A test set for ``theory`` (to record ONCE, `record_test_set`): ``n_fill`` scrambled
    Sobol' points filling the whole prior box (faces included, no inset), then ``n_face`` points
    each with one or two coordinates within ``face`` (a fraction of the width) of a face, the
    others uniform; all from ``SeedSequence([TEST_SET_SEED, key])``, a stream of its own."""
    rng = np.random.default_rng(np.random.SeedSequence([TEST_SET_SEED, key]))
    m = int(np.ceil(np.log2(max(n_fill, 1))))
    fill = stats.qmc.Sobol(theory.n_params, scramble=True, seed=rng).random_base2(m)[:n_fill]
    near = rng.uniform(0.0, 1.0, (n_face, theory.n_params))
    for row in near:
        k = 1 + int(rng.integers(2))  # one or two coordinates near a face
        for j in rng.choice(theory.n_params, size=k, replace=False):
            depth = rng.uniform(0.1, 1.0) * face  # strictly inside, within `face` of it
            row[j] = depth if rng.integers(2) == 0 else 1.0 - depth
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    theta = low + np.concatenate([fill, near]) * (high - low)
    points = [[float(v) for v in row] for row in theta]
    digest = _points_hash(points)
    return {
        "id": f"{theory.name}-test-{digest[:12]}",
        "sha256": digest,
        "theory": theory.name,
        "param_names": list(theory.param_names),
        "prior_low": low.tolist(),
        "prior_high": high.tolist(),
        "n_fill": n_fill,
        "n_near_face": n_face,
        "face_fraction": face,
        "stream": f"numpy SeedSequence([{TEST_SET_SEED}, {key}]): scrambled Sobol' then near-face",
        "theta": points,
    }


def _points_hash(points: list[list[float]]) -> str:
    return hashlib.sha256(json.dumps(points).encode()).hexdigest()


def record_test_set(theory: Theory, path: Path = TEST_SETS, key: int = 0, **kwargs) -> dict:  # noqa: ANN003
    """Write ``theory``'s test set into ``path`` (beside the other theories'); refuses to replace
    a recorded one: a test set is fixed once, or its numbers stop being comparable."""
    sets = json.loads(path.read_text()) if path.is_file() else {}
    if theory.name in sets:
        raise InputError(
            f"theory '{theory.name}' already has a test set ({sets[theory.name]['id']}) in "
            f"{path}; it is fixed once: remove it by hand only to start a new series of numbers"
        )
    sets[theory.name] = make_test_set(theory, key=key, **kwargs)
    write_json(path, sets)
    return sets[theory.name]


def test_set_record(theory: Theory, path: Path = TEST_SETS) -> dict:
    """The recorded test set of ``theory`` (its id, hash, stream and points), checked: the
    points hash to the recorded sha256 and the prior box is the theory's."""
    sets = json.loads(path.read_text()) if path.is_file() else {}
    record = sets.get(theory.name)
    if record is None:
        raise InputError(
            f"no test set recorded for theory '{theory.name}' in {path}; record one once with "
            f"surrogates.metrics.record_test_set(get_theory('{theory.name}'))"
        )
    if _points_hash(record["theta"]) != record["sha256"]:
        raise InputError(f"the test set of '{theory.name}' in {path} does not match its sha256")
    box = (theory.prior_low.numpy().tolist(), theory.prior_high.numpy().tolist())
    if not np.allclose(box, (record["prior_low"], record["prior_high"])):
        raise InputError(
            f"the test set of '{theory.name}' was recorded for the prior box "
            f"{record['prior_low']}..{record['prior_high']}, not this theory's {box[0]}..{box[1]}"
        )
    return record


def test_theta(theory: Theory) -> torch.Tensor:
    """The test θ of ``theory`` (N, P): for reporting only, never for a choice."""
    return torch.as_tensor(test_set_record(theory)["theta"], dtype=theory.dtype)


def design_theta(
    theory: Theory, design: str, points: int, face_points: int = 16, seed: int = 7
) -> tuple[torch.Tensor, int, str]:
    """The θ of a shift measurement, how many of them fill the box (the rest lie near a face),
    and the set's id, by ``design``:

    * ``sobol``: ``points`` `validation_theta` of ``seed`` (inset 5% from the faces);
    * ``box``: the recorded test set's design (`make_test_set`: ``points`` filling the box, faces
      included, and ``face_points`` within 2% of a face) on stream ``seed``, for validation where
      the faces matter; seed 0, the recorded set's own stream, is refused;
    * ``test``: the recorded test set, for reporting only.
    """
    if design == "sobol":
        theta = validation_theta(theory, points, seed) if points else torch.empty(0, theory.n_params)
        return theta, len(theta), f"sobol-{seed}"
    if design == "box":
        if seed == 0:
            raise InputError(
                "the box design's seed 0 is the recorded test set's own stream; give another seed"
            )
        record = make_test_set(theory, points, face_points, key=seed)
        set_id = f"box-{seed}"
    elif design == "test":
        record = test_set_record(theory)  # refuses a theory with no recorded test set
        set_id = record["id"]
    else:
        raise InputError(f"θ design '{design}': choose sobol, box or test")
    return torch.as_tensor(record["theta"], dtype=theory.dtype), int(record["n_fill"]), set_id


test_theta.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
test_set_record.__test__ = False  # type: ignore[attr-defined]


def sampling_rate(source: EventSource, theta: torch.Tensor, n: int, grad: bool = True) -> float:
    """Events per second (all channels) of ``source.sample`` with (or without) a backward pass."""
    th = theta.clone().requires_grad_(grad)
    t0 = time.perf_counter()
    with torch.set_grad_enabled(grad):
        events = source.sample(th, n)
        if grad:
            sum(e.sum() for e in events).backward()
    return sum(e.numel() for e in events) / (time.perf_counter() - t0)


@torch.no_grad()
def evaluate_surrogate(
    model,  # noqa: ANN001
    theory: Theory,
    out: str | Path,
    n_held_out: int = 5,
    n_events: int = 100_000,
    seed: int = 0,
    shift_events: int = 10_000_000,
    counts: Sequence[float] | None = None,
) -> dict:
    """Fidelity at held-out θ against the exact theory, sampling speed, and comparison plots.

    Returns a dict for ``metrics.json``: ``theta_shift_crb`` (per parameter, the largest |shift|
    over held-out θ, see `theta_shift`; with ``theta_shift_crb_all`` per point) in σ_CRB of data
    of ``reference_counts`` expected events per channel (``counts``, or the theory's reference data
    size: `reference_counts`; ``theta_shift_unit`` says it in words), ``c2st_auc`` and
    ``c2st_auc_se`` (per channel, the largest over held-out θ), ``w1`` and ``ks`` (per channel,
    largest), ``norm_error`` (largest relative error of ∫σ_c), ``sample_events_per_second`` (with
    gradients), ``held_out_theta``. Writes ``heldout.png`` (histograms and densities vs exact,
    and under each the surrogate / exact ratio with the statistical band).
    """
    if theory.event_dim != 1:
        return evaluate_surrogate_2d(
            model, theory, out, n_held_out, n_events, seed, shift_events, counts
        )
    ref_counts = reference_counts(theory, counts)
    theta = validation_theta(theory, n_held_out, seed)
    gen = torch.Generator().manual_seed(seed)
    exact = InverseCDFSampler(theory) if theory.event_dim == 1 else None
    norms_true = theory.norms(theta).numpy()
    norms_pred = model.norms(theta).double().numpy()
    norm_error = np.abs(norms_pred / norms_true - 1)
    sur = model.sample(theta, n_events, generator=gen)
    ref = exact.sample(theta, n_events, generator=gen) if exact is not None else None
    w1 = np.zeros((n_held_out, theory.n_channels))
    ks, auc, auc_se = np.zeros_like(w1), np.zeros_like(w1), np.zeros_like(w1)
    for b in range(n_held_out):
        for c in range(theory.n_channels):
            a, r = sur[c][b, :, 0].numpy(), ref[c][b, :, 0].numpy()
            w1[b, c] = stats.wasserstein_distance(a, r)
            ks[b, c] = stats.ks_2samp(a, r).statistic
            auc[b, c], auc_se[b, c] = c2st_auc(a, r, seed=seed + b)
    shifts = (
        np.stack(
            [
                theta_shift(
                    model, theory, theta[b : b + 1], shift_events, seed=seed + b, counts=ref_counts
                )
                for b in range(n_held_out)
            ]
        )
        if shift_events > 0
        else np.full((n_held_out, theory.n_params), np.nan)
    )
    worst = np.argmax(auc, axis=0)
    with torch.enable_grad():
        rate = sampling_rate(model, theta[:1].float(), min(n_events, 100_000))
    _plot_held_out(Path(out) / "heldout.png", model, theory, theta[: min(3, n_held_out)], sur, ref)
    return {
        "theta_shift_crb": np.abs(shifts).max(0),
        "theta_shift_crb_all": shifts,
        "theta_shift_events": shift_events,
        "reference_counts": ref_counts,
        "theta_shift_unit": counts_label(ref_counts),
        "c2st_auc": auc.max(0),
        "c2st_auc_se": auc_se[worst, np.arange(theory.n_channels)],
        "c2st_events": n_events,
        "norm_error": float(norm_error.max()),
        "norm_error_per_channel": norm_error.max(0),
        "w1": w1.max(0),
        "ks": ks.max(0),
        "held_out_theta": theta.numpy(),
        "sample_events_per_second": rate,
    }


def _plot_held_out(path: Path, model, theory: Theory, theta, sur, ref) -> None:  # noqa: ANN001
    fig = held_out_figure(model, theory, theta, sur, ref)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def bin_probabilities(theory: Theory, theta: torch.Tensor, edges: np.ndarray) -> np.ndarray:
    """The exact probability of each bin per θ and channel, (B, C, K): ∫_bin σ_c / ∫σ_c by
    8-node Gauss–Legendre quadrature in each bin (1-D events)."""
    nodes, weights = np.polynomial.legendre.leggauss(8)
    lo, width = edges[:-1, None], np.diff(edges)[:, None]
    x = (lo + width * (nodes + 1) / 2).reshape(1, -1, 1)  # (1, K·8, 1)
    w = torch.as_tensor(width * weights / 2, dtype=theory.dtype)  # (K, 8)
    with torch.no_grad():
        dens = theory.density(torch.as_tensor(x, dtype=theory.dtype), theta)
        prob = (dens.view(*dens.shape[:2], *w.shape) * w).sum(-1)
        return (prob / theory.norms(theta).unsqueeze(-1)).numpy()


def held_out_figure(model, theory: Theory, theta, sur, ref):  # noqa: ANN001, ANN201
    """The held-out comparison: per θ (rows) and channel (columns) the surrogate's and the exact
    sampler's histograms with the densities on a log scale, and under each a ratio panel:
    the surrogate's histogram / the exact expected counts (its ±1σ statistical band shaded) and,
    for a model with a density, p̂ / p. A ±10% local error, invisible on the log scale, shows
    here. Returns the matplotlib figure (2 × rows × channels axes)."""
    rows, cols = len(theta), theory.n_channels
    fig, axes = plt.subplots(
        2 * rows,
        cols,
        figsize=(4.5 * cols, 4.4 * rows),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1.3] * rows},
    )
    lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
    grid = torch.linspace(lo, hi, 300, dtype=theory.dtype)[1:-1].view(1, -1, 1)
    exact_pdf = theory.density(grid, theta) / theory.norms(theta).unsqueeze(-1)
    has_density = model.has_density
    if has_density:
        model_pdf = model.log_prob(grid.float(), theta.float()).exp().double()
    bins = np.linspace(lo, hi, 61)
    centres = (bins[:-1] + bins[1:]) / 2
    prob = bin_probabilities(theory, theta, bins)
    for b in range(rows):
        for c in range(cols):
            ax, rax = axes[2 * b, c], axes[2 * b + 1, c]
            for events, color, label in ((ref, "k", "exact"), (sur, "C1", "surrogate")):
                ax.hist(
                    events[c][b, :, 0].numpy(),
                    bins=bins,
                    density=True,
                    histtype="step",
                    color=color,
                    label=label,
                )
            ax.plot(grid[0, :, 0], exact_pdf[b, c], "k--", lw=0.8)
            if has_density:
                ax.plot(grid[0, :, 0], model_pdf[b, c], "C1:", lw=1)
            ax.set_yscale("log")
            ax.set_title(f"{theory.channels[c]}, held-out θ {b}", fontsize=9)
            ax.tick_params(labelbottom=False)
            if b == 0 and c == 0:
                ax.legend(fontsize=8)
            events = sur[c][b, :, 0].numpy()
            expected = len(events) * prob[b, c]
            counts = np.histogram(events, bins=bins)[0]
            ok = expected > 0
            band = 1 / np.sqrt(np.where(ok, expected, np.inf))
            rax.fill_between(centres, 1 - band, 1 + band, step="mid", color="0.85", lw=0)
            rax.axhline(1, color="k", lw=0.6)
            rax.step(centres[ok], counts[ok] / expected[ok], where="mid", color="C1", lw=1)
            if has_density:
                ratio = model_pdf[b, c] / exact_pdf[b, c].clamp(min=1e-300)
                rax.plot(grid[0, :, 0], ratio, "C0:", lw=1)
            rax.set_ylim(0.8, 1.2)
            rax.set_xlim(lo, hi)
            rax.set_ylabel("surrogate / exact", fontsize=7)
            rax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def theta_shift_folded(
    source: EventSource,
    theory: Theory,
    theta: torch.Tensor,
    folded: FoldedModel,
    counts: Sequence[float],
    n_events: int,
    seed: int = 0,
) -> np.ndarray:
    """(θ_fit − θ)/σ_CRB for 2-D theories seen through a detector.

    ``n_events`` true events per channel from the source at θ are reconstructed through the
    detector of ``folded`` (an `surrogates.likelihood.FoldedModel`: efficiency drawn per event, smearing,
    box), with the source's norm × the mean acceptance of its events as the measured norms, and
    fitted with the exact theory folded through the same detector (binned likelihood). σ_CRB is
    that of reconstructed data from ``counts`` expected true events per channel at θ.
    """
    theta = theory.check_theta(theta)
    events = sample_in_chunks(source, theta.to(torch.float64), n_events, seed=seed)
    rng = np.random.default_rng(seed)
    det = folded.detector
    with torch.no_grad():
        acc = [
            float(det.acceptance(torch.as_tensor(e, dtype=torch.float64)).mean()) for e in events
        ]
        norms = source.norms(theta).double()[0].numpy() * np.asarray(acc)
        reco = [det.simulate(e.astype(np.float64), rng) for e in events]
        exact_acc = (folded.accepted_norms(theta) / theory.norms(theta))[0].numpy()
    fit = folded.fit_events(reco, norms, start=theta[0].numpy())
    crb = folded.crb_std(theta[0], np.asarray(counts, dtype=float) * exact_acc)
    return (fit.theta - theta[0].numpy()) / crb


@torch.no_grad()
def evaluate_surrogate_2d(
    model,  # noqa: ANN001
    theory: Theory,
    out: str | Path,
    n_held_out: int = 5,
    n_events: int = 100_000,
    seed: int = 0,
    shift_events: int = 1_000_000,
    counts: Sequence[float] | None = None,
) -> dict:
    """`evaluate_surrogate` for 2-D events (inclusive DIS): the same keys.

    ``theta_shift_crb``: see `theta_shift_folded`, with the theory's default detector and
    ``counts`` true events per channel (`reference_counts`: the theory's reference data size, the
    closure counts ``theory.closure_counts`` of DIS), so the unit is σ_CRB of that data seen
    through the detector.
    C2ST on the 2-D events; W1 and KS on each coordinate of the unit-square map of the region
    (scale-free), the larger of the two per channel.
    """

    ref_counts = reference_counts(theory, counts)
    theta = validation_theta(theory, n_held_out, seed)
    gen = torch.Generator().manual_seed(seed)
    exact = event_sampler(theory)
    norms_true = theory.norms(theta).numpy()
    norm_error = np.abs(model.norms(theta).double().numpy() / norms_true - 1)
    sur = [e.double() for e in model.sample(theta, n_events, generator=gen)]
    ref = exact.sample(theta, n_events, generator=gen)
    w1 = np.zeros((n_held_out, theory.n_channels))
    ks, auc, auc_se = np.zeros_like(w1), np.zeros_like(w1), np.zeros_like(w1)
    for b in range(n_held_out):
        for c in range(theory.n_channels):
            a = theory.support_to_unit(sur[c][b])[0].numpy()
            r = theory.support_to_unit(ref[c][b])[0].numpy()
            w1[b, c] = max(stats.wasserstein_distance(a[:, k], r[:, k]) for k in range(2))
            ks[b, c] = max(stats.ks_2samp(a[:, k], r[:, k]).statistic for k in range(2))
            auc[b, c], auc_se[b, c] = c2st_auc(a, r, seed=seed + b)
    if shift_events > 0:
        folded = FoldedModel(theory, make_detector(DETECTOR_DEFAULTS, theory))
        shifts = np.stack(
            [
                theta_shift_folded(
                    model, theory, theta[b : b + 1], folded, ref_counts, shift_events, seed + b
                )
                for b in range(n_held_out)
            ]
        )
    else:
        shifts = np.full((n_held_out, theory.n_params), np.nan)
    worst = np.argmax(auc, axis=0)
    with torch.enable_grad():
        rate = sampling_rate(model, theta[:1].float(), min(n_events, 100_000))
    _plot_held_out_2d(Path(out) / "heldout.png", theory, sur, ref, min(3, n_held_out))
    return {
        "theta_shift_crb": np.abs(shifts).max(0),
        "theta_shift_crb_all": shifts,
        "theta_shift_events": shift_events,
        "reference_counts": ref_counts,
        "theta_shift_unit": f"{counts_label(ref_counts)} through the default detector",
        "c2st_auc": auc.max(0),
        "c2st_auc_se": auc_se[worst, np.arange(theory.n_channels)],
        "c2st_events": n_events,
        "norm_error": float(norm_error.max()),
        "norm_error_per_channel": norm_error.max(0),
        "w1": w1.max(0),
        "ks": ks.max(0),
        "held_out_theta": theta.numpy(),
        "sample_events_per_second": rate,
    }


def _plot_held_out_2d(path: Path, theory: Theory, sur, ref, rows: int) -> None:  # noqa: ANN001
    cols = 2 * theory.n_channels
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    names = ["x", "Q² [GeV²]"]
    for b in range(rows):
        for c in range(theory.n_channels):
            for k in range(2):
                ax = axes[b, 2 * c + k]
                r = ref[c][b, :, k].numpy()
                bins = np.geomspace(r.min(), r.max(), 41)
                for ev, color, label in (
                    (r, "k", "exact"),
                    (sur[c][b, :, k].numpy(), "C1", "surrogate"),
                ):
                    ax.hist(ev, bins=bins, density=True, histtype="step", color=color, label=label)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_title(f"{theory.channels[c]} {names[k]}, held-out θ {b}", fontsize=8)
                if b == 0 and c == 0 and k == 0:
                    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- fidelity without a density -------------------------------------------------------------


def as_generator(module2: Module2) -> EventGenerator:
    """The module-2 as an event generator: itself, or a density theory's exact sampler."""
    if isinstance(module2, EventGenerator):
        return module2
    return TheoryGenerator(module2)  # type: ignore[arg-type]


def theta_shift_surrogate(
    source: EventSource,
    module2: Module2,
    theta: np.ndarray,
    data,  # noqa: ANN001 - surrogates.generators.Generated: the generator's events and rates
    edges: Sequence[np.ndarray],
    counts: Sequence[float],
    method: str = "auto",
    template_events: int = 1_000_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, bool, str]:
    """The θ shift that matters when there is no density: fit the generator's events at θ with
    the surrogate as the model (`SurrogateLikelihood`: its density, or its histogram template)
    and return ((θ_fit − θ)/σ, σ, converged, method), σ the surrogate's own Cramér–Rao σ at θ
    for ``counts`` expected events per channel.

    Its sign is the user's: fitting data with this surrogate lands that far from the truth. The
    exact-density view (`theta_shift`: the exact theory's fit of the surrogate's events) sees
    the same error from the other side: the two are equal and opposite to first order when the
    surrogate's dependence on θ (its score) is the theory's. They part when it is not, for the
    exact view never varies the surrogate's θ; a fit through the surrogate (the outer GAN's)
    sees this view.
    """
    like = SurrogateLikelihood(
        source, module2, edges, method=method, template_events=template_events, seed=seed
    )
    crb = like.crb_std(theta, counts)
    fit = like.fit_events(data.events, data.rates, theta)
    return (fit.theta - theta) / crb, crb, fit.success, like.method


@torch.no_grad()
def evaluate_density_free(
    model,  # noqa: ANN001 - a surrogate (any EventSource)
    module2: Module2,
    n_held_out: int = 5,
    n_events: int = 100_000,
    seed: int = 0,
    shift_events: int = 1_000_000,
    template_events: int | None = None,
    bins: int = 100,
    c2st: bool = True,
    counts: Sequence[float] | str | None = None,
) -> dict:
    """Fidelity at the held-out θ against fresh generator events: no density needed.

    The generator is the module-2 itself (or a density theory's exact sampler), called with
    seeds of the held-out stream (``seed`` is the fit's seed + `HELD_OUT_SEED_OFFSET`: never a
    training seed). Per held-out θ: a classifier two-sample test of ``n_events`` surrogate
    events against as many generator events per channel (with ``c2st``), and the θ shift of
    `theta_shift_surrogate` on ``shift_events`` generator events per channel (0 skips it), in
    ``bins`` bins of equal probability per channel (from the C2ST's generator sample), the
    template (families with no density) of ``template_events`` events (None: shift_events).

    Returns the keys ``theta_shift_surrogate_crb`` (per parameter, the largest |shift|),
    ``theta_shift_surrogate_crb_all`` (per point, signed), ``surrogate_crb_std_all`` (σ per
    point), ``theta_shift_surrogate_method``, ``_events``, ``_noise`` (≈ its statistical noise
    in σ), ``_converged``, ``template_events``, ``reference_counts``, and with ``c2st``:
    ``c2st_auc_generator`` (+ ``_se``), ``w1_generator``, ``ks_generator`` (per channel, the
    largest), ``norm_error_generator`` (largest relative error of the norms against the
    generator's rates, themselves Monte Carlo estimates), ``held_out_theta``.
    """
    generator = as_generator(module2)
    theta = validation_theta(module2, n_held_out, seed)  # type: ignore[arg-type]
    counts = reference_counts(module2, counts)
    template = int(template_events or shift_events)
    one_d = module2.event_dim == 1
    p, c_n = module2.n_params, module2.n_channels
    shifts, crbs = np.full((n_held_out, p), np.nan), np.full((n_held_out, p), np.nan)
    auc, auc_se = np.full((n_held_out, c_n), np.nan), np.full((n_held_out, c_n), np.nan)
    w1, ks, norm_error = (
        np.full_like(auc, np.nan),
        np.full_like(auc, np.nan),
        np.full_like(auc, np.nan),
    )
    converged, method = [], None
    sur = (
        model.sample(theta, n_events, generator=torch.Generator().manual_seed(seed))
        if c2st
        else None
    )
    lo, hi = float(module2.x_low[0]), float(module2.x_high[0])
    fresh_events = []
    for b in range(n_held_out):
        t = theta[b].numpy()
        if not c2st and not (shift_events > 0 and one_d):
            continue
        fresh = generator.generate(t, max(n_events, 20 * bins), seed_for(seed, b))
        fresh_events.append(fresh.events)
        if c2st:
            norm_error[b] = np.abs(
                model.norms(theta[b : b + 1]).double()[0].numpy() / fresh.rates - 1
            )
            for c in range(c_n):
                a, r = sur[c][b].double().numpy(), fresh.events[c][:n_events]
                auc[b, c], auc_se[b, c] = c2st_auc(a, r, seed=seed + b)
                if one_d:
                    w1[b, c] = stats.wasserstein_distance(a[:, 0], r[:, 0])
                    ks[b, c] = stats.ks_2samp(a[:, 0], r[:, 0]).statistic
        if shift_events > 0 and one_d:
            data = generator.generate(t, shift_events, seed_for(seed, n_held_out + b))
            edges = quantile_edges([e[:, 0] for e in fresh.events], bins, lo, hi)
            shifts[b], crbs[b], ok, method = theta_shift_surrogate(
                model, module2, t, data, edges, counts, "auto", template, seed + b
            )
            converged.append(ok)
    out: dict = {
        "theta_shift_surrogate_crb": np.abs(shifts).max(0) if converged else None,
        "theta_shift_surrogate_crb_all": shifts if converged else None,
        "surrogate_crb_std_all": crbs if converged else None,
        "theta_shift_surrogate_method": method,
        "theta_shift_surrogate_events": shift_events if converged else 0,
        "theta_shift_surrogate_converged": all(converged) if converged else None,
        "template_events": template if method == "template" else None,
        "reference_counts": [float(v) for v in counts],
        "held_out_theta": theta.numpy(),
    }
    if converged:
        data_n = [shift_events] * c_n
        out["theta_shift_surrogate_noise"] = surrogate_shift_noise(
            counts, data_n, [template] * c_n if method == "template" else None
        )
    elif not one_d:
        out["theta_shift_surrogate_note"] = "the density-free θ shift bins 1-D events only"
    if c2st:
        worst = np.argmax(np.nan_to_num(auc, nan=-1.0), axis=0)
        out |= {
            "c2st_auc_generator": auc.max(0),
            "c2st_auc_generator_se": auc_se[worst, np.arange(c_n)],
            "c2st_events": n_events,
            "w1_generator": w1.max(0) if one_d else None,
            "ks_generator": ks.max(0) if one_d else None,
            "norm_error_generator": float(norm_error.max()),
            "generator": generator.name,
        }
        out["_samples"] = (sur, fresh_events)  # for the plot; dropped before writing
    return out


def plot_held_out_events(
    path: Path, module2: Module2, surrogate: Sequence[torch.Tensor], generated: list, rows: int
) -> None:
    """Surrogate against generator histograms per held-out θ and channel, with their ratio."""
    cols = module2.n_channels
    fig, axes = plt.subplots(
        2 * rows,
        cols,
        figsize=(4.5 * cols, 4.2 * rows),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1] * rows},
    )
    lo, hi = float(module2.x_low[0]), float(module2.x_high[0])
    bins = np.linspace(lo, hi, 61)
    centres = (bins[1:] + bins[:-1]) / 2
    for b in range(rows):
        for c in range(cols):
            top, bottom = axes[2 * b, c], axes[2 * b + 1, c]
            r, _ = np.histogram(generated[b][c][:, 0], bins=bins, density=True)
            s, _ = np.histogram(surrogate[c][b, :, 0].double().numpy(), bins=bins, density=True)
            top.stairs(r, bins, color="k", label="generator")
            top.stairs(s, bins, color="C1", label="surrogate")
            top.set_yscale("log")
            top.set_title(f"{module2.channels[c]}, held-out θ {b}", fontsize=9)
            with np.errstate(divide="ignore", invalid="ignore"):
                bottom.plot(centres, s / r, "C1.", ms=3)
            bottom.axhline(1, color="k", lw=0.8)
            bottom.set_ylim(0.8, 1.2)
            bottom.set_ylabel("surr./gen.", fontsize=8)
            if b == 0 and c == 0:
                top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
