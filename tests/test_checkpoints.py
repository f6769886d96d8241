"""The shipped checkpoints: they load as EventSources and their gradients follow the exact theory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from surrogates.sampling import InverseCDFSampler
from surrogates.zoo import CHECKPOINTS, list_checkpoints, load_surrogate

SHIPPED = list_checkpoints(CHECKPOINTS, theory="proxy")  # the DIS flow: tests/test_dis.py
HELD_OUT = [[1.5, 0.2, 2.0, 1.8, -0.3, 2.5], [2.5, -0.7, 3.5, 0.8, 0.1, 3.0]]


def test_checkpoints_are_shipped_small_with_cards():
    assert SHIPPED, "checkpoints/ must ship trained surrogates"
    for name in SHIPPED:
        card = json.loads((CHECKPOINTS / f"{name}.json").read_text())
        assert card["theory"]["theory"] == "proxy" and card["family"] in (
            "flow",
            "gan",
            "vae",
            "vaim",
        )
        assert (CHECKPOINTS / f"{name}.ckpt").stat().st_size <= 5 * 2**20
        for key in ("theta_shift_crb", "c2st_auc", "norm_error", "w1"):
            assert key in card["metrics"], (name, key)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_cards_meet_the_fidelity_targets(name):
    """Issue 3's targets, as measured at the held-out θ when the checkpoint was made: every flow
    |θ shift| ≤ 3 σ_CRB(A), GAN/VAE/VAIM ≤ 10, norm error ≤ 1%, at ≥ 5 held-out θ."""
    card = json.loads((CHECKPOINTS / f"{name}.json").read_text())
    metrics = card["metrics"]
    assert len(metrics["theta_shift_crb_all"]) >= 5, name
    target = 3.0 if card["family"] == "flow" else 10.0
    assert max(metrics["theta_shift_crb"]) <= target, (name, metrics["theta_shift_crb"])
    assert metrics["norm_error"] <= 0.01, (name, metrics["norm_error"])


def mean_x_gradient(
    source, theta: list[float], replicas: int = 8, n: int = 10_000
) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """d<x>/dθ of channel σ1 per replica (common random numbers within a replica): mean, SE."""
    th = torch.tensor([theta] * replicas, dtype=torch.float64, requires_grad=True)
    events = source.sample(th, n, generator=torch.Generator().manual_seed(5))
    (grad,) = torch.autograd.grad(events[0].mean(dim=(1, 2)).sum(), th)
    g = grad.numpy()
    return g.mean(0), g.std(0, ddof=1) / np.sqrt(replicas)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("theta", HELD_OUT)
def test_surrogate_gradient_follows_the_exact_one(proxy, name, theta):
    """Sign equal and size within a factor 2 where the exact |d<x>/dθ| is at least 0.02."""
    model = load_surrogate(name, theory="proxy")
    model.double()
    exact, exact_se = mean_x_gradient(InverseCDFSampler(proxy), theta)
    got, got_se = mean_x_gradient(model, theta)
    for j, pname in enumerate(proxy.param_names):
        if abs(exact[j]) < 0.02:
            continue
        assert np.sign(got[j]) == np.sign(exact[j]), (
            f"{name} d<x>/d{pname}: {got[j]:.3g} vs exact {exact[j]:.3g}"
        )
        assert 0.5 < got[j] / exact[j] < 2.0, (
            f"{name} d<x>/d{pname}: {got[j]:.3g} vs exact {exact[j]:.3g}"
        )


@pytest.mark.skipif("vaim" not in SHIPPED, reason="needs the shipped VAIM")
def test_vaim_inverts_exact_proxy_densities(proxy):
    """VAIM's backward mapper on exact normalized densities at 48 θ it never saw (a seeded
    uniform draw inset 5% from the faces), each read from 500 samples' median.

    Normalized densities fix the shapes and only the ratio N_u/N_d (a common scale of N_u and N_d
    cancels): N_u and N_d are not identified by this observable (the norms fix them), so only
    the exponents are checked, over the set: an inverse that ignored the densities would be off
    by about a quarter of the box width (the prior's spread), this one by a few percent.
    """
    model = load_surrogate("vaim", theory="proxy")
    grid = model.grid.double().view(1, -1, 1)
    low, width = proxy.prior_low.double(), (proxy.prior_high - proxy.prior_low).double()
    u = torch.rand(48, 6, generator=torch.Generator().manual_seed(20261207), dtype=torch.float64)
    shapes = [1, 2, 4, 5]
    off = []
    for theta in low + (0.05 + 0.9 * u) * width:
        with torch.no_grad():
            pdf = proxy.density(grid, theta) / proxy.norms(theta).unsqueeze(-1)
            samples = model.invert(pdf.float(), 500, torch.Generator().manual_seed(0))[0].double()
        off.append(((samples.median(0).values - theta).abs() / width)[shapes].numpy())
    off = np.array(off)
    median, p90 = np.median(off, 0), np.percentile(off, 90, 0)
    assert np.all(median < 0.04), f"exponents' median offset {median.round(3)} of the box width"
    assert np.all(p90 < 0.15), f"exponents' 90th-percentile offset {p90.round(3)} of the box width"
