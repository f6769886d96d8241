"""The outer GAN's stopping rule (`inverse.convergence`): it stops on a settled trace and not on a
drifting or still-spreading one (synthetic traces), the anneal schedule, the ``stop:`` block's
checks, and a tiny fit that records where and why it stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inverse.config import FitConfig, StopConfig
from inverse.convergence import AnnealSchedule, SettleRule
from inverse.sources import make_source
from inverse.training import run_outer_gan
from surrogates.data import CASES, simulate_observed
from surrogates.errors import InputError
from tests.conftest import InterruptAt

RULE = SettleRule(window=20, k=3.0, tolerance=0.05, precision=0.15, patience=3)
SIGMA = np.array([0.5, 2.0, 0.01])  # the unit per parameter: the traces below are in σ × this


def _trace(n: int = 300, r: int = 16, drift: float = 0.0, spread: float = 0.0, seed: int = 0):
    """Replicas wandering around their own fixed points (AR(1) noise with a correlation time of
    ~20 points, 0.5 σ), plus a common drift per point (σ units) or widths growing by a factor
    exp(spread) per point."""
    rng = np.random.default_rng(seed)
    p = len(SIGMA)
    centre = rng.standard_normal((r, p))
    noise = np.zeros((n, r, p))
    for t in range(1, n):
        noise[t] = 0.95 * noise[t - 1] + 0.5 * np.sqrt(1 - 0.95**2) * rng.standard_normal((r, p))
    t = np.arange(n)[:, None, None]
    trace = centre * np.exp(spread * t) + drift * t + noise
    return trace * SIGMA


def test_settles_early_on_a_stationary_trace():
    for seed in range(3):
        at = RULE.settled_at(_trace(seed=seed), SIGMA)
        assert at is not None and at < 100, (seed, at)  # 2 windows + patience: 42 at the earliest


def test_does_not_settle_while_the_replicas_drift_together():
    # 0.05 σ per point: 1 σ per window, against ~0.15 σ of noise in the replicas' mean move
    for seed in range(3):
        assert RULE.settled_at(_trace(drift=0.05, seed=seed), SIGMA) is None, seed


def test_windows_further_apart_see_a_slow_drift():
    # 0.01 σ per point, 0.2 σ per window: adjacent windows (lag 1) call it settled, windows 3
    # apart (the move 3× larger, the noise of two window means not) do not
    adjacent = SettleRule(window=20, k=3.0, tolerance=0.05, lag=1)
    apart = SettleRule(window=20, k=3.0, tolerance=0.05, lag=3)
    for seed in range(3):
        slow = _trace(drift=0.01, seed=seed)
        assert adjacent.settled_at(slow, SIGMA) is not None, seed
        assert apart.settled_at(slow, SIGMA) is None, seed
        assert apart.settled_at(_trace(seed=seed), SIGMA) < 100, seed  # still settles when flat


def test_does_not_settle_while_the_replicas_still_spread():
    # widths growing by 2% per point (49% per window): the fit's σ is not there yet
    for seed in range(3):
        assert RULE.settled_at(_trace(spread=0.02, seed=seed), SIGMA) is None, seed


def test_final_check_asks_for_precision():
    trace = _trace()
    assert RULE.check(trace, SIGMA).passed  # stationary
    noisy = RULE.check(trace, SIGMA, final=True)  # but each window mean is ~0.3 σ uncertain
    assert not noisy.passed and noisy.error > RULE.precision
    quiet = _trace() * 0.1  # the same, after an anneal: 10× less noise (and spread)
    assert RULE.check(quiet, SIGMA, final=True).passed
    assert RULE.check(trace[:39], SIGMA) is None  # shorter than two windows


def test_anneal_schedule_is_continuous_and_reaches_the_floor():
    s = AnnealSchedule(steps=3000, floor=0.01, anneal=500)
    assert s(0) == pytest.approx(1.0) and s(3000) == pytest.approx(0.01)
    before = s(800)
    assert s.start_anneal(800) == 1300
    assert s(800) == pytest.approx(before)
    assert s(1050) == pytest.approx(0.01 + (before - 0.01) / 2)
    assert s(1300) == pytest.approx(0.01) and s(2000) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"window": 0}, "stop.window must be a positive integer"),
        ({"k": -1}, "stop.k must be a finite number > 0"),
        ({"precision": "tight"}, "stop.precision must be a finite number > 0"),
        ({"enabled": "yes please"}, "stop.enabled"),
        ({"anneal": 2.5}, "stop.anneal must be a positive integer"),
    ],
)
def test_bad_stop_values_are_one_line(values, message):
    with pytest.raises(InputError) as err:
        FitConfig(stop=values)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="unknown key 'stop.patients'"):
        FitConfig(stop={"patients": 3})


def test_a_fit_stops_once_settled_and_records_it(tmp_path, proxy):
    """A tiny case-C fit with the rule on: it stops before its maximum, after the anneal, and
    metrics.json says where and why."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    stop = StopConfig(enabled=True, window=4, min_steps=20, anneal=40, precision=1.0)
    cfg = FitConfig(
        steps=600, replicas=6, events_per_step=64, compare_mle=False, stop=stop,
        gan={"trace_every": 5},
    )  # fmt: skip
    m = run_outer_gan(proxy, data, make_source("exact", proxy), cfg, tmp_path, progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["stop_reason"] == "settled" and saved["schedule_completed"] is True
    assert saved["settled_at"] >= 60  # after the precondition_at step (10% of 600) and min_steps
    assert saved["settled_at"] + 40 <= saved["stopped_at"] < 600
    assert m["steps"] == saved["stopped_at"] and saved["last_check"]["passed"]
    trace = np.load(tmp_path / "params.npz")["trace_steps"]
    assert trace[-1] == saved["stopped_at"] - 1


@pytest.mark.slow
def test_a_run_interrupted_in_its_anneal_resumes_it(tmp_path, proxy, monkeypatch):
    """Killed after it settled (step 120 here): the resumed run keeps the settle step and the
    anneal's end from the checkpoint, and stops there."""
    import inverse.training as training

    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    stop = StopConfig(enabled=True, window=4, lag=1, min_steps=20, anneal=40, precision=1.0)
    cfg = FitConfig(
        steps=600, replicas=6, events_per_step=64, compare_mle=False, stop=stop,
        gan={"trace_every": 5}, trainer={"checkpoint_every": 10},
    )  # fmt: skip
    original = training.pl.Trainer

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        kwargs["callbacks"] = [*kwargs["callbacks"], InterruptAt(135)]
        return original(*args, **kwargs)

    monkeypatch.setattr(training.pl, "Trainer", interrupted)
    source = make_source("exact", proxy)
    with pytest.raises(SystemExit):
        run_outer_gan(proxy, data, source, cfg, tmp_path, progress=False)
    monkeypatch.setattr(training.pl, "Trainer", original)
    m = run_outer_gan(proxy, data, source, cfg, tmp_path, resume=True, progress=False)
    assert m["settled_at"] == 120 and m["stop_reason"] == "settled"
    assert m["stopped_at"] == 161  # the anneal's end (120 + 40), then the final check passed
