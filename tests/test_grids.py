"""Grids that adapt to each θ's density: a narrow interior peak, a steep edge and a flat density,
in training sets, in every consumer of the tabulated densities, and in the exact sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from surrogates import simulate
from surrogates.data import (
    TrainingDataModule,
    TrainingSet,
    _PerTheta,
    load_training,
    simulate_training,
)
from surrogates.errors import InputError
from surrogates.sampling import (
    GridToleranceWarning,
    InverseCDFSampler,
    adaptive_grid,
    eval_cdf,
    grid_cdf,
    interp_grid,
    invert_cdf,
)
from surrogates.theory import Theory, get_theory, register_theory
from surrogates.theory.base import chebyshev_grid
from tests.conftest import run_cli

Tensor = torch.Tensor
P_MIN = 1e-3
WIDTH = 0.02  # the peak's σ: 1% of the x range [1, 3]


class PeakTheory(Theory):
    """A Gaussian peak (σ = 1% of the range) at mass m on a falling exponential background, in
    two channels (peak fraction f and f/2); x in [1, 3]. Norms and CDFs are analytic."""

    name = "peak-test"
    param_names = ("m", "f", "s")
    channels = ("a", "b")

    def __init__(self) -> None:
        super().__init__([1.4, 0.1, 1.0], [2.6, 0.4, 3.0], [1.0], [3.0], truth=[2.0, 0.25, 2.0])

    def _parts(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m, f, s = (theta[:, j].view(-1, 1, 1) for j in range(3))
        fractions = torch.cat([f, f / 2], 1)  # (B, 2, 1)
        return m, fractions, s

    def _density(self, x, theta):
        m, frac, s = self._parts(theta)
        x = x[..., 0].unsqueeze(1)  # (B, 1, n)
        background = s * torch.exp(-s * (x - 1)) / (1 - torch.exp(-2 * s))
        peak = torch.exp(-0.5 * ((x - m) / WIDTH) ** 2) / (WIDTH * math.sqrt(2 * math.pi))
        return torch.cat([torch.ones_like(frac[:, :1]), 2 * torch.ones_like(frac[:, 1:])], 1) * (
            (1 - frac) * background + frac * peak
        )

    def cdf(self, x: np.ndarray, theta: np.ndarray, channel: int) -> np.ndarray:
        """The exact normalized CDF of one channel at one θ."""
        m, f, s = theta
        f = f if channel == 0 else f / 2
        background = (1 - np.exp(-s * (x - 1))) / (1 - np.exp(-2 * s))

        def phi(v: np.ndarray | float) -> np.ndarray:
            return 0.5 * (1 + special.erf((v - m) / (WIDTH * math.sqrt(2))))

        peak = phi(x) - phi(1.0)
        return ((1 - f) * background + f * peak) / ((1 - f) + f * (phi(3.0) - phi(1.0)))


@pytest.fixture(scope="module")
def peak():
    from surrogates.theory import _LOADED

    theory = PeakTheory()
    register_theory(theory)
    yield theory
    _LOADED.pop(theory.name, None)


def measured_l1(theory: Theory, nodes: Tensor, values: Tensor, theta: Tensor) -> Tensor:
    """∫|p_lin − p| dx of the normalized density, measured on 200 001 points: (B, C)."""
    xf = torch.linspace(float(theory.x_low[0]), float(theory.x_high[0]), 200_001)
    xf = xf.to(torch.float64).expand(theta.shape[0], -1)
    exact = theory.density(xf.unsqueeze(-1), theta)
    lin = interp_grid(nodes, values, xf)
    norm = torch.trapezoid(exact, xf.unsqueeze(1))
    return torch.trapezoid((lin - exact).abs(), xf.unsqueeze(1)) / norm


def chebyshev_table(theory: Theory, theta: Tensor, n: int) -> tuple[Tensor, Tensor]:
    grid = torch.as_tensor(
        chebyshev_grid(float(theory.x_low[0]), float(theory.x_high[0]), n), dtype=theory.dtype
    ).expand(theta.shape[0], -1)
    return grid, theory.density(grid.unsqueeze(-1), theta)


@pytest.mark.parametrize("n_nodes", [128, 256])
def test_adaptive_grid_resolves_a_narrow_peak_far_better_than_chebyshev(peak, n_nodes):
    """At the same node count the adaptive grid's interpolation error, measured against the exact
    density, is what it estimates (within 25%), below 3e-3 (G=128) / 1e-3 (G=256), and at least
    5× below the Chebyshev grid's, in L1 and at the peak itself."""
    theta = peak.sample_prior(24, torch.Generator().manual_seed(0))
    table = adaptive_grid(peak._density, theta, 1.0, 3.0, n_nodes)
    assert table.nodes.shape == (24, n_nodes) and (table.nodes.diff(dim=-1) > 0).all()
    assert (table.nodes[:, 0] == 1.0).all() and (table.nodes[:, -1] == 3.0).all()
    torch.testing.assert_close(table.values, peak.density(table.nodes.unsqueeze(-1), theta))
    adaptive = measured_l1(peak, table.nodes, table.values, theta).amax(1)
    cheb = measured_l1(peak, *chebyshev_table(peak, theta, n_nodes), theta).amax(1)
    tol = 3e-3 if n_nodes == 128 else 1e-3
    assert (adaptive < tol).all(), adaptive
    assert ((adaptive / table.error - 1).abs() < 0.25).all(), adaptive / table.error
    assert (cheb > 5 * adaptive).all(), cheb / adaptive
    at_peak = theta[:, :1]  # the density at the peak's centre, interpolated vs exact
    exact = peak.density(at_peak.unsqueeze(-1), theta)[:, 0, 0]
    lin_a = interp_grid(table.nodes, table.values, at_peak)[:, 0, 0]
    lin_c = interp_grid(*chebyshev_table(peak, theta, n_nodes), at_peak)[:, 0, 0]
    err_a, err_c = (lin_a / exact - 1).abs(), (lin_c / exact - 1).abs()
    assert (err_c.amax() > 5 * err_a.amax()) and (err_a < 0.02).all(), (err_a, err_c)


