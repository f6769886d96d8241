"""Experiment tracking: wandb runs that compare themselves, and offline runs read back.

Every fit (``surrogates.fit``, ``inverse.fit``) logs to CSV and, unless ``WANDB_MODE=disabled``,
to a wandb run made by `wandb_logger`: project ``surrogate-zoo``, ``group`` = model family (or
``inverse``), ``job_type`` = ``fit`` / ``outer-gan``, tags (family, backend, theory, source), and
the resolved config (family, backend, theory, data, seed). `finish_wandb` writes the final
``metrics.json`` as the run summary, the PNG plots as images and a per-run table (held-out
fidelity, or recovered θ), so the project page compares runs without manual work.

wandb is offline unless ``WANDB_MODE=online``; without a network an online run falls back to
offline after ``init_timeout`` seconds instead of failing, and ``wandb sync DIR/wandb/offline-run-*``
uploads it later. `read_wandb_run` reads an offline run's ``.wandb`` file back (config, summary,
history, images) for the local dashboard, with wandb's own protobuf classes.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from surrogates.errors import InputError
from surrogates.runs import to_jsonable

if TYPE_CHECKING:
    from pytorch_lightning.loggers import WandbLogger

__all__ = [
    "wandb_mode",
    "PROJECT",
    "wandb_logger",
    "finish_wandb",
    "per_name",
    "WandbRun",
    "read_wandb_run",
]

PROJECT = "surrogate-zoo"


WANDB_MODES = ("offline", "online", "disabled", "dryrun", "run")


def wandb_mode() -> str:
    """``WANDB_MODE`` (``offline`` when unset), or a one-line error for a value wandb does not know:
    an unknown mode would otherwise run offline without a word. Call it before writing anything."""
    mode = os.environ.setdefault("WANDB_MODE", "offline")
    if mode not in WANDB_MODES:
        raise InputError(
            f"WANDB_MODE '{mode}' is not a wandb mode; use offline (the default), online or disabled"
        )
    return mode


def wandb_logger(
    out: Path,
    *,
    group: str,
    job_type: str,
    tags: list[str],
    config: dict | None = None,
    init_timeout: float = 30.0,
) -> WandbLogger | None:  # wandb itself is imported lazily
    """A Lightning `WandbLogger` for a run in ``out``, or None when ``WANDB_MODE=disabled``.

    Offline by default (``WANDB_MODE`` unset becomes ``offline``). With ``WANDB_MODE=online`` the
    run is started here, so that a missing network or key shows now: after ``init_timeout``
    seconds the run is kept offline with a one-line notice instead.
    """
    from pytorch_lightning.loggers import WandbLogger

    mode = wandb_mode()
    if mode == "disabled":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    kwargs = dict(
        project=PROJECT,
        name=Path(out).name,
        group=group,
        job_type=job_type,
        save_dir=str(out),
        tags=[t for t in dict.fromkeys(tags) if t],
        config=to_jsonable(config or {}),
        settings=wandb.Settings(init_timeout=init_timeout),
    )
    if mode != "online":
        return WandbLogger(offline=True, **kwargs)
    logger = WandbLogger(offline=False, **kwargs)
    try:
        logger.experiment  # noqa: B018 - starts the run (contacts the server) now
    except Exception as err:  # noqa: BLE001 - any failure to reach wandb: stay offline
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(
            f"wandb: online run not started ({first}); logging offline instead, upload later "
            f"with `wandb sync {out}/wandb/offline-run-*`",
            file=sys.stderr,
        )
        os.environ["WANDB_MODE"] = "offline"
        wandb.teardown()  # forget the online settings of the failed start
        kwargs["settings"] = wandb.Settings(mode="offline")
        logger = WandbLogger(offline=True, mode="offline", **kwargs)
    return logger


def finish_wandb(
    loggers: list,
    summary: dict,
    images: dict[str, Path] | None = None,
    table: tuple[str, list[str], list[list]] | None = None,
    scalars: dict[str, float] | None = None,
) -> None:
    """Close the wandb run among ``loggers`` (if any) with the final results.

    ``summary`` (the run's ``metrics.json``) becomes the run summary, with ``scalars`` (per
    parameter numbers such as ``pull/N_u``, which the project page can chart) beside it;
    ``images`` (name → PNG) are logged as images and ``table`` = (name, columns, rows) as a
    `wandb.Table`.
    """
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        import wandb

        run = logger.experiment
        run.summary.update(to_jsonable(summary) | dict(scalars or {}))
        logs: dict[str, Any] = {
            name: wandb.Image(str(path)) for name, path in (images or {}).items() if path.is_file()
        }
        if table is not None:
            name, columns, rows = table
            logs[name] = wandb.Table(columns=columns, data=to_jsonable(rows))
        if logs:
            run.log(logs)
        run.finish()


def per_name(metrics: dict, key: str, names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """``metrics[key]`` (one number per name) as ``{"key/name": value}``, for wandb's charts."""
    values = metrics.get(key)
    if values is None or isinstance(values, (str, dict)) or len(values) != len(names):
        return {}
    return {f"{key}/{n}": float(v) for n, v in zip(names, values, strict=True)}


# --- reading an offline run back -------------------------------------------------------------

_HEADER = b":W&B"
# the .wandb file is a LevelDB-style log: 32 KiB blocks of (crc, length, type) records
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path):  # noqa: ANN202 - generator of raw protobuf records
    data = path.read_bytes()
    if not data.startswith(_HEADER):
        raise ValueError(f"{path} is not a wandb run file (no ':W&B' header)")
    pos, parts = 7, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # a block's tail too short for a record header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if len(chunk) < length:  # a run still being written (or killed): stop at the torn record
            return
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            parts = chunk
        elif kind == _MIDDLE:
            parts += chunk
        elif kind == _LAST:
            yield parts + chunk
            parts = b""


def _set_nested(target: dict, item: Any) -> None:  # noqa: ANN401 - a protobuf item
    keys = list(item.nested_key) or [item.key]
    try:
        value = json.loads(item.value_json)
    except json.JSONDecodeError:
        value = item.value_json
    for k in keys[:-1]:
        target = target.setdefault(k, {})
    target[keys[-1]] = value


@dataclass
class WandbRun:
    """An offline wandb run read back from disk."""

    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)


def read_wandb_run(path: str | Path) -> WandbRun:
    """Read an offline wandb run directory (``.../wandb/offline-run-*``) or its ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(
            f"no run-*.wandb file in {path}: not an offline wandb run directory"
        )
    run = WandbRun(path=files[0].parent)
    for raw in _records(files[0]):
        record = pb.Record()
        try:
            record.ParseFromString(raw)
        except Exception:  # noqa: BLE001 - a damaged record: skip it, keep the rest
            continue
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name = r.run_id, r.display_name or r.run_id
            run.group, run.job_type, run.tags = r.run_group, r.job_type, list(r.tags)
            for item in r.config.update:
                _set_nested(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set_nested(run.config, item)
        elif kind == "summary":
            for item in record.summary.update:
                _set_nested(run.summary, item)
        elif kind == "history":
            row: dict = {}
            for item in record.history.item:
                _set_nested(row, item)
            run.history.append(row)
    run.config.pop("_wandb", None)
    run.summary.pop("_wandb", None)
    for image in sorted((run.path / "files" / "media" / "images").glob("*.png")):
        run.images[image.stem.rsplit("_", 2)[0]] = image  # NAME_STEP_HASH.png
    return run
