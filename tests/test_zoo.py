"""One invariant test over the whole zoo, the fit CLI on every shipped YAML, resume, load checks."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from surrogates import fit, training, zoo
from surrogates.errors import InputError, ParameterError
from surrogates.models import (
    FAMILIES,
    FlowSurrogate,
    GANSurrogate,
    VAESurrogate,
    VAIMNet,
    VAIMSurrogate,
)
from surrogates.theory import THEORIES, get_theory
from surrogates.types import DensitySource, EventSource
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "flow-zuko": lambda: FlowSurrogate(backend="zuko", transforms=2, bins=4, hidden=(16, 16)),
    "flow-nflows": lambda: FlowSurrogate(backend="nflows", transforms=2, bins=4, hidden=(16, 16)),
    "flow-normflows": lambda: FlowSurrogate(
        backend="normflows", transforms=2, bins=4, hidden=(16, 16)
    ),
    **{
        f"flow-{backend}-{variable}": (
            lambda backend=backend, variable=variable: FlowSurrogate(
                backend=backend, event_variable=variable, transforms=2, bins=4, hidden=(16, 16)
            )
        )
        for backend in ("zuko", "nflows", "normflows")
        for variable in ("unit", "probit")
    },
    "gan": lambda: GANSurrogate(hidden=(16, 16), critic_hidden=(16,)),
    "vae": lambda: VAESurrogate(hidden=(16, 16)),
    "vaim": lambda: VAIMSurrogate(grid_size=32, hidden=(16, 16)),
}
THETA = [[1.5, 0.2, 2.0, 1.8, -0.3, 2.5], [0.4, -0.8, 4.5, 2.6, 0.7, 0.5]]


@pytest.mark.parametrize("name", TINY)
def test_zoo_invariants(name, tmp_path):
    _check_invariants(TINY[name]().eval(), tmp_path)


FROM_EVENTS = {
    "flow": lambda: FlowSurrogate(
        theory="proxy-smeared", transforms=2, bins=4, hidden=(16, 16), norm_steps=20
    ),
    "gan": lambda: GANSurrogate(
        theory="proxy-smeared", hidden=(16, 16), critic_hidden=(16,), norm_steps=20
    ),
    "vae": lambda: VAESurrogate(theory="proxy-smeared", hidden=(16, 16), norm_steps=20),
    "vaim": lambda: VAIMSurrogate(
        theory="proxy-smeared", grid_size=32, hidden=(16, 16), norm_steps=20
    ),
}


@pytest.fixture(scope="module")
def generator_set(tmp_path_factory) -> Path:
    """A few θ of the proxy-smeared event generator: events and rates, no densities."""
    from surrogates.data import simulate_training
    from surrogates.theory import get_theory

    ts = simulate_training(get_theory("proxy-smeared"), 12, 16, seed=5)
    return ts.save(tmp_path_factory.mktemp("generator") / "train.npz")


@pytest.mark.parametrize("family", FROM_EVENTS)
def test_zoo_invariants_trained_from_a_generators_events(family, generator_set, tmp_path):
    """Every family trained one epoch from an event generator's events alone (no densities in
    the set) keeps the zoo's invariants, and its weights moved."""
    import pytorch_lightning as pl

    from surrogates.data import TrainingDataModule

    torch.manual_seed(0)
    model = FROM_EVENTS[family]()
    before = [p.detach().clone() for p in model.shape_parameters()]
    data = TrainingDataModule(
        path=str(generator_set), theory="proxy-smeared", batch_size=4, val_fraction=0.25
    )
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=data)
    assert not data.training_set.has_density
    moved = [not torch.equal(a, p.detach()) for a, p in zip(before, model.shape_parameters())]
    assert any(moved), family
    _check_invariants(model.eval(), tmp_path)


def _check_invariants(model, tmp_path) -> None:  # noqa: ANN001
    theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
    events = model.sample(theta, [50, 30], generator=torch.Generator().manual_seed(0))
    assert [e.shape for e in events] == [(2, 50, 1), (2, 30, 1)]
    for e in events:
        assert torch.isfinite(e).all() and (e >= 0.1).all() and (e <= 1.0).all()
    (sum(e.mean() for e in events) + model.norms(theta).sum()).backward()
    assert torch.isfinite(theta.grad).all() and (theta.grad.abs().sum(-1) > 0).all(), (
        "gradient must reach θ"
    )
    norms = model.norms(theta)
    assert norms.shape == (2, 2) and (norms > 0).all()
    assert isinstance(model, EventSource) and not model.is_exact and model.n_members == 1
    assert model.has_density == (model.family not in ("gan", "vae"))
    if model.has_density:
        assert isinstance(model, DensitySource)
        lp = model.log_prob(events[0].detach(), theta.detach())
        assert lp.shape == (2, 2, 50) and torch.isfinite(lp).all()
    # save → load gives identical samples for a fixed seed
    path = tmp_path / "m.ckpt"
    zoo.save_model(model, path)
    loaded = type(model).load_from_checkpoint(path, map_location="cpu").eval()
    with torch.no_grad():
        a = model.sample(theta.detach(), 20, generator=torch.Generator().manual_seed(3))
        b = loaded.sample(theta.detach(), 20, generator=torch.Generator().manual_seed(3))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    with pytest.raises(ParameterError, match="outside the box"):
        model.sample([[4.0, 0, 1, 1, 0, 1]], 5)
    with pytest.raises(ParameterError, match="NaN"):
        model.norms([[float("nan"), 0, 1, 1, 0, 1]])


