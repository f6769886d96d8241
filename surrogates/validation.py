"""One check per kind of user input — integer ranges, fractions, seeds, output paths — each
raising the one-line `InputError` that names the option and the fix, before anything is written."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from surrogates.errors import InputError

__all__ = [
    "ArgumentParser",
    "check_accelerator",
    "check_int",
    "check_float",
    "check_fraction",
    "check_seed",
    "check_output_file",
    "MAX_EVENTS",
    "is_int",
    "is_number",
    "positive_int",
    "non_negative_int",
    "seed_value",
    "positive_number",
    "fraction",
    "widths",
    "flag",
    "text",
]

MAX_EVENTS = 10**8  # events per channel in one file: 0.8 GB of float64 already
MAX_SEED = 2**32 - 1  # what numpy, torch and Lightning's seed_everything all accept


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (`InputError`, turned into ``error: …`` and exit 2 by
    `surrogates.runs.cli_errors`) instead of the usage text; ``--help`` prints the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see {self.prog} --help)")


def _number(name: str, value: object, kind: type) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        number = kind(value) if not isinstance(value, str) else kind(value.strip())
    except (TypeError, ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise InputError(f"{name} must be {what}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if kind is float and not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return number


def check_int(name: str, value: object, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; strings like '5' are accepted, '2.5' and 'ten' are not.

    >>> check_int("--replicas", "16")
    16
    >>> check_int("--replicas", 2.5)
    Traceback (most recent call last):
    ...
    surrogates.errors.InputError: --replicas must be a whole number, got 2.5
    """
    if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
        raise InputError(f"{name} must be a whole number, got {value!r}")
    number = int(_number(name, value, int))
    if number < low or (high is not None and number > high):
        upper = f" and at most {high:,}" if high is not None else ""
        raise InputError(f"{name} must be at least {low}{upper}, got {number}")
    return number


def check_float(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
) -> float:
    """``value`` as a finite float with low ≤ value ≤ high (low < value with ``open_low``)."""
    number = float(_number(name, value, float))
    too_low = low is not None and (number <= low if open_low else number < low)
    if too_low or (high is not None and number > high):
        lo = "" if low is None else f"{'>' if open_low else '≥'} {low:g}"
        hi = "" if high is None else f"≤ {high:g}"
        raise InputError(f"{name} must be {' and '.join(p for p in (lo, hi) if p)}, got {number:g}")
    return number


def check_fraction(
    name: str, value: object, *, allow_zero: bool = False, allow_one: bool = True
) -> float:
    """A fraction in (0, 1] by default."""
    number = float(_number(name, value, float))
    ok = (0 <= number if allow_zero else 0 < number) and (number <= 1 if allow_one else number < 1)
    if not ok:
        interval = f"{'[' if allow_zero else '('}0, 1{']' if allow_one else ')'}"
        raise InputError(f"{name} must be a fraction in {interval}, got {number:g}")
    return number


def check_seed(name: str, value: object) -> int:
    """A random seed in [0, 2³² − 1]."""
    return check_int(name, value, 0, MAX_SEED)


def check_output_file(name: str, path: str | Path, suffix: str) -> Path:
    """Where a file will be written: ``suffix`` added when missing; not a folder; its folder
    creatable and writable. Nothing is created here."""
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        raise InputError(f"{name} '{path}' is a folder; give a file name ending in {suffix}")
    if path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    if path.is_dir():
        raise InputError(f"{name} '{path}' is a folder; give a file name ending in {suffix}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{name} '{path}': '{parent}' is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{name} '{path}': folder '{parent}' is not writable; choose another path")
    return path


# Checks of typed config values (YAML, dataclasses): the value must already be of its type.


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(key: str, value: object, example: int = 10) -> None:
    """InputError unless ``value`` is an integer ≥ 1."""
    if not is_int(value) or value < 1:
        raise InputError(f"{key} must be a positive integer, got {value!r}; e.g. {key}: {example}")


def non_negative_int(key: str, value: object) -> None:
    """InputError unless ``value`` is an integer ≥ 0."""
    if not is_int(value) or value < 0:
        raise InputError(f"{key} must be an integer ≥ 0, got {value!r}; e.g. {key}: 0")


def seed_value(key: str, value: object) -> None:
    """InputError unless ``value`` is a seed: an integer in [0, 2³² − 1]."""
    if not is_int(value) or not 0 <= value <= MAX_SEED:
        raise InputError(
            f"{key} must be an integer in [0, {MAX_SEED}], got {value!r}; e.g. {key}: 1"
        )


def positive_number(key: str, value: object, example: float) -> None:
    """InputError unless ``value`` is a finite number > 0."""
    if not is_number(value) or not 0 < value < math.inf:
        raise InputError(
            f"{key} must be a finite number > 0, got {value!r}; e.g. {key}: {example:g}"
        )


def fraction(key: str, value: object, example: float, zero: bool = False) -> None:
    """InputError unless ``value`` is in (0, 1] (or [0, 1] with ``zero``)."""
    low_ok = value >= 0 if zero else value > 0 if is_number(value) else False
    if not is_number(value) or not low_ok or value > 1:
        interval = "[0, 1]" if zero else "(0, 1]"
        raise InputError(
            f"{key} must be a fraction in {interval}, got {value!r}; e.g. {key}: {example:g}"
        )


def widths(key: str, value: object) -> None:
    """InputError unless ``value`` is a list of positive layer widths."""
    if not isinstance(value, list | tuple) or not all(is_int(w) and w > 0 for w in value):
        raise InputError(f"{key} must be a list of positive widths, got {value!r}; e.g. [32, 32]")


def flag(key: str, value: object) -> None:
    """InputError unless ``value`` is true or false."""
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false, got {value!r}")


def text(key: str, value: object, example: str) -> None:
    """InputError unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{key} must be a name, got {value!r}; e.g. {key}: {example}")


def check_accelerator(option: str, value: object) -> None:
    """An accelerator this machine has (``auto``: a GPU when there is one, else the CPU), else one
    line before anything is written; ``gpu`` is Lightning's name for ``cuda``."""
    if not isinstance(value, str) or value == "auto":
        return
    from pytorch_lightning.accelerators import AcceleratorRegistry  # heavy: only when asked

    name = "cuda" if value == "gpu" else value
    if name in AcceleratorRegistry and not AcceleratorRegistry[name]["accelerator"].is_available():
        raise InputError(
            f"{option} {value}: this machine has no {value.upper()} device; use auto (a GPU "
            "when there is one, else the CPU) or cpu"
        )
