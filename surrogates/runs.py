"""What every command writes next to its outputs (config, metrics, environment), and CLI errors."""

from __future__ import annotations

import copy
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from surrogates.errors import InputError
from surrogates.resources import resolve_config

__all__ = ["environment", "write_run_files", "cli_errors", "to_jsonable"]

_PACKAGES = ("torch", "pytorch-lightning", "nflows", "normflows", "zuko", "numpy", "scipy", "wandb")


def environment() -> dict[str, Any]:
    """Python, platform, package versions and git commit: enough to reproduce a run."""
    versions = {}
    for name in ("surrogate-zoo", *_PACKAGES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit or None,
        "argv": sys.argv,
    }


def to_jsonable(obj: Any) -> Any:
    """NumPy/torch scalars and arrays → plain Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` (NumPy/torch values allowed, see `to_jsonable`) as indented JSON to ``path``,
    creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(obj), indent=2) + "\n")
    return path


def write_run_files(out: str | Path, config: dict, metrics: dict) -> Path:
    """Write ``config.yaml`` (resolved), ``metrics.json`` and ``environment.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(to_jsonable(config), sort_keys=False))
    write_json(out / "metrics.json", metrics)
    write_json(out / "environment.json", environment())
    return out


def default_run_dir(prefix: str) -> str:
    """``runs/PREFIX-<time>``, the same in every process of one launch.

    Lightning's DDP launcher starts the other processes from the original command line seconds
    later; the first process's choice travels to them in the environment.
    """
    key = "SURROGATE_ZOO_RUN_DIR"
    if is_rank_zero() or key not in os.environ:
        os.environ[key] = f"runs/{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    return os.environ[key]


def unused_parameters_strategy(
    strategy: str | None, devices: object, num_nodes: int = 1
) -> str | None:
    """The DDP strategy for models whose backward passes leave some weights unused.

    Manual optimization (a critic and a generator stepped on separate losses) leaves the other
    network's parameters without gradients in each pass, which plain DDP refuses; so wherever
    DDP would run (asked for, or chosen by ``auto`` for several devices or nodes) it becomes
    ``ddp_find_unused_parameters_true``. Other strategies are returned unchanged.
    """
    several = str(devices) not in ("1", "auto", "None") or (num_nodes or 1) > 1
    if strategy == "ddp" or (several and strategy in ("auto", None)):
        return "ddp_find_unused_parameters_true"
    return strategy


def is_rank_zero() -> bool:
    """True in the process that writes run files (always, without DDP)."""
    from pytorch_lightning.utilities import rank_zero_only

    return rank_zero_only.rank == 0


def cli_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Turn `InputError` (bad user input) into one line on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs) or 0
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def _merge(base: dict, new: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in new.items():
        if key not in base:
            raise InputError(f"{where}: unknown key '{key}'; known keys: {', '.join(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputError(f"{where}: '{key}' must be a mapping")
            out[key] = _merge(base[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None, defaults: dict, example: str) -> dict:
    """``defaults`` updated (recursively) by a YAML file; a missing or malformed file, a
    non-mapping or an unknown key gets a one-line `InputError` that points at ``example``.

    A path that does not exist names a shipped config when one has that name
    (`surrogates.resources.resolve_config`: ``configs/inverse/proxy.yaml`` works from any folder).
    """
    if path is None:
        return copy.deepcopy(defaults)
    path = resolve_config(path)
    if not path.is_file():
        raise InputError(f"config '{path}' not found; see {example}")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"config '{path}' is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"config '{path}' must be a mapping of keys to values")
    return _merge(defaults, cfg, str(path))