@pytest.mark.parametrize("variable", ["logit", "probit", "unit", "root"])
def test_flow_event_variables_are_normalized_densities(variable):
    """Every event variable: from_unit inverts to_unit, and the flow's density in x integrates to
    1 less the mass the (untrained) flow puts beyond the clamp of s at 1e−7 from the ends."""
    torch.manual_seed(0)
    model = FlowSurrogate(event_variable=variable, transforms=2, bins=4, hidden=(16, 16)).eval()
    # x = 0.1 + 0.9 Φ(t): nodes dense enough at both ends for every event variable
    t = torch.linspace(-5.19, 5.19, 20001, dtype=torch.float64)
    x = (0.1 + 0.9 * torch.special.ndtr(t)).view(1, -1, 1)
    y, _ = model.to_unit(x.float())
    assert torch.allclose(model.from_unit(y).double(), x, atol=1e-5)
    theta = torch.tensor([THETA[0]])
    with torch.no_grad():
        p = model.log_prob(x, theta).exp().double()
        ys = model._sample_unit(theta, 0, 200_000, torch.Generator().manual_seed(1))
    edge, _ = model.to_unit(x[:, [0, -1]].float())
    outside = ((ys < edge[0, 0]) | (ys > edge[0, 1])).double().mean()
    integral = torch.trapezoid(p[0, 0] * 0.9 * torch.exp(-0.5 * t**2) / math.sqrt(2 * math.pi), t)
    assert abs(float(integral + outside) - 1) < 1e-2, (float(integral), float(outside))
    with pytest.raises(InputError, match="event_variable"):
        FlowSurrogate(event_variable="tanh")


@pytest.mark.parametrize("backend", ["nflows", "normflows"])
@pytest.mark.parametrize("variable", ["logit", "unit"])
def test_made_flows_run_their_conditioner_once_per_theta(backend, variable):
    """nflows/normflows on 1-D events: the once-per-θ conditioner (`_made_spline_pass`) gives the
    same events, log densities and gradients as the libraries' own per-event path. In float64:
    in float32 the two paths' matrix products round differently (by up to 2e-5 on some CPUs)."""
    torch.manual_seed(0)
    model = FlowSurrogate(
        backend=backend, event_variable=variable, transforms=2, bins=4, hidden=(16, 16)
    ).eval()
    with torch.no_grad():  # away from the identity initialization
        for p in model.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = model.double()
    assert model.net.broadcasts
    results = []
    for broadcasts in (True, False):
        model.net.broadcasts = broadcasts
        theta = torch.tensor(THETA, dtype=torch.float64, requires_grad=True)
        x = model.sample(theta, 40, generator=torch.Generator().manual_seed(2))[0]
        lp = model.log_prob(x.detach(), theta.detach())
        (grad,) = torch.autograd.grad(x.mean(), theta)
        results.append((x.detach(), lp, grad))
    for a, b in zip(*results, strict=True):
        assert a.dtype == torch.float64
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), (a - b).abs().max()
    assert results[0][0].std() > 0.05  # the flow is not the identity: the check has teeth


