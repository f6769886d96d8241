"""What every command writes next to its outputs (config, metrics, environment), and CLI errors."""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from surrogates.errors import InputError

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


def write_run_files(out: str | Path, config: dict, metrics: dict) -> Path:
    """Write ``config.yaml`` (resolved), ``metrics.json`` and ``environment.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(to_jsonable(config), sort_keys=False))
    (out / "metrics.json").write_text(json.dumps(to_jsonable(metrics), indent=2) + "\n")
    (out / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    return out


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
