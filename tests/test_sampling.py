"""Samplers against the exact distribution: KS tests, gradients of event statistics, edge safety."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from surrogates.errors import InputError
from surrogates.sampling import InverseCDFSampler, MetropolisSampler
from surrogates.theory import NumpyTheory, get_theory
from tests.conftest import BOX_POINTS

P_MIN = 1e-3  # per-test KS threshold; ten of them together still fail by chance < 1% of the time


def quad_cdf(theta, channel, n_nodes=1000):
    """The exact normalized CDF of one channel, tabulated with scipy.integrate.quad per segment."""
    n_u, a_u, b_u, n_d, a_d, b_d = theta
    wu, wd = (4.0, 1.0) if channel == 0 else (1.0, 4.0)

    def sigma(x: float) -> float:
        return wu * n_u * x**a_u * (1 - x) ** b_u + wd * n_d * x**a_d * (1 - x) ** b_d

    edges = np.linspace(0.1, 1.0, n_nodes + 1)
    pieces = [
        integrate.quad(sigma, a, b, epsabs=0, epsrel=1e-12)[0]
        for a, b in zip(edges[:-1], edges[1:])
    ]
    table = np.concatenate([[0.0], np.cumsum(pieces)])
    return lambda x: np.interp(x, edges, table / table[-1])


@pytest.mark.parametrize("point", range(len(BOX_POINTS)))
def test_inverse_cdf_events_pass_ks_against_quad(proxy, point):
    theta = BOX_POINTS[point]
    s1, s2 = InverseCDFSampler(proxy).sample(
        theta, 100_000, generator=torch.Generator().manual_seed(point)
    )
    for c, ev in enumerate((s1, s2)):
        p = stats.kstest(ev[0, :, 0].numpy(), quad_cdf(theta, c)).pvalue
        assert p > P_MIN, f"channel {c} at θ={theta}: KS p-value {p:.2g}"


def test_inverse_cdf_detects_a_wrong_distribution(proxy):
    """The KS test above has power: events at one θ fail against the CDF of a nearby θ."""
    theta = np.array(BOX_POINTS[0])
    s1, _ = InverseCDFSampler(proxy).sample(
        theta, 100_000, generator=torch.Generator().manual_seed(9)
    )
    other = theta.copy()
    other[2] *= 1.1  # b_u shifted by 10%
    assert stats.kstest(s1[0, :, 0].numpy(), quad_cdf(other, 0)).pvalue < 1e-6


def exact_mean_x(theta, channel):
    n_u, a_u, b_u, n_d, a_d, b_d = theta
    wu, wd = (4.0, 1.0) if channel == 0 else (1.0, 4.0)

    def sigma(x: float) -> float:
        return wu * n_u * x**a_u * (1 - x) ** b_u + wd * n_d * x**a_d * (1 - x) ** b_d

    num = integrate.quad(lambda x: x * sigma(x), 0.1, 1.0, epsabs=0, epsrel=1e-13, limit=200)[0]
    den = integrate.quad(sigma, 0.1, 1.0, epsabs=0, epsrel=1e-13, limit=200)[0]
    return num / den


@pytest.mark.parametrize("point", [0, 3, 4])
def test_gradient_of_mean_x_matches_quadrature(proxy, point):
    """d E[x]/dθ from the sampler's reparameterized events vs finite differences of quad."""
    theta0 = torch.tensor(BOX_POINTS[point], dtype=torch.float64)
    replicas, n = 16, 25_000
    theta = theta0.expand(replicas, -1).clone().requires_grad_()
    events = InverseCDFSampler(proxy).sample(
        theta, n, generator=torch.Generator().manual_seed(point)
    )
    for c, ev in enumerate(events):
        grads = torch.autograd.grad(ev.mean(dim=(1, 2)).sum(), theta, retain_graph=True)[0].numpy()
        est, se = grads.mean(0), grads.std(0, ddof=1) / math.sqrt(replicas)
        for j in range(6):
            h = 1e-4 * max(1.0, abs(BOX_POINTS[point][j]))
            up, down = np.array(BOX_POINTS[point]), np.array(BOX_POINTS[point])
            up[j] += h
            down[j] -= h
            exact = (exact_mean_x(up, c) - exact_mean_x(down, c)) / (2 * h)
            assert abs(est[j] - exact) < 4 * se[j] + 1e-5, (
                f"channel {c}, d<x>/d{proxy.param_names[j]}: sampler {est[j]:.5g} ± {se[j]:.2g}, "
                f"quadrature {exact:.5g}"
            )