EDGES = {
    "(1 - x)^0.2": lambda x: (1 - x).clamp(min=0) ** 0.2,
    "(1 - x)^0.5": lambda x: (1 - x).clamp(min=0) ** 0.5,
    "(x + 1e-3)^-0.9": lambda x: (x + 1e-3) ** -0.9,
    "(1 - x)^3 (x + 1e-4)^-0.5": lambda x: (1 - x) ** 3 * (x + 1e-4) ** -0.5,
}


@pytest.mark.parametrize("name", EDGES)
@pytest.mark.parametrize("n_nodes", [64, 200])
def test_adaptive_grid_serves_edges_at_least_as_well_as_chebyshev(name, n_nodes):
    """Densities steep at an edge, where the Chebyshev grid's end clustering is made for: the
    adaptive grid's measured L1 interpolation error is no larger than Chebyshev's at the same
    node count, and its estimate is within 25% of the measured value."""
    f = EDGES[name]

    def density(x, theta):
        return f(x[..., 0]).unsqueeze(1)

    theta = torch.zeros(1, 1, dtype=torch.float64)
    table = adaptive_grid(density, theta, 0.0, 1.0, n_nodes)
    assert (table.nodes.diff(dim=-1) > 0).all() and table.nodes.shape == (1, n_nodes)
    xf = torch.linspace(0, 1, 400_001, dtype=torch.float64).unsqueeze(0)
    exact = density(xf.unsqueeze(-1), theta)
    norm = torch.trapezoid(exact, xf.unsqueeze(1))

    def l1(nodes: Tensor, values: Tensor) -> float:
        lin = interp_grid(nodes, values, xf)
        return float(torch.trapezoid((lin - exact).abs(), xf.unsqueeze(1)) / norm)

    cheb = torch.as_tensor(chebyshev_grid(0.0, 1.0, n_nodes)).unsqueeze(0)
    adaptive = l1(table.nodes, table.values)
    assert adaptive <= l1(cheb, density(cheb.unsqueeze(-1), theta))
    assert abs(adaptive / float(table.error) - 1) < 0.25, (adaptive, float(table.error))


