"""Every EventSource satisfies the protocol and declares what it can do (surrogates/types.py)."""

from __future__ import annotations

import pytest
import torch

from surrogates.ensemble import Ensemble
from surrogates.errors import InputError
from surrogates.models import get_family
from surrogates.sampling import InverseCDFSampler, InverseCDFSampler2D, MetropolisSampler
from surrogates.theory import ProxyTheory, get_theory
from surrogates.types import DensitySource, EventSource, require_density


def _tiny(family: str) -> torch.nn.Module:
    return get_family(family)(theory="proxy", hidden=[8], norm_hidden=[8])


SOURCES = {
    "exact 1-D": (lambda: InverseCDFSampler(ProxyTheory()), True, True),
    "exact 2-D": (lambda: InverseCDFSampler2D(get_theory("dis")), True, True),
    "metropolis": (lambda: MetropolisSampler(ProxyTheory(), burn_in=10, steps=2), True, False),
    "flow": (lambda: _tiny("flow"), False, True),
    "vaim": (lambda: get_family("vaim")(theory="proxy"), False, True),
    "gan": (lambda: _tiny("gan"), False, False),
    "vae": (lambda: _tiny("vae"), False, False),
    "ensemble of flows": (lambda: Ensemble([_tiny("flow"), _tiny("flow")]), False, True),
    "ensemble with a GAN": (lambda: Ensemble([_tiny("flow"), _tiny("gan")]), False, False),
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_source_satisfies_the_protocol_and_declares_its_capabilities(name: str) -> None:
    make, exact, density = SOURCES[name]
    source = make()
    assert isinstance(source, EventSource), f"{name} does not satisfy EventSource"
    assert source.is_exact is exact and source.has_density is density, name
    assert isinstance(source, DensitySource) or not density, name
    assert source.n_members == (2 if name.startswith("ensemble") else 1)
    theory = ProxyTheory() if "2-D" not in name else get_theory("dis")
    theta = theory.truth.unsqueeze(0).to(torch.float64)
    with torch.no_grad():
        events = source.sample(theta, 7, generator=torch.Generator().manual_seed(0))
        norms = source.norms(theta)
    assert len(events) == len(source.channels) == norms.shape[-1]
    assert all(e.shape[:2] == (1, 7) for e in events)
    if density:
        assert require_density(source, "this test") is source
    else:
        with pytest.raises(InputError, match="needs a density"):
            require_density(source, "this test")
