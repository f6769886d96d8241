"""Inclusive DIS: physics checks of the theory, the 2-D sampler, the detector, the folded likelihood,
the outer GAN through the detector, and a 2-D flow surrogate."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from surrogates.data import event_sampler, read_events, simulate_observed, write_events
from surrogates.detector import DETECTOR_DEFAULTS, DISDetector, make_detector
from surrogates.errors import InputError
from surrogates.likelihood import FoldedModel
from surrogates.sampling import InverseCDFSampler2D
from surrogates.theory import get_theory
from surrogates.theory.dis import DIS_TRUTH_2, DISTheory

OTHER = torch.tensor([0.9, 2.5, 0.6, 5.2, 0.3, 1.2], dtype=torch.float64)  # not a truth


@pytest.fixture(scope="module")
def theory() -> DISTheory:
    return get_theory("dis")


def t64(*v: float) -> torch.Tensor:
    return torch.tensor([v], dtype=torch.float64)


# ---------------------------------------------------------------------- theory
@pytest.mark.parametrize("q2", [1.0, 4.0, 15.0])
def test_valence_number_sum_rules_hold_at_every_scale(theory: DISTheory, q2: float) -> None:
    for theta in (theory.truth, OTHER):

        def q(x: float, key: str, theta: torch.Tensor = theta) -> float:
            p = theory.pdfs(t64(x), t64(q2), theta.unsqueeze(0))
            return float(p[key]) / x

        assert integrate.quad(q, 0, 1, args=("xu_v",), limit=200)[0] == pytest.approx(2, rel=1e-6)
        assert integrate.quad(q, 0, 1, args=("xd_v",), limit=200)[0] == pytest.approx(1, rel=1e-6)


def test_gottfried_sum_and_deuteron(theory: DISTheory) -> None:
    """∫(F2ᵖ − F2ⁿ)/x dx = (2 − 1)/3 with a symmetric sea; F2ᵈ is the nucleon average."""

    def diff(x: float) -> float:
        f = theory.structure_functions(t64(x), t64(5.0), OTHER.unsqueeze(0))
        return float(f["proton"] - f["neutron"]) / x

    assert integrate.quad(diff, 0, 1, limit=200)[0] == pytest.approx(1 / 3, rel=1e-6)
    f = theory.structure_functions(t64(0.2, 0.5), t64(2.0, 8.0), OTHER.unsqueeze(0))
    torch.testing.assert_close(f["deuteron"], (f["proton"] + f["neutron"]) / 2)


def test_cross_section_by_hand(theory: DISTheory) -> None:
    """d²σ/dxdQ² at x = 0.3, Q² = 3 GeV², computed here with math alone."""
    x, q2, m, e = 0.3, 3.0, 0.938272, 11.0
    a_u, b_u, a_d, b_d, a_s, beta = theory.truth.tolist()
    sbar = math.log(math.log(q2 / 0.0625) / math.log(1 / 0.0625))

    def val(n: float, a: float, b0: float) -> float:
        b = b0 + beta * sbar
        log_beta = math.lgamma(a) + math.lgamma(b + 1) - math.lgamma(a + b + 1)
        return n * x**a * (1 - x) ** b / math.exp(log_beta)

    xu, xd = val(2, a_u, b_u), val(1, a_d, b_d)
    xs = a_s * (1 + beta * sbar) * x**-0.2 * (1 - x) ** 7
    f2p = 4 / 9 * xu + 1 / 9 * xd + 4 / 3 * xs
    y = q2 / (2 * m * e * x)
    sigma = 4 * math.pi / 137.035999**2 / (x * q2**2) * (1 - y + y * y / 2 - (m * x * y) ** 2 / q2)
    expected = sigma * f2p * 0.3893794e6
    got = theory.density(t64(x, q2).view(1, 1, 2), theory.truth)[0, 0, 0]
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_region_cuts_and_unit_map(theory: DISTheory) -> None:
    assert theory.x_min == pytest.approx(1 / (0.95 * 2 * 0.938272 * 11))
    assert theory.x_max == pytest.approx(1 - (4 - 0.938272**2) / (0.95 * 2 * 0.938272 * 11))
    pts = torch.tensor(
        [[[0.3, 3.0], [0.3, 0.9], [0.8, 12.0], [0.045, 1.5], [0.1, 2.5]]], dtype=torch.float64
    )  # inside; Q² < 1; W² < 4; x < x_min; y > 0.95
    dens = theory.density(pts, theory.truth)[0]
    assert (dens[:, 0] > 0).all() and (dens[:, 1:] == 0).all()
    u = torch.rand(1000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x, log_fwd = theory.support_from_unit(u)
    assert theory.inside(x[:, 0], x[:, 1]).all()
    back, log_inv = theory.support_to_unit(x)
    torch.testing.assert_close(back, u)
    torch.testing.assert_close(log_fwd, -log_inv)


def test_norms_by_quadrature_match_scipy(theory: DISTheory) -> None:
    th = OTHER

    def f(q2: float, x: float) -> float:
        return float(theory.density(t64(x, q2).view(1, 1, 2), th)[0, 1, 0])

    def lim(x: float, k: int) -> float:
        return float(theory.q2_limits(torch.tensor(x, dtype=torch.float64))[k])

    ref = sum(
        integrate.dblquad(f, a, b, lambda x: lim(x, 0), lambda x: lim(x, 1), epsrel=1e-7)[0]
        for a, b in ((theory.x_min, theory.x_kink), (theory.x_kink, theory.x_max))
    )
    assert float(theory.norms(th)[0, 1]) == pytest.approx(ref, rel=1e-6)


# ---------------------------------------------------------------------- sampler
def test_sampler_matches_the_exact_density_binned_chi2(theory: DISTheory) -> None:
    """Binned χ² of 4·10^5 events per channel in 10 × 10 cells of the unit square."""
    events = InverseCDFSampler2D(theory).sample(
        OTHER, 400_000, generator=torch.Generator().manual_seed(3)
    )
    g, w = np.polynomial.legendre.leggauss(8)
    g, w = (g + 1) / 2, np.outer(w, w).ravel() / 4
    for c in range(2):
        x = events[c][0]
        assert theory.inside(x[:, 0], x[:, 1]).all()
        u = theory.support_to_unit(x)[0].numpy()
        hist = np.histogram2d(u[:, 0], u[:, 1], bins=10, range=[[0, 1], [0, 1]])[0]
        expected = np.zeros((10, 10))
        for i in range(10):
            for j in range(10):
                uu = torch.cartesian_prod(torch.tensor((i + g) / 10), torch.tensor((j + g) / 10))
                expected[i, j] = (
                    theory.unit_density(uu[None], OTHER[None])[0, c].numpy() * w
                ).sum()
        expected *= hist.sum() / expected.sum()
        chi2 = float(((hist - expected) ** 2 / expected).sum())
        assert stats.chi2.sf(chi2, 99) > 1e-3, chi2


def test_sampler_gradients_match_finite_differences(theory: DISTheory) -> None:
    sampler = event_sampler(theory)
    assert isinstance(sampler, InverseCDFSampler2D)
    gen = torch.Generator().manual_seed(0)
    u = [torch.rand(1, 4000, 2, dtype=torch.float64, generator=gen) for _ in range(2)]

    def stat(theta: torch.Tensor) -> torch.Tensor:
        ev = sampler.sample(theta, 4000, u=u)
        return sum(e.log().mean() for e in ev)

    theta = OTHER.clone().unsqueeze(0).requires_grad_()
    (grad,) = torch.autograd.grad(stat(theta), theta)
    for j in range(6):
        h = 1e-5 * (theory.prior_high[j] - theory.prior_low[j])
        e = torch.zeros(1, 6, dtype=torch.float64)
        e[0, j] = h
        fd = (stat(OTHER[None] + e) - stat(OTHER[None] - e)) / (2 * h)
        assert float(grad[0, j]) == pytest.approx(float(fd), rel=1e-3, abs=1e-6)


# ---------------------------------------------------------------------- detector
def test_smearing_has_its_analytic_moments(theory: DISTheory) -> None:
    det = DISDetector(theory, x_resolution=0.04, q2_resolution=0.025)
    n = 200_000
    x = torch.tensor([0.3, 3.0], dtype=torch.float64).expand(n, 2)
    rec = det.smear(x, torch.Generator().manual_seed(1))
    var = torch.tensor([(0.04 * 0.3) ** 2, (0.025 * 3.0) ** 2], dtype=torch.float64)
    mean_se = (var / n).sqrt()
    assert ((rec.mean(0) - x[0]).abs() < 4 * mean_se).all()
    assert ((rec.var(0) / var - 1).abs() < 4 * math.sqrt(2 / n)).all()
    assert abs(float(torch.corrcoef(rec.T)[0, 1])) < 4 / math.sqrt(n)


def test_efficiency_and_simulated_acceptance(theory: DISTheory) -> None:
    det = make_detector(DETECTOR_DEFAULTS, theory)
    pts = torch.tensor([[0.3, 2.0], [0.2, 3.6]], dtype=torch.float64)  # E' = 7.45 and 1.41 GeV
    eff = det.efficiency(pts)
    assert float(eff[0]) == pytest.approx(0.9, rel=1e-8)
    assert 0.2 < float(eff[1]) < 0.4
    n = 100_000
    kept = len(det.simulate(pts[1].expand(n, 2).numpy(), np.random.default_rng(0)))
    p = float(det.acceptance(pts[1:]))
    assert abs(kept / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_folded_model_matches_simulated_reconstruction(theory: DISTheory) -> None:
    """Histogram of events reconstructed through the detector against ν_b of the folded model."""
    det = make_detector(DETECTOR_DEFAULTS, theory)
    folded = FoldedModel(theory, det, bins=12)
    n_true = 300_000
    true = event_sampler(theory).sample(OTHER, n_true, generator=torch.Generator().manual_seed(4))
    rng = np.random.default_rng(4)
    reco = [det.simulate(e[0].numpy(), rng) for e in true]
    counts = folded.histogram(reco)
    nu = folded.folded(OTHER[None])[0] * n_true / theory.norms(OTHER)[0].unsqueeze(-1)
    ok = nu > 5
    chi2 = float((((counts - nu) ** 2 / nu)[ok]).sum())
    assert stats.chi2.sf(chi2, int(ok.sum())) > 1e-3, chi2
    acc = folded.accepted_norms(OTHER[None])[0] / theory.norms(OTHER)[0]
    frac = torch.tensor([len(r) / n_true for r in reco], dtype=torch.float64)
    assert ((frac - acc).abs() < 4 * (acc * (1 - acc) / n_true).sqrt()).all()


def test_detector_bad_settings(theory: DISTheory) -> None:
    with pytest.raises(InputError, match="unknown detector option"):
        make_detector({"kind": "dis", "resolution": 0.1}, theory)
    with pytest.raises(InputError, match="resolutions"):
        make_detector({"kind": "dis", "x_resolution": -0.1}, theory)
    with pytest.raises(InputError, match="needs the DIS theory"):
        DISDetector(get_theory("proxy"))
    assert make_detector(None, theory) is None
    with pytest.raises(InputError, match="must be a mapping"):
        make_detector("dis", theory)
    with pytest.raises(InputError, match="must be a number"):
        make_detector({"kind": "dis", "x_resolution": "0.03"}, theory)


def test_detector_of_the_data_and_of_the_config_must_agree(theory: DISTheory) -> None:
    from inverse.sources import check_detector

    det = make_detector(DETECTOR_DEFAULTS, theory)
    plain = simulate_observed(theory, DIS_TRUTH_2, [500, 500], seed=1)
    with pytest.raises(InputError, match="simulated with no detector"):
        check_detector(DETECTOR_DEFAULTS, theory, plain)
    seen = simulate_observed(theory, DIS_TRUTH_2, [500, 500], seed=1, detector=det)
    with pytest.raises(InputError, match="config has detector"):
        check_detector({**DETECTOR_DEFAULTS, "x_resolution": 0.05}, theory, seen)
    assert check_detector(DETECTOR_DEFAULTS, theory, seen).describe() == det.describe()
    seen.meta.pop("detector")  # data from elsewhere: the config's detector is taken
    assert check_detector(DETECTOR_DEFAULTS, theory, seen) is not None


def test_sampler_in_float32_at_the_unit_square_edges() -> None:
    theory = DISTheory(dtype=torch.float32)
    u = [torch.tensor([[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.5, 1.0]]]) for _ in range(2)]
    events = InverseCDFSampler2D(theory).sample(theory.truth, 4, u=u)
    assert all(torch.isfinite(e).all() for e in events)


def test_folded_mle_and_crb_on_simulated_data(theory: DISTheory, tmp_path) -> None:
    det = make_detector(DETECTOR_DEFAULTS, theory)
    data = simulate_observed(theory, DIS_TRUTH_2, [20000, 20000], seed=5, detector=det)
    path = write_events(tmp_path / "obs.npz", data, theory.channels)
    data = read_events(path, theory)
    assert data.meta["detector"] == det.describe()
    assert ((data.counts > 14000) & (data.counts < 19000)).all()  # efficiency < 1
    folded = FoldedModel(theory, det)
    fit = folded.fit(data, start=theory.truth.numpy())
    crb = folded.crb_std(DIS_TRUTH_2, data.expected_counts)
    pull = (fit.theta - np.asarray(DIS_TRUTH_2)) / crb
    assert (np.abs(pull) < 4).all(), pull
    assert np.allclose(fit.std / crb, 1, atol=0.35)  # Hessian σ ≈ CRB at this size


# ---------------------------------------------------------------------- outer GAN + CLI
def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=_env(), timeout=900
    )


def _env() -> dict:
    import os

    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def test_outer_gan_through_the_detector(theory: DISTheory, tmp_path) -> None:
    obs = tmp_path / "obs.npz"
    r = _run(
        "-m", "surrogates.simulate", "observed", "--theory", "dis", "--theta",
        ",".join(map(str, DIS_TRUTH_2)), "--events", "20000,20000", "--detector",
        "configs/inverse/dis.yaml", "--seed", "3", "--out", str(obs),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = tmp_path / "gan"
    r = _run(
        "-m", "inverse.fit", "--config", "configs/inverse/dis.yaml", "--events", str(obs),
        "--steps", "300", "--replicas", "4", "--events-per-step", "256", "--out", str(out),
        "--no-progress", "--posterior", "false",  # DIS's posterior: test_posterior.py (~2 min here)
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["detector"] == DISDetector(theory).describe()
    assert m["mle"]["kind"].startswith("binned")
    start = (theory.prior_low + theory.prior_high).numpy() / 2
    moved = np.abs(np.asarray(m["params_mean"]) - start) / np.asarray(m["crb_std"])
    assert moved.max() > 3  # it left the box centre ...
    assert np.abs(m["gan_minus_mle_crb"]).max() < 2.5, m["gan_minus_mle_crb"]  # ... for the MLE
    assert -1e-6 < m["gan_minus_mle_nll"] < 20  # the binned likelihood's minimum is the MLE's
    for png in ("traces.png", "curves.png", "events.png"):
        assert (out / png).stat().st_size > 10_000
    # the same data with no detector in the config: refused before training, in one line
    bad = tmp_path / "nodet.yaml"
    bad.write_text("theory: dis\n")
    r = _run("-m", "inverse.fit", "--config", str(bad), "--events", str(obs), "--steps", "5")
    assert r.returncode == 2 and "simulated with detector" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------- 2-D flow surrogate
def test_flow_on_dis_events(theory: DISTheory, tmp_path) -> None:
    from surrogates.models.flow import FlowSurrogate

    flow = FlowSurrogate(theory="dis", transforms=2, bins=6, hidden=(16, 16), event_variable="unit")
    theta = OTHER[None].float().expand(3, -1).clone().requires_grad_()
    ev = flow.sample(theta, 500, generator=torch.Generator().manual_seed(0))
    assert ev[0].shape == (3, 500, 2)
    assert theory.inside(ev[0][..., 0].double(), ev[0][..., 1].double()).all()
    ev[1][..., 1].log().mean().backward()
    assert torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0
    # the density in (x, Q²), through the unit-square map, integrates to 1 over the region
    nodes, weights = theory.quadrature(24)
    with torch.no_grad():
        dens = flow.log_prob(nodes.float()[None], OTHER[None].float()).exp().double()
    assert torch.allclose(dens @ weights, torch.ones(1, 2, dtype=torch.float64), atol=2e-3)


def test_flow_fit_cli_on_dis(tmp_path) -> None:
    data = tmp_path / "train.npz"
    r = _run(
        "-m", "surrogates.simulate", "training", "--theory", "dis", "--n-params", "60",
        "--events-per-param", "4", "--grid-size", "9", "--out", str(data),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = tmp_path / "flow"
    r = _run(
        "-m", "surrogates.fit", "flow", "--config", "configs/surrogates/flow-dis.yaml",
        "--data", str(data), "--trainer.max_epochs", "2", "--model.norm_steps", "50",
        "--model.hidden", "[16, 16]", "--model.pdf_cells", "16", "--eval.held_out", "1",
        "--eval.events", "2000", "--eval.shift_events", "20000", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["theory"] == "dis" and len(m["theta_shift_crb"]) == 6
    assert np.isfinite(m["theta_shift_crb"]).all() and 0.4 < m["c2st_auc"][0] <= 1
    assert (out / "heldout.png").stat().st_size > 10_000


# ---------------------------------------------------------------------- the shipped DIS flow
def log_moment_gradients(source, theta: list[float], replicas: int = 8, n: int = 8000):  # noqa: ANN001, ANN201
    """d<ln x>/dθ and d<ln Q²>/dθ of the proton channel per replica: mean and SE, each (2, P)."""
    th = torch.tensor([theta] * replicas, dtype=torch.float64, requires_grad=True)
    ev = source.sample(th, n, generator=torch.Generator().manual_seed(7))[0].log().mean(1)
    grads = [
        torch.autograd.grad(ev[:, k].sum(), th, retain_graph=True)[0].numpy() for k in range(2)
    ]
    g = np.stack(grads, 1)  # (R, 2, P)
    return g.mean(0), g.std(0, ddof=1) / np.sqrt(replicas)


@pytest.mark.parametrize(
    "theta",
    [
        [0.6, 2.6, 1.0, 4.8, 0.12, 0.3],
        pytest.param([0.95, 4.2, 0.55, 2.8, 0.3, 1.2], marks=pytest.mark.slow),  # ~20 s each
    ],
)
def test_shipped_dis_flow_gradients_follow_the_exact_ones(theory: DISTheory, theta) -> None:
    """Sign equal and size within a factor 2 for every component at least 5% of the statistic's
    largest (measured: the smallest ones, e.g. d<ln Q²>/dβ = −0.004 of a largest 0.095, can be off
    by up to 4×: β barely moves <ln Q²>)."""
    from surrogates.zoo import list_checkpoints, load_surrogate

    assert "flow-dis" in list_checkpoints(theory="dis")
    model = load_surrogate("flow-dis", theory="dis").double()
    exact, exact_se = log_moment_gradients(event_sampler(theory), theta)
    got, _ = log_moment_gradients(model, theta)
    checked = 0
    for k in range(2):
        for j in range(6):
            if abs(exact[k, j]) < max(5 * exact_se[k, j], 0.05 * np.abs(exact[k]).max()):
                continue
            checked += 1
            assert 0.5 < got[k, j] / exact[k, j] < 2.0, (
                k,
                theory.param_names[j],
                got[k, j],
                exact[k, j],
            )
    assert checked >= 4


def test_accepted_norm_of_a_surrogate_by_quadrature(theory: DISTheory) -> None:
    """The outer GAN's accepted norm for a surrogate with a density (its norm × the quadrature of
    its density × the acceptance) agrees with the acceptance of 2·10^5 of its own events."""
    from inverse.gan import OuterGAN
    from surrogates.models.flow import FlowSurrogate

    torch.manual_seed(0)
    flow = FlowSurrogate(theory="dis", transforms=2, bins=6, hidden=(16, 16), event_variable="unit")
    det = make_detector(DETECTOR_DEFAULTS, theory)
    data = simulate_observed(theory, DIS_TRUTH_2, [400, 400], seed=1, detector=det)
    gan = OuterGAN(flow, data, theory, replicas=1, detector=det)
    theta = OTHER[None]
    with torch.no_grad():
        chi2 = gan.norm_chi2(theta)
        nodes, weights, plain = gan._acceptance_quadrature
        dens = flow.log_prob(nodes[None], theta.float()).double().exp()
        acc_quad = (dens @ weights) / (dens @ plain)
        pred = flow.norms(theta).double() * acc_quad
        expected = (((pred - gan.replica_norms) / gan.norms_sigma) ** 2).sum(-1)
        events = flow.sample(theta.float(), 200_000, generator=torch.Generator().manual_seed(1))
        acc = [det.acceptance(e.double()) for e in events]
    torch.testing.assert_close(chi2, expected)
    mc = torch.stack([a.mean(-1) for a in acc], -1)
    se = torch.stack([a.std(-1) for a in acc], -1) / 200_000**0.5
    assert ((acc_quad - mc).abs() < 4 * se + 3e-3 * mc).all(), (acc_quad, mc)
