"""Plug-in cards: a user's module-2 declared in one small TOML or YAML file.

A card names the theory, its parameters with their prior box, its channels, the event range per
dimension (1 to 3 dimensions), optionally the true θ and the reference data size, and the code:

.. code-block:: toml

    name = "my-theory"                      # stored in every file made from it
    channels = ["ee", "mumu"]
    x = [100.0, 180.0]                      # one [low, high] per event dimension: [[0, 1], [1, 10]]
    truth = [0.05, 3.0, 0.2, 140.0, 2.0]    # optional: --theta truth
    reference_counts = [30000, 20000]       # optional: events per channel of your reference data
    density = "model.py:density"            # f(x, θ) → σ per channel (NumPy)
    torch = false                           # true: f is torch code and differentiable
    vectorized = false                      # true: f takes x (B, n, d), θ (B, P) → (B, C, n)

    [parameters]                            # name = [low, high], in order
    bkg = [0.02, 0.08]
    ...

Instead of ``density`` a card may give ``generator = "gen.py:generate"`` (with an optional
``rates = "gen.py:rates"``), ``command = ["prog", "--theta", "{theta}", ...]`` or a ``density``
with a ``detector = "det.py:smear"``: the event-generator forms (`surrogates.generators`).
docs/guide/bring-your-own.md walks through every form.

`read_card` reads and checks a card and imports nothing; `load_card` then imports the Python
files it names (relative paths resolve against the card's folder) and builds the module-2. Only
a path a user types reaches `load_card` (through `surrogates.theory.get_theory`): a name stored
in a data file resolves through the registry, never through a card or a file it names.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import yaml

from surrogates.errors import InputError, first_line
from surrogates.theory.base import Module2, Theory
from surrogates.theory.numpy_wrapper import NumpyTheory
from surrogates.theory.torch_wrapper import TorchFunctionTheory

__all__ = [
    "Card",
    "CARD_SUFFIXES",
    "CARD_FORMS",
    "is_card",
    "read_card",
    "load_card",
    "load_function",
]

CARD_SUFFIXES = (".toml", ".yaml", ".yml")
_REQUIRED = ("name", "parameters", "channels", "x")
_OPTIONAL = (
    "description",
    "truth",
    "reference_counts",
    "density",
    "torch",
    "vectorized",
    "generator",
    "rates",
    "command",
    "output",
    "detector",
)
_FORMS = ("density", "generator", "command")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
_MAX_EVENT_DIM = 3

# Builders of the forms that are event generators, filled in by `surrogates.generators` (a layer
# above this one): "generator", "command" and "detector" (a density followed by a detector).
CARD_FORMS: dict[str, Callable[[Card, Theory | None], Module2]] = {}


@dataclass(frozen=True)
class Card:
    """A checked card: what it declares, nothing imported yet (see the module docstring)."""

    path: Path
    name: str
    param_names: tuple[str, ...]
    prior_low: tuple[float, ...]
    prior_high: tuple[float, ...]
    channels: tuple[str, ...]
    x_low: tuple[float, ...]
    x_high: tuple[float, ...]
    truth: tuple[float, ...] | None = None
    reference_counts: tuple[float, ...] | None = None
    description: str = ""
    density: str | None = None
    torch: bool = False
    vectorized: bool = False
    generator: str | None = None
    rates: str | None = None
    command: tuple[str, ...] | None = None
    output: str = "npz"
    detector: str | None = None

    @property
    def event_dim(self) -> int:
        return len(self.x_low)

    @property
    def form(self) -> str:
        """density, detector (a density followed by a detector), generator or command."""
        if self.density is not None:
            return "detector" if self.detector is not None else "density"
        return "generator" if self.generator is not None else "command"

    def declaration(self) -> dict[str, Any]:
        """The keyword arguments every module-2 of this card is built with."""
        return dict(
            name=self.name,
            param_names=self.param_names,
            channels=self.channels,
            prior_low=self.prior_low,
            prior_high=self.prior_high,
            x_low=self.x_low,
            x_high=self.x_high,
            truth=self.truth,
            event_dim=self.event_dim,
        )


def is_card(spec: str) -> bool:
    """Whether a theory spec names a card file (by its suffix)."""
    return Path(str(spec)).suffix.lower() in CARD_SUFFIXES


# ----------------------------------------------------------------------------- reading


def _fail(path: Path, key: str, problem: str) -> InputError:
    return InputError(f"card '{path}': {key} {problem}")


class _CardLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (TOML refuses it too; plain
    YAML would keep the last silently)."""

    def construct_mapping(self, node, deep: bool = False) -> dict:  # noqa: ANN001 - a yaml node
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise InputError(f"the key {key!r} is given twice in one table; give it once")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse(path: Path) -> dict:
    """The card file as a mapping (TOML by the standard library's tomllib, tomli on Python 3.10, or YAML)."""
    if not path.is_file():
        raise InputError(f"theory card '{path}' not found; give the path of a .toml or .yaml card")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"card '{path}' is not a UTF-8 text file; write the card as text"
        ) from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10: tomli, the same parser (a dependency there)
                import tomli as tomllib
            raw = tomllib.loads(text)
        else:
            raw = yaml.load(text, Loader=_CardLoader)  # noqa: S506 - a SafeLoader
    except InputError as err:
        raise InputError(f"card '{path}': {err}") from None
    except Exception as err:  # noqa: BLE001 - tomllib and yaml raise their own types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"card '{path}' is not valid {path.suffix[1:].upper()}: {first}") from None
    if not isinstance(raw, dict):
        raise InputError(f"card '{path}' must be a mapping of keys (name, parameters, ...)")
    return raw


