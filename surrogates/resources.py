"""Where the shipped zoo and the default configs live: the repository's folders, or the installed
package's data (see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkpoint_dir", "config_dir", "config_file"]

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
