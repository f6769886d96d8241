"""What every command writes next to its outputs (config, metrics, environment), and CLI errors."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from surrogates.errors import InputError

__all__ = [
    "environment",
    "machine_speed",
    "write_run_files",
    "write_json",
    "atomic_path",
    "SafeCheckpointIO",
    "claim_run_dir",
    "cli_errors",
    "to_jsonable",
]

_PACKAGES = ("torch", "pytorch-lightning", "nflows", "normflows", "zuko", "numpy", "scipy", "wandb")


def _git(*args: str) -> str:
    """The stripped output of a git command in the package's folder (raises if git is missing)."""
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
    ).stdout.strip()


def environment() -> dict[str, Any]:
    """Python, platform, processor, package versions, git commit (and whether tracked files had
    uncommitted changes) and the day (UTC): enough to reproduce a run."""
    versions = {}
    for name in ("surrogate-zoo", *_PACKAGES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = _git("rev-parse", "HEAD")
        # uncommitted changes to tracked files: the commit alone does not name the code that ran
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "packages": versions,
        "git_commit": commit or None,
        "git_dirty": dirty if commit else None,
        "argv": sys.argv,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def _cpu_model() -> str | None:
    """The processor's name (Linux /proc/cpuinfo; else platform.processor()), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_speed(repeats: int = 15) -> dict[str, Any]:
    """How fast this machine is now: the median milliseconds of a fixed one-thread torch
    workload (batched float32 matrix products and float64 elementwise maths, the mix of an
    outer-GAN step), with the 1-minute load average.

    Virtual machines of the same name run the same code at speeds that differ from one day to
    the next; a benchmark that records this beside its seconds can be compared with
    another day's in units of the reference (seconds / reference_ms), not in seconds.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(16, 512, 32, generator=gen)
        w = torch.randn(16, 32, 32, generator=gen)
        x = torch.rand(200_000, generator=gen, dtype=torch.float64)
        times = []
        for _ in range(repeats + 2):  # the first two warm caches up
            t0 = time.perf_counter()
            for _ in range(10):
                torch.bmm(torch.tanh(torch.bmm(a, w)), w)
            torch.log1p(torch.exp(-x)).sum()
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    timed = sorted(times[2:])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"reference_ms": 1000 * timed[len(timed) // 2], "load_average": load}


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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed onto ``path`` when the block ends
    without an error, removed otherwise. A reader (or a kill mid-write) never sees half a file.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('whole', ['x.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see `atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` (NumPy/torch values allowed, see `to_jsonable`) as indented JSON to ``path``,
    atomically, creating its folder; returns the path."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def _checkpoint_io_base() -> type:
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    return TorchCheckpointIO


class SafeCheckpointIO(_checkpoint_io_base()):
    """Lightning's checkpoint I/O made safe for run folders: a save writes a temporary name and
    renames it (a kill mid-save leaves the previous ``last.ckpt`` whole, so ``--ckpt_path last`` /
    ``--resume`` work), and a load unpickles tensors and primitives only (``weights_only``), so a
    crafted checkpoint cannot run code; an unreadable one is a one-line `InputError`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        try:
            kwargs = {} if map_location is None else {"map_location": map_location}
            checkpoint = super().load_checkpoint(path, weights_only=True, **kwargs)
        except FileNotFoundError:
            raise InputError(f"checkpoint '{path}' not found; check the path") from None
        except Exception:  # noqa: BLE001 - a pickle beyond weights, a text file, a truncated one
            raise InputError(
                f"'{path}' is not a readable checkpoint (corrupt, truncated, or holding objects "
                "beyond weights and primitives, which are never unpickled)"
            ) from None
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise InputError(f"'{path}' is not a Lightning checkpoint (no state_dict)")
        return checkpoint


def write_run_files(out: str | Path, config: dict, metrics: dict) -> Path:
    """Write ``config.yaml`` (resolved), ``metrics.json`` and ``environment.json`` into ``out``,
    each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", yaml.safe_dump(to_jsonable(config), sort_keys=False))
    write_json(out / "metrics.json", metrics)
    write_json(out / "environment.json", environment())
    return out


FINISHED = "metrics.json"  # a run folder holding this holds a finished run
_LOCK = ".run.lock"


@contextlib.contextmanager
def claim_run_dir(
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    finished: str = FINISHED,
    resume_hint: str = "",
) -> Iterator[Path]:
    """Hold ``out`` for one writer while the block runs.

    A second writer gets a one-line `InputError` naming the holder; a folder that holds a finished
    run (``finished`` exists) is refused unless the run is resumed or ``overwrite`` is given, in
    which case its old results are removed first, so the folder never mixes two runs' files.
    ``resume_hint`` (e.g. ", --resume to continue it") joins the message where resuming exists.
    The lock is an OS file lock (`filelock`): it is released when the process ends, even by kill.
    """
    from filelock import FileLock, Timeout

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file, not a folder; choose a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(out / _LOCK, timeout=0)
        lock.acquire()
    except Timeout:
        holder = (
            (out / f"{_LOCK}.holder").read_text().strip()
            if (out / f"{_LOCK}.holder").is_file()
            else "another process"
        )
        raise InputError(
            f"run folder '{out}' is in use by {holder}; wait for it or choose another --out"
        ) from None
    except OSError as err:
        raise InputError(
            f"cannot write to --out '{out}' ({err.strerror}); choose a writable folder"
        ) from None
    try:
        done = out / finished
        if done.exists() and not resume:
            if not overwrite:
                raise InputError(
                    f"run folder '{out}' holds a finished run ({finished}); pass --overwrite to "
                    f"replace it{resume_hint} or choose another --out"
                )
            _clear_run_dir(out)
        (out / f"{_LOCK}.holder").write_text(
            f"pid {os.getpid()} on {platform.node()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )
        yield out
    finally:
        (out / f"{_LOCK}.holder").unlink(missing_ok=True)
        lock.release()


def _clear_run_dir(out: Path) -> None:
    """Remove a finished run's files (not the lock) before it is overwritten."""
    import shutil

    for child in out.iterdir():
        if child.name.startswith(_LOCK):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


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
    """Turn `InputError` (bad user input) and `OSError` (a path that cannot be read or written)
    into one line on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs) or 0
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
        except OSError as err:
            where = f" '{err.filename}'" if err.filename else ""
            print(f"error: {err.strerror or err}{where}; check the path", file=sys.stderr)
        raise SystemExit(2) from None

    return wrapper
