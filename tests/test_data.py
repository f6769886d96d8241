"""Simulation CLI and event files: contents, reproducibility, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import surrogates
from surrogates import simulate
from surrogates.data import CASES, load_training, read_events, simulate_observed, write_events
from surrogates.errors import EventFileError
from tests.conftest import run_cli


def test_observed_file_contents(tmp_path, proxy, capsys):
    path = tmp_path / "obs.npz"
    status, out, _ = run_cli(
        simulate.main,
        ["observed", "--theta", "truth", "--case", "B", "--seed", "1", "--out", str(path)],
        capsys,
    )
    assert status == 0 and "case B" in out
    data = read_events(path, proxy)
    assert data.theory == "proxy"
    assert data.meta["seed"] == 1 and data.meta["version"] == surrogates.__version__
    np.testing.assert_array_equal(data.expected_counts, CASES["B"])
    np.testing.assert_allclose(data.theta_true, proxy.truth.numpy())
    # Poisson-fluctuated counts: within 5σ of the expected ones, and not exactly equal to both
    assert np.all(np.abs(data.counts - CASES["B"]) < 5 * np.sqrt(CASES["B"]))
    # norms measured by the counts: m = ∫σ · N/ν, σ_m = m/√N
    true_norms = proxy.norms(proxy.truth)[0].numpy()
    np.testing.assert_allclose(data.norms, true_norms * data.counts / CASES["B"], rtol=1e-12)
    np.testing.assert_allclose(data.norms_sigma, data.norms / np.sqrt(data.counts), rtol=1e-12)
    np.testing.assert_allclose(data.exposure * data.norms, data.counts, rtol=1e-12)


def test_observed_custom_theta_and_counts_reproducible(tmp_path, proxy, capsys):
    args = ["observed", "--theta", "1,0.2,2,0.5,-0.3,3", "--events", "300,200", "--seed", "4"]
    run_cli(simulate.main, args + ["--out", str(tmp_path / "a.npz")], capsys)
    run_cli(simulate.main, args + ["--out", str(tmp_path / "b.npz")], capsys)
    a, b = read_events(tmp_path / "a.npz", proxy), read_events(tmp_path / "b.npz", proxy)
    np.testing.assert_array_equal(a.events[0], b.events[0])
    np.testing.assert_array_equal(a.expected_counts, [300, 200])
    np.testing.assert_allclose(a.theta_true, [1, 0.2, 2, 0.5, -0.3, 3])


def test_training_set(tmp_path, proxy, capsys):
    path = tmp_path / "train.npz"
    status, *_ = run_cli(
        simulate.main,
        [
            "training",
            "--n-params",
            "300",
            "--events-per-param",
            "5",
            "--grid-size",
            "64",
            "--seed",
            "2",
            "--out",
            str(path),
        ],
        capsys,
    )
    assert status == 0
    ts = load_training(path, proxy)
    assert ts.theta.shape == (300, 6) and ts.events.shape == (300, 2, 5, 1)
    assert (
        ts.grid.shape == (300, 64, 1)  # one adaptive grid per θ
        and ts.densities.shape == (300, 2, 64)
        and ts.norms.shape == (300, 2)
    )
    assert ts.meta["grid"]["kind"] == "adaptive" and ts.meta["grid"]["size"] == 64
    assert (ts.grid[:, 0, 0] == 0.1).all() and (ts.grid[:, -1, 0] == 1.0).all()
    assert (ts.theta >= proxy.prior_low.numpy()).all() and (
        ts.theta <= proxy.prior_high.numpy()
    ).all()
    assert (ts.events >= 0.1).all() and (ts.events <= 1.0).all()
    ref = proxy.density(torch.as_tensor(ts.grid[:3]), ts.theta[:3]).numpy()
    np.testing.assert_allclose(ts.densities[:3], ref, rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(ts.norms, proxy.exact_norms(ts.theta), rtol=1e-9)
    assert ts.meta["theory"] == "proxy" and ts.meta["prior_high"] == [3, 1, 5, 3, 1, 5]
    with pytest.raises(EventFileError, match="not observed events"):
        read_events(path, proxy)


def test_csv_layouts(tmp_path, proxy):
    data = simulate_observed(proxy, proxy.truth.numpy(), [40, 25], seed=3, fluctuate=False)
    head = "# norms: {}, {}\n# norms_sigma: {}, {}\n".format(*data.norms, *data.norms_sigma)
    wide = tmp_path / "wide.csv"
    rows = ["sigma1,sigma2"] + [
        f"{data.events[0][i, 0] if i < 40 else ''},{data.events[1][i, 0] if i < 25 else ''}"
        for i in range(40)
    ]
    wide.write_text(head + "\n".join(rows) + "\n")
    long = tmp_path / "long.csv"
    long.write_text(
        head + "channel,x\n" + "".join(f"{c},{x[0]}\n" for c in (0, 1) for x in data.events[c])
    )
    for path in (wide, long):
        got = read_events(path, proxy)
        assert got.counts.tolist() == [40, 25]
        np.testing.assert_allclose(got.events[1], data.events[1])
        np.testing.assert_allclose(got.norms, data.norms)


def _bad_csv(tmp_path, body, norms=True):
    path = tmp_path / "bad.csv"
    path.write_text(("# norms: 3.2, 1.9\n# norms_sigma: 0.1, 0.1\n" if norms else "") + body)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.npz", "not found"),
        (lambda p: (p / "junk.npz").write_bytes(b"not a zip") and p / "junk.npz", "cannot read"),
        (lambda p: _bad_csv(p, "sigma1,sigma2\n0.5,0.4\n1.5,0.3\n"), "outside the x range"),
        (lambda p: _bad_csv(p, "sigma1,sigma2\n0.5,0.4\nnan,0.3\n"), "NaN"),
        (lambda p: _bad_csv(p, "sigma1,sigma2\n0.5,0.4\n0.5\n"), "numeric fields"),
        (lambda p: _bad_csv(p, "sigma1,sigma2\n0.5,0.4\nabc,0.3\n"), "not a number"),
        (lambda p: _bad_csv(p, "sigma1,sigma2\n,0.4\n0.3,0.3\n"), "empty cell"),
        (lambda p: _bad_csv(p, "sigma1,sigma2\n0.5,0.4\n", norms=False), "no measured norms"),
        (lambda p: _bad_csv(p, "channel,x\n0,0.5\n0,0.3\n"), "no events"),
        (lambda p: _bad_csv(p, "sigma1,sigmaX\n0.5,0.4\n"), "one column per channel"),
        (lambda p: (p / "e.txt").write_text("x") and p / "e.txt", "unknown type"),
    ],
)
def test_bad_event_files(tmp_path, proxy, make, message):
    with pytest.raises(EventFileError, match=message):
        read_events(make(tmp_path), proxy)


def test_wrong_theory_and_tampered_counts(tmp_path, proxy):
    blackbox = simulate_observed(
        surrogates.get_theory("proxy-numpy"), proxy.truth.numpy(), [50, 20], seed=1
    )
    path = write_events(tmp_path / "bb.npz", blackbox, proxy.channels)
    with pytest.raises(EventFileError, match="theory 'proxy-numpy', not 'proxy'"):
        read_events(path, proxy)
    good = simulate_observed(proxy, proxy.truth.numpy(), [50, 20], seed=1)
    path = write_events(tmp_path / "t.npz", good, proxy.channels)
    arrays = dict(np.load(path))
    arrays["counts"] = arrays["counts"] + 1
    np.savez(tmp_path / "t2.npz", **arrays)
    with pytest.raises(EventFileError, match="do not match"):
        read_events(tmp_path / "t2.npz", proxy)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["observed", "--theta", "4,0,1,1,0,1"], "N_u = 4 is outside the prior box"),
        (["observed", "--theta", "inf,0,1,1,0,1"], "NaN or inf"),
        (["observed", "--theta", "1,2"], "has 2 values"),
        (["observed", "--case", "Q"], "unknown case 'Q'"),
        (["observed", "--theory", "dls"], "unknown theory 'dls'"),
        (["observed", "--events", "10"], "needs 2 positive counts"),
        (["training", "--n-params", "0"], "n-params must be"),
    ],
)
def test_simulate_bad_input_is_one_line(tmp_path, capsys, argv, message):
    status, _, err = run_cli(simulate.main, argv + ["--out", str(tmp_path / "x.npz")], capsys)
    assert status == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_real_subprocess_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "surrogates.simulate",
            "observed",
            "--theta",
            "1,1,1,1,1,9",
            "--out",
            str(tmp_path / "x.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "b_d = 9" in proc.stderr


def test_npz_meta_is_json(obs_file):
    with np.load(obs_file) as f:
        meta = json.loads(str(f["meta"]))
    assert meta["kind"] == "observed" and meta["channels"] == ["sigma1", "sigma2"]
