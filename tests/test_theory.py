"""Module-2 theories: the proxy exactly as DESIGN.md states it, the NumPy wrapper, the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surrogates.errors import InputError, ParameterError
from surrogates.theory import NoGradientError, NumpyTheory, get_theory
from tests.conftest import BOX_POINTS


def test_proxy_matches_design(proxy):
    assert proxy.param_names == ("N_u", "a_u", "b_u", "N_d", "a_d", "b_d")
    assert proxy.truth.tolist() == [2.1875, -0.5, 3.0, 1.09375, -0.5, 4.0]
    assert proxy.prior_low.tolist() == [0, -1, 0, 0, -1, 0]
    assert proxy.prior_high.tolist() == [3, 1, 5, 3, 1, 5]
    assert (proxy.x_low.item(), proxy.x_high.item()) == (0.1, 1.0)
    assert proxy.dtype == torch.float64
    from scipy.special import beta

    assert proxy.truth[0].item() == pytest.approx(2 / beta(0.5, 4), rel=1e-12)
    assert proxy.truth[3].item() == pytest.approx(1 / beta(0.5, 4), rel=1e-12)


def test_proxy_density_is_4u_plus_d(proxy):
    theta = torch.tensor(BOX_POINTS, dtype=torch.float64)
    x = torch.rand(len(BOX_POINTS), 50, 1, dtype=torch.float64) * 0.9 + 0.1
    sig = proxy.density(x, theta)
    assert sig.shape == (len(BOX_POINTS), 2, 50)
    for b, th in enumerate(BOX_POINTS):
        n_u, a_u, b_u, n_d, a_d, b_d = th
        xx = x[b, :, 0].numpy()
        u = n_u * xx**a_u * (1 - xx) ** b_u
        d = n_d * xx**a_d * (1 - xx) ** b_d
        np.testing.assert_allclose(sig[b, 0].numpy(), 4 * u + d, rtol=1e-12)
        np.testing.assert_allclose(sig[b, 1].numpy(), 4 * d + u, rtol=1e-12)


def test_norms_match_incomplete_beta_across_box(proxy):
    theta = proxy.sample_prior(500, torch.Generator().manual_seed(3))
    theta = torch.cat([theta, torch.tensor(BOX_POINTS, dtype=torch.float64)])
    quad = proxy.norms(theta).numpy()
    exact = proxy.exact_norms(theta.numpy())
    np.testing.assert_allclose(quad, exact, rtol=1e-9)


def test_norm_gradient_matches_finite_differences(proxy):
    theta = torch.tensor(BOX_POINTS[3], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(proxy.norms(theta)[0, 0], theta)
    h = 1e-6
    for j in range(6):
        e = np.zeros(6)
        e[j] = h
        fd = (
            proxy.exact_norms(theta.detach().numpy() + e)
            - proxy.exact_norms(theta.detach().numpy() - e)
        )[0, 0] / (2 * h)
        assert grad[j].item() == pytest.approx(fd, rel=1e-6, abs=1e-8), proxy.param_names[j]


def test_density_finite_with_gradients_at_box_corners(proxy):
    corners = torch.cartesian_prod(
        *[torch.stack([lo, hi]) for lo, hi in zip(proxy.prior_low, proxy.prior_high)]
    )
    theta = corners.clone().requires_grad_()
    x = torch.tensor([0.1, 0.5, 1.0 - 1e-16, 1.0], dtype=torch.float64).view(1, -1, 1)
    sig = proxy.density(x, theta)
    sig.sum().backward()
    assert torch.isfinite(sig).all() and torch.isfinite(theta.grad).all()


def test_numpy_wrapper_reproduces_proxy_without_gradients(proxy):
    blackbox = get_theory("proxy-numpy")
    assert not blackbox.differentiable and proxy.differentiable
    theta = torch.tensor(BOX_POINTS, dtype=torch.float64)
    x = torch.linspace(0.1, 1.0, 77, dtype=torch.float64).view(1, -1, 1)
    np.testing.assert_allclose(
        blackbox.density(x, theta), proxy.density(x, theta), rtol=1e-12, atol=1e-50
    )
    np.testing.assert_allclose(blackbox.norms(theta), proxy.norms(theta), rtol=1e-10)
    with pytest.raises(NoGradientError, match="no gradients"):
        blackbox.norms(theta.clone().requires_grad_())


def test_numpy_wrapper_vectorized_and_shape_check():
    def vec(x, theta):  # x (B, n, 1), θ (B, 1)
        return np.stack([theta[:, :1] * np.ones_like(x[..., 0])], axis=1)

    flat = NumpyTheory(vec, "flat", ["c"], ["s"], [0.0], [2.0], [0.0], [1.0], vectorized=True)
    assert flat.norms([[1.5], [0.5]]).flatten().tolist() == pytest.approx([1.5, 0.5], rel=1e-12)
    broken = NumpyTheory(
        lambda x, t: np.ones(3), "broken", ["c"], ["s"], [0.0], [2.0], [0.0], [1.0]
    )
    with pytest.raises(InputError, match="returned shape"):
        broken.norms([1.0])


@pytest.mark.parametrize(
    "theta, message",
    [
        ([1.0, 2.0], "expects"),
        ([float("nan"), 0, 1, 1, 0, 1], "NaN"),
        ([2.0, -0.5, 3.0, 1.0, -0.5, 5.5], "b_d = 5.5 is outside the prior box"),
        ([-0.1, -0.5, 3.0, 1.0, -0.5, 4.0], "N_u"),
    ],
)
def test_bad_theta_is_named(proxy, theta, message):
    with pytest.raises(ParameterError, match=message):
        proxy.norms(theta)


def test_registry_fails_loudly():
    with pytest.raises(InputError, match="unknown theory 'protn'; choose one of: ") as err:
        get_theory("protn")  # the list also holds what earlier tests registered in this process
    assert all(name in str(err.value) for name in ("dis", "peak", "proxy", "proxy-smeared"))
    assert get_theory("surrogates.theory.proxy:ProxyTheory").name == "proxy"
    with pytest.raises(InputError, match="cannot load"):
        get_theory("surrogates.theory.proxy:Nope")
