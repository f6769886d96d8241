"""The GAN's θ and σ for a parameter cut by the prior box (inverse.faces)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import truncnorm

from inverse.faces import FACE_NEAR, FACE_REACH, QUANTILES, cdf_rank, cut_by_box, reported_ranks

LOW, HIGH = np.array([0.0, -1.0]), np.array([10.0, 1.0])


def _cut_gaussian(mu: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and σ of N(μ, 1) cut to [low, high], vectorized (scipy's truncnorm loops per μ)."""
    a, b = low - mu, high - mu
    z = ndtr(b) - ndtr(a)
    pa, pb = np.exp(-a * a / 2) / np.sqrt(2 * np.pi), np.exp(-b * b / 2) / np.sqrt(2 * np.pi)
    shift = (pa - pb) / z
    return mu + shift, np.sqrt(1 + (a * pa - b * pb) / z - shift**2)


def test_replicas_piled_at_a_face_give_the_gaussian_from_that_face_cut_by_the_box():
    """All replicas at the upper face of parameter 0: its θ moves inside by √(2/π) σ and its σ is
    √(1 − 2/π) σ (a half-Gaussian); parameter 1, inside, keeps the replicas' numbers."""
    rng = np.random.default_rng(0)
    boot = np.column_stack([10 - rng.uniform(0, 0.1, 14), rng.normal(0, 0.1, 14)])
    mean, std = np.array([9.97, 0.01]), boot.std(0, ddof=1)
    cov = np.diag([1.0, 0.1]) ** 2
    new_mean, new_std, cut = cut_by_box(boot, mean, std, cov, LOW, HIGH)
    assert list(cut) == [0] and cut[0]["method"] == "box"
    # a half-Gaussian, to the noise of ≥ 4000 draws
    assert new_mean[0] == pytest.approx(10 - np.sqrt(2 / np.pi), abs=0.03)
    assert new_std[0] == pytest.approx(np.sqrt(1 - 2 / np.pi), abs=0.03)
    assert cut[0]["face"] == 10 and cut[0]["replicas_at_face"] == 1.0
    again = cut_by_box(boot, mean, std, cov, LOW, HIGH)  # seeded: the same numbers
    assert np.array_equal(again[0], new_mean) and np.array_equal(again[1], new_std)
    assert cut[0]["replicas_std"] == pytest.approx(std[0])
    # parameter 1, uncorrelated and inside: its replicas' numbers, or the Gaussian's where wider
    assert new_mean[1] == pytest.approx(mean[1], abs=0.01) and new_std[1] >= std[1]
    assert mean[0] == 9.97  # the inputs are not changed


def test_an_uncut_parameter_is_widened_never_narrowed():
    """Parameter 0 piled at its face; parameter 1, correlated with it, collapsed with it (replica σ
    0.01) is widened to the cut Gaussian's; parameter 2, whose replicas measured a width larger
    than its Fisher σ (a normalization near 0), keeps the replicas' numbers."""
    low, high = np.array([0.0, -1.0, 0.0]), np.array([10.0, 1.0, 3.0])
    rng = np.random.default_rng(2)
    boot = np.column_stack([10 - rng.uniform(0, 0.05, 14), rng.normal(0, 0.01, 14),
                            np.abs(rng.normal(0.5, 0.7, 14))])  # fmt: skip
    mean, std = boot.mean(0), boot.std(0, ddof=1)
    cov = np.array([[1.0, 0.08, 0.0], [0.08, 0.01, 0.0], [0.0, 0.0, 1e-4]])
    new_mean, new_std, cut = cut_by_box(boot, mean, std, cov, low, high)
    assert list(cut) == [0]
    assert new_std[1] > 3 * std[1]  # widened with its cut neighbour
    assert new_mean[2] == mean[2] and new_std[2] == std[2]  # never narrowed


def test_the_lower_face_and_a_box_narrower_than_sigma():
    """At the lower face θ moves up; where σ is wider than the box the cut Gaussian stays in it
    (nearly uniform: σ → width/√12)."""
    mu = np.array([-0.5, 0.3, 4.0])
    mean, var = truncnorm.stats(-mu, 1 - mu, mu, moments="mv")
    assert np.allclose(_cut_gaussian(mu, 0, 1), (mean, np.sqrt(var)))  # the test's own helper
    boot = np.column_stack([np.full(10, 0.01), np.full(10, -0.999)])
    mean, std = boot.mean(0), np.full(2, 1e-3)
    cov = np.diag([1.0, 50.0]) ** 2
    new_mean, new_std, cut = cut_by_box(boot, mean, std, cov, LOW, HIGH)
    assert sorted(cut) == [0, 1] and cut[0]["face"] == 0 and cut[1]["face"] == -1
    assert new_mean[0] == pytest.approx(np.sqrt(2 / np.pi), abs=0.03)
    assert -1 < new_mean[1] < 1 and new_std[1] == pytest.approx(2 / np.sqrt(12), rel=0.03)