def test_no_nan_anywhere_in_the_box(proxy):
    """Box corners (N = 0, a = ±1, b = 0 and 5), u at 0 and 1, flat and vanishing densities."""
    corners = torch.cartesian_prod(
        *[torch.stack([lo, hi]) for lo, hi in zip(proxy.prior_low, proxy.prior_high)]
    )
    theta = torch.cat([corners, torch.zeros(1, 6, dtype=torch.float64)]).requires_grad_()
    u = torch.tensor([0.0, 1e-300, 1e-12, 0.5, 1 - 1e-12, 1 - 1e-16, 1.0], dtype=torch.float64)
    u = u.expand(theta.shape[0], -1)
    events = InverseCDFSampler(proxy).sample(theta, 7, u=[u, u])
    random = InverseCDFSampler(proxy).sample(theta, 500)
    total = sum(e.sum() for e in events + random)
    total.backward()
    for e in events + random:
        assert torch.isfinite(e).all()
        assert (e >= 0.1).all() and (e <= 1.0).all()
    assert torch.isfinite(theta.grad).all()
    assert torch.allclose(events[0][:, 0, 0], torch.tensor(0.1, dtype=torch.float64))
    assert torch.allclose(events[0][:, -1, 0], torch.tensor(1.0, dtype=torch.float64))


def test_vanishing_density_falls_back_to_uniform(proxy):
    theta = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    s1, _ = InverseCDFSampler(proxy).sample(
        theta, 20_000, generator=torch.Generator().manual_seed(1)
    )
    assert stats.kstest(s1[0, :, 0].numpy(), stats.uniform(0.1, 0.9).cdf).pvalue > P_MIN


def test_log_prob_is_normalized(proxy):
    sampler = InverseCDFSampler(proxy)
    nodes, weights = proxy.quadrature()
    lp = sampler.log_prob(nodes.unsqueeze(0), torch.tensor(BOX_POINTS, dtype=torch.float64))
    np.testing.assert_allclose((lp.exp() * weights).sum(-1).numpy(), 1.0, rtol=1e-9)


def test_inverse_cdf_refuses_multidimensional_theories():
    two_d = NumpyTheory(
        lambda x, t: np.ones((1, len(x))),
        "plane",
        ["c"],
        ["s"],
        [0.0],
        [1.0],
        [0.0, 0.0],
        [1.0, 1.0],
        event_dim=2,
    )
    with pytest.raises(InputError, match="MetropolisSampler"):
        InverseCDFSampler(two_d)


@pytest.mark.parametrize("theory_name", ["proxy", "proxy-numpy"])
def test_metropolis_matches_exact_distribution(theory_name):
    theory = get_theory(theory_name)
    theta = torch.tensor([BOX_POINTS[0], BOX_POINTS[3]], dtype=torch.float64)
    events = MetropolisSampler(theory).sample(
        theta, 20_000, generator=torch.Generator().manual_seed(2)
    )
    for b in range(2):
        for c, ev in enumerate(events):
            assert ev.shape == (2, 20_000, 1)
            p = stats.kstest(ev[b, :, 0].numpy(), quad_cdf(BOX_POINTS[3 * b], c)).pvalue
            assert p > P_MIN, f"MCMC channel {c} at θ={BOX_POINTS[3 * b]}: KS p-value {p:.2g}"


def test_metropolis_two_dimensional():
    """A 2-D product density x1^2 · 1 on the unit square: marginal of x1 is Beta(3, 1)."""
    square = NumpyTheory(
        lambda x, t: (t[0] * x[:, 0] ** 2)[None],
        "square",
        ["k"],
        ["s"],
        [0.5],
        [2.0],
        [0.0, 0.0],
        [1.0, 1.0],
        event_dim=2,
    )
    (ev,) = MetropolisSampler(square).sample(
        [1.0], 20_000, generator=torch.Generator().manual_seed(3)
    )
    assert stats.kstest(ev[0, :, 0].numpy(), stats.beta(3, 1).cdf).pvalue > P_MIN
    assert stats.kstest(ev[0, :, 1].numpy(), stats.uniform().cdf).pvalue > P_MIN


