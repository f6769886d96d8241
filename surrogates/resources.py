"""Where the shipped zoo, the default configs and the user's own checkpoints live.

Shipped files: an installed package (a wheel, ``pip install .``) carries the repository's
``checkpoints/`` and ``configs/`` folders as its data packages ``surrogates/_zoo/`` and
``surrogates/_configs/`` (see pyproject.toml); a source checkout or an editable install has no
such folders and uses the repository's own.

The zoo path (where `surrogates.load_surrogate` looks a name up, first match wins):

1. the folders of ``$SURROGATE_ZOO_PATH`` (separated by ``os.pathsep``: ``:`` on Linux and
   macOS), or, when it is unset, the user zoo folder of `user_zoo_dir`;
2. the shipped zoo (`checkpoint_dir`).

`export_dir` is where ``python -m surrogates.zoo export`` writes by default: the first folder of
``$SURROGATE_ZOO_PATH``, else the repository's ``checkpoints/`` in a source checkout, else the
user zoo folder, never the installed package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = [
    "ZOO_PATH_ENV",
    "checkpoint_dir",
    "config_dir",
    "config_file",
    "resolve_config",
    "source_checkout",
    "user_zoo_dir",
    "zoo_path",
    "export_dir",
]

ZOO_PATH_ENV = "SURROGATE_ZOO_PATH"

_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent


def _shipped(installed: str, repository: str) -> Path:
    """The installed package's data folder when there is one, else the repository's folder."""
    folder = _PACKAGE / installed
    return folder if folder.is_dir() else _REPO / repository


def source_checkout() -> bool:
    """True when the package runs from the repository (a checkout, or an editable install)."""
    return not (_PACKAGE / "_zoo").is_dir() and (_REPO / "pyproject.toml").is_file()


def checkpoint_dir() -> Path:
    """The folder of the shipped checkpoints and their JSON cards."""
    return _shipped("_zoo", "checkpoints")


def config_dir() -> Path:
    """The folder of the shipped YAML configs (surrogates/, inverse/, closure/)."""
    return _shipped("_configs", "configs")


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


def user_zoo_dir() -> Path:
    """The per-user folder for exported checkpoints when ``$SURROGATE_ZOO_PATH`` is unset.

    A data folder, not a cache (a cache cleaner must not delete trained models):
    ``$XDG_DATA_HOME/surrogate-zoo`` (default ``~/.local/share/surrogate-zoo``) on Linux,
    ``~/Library/Application Support/surrogate-zoo`` on macOS, ``%LOCALAPPDATA%\\surrogate-zoo``
    on Windows.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "surrogate-zoo"


def _user_folders() -> list[Path]:
    """The folders of ``$SURROGATE_ZOO_PATH`` (empty entries skipped), else `user_zoo_dir`."""
    folders = [Path(p) for p in os.environ.get(ZOO_PATH_ENV, "").split(os.pathsep) if p]
    return folders or [user_zoo_dir()]


def zoo_path() -> list[Path]:
    """The folders searched for a checkpoint name, in order: the user's, then the shipped zoo."""
    folders = [*_user_folders(), checkpoint_dir()]
    return list(dict.fromkeys(folders))


def export_dir() -> Path:
    """The default folder of ``surrogates.zoo export``; never inside an installed package."""
    if os.environ.get(ZOO_PATH_ENV, "").strip(os.pathsep):
        return _user_folders()[0]
    return checkpoint_dir() if source_checkout() else user_zoo_dir()