def test_correlations_and_the_other_faces_shape_the_cut_gaussian():
    """Two parameters correlated at ρ = 0.9, both piled at their upper faces of [0, 1]: the box
    holds each to a narrower range than its marginal σ alone would, so each σ is below the
    one-face (half-Gaussian) value; a Gaussian the box keeps almost nothing of falls back to
    the one-face formula."""
    low, high = np.zeros(2), np.ones(2)
    boot = np.full((10, 2), 0.999)
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    new_mean, new_std, cut = cut_by_box(boot, boot.mean(0), np.full(2, 1e-4), cov, low, high)
    assert sorted(cut) == [0, 1] and {c["method"] for c in cut.values()} == {"box"}
    assert (new_std < 0.6 * 1.0).all() and (new_std < 1 / np.sqrt(12) + 0.03).all()
    assert ((new_mean > 0.4) & (new_mean < 1)).all()
    far = np.array([[1.0, -1.0], [-1.0, 1.0]]) * 1e-4  # all mass on a line through the corner
    m2, s2, cut2 = cut_by_box(boot, boot.mean(0), np.full(2, 1e-4), far, low, high)
    assert {c["method"] for c in cut2.values()} == {"face"}
    assert (m2 < 1).all() and (s2 > 0).all()


def test_fewer_than_half_of_the_replicas_at_a_face_change_nothing():
    boot = np.zeros((14, 2))
    boot[:6, 0] = 10 - 0.1 * FACE_NEAR  # 6 of 14 at the face
    boot[6:, 0] = np.linspace(5, 8, 8)
    mean, std = boot.mean(0), boot.std(0, ddof=1)
    new_mean, new_std, cut = cut_by_box(boot, mean, std, np.eye(2), LOW, HIGH)
    assert cut == {} and np.array_equal(new_mean, mean) and np.array_equal(new_std, std)
    # no usable σ (0 or NaN) or a single replica: nothing to judge by
    assert cut_by_box(boot, mean, std, np.zeros((2, 2)), LOW, HIGH)[2] == {}
    assert cut_by_box(boot, mean, std, np.full((2, 2), np.nan), LOW, HIGH)[2] == {}
    assert cut_by_box(boot[:1], mean, std, np.eye(2), LOW, HIGH)[2] == {}


def test_a_fit_within_reach_of_a_face_is_cut_though_its_replicas_are_not_piled():
    """Replicas bunched together (spread 0.05 σ) at 0.6 σ inside the lower face: none within
    FACE_NEAR σ of it, but the box cuts the likelihood there, so the parameter is cut ("reach")
    and its σ is no longer the replicas' collapsed spread; at 1.2 σ, or with reach 0, nothing
    changes."""
    rng = np.random.default_rng(5)
    cov = np.diag([1.0, 0.01])  # parameter 1 (σ 0.1) well inside [-1, 1]
    for at, expect in ((0.6 * FACE_REACH, True), (1.2 * FACE_REACH, False)):
        boot = np.column_stack([at + rng.normal(0, 0.05, 14), rng.normal(0, 0.05, 14) * 0.1])
        mean, std = boot.mean(0), boot.std(0, ddof=1)
        assert not (boot[:, 0] < FACE_NEAR).any()  # nothing piled
        new_mean, new_std, cut = cut_by_box(boot, mean, std, cov, LOW, HIGH)
        if not expect:
            assert cut == {} and np.array_equal(new_std, std)
            continue
        assert list(cut) == [0] and cut[0]["trigger"] == "reach" and cut[0]["face"] == 0.0
        # the Gaussian of the Fisher σ centred on the GAN's θ, cut at 0
        ref_mean, ref_std = _cut_gaussian(np.array([mean[0]]), 0.0, 10.0)
        assert new_mean[0] == pytest.approx(ref_mean[0], abs=0.03)
        assert new_std[0] == pytest.approx(ref_std[0], abs=0.03) and new_std[0] > 10 * std[0]
        off = cut_by_box(boot, mean, std, cov, LOW, HIGH, reach=0.0)
        assert off[2] == {} and np.array_equal(off[1], std)


