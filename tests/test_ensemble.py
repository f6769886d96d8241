"""Ensembles of surrogates: the mixture EventSource, its spread, and the outer GAN with one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inverse.fit import main as inverse_main
from surrogates.ensemble import Ensemble, surrogate_share
from surrogates.errors import InputError
from surrogates.models import FlowSurrogate
from surrogates.zoo import save_model


def _flows(k: int) -> list[FlowSurrogate]:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(FlowSurrogate(transforms=1, bins=4, hidden=(8, 8)).eval())
    return out


@pytest.fixture
def theta() -> torch.Tensor:
    return torch.tensor([[1.5, -0.2, 2.0, 1.2, 0.3, 3.0], [0.7, 0.4, 4.0, 2.2, -0.6, 1.0]])


def test_mixture_draws_from_every_member(theta):
    members = _flows(3)
    ens = Ensemble(members)
    n = 30_000
    with torch.no_grad():
        mix = ens.sample(theta, n, generator=torch.Generator().manual_seed(1))
        per = [m.sample(theta, n, generator=torch.Generator().manual_seed(2)) for m in members]
    for c in range(2):
        assert mix[c].shape == (2, n, 1)
        # the mixture's mean x is the members' average, within the sampling error
        want = torch.stack([p[c][..., 0].double().mean(-1) for p in per]).mean(0)
        got = mix[c][..., 0].double().mean(-1)
        se = mix[c][..., 0].double().std(-1) / np.sqrt(n) * np.sqrt(2)
        assert ((got - want).abs() < 4 * se).all(), (got, want, se)
    np.testing.assert_allclose(
        ens.norms(theta).detach(), torch.stack([m.norms(theta) for m in members]).mean(0).detach()
    )
    # the mixture density: log(mean of member densities)
    x = mix[0][:, :5]
    want = torch.stack([m.log_prob(x, theta) for m in members]).exp().mean(0).log()
    torch.testing.assert_close(ens.log_prob(x, theta), want, rtol=1e-5, atol=1e-5)


def test_events_stay_differentiable_and_rows_pick_members(theta):
    members = _flows(2)
    ens = Ensemble(members)
    t = theta.clone().requires_grad_(True)
    events = ens.sample(t, 200)
    (events[0].sum() + events[1].sum()).backward()
    assert t.grad is not None and t.grad.abs().sum() > 0
    with torch.no_grad():
        got = ens.sample(theta, 50, generator=torch.Generator().manual_seed(3), members=[1, 0])
        gen = torch.Generator().manual_seed(3)  # members are called in order: 0 (row 1), 1 (row 0)
        row1 = members[0].sample(theta[1:], 50, generator=gen)
        row0 = members[1].sample(theta[:1], 50, generator=gen)
    torch.testing.assert_close(got[0][0], row0[0][0])
    torch.testing.assert_close(got[1][1], row1[1][0])
    torch.testing.assert_close(ens.norms(theta, members=[1, 0])[0], members[1].norms(theta[:1])[0])
    torch.testing.assert_close(
        ens.norms(theta), torch.stack([m.norms(theta) for m in members]).mean(0)
    )


def test_spread_separates_members_from_sampling_noise(theta):
    same = _flows(1) * 2
    different = _flows(3)
    s_same = Ensemble(same).spread(theta, n=20_000)
    s_diff = Ensemble(different).spread(theta, n=20_000)
    assert np.all(s_same["norm_epistemic"] == 0)
    assert np.all(s_diff["norm_epistemic"] > 1e-3)
    # untrained flows of different seeds disagree far beyond the sampling error of a mean
    assert np.all(s_diff["mean_x_epistemic"] > 5 * s_diff["mean_x_aleatoric"])
    assert s_same["mean_x_aleatoric"].shape == (2, 2)


def test_members_must_share_theory_and_box():
    a, b = _flows(2)
    b.prior_high[0] = 2.0
    with pytest.raises(InputError, match="prior_high"):
        Ensemble([a, b])
    with pytest.raises(InputError, match="at least 2"):
        Ensemble([a])


@pytest.mark.parametrize("between", [0.0, 0.5])
def test_surrogate_share_recovers_known_components(between):
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(400), 10)
    offsets = between * rng.standard_normal((400, 2))
    theta = offsets[groups] + 1.0 * rng.standard_normal((len(groups), 2))
    split = surrogate_share(theta, groups)
    np.testing.assert_allclose(split["statistical_std"], 1.0, rtol=0.05)
    # the between-member std is estimated from 400 groups: a few percent of the total variance
    np.testing.assert_allclose(split["surrogate_std"] ** 2, between**2, atol=0.05)
    want = between**2 / (between**2 + 1)
    np.testing.assert_allclose(split["surrogate_share"], want, atol=0.04)


def test_outer_gan_with_an_ensemble_reports_the_surrogate_share(tmp_path, capsys, obs_file):
    ckpts = [save_model(m, tmp_path / f"f{i}.ckpt") for i, m in enumerate(_flows(3))]
    out = tmp_path / "run"
    args = ["--events", str(obs_file), "--source", ",".join(map(str, ckpts))]
    args += ["--steps", "20", "--events-per-step", "16", "--out", str(out), "--no-progress"]
    args += ["--posterior", "false"]  # not what this checks; emcee took ~15 s here
    assert inverse_main([*args, "--replicas", "7"]) == 0
    text = capsys.readouterr().out
    assert "σ_surr" in text and "f0, f1, f2" in text
    metrics = json.loads((out / "metrics.json").read_text())
    ens = metrics["ensemble"]
    assert ens["members"] == ["f0", "f1", "f2"]
    share = np.asarray(ens["surrogate_share"])
    assert share.shape == (6,) and np.all((share >= 0) & (share <= 1))
    with pytest.raises(SystemExit) as err:
        inverse_main([*args, "--replicas", "5"])
    assert err.value.code == 2
    assert "replicas ≥ 7" in capsys.readouterr().err


def test_shift_map_measures_an_ensemble(tmp_path):
    """benchmarks/shift_map.py takes a.ckpt,b.ckpt as one surrogate, their mixture: its shifts are
    the mixture's own, neither member's."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    a, b = (str(save_model(m, tmp_path / f"f{i}.ckpt")) for i, m in enumerate(_flows(2)))
    out = tmp_path / "shift_map.json"
    args = [a, b, f"{a},{b}", "--points", "1", "--seed", "3", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks/shift_map.py"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["surrogate"] for r in rows] == [a, b, f"{a},{b}"]
    five = [np.asarray(r["held_out_5"]) for r in rows]
    assert all(np.isfinite(f).all() and f.shape == (5, 6) for f in five)
    assert not np.allclose(five[2], five[0]) and not np.allclose(five[2], five[1])
