"""Module-2s with no density: every family trains from events alone, the density-free fidelity
report, the outer GAN from a generator's surrogate, and the settings a set without densities
cannot serve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inverse.fit import main as inverse_main
from surrogates import fit, zoo
from surrogates.data import CASES, simulate_observed, simulate_training, write_events
from surrogates.generators import TheoryGenerator
from surrogates.likelihood.surrogate import (
    SurrogateLikelihood,
    quantile_edges,
    surrogate_shift_noise,
)
from surrogates.metrics import theta_shift_expected, theta_shift_surrogate
from surrogates.models import FlowSurrogate
from surrogates.sampling import InverseCDFSampler
from surrogates.theory import get_theory
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
THETA = np.array([1.5, 0.2, 2.0, 1.8, -0.3, 2.5])


@pytest.fixture(scope="module")
def smeared_set(tmp_path_factory) -> Path:
    """A tiny training set of the proxy-smeared generator: events and rates, no densities."""
    ts = simulate_training(get_theory("proxy-smeared"), 16, 24, seed=3)
    assert not ts.has_density
    return ts.save(tmp_path_factory.mktemp("smeared") / "train.npz")


def _tiny(out: Path) -> list[str]:
    tiny = {
        "data.batch_size": 4,
        "model.norm_steps": 50,
        "trainer.max_epochs": 1,
        "trainer.enable_progress_bar": "false",
        "eval.held_out": 2,
        "eval.events": 400,
        "eval.shift_events": 4000,
        "eval.template_events": 4000,
        "out": out,
    }
    return [item for key, value in tiny.items() for item in (f"--{key}", str(value))]


REFUSED = [  # (family, shipped config, extra options, the setting the message must name)
    ("gan", "gan.yaml", [], "resample_events: 0"),
    (
        "gan",
        "gan.yaml",
        ["--model.resample_events", "0", "--model.mmd_target", "pdf"],
        "mmd_target",
    ),
    ("vae", "vae.yaml", [], "resample_events: 0"),
    ("flow", "flow.yaml", [], "objective: events"),
    ("vaim", "vaim.yaml", ["--model.target", "pdf"], "target: events"),
]


@pytest.mark.parametrize("family, config, extra, fix", REFUSED)
def test_settings_that_need_densities_are_refused_before_writing(
    tmp_path, capsys, smeared_set, family, config, extra, fix
):
    """The density-trained configs on a generator's set: one line naming the setting to change,
    and no run folder; with no file (a set to simulate) the module-2 alone decides."""
    for data in (["--data", str(smeared_set)], []):
        out = tmp_path / f"run{len(data)}"
        status, _, err = run_cli(
            fit.main,
            [
                family,
                "--config",
                f"surrogates/{config}",
                "--data.theory",
                "proxy-smeared",
                *data,
                *extra,
                "--out",
                str(out),
            ],
            capsys,
        )
        assert status == 2 and fix in err and "no" in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_a_set_outside_the_module2_box_is_refused(tmp_path, capsys, smeared_set):
    """A set without densities is still checked against the module-2: θ outside its box."""
    with np.load(smeared_set) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["theta"][0, 0] = 99.0
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    out = tmp_path / "run"
    status, _, err = run_cli(
        fit.main,
        ["flow", "--config", "surrogates/flow-events.yaml", "--data", str(bad), "--out", str(out)],
        capsys,
    )
    assert status == 2 and "N_u leaves the prior box" in err, err
    assert not out.exists()


FAMILIES_FROM_EVENTS = [
    ("flow", "density", []),
    ("gan", "template", ["--model.critic_hidden", "[16]"]),
    ("vae", "template", []),
    ("vaim", "density", ["--data.grid_size", "16"]),
]


@pytest.mark.parametrize("family, method, extra", FAMILIES_FROM_EVENTS)
def test_every_family_fits_from_events_to_the_density_free_report(
    tmp_path, capsys, smeared_set, family, method, extra
):
    """surrogates.fit with the shipped FAMILY-events.yaml on a generator's set runs to a
    metrics.json with the density-free report: C2ST against fresh generator events and the θ
    shift fitted with the surrogate as the model (its density, or its histogram template)."""
    run = tmp_path / "run"
    args = [family, "--config", f"surrogates/{family}-events.yaml", "--data", str(smeared_set)]
    status, _, err = run_cli(
        fit.main, [*args, "--model.hidden", "[16, 16]", *extra, *_tiny(run)], capsys
    )
    assert status == 0, err
    m = json.loads((run / "metrics.json").read_text())
    assert m["theory"] == "proxy-smeared" and m["theta_shift_crb"] is None
    assert m["theta_shift_surrogate_method"] == method
    shifts = np.asarray(m["theta_shift_surrogate_crb_all"], dtype=float)
    assert shifts.shape == (2, 6) and np.isfinite(shifts).all()
    assert np.all(np.asarray(m["surrogate_crb_std_all"]) > 0)
    auc = np.asarray(m["c2st_auc_generator"])
    assert auc.shape == (2,) and np.all((auc >= 0) & (auc <= 1))
    assert m["reference_counts"] == list(map(float, CASES["A"]))
    assert m["theta_shift_surrogate_noise"] > 0 and m["generator"] == "proxy-smeared"
    assert (run / "heldout.png").stat().st_size > 5000


def _generated(theory, theta: np.ndarray, n: int, seed: int):  # noqa: ANN001, ANN202
    return TheoryGenerator(theory).generate(theta, n, seed)


def test_density_free_shift_of_the_exact_density_is_null(proxy):
    """The exact sampler as its own "surrogate": the density-free θ shift (fresh exact events
    fitted with its density, binned) is 0 within its noise, and its σ is the exact σ_CRB(A)
    within the loss of 100 bins (a few %)."""
    from surrogates.likelihood import crb_std

    exact = InverseCDFSampler(proxy)
    pilot = _generated(proxy, THETA, 50_000, 1)
    edges = quantile_edges([e[:, 0] for e in pilot.events], 100, 0.1, 1.0)
    data = _generated(proxy, THETA, 1_000_000, 2)
    shift, crb, ok, method = theta_shift_surrogate(exact, proxy, THETA, data, edges, CASES["A"])
    noise = surrogate_shift_noise(CASES["A"], [1_000_000] * 2, None)
    assert ok and method == "density"
    assert np.all(np.abs(shift) < 4 * noise), (shift.round(2), noise)
    ratio = crb / crb_std(proxy, THETA, CASES["A"])
    assert np.all((ratio > 1.0) & (ratio < 1.1)), ratio.round(3)


@pytest.mark.slow
def test_density_free_shift_of_the_exact_template_is_null(proxy):
    """The same with the exact sampler's histogram template (how GAN and VAE are measured):
    common random numbers and cloud-in-cell bins leave no bias beyond the noise √(ν/N + ν/S)."""
    exact = InverseCDFSampler(proxy)
    pilot = _generated(proxy, THETA, 50_000, 1)
    edges = quantile_edges([e[:, 0] for e in pilot.events], 50, 0.1, 1.0)
    data = _generated(proxy, THETA, 1_000_000, 2)
    shift, _, ok, method = theta_shift_surrogate(
        exact, proxy, THETA, data, edges, CASES["A"], "template", 300_000, seed=5
    )
    noise = surrogate_shift_noise(CASES["A"], [1_000_000] * 2, [300_000] * 2)
    assert method == "template"
    assert np.all(np.abs(shift) < 4 * noise), (shift.round(2), noise)


def test_both_views_agree_on_a_known_offset(proxy):
    """Where a density exists both views are computed: a "surrogate" that is the exact density
    at θ + δ (δ = 5 σ_CRB(A) in b_u) is seen by the exact view (its events fitted with the
    exact theory) at +5 and by the density-free view (exact events fitted with it) at −5, in
    their own units, within the density-free view's noise."""
    from surrogates.likelihood import crb_std

    exact = InverseCDFSampler(proxy)
    theta = torch.as_tensor(THETA[None], dtype=torch.float64)
    delta = torch.zeros_like(theta)
    delta[0, 2] = 5 * crb_std(proxy, theta[0], CASES["A"])[2]

    class Offset:  # the exact theory at θ + δ
        has_density, is_exact, n_members = True, False, 1

        def log_prob(self, x, t):  # noqa: ANN001, ANN202
            return exact.log_prob(x, t + delta)

        def norms(self, t):  # noqa: ANN001, ANN202
            return exact.norms(t + delta)

    view_exact = theta_shift_expected(Offset(), proxy, theta)
    pilot = _generated(proxy, THETA, 50_000, 1)
    edges = quantile_edges([e[:, 0] for e in pilot.events], 100, 0.1, 1.0)
    data = _generated(proxy, THETA, 1_000_000, 3)
    view_free, _, ok, _ = theta_shift_surrogate(Offset(), proxy, THETA, data, edges, CASES["A"])
    noise = surrogate_shift_noise(CASES["A"], [1_000_000] * 2, None)
    assert np.allclose(view_exact, [0, 0, 5, 0, 0, 0], atol=0.05), view_exact.round(2)
    assert ok and abs(view_free[2] + 5) < 4 * noise + 0.25, view_free.round(2)
    assert np.all(np.abs(view_free + view_exact) < 4 * noise + 0.25), view_free + view_exact