def _numbers(path: Path, key: str, value: object, n: int | None, what: str) -> tuple[float, ...]:
    ok = isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok or (n is not None and len(value) != n):
        size = f"{n} " if n is not None else ""
        raise _fail(path, key, f"must be a list of {size}finite numbers ({what}), got {value!r}")
    return tuple(float(v) for v in value)


def _names(path: Path, key: str, value: object, example: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise _fail(path, key, f"must be a non-empty list of names, e.g. {example}; got {value!r}")
    if len(set(value)) != len(value):
        raise _fail(path, key, f"has a repeated name: {list(value)}; give each a name of its own")
    return tuple(value)


def _parameters(path: Path, value: object) -> tuple[tuple[str, ...], tuple, tuple]:
    """``[parameters]``: name = [low, high] in order → names, lows, highs."""
    if not isinstance(value, dict) or not value:
        raise _fail(
            path, "parameters", "must be a table of name = [low, high], e.g. mass = [110.0, 170.0]"
        )
    lows, highs = [], []
    for name, box in value.items():
        if not isinstance(name, str):
            raise _fail(path, "parameters", f"has the name {name!r}, not text (YAML reads on, off, yes, no, true, false and numbers as values): quote it")  # fmt: skip
        low, high = _numbers(path, f"parameters.{name}", box, 2, "its prior's [low, high]")
        if not low < high:
            raise _fail(path, f"parameters.{name}", f"= [{low:g}, {high:g}] needs low < high")
        lows.append(low)
        highs.append(high)
    return tuple(str(k) for k in value), tuple(lows), tuple(highs)


def _x_range(path: Path, value: object) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``x``: [low, high] (one dimension) or [[low, high], ...] (up to three)."""
    if isinstance(value, list | tuple) and value and isinstance(value[0], int | float):
        value = [value]
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= _MAX_EVENT_DIM:
        raise _fail(
            path, "x", "must be [low, high] or one [low, high] per event dimension (1 to 3)"
        )
    boxes = [_numbers(path, "x", box, 2, "[low, high] per dimension") for box in value]
    for low, high in boxes:
        if not low < high:
            raise _fail(path, "x", f"range [{low:g}, {high:g}] needs low < high")
    return tuple(b[0] for b in boxes), tuple(b[1] for b in boxes)


def _reference(path: Path, key: str, value: object) -> str:
    if not isinstance(value, str) or ":" not in value.strip(":"):
        raise _fail(
            path, key, f"= {value!r} must be 'file.py:function' or 'package.module:function'"
        )
    return value


def _command(path: Path, value: object) -> tuple[str, ...]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise _fail(
            path,
            "command",
            'must be a list of strings, e.g. ["./gen", "--theta", "{theta}", "--n", "{n}", '
            '"--seed", "{seed}", "--out", "{out}"]',
        )
    if not any("{out}" in v for v in value):
        raise _fail(path, "command", "must contain {out}: where the program writes its events")
    return tuple(value)


def _output(path: Path, value: object) -> str:
    if value not in ("npz", "csv"):
        raise _fail(path, "output", f"= {value!r}: the program writes npz or csv")
    return str(value)


def _flag(path: Path, raw: dict, key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise _fail(path, key, f"must be true or false, got {value!r}")
    return value


def _check_keys(path: Path, raw: dict) -> None:
    known = (*_REQUIRED, *_OPTIONAL)
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"the keys are {', '.join(known)}"
            raise _fail(path, f"key '{key}'", f"is unknown; {hint}")
    for key in _REQUIRED:
        if key not in raw:
            raise _fail(
                path, f"key '{key}'", "is missing; every card declares " + ", ".join(_REQUIRED)
            )
    forms = [k for k in _FORMS if k in raw]
    if len(forms) != 1:
        raise _fail(
            path,
            "module-2",
            f"must be given by exactly one of density, generator, command; got {forms or 'none'}",
        )
    for key, needs in (("torch", "density"), ("vectorized", "density"), ("detector", "density"),
                       ("rates", "generator"), ("output", "command")):  # fmt: skip
        if key in raw and needs not in raw:
            raise _fail(path, key, f"only goes with {needs}; remove it or give {needs}")


def read_card(path: str | Path) -> Card:
    """Read and check a card; imports nothing.

    Raises:
        InputError: one line naming the key and the fix (missing or unknown key, a prior box
            with low ≥ high, lists of the wrong length, ...).

    >>> from surrogates.resources import config_file
    >>> card = read_card(config_file("examples/peak/peak.toml"))
    >>> card.name, card.param_names, card.form, card.event_dim
    ('peak', ('bkg', 'slope', 'mu', 'mass', 'width'), 'density', 1)
    """
    path = Path(path)
    raw = _parse(path)
    _check_keys(path, raw)
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _fail(
            path, "name", f"= {name!r} must be a plain name (letters, digits, '.', '_', '-')"
        )
    names, low, high = _parameters(path, raw["parameters"])
    channels = _names(path, "channels", raw["channels"], '["ee", "mumu"]')
    x_low, x_high = _x_range(path, raw["x"])
    truth = raw.get("truth")
    if truth is not None:
        truth = _numbers(path, "truth", truth, len(names), f"one per parameter: {', '.join(names)}")
        for n, v, lo, hi in zip(names, truth, low, high):
            if not lo <= v <= hi:
                raise _fail(path, "truth", f"{n} = {v:g} is outside its prior [{lo:g}, {hi:g}]")
    counts = raw.get("reference_counts")
    if counts is not None:
        counts = _numbers(path, "reference_counts", counts, len(channels), "events per channel")
        if min(counts) <= 0:
            raise _fail(path, "reference_counts", f"must be positive, got {list(counts)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _fail(path, "description", "must be a string")
    refs = {k: _reference(path, k, raw[k]) for k in ("density", "generator", "rates", "detector") if k in raw}  # fmt: skip
    return Card(
        path=path,
        name=name,
        param_names=names,
        prior_low=low,
        prior_high=high,
        channels=channels,
        x_low=x_low,
        x_high=x_high,
        truth=truth,
        reference_counts=counts,
        description=description,
        torch=_flag(path, raw, "torch"),
        vectorized=_flag(path, raw, "vectorized"),
        command=_command(path, raw["command"]) if "command" in raw else None,
        output=_output(path, raw.get("output", "npz")),
        **refs,
    )


# ----------------------------------------------------------------------------- loading

_MODULES: dict[Path, ModuleType] = {}  # user files imported in this process, by resolved path


def _import_file(file: Path, card: Card, key: str) -> ModuleType:
    """Import a user's Python file once per process (no __pycache__ written next to it)."""
    file = file.resolve()
    if file in _MODULES:
        return _MODULES[file]
    if not file.is_file():
        raise _fail(card.path, key, f"names '{file}', which does not exist; paths are relative to the card's folder")  # fmt: skip
    module_name = "surrogates_card_" + re.sub(r"\W", "_", f"{card.name}_{file.stem}")
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    saved = sys.dont_write_bytecode, list(sys.path)
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(file.parent))  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - whatever the user's file raises, one line
        sys.modules.pop(module_name, None)
        raise _fail(card.path, key, f"file '{file.name}' fails to import: {type(err).__name__}: {first_line(err)}") from None  # fmt: skip
    finally:
        sys.dont_write_bytecode = saved[0]
        sys.path[:] = saved[1]
    _MODULES[file] = module
    return module


