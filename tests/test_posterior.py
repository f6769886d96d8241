"""The exact posterior (emcee on the extended likelihood × the prior box): against the MLE and
σ_CRB inside the box, cut by a face near it, its convergence diagnostics, DIS through the
detector, and its block in an inverse run's metrics.json."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

from inverse import report
from inverse.report import SurrogateYardstick, compare_with_posterior, format_table
from inverse.training import load_config, run_outer_gan
from surrogates.data import CASES, simulate_observed
from surrogates.detector import DETECTOR_DEFAULTS, make_detector
from surrogates.errors import InputError
from surrogates.likelihood import FoldedModel, crb_std, exact_posterior, fit_mle
from surrogates.likelihood.posterior import _sparse_folded_nll
from surrogates.sampling import InverseCDFSampler
from surrogates.theory import get_theory
from surrogates.theory.dis import DIS_TRUTH_2

# inside the box, every parameter well constrained by case B (the d-quark norm at the proxy's
# truth is not: its posterior is skewed, 0.5 σ_CRB above the MLE)
INTERIOR = [1.5, 0.2, 2.0, 1.8, -0.3, 2.5]


def test_interior_posterior_matches_mle_and_crb(proxy):
    theta = np.array(INTERIOR)
    data = simulate_observed(proxy, theta, CASES["B"], seed=4)
    mle = fit_mle(proxy, data)
    # σ_CRB of this data set's size at its MLE: at the truth, σ_CRB(N_d) is 16% off the posterior
    # σ on this set (as is the MLE's own σ): the width follows the information where the data are
    crb = crb_std(proxy, mle.theta, data.counts)
    post = exact_posterior(proxy, data, start=mle.theta, seed=1, steps=1000, min_ess=300)
    assert post.draws.shape[1] == 6 and 500 <= len(post.draws) <= 4000
    dist = (post.mean - mle.theta) / post.std
    assert np.all(np.abs(dist) < 0.3), dist.round(3)
    ratio = post.std / crb
    assert np.all(np.abs(ratio - 1) < 0.15), ratio.round(3)
    assert "binned" in post.likelihood  # 15 000 events > unbinned_max: the fine binned one


def test_posterior_near_a_face_is_cut_by_the_box(proxy):
    """b_d = 4.9, case C: σ_CRB(b_d) is about 1, so the box's face at 5 cuts the likelihood."""
    theta = proxy.truth.numpy().copy()
    theta[5] = 4.9
    data = simulate_observed(proxy, theta, CASES["C"], seed=2)
    crb = crb_std(proxy, theta, data.counts)
    post = exact_posterior(proxy, data, seed=0, steps=1000, min_ess=300)
    assert post.likelihood.startswith("extended, unbinned")
    assert post.std[5] < crb[5], (post.std[5], crb[5])
    low, high = proxy.prior_low.numpy(), proxy.prior_high.numpy()
    assert np.all((post.mean > low) & (post.mean < high))
    assert np.all((post.draws >= low) & (post.draws <= high))
    assert post.draws[:, 5].max() > 4.5  # it reaches towards the face, where the truth is


def test_diagnostics_are_real_and_too_few_steps_do_not_converge(proxy):
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    post = exact_posterior(proxy, data, seed=0, burn=20, steps=30, check_every=30)
    assert post.rhat.shape == post.ess.shape == (6,)
    assert np.all(np.isfinite(post.rhat)) and np.all(np.isfinite(post.ess))
    assert np.all(post.rhat > 1) and np.all(post.ess > 0)
    assert post.converged is False and "30 steps" in post.method
    d = post.to_dict()
    json.dumps(d)  # JSON-able
    assert d["converged"] is False and "draws" not in d and len(d["rhat"]) == 6
    with pytest.raises(InputError, match="walkers"):
        exact_posterior(proxy, data, walkers=4)
    with pytest.raises(InputError, match="a_u, a_d can be negative"):
        exact_posterior(proxy, data, log_params=[True] * 6)


def test_seeded_posterior_is_reproducible(proxy):
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    a = exact_posterior(proxy, data, seed=5, burn=20, steps=40, check_every=40)
    b = exact_posterior(proxy, data, seed=5, burn=20, steps=40, check_every=40)
    np.testing.assert_array_equal(a.draws, b.draws)


