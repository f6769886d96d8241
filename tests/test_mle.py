"""The statistical yardstick: Cramér–Rao bound, MLE closure and calibration, the CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from inverse import closure, mle
from surrogates.data import CASES, simulate_observed
from surrogates.likelihood import crb_std, fit_mle
from surrogates.theory import get_theory
from tests.conftest import BOX_POINTS, run_cli

# Points inside the prior box where case A constrains every parameter well away from the box edges.
INTERIOR_POINTS = [[1.5, 0.2, 2.0, 1.8, -0.3, 2.5], [2.5, -0.7, 3.5, 0.8, 0.1, 3.0]]
DESIGN_CRB_PERCENT = {"N_u": 3.8, "a_u": 3.5, "b_u": 1.3, "N_d": 11.5, "a_d": 9.9, "b_d": 3.5}


def test_crb_case_a_matches_design(proxy):
    rel = 100 * crb_std(proxy, proxy.truth, CASES["A"]) / np.abs(proxy.truth.numpy())
    for name, got in zip(proxy.param_names, rel):
        assert got == pytest.approx(DESIGN_CRB_PERCENT[name], rel=0.05), (
            f"σ_CRB({name}) = {got:.2f}%"
        )


def test_crb_scales_with_counts_and_needs_no_gradients(proxy):
    a = crb_std(proxy, proxy.truth, CASES["A"])
    np.testing.assert_allclose(crb_std(proxy, proxy.truth, CASES["B"]), a * np.sqrt(10), rtol=1e-9)
    np.testing.assert_allclose(
        crb_std(get_theory("proxy-numpy"), proxy.truth, CASES["A"]), a, rtol=1e-4
    )


@pytest.mark.parametrize("theta", INTERIOR_POINTS)
def test_mle_case_a_closes_at_unseen_points(proxy, theta):
    theta = np.array(theta)
    data = simulate_observed(proxy, theta, CASES["A"], seed=11)
    result = fit_mle(proxy, data)
    crb = crb_std(proxy, theta, CASES["A"])
    pull = (result.theta - theta) / crb
    assert np.all(np.abs(pull) < 4), f"pulls {pull.round(2)}"
    assert np.all((result.std / crb > 0.8) & (result.std / crb < 1.25)), (result.std / crb).round(2)


def test_mle_without_gradients_agrees(proxy):
    """The NumPy black box (finite-difference gradients) finds the same optimum as the torch proxy."""
    blackbox = get_theory("proxy-numpy")
    data = simulate_observed(blackbox, proxy.truth.numpy(), CASES["C"], seed=5)
    got = fit_mle(blackbox, data, n_starts=2)
    data.theory = "proxy"
    ref = fit_mle(proxy, data, n_starts=2)
    np.testing.assert_allclose(got.theta, ref.theta, atol=1e-3 * ref.std.max())
    np.testing.assert_allclose(got.std, ref.std, rtol=1e-3)


def pull_study(theory, case: str, n_sets: int, seed: int) -> np.ndarray:
    truth = theory.truth.numpy()
    crb = crb_std(theory, truth, CASES[case])
    return np.array(
        [
            (
                fit_mle(
                    theory, simulate_observed(theory, truth, CASES[case], seed=seed + k), n_starts=2
                ).theta
                - truth
            )
            / crb
            for k in range(n_sets)
        ]
    )


def test_mle_pulls_over_50_case_b_sets(proxy):
    """Mean ≈ 0 and std ≈ 1 for every parameter, within the statistics of 50 sets.

    At case B the MLE of N_d (σ_CRB = 36% of its value) is still non-linear: over 300 sets its
    pull had mean +0.37 ± 0.07, median +0.02, std 1.16 (a_d, b_d: +0.17, +0.15), shrinking as 1/N
    (case A: +0.15 ± 0.10). The mean is allowed that finite-sample bias on top of 3 standard errors;
    the median has no such allowance. `test_mle_pulls_case_a` (slow) checks case A tightly.
    """
    pulls = pull_study(proxy, "B", 50, seed=1000)
    mean, median, std = pulls.mean(0), np.median(pulls, 0), pulls.std(0, ddof=1)
    se = std / np.sqrt(len(pulls))
    assert np.all(np.abs(mean) < 3 * se + 0.4), f"pull means {mean.round(2)}"
    assert np.all(np.abs(median) < 3 * 1.2533 * se), f"pull medians {median.round(2)}"
    assert np.all(np.abs(std - 1) < 0.35), f"pull std {std.round(2)}"


@pytest.mark.slow
def test_mle_pulls_case_a(proxy):
    """100 case-A sets: pulls are N(0, 1) within 3 standard errors, no allowance."""
    pulls = pull_study(proxy, "A", 100, seed=2000)
    mean, std = pulls.mean(0), pulls.std(0, ddof=1)
    assert np.all(np.abs(mean) < 3 * std / np.sqrt(len(pulls))), f"pull means {mean.round(2)}"
    assert np.all(np.abs(std - 1) < 3 / np.sqrt(2 * (len(pulls) - 1))), f"pull std {std.round(2)}"


def test_mle_cli_output_contract(tmp_path, obs_file, capsys):
    out = tmp_path / "fit"
    status, stdout, _ = run_cli(
        mle.main, ["--events", str(obs_file), "--theory", "proxy", "--out", str(out)], capsys
    )
    assert status == 0 and "pull" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("params_mean", "params_std", "params_true", "crb_std", "pull", "seconds"):
        assert key in metrics, key
    assert len(metrics["params_mean"]) == 6 and metrics["params_true"][0] == 2.1875
    expected = (np.array(metrics["params_mean"]) - metrics["params_true"]) / np.array(
        metrics["crb_std"]
    )
    np.testing.assert_allclose(metrics["pull"], expected)
    assert (out / "fit.png").stat().st_size > 10_000
    assert yaml.safe_load((out / "config.yaml").read_text())["theory"] == "proxy"
    assert "torch" in json.loads((out / "environment.json").read_text())["packages"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--events", "nope.npz"], "not found"),
        (["--events", "{obs}", "--theory", "proxy-numpy"], "made with theory 'proxy'"),
        (["--events", "{obs}", "--theory", "what"], "unknown theory"),
    ],
)
def test_mle_cli_bad_input(tmp_path, obs_file, capsys, argv, message):
    argv = [a.format(obs=obs_file) for a in argv] + ["--out", str(tmp_path / "o")]
    status, _, err = run_cli(mle.main, argv, capsys)
    assert status == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_closure_demo_runs_from_a_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"theory": "proxy", "theta": BOX_POINTS[3], "cases": ["C"], "seed": 3, "starts": 2}
        )
    )
    status, stdout, _ = run_cli(
        closure.main, ["--config", str(cfg), "--out", str(tmp_path / "cl")], capsys
    )
    assert status == 0 and "case C" in stdout and "σ_CRB" in stdout
    summary = json.loads((tmp_path / "cl" / "summary.json").read_text())
    assert summary["C"]["params_true"] == BOX_POINTS[3]
    assert (tmp_path / "cl" / "caseC" / "observed.npz").exists()
    cfg.write_text("theory: proxy\ncases: [A\n")
    status, _, err = run_cli(closure.main, ["--config", str(cfg)], capsys)
    assert status == 2 and "not valid YAML" in err