def test_without_the_likelihood_reach_never_narrows_and_says_where_it_centred():
    """Upper face, no score, no likelihood: a parameter at 0.8 σ below the face whose replicas
    spread 0.3 σ is cut ("theta": no parameter piled, the Gaussian at the GAN's θ) and widened to
    the cut Gaussian's σ; with a spread of 0.94 σ (wider than the cut Gaussian's ≈ 0.75) it keeps
    the replicas' numbers and is not cut; the truth's rank is then the replicas' own."""
    rng = np.random.default_rng(6)
    cov = np.diag([1.0, 0.01])
    for spread, cut_expected in ((0.3, True), (0.94, False)):
        boot = np.column_stack([9.2 + spread * rng.standard_normal(14), 0.1 * rng.normal(size=14)])
        boot[:, 0] = np.minimum(boot[:, 0], 10 - 1.01 * FACE_NEAR)  # nothing piled
        mean, std = np.array([9.2, 0.0]), np.array([spread, 0.1])  # the replicas' spread
        new_mean, new_std, cut = cut_by_box(boot, mean, std, cov, LOW, HIGH)
        ref_mean, ref_std = _cut_gaussian(np.array([9.2]), 0.0, 10.0)
        if cut_expected:
            assert list(cut) == [0] and cut[0]["face"] == 10.0 and cut[0]["centre"] == "theta"
            assert cut[0]["method"] == "box" and cut[0]["replicas_at_face"] == 0.0
            assert new_std[0] == pytest.approx(ref_std[0], abs=0.03) and new_std[0] > std[0]
            assert new_mean[0] == pytest.approx(ref_mean[0], abs=0.03)
        else:
            assert ref_std[0] < std[0]  # the cut Gaussian would narrow it
            assert cut == {} and np.array_equal(new_std, std) and np.array_equal(new_mean, mean)
            truth = np.array([9.5, 0.0])
            ranks = reported_ranks(boot, truth, mean, std, new_mean, new_std, cut, LOW, HIGH)
            assert ranks[1] == ranks[0]


def test_a_sigma_wider_than_the_box_reaches_the_nearer_face():
    """Fisher σ 3 on a box of width 2: both faces within reach; the face recorded is the one
    the GAN's θ is nearer, and its share of replicas is that face's."""
    low, high = np.array([-1.0]), np.array([1.0])
    boot = np.linspace(-0.6, 0.9, 14)[:, None]
    mean, std = np.array([0.5]), np.array([0.01])  # collapsed replicas: the rule widens
    _, new_std, cut = cut_by_box(boot, mean, std, np.array([[9.0]]), low, high)
    assert cut[0]["trigger"] == "reach" and cut[0]["face"] == 1.0
    assert cut[0]["replicas_at_face"] == pytest.approx(np.mean(1.0 - boot[:, 0] < FACE_NEAR * 3))
    assert new_std[0] == pytest.approx(2 / np.sqrt(12), rel=0.1)  # nearly uniform in the box


def test_near_a_face_the_rule_is_calibrated_where_the_bootstrap_is_not():
    """A Gaussian location model, σ = 1, box [0, 10], truths from the flat prior: the data's
    maximum is clip(x), its bootstrap replicas clip(x + noise), the exact posterior N(x, 1) cut by
    the box. Where the posterior's mean is within 1.5 σ of a face the replicas' σ collapses
    (1σ coverage 0.44); with the rule the coverage is the posterior's within noise and θ is
    within 0.5 σ_post of the posterior mean in most data sets (the replicas: almost never)."""
    rng = np.random.default_rng(1)
    low, high, rows = np.array([0.0]), np.array([10.0]), []
    for _ in range(6000):
        t0 = rng.uniform(0, 10)
        x = rng.normal(t0, 1.0)
        mean = np.clip([x], 0, 10)
        boot = np.clip(x + rng.normal(0, 1.0, (14, 1)), 0, 10)
        std = boot.std(0, ddof=1)
        m2, s2, _ = cut_by_box(boot, mean, std, np.ones((1, 1)), low, high)
        rows.append((t0, x, mean[0], std[0], m2[0], s2[0]))
    t0, x, m, s, m2, s2 = np.array(rows).T
    pm, ps = _cut_gaussian(x, 0.0, 10.0)
    near = (pm < 1.5 * ps) | (10 - pm < 1.5 * ps)
    assert near.sum() > 600
    cover = {
        k: np.mean(np.abs(a - t0)[near] < b[near])
        for k, a, b in (("raw", m, s), ("rule", m2, s2), ("post", pm, ps))
    }
    err = np.sqrt(0.25 / near.sum())  # a binomial fraction's σ, at most
    assert cover["raw"] < 0.55, cover
    assert abs(cover["rule"] - cover["post"]) < 4 * err + 0.03, cover
    close = {
        k: np.mean(np.abs(a - pm)[near] < 0.5 * ps[near]) for k, a in (("raw", m), ("rule", m2))
    }
    assert close["raw"] < 0.1 and close["rule"] > 0.45, close
    ratio = np.median((s2 / ps)[near])
    assert 0.8 < ratio < 1.25, ratio
    # away from the faces the rule changes nothing
    far = (pm > 3) & (pm < 7)
    assert np.array_equal(m2[far], m[far]) and np.array_equal(s2[far], s[far])