def test_surrogate_likelihood_refuses_what_it_cannot_do(proxy):
    from surrogates.errors import InputError

    class Sampler:  # samples only
        has_density, is_exact, n_members = False, False, 1

    edges = [np.linspace(0.1, 1.0, 5)] * 2
    with pytest.raises(InputError, match="needs a source with a density"):
        SurrogateLikelihood(Sampler(), proxy, edges, method="density")
    with pytest.raises(InputError, match="1-D events"):
        SurrogateLikelihood(Sampler(), get_theory("dis"), edges)


def _observed(tmp_path: Path) -> Path:
    smeared = get_theory("proxy-smeared")
    data = simulate_observed(smeared, smeared.truth.numpy(), CASES["C"], seed=5)
    return write_events(tmp_path / "obs.npz", data, smeared.channels)


@pytest.mark.parametrize(
    "family",
    ["flow", pytest.param("gan", marks=pytest.mark.slow)],
)
def test_inverse_fit_from_a_generator_surrogate_writes_metrics(tmp_path, capsys, family):
    """inverse.fit on a generator's observed events with a surrogate of it as the source: the
    bootstrap width, the surrogate's own σ_CRB and its MLE, labelled as not independent."""
    from surrogates.models import get_family

    torch.manual_seed(0)
    small = {"hidden": (16, 16)} | ({"critic_hidden": (16,)} if family == "gan" else {})
    model = get_family(family)(theory="proxy-smeared", **small)
    ckpt = zoo.save_model(model, tmp_path / f"{family}.ckpt")
    out = tmp_path / "run"
    argv = ["--theory", "proxy-smeared", "--events", str(_observed(tmp_path))]
    argv += ["--source", str(ckpt), "--out", str(out), "--steps", "6", "--replicas", "4"]
    status, stdout, err = run_cli(inverse_main, [*argv, "--no-progress"], capsys)
    assert status == 0, err
    m = json.loads((out / "metrics.json").read_text())
    crb = np.asarray([np.inf if v is None else v for v in m["crb_std"]], dtype=float)
    assert np.all(np.isfinite(m["params_std"])) and np.all(crb > 0)
    assert "surrogate's Fisher information" in m["crb_from"]
    assert "not an independent yardstick" in m["mle"]["kind"]
    assert np.all(np.isfinite(m["mle"]["params"]))
    assert (out / "events.png").is_file() and not (out / "curves.png").exists()


