"""Module-2 theories: the Theory interface, the proxy toy, a NumPy black-box wrapper, a registry."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from surrogates.errors import InputError
from surrogates.theory.base import Theory
from surrogates.theory.dis import DISTheory
from surrogates.theory.numpy_wrapper import NoGradientError, NumpyTheory
from surrogates.theory.proxy import (
    PROXY_PRIOR_HIGH,
    PROXY_PRIOR_LOW,
    PROXY_TRUTH,
    ProxyTheory,
    proxy_numpy,
)

__all__ = [
    "Theory",
    "ProxyTheory",
    "DISTheory",
    "NumpyTheory",
    "NoGradientError",
    "THEORIES",
    "get_theory",
]


def _proxy_blackbox() -> NumpyTheory:
    """The proxy toy through the NumPy wrapper: same physics, no gradients."""
    return NumpyTheory(
        proxy_numpy,
        name="proxy-numpy",
        param_names=ProxyTheory.param_names,
        channels=ProxyTheory.channels,
        prior_low=PROXY_PRIOR_LOW,
        prior_high=PROXY_PRIOR_HIGH,
        x_low=[0.1],
        x_high=[1.0],
        truth=PROXY_TRUTH,
    )


THEORIES: dict[str, Callable[[], Theory]] = {
    "proxy": ProxyTheory,
    "proxy-numpy": _proxy_blackbox,
    "dis": DISTheory,
}


def get_theory(name: str | Theory) -> Theory:
    """A theory by registry name, or by ``package.module:attribute`` naming a Theory or a factory.

    Raises:
        InputError: the name is unknown (the message lists the known ones).

    >>> get_theory("proxy").param_names
    ('N_u', 'a_u', 'b_u', 'N_d', 'a_d', 'b_d')
    """
    if isinstance(name, Theory):
        return name
    if name in THEORIES:
        return THEORIES[name]()
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise InputError(f"cannot load theory '{name}': {err}") from None
        theory = obj() if callable(obj) and not isinstance(obj, Theory) else obj
        if not isinstance(theory, Theory):
            raise InputError(f"'{name}' is not a Theory or a function returning one")
        return theory
    known = ", ".join(sorted(THEORIES))
    raise InputError(f"unknown theory '{name}'; choose one of: {known} (or module:attribute)")