def test_the_fit_report_cuts_a_proxy_parameter_whose_replicas_sit_on_its_face():
    """`inverse.report.face_cut` with the proxy's likelihood: b_u's replicas at its upper face
    (5) get the posterior the Fisher Gaussian from 5 starts and the likelihood reweights (case-C
    data: the likelihood of case B's costs ten times as much); b_u is the one piled, N_u (σ 1.2
    at 1.0 in case C) is cut by reach."""
    from inverse.report import Yardstick, face_cut
    from surrogates.data import CASES, simulate_observed
    from surrogates.theory import ProxyTheory

    proxy = ProxyTheory()
    theta = np.array([1.0, 0.3, 4.95, 1.5, 0.0, 2.5])
    data = simulate_observed(proxy, theta, CASES["C"], seed=4)
    yardstick = Yardstick(proxy, data)
    sigma = np.sqrt(np.diag(yardstick.covariance(theta)))  # ≈ at the replicas' mean
    rng = np.random.default_rng(0)
    boot = theta + 0.5 * sigma * rng.normal(size=(14, 6))
    boot[:, 2] = 5 - rng.uniform(0, 0.2 * sigma[2], 14)
    mean, std = boot.mean(0), boot.std(0, ddof=1)
    new_mean, new_std, cut = face_cut(proxy, yardstick, boot, mean, std)
    # b_u piled at 5; the others cut are within reach of a face (N_u: σ 1.2 at 1.0 in case C)
    assert {j for j, c in cut.items() if c["trigger"] == "piled"} == {2}
    for j, c in cut.items():
        assert c["trigger"] == "piled" or abs(mean[j] - c["face"]) < FACE_REACH * c["fisher_sigma"]
    assert cut[2]["face"] == 5.0 and cut[2]["method"] == "reweighted"
    assert cut[2]["fisher_sigma"] == pytest.approx(sigma[2], rel=0.15)
    assert new_std[2] > 3 * std[2] and 5 - new_mean[2] > 0.3 * sigma[2]
    assert (new_mean >= proxy.prior_low.numpy()).all() and (
        new_mean <= proxy.prior_high.numpy()
    ).all()
    assert (new_std <= sigma * 1.01).all()  # cut by the box: never wider than the Gaussian
    # the printed table says which parameter was cut and what the replicas had
    from inverse.report import format_table

    found = dict(cut[2])
    metrics = {"param_names": list(proxy.param_names), "params_true": None, "pull": None,
               "params_mean": mean, "params_std": std, "crb_std": sigma,
               "at_face": {"b_u": found}}  # fmt: skip
    text = format_table(metrics)
    assert "b_u: 100% of the bootstrap replicas at the box's face 5" in text, text
    assert "the likelihood's posterior in the box, by importance sampling" in text, text
    found = dict(cut[0]) if 0 in cut else dict(cut[2], trigger="reach")
    metrics["at_face"] = {"N_u": found}
    assert f"N_u: θ within {FACE_REACH:g} Fisher σ" in format_table(metrics)


def test_with_the_score_the_rule_is_the_exact_posterior_of_a_gaussian_likelihood():
    """The Gaussian location model of the test above with the score ∇log L = x − θ at the fit:
    the Newton step lands on the likelihood's peak x even when it lies beyond the face, so the
    rule's θ and σ are the exact posterior's (N(x, 1) cut by the box) in every data set with a
    cut, to the noise of its draws; centred on the face instead, it is biased inward (the widest
    such posterior)."""
    rng = np.random.default_rng(3)
    low, high, rows = np.array([0.0]), np.array([10.0]), []
    for _ in range(400):
        x = rng.normal(rng.choice([0.0, 10.0]), 1.0)  # data near a face
        mean = np.clip([x], 0, 10)
        boot = np.clip(x + rng.normal(0, 1.0, (14, 1)), 0, 10)
        std = boot.std(0, ddof=1)
        m2, s2, cut = cut_by_box(boot, mean, std, np.ones((1, 1)), low, high,
                                 score=lambda t, x=x: np.array([x]) - t)  # fmt: skip
        m0, s0, _ = cut_by_box(boot, mean, std, np.ones((1, 1)), low, high)
        if cut:
            assert cut[0]["centre"] == "score" and cut[0]["peak"] == pytest.approx(x)
            assert cut[0]["step"] == pytest.approx(abs(x - mean[0]))
            rows.append((x, m2[0], s2[0], m0[0], s0[0]))
    x, m2, s2, m0, s0 = np.array(rows).T
    assert len(x) > 100
    pm, ps = _cut_gaussian(x, 0.0, 10.0)
    assert np.abs(m2 - pm).max() < 0.05 and np.abs(s2 - ps).max() < 0.05
    beyond = (x < 0) | (x > 10)  # the peak beyond the face: the face-centred rule is too wide
    assert beyond.sum() > 30 and np.median((s0 / ps)[beyond]) > 1.2


