"""Errors that carry a one-line message naming the problem and its fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "InputError",
    "ParameterError",
    "EventFileError",
    "check_choice",
    "call_user_code",
    "first_line",
]

T = TypeVar("T")


class InputError(ValueError):
    """Bad user input: the message names what is wrong and how to fix it."""


class ParameterError(InputError):
    """A parameter point that is malformed, non-finite or outside the prior box."""


class EventFileError(InputError):
    """An event file that is missing, malformed, or does not fit the theory."""


def check_choice(what: str, value: object, choices) -> None:  # noqa: ANN001 - any iterable of str
    """Raise the one-line "unknown WHAT 'VALUE'; choose one of A, B" for a value not in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"unknown {what} '{value}'; choose one of {', '.join(choices)}")


def call_user_code(fn: Callable[..., T], what: str, where: str, *args: object) -> T:
    """``fn(*args)``, a user's module-2 code, with any exception it raises (other than an
    `InputError`) turned into one line naming ``what`` failed and ``where`` (e.g. the θ)."""
    try:
        return fn(*args)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's code fails: one line, not a traceback
        raise InputError(
            f"{what} fails at {where}: {type(err).__name__}: {first_line(err)}; fix it so that "
            "it works everywhere in the prior box"
        ) from None


def first_line(err: BaseException) -> str:
    """The first line of an exception's message ("" when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