def load_function(card: Card, key: str) -> Callable:
    """The function a card's key names: ``file.py:function`` (a path relative to the card's
    folder) or ``package.module:function`` (an importable module)."""
    ref = getattr(card, key)
    target, _, attr = ref.rpartition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(card.path.parent / target, card, key)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise _fail(card.path, key, f"= '{ref}': cannot import '{target}' ({first_line(err)}); for a file next to the card write '{target}.py:{attr}'") from None  # fmt: skip
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise _fail(card.path, key, f"= '{ref}': '{attr}' is not a function of '{target}'")
    return fn


def _density_theory(card: Card) -> Theory:
    cls = TorchFunctionTheory if card.torch else NumpyTheory
    theory = cls(load_function(card, "density"), vectorized=card.vectorized, **card.declaration())
    theory.reference_counts = card.reference_counts
    theory.card = str(card.path)
    _check_density(theory, card)
    return theory


def _check_density(theory: Theory, card: Card) -> None:
    """Evaluate the density once (at the truth, else the prior's centre) and check what comes
    back, so a wrong shape or a negative value is a line naming the key, not a later traceback."""
    theta = theory.truth if theory.truth is not None else (theory.prior_low + theory.prior_high) / 2
    u = torch.linspace(0.1, 0.9, 7, dtype=theory.dtype).unsqueeze(-1)
    x = (theory.x_low + u * (theory.x_high - theory.x_low)).unsqueeze(0)
    key = "density"
    try:
        with torch.no_grad():
            sigma = theory.density(x, theta)
    except InputError as err:
        raise _fail(card.path, key, f"= '{card.density}': {err}") from None
    except Exception as err:  # noqa: BLE001 - the user's function fails: one line
        raise _fail(card.path, key, f"= '{card.density}' fails at θ = {theta.tolist()}: {type(err).__name__}: {first_line(err)}") from None  # fmt: skip
    values = sigma.detach().cpu().numpy()
    if not np.isfinite(values).all() or (values < 0).any():
        raise _fail(card.path, key, f"= '{card.density}' returned negative or non-finite σ at θ = {theta.tolist()}; a density is finite and ≥ 0")  # fmt: skip


