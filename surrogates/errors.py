"""Errors that carry a one-line message naming the problem and its fix."""

from __future__ import annotations

__all__ = ["InputError", "ParameterError", "EventFileError", "check_choice"]


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
