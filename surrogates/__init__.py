"""surrogate-zoo: machine-learned surrogates of physics event generators and the inverse loop."""

from __future__ import annotations

from surrogates._version import __version__
from surrogates.errors import EventFileError, InputError, ParameterError

# (importing the generators also registers the event-generator forms of plug-in cards)
from surrogates.generators import (
    CallableGenerator,
    EventGenerator,
    ExternalGenerator,
    TheoryGenerator,
)
from surrogates.theory import NumpyTheory, ProxyTheory, Theory, get_theory

__all__ = [
    "__version__",
    "EventFileError",
    "InputError",
    "ParameterError",
    "NumpyTheory",
    "EventGenerator",
    "CallableGenerator",
    "ExternalGenerator",
    "TheoryGenerator",
    "ProxyTheory",
    "Theory",
    "get_theory",
    "load_surrogate",
]


def __getattr__(name: str):  # noqa: ANN202 - lazy: loading surrogates pulls in Lightning
    if name == "load_surrogate":
        from surrogates.zoo import load_surrogate

        return load_surrogate
    raise AttributeError(f"module 'surrogates' has no attribute {name!r}")
