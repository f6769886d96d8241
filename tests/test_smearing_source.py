"""The smearing detector as the outer GAN's exact source (`SmearingDetector.apply`): weighted
reconstructed events with the folded density, and a pathwise gradient with nothing left out at
the range's ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from surrogates.detector import SmearingDetector
from surrogates.theory import ProxyTheory

WIDTH = 0.2  # true events uniform on [μ, μ + WIDTH]: near the low end, where events leave


def exact(det: SmearingDetector, mu: float) -> float:
    """E[w x_rec²] / E[w] for true x uniform on [μ, μ + WIDTH], by quadrature: ε(x) times the
    Gaussian of width r restricted to the range, integrated over x_rec on a fine grid."""
    lo, hi = 0.1, 1.0
    x, wx = np.polynomial.legendre.leggauss(400)
    x = mu + (x + 1) / 2 * WIDTH
    wx = wx / 2
    y = np.linspace(lo, hi, 20001)
    gauss = np.exp(-0.5 * ((y[None] - x[:, None]) / det.r) ** 2) / (det.r * np.sqrt(2 * np.pi))
    eff = det.eps0 + det.slope * (x - lo)
    num = (wx * eff * np.trapezoid(gauss * y[None] ** 2, y, axis=1)).sum()
    acc = ndtr((hi - x) / det.r) - ndtr((lo - x) / det.r)
    return num / (wx * eff * acc).sum()


def mean_and_gradient(value, mu0: float, seeds: int = 20) -> tuple[float, float, float, float]:  # noqa: ANN001
    """``value(μ, seed)`` (a differentiable estimate) at μ0 over ``seeds`` seeds: its mean and
    standard error, and those of its derivative in μ."""
    values, grads = [], []
    for seed in range(seeds):
        mu = torch.tensor(mu0, dtype=torch.float64, requires_grad=True)
        v = value(mu, seed)
        (grad,) = torch.autograd.grad(v, mu)
        values.append(float(v.detach()))
        grads.append(float(grad))
    values, grads = np.array(values), np.array(grads)
    root = np.sqrt(seeds)
    return values.mean(), values.std(ddof=1) / root, grads.mean(), grads.std(ddof=1) / root


def weighted(det: SmearingDetector, mu: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    v = torch.rand(n, 1, dtype=torch.float64, generator=gen)
    rec, w = det.apply([mu + WIDTH * v], generator=gen)
    return (w[0] * rec[0][:, 0] ** 2).sum() / w[0].sum()


@pytest.mark.parametrize("mu0", [0.1 + 0.004, 1.0 - WIDTH - 0.004])  # near the low, the high end
def test_weighted_events_have_the_folded_mean_and_its_gradient_in_the_location(mu0: float) -> None:
    det = SmearingDetector(ProxyTheory())
    h = 1e-4
    want = exact(det, mu0)
    want_grad = (exact(det, mu0 + h) - exact(det, mu0 - h)) / (2 * h)
    value, err, grad, err_grad = mean_and_gradient(
        lambda mu, seed: weighted(det, mu, 100_000, seed), mu0
    )
    assert abs(value - want) < 4 * err + 1e-9
    # an indicator of x + r ξ inside the range instead of the truncated Gaussian leaves out the
    # events crossing the low end as μ moves: its gradient misses by many of these errors
    assert abs(grad - want_grad) < 4 * err_grad, (grad, want_grad, err_grad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reconstructed_events_stay_inside_the_range_and_weights_are_acceptances(dtype) -> None:  # noqa: ANN001
    det = SmearingDetector(ProxyTheory())
    x = torch.tensor([0.1, 0.1005, 0.5, 0.999999, 1.0], dtype=dtype).repeat(2000).view(-1, 1)
    rec, w = det.apply([x], generator=torch.Generator().manual_seed(0))
    assert rec[0].dtype == dtype and det.in_box(rec[0]).all()  # inside [0.1, 1), never on 1
    torch.testing.assert_close(w[0], det.acceptance(x))


def test_the_dis_detector_source_has_the_folded_mean_and_gradient_at_the_low_x_edge() -> None:
    """The same for `DISDetector.apply` (relative widths r · x per axis, a 2-D box): true events
    at x uniform on [μ, μ + 8 r μ] next to the box's low-x edge, Q² fixed; E[w x_rec²]/E[w] and
    its derivative in μ against quadrature (only the x axis moves the mean; Q²'s acceptance is a
    common factor)."""
    from surrogates.detector import DISDetector
    from surrogates.theory import get_theory

    det = DISDetector(get_theory("dis"))
    lo = float(det.theory.x_low[0])
    rx, q2 = float(det.r[0]), 0.9
    mu0, h = lo * 1.01, lo * 1e-4

    def truth(mu: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = mu + 8 * rx * lo * v
        return torch.stack([x, torch.full_like(x, q2)], -1)

    def quadrature(mu: float) -> float:
        v, wv = np.polynomial.legendre.leggauss(400)
        v, wv = (v + 1) / 2, wv / 2
        nodes = truth(torch.tensor(mu, dtype=torch.float64), torch.as_tensor(v))
        eff = det.efficiency(nodes).numpy()
        x = nodes[:, 0].numpy()
        s = rx * x
        y = np.linspace(lo, lo + 0.05, 40001)
        gauss = np.exp(-0.5 * ((y[None] - x[:, None]) / s[:, None]) ** 2) / (
            s[:, None] * np.sqrt(2 * np.pi)
        )
        acc = ndtr((float(det.theory.x_high[0]) - x) / s) - ndtr((lo - x) / s)
        num = (wv * eff * np.trapezoid(gauss * y[None] ** 2, y, axis=1)).sum()
        return num / (wv * eff * acc).sum()

    want = quadrature(mu0)
    want_grad = (quadrature(mu0 + h) - quadrature(mu0 - h)) / (2 * h)
    inside = []

    def estimate(mu: torch.Tensor, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        v = torch.rand(50_000, dtype=torch.float64, generator=gen)
        rec, w = det.apply([truth(mu, v)], generator=gen)
        inside.append(bool(det.in_box(rec[0]).all()))
        return (w[0] * rec[0][:, 0] ** 2).sum() / w[0].sum()

    value, err, grad, err_grad = mean_and_gradient(estimate, mu0)
    assert abs(value - want) < 4 * err + 1e-12
    assert abs(grad - want_grad) < 4 * err_grad, (grad, want_grad, err_grad)
    assert all(inside)