def test_inverse_fit_refuses_exact_for_a_generator(tmp_path, capsys):
    status, _, err = run_cli(
        inverse_main,
        ["--theory", "proxy-smeared", "--events", str(_observed(tmp_path)), "--source", "exact"],
        capsys,
    )
    assert status == 2 and "event generator" in err and "flow-events.yaml" in err, err


def test_vaim_from_events_learns_a_normalized_template():
    """VAIM's histogram observable is a normalized density; its events loss is the events'
    likelihood under the template (a few steps lower it), and invert_events gives θ samples."""
    from surrogates.data import _PerTheta
    from surrogates.models import VAIMSurrogate

    ts = simulate_training(get_theory("proxy-smeared"), 8, 32, seed=2)
    items = _PerTheta(ts, np.arange(8))
    batch = {k: torch.stack([items[i][k] for i in range(8)]) for k in items[0]}
    torch.manual_seed(0)
    vaim = VAIMSurrogate(theory="proxy-smeared", grid_size=16, hidden=(16,), norm_steps=0)
    h = vaim.histogram_pdf(batch["events"])
    assert torch.allclose(torch.trapezoid(h, vaim.grid), torch.ones(8, 2), atol=0.1)
    opt = torch.optim.Adam(vaim.parameters(), lr=3e-3)
    first = float(vaim.training_loss(batch)["forward_loss"].detach())
    for _ in range(30):
        loss = vaim.training_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(vaim.training_loss(batch)["forward_loss"].detach()) < first
    samples = vaim.invert_events(batch["events"][:2], 5)
    assert samples.shape == (2, 5, 6) and torch.isfinite(samples).all()
    assert FlowSurrogate(theory="proxy-smeared", hidden=(8,)).needs_density() == []


