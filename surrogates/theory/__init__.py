"""Module-2 theories: the Theory interface, the proxy toy, NumPy and torch function wrappers,
plug-in cards and a registry."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path

from surrogates.errors import InputError
from surrogates.resources import resolve_config
from surrogates.theory.base import Module2, Theory
from surrogates.theory.card import is_card, load_card, read_card
from surrogates.theory.dis import DISTheory
from surrogates.theory.numpy_wrapper import NoGradientError, NumpyTheory
from surrogates.theory.proxy import (
    PROXY_PRIOR_HIGH,
    PROXY_PRIOR_LOW,
    PROXY_TRUTH,
    ProxyTheory,
    proxy_numpy,
)
from surrogates.theory.torch_wrapper import TorchFunctionTheory

__all__ = [
    "Theory",
    "ProxyTheory",
    "DISTheory",
    "NumpyTheory",
    "NoGradientError",
    "TorchFunctionTheory",
    "THEORY_HELP",
    "THEORIES",
    "get_theory",
    "installed_theory",
    "register_theory",
    "load_card",
    "read_card",
]

THEORY_HELP = (
    "the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, "
    "package.module:attribute, or the path of a plug-in card (.toml or .yaml); "
    "see docs/guide/bring-your-own.md"
)


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


# shipped cards (package data under configs/) known by name, like the built-in theories
BUILTIN_CARDS = {"peak": "examples/peak/peak.toml"}


def _builtin_card(name: str) -> Module2:
    """A shipped card's theory (importing the package's own example file, never a user's)."""
    return _card_theory(BUILTIN_CARDS[name], register=False)


# built-in module-2s by name (surrogates.generators adds its event generators when imported)
THEORIES: dict[str, Callable[[], Module2]] = {
    "proxy": ProxyTheory,
    "proxy-numpy": _proxy_blackbox,
    "dis": DISTheory,
    **{name: functools.partial(_builtin_card, name) for name in BUILTIN_CARDS},
}

# theories of installed packages: [project.entry-points."surrogate_zoo.theories"] NAME = "pkg.mod:factory"
ENTRY_POINT_GROUP = "surrogate_zoo.theories"
_LOADED: dict[str, Module2] = {}  # named by a user as module:attribute or card in this process
_CARDS: dict[Path, Module2] = {}  # cards loaded in this process, by resolved path


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


def _card_path(spec: str) -> Path:
    """A card path as typed, else a shipped card of that path under configs/."""
    path = resolve_config(spec)
    if not path.is_file():
        raise InputError(
            f"theory card '{spec}' not found; give the path of a .toml or .yaml card "
            "(docs/guide/bring-your-own.md), or a shipped one such as examples/peak/peak.toml"
        )
    return path.resolve()


def _card_theory(spec: str, register: bool = True) -> Module2:
    """Load a card once per process; register it under its name (refusing a name already taken
    by another theory) and under the spec as typed."""
    path = _card_path(spec)
    theory = _CARDS.get(path)
    if theory is None:
        theory = load_card(path)
        builtin = BUILTIN_CARDS.get(theory.name)
        if theory.name in THEORIES and (builtin is None or _card_path(builtin) != path):
            raise InputError(
                f"card '{spec}': name '{theory.name}' is a built-in theory; give the card "
                "another name"
            )
        taken = _LOADED.get(theory.name)
        if taken is not None:
            raise InputError(
                f"card '{spec}': name '{theory.name}' is already taken in this process by "
                f"{getattr(taken, 'card', None) or repr(taken)}; give the card another name"
            )
        _CARDS[path] = theory
    if register:
        _LOADED[str(spec)] = theory
        if theory.name not in THEORIES:
            _LOADED[theory.name] = theory
    return theory


def get_theory(name: str | Module2) -> Module2:
    """A theory by the name a user gives: a registry name, an installed one, the path of a
    plug-in card (`surrogates.theory.card`; its files imported), or ``package.module:attribute``
    naming a Theory or a factory (imported). A card or module:attribute theory is then
    registered under both the spec and the theory's own name, so files that store either
    resolve in this process.

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
    if is_card(name):
        return _card_theory(name)
    if ":" not in name:
        raise InputError(
            f"unknown theory '{name}'; choose one of: {_known()}, package.module:attribute, or a "
            "card file (.toml/.yaml; docs/guide/bring-your-own.md)"
        )
    module, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise InputError(f"cannot load theory '{name}': {err}") from None
    theory = _as_theory(obj, name)
    _LOADED[name] = _LOADED.setdefault(theory.name, theory)
    return theory
