"""Units and steps that fit the user's problem (issue 23, item 4): the θ shift in σ_CRB of the
user's reference data size, the outer GAN's generator steps scaled per parameter from the first
step, and the fit's notices (norm_steps, an un-annealed schedule, the held-out ratio panel)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from inverse.config import FitConfig, GanConfig
from inverse.gan import ABSOLUTE_STEP_RANGE, PACE_SIGMA, OuterGAN, sampled_fisher
from inverse.training import run_outer_gan
from surrogates.data import CASES, simulate_observed
from surrogates.errors import InputError
from surrogates.likelihood import crb_std, fisher_information, fit_mle
from surrogates.metrics import (
    held_out_figure,
    reference_counts,
    theta_shift,
    theta_shift_expected,
)
from surrogates.sampling import InverseCDFSampler
from surrogates.theory import Theory
from surrogates.training import fit_surrogate, schedule_state, schedule_warning


class PeakTheory(Theory):
    """A narrow Gaussian peak (1% of the x range wide) on a flat background: its position μ has
    a σ_CRB of ~0.3% of its prior range at 1000 events; the signal fraction f ~4% of its own."""

    name = "test-peak"
    param_names = ("mu", "f")
    channels = ("events",)
    quadrature_nodes = 2048  # the peak resolved by the likelihood's quadrature
    width = 0.01

    def __init__(self) -> None:
        super().__init__([0.3, 0.05], [0.7, 0.4], [0.0], [1.0], truth=[0.53, 0.15])

    def _density(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        mu, f = theta[:, 0:1], theta[:, 1:2]
        z = (x[..., 0] - mu) / self.width
        peak = torch.exp(-0.5 * z**2) / (self.width * math.sqrt(2 * math.pi))
        return (1000.0 * (f * peak + (1 - f))).unsqueeze(1)


class ShiftedSource:
    """The exact sampler of θ + δ, presented as a source of θ: a surrogate with a known bias."""

    has_density = True
    is_exact = False
    n_members = 1

    def __init__(self, theory: Theory, delta: np.ndarray) -> None:
        self.exact = InverseCDFSampler(theory)
        self.theory = theory
        self.delta = torch.as_tensor(delta, dtype=torch.float64)

    @property
    def channels(self) -> tuple[str, ...]:
        return self.theory.channels

    def sample(self, theta, n, generator=None):  # noqa: ANN001, ANN201
        return self.exact.sample(theta.double() + self.delta, n, generator=generator)

    def norms(self, theta):  # noqa: ANN001, ANN201
        return self.exact.norms(theta.double() + self.delta)

    def log_prob(self, x, theta):  # noqa: ANN001, ANN201
        return self.exact.log_prob(x.double(), theta.double() + self.delta)


# ------------------------------------------------------------------ the fidelity unit
def test_reference_counts_set_the_unit_of_the_shift(proxy):
    """A source biased by δ = 2 σ_CRB(case A) in b_u: its θ shift is ≈ 2 in σ_CRB at the case-A
    counts (within the sampled measurement's noise √(N_A / n_events) and the fit's nonlinearity),
    and ×√4 = 2 in σ_CRB at 4× the counts: the same fit, in another unit."""
    theta = proxy.truth.unsqueeze(0)
    sigma_a = crb_std(proxy, proxy.truth, CASES["A"])
    delta = np.zeros(6)
    delta[2] = 2 * sigma_a[2]
    source = ShiftedSource(proxy, delta)
    four = 4 * np.asarray(CASES["A"], dtype=float)
    n = 2_000_000
    noise = math.sqrt(sum(CASES["A"]) / (2 * n))  # σ_CRB(A) units, per parameter roughly
    a = theta_shift(source, proxy, theta, n, seed=5)
    b = theta_shift(source, proxy, theta, n, seed=5, counts=four)
    assert a[2] == pytest.approx(2.0, abs=0.15 + 4 * noise), a
    assert np.abs(np.delete(a, 2)).max() < 0.6, a  # the others: correlations of the fit only
    np.testing.assert_allclose(b, 2 * a, rtol=1e-6)
    # the noise-free variant: the same unit change, and the default is the proxy's case A
    e = theta_shift_expected(source, proxy, theta, counts=CASES["A"])
    np.testing.assert_allclose(theta_shift_expected(source, proxy, theta, counts=four), 2 * e)
    np.testing.assert_allclose(theta_shift_expected(source, proxy, theta), e)
    assert abs(e[2] - a[2]) < 4 * noise + 0.05


def test_reference_counts_come_from_the_theory_or_are_refused(proxy):
    assert reference_counts(proxy).tolist() == list(CASES["A"])
    assert reference_counts(proxy, "2000,1000").tolist() == [2000.0, 1000.0]
    peak = PeakTheory()
    with pytest.raises(InputError, match="declares no reference_counts.*--eval.reference_counts"):
        reference_counts(peak)
    peak.reference_counts = (1000,)
    assert reference_counts(peak).tolist() == [1000.0]
    for bad in ("1000", "a,b", "1000,-5", "1000,nan"):
        with pytest.raises(InputError, match="reference_counts"):
            reference_counts(proxy, bad)


# ------------------------------------------------------------------ the fit's run
TINY = {
    "seed_everything": 3,
    "model": {"objective": "pdf", "event_variable": "root", "hidden": [8, 8], "transforms": 1,
              "bins": 4, "norm_steps": 37},
    "data": {"n_params": 24, "events_per_param": 4, "grid_size": 16, "batch_size": 8},
    "trainer": {"max_epochs": 2},
    "eval": {"held_out": 1, "events": 300, "shift_events": 0},
}  # fmt: skip


def test_a_fit_states_its_units_its_norm_steps_and_its_schedule(tmp_path, capfd):
    """metrics.json states the reference counts (given here); the norm network's own steps are
    announced with their count before the first epoch; a run that ran its epochs completed its
    schedule; a bad --eval.reference_counts is refused before anything is written."""
    out = tmp_path / "run"
    metrics = fit_surrogate(
        "flow", TINY, overrides=["--eval.reference_counts", "2000,1000"], out=out, progress=False
    )
    printed = capfd.readouterr().out
    assert "fitting the norm network alone first: 37 Adam steps before the first epoch" in printed
    written = json.loads((out / "metrics.json").read_text())
    assert written["reference_counts"] == [2000.0, 1000.0]
    assert written["theta_shift_unit"] == "σ_CRB at N = (2000, 1000) events"
    assert metrics["schedule_completed"] is True and written["schedule_length"] == 2
    with pytest.raises(InputError, match="reference_counts '5' needs 2 positive counts"):
        fit_surrogate("flow", TINY, overrides=["--eval.reference_counts", "5"], out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_run_stopped_by_max_time_says_its_schedule_did_not_end(tmp_path, capfd):
    out = tmp_path / "run"
    tiny = {**TINY, "trainer": {"max_epochs": 50, "max_time": "00:00:00:00"}}
    metrics = fit_surrogate("flow", tiny, out=out, progress=False)
    err = capfd.readouterr().err
    assert "warning: training stopped after 0 of the cosine schedule's 50 epochs" in err
    written = json.loads((out / "metrics.json").read_text())
    assert written["schedule_completed"] is False and metrics["schedule_epochs"] == 0


def test_schedule_state_reads_the_cosine_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    trainer = SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=sched)])
    for _ in range(3):
        opt.step()
        sched.step()
    state = schedule_state(trainer)
    assert state["schedule_completed"] is False and state["schedule_epochs"] == 3
    assert state["lr_fraction"] == pytest.approx(0.5 * (1 + math.cos(0.3 * math.pi)), abs=0.01)
    assert "3 of the cosine schedule's 10 epochs" in schedule_warning(state)
    for _ in range(7):
        opt.step()
        sched.step()
    assert schedule_state(trainer)["schedule_completed"] is True
    assert schedule_state(SimpleNamespace(lr_scheduler_configs=[]))["schedule_completed"] is None


def test_the_held_out_figure_has_a_ratio_panel_under_each_channel(proxy):
    """Two rows of axes per held-out θ: the densities, then surrogate / exact with its band; a
    source 5% too high at large x shows there as a ratio off 1 by more than the band."""
    theta = torch.tensor([[2.0, -0.5, 3.0, 1.1, -0.5, 4.0], [1.5, 0.0, 2.5, 1.5, 0.0, 3.0]])
    theta = theta.double()
    exact = InverseCDFSampler(proxy)
    gen = torch.Generator().manual_seed(0)
    ref = exact.sample(theta, 20_000, generator=gen)
    fig = held_out_figure(exact, proxy, theta, exact.sample(theta, 20_000, generator=gen), ref)
    assert len(fig.axes) == 2 * 2 * proxy.n_channels
    ratio_axes = [ax for ax in fig.axes if ax.get_ylabel() == "surrogate / exact"]
    assert len(ratio_axes) == 2 * proxy.n_channels
    for ax in ratio_axes:
        hist = ax.lines[1].get_ydata()  # the surrogate's histogram over the exact expectation
        assert np.isfinite(hist).all() and abs(np.median(hist) - 1) < 0.05
        dens = ax.lines[2].get_ydata()  # p̂ / p: 1 for the exact sampler
        assert np.allclose(dens, 1, atol=1e-2)


# ------------------------------------------------------------------ the generator's steps
def _peak_data(n: int = 1000, seed: int = 3):  # noqa: ANN202
    theory = PeakTheory()
    truth = np.array([0.53, 0.15])
    return theory, truth, simulate_observed(theory, truth, [n], seed=seed)


def test_the_steps_are_scaled_at_step_0_by_each_parameters_own_sigma(tmp_path):
    """Default config: before the first update the generator's step in each parameter is its σ
    (the Fisher information at the start, the box centre; data of lr_g_events events) over the
    pace σ lr_g was tuned for, diagonal; the narrow peak's position gets steps ≪ the fraction's."""
    theory, _, data = _peak_data()
    cfg = FitConfig(theory=theory.name, steps=1, replicas=3, events_per_step=32, compare_mle=False)
    metrics = run_outer_gan(theory, data, InverseCDFSampler(theory), cfg, tmp_path, progress=False)
    scale = metrics["step_scale"]
    assert scale["from"] == "likelihood"
    centre = (theory.prior_low + theory.prior_high) / 2
    np.testing.assert_allclose(scale["theta"], centre.numpy(), atol=0.01 * 0.4)  # ≈ the centre
    cov = torch.linalg.pinv(
        fisher_information(theory, torch.as_tensor(scale["theta"]), data.counts)
    )
    sigma = cov.diagonal().sqrt().numpy()
    np.testing.assert_allclose(scale["sigma"], sigma, rtol=1e-6)
    inset = cfg.gan.inset
    u = (np.asarray(scale["theta"]) - theory.prior_low.numpy()) / (
        theory.prior_high - theory.prior_low
    ).numpy()
    sig_u = (u - inset) / (1 - 2 * inset)  # the sigmoid's value, so its slope below
    jac = (theory.prior_high - theory.prior_low).numpy() * (1 - 2 * inset) * sig_u * (1 - sig_u)
    sigma_s = sigma / jac * math.sqrt(data.counts.sum() / cfg.gan.lr_g_events)
    expected = np.clip(sigma_s / PACE_SIGMA, *ABSOLUTE_STEP_RANGE)
    np.testing.assert_allclose(scale["step_factor"], expected, rtol=1e-3)
    assert scale["step_factor"][0] < 0.1 * scale["step_factor"][1]
    # the generator's coordinates: diagonal
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    L = state["generator_net.L"]
    assert torch.equal(L, torch.diag(L.diagonal()))
    # off: no scaling
    off = replace(cfg, gan=GanConfig(precondition=False), overwrite=True)
    metrics = run_outer_gan(theory, data, InverseCDFSampler(theory), off, tmp_path, progress=False)
    assert metrics["step_scale"] is None


def test_without_a_likelihood_the_steps_come_from_the_sources_histograms(tmp_path):
    """No covariance (a source without density): the binned Fisher information of the source's own
    sampled histograms; within a factor 2 of the exact one on the narrow peak."""
    theory, _, data = _peak_data()
    centre = (theory.prior_low + theory.prior_high) / 2
    gan = OuterGAN(InverseCDFSampler(theory), data, theory, GanConfig(), replicas=3)
    info = sampled_fisher(gan.source, centre, data.counts, gan.generator_net)
    exact = fisher_information(theory, centre, data.counts)
    ratio = (info.diagonal() / exact.diagonal()).numpy()
    assert ((ratio > 0.5) & (ratio < 2)).all(), ratio
    gan.scale_from_start()
    assert gan.step_scale["from"] == "sampled histograms"
    assert gan.step_scale["step_factor"][0] < 0.1 * gan.step_scale["step_factor"][1]


def _gan_against_mle(tmp_path, gan: GanConfig, steps: int, seed: int) -> tuple[float, float]:  # noqa: ANN001
    """(GAN − MLE)/σ_CRB of the peak's position (θ: the mean of 4 generators on the data), and
    the largest |θ − MLE|/σ_CRB of those generators' traces over the averaging window (the last
    30% of the steps)."""
    theory, truth, data = _peak_data()
    mle = fit_mle(theory, data, start=truth)
    cfg = FitConfig(
        theory=theory.name,
        steps=steps,
        replicas=6,
        data_replicas=4,
        seed=seed,
        compare_mle=False,
        gan=gan,
    )
    out = tmp_path / f"run-{seed}-{gan.precondition}"
    m = run_outer_gan(theory, data, InverseCDFSampler(theory), cfg, out, progress=False)
    crb = m["crb_std"][0]
    trace = np.load(out / "params.npz")["trace"][:, :4, 0]  # (recorded steps, data replicas): μ
    window = trace[int(0.7 * len(trace)) :]
    return (m["params_mean"][0] - mle.theta[0]) / crb, np.abs(window - mle.theta[0]).max() / crb


@pytest.mark.slow
def test_a_narrow_peaks_position_converges_only_with_scaled_steps(tmp_path):
    """The peak's position (σ_CRB ~0.3% of its range, the start ~28 σ away), 1000 steps, 4
    generators on the data: with the default gan config every one stays within 6 σ_CRB of the
    MLE over the averaging window and θ lands within 1 σ_CRB of it; with one step size for the
    whole box (precondition false, the shipped proxy setting before) they still swing by more
    than 10 σ_CRB there: not converged (their mean near the MLE or not, by chance)."""
    shift, swing = _gan_against_mle(tmp_path, GanConfig(), 1000, 0)
    assert abs(shift) < 1.0 and swing < 6.0, (shift, swing)
    _, swing = _gan_against_mle(tmp_path, GanConfig(precondition=False), 1000, 0)
    assert swing > 10.0, swing