def test_adaptive_grid_handles_flat_and_vanishing_densities():
    """A flat and an all-zero density (and a θ batch mixing them with a peak): increasing nodes
    with both ends, zero error where linear interpolation is exact, no NaN."""

    def density(x, theta):
        x = x[..., 0]
        flat = torch.ones_like(x) * theta[:, :1]
        peak = torch.exp(-0.5 * ((x - 0.4) / 0.01) ** 2)
        return torch.stack([flat, torch.zeros_like(x), peak * theta[:, :1]], 1)

    theta = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    table = adaptive_grid(density, theta, 0.0, 1.0, 64)
    assert (table.nodes.diff(dim=-1) > 0).all() and torch.isfinite(table.error).all()
    assert (table.nodes[:, 0] == 0.0).all() and (table.nodes[:, -1] == 1.0).all()
    assert float(table.error[0]) == 0.0 and float(table.error[1]) > 0.0
    flat = adaptive_grid(lambda x, t: torch.ones_like(x[..., 0]).unsqueeze(1), theta, 0, 1, 64)
    assert (flat.error < 1e-12).all() and flat.nodes.shape == (2, 64)


def test_per_row_grids_in_the_cdf_helpers():
    """grid_cdf, invert_cdf and eval_cdf with one grid per row give, row by row, what the shared
    grid gives; eval_cdf inverts invert_cdf."""
    gen = torch.Generator().manual_seed(0)
    grids = torch.sort(torch.rand(3, 30, generator=gen, dtype=torch.float64), -1).values
    grids[:, 0], grids[:, -1] = 0.0, 1.0
    dens = torch.rand(3, 30, generator=gen, dtype=torch.float64) + 0.1
    u = torch.rand(3, 200, generator=gen, dtype=torch.float64)
    q, cdf = grid_cdf(grids, dens)
    x = invert_cdf(grids, q, cdf, u)
    torch.testing.assert_close(eval_cdf(grids, q, cdf, x), u, atol=1e-12, rtol=0)
    for r in range(3):
        qr, cr = grid_cdf(grids[r], dens[r : r + 1])
        torch.testing.assert_close(qr, q[r : r + 1])
        torch.testing.assert_close(invert_cdf(grids[r], qr, cr, u[r : r + 1]), x[r : r + 1])


def test_training_sets_store_a_grid_per_theta_and_meet_the_tolerance(peak, proxy):
    """The proxy's training densities on adaptive grids of 128 nodes meet the default tolerance
    (no warning); a peaked theory with too few nodes for a tight tolerance warns in one line and
    says so in the file's meta; stored densities are the theory's at each θ's own nodes."""
    ts = simulate_training(proxy, 64, 2, seed=1, grid_size=128)
    assert ts.grid.shape == (64, 128, 1) and ts.meta["grid"]["above_tol"] == 0
    assert ts.meta["grid"]["warning"] is None and ts.meta["grid"]["error_max"] < 1e-3
    theta = torch.as_tensor(ts.theta[:8])
    nodes = torch.as_tensor(ts.grid[:8, :, 0])
    measured = measured_l1(proxy, nodes, torch.as_tensor(ts.densities[:8]).double(), theta)
    assert (measured < 1e-3).all(), measured
    with pytest.warns(
        GridToleranceWarning, match=r"θ have a grid interpolation error above grid_tol 0.0001"
    ):
        tight = simulate_training(peak, 16, 2, seed=2, grid_size=48, grid_tol=1e-4)
    assert (
        tight.meta["grid"]["above_tol"] > 0
        and "raise the grid size" in tight.meta["grid"]["warning"]
    )
    ref = peak.density(torch.as_tensor(tight.grid), tight.theta).numpy()
    np.testing.assert_allclose(tight.densities, ref, rtol=1e-6)


def test_old_shared_grid_files_still_load_and_train(tmp_path, proxy):
    """A file with one (G, 1) grid for every θ (chebyshev, or written before per-θ grids) loads,
    and its batches carry that grid for every θ with the same trapezoid weights."""
    ts = simulate_training(proxy, 20, 3, seed=3, grid_size=32, grid="chebyshev")
    assert ts.grid.shape == (32, 1) and ts.meta["grid"]["kind"] == "chebyshev"
    path = ts.save(tmp_path / "old.npz")
    dm = TrainingDataModule(path=str(path), batch_size=8, val_fraction=0.2)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["grid"].shape == (8, 32, 1) and batch["weights"].shape == (8, 32)
    assert (batch["grid"] == torch.as_tensor(ts.grid, dtype=torch.float32)).all()
    torch.testing.assert_close(batch["weights"].sum(1), torch.full((8,), 0.9))
    np.testing.assert_array_equal(load_training(path).theta_grids([0, 1])[1], ts.grid)