def load_card(path: str | Path) -> Module2:
    """Read a card and build its module-2: a `Theory` for the density forms, an event generator
    (`surrogates.generators`) for the others. Imports the Python files the card names and calls
    the code once (a few events, or the density at a few points) to check what it returns.

    Raises:
        InputError: the card is malformed, a file it names is missing or fails to import, or the
            code returns the wrong shape, negative densities or bad events.
    """
    card = read_card(path)
    if card.form == "density":
        return _density_theory(card)
    build = CARD_FORMS.get(card.form)
    if build is None:
        raise _fail(card.path, card.form, "needs surrogates.generators: import it first")
    theory = _density_theory(card) if card.form == "detector" else None
    module2 = build(card, theory)
    module2.reference_counts = card.reference_counts
    module2.card = str(card.path)
    _check_generator(module2, card)
    return module2


def _check_generator(module2: Any, card: Card) -> None:
    """One small call of a generator at the truth (else the prior's centre): events of the
    declared shape and range and positive rates, or one line naming the card's key."""
    key = {"detector": "detector", "generator": "generator", "command": "command"}[card.form]
    theta = module2.truth if module2.truth is not None else (module2.prior_low + module2.prior_high) / 2  # fmt: skip
    try:
        module2.generate(theta.numpy(), 4, seed=0)
    except InputError as err:
        raise _fail(card.path, key, f"check call: {err}") from None
    except Exception as err:  # noqa: BLE001 - the user's code fails: one line
        raise _fail(card.path, key, f"fails at θ = {theta.tolist()}: {type(err).__name__}: {first_line(err)}") from None  # fmt: skip