def test_a_step_too_long_or_a_missing_score_centres_the_gaussian_on_the_face():
    boot = np.column_stack([10 - np.linspace(0, 0.05, 14), np.linspace(-0.1, 0.1, 14)])
    mean, std, cov = boot.mean(0), boot.std(0, ddof=1), np.diag([1.0, 0.01])
    plain = cut_by_box(boot, mean, std, cov, LOW, HIGH)
    for score in (lambda t: np.array([100.0, 0.0]), lambda t: None,
                  lambda t: np.array([np.nan, 0.0])):  # fmt: skip
        m, s, cut = cut_by_box(boot, mean, std, cov, LOW, HIGH, score=score)
        assert cut[0]["centre"] == "face" and cut[0]["peak"] is None
        assert np.array_equal(m, plain[0]) and np.array_equal(s, plain[1])
    calls = []
    cut_by_box(np.zeros((5, 2)) + [5.0, 0.0], np.array([5.0, 0.0]), np.ones(2), cov, LOW, HIGH,
               score=lambda t: calls.append(t))  # fmt: skip
    assert calls == []  # no parameter cut: the likelihood is not asked


@pytest.mark.parametrize("name", ["proxy", "proxy-numpy"])
def test_the_yardstick_score_is_the_gradient_of_the_log_likelihood(name):
    """By autograd (proxy) and by central differences (its black-box twin): both equal a
    finite difference of −log L of the data, and each other."""
    import torch

    from inverse.report import Yardstick
    from surrogates.data import CASES, simulate_observed
    from surrogates.likelihood.extended import negative_log_likelihood
    from surrogates.theory import ProxyTheory, get_theory

    theory = get_theory(name)
    theta = np.array([1.0, 0.3, 4.2, 1.5, 0.0, 2.5])
    data = simulate_observed(ProxyTheory(), theta, CASES["B"], seed=4)
    score = Yardstick(theory, data).score(theta)
    h = 1e-5
    for j in (0, 2, 5):
        e = np.zeros(6)
        e[j] = h
        with torch.no_grad():
            up, down = (
                float(negative_log_likelihood(theory, torch.tensor((theta + s * e)[None]), data)[0])
                for s in (1, -1)
            )
        assert score[j] == pytest.approx(-(up - down) / (2 * h), rel=1e-4, abs=1e-3)
    if name == "proxy-numpy":
        exact = Yardstick(ProxyTheory(), data).score(theta)
        np.testing.assert_allclose(score, exact, rtol=1e-4, atol=1e-3)
        # on the faces (N_u = 0, b_d = 5) the differences stay inside the box (one-sided there):
        # a black box that gives NaN outside its box still has a score
        from surrogates.theory import NumpyTheory
        from surrogates.theory.proxy import proxy_numpy

        low, high = theory.prior_low.numpy(), theory.prior_high.numpy()

        def strict(x, t):  # noqa: ANN001, ANN202
            inside = np.all((t >= low) & (t <= high))
            return proxy_numpy(x, t) if inside else np.full((2, len(x)), np.nan)

        boxed = NumpyTheory(strict, "proxy-strict", theory.param_names, theory.channels,
                            low, high, [0.1], [1.0])  # fmt: skip
        face = theta.copy()
        face[0], face[5] = 0.0, 5.0
        one_sided = Yardstick(boxed, data).score(face)
        assert np.isfinite(one_sided).all()
        np.testing.assert_allclose(one_sided, Yardstick(ProxyTheory(), data).score(face),
                                   rtol=1e-2, atol=0.5)  # fmt: skip