def test_dis_posterior_through_the_detector_smoke():
    dis = get_theory("dis")
    det = make_detector(DETECTOR_DEFAULTS, dis)
    data = simulate_observed(dis, DIS_TRUTH_2, CASES["B"], seed=5, detector=det)
    folded = FoldedModel(dis, det)
    # the posterior's sparse response gives the MLE's −log L (to < 1e-4 in ~10^5)
    dense = folded.nll_function(folded.histogram(data.events), data.exposure)
    theta = dis.sample_prior(8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(
            _sparse_folded_nll(folded, data)(theta).numpy(), dense(theta).numpy(), atol=1e-4
        )
    post = exact_posterior(
        dis, data, folded=folded, start=np.asarray(DIS_TRUTH_2), burn=40, steps=60
    )
    assert post.likelihood.startswith("binned Poisson, folded")
    low, high = dis.prior_low.numpy(), dis.prior_high.numpy()
    assert np.all((post.mean > low) & (post.mean < high)) and np.all(post.std > 0)
    crb = folded.crb_std(DIS_TRUTH_2, data.counts)
    assert np.all(np.abs(post.mean - np.asarray(DIS_TRUTH_2)) < 5 * crb)
    assert np.all(post.std < 3 * crb)


def test_inverse_run_reports_the_posterior(tmp_path, proxy, monkeypatch):
    # a short chain (the full one takes ~15 s on case C): the wiring is under test here
    monkeypatch.setattr(report, "exact_posterior", partial(exact_posterior, burn=50, steps=100))
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    cfg = replace(load_config(None), steps=20, replicas=3, events_per_step=16)
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    post = saved["posterior"]
    assert {"mean", "std", "rhat", "ess", "converged", "method", "seconds"} <= set(post)
    assert len(post["mean"]) == 6 and post["seconds"] > 0 and "100 steps" in post["method"]
    np.testing.assert_allclose(
        saved["sigma_over_post"], np.asarray(saved["params_std"]) / post["std"]
    )
    np.testing.assert_allclose(
        saved["dist_post"], (np.asarray(saved["params_mean"]) - post["mean"]) / post["std"]
    )
    assert "σ/σ_post" in format_table(m)
    off = replace(cfg, posterior=False)
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), off, tmp_path / "off", progress=False)
    assert "posterior" not in m and "σ/σ_post" not in format_table(m)
    with pytest.raises(InputError, match="posterior must be true or false"):
        replace(cfg, posterior="yes")


def test_a_module2_without_density_has_no_posterior_and_says_so():
    yardstick = SurrogateYardstick.__new__(SurrogateYardstick)  # its posterior needs no state
    metrics = {"params_mean": np.zeros(2), "params_std": np.ones(2)}
    assert compare_with_posterior(metrics, yardstick, None) is None
    assert "no density" in metrics["posterior"]["skipped"]
    assert metrics["sigma_over_post"] is None and metrics["dist_post"] is None


def test_mle_command_samples_the_posterior_on_request(tmp_path, capsys, monkeypatch, obs_file):
    from inverse import maxlik, mle
    from tests.conftest import run_cli

    monkeypatch.setattr(maxlik, "exact_posterior", partial(exact_posterior, burn=50, steps=100))
    argv = ["--events", str(obs_file), "--starts", "2", "--posterior", "true"]
    status, out, _ = run_cli(mle.main, [*argv, "--out", str(tmp_path / "m")], capsys)
    assert status == 0 and "σ/σ_post" in out
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    np.testing.assert_allclose(
        m["std_over_post"], np.asarray(m["params_std"]) / m["posterior"]["std"]
    )
    status, out, _ = run_cli(
        mle.main, ["--events", str(obs_file), "--out", str(tmp_path / "n")], capsys
    )
    assert status == 0 and "posterior" not in json.loads(
        (tmp_path / "n" / "metrics.json").read_text()
    )


def test_a_start_where_the_information_is_singular_still_samples(proxy, monkeypatch):
    # an MLE on several faces can leave the Fisher information singular: the walkers' starting
    # ball then falls back to a small fraction of the box instead of failing
    from surrogates.likelihood import posterior as module

    def singular(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise torch.linalg.LinAlgError("singular")

    monkeypatch.setattr(module, "crb_std", singular)
    data = simulate_observed(proxy, np.array(INTERIOR), CASES["C"], seed=2)
    post = exact_posterior(
        proxy, data, start=np.array(INTERIOR), seed=0, burn=20, steps=40, check_every=40
    )
    low, high = proxy.prior_low.numpy(), proxy.prior_high.numpy()
    assert np.all(np.isfinite(post.mean)) and np.all(post.std > 0)
    assert np.all((post.draws >= low) & (post.draws <= high))