def test_resampled_training_events_follow_the_tabulated_densities():
    """resample_events: fresh events per θ from the batch's grid densities (VAE, GAN): their mean
    and variance in x match the piecewise-linear density's within 4 standard errors, per θ and
    channel; in eval mode (validation) the batch's own events are used."""
    from surrogates.data import TrainingDataModule

    dm = TrainingDataModule(
        n_params=6, events_per_param=8, grid_size=64, batch_size=6, val_fraction=0
    )
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    model = VAESurrogate(hidden=(8,), resample_events=4000).train()
    torch.manual_seed(0)
    events = model.training_events(batch, model.hparams.resample_events)
    assert events.shape == (batch["theta"].shape[0], 2, 4000, 1)
    x = batch["grid"][..., 0].double()  # (B, G): each θ's own grid
    # the piecewise-linear density's moments on a fine subdivision of every interval
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    xf = (x[:, :-1, None] + t * x.diff(dim=-1)[..., None]).flatten(1)
    for c in range(2):
        p = batch["pdf"][:, c].double()
        pf = (p[:, :-1, None] * (1 - t) + p[:, 1:, None] * t).flatten(1)
        pf = pf / torch.trapezoid(pf, xf)[:, None]
        mean = torch.trapezoid(pf * xf, xf)
        var = torch.trapezoid(pf * (xf - mean[:, None]) ** 2, xf)
        e = events[:, c, :, 0].double()
        se = (var / 4000).sqrt()  # stratified draws: at most the plain standard error
        assert ((e.mean(1) - mean).abs() < 4 * se).all(), (e.mean(1) - mean) / se
        assert ((e.var(1) / var - 1).abs() < 4 * (2 / 4000) ** 0.5 * 2).all()
    model.eval()
    assert model.training_events(batch, 4000) is batch["events"]


def test_gan_mmd_is_unbiased():
    """The GAN's MMD term averages to 0 for two samples of one distribution (the diagonal-free
    U-statistic), within 4 standard errors over 4000 pairs of small samples, and is clearly
    positive for two different distributions; the biased V-statistic (diagonal kept) would average
    ≈ 4·(1/8 + 1/6) (k(x, x) = 4 over the four scales) minus what the kernels share, far outside."""
    from surrogates.models.gan import mmd

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 8, 1, generator=gen, dtype=torch.float64)
    b = torch.randn(4000, 6, 1, generator=gen, dtype=torch.float64)
    same = mmd(a, b)
    assert abs(float(same.mean())) < 4 * float(same.std()) / 4000**0.5
    shifted = mmd(a, b + 1.0)
    assert float(shifted.mean()) > 10 * float(shifted.std()) / 4000**0.5


def test_energy_to_logistic_is_unbiased_and_detects_a_shift():
    """The pdf target's energy distance averages to 0 for logistic samples (within 4 standard
    errors over 4000 rows of 16) and is clearly positive for a 50% wider or a shifted law."""
    from surrogates.models.gan import energy_to_logistic

    gen = torch.Generator().manual_seed(0)
    u = torch.rand(4000, 16, generator=gen, dtype=torch.float64)
    w = torch.log(u) - torch.log1p(-u)
    same = energy_to_logistic(w)
    assert abs(float(same.mean())) < 4 * float(same.std()) / 4000**0.5
    for other in (1.5 * w, w + 0.5):
        e = energy_to_logistic(other)
        assert float(e.mean()) > 10 * float(e.std()) / 4000**0.5


def test_gan_pdf_target_measures_the_distance_to_the_tabulated_density():
    """mmd_target: pdf compares generated events with the batch's own tabulated density: ≈ 0 for
    events drawn from that density (iid, through the exact inverse CDF), positive for the
    untrained generator, and its gradient reaches the generator; a 2-D theory is refused."""
    from surrogates.data import TrainingDataModule
    from surrogates.sampling import grid_cdf, invert_cdf

    dm = TrainingDataModule(
        n_params=256, events_per_param=4, grid_size=64, batch_size=256, val_fraction=0
    )
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    torch.manual_seed(0)
    gan = GANSurrogate(hidden=(16, 16), critic_hidden=(16,), mmd_target="pdf")
    grid, b = batch["grid"][..., 0], batch["theta"].shape[0]  # each θ's own grid (B, G)
    for c in range(2):
        q, cdf = grid_cdf(grid, batch["pdf"][:, c])
        x = invert_cdf(grid, q, cdf, torch.rand(b, 64, dtype=q.dtype))
        exact = gan._shape_distance(batch, c, None, gan.to_unit(x.unsqueeze(-1))[0])
        assert abs(float(exact.mean())) < 4 * float(exact.std()) / b**0.5
        fake = gan._sample_unit(batch["theta"], c, 64, None)
        far = gan._shape_distance(batch, c, None, fake)
        assert float(far.detach().mean()) > 10 * float(exact.std()) / b**0.5
    far.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.generator.parameters())
    with pytest.raises(InputError, match="unknown gan.mmd_target 'data'"):
        GANSurrogate(hidden=(8,), mmd_target="data")
    with pytest.raises(InputError, match="mmd_target: pdf needs 1-D events"):
        GANSurrogate(theory="dis", hidden=(8,), mmd_target="pdf")