def batch_of(ts: TrainingSet, n: int) -> dict[str, Tensor]:
    data = _PerTheta(ts, np.arange(n))
    return torch.utils.data.default_collate([data[i] for i in range(n)])


@pytest.mark.parametrize("points", ["grid", "stratified"])
def test_flow_pdf_objective_on_per_theta_grids(peak, points):
    """The pdf objective's points and weights are each θ's own: its quadrature of the normalized
    densities is 1 within 2e-3 (stratified: 1e-2) for every θ and channel (the first θ's grid for all would miss
    the other θ's peaks), and a training step has finite gradients."""
    from surrogates.models import FlowSurrogate

    ts = simulate_training(peak, 8, 2, seed=4, grid_size=256)
    batch = batch_of(ts, 8)
    assert batch["grid"].shape == (8, 256, 1) and batch["weights"].shape == (8, 256)
    torch.manual_seed(0)
    flow = FlowSurrogate(
        theory="peak-test", objective="pdf", pdf_points=points, transforms=1, bins=4, hidden=(8,)
    )
    flow.train()
    x, pdf, w = flow._pdf_points(batch)
    mass = (w.unsqueeze(1) * pdf).sum(-1)  # stratified: one random point per interval
    assert ((mass - 1).abs() < (2e-3 if points == "grid" else 1e-2)).all(), mass
    wrong = (batch["weights"][:1].unsqueeze(1) * batch["pdf"]).sum(-1)  # θ 0's grid for all
    assert ((wrong - 1).abs() > 0.05).any()
    loss = flow.training_loss(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(
        torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None
    )


def test_flow_pdf_objective_is_the_kl_divergence(peak):
    """The pdf objective's shape loss is the KL divergence Σ w p (log p − log q) summed over the
    channels: the cross-entropy from the flow's own log_prob at the same (validation) points less
    the target's entropy, to 1e-4 (the entropy is far from 0 here, so the bare cross-entropy
    fails); and for the shipped flow-zuko at 16 fresh proxy θ it is near 0 (< 1e-3), where its
    cross-entropy is of order 1 and float32 resolves only ~1e-7 of it."""
    from surrogates.models import FlowSurrogate
    from surrogates.zoo import load_surrogate

    ts = simulate_training(peak, 8, 2, seed=4, grid_size=256)
    batch = batch_of(ts, 8)
    torch.manual_seed(0)
    flow = FlowSurrogate(
        theory="peak-test", objective="pdf", pdf_points="stratified", transforms=1, bins=4,
        hidden=(8,),
    ).eval()  # fmt: skip
    x, pdf, w = flow._pdf_points(batch)  # validation: fixed points
    with torch.no_grad():
        shape = float(flow.training_loss(batch)["shape_loss"])
        logq = flow.log_prob(x, batch["theta"]).double()  # (B, C, n)
    p, wd = pdf.double(), w.double().unsqueeze(1)
    cross = float(-(wd * p * logq).sum(-1).mean(0).sum())
    entropy = float(-(wd * p * torch.where(p > 0, p.log(), 0.0)).sum(-1).mean(0).sum())
    assert abs(entropy) > 0.1, entropy
    assert shape > 0 and abs(shape - (cross - entropy)) < 1e-4 * abs(cross), (shape, cross, entropy)

    shipped = load_surrogate("flow-zuko").eval()
    ts = simulate_training(get_theory("proxy"), 16, 2, seed=20261225, grid_size=128)
    with torch.no_grad():
        kl = float(shipped.training_loss(batch_of(ts, 16))["shape_loss"])
    assert abs(kl) < 1e-3, kl


def test_flow_pdf_cells_draws_points_by_mass_without_bias(peak):
    """model.pdf_cells on 1-D grids: a training step takes k points per θ inside its range, most
    of them at the peak; the weighted sums of the densities (1) and of a fixed function against
    them agree with the full quadrature within 4 standard errors over many draws; validation
    keeps every interval; and pdf_cells without stratified points is refused in one line."""
    from surrogates.models import FlowSurrogate

    ts = simulate_training(peak, 8, 2, seed=4, grid_size=256)
    batch = batch_of(ts, 8)
    flow = FlowSurrogate(
        theory="peak-test",
        objective="pdf",
        pdf_points="stratified",
        pdf_cells=32,
        transforms=1,
        bins=4,
        hidden=(8,),
    )
    flow.eval()
    assert flow._pdf_points(batch)[0].shape == (8, 255, 1)  # validation: every interval
    flow.train()
    g, pdf = batch["grid"][..., 0], batch["pdf"]
    f = lambda x: torch.cos(3.0 * x)  # noqa: E731 - a smooth stand-in for log q
    h = g.diff(dim=-1).unsqueeze(1)
    exact = 0.5 * (pdf[..., :-1] * f(g[:, None, :-1]) + pdf[..., 1:] * f(g[:, None, 1:])) * h
    exact = exact.sum(-1)
    torch.manual_seed(1)
    draws, masses, near = [], [], []
    for _ in range(300):
        x, p, w = flow._pdf_points(batch)
        assert x.shape == (8, 32, 1) and p.shape == (8, 2, 32) and w.shape == (8, 32)
        assert ((x[..., 0] >= g[:, :1]) & (x[..., 0] <= g[:, -1:])).all()
        masses.append((w.unsqueeze(1) * p).sum(-1))
        draws.append((w.unsqueeze(1) * p * f(x[..., 0]).unsqueeze(1)).sum(-1))
        near.append((x[..., 0] - torch.as_tensor(ts.theta[:8, None, 0])).abs() < 3 * WIDTH)
    for name, est, ref in (("mass", torch.stack(masses), 1.0), ("∫p f", torch.stack(draws), exact)):
        se = est.std(0) / est.shape[0] ** 0.5
        z = ((est.mean(0) - ref) / se).abs()
        assert (z < 4).all(), f"{name}: {z}"
    share = torch.stack(near).float().mean()  # ±3 widths are 6% of the range [1, 3]
    assert share > 0.12, share  # twice what points spread evenly over x would give
    with pytest.raises(InputError, match="pdf_points: stratified"):
        FlowSurrogate(theory="peak-test", objective="pdf", pdf_points="grid", pdf_cells=32)


def test_resampled_events_and_exact_sampler_follow_the_peaked_density(peak):
    """Events redrawn from each θ's adaptive table (training_events) and the exact sampler's
    events (adaptive table) pass KS tests against the analytic CDF at peaked θ; the same
    resampling from a Chebyshev table of the same size fails (the test has power)."""
    from surrogates.models import VAESurrogate

    theta = torch.tensor([[1.73, 0.4, 2.0], [2.41, 0.3, 1.2]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    exact = InverseCDFSampler(peak).sample(theta, 100_000, generator=gen)
    for b in range(2):
        for c in range(2):
            cdf = lambda x, b=b, c=c: peak.cdf(x, theta[b].numpy(), c)  # noqa: E731
            p = stats.kstest(exact[c][b, :, 0].numpy(), cdf).pvalue
            assert p > P_MIN, f"exact sampler θ {b} channel {c}: KS p {p:.2g}"
    model = VAESurrogate(theory="peak-test", hidden=(8,)).train()
    table = adaptive_grid(peak._density, theta, 1.0, 3.0, 128)
    ts = TrainingSet(
        theta.numpy(),
        np.full((2, 2, 1, 1), 2.0),
        table.nodes.unsqueeze(-1).numpy(),
        table.values.float().numpy(),
        peak.norms(theta).numpy(),
        {},
    )
    torch.manual_seed(0)
    events = model.training_events(batch_of(ts, 2), 200_000)
    cheb = TrainingSet(ts.theta, ts.events, *chebyshev_parts(peak, theta, 128), ts.norms, ts.meta)
    cheb_events = model.training_events(batch_of(cheb, 2), 200_000)
    for b in range(2):
        cdf = lambda x, b=b: peak.cdf(x, theta[b].numpy(), 0)  # noqa: E731
        assert stats.kstest(events[b, 0, :, 0].numpy(), cdf).pvalue > P_MIN
        assert stats.kstest(cheb_events[b, 0, :, 0].numpy(), cdf).pvalue < P_MIN


def chebyshev_parts(theory: Theory, theta: Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    grid, dens = chebyshev_table(theory, theta, n)
    return grid[0].unsqueeze(-1).numpy(), dens.float().numpy()


def test_gan_pdf_target_and_vaim_read_per_theta_grids(peak):
    """GAN mmd_target: pdf is ≈ 0 for events drawn from each θ's own table; VAIM interpolates
    each θ's table onto its own grid (within 1% in L1 of the exact density there)."""
    from surrogates.models import GANSurrogate, VAIMSurrogate

    ts = simulate_training(peak, 64, 2, seed=7, grid_size=256)
    batch = batch_of(ts, 64)
    gan = GANSurrogate(theory="peak-test", hidden=(8,), critic_hidden=(8,), mmd_target="pdf")
    grid = batch["grid"][..., 0]
    torch.manual_seed(1)
    for c in range(2):
        q, cdf = grid_cdf(grid, batch["pdf"][:, c])
        x = invert_cdf(grid, q, cdf, torch.rand(64, 64, dtype=q.dtype))
        d = gan._shape_distance(batch, c, None, gan.to_unit(x.unsqueeze(-1))[0])
        assert abs(float(d.mean())) < 4 * float(d.std()) / 64**0.5
    vaim = VAIMSurrogate(theory="peak-test", grid_size=512, hidden=(8,))
    pdf = vaim.training_pdf(batch).double()
    own = vaim.grid.double().expand(64, -1)
    theta = torch.as_tensor(ts.theta)
    exact = peak.density(own.unsqueeze(-1), theta) / peak.norms(theta).unsqueeze(-1)
    l1 = torch.trapezoid((pdf - exact).abs(), own.unsqueeze(1))
    assert (l1 < 0.01).all(), l1.max()
    assert torch.isfinite(vaim.training_loss(batch)["loss"])


def test_grid_options_are_checked_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "t.npz")
    base = ["training", "--n-params", "4", "--events-per-param", "2", "--out", out]
    for extra, message in [
        (["--grid-tol", "0"], "--grid-tol must be > 0"),
        (["--grid-tol", "x"], "--grid-tol must be a number"),
        (["--grid", "fine"], "invalid choice"),
        (["--theory", "dis", "--grid", "adaptive"], "is for 1-D events"),
    ]:
        status, _, err = run_cli(simulate.main, base + extra, capsys)
        assert status != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "t.npz").exists()
    status, out_text, _ = run_cli(simulate.main, base + ["--grid-size", "64"], capsys)
    assert status == 0 and "grid: adaptive, 64 nodes per θ" in out_text
    with pytest.raises(InputError, match="unknown data.grid 'fine'"):
        TrainingDataModule(grid="fine")
    with pytest.raises(InputError, match="data.grid_tol must be > 0"):
        TrainingDataModule(grid_tol=-1.0)
    with pytest.raises(InputError, match="data.grid 'chebyshev' is for 1-D events"):
        TrainingDataModule(theory="dis", grid="chebyshev").setup()
    assert get_theory("proxy").event_dim == 1


def test_training_grids_stay_distinct_in_float32():
    """A density singular just past an edge, (1 + 1e-12 − x)^-0.9 on [0, 1], on 8192 nodes: the
    training set's adaptive grids (read by the surrogates in float32) keep every node distinct
    there (without the float32 floor on the interval width they would not), and the batch's
    weights and resampled events are finite."""
    from surrogates.models import VAESurrogate
    from surrogates.theory import NumpyTheory

    spike = NumpyTheory(
        lambda x, t: np.stack([t[0] * (1 + 1e-12 - x) ** -0.9, np.ones_like(x)]),
        "spike-test",
        ["k"],
        ["a", "b"],
        [0.5],
        [2.0],
        [0.0],
        [1.0],
    )
    register_theory(spike)
    theta = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    raw = adaptive_grid(spike._density, theta, 0.0, 1.0, 8192)
    assert (raw.nodes.float().diff(dim=-1) <= 0).any()  # the unguarded grid collides in float32
    ts = simulate_training(spike, 2, 2, seed=8, grid_size=8192, grid_tol=1.0)
    assert (np.diff(ts.grid[..., 0].astype(np.float32), axis=-1) > 0).all()
    batch = batch_of(ts, 2)
    assert (batch["weights"] > 0).all()
    model = VAESurrogate(theory="spike-test", hidden=(8,)).train()
    assert torch.isfinite(model.training_events(batch, 1000)).all()