def test_the_surrogate_yardstick_score_is_the_gradient_of_its_binned_log_likelihood():
    """Without a density for the module-2 the score is the surrogate likelihood's (binned
    Poisson): it equals a finite difference of that −log L (the exact sampler as the source)."""
    from inverse.report import SurrogateYardstick
    from surrogates.data import CASES, simulate_observed
    from surrogates.sampling import InverseCDFSampler
    from surrogates.theory import ProxyTheory

    proxy = ProxyTheory()
    theta = np.array([1.0, 0.3, 4.2, 1.5, 0.0, 2.5])
    data = simulate_observed(proxy, theta, CASES["B"], seed=4)
    ys = SurrogateYardstick(InverseCDFSampler(proxy), proxy, data)
    score = ys.score(theta)
    for j in (0, 2, 5):
        h = 1e-4 * float(proxy.prior_high[j] - proxy.prior_low[j])
        e = np.zeros(6)
        e[j] = h
        fd = (ys.likelihood.nll(theta + e, ys.counts, ys.exposure)
              - ys.likelihood.nll(theta - e, ys.counts, ys.exposure)) / (2 * h)  # fmt: skip
        assert score[j] == pytest.approx(-fd, rel=1e-2, abs=0.05)


def test_the_face_benchmark_ranks_the_truth_in_the_distribution_the_rule_reports(monkeypatch):
    """`inverse.faces.reported_ranks` (the SBC ranks of inverse.study and benchmarks/faces.py) on
    the Gaussian location model with truths from the flat prior and data near the lower face: with the
    score the rule is the exact posterior, so the truth's rank in its cut Gaussian (regenerated from
    the recorded centre) is uniform, the replicas' ranks (piled at the face) are not, and ranks in
    an uncut N(θ, σ) of the same numbers are not either; ⌊(L + 1) F⌋ of a calibrated CDF is uniform
    on 0 … L."""
    import importlib.util
    from pathlib import Path

    from scipy.special import ndtr

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location("faces_bench", bench / "faces.py")
    faces = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(faces)
    low, high = np.array([0.0]), np.array([10.0])
    rng = np.random.default_rng(6)
    rows = []
    while len(rows) < 600:
        t0 = rng.uniform(0, 10)
        x = rng.normal(t0, 1.0)
        if abs(x) > 0.5:  # near the lower face (both faces together would mirror each other)
            continue
        mean = np.clip([x], 0, 10)
        boot = np.clip(x + rng.normal(0, 1.0, (14, 1)), 0, 10)
        std = boot.std(0, ddof=1)
        m2, s2, cut = cut_by_box(boot, mean, std, np.ones((1, 1)), low, high,
                                 score=lambda t, x=x: np.array([x]) - t)  # fmt: skip
        ranks = reported_ranks(boot, np.array([t0]), mean, std, m2, s2, cut, low, high)
        uncut = cdf_rank(float(ndtr((t0 - m2[0]) / s2[0])), 14)
        rows.append({"param": "p", "rank_of": 14, "post_rank_of": None, "rank_post": None,
                     "rank_replicas": ranks[0][0], "rank_rule": ranks[1][0], "uncut": uncut})  # fmt: skip
    (got,) = faces.sbc(rows)
    assert got["rule"] > 0.01 and got["replicas"] < 1e-6 and got["post"] is None, got
    for r in rows:
        r["rank_rule"] = r["uncut"]
    assert faces.sbc(rows)[0]["rule"] < 1e-6
    z = rng.normal(size=3000)
    calibrated = [cdf_rank(float(ndtr(v)), 14) for v in z]
    assert min(calibrated) == 0 and max(calibrated) == 14
    counts = np.bincount(calibrated, minlength=15)
    assert counts.min() > 0.7 * 200 and counts.max() < 1.3 * 200


def test_a_failing_score_or_a_peak_the_box_barely_keeps_falls_back_to_the_face(capsys):
    """`inverse.report.face_cut` with a yardstick whose score raises: one printed line and the
    face-centred Gaussian; `cut_by_box` with a peak 4.9 σ beyond the face (a step within
    STEP_MAX, but the box keeps almost none of that Gaussian): the face centre too."""
    from types import SimpleNamespace

    from inverse.report import face_cut

    def broken(theta):  # noqa: ANN001, ANN202
        raise RuntimeError("no gradients here")

    theory = SimpleNamespace(prior_low=LOW, prior_high=HIGH)
    yardstick = SimpleNamespace(covariance=lambda t: np.diag([1.0, 0.01]), score=broken)
    boot = np.column_stack([10 - np.linspace(0, 0.05, 14), np.linspace(-0.1, 0.1, 14)])
    mean, std = boot.mean(0), boot.std(0, ddof=1)
    m, s, cut = face_cut(theory, yardstick, boot, mean, std)
    assert "no score of the likelihood at the fit (no gradients here)" in capsys.readouterr().out
    assert cut[0]["centre"] == "face"
    plain = cut_by_box(boot, mean, std, np.diag([1.0, 0.01]), LOW, HIGH)
    assert np.array_equal(m, plain[0]) and np.array_equal(s, plain[1])
    far = lambda t: np.array([10 + 4.9 - t[0], 0.0])  # noqa: E731 - the peak at 14.9
    m2, s2, cut2 = cut_by_box(boot, mean, std, np.diag([1.0, 0.01]), LOW, HIGH, score=far)
    assert cut2[0]["step"] == pytest.approx(4.9, abs=0.06) and cut2[0]["centre"] == "face"
    assert np.array_equal(m2, plain[0])


