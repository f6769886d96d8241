"""Errors that carry a one-line message naming the problem and its fix."""

from __future__ import annotations

__all__ = ["InputError", "ParameterError", "EventFileError"]


class InputError(ValueError):
    """Bad user input: the message names what is wrong and how to fix it."""


class ParameterError(InputError):
    """A parameter point that is malformed, non-finite or outside the prior box."""


class EventFileError(InputError):
    """An event file that is missing, malformed, or does not fit the theory."""
