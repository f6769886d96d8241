"""Where the shipped zoo and the default configs live: the repository's folders, or the installed
package's data (see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkpoint_dir", "config_dir", "config_file", "resolve_config"]

_REPO = Path(__file__).resolve().parent.parent


def checkpoint_dir() -> Path:
    """The folder of the shipped checkpoints and their JSON cards."""
    return _REPO / "checkpoints"


def config_dir() -> Path:
    """The folder of the shipped YAML configs (surrogates/, inverse/, closure/)."""
    return _REPO / "configs"


def config_file(relative: str) -> Path:
    """A shipped config by its path under ``configs/``, e.g. ``"surrogates/flow.yaml"``."""
    return config_dir() / relative


def resolve_config(path: str | Path) -> Path:
    """A config path as given when it exists; otherwise a shipped one of that name.

    ``configs/inverse/proxy.yaml`` and ``inverse/proxy.yaml`` both name the shipped file, so the
    documented commands work from any directory once the package is installed.
    """
    given = Path(path)
    if given.is_file():
        return given
    parts = given.parts[1:] if given.parts[:1] == ("configs",) else given.parts
    shipped = config_dir().joinpath(*parts) if parts else given
    return shipped if shipped.is_file() else given