def _poisson_rate_fit(n: int, lam: float, seed: int) -> tuple:
    """A normalization N with n observed events of λ·N expected, at the lower face of [0, 3]:
    the replicas piled at 0 (bootstrap maxima of n* ~ Poisson(n) events), its Fisher σ at the fit
    √(N/λ) (vanishing at the face) and the log-likelihood n log N − λN."""
    rng = np.random.default_rng(seed)
    boot = np.maximum(rng.poisson(n, (14, 1)) / lam, 1e-3)
    boot[: max(8, int((boot < 0.05).sum())), 0] = 1e-3  # most at the face
    mean = np.array([max(n / lam, 1e-3)])
    std = boot.std(0, ddof=1)
    cov = np.array([[mean[0] / lam]])

    def loglik(theta: np.ndarray) -> np.ndarray:
        t = np.clip(theta[:, 0], 1e-300, None)
        return n * np.log(t) - lam * t

    def score(theta: np.ndarray) -> np.ndarray:
        return np.array([n / theta[0] - lam])

    return boot, mean, std, cov, loglik, score


@pytest.mark.parametrize("n", [0, 1, 3])
def test_a_normalization_near_zero_gets_its_exact_posterior_by_reweighting(n):
    """The case the quadratic expansion gets wrong: a rate with few events, whose Fisher σ
    vanishes at the face. With the likelihood, the rule's θ and σ are the exact posterior's
    (Gamma(n + 1, λ) cut at 3: mean (n + 1)/λ, σ √(n + 1)/λ) to a few percent; the cut Gaussian
    alone is too narrow (by half or more with 0 or 1 event)."""
    lam, low, high = 10.0, np.array([0.0]), np.array([3.0])
    boot, mean, std, cov, loglik, score = _poisson_rate_fit(n, lam, seed=n)
    m, s, cut = cut_by_box(boot, mean, std, cov, low, high, score=score, loglik=loglik)
    assert cut[0]["method"] == "reweighted" and cut[0]["reweighted"]["ess"] >= 300
    assert m[0] == pytest.approx((n + 1) / lam, rel=0.05)
    assert s[0] == pytest.approx(np.sqrt(n + 1) / lam, rel=0.07)
    q = np.asarray(cut[0]["quantiles"][0])
    from scipy.stats import gamma

    exact = gamma.ppf([0.1, 0.5, 0.9], n + 1, scale=1 / lam)
    assert np.interp([0.1, 0.5, 0.9], QUANTILES, q) == pytest.approx(exact, rel=0.08)
    _, s_gauss, cut_gauss = cut_by_box(boot, mean, std, cov, low, high, score=score)
    assert (
        cut_gauss[0]["method"] in ("box", "face") and s_gauss[0] < (0.6 if n < 3 else 0.85) * s[0]
    )