def test_training_reduces_the_loss_of_every_family():
    """A few steps on one batch: every family's own loss goes down (the training wiring works)."""
    from surrogates.data import TrainingDataModule

    dm = TrainingDataModule(
        n_params=64, events_per_param=8, grid_size=32, batch_size=64, val_fraction=0.0
    )
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    for name, make in TINY.items():
        torch.manual_seed(0)
        model = make()
        if isinstance(model, GANSurrogate):
            continue  # adversarial: no single loss that must fall; covered by the CLI run
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        first = float(model.training_loss(batch)["loss"])
        for _ in range(30):
            loss = model.training_loss(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert float(model.training_loss(batch)["loss"]) < first, name


def test_vaim_recovers_both_branches_of_x_squared():
    """The VAIM paper's ill-posed toy: y = θ², θ ∈ [−1, 1]; inverting y = 0.25 gives ±0.5."""
    torch.manual_seed(0)
    net = VAIMNet(1, 1, latent=2, hidden=(64, 64))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(2000):
        theta = torch.rand(256, 1) * 2 - 1
        loss = net.loss(theta, theta**2, beta=0.05)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s = net.invert(torch.tensor([[0.25], [0.64]]), 4000, torch.Generator().manual_seed(1))[
            ..., 0
        ]
    for row, root in zip(s, (0.5, 0.8), strict=True):
        plus = ((row - root).abs() < 0.15).float().mean()
        minus = ((row + root).abs() < 0.15).float().mean()
        assert plus > 0.25 and minus > 0.25, f"branches ±{root}: {plus:.2f}, {minus:.2f}"
        assert (row**2 - root**2).abs().median() < 0.05


def _tiny_args(out: Path) -> list[str]:
    tiny = {
        "data.n_params": 48,
        "data.events_per_param": 4,
        "data.grid_size": 32,
        "data.batch_size": 16,
        "model.norm_steps": 200,
        "trainer.max_epochs": 1,
        "trainer.enable_progress_bar": "false",
        "eval.held_out": 2,
        "eval.events": 500,
        "eval.shift_events": 5000,
        "out": out,
    }
    return [item for key, value in tiny.items() for item in (f"--{key}", str(value))]


SHIPPED = [
    ("flow", "zuko"),
    ("flow", "nflows"),
    ("flow", "normflows"),
    ("gan", None),
    ("vae", None),
    ("vaim", None),
]


@pytest.mark.parametrize("family, backend", SHIPPED)
def test_every_shipped_yaml_runs_through_the_cli(tmp_path, capsys, family, backend):
    config = ROOT / "configs" / "surrogates" / f"{family}.yaml"
    extra = ["--model.backend", backend] if backend else []
    extra += ["--model.hidden", "[16, 16]"] + (
        ["--model.critic_hidden", "[16]"] if family == "gan" else []
    )
    args = _tiny_args(tmp_path / "run")
    args[args.index("--trainer.max_epochs") + 1] = "2"  # two epochs for best.ckpt to choose from
    status, out, err = run_cli(fit.main, [family, "--config", str(config), *extra, *args], capsys)
    assert status == 0, err
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == family and metrics["backend"] == backend
    for key in (
        "theta_shift_crb",
        "c2st_auc",
        "w1",
        "ks",
        "norm_error",
        "train_seconds",
        "sample_events_per_second",
    ):
        assert key in metrics, key
    assert len(metrics["theta_shift_crb"]) == 6 and len(metrics["w1"]) == 2
    # the density-free view beside the exact one: the surrogate as the model of exact events
    free = np.asarray(metrics["theta_shift_surrogate_crb_all"], dtype=float)
    assert free.shape == (2, 6) and np.isfinite(free).all()
    assert metrics["theta_shift_surrogate_method"] == (
        "template" if family in ("gan", "vae") else "density"
    )
    assert (run / "heldout.png").stat().st_size > 5000
    assert (run / "checkpoints" / "last.ckpt").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["theory"] == "proxy"
    assert (run / "logs" / "metrics.csv").exists()
    # best.ckpt is the epoch with the lowest value of the family's selection metric
    monitor = "val_surrogate_loss" if family == "vaim" else "val_loss"
    assert metrics["selection_metric"] == monitor
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    chosen = next(v for k, v in best["callbacks"].items() if v.get("monitor"))
    assert chosen["monitor"] == monitor and chosen["best_model_path"].endswith("best.ckpt")
    logged = [float(r[monitor]) for r in csv.DictReader((run / "logs" / "metrics.csv").open()) if r.get(monitor)]
    assert len(logged) >= 2 and float(chosen["best_model_score"]) == pytest.approx(min(logged), rel=1e-6)


def test_interrupted_training_resumes_from_last(tmp_path, capsys):
    config = str(ROOT / "configs" / "surrogates" / "flow.yaml")
    small = ["--model.hidden", "[16, 16]", "--model.transforms", "1"]
    run = tmp_path / "run"
    # a callback of the user's own runs beside the package's checkpoints: its lr column is logged
    user = [
        "--trainer.callbacks+=LearningRateMonitor",
        "--trainer.callbacks.logging_interval=epoch",
    ]
    status, _, err = run_cli(
        fit.main, ["flow", "--config", config, *small, *user, *_tiny_args(run)], capsys
    )
    assert status == 0, err
    assert "lr-Adam" in (run / "logs" / "metrics.csv").read_text().splitlines()[0]
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    args = _tiny_args(run)
    args[args.index("--trainer.max_epochs") + 1] = "3"
    status, _, err = run_cli(
        fit.main, ["flow", "--config", config, *small, *args, "--ckpt_path", "last"], capsys
    )
    assert status == 0, err
    second = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["epoch"] == 0 and second["epoch"] == 2
    assert second["global_step"] == 3 * first["global_step"], (
        "resumed run must continue, not restart"
    )
    status, _, err = run_cli(
        fit.main,
        ["flow", "--config", config, "--out", str(tmp_path / "none"), "--ckpt_path", "last"],
        capsys,
    )
    assert status == 2 and "no " in err and "last.ckpt" in err


def test_init_from_copies_a_trained_surrogates_weights(tmp_path):
    """--init_from (fine-tuning): the new model starts with the trained one's weights, its norm
    network marked fitted (not refitted); another family or other network sizes → one-line errors."""
    trained = VAESurrogate(hidden=(16, 16))
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.1 * torch.randn_like(p))
    trained.norms_fitted.fill_(True)
    path = zoo.save_model(trained, tmp_path / "vae.ckpt")
    fresh = VAESurrogate(hidden=(16, 16))
    training.init_weights(fresh, str(path), "proxy")
    for (name, a), b in zip(trained.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(InputError, match="same kind"):
        training.init_weights(GANSurrogate(hidden=(16, 16)), str(path), "proxy")
    with pytest.raises(InputError, match="other sizes"):
        training.init_weights(VAESurrogate(hidden=(8,)), str(path), "proxy")


def test_fit_cli_errors(capsys):
    status, _, err = run_cli(fit.main, ["diffusion"], capsys)
    assert status == 2 and "choose one of: flow, gan, vae, vaim" in err
    status, _, err = run_cli(fit.main, [], capsys)
    assert status == 2 and "say which surrogate" in err


def test_export_and_load_refuse_mismatches(tmp_path):
    model = TINY["flow-zuko"]()
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    zoo.save_model(model, run / "best.ckpt")
    out = zoo.export_checkpoint(tmp_path / "run", "tiny", folder=tmp_path / "zoo", metrics={"x": 1})
    card = json.loads(out.with_suffix(".json").read_text())
    assert (
        card["family"] == "flow"
        and card["backend"] == "zuko"
        and card["theory"]["theory"] == "proxy"
    )
    loaded = zoo.load_surrogate(out, theory="proxy")
    assert isinstance(loaded, FlowSurrogate) and not loaded.training

    with pytest.raises(InputError, match="not found"):
        zoo.load_surrogate(tmp_path / "zoo" / "nope.ckpt")
    with pytest.raises(InputError, match="theory 'proxy', not 'proxy-numpy'"):
        zoo.load_surrogate(out, theory="proxy-numpy")
    bad = dict(card, theory=dict(card["theory"], prior_high=[3, 1, 4, 3, 1, 5]))
    out.with_suffix(".json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match="prior box"):
        zoo.load_surrogate(out, theory="proxy")
    out.with_suffix(".json").write_text(json.dumps(dict(card, version="9.0.0")))
    with pytest.raises(InputError, match="surrogate-zoo 9.0.0"):
        zoo.load_surrogate(out)
    out.with_suffix(".json").write_text(json.dumps(card))
    with out.open("r+b") as f:
        f.seek(100)
        f.write(b"garbage")
    with pytest.raises(InputError, match="checksum"):
        zoo.load_surrogate(out)
    out.with_suffix(".json").unlink()
    with pytest.raises(InputError, match="not a readable checkpoint"):
        zoo.load_surrogate(out)


def test_fidelity_metrics_on_the_exact_sampler_are_null(proxy):
    """The yardstick of the yardstick: exact events give θ shift ≈ 0 and C2ST AUC ≈ 0.5."""
    from surrogates.metrics import c2st_auc, sample_in_chunks, theta_shift
    from surrogates.sampling import InverseCDFSampler

    exact = InverseCDFSampler(proxy)
    theta = torch.tensor([THETA[0]], dtype=torch.float64)
    shift = theta_shift(exact, proxy, theta, n_events=1_000_000, seed=4)
    noise = np.sqrt(100_000 / 1_000_000)  # σ of the shift in σ_CRB(A) units at 10^6 events
    assert np.all(np.abs(shift) < 4 * noise), shift.round(2)
    a, b = (
        sample_in_chunks(exact, theta, 20_000, seed=1),
        sample_in_chunks(exact, theta, 20_000, seed=2),
    )
    auc, se = c2st_auc(a[0], b[0])
    assert abs(auc - 0.5) < 4 * se, (auc, se)


def test_expected_theta_shift_is_null_for_the_exact_density_and_finds_a_known_offset(proxy):
    """theta_shift_expected (the noise-free θ shift): the exact density gives 0 (to 0.01 σ_CRB);
    the exact density and norms of θ + δ, with δ = 2 σ_CRB(A) in b_u, give the shift (0, 0, 2, 0,
    0, 0) to 0.01; only one θ at a time."""
    from surrogates.data import CASES
    from surrogates.likelihood import crb_std
    from surrogates.metrics import theta_shift_expected
    from surrogates.sampling import InverseCDFSampler

    exact = InverseCDFSampler(proxy)
    theta = torch.tensor([THETA[0]], dtype=torch.float64)
    assert np.abs(theta_shift_expected(exact, proxy, theta)).max() < 0.01
    delta = torch.zeros_like(theta)
    delta[0, 2] = 2 * crb_std(proxy, theta[0], CASES["A"])[2]

    class Offset:  # the exact theory at θ + δ
        has_density, is_exact, n_members = True, False, 1

        def log_prob(self, x, t):  # noqa: ANN001, ANN202
            return exact.log_prob(x, t + delta)

        def norms(self, t):  # noqa: ANN001, ANN202
            return exact.norms(t + delta)

    shift = theta_shift_expected(Offset(), proxy, theta)
    assert np.allclose(shift, [0, 0, 2, 0, 0, 0], atol=0.01), shift.round(3)
    with pytest.raises(ValueError, match="one θ"):
        theta_shift_expected(exact, proxy, theta.expand(2, -1))


def test_families_registry_matches_configs():
    """One proxy YAML per family; theory-specific ones are FAMILY-THEORY.yaml (flow-dis.yaml);
    FAMILY-events.yaml trains every family from an event generator's events alone."""
    folder = ROOT / "configs" / "surrogates"
    stems = [p.stem for p in folder.glob("*.yaml")]
    assert sorted(FAMILIES) == sorted(s for s in stems if "-" not in s)
    assert sorted(FAMILIES) == sorted(s[: -len("-events")] for s in stems if s.endswith("-events"))
    for stem in (s for s in stems if "-" in s):
        family, theory = stem.split("-", 1)
        if theory == "events":
            theory = yaml.safe_load((folder / f"{stem}.yaml").read_text())["data"]["theory"]
            assert not THEORIES[theory]().has_density, stem
        assert family in FAMILIES and theory in THEORIES, stem


def test_last_checkpoint_follows_every_epoch_without_improvement(tmp_path, capsys):
    """With lr = 0 the validation loss never improves: best.ckpt stays at epoch 0, last.ckpt moves on."""
    config = str(ROOT / "configs" / "surrogates" / "flow.yaml")  # pdf objective: deterministic loss
    args = _tiny_args(tmp_path / "run")
    args[args.index("--trainer.max_epochs") + 1] = "3"
    small = ["--model.hidden", "[16, 16]", "--model.transforms", "1", "--model.lr", "0"]
    status, _, err = run_cli(fit.main, ["flow", "--config", config, *small, *args], capsys)
    assert status == 0, err
    ckpts = tmp_path / "run" / "checkpoints"
    assert torch.load(ckpts / "best.ckpt", weights_only=False)["epoch"] == 0
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["epoch"] == 2


@pytest.mark.parametrize(
    "family, optimizer, activation",
    [
        ("vae", "adamw", "gelu"),
        ("vaim", "sgd", "tanh"),
        ("gan", "adamw", "relu"),
        ("flow", "sgd", None),
    ],
)
def test_optimizer_and_activation_options(family, optimizer, activation):
    """The hyperparameter search's optimizer and activation choices build what they name."""
    from surrogates.models import get_family

    kwargs = {"optimizer": optimizer, "hidden": (8,)}
    if activation:
        kwargs["activation"] = activation
    model = get_family(family)(**kwargs)
    model.trainer = type("T", (), {"max_epochs": 2})()  # what configure_optimizers reads
    got = model.configure_optimizers()
    opts = got if isinstance(got, list) else [got["optimizer"] if isinstance(got, dict) else got]
    opts = [o for o in opts if isinstance(o, torch.optim.Optimizer)] or got[0]
    want = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[optimizer]
    assert all(type(o) is want for o in opts), opts
    if activation:
        acts = {"gelu": torch.nn.GELU, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation]
        assert any(isinstance(m, acts) for m in model.modules())
    with pytest.raises(InputError, match="unknown optimizer"):
        get_family(family)(optimizer="lbfgs", hidden=(8,))


def test_flow_log_theta_features_resolve_the_lower_face(tmp_path):
    """model.log_theta: the conditioner also gets log((θ − low)/(high − low) + 0.01) scaled to
    [−1, 1] for the named parameters: −1 on the lower face, 1 on the upper; two θ that the linear
    input barely separates near the face differ by a large step; the flow stays a normalized
    density, survives a save and load, and an unknown name is refused in one line."""
    flow = FlowSurrogate(transforms=1, bins=4, hidden=(8, 8), log_theta=["N_d"], event_variable="unit")
    plain = FlowSurrogate(transforms=1, bins=4, hidden=(8, 8), event_variable="unit")
    assert flow.context_dim == plain.context_dim + 1
    low, high = flow.prior_low.double(), flow.prior_high.double()
    theta = torch.stack([low, high, low + 0.002 * (high - low), low + 0.02 * (high - low)])
    ctx = flow.double().context(theta, torch.zeros(4))
    assert ctx.shape == (4, 6 + 1 + 2)
    assert torch.equal(ctx[:, :6], plain.double().context(theta, torch.zeros(4))[:, :6])
    assert ctx[0, 6].item() == pytest.approx(-1) and ctx[1, 6].item() == pytest.approx(1)
    # 0.2% → 2% of the range from the face: the linear input moves by 0.036, the log one by > 0.3
    assert (ctx[3, 3] - ctx[2, 3]).item() == pytest.approx(0.036) and (ctx[3, 6] - ctx[2, 6]).item() > 0.3
    x = torch.linspace(0.1, 1.0, 20001, dtype=torch.float64)[None, :, None]
    with torch.no_grad():
        dens = flow.log_prob(x, theta[2:3]).exp()[0]
    integral = torch.trapezoid(dens, x[0, :, 0], dim=-1)
    assert torch.allclose(integral, torch.ones(2, dtype=torch.float64), atol=2e-3), integral
    path = zoo.save_model(flow.float(), tmp_path / "f.ckpt")
    back = zoo.load_surrogate(path)
    assert back.log_index == [3]
    with torch.no_grad():
        assert torch.allclose(back.log_prob(x[:, :50].float(), theta[2:3].float()), flow.log_prob(x[:, :50].float(), theta[2:3].float()))
    with pytest.raises(InputError, match="model.log_theta"):
        FlowSurrogate(log_theta=["N_x"])


@pytest.mark.parametrize("family", ["gan", "vae", "vaim"])
def test_every_family_reads_log_theta_features(family, tmp_path):
    """model.log_theta is the base class's: the GAN's and VAE's conditioning and the VAIM's
    forward mapper read the named parameters' log features too (the same values as the flow's),
    the model survives a save and load with them, and an unknown name is refused in one line."""
    small = {"gan": dict(hidden=(8,), critic_hidden=(8,)), "vae": dict(hidden=(8,)),
             "vaim": dict(grid_size=16, hidden=(8,))}[family]
    from surrogates.models import get_family

    cls = get_family(family)
    model, plain = cls(log_theta=["N_u", "N_d"], **small), cls(**small)
    flow = FlowSurrogate(transforms=1, bins=4, hidden=(8,), log_theta=["N_u", "N_d"])
    assert model.feature_dim == plain.feature_dim + 2 == 8
    low, high = model.prior_low, model.prior_high
    theta = torch.stack([low, high, low + 0.01 * (high - low)])
    feats = model.theta_features(theta)
    assert torch.equal(feats, flow.theta_features(theta))
    assert torch.allclose(feats[:2, 6:], torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), atol=1e-6)
    def first(m):
        return {"gan": lambda: m.generator, "vae": lambda: m.encoder, "vaim": lambda: m.vaim.forward_net}[family]()[0]

    assert first(model).in_features == first(plain).in_features + 2
    path = zoo.save_model(model, tmp_path / "m.ckpt")
    back = zoo.load_surrogate(path)
    assert back.log_index == [0, 3]
    with pytest.raises(InputError, match="model.log_theta"):
        cls(log_theta=["N_u", "N_u"], **small)


@pytest.mark.parametrize("family", ["flow", "gan", "vae", "vaim"])
def test_norm_log_theta_feeds_the_norm_network(family, tmp_path):
    """model.norm_log_theta: the norm network reads the log_theta features too (its first layer
    widens by their number), it survives a save and load, it is off by default (a checkpoint
    saved without it keeps its width), and a non-boolean or no log_theta names is refused in one
    line."""
    small = {"flow": dict(transforms=1, bins=4, hidden=(8,)), "gan": dict(hidden=(8,), critic_hidden=(8,)),
             "vae": dict(hidden=(8,)), "vaim": dict(grid_size=16, hidden=(8,))}[family]  # fmt: skip
    from surrogates.models import get_family

    cls = get_family(family)
    model = cls(log_theta=["N_u", "N_d"], norm_log_theta=True, **small)
    plain = cls(log_theta=["N_u", "N_d"], **small)
    assert model.norm_net[0].in_features == plain.norm_net[0].in_features + 2 == 8
    low, high = model.prior_low, model.prior_high
    theta = torch.stack([low + 0.3 * (high - low), low + 0.5 * (high - low)])
    path = zoo.save_model(model, tmp_path / "m.ckpt")
    back = zoo.load_surrogate(path)
    assert back.norm_log_theta and back.norm_net[0].in_features == 8
    with torch.no_grad():
        assert torch.equal(back.log_norms(theta), model.log_norms(theta))
    with pytest.raises(InputError, match="norm_log_theta"):
        cls(norm_log_theta="yes", **small)
    with pytest.raises(InputError, match="model.log_theta names none"):
        cls(norm_log_theta=True, **small)


def test_norm_log_theta_fits_normalizations_near_zero():
    """The proxy's ∫σ_c is proportional to its normalization N_c, so log ∫σ_c is steep near
    N_c = 0. The same norm network fitted alone (3000 steps on 4000 θ) errs far less within 5% of
    those faces when it reads the log features: mean squared error in log ∫σ_c below half of the
    error on scaled θ alone (6× lower when this test was written)."""
    th = get_theory("proxy")
    gen = torch.Generator().manual_seed(0)
    span = th.prior_high - th.prior_low

    def draw(n: int, near: bool = False) -> torch.Tensor:
        u = torch.rand(n, th.n_params, generator=gen, dtype=torch.float64)
        if near:  # both normalizations within 5% of their lower face
            u[:, [0, 3]] *= 0.05
        return th.prior_low + u * span

    train, near = draw(4000), draw(2000, near=True)
    errors = {}
    for feats in (False, True):
        torch.manual_seed(0)
        m = FlowSurrogate(transforms=1, bins=4, hidden=(8,), norm_hidden=(64, 64),
                          log_theta=["N_u", "N_d"], norm_log_theta=feats)  # fmt: skip
        m.fit_norms(train.float(), th.norms(train).log().float(), 3000)
        with torch.no_grad():
            errors[feats] = float((m.log_norms(near.float()) - th.norms(near).log()).pow(2).mean())
    assert errors[True] < 0.5 * errors[False], errors


def test_vaim_cross_entropy_is_the_kl_divergence_on_the_grid():
    """pdf_loss: cross-entropy is ∫ p log(p/q̂) (trapezoid rule) plus (log ∫ exp ŷ)²: zero when
    the prediction is the normalized log density itself, the same KL for any constant added to ŷ
    (only the pin grows), and positive for a change of shape, at its second-order value."""
    from surrogates.sampling import grid_cdf

    vaim = VAIMSurrogate(grid_size=64, hidden=(8,), pdf_loss="cross-entropy").double()
    g = vaim.grid.double()
    p = torch.stack([torch.exp(-g / 0.05) + 1e-9, (1 - g) ** 3]).unsqueeze(0)  # (1, 2, G)
    q = grid_cdf(g, p)[0]
    exact = q.clamp(min=1e-300).log().flatten(1)
    assert vaim._pdf_cross_entropy(exact, p).item() == pytest.approx(0, abs=1e-12)
    shifted = vaim._pdf_cross_entropy(exact + 0.3, p).item()
    assert shifted == pytest.approx(0.09, rel=1e-9)
    bent = exact + 0.1 * torch.linspace(-1, 1, 64, dtype=torch.float64).repeat(2)
    kl = vaim._pdf_cross_entropy(bent, p).item()
    assert kl > 1e-4
    # the KL's second-order form: ½ ∫ p (δ − ∫ p δ)²
    w = vaim._grid_log_weights(torch.float64).exp()
    d = 0.1 * torch.linspace(-1, 1, 64, dtype=torch.float64)
    mean = (w * q * d).sum(-1, keepdim=True)
    approx = (0.5 * w * q * (d - mean) ** 2).sum(-1).mean() + (torch.logsumexp(bent.view(1, 2, -1) + w.log(), -1) ** 2).mean()
    assert kl == pytest.approx(approx.item(), rel=0.05)
    log_mse = VAIMSurrogate(grid_size=64, hidden=(8,)).double()
    with pytest.raises(InputError, match="pdf_loss"):
        VAIMSurrogate(pdf_loss="mse")
    assert log_mse.hparams.pdf_loss == "log-mse"