def test_crb_from_information_is_inf_where_there_is_none():
    from surrogates.likelihood.surrogate import crb_from_information

    info = np.array([[4.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    crb = crb_from_information(info)
    assert crb[0] == pytest.approx(0.5) and np.isinf(crb[1:]).all()
    assert np.allclose(crb_from_information(np.diag([4.0, 1.0])), [0.5, 1.0])


def test_the_surrogate_likelihood_at_many_theta_is_the_one_at_each(proxy):
    """`nll_many` (the face rule's reweighting of a generator fit) is `nll` θ by θ, batches
    split anywhere; the surrogate yardstick reweights only with a density."""
    from inverse.report import SurrogateYardstick

    exact = InverseCDFSampler(proxy)
    theta = proxy.sample_prior(5, torch.Generator().manual_seed(3)).numpy()
    edges = [np.linspace(0.1, 1.0, 31)] * 2
    like = SurrogateLikelihood(exact, proxy, edges)
    counts, exposure = [np.arange(30.0), np.arange(30.0)[::-1]], np.array([700.0, 300.0])
    one = np.array([like.nll(t, counts, exposure) for t in theta])
    np.testing.assert_allclose(like.nll_many(theta, counts, exposure, batch=2), one, rtol=1e-12)
    assert len(set(np.round(one, 6))) == 5  # five θ, five different likelihoods
    data = simulate_observed(proxy, THETA, (2000, 1000), seed=4)
    density = SurrogateYardstick(exact, proxy, data)
    want = [-density.likelihood.nll(t, density.counts, density.exposure) for t in theta]
    np.testing.assert_allclose(density.loglik(theta), want, rtol=1e-12)

    flow = FlowSurrogate(theory="proxy", hidden=(8, 8))  # float32 weights, evaluated in float64
    low, high = proxy.prior_low.numpy(), proxy.prior_high.numpy()
    faces = np.stack([low, high, np.where(np.arange(6) % 2 == 0, low, high)])
    on_flow = SurrogateLikelihood(flow, proxy, edges)
    one = np.array([on_flow.nll(t, counts, exposure) for t in faces])
    np.testing.assert_allclose(on_flow.nll_many(faces, counts, exposure), one, rtol=1e-12)
    assert np.all(np.isfinite(one)) and next(flow.parameters()).dtype == torch.float32
    assert on_flow.nll_many(np.zeros((0, 6)), counts, exposure).shape == (0,)

    class Sampler:  # samples only: a histogram template, too dear to evaluate at many θ
        has_density = False

    assert SurrogateYardstick(Sampler(), proxy, data).loglik is None


def test_the_card_of_a_flow_trained_on_a_log_uniform_design_records_it(tmp_path, capsys):
    """A set built with --log-uniform: the exported card's training_data says how θ were drawn
    (a surrogate of a non-uniform design is not mistaken for one of a uniform draw)."""
    from surrogates.datasets import build_training_set, theta_design
    from surrogates.zoo import export_checkpoint

    theory = get_theory("proxy-smeared")
    design = theta_design(theory, ["N_u", "N_d"], 0.5, 1e-3)
    data = build_training_set(
        theory, 16, 24, 3, tmp_path / "set.npz", design=design, progress=False
    )
    run = tmp_path / "run"
    args = ["flow", "--config", "surrogates/flow-events.yaml", "--data", str(data)]
    status, _, err = run_cli(fit.main, [*args, "--model.hidden", "[16, 16]", *_tiny(run)], capsys)
    assert status == 0, err
    card = json.loads(
        export_checkpoint(run, "x", folder=tmp_path / "zoo").with_suffix(".json").read_text()
    )
    assert card["training_data"]["theta_design"] == design
    assert card["training_data"]["n_params"] == 16
