"""The surrogate zoo: one module per family on the common `Surrogate` base."""

from __future__ import annotations

from surrogates.errors import InputError
from surrogates.models.base import Surrogate
from surrogates.models.flow import BACKENDS, FlowSurrogate
from surrogates.models.gan import GANSurrogate
from surrogates.models.vae import VAESurrogate
from surrogates.models.vaim import VAIMNet, VAIMSurrogate

__all__ = [
    "Surrogate",
    "FlowSurrogate",
    "GANSurrogate",
    "VAESurrogate",
    "VAIMSurrogate",
    "VAIMNet",
    "FAMILIES",
    "BACKENDS",
    "get_family",
]

FAMILIES: dict[str, type[Surrogate]] = {
    "flow": FlowSurrogate,
    "gan": GANSurrogate,
    "vae": VAESurrogate,
    "vaim": VAIMSurrogate,
}


def get_family(name: str) -> type[Surrogate]:
    """The surrogate class of a family name; an unknown name lists the known ones."""
    if name not in FAMILIES:
        raise InputError(f"unknown surrogate family '{name}'; choose one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]