def test_the_reweighted_rule_is_calibrated_where_the_gaussian_rule_is_not():
    """Truths from the flat prior on [0, 3], n ~ Poisson(λ N) events, every data set with the
    replicas at the face: the truth's rank in what the rule reports (`reported_ranks`, from the
    recorded quantiles) is uniform with the likelihood and far from it with the cut Gaussian."""
    from scipy.stats import chisquare

    lam, low, high = 10.0, np.array([0.0]), np.array([3.0])
    rng = np.random.default_rng(11)
    ranks = {"reweighted": [], "gaussian": []}
    while len(ranks["reweighted"]) < 300:
        truth = rng.uniform(0, 3)
        n = int(rng.poisson(lam * truth))
        if n > 2:  # only the data sets whose replicas pile up at the face
            continue
        boot, mean, std, cov, loglik, score = _poisson_rate_fit(n, lam, seed=int(rng.integers(1e9)))
        for key, ll in (("reweighted", loglik), ("gaussian", None)):
            m, s, cut = cut_by_box(boot, mean, std, cov, low, high, score=score, loglik=ll)
            assert cut
            ranks[key].append(reported_ranks(boot, np.array([truth]), mean, std, m, s, cut,
                                             low, high)[1][0])  # fmt: skip
    p = {k: chisquare(np.bincount(np.array(v) // 3, minlength=5)).pvalue for k, v in ranks.items()}
    assert p["reweighted"] > 0.01 and p["gaussian"] < 1e-4, p


def test_a_likelihood_the_draws_cannot_use_falls_back_to_the_cut_gaussian():
    """A log-likelihood that is −∞ (or NaN) everywhere leaves the cut Gaussian's numbers, and
    the reweighting is never asked when no parameter is cut."""
    boot = np.column_stack([10 - np.linspace(0, 0.05, 14), np.linspace(-0.1, 0.1, 14)])
    mean, std, cov = boot.mean(0), boot.std(0, ddof=1), np.diag([1.0, 0.01])
    plain = cut_by_box(boot, mean, std, cov, LOW, HIGH)
    for bad in (lambda t: np.full(len(t), -np.inf), lambda t: np.full(len(t), np.nan)):
        m, s, cut = cut_by_box(boot, mean, std, cov, LOW, HIGH, loglik=bad)
        assert cut[0]["method"] == "box" and "quantiles" not in cut[0]
        assert np.array_equal(m, plain[0]) and np.array_equal(s, plain[1])
    calls = []
    cut_by_box(np.zeros((5, 2)) + [5.0, 0.0], np.array([5.0, 0.0]), np.ones(2), cov, LOW, HIGH,
               loglik=lambda t: calls.append(t))  # fmt: skip
    assert calls == []


def test_the_yardstick_log_likelihood_binned_for_large_data_matches_the_events(monkeypatch):
    """`Yardstick.loglik` (the reweighting's likelihood): the events' extended log-likelihood up
    to a constant (differences between θ equal those of the exact negative log-likelihood), and
    above BINNED_ABOVE events per channel that of their fine histograms, whose differences between
    θ drawn from the data's Fisher Gaussian agree with the events' to a fifth of a unit."""
    import torch

    import inverse.report as report
    from surrogates.data import CASES, simulate_observed
    from surrogates.likelihood import negative_log_likelihood
    from surrogates.theory import ProxyTheory

    proxy = ProxyTheory()
    theta = np.array([1.0, 0.3, 3.0, 1.5, 0.0, 2.5])
    data = simulate_observed(proxy, theta, CASES["C"], seed=2)
    yardstick = report.Yardstick(proxy, data)
    cov = yardstick.covariance(theta)
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal(theta, cov, 64)
    x = x[((x >= proxy.prior_low.numpy()) & (x <= proxy.prior_high.numpy())).all(1)]
    events = yardstick.loglik(x, batch=16)
    exact = -negative_log_likelihood(proxy, torch.as_tensor(x), data).numpy()
    assert np.allclose(events - events[0], exact - exact[0], atol=1e-6)
    monkeypatch.setattr(report, "BINNED_ABOVE", 100)
    binned = yardstick.loglik(x)
    spread = np.std(events)
    diff = (binned - binned.mean()) - (events - events.mean())
    assert spread > 10 and np.std(diff) < 0.2, (spread, np.std(diff))


def test_a_box_that_starts_above_zero_keeps_the_reweighted_draws_inside_it(capsys):
    """log θ proposals for a parameter whose box starts above 0 (the DIS card's): the draws stay
    in [0.5, 3] and the numbers are the exact posterior's, a Gaussian likelihood N(0.6, 0.3) cut
    by the box; a likelihood that raises leaves the cut Gaussian's numbers and says so."""
    low, high = np.array([0.5]), np.array([3.0])
    boot = np.full((14, 1), 0.5) + np.linspace(0, 0.01, 14)[:, None]
    mean, std, cov = boot.mean(0), boot.std(0, ddof=1), np.array([[0.09]])

    def loglik(theta: np.ndarray) -> np.ndarray:
        return -0.5 * ((theta[:, 0] - 0.6) / 0.3) ** 2

    m, s, cut = cut_by_box(boot, mean, std, cov, low, high, loglik=loglik)
    assert cut[0]["method"] == "reweighted"
    q = np.asarray(cut[0]["quantiles"][0])
    assert q.min() >= 0.5 and q.max() <= 3.0
    a, b = (0.5 - 0.6) / 0.3, (3.0 - 0.6) / 0.3
    exact_m, exact_v = truncnorm.stats(a, b, 0.6, 0.3, "mv")
    assert m[0] == pytest.approx(exact_m, abs=0.02) and s[0] == pytest.approx(
        np.sqrt(exact_v), rel=0.07
    )

    def broken(theta: np.ndarray) -> np.ndarray:
        raise np.linalg.LinAlgError("singular")

    m2, s2, cut2 = cut_by_box(boot, mean, std, cov, low, high, loglik=broken)
    assert "no reweighting by the likelihood (singular)" in capsys.readouterr().out
    plain = cut_by_box(boot, mean, std, cov, low, high)
    assert cut2[0]["method"] == "box" and np.array_equal(m2, plain[0])
