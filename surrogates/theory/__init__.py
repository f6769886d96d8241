"""Module-2 theories: the Theory interface, the proxy toy, a NumPy black-box wrapper, a registry."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from surrogates.errors import InputError
from surrogates.theory.base import Module2, Theory
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
    "installed_theory",
    "register_theory",
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


# built-in module-2s by name (surrogates.generators adds its event generators when imported)
THEORIES: dict[str, Callable[[], Module2]] = {
    "proxy": ProxyTheory,
    "proxy-numpy": _proxy_blackbox,
    "dis": DISTheory,
}

# theories of installed packages: [project.entry-points."surrogate_zoo.theories"] NAME = "pkg.mod:factory"
ENTRY_POINT_GROUP = "surrogate_zoo.theories"
_LOADED: dict[str, Module2] = {}  # theories a user named as module:attribute in this process


def register_theory(theory: Module2 | Callable[[], Module2], name: str | None = None) -> None:
    """Make a theory known by name in this process (e.g. before loading a surrogate of it).

    Names stored in files (checkpoints, run folders) resolve only through registered and
    installed theories, never by importing what the file names.
    """
    if isinstance(theory, Module2):
        _LOADED[name or theory.name] = theory
        return
    if not callable(theory):
        raise InputError(
            f"register_theory takes a Theory or a function returning one, got {theory!r}"
        )
    THEORIES[name or theory().name] = theory


def _entry_point(name: str) -> Callable[[], Module2] | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def _lookup(name: str) -> Module2 | None:
    """Built-in, registered or installed; None when the name is none of these. Imports nothing
    but an installed package's declared entry point."""
    if name in THEORIES:
        return THEORIES[name]()
    if name in _LOADED:
        return _LOADED[name]
    factory = _entry_point(name) if ":" not in name else None
    return None if factory is None else _as_theory(factory, name)


def _known() -> str:
    return ", ".join(sorted({*THEORIES, *_LOADED}))


def installed_theory(name: str) -> Module2:
    """A theory by a name read from a file: built-in, installed (entry point) or registered in this
    process; never imports a module the name spells.

    Raises:
        InputError: the name is none of these (the message lists the known ones).
    """
    theory = _lookup(str(name))
    if theory is None:
        raise InputError(
            f"theory '{name}' (named in a file) is not installed; known: {_known()}. Register it "
            "(surrogates.theory.register_theory) or install it under the entry-point group "
            f"'{ENTRY_POINT_GROUP}': names read from files are never imported"
        )
    return theory


def _as_theory(obj: object, name: str) -> Module2:
    theory = obj() if callable(obj) and not isinstance(obj, Module2) else obj
    if not isinstance(theory, Module2):
        raise InputError(
            f"'{name}' is not a Theory or an EventGenerator, nor a function returning one"
        )
    return theory


def get_theory(name: str | Module2) -> Module2:
    """A theory by the name a user gives: a registry name, an installed one, or
    ``package.module:attribute`` naming a Theory or a factory (imported, then registered under
    both the spec and the theory's own name, so files that store either resolve in this process).

    For names read from files use `installed_theory`, which imports nothing.

    Raises:
        InputError: the name is unknown (the message lists the known ones).

    >>> get_theory("proxy").param_names
    ('N_u', 'a_u', 'b_u', 'N_d', 'a_d', 'b_d')
    """
    if isinstance(name, Module2):
        return name
    theory = _lookup(name)
    if theory is not None:
        return theory
    if ":" not in name:
        raise InputError(
            f"unknown theory '{name}'; choose one of: {_known()} (or module:attribute)"
        )
    module, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise InputError(f"cannot load theory '{name}': {err}") from None
    theory = _as_theory(obj, name)
    _LOADED[name] = _LOADED.setdefault(theory.name, theory)
    return theory