def test_eval_cdf_inverts_invert_cdf_and_its_slope_is_the_density():
    """eval_cdf(invert_cdf(u)) = u to rounding, and dF/dx is the interpolated density."""
    from surrogates.sampling import eval_cdf, grid_cdf, invert_cdf

    gen = torch.Generator().manual_seed(0)
    grid = torch.linspace(0.1, 1.0, 40, dtype=torch.float64)
    q, cdf = grid_cdf(grid, torch.rand(3, 40, generator=gen, dtype=torch.float64) + 0.05)
    u = torch.rand(3, 500, generator=gen, dtype=torch.float64)
    x = invert_cdf(grid, q, cdf, u).requires_grad_(True)
    f = eval_cdf(grid, q, cdf, x)
    assert torch.allclose(f, u, atol=1e-12)
    (slope,) = torch.autograd.grad(f.sum(), x)
    i = (torch.searchsorted(grid, x.detach(), right=True) - 1).clamp(0, 38)
    t = (x.detach() - grid[i]) / grid.diff()[i]
    dens = q.gather(1, i) * (1 - t) + q.gather(1, i + 1) * t
    assert torch.allclose(slope, dens, rtol=1e-9)


def test_kept_nodes_follow_a_drifting_batch_and_are_replaced_after_a_jump(proxy):
    """``reuse_grid``: while θ drifts by GAN-sized steps the nodes are kept and the events match
    fresh tables' (common random numbers) to the tables' own accuracy; rows that jump across the
    box get the very nodes a fresh table would place."""
    gen = torch.Generator().manual_seed(4)
    lo, hi = proxy.prior_low, proxy.prior_high
    span = hi - lo
    theta = lo + span * (0.1 + 0.8 * torch.rand(8, 6, generator=gen, dtype=lo.dtype))
    fresh, kept = InverseCDFSampler(proxy), InverseCDFSampler(proxy).keeping_nodes()
    for _ in range(10):
        theta = theta + 0.002 * span * torch.randn(theta.shape, generator=gen, dtype=lo.dtype)
        u = [torch.rand(8, 200, generator=gen, dtype=lo.dtype) for _ in proxy.channels]
        a, b = fresh.sample(theta, 200, u=u), kept.sample(theta, 200, u=u)
        for x, y in zip(a, b, strict=True):
            assert (x - y).abs().max() < 1e-5
        # each kept row's error stays within twice that of its own fresh table, and small
        assert (kept.last_grid_error <= 2 * fresh.last_grid_error.clamp(min=1e-12)).all()
    assert kept.reused_rows == 9 * 8  # every row kept its nodes after the first call
    # the gradients through kept nodes (densities evaluated once, with gradients) are a fresh
    # table's, to the tables' accuracy
    grads = []
    for sampler in (fresh, kept):
        t = theta.clone().requires_grad_()
        u = [torch.rand(8, 200, generator=torch.Generator().manual_seed(9), dtype=lo.dtype)
             for _ in proxy.channels]  # fmt: skip
        sum(x.sum() for x in sampler.sample(t, 200, u=u)).backward()
        grads.append(t.grad)
    assert torch.isfinite(grads[1]).all() and grads[1].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-3)
    assert kept.reused_rows == 10 * 8
    jumped = theta.clone()
    jumped[:4] = lo + span * (0.1 + 0.8 * torch.rand(4, 6, generator=gen, dtype=lo.dtype))
    before = kept._kept[0].clone()
    u = [torch.rand(8, 200, generator=gen, dtype=lo.dtype) for _ in proxy.channels]
    for x, y in zip(fresh.sample(jumped, 200, u=u), kept.sample(jumped, 200, u=u), strict=True):
        assert (x - y).abs().max() < 1e-5
    grid_kept, grid_fresh = kept.cdf_table(jumped)[0], fresh.cdf_table(jumped)[0]
    renewed = (grid_kept != before).any(1)
    assert not renewed[4:].any() and renewed[:4].any()  # (a jumped row may still fit its nodes)
    torch.testing.assert_close(grid_kept[renewed], grid_fresh[renewed])
    assert (kept.last_grid_error <= kept.grid_tol).all()
    assert kept.keeping_nodes()._kept is None  # a new fit starts with nothing kept


def test_a_fit_gets_its_own_sampler_with_nothing_kept(proxy):
    """Two GANs built on one exact source (a study's worker reuses it) do not share nodes."""
    from inverse.config import FitConfig
    from inverse.report import make_yardstick
    from inverse.training import build_model
    from surrogates.data import CASES, simulate_observed

    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=1)
    source = InverseCDFSampler(proxy)
    cfg = FitConfig(steps=10, replicas=3, compare_mle=False)
    models = [build_model(proxy, data, source, cfg, make_yardstick(proxy, data, source, None), None)
              for _ in range(2)]  # fmt: skip
    assert models[0].source is not models[1].source
    assert all(m.source.reuse_grid and m.source._kept is None for m in models)
    assert not source.reuse_grid
    fixed = InverseCDFSampler(proxy, grid="chebyshev")
    assert fixed.keeping_nodes() is fixed  # a fixed grid has nothing to keep
