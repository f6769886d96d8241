"""Training sets built in parallel, chunk by chunk on disk, resumable after a kill.

`build_training_set` makes the same kind of file as `surrogates.data.simulate_training` (the
``.npz`` that `surrogates.data.load_training` reads) for any module-2, a density `Theory` or an
`EventGenerator`, but splits the θ rows into chunks and hands them to workers through
`surrogates.parallel.Engine`:

* ``engine="local"`` (default; ``"process"`` is the same): local processes (`concurrent.futures.ProcessPoolExecutor`,
  forkserver or spawn, one torch thread each); ``workers=1`` simulates in this process;
* ``engine="ray"``: a Ray cluster, an existing one at ``address`` (``auto``, ``host:6379``,
  ``ray://host:10001``) or a local one of ``workers`` CPUs (needs
  ``pip install 'surrogate-zoo[ray]'``);
* ``engine="dask"``: a Dask cluster, an existing one at ``address`` (e.g. workers started by a
  SLURM job) or a local one of ``workers`` processes (needs ``pip install 'surrogate-zoo[dask]'``).

Each finished chunk is written atomically into ``OUT.parts/chunk-NNNNNN.npz`` beside ``OUT``,
with ``OUT.parts/manifest.json`` recording what is being built (the module-2's description,
seed, sizes, chunk). A rerun of the same build skips the finished chunks, so a kill (even
``kill -9``) loses only the chunks in flight; a rerun with other settings is refused. When every
chunk exists they are merged atomically into ``OUT`` and the parts folder is removed.

Seeding. θ are drawn exactly as `simulate_training` draws them (same seed, same θ). An event
generator's row i is seeded ``seed_for(seed, i)``, so its set is the same for any chunk size,
worker count or engine, and equal to `simulate_training`'s. A density theory samples a chunk's
events in one vectorized call seeded ``seed_for(seed, chunk index)``: its set is the same for any
worker count or engine, but depends on the chunk size (stored in the file's meta) and differs
from the single stream of `simulate_training` (same θ and densities, other event draws).

The module-2 travels to the workers by pickle: a registered theory, or a generator whose
functions are defined at module level pickles by reference (the workers import that module, so it
must be importable there too). For local processes a lambda or a nested function cannot, and is
refused with one line before anything is written (Ray's and Dask's cloudpickle sends those by
value). A
module-2 built from a plug-in card travels as the card's absolute path, and each worker loads the
card itself: on a cluster the card and the files it names must be readable at that path there.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout

from surrogates.data import (
    DEFAULT_GRID_TOL,
    TrainingSet,
    check_grid_options,
    density_rows,
    generate_rows,
    grid_summary,
    training_meta,
)
from surrogates.errors import InputError
from surrogates.generators import seed_for
from surrogates.parallel import DASK_HINT, RAY_HINT, Engine
from surrogates.runs import atomic_path, to_jsonable, write_json
from surrogates.theory import get_theory
from surrogates.theory.base import Module2

__all__ = ["ENGINES", "DASK_HINT", "RAY_HINT", "DEFAULT_CHUNK", "build_training_set", "parts_dir"]

ENGINES = ("local", "process", "ray", "dask")  # "process": an older name of "local" (as in studies)
DEFAULT_CHUNK = 256  # θ rows per chunk: the most a kill loses per worker
MANIFEST = "manifest.json"
LOCK = ".lock"


@dataclass(frozen=True)
class Chunk:
    """Rows ``start:stop`` of the θ table, chunk number ``index``."""

    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"chunk-{self.index:06d}.npz"


@dataclass(frozen=True)
class Job:
    """What every chunk of one build shares (sent to each worker once)."""

    module2: Module2
    theta: np.ndarray
    events_per_param: int
    seed: int
    grid_size: int
    method: str
    grid: str  # "adaptive" or "chebyshev" ("auto" resolved; 2-D theories: their fixed grid)
    grid_tol: float
    design: dict | None = None  # the θ design when not uniform (`theta_design`), for the meta

    def __reduce__(self) -> tuple:
        """Pickled for the workers: a module-2 built from a plug-in card travels as the card's
        path and is rebuilt there from it (its functions live in a module imported from a file,
        which a worker cannot import by name); any other module-2 travels as itself."""
        values = tuple(getattr(self, f.name) for f in fields(self))
        card = getattr(self.module2, "card", None)
        if card is None:
            return Job, values
        return _job_from_card, (str(Path(card).resolve()), *values[1:])


def _job_from_card(card: str, *values: object) -> Job:
    """A job whose module-2 is the card at ``card`` (a path the building process typed or
    resolved, never a name read from a data file)."""
    return Job(get_theory(card), *values)


def parts_dir(out: str | Path) -> Path:
    """The folder of finished chunks of a build of ``out``: ``OUT.parts`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def plan_chunks(n_params: int, chunk: int) -> list[Chunk]:
    """The θ rows split into consecutive chunks of ``chunk`` rows (the last may be shorter)."""
    return [
        Chunk(i, start, min(start + chunk, n_params))
        for i, start in enumerate(range(0, n_params, chunk))
    ]


def theta_design(
    module2: Module2, log_uniform: list[str] | tuple[str, ...], fraction: float, floor: float
) -> dict | None:
    """The θ design of a training set, checked: None (uniform in the prior box) when
    ``log_uniform`` is empty; else in a share ``fraction`` of the rows the named parameters are
    drawn log-uniformly between ``floor`` × their upper bound (at least the lower one) and the
    upper bound, so that a parameter spanning decades (a normalization near 0) is sampled in
    each decade alike.

    Raises:
        InputError: an unknown or repeated name, a parameter whose prior box is not positive,
            ``fraction`` outside (0, 1] or ``floor`` outside (0, 1).
    """
    if not log_uniform:
        return None
    names = list(module2.param_names)
    low, high = module2.prior_low.tolist(), module2.prior_high.tolist()
    for name in log_uniform:
        if name not in names:
            raise InputError(
                f"--log-uniform names '{name}', not a parameter of {module2.name} "
                f"({', '.join(names)})"
            )
        j = names.index(name)
        if low[j] < 0 or high[j] <= 0:
            raise InputError(
                f"--log-uniform {name}: its prior [{low[j]:g}, {high[j]:g}] is not positive; "
                "a log-uniform draw needs a lower bound ≥ 0 and an upper bound > 0"
            )
    if len(set(log_uniform)) != len(log_uniform):
        raise InputError(f"--log-uniform names a parameter twice: {','.join(log_uniform)}")
    if not 0 < fraction <= 1:
        raise InputError(f"--log-fraction must be in (0, 1], got {fraction:g}")
    if not 0 < floor < 1:
        raise InputError(f"--log-floor must be in (0, 1), got {floor:g}")
    return {"log_uniform": list(log_uniform), "fraction": fraction, "floor": floor}


def draw_theta(
    module2: Module2, n_params: int, seed: int, design: dict | None = None
) -> np.ndarray:
    """θ (M, P) exactly as `simulate_training` draws them for this seed (uniform in the prior
    box); with a `theta_design`, its share of the rows (chosen at random) then has the named
    parameters redrawn log-uniformly, from a stream of their own (the uniform draw is unchanged)."""
    theta = module2.sample_prior(n_params, torch.Generator().manual_seed(seed)).numpy()
    if design:
        rng = np.random.default_rng([seed, 20261207])
        rows = np.flatnonzero(rng.random(n_params) < design["fraction"])
        names = list(module2.param_names)
        for name in design["log_uniform"]:
            j = names.index(name)
            high = float(module2.prior_high[j])
            low = max(float(module2.prior_low[j]), design["floor"] * high)
            theta[rows, j] = np.exp(rng.uniform(np.log(low), np.log(high), len(rows)))
    return theta


def simulate_chunk(job: Job, chunk: Chunk) -> dict[str, np.ndarray]:
    """The arrays of one chunk: theta, events, norms; for a density theory also densities, its
    grid (per θ (B, G, 1) for a 1-D theory's adaptive grids, else shared (G, d)) and, with
    adaptive grids, each θ's estimated interpolation error ``grid_error`` (B,)."""
    theta = job.theta[chunk.start : chunk.stop]
    if not job.module2.has_density:
        rows = range(chunk.start, chunk.stop)
        events, rates = generate_rows(job.module2, job.theta, rows, job.events_per_param, job.seed)
        return {"theta": theta, "events": events, "norms": rates}
    generator = torch.Generator().manual_seed(seed_for(job.seed, chunk.index))
    ts, errors = density_rows(
        job.module2,
        torch.as_tensor(theta, dtype=job.module2.dtype),
        job.events_per_param,
        generator,
        job.grid_size,
        method=job.method,
        grid=job.grid,
    )
    arrays = {
        "theta": theta,
        "events": ts.events,
        "norms": ts.norms,
        "grid": ts.grid,
        "densities": ts.densities,
        "meta": np.asarray(json.dumps(ts.meta)),
    }
    if errors:
        arrays["grid_error"] = torch.cat(errors).numpy()
    return arrays


def _chunk_task(job: Job, chunk: Chunk) -> dict[str, np.ndarray]:
    """One chunk's arrays, on a worker (`surrogates.parallel.Engine` pairs them with the chunk)."""
    return simulate_chunk(job, chunk)


# ---------------------------------------------------------------- the parts folder
def _manifest(job: Job, n_params: int, chunk: int) -> dict:
    """What a parts folder is a build of: a rerun must match it to reuse its chunks."""
    manifest = {
        "module2": job.module2.describe(),
        "seed": job.seed,
        "n_params": n_params,
        "events_per_param": job.events_per_param,
        "chunk": chunk,
    }
    if job.design:
        manifest["theta_design"] = job.design
    if job.module2.has_density:
        manifest.update(
            grid_size=job.grid_size, sampler=job.method, grid=job.grid, grid_tol=job.grid_tol
        )
    return to_jsonable(manifest)


def _differences(old: dict, new: dict) -> list[str]:
    return [
        f"{key} {json.dumps(old.get(key))} ≠ {json.dumps(new.get(key))}"
        for key in sorted({*old, *new})
        if old.get(key) != new.get(key)
    ]


def _check_parts(parts: Path, manifest: dict) -> bool:
    """True when ``parts`` holds chunks of this very build (resume); False when there is nothing
    to resume. Raises `InputError` when it holds another build's chunks."""
    if not parts.exists():
        return False
    if not parts.is_dir():
        raise InputError(f"'{parts}' is a file, not a parts folder; move it or pass --overwrite")
    path = parts / MANIFEST
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        if any(parts.glob("chunk-*.npz")):
            raise InputError(
                f"'{parts}' holds chunks but no {MANIFEST}; pass --overwrite to start again"
            ) from None
        return False
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"'{path}' is not JSON; pass --overwrite to start again") from None
    diff = _differences(old, manifest) if isinstance(old, dict) else ["not a JSON object"]
    if diff:
        raise InputError(
            f"'{parts}' holds chunks of another build ({'; '.join(diff)[:300]}); rerun with "
            "the same settings to resume it, or pass --overwrite to start again"
        )
    return True


def _finished(parts: Path, chunks: list[Chunk], job: Job) -> set[int]:
    """Indices of the chunks whose files are whole and hold their θ rows; leftovers of writes
    cut by a kill (``.*.part``) are removed."""
    for stray in parts.glob(".*.part"):
        stray.unlink(missing_ok=True)
    done = set()
    for chunk in chunks:
        path = parts / chunk.name
        if path.is_file() and _read_chunk(path, chunk, job) is not None:
            done.add(chunk.index)
    return done


def _read_chunk(path: Path, chunk: Chunk, job: Job) -> dict[str, np.ndarray] | None:
    """A chunk file's arrays, or None when it is unreadable or holds other θ rows."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception:  # noqa: BLE001 - any damage: the chunk is redone
        return None
    theta = job.theta[chunk.start : chunk.stop]
    if "theta" not in arrays or not np.array_equal(arrays["theta"], theta):
        return None
    return arrays


def _write_chunk(parts: Path, chunk: Chunk, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(parts / chunk.name) as tmp, tmp.open("wb") as f:
        np.savez(f, **arrays)


def _merge(parts: Path, chunks: list[Chunk], job: Job, chunk: int) -> TrainingSet:
    """The whole training set from its chunk files, in row order."""
    pieces = []
    for c in chunks:
        arrays = _read_chunk(parts / c.name, c, job)
        if arrays is None:
            raise InputError(f"chunk '{parts / c.name}' went missing or changed while merging")
        pieces.append(arrays)
    module2 = job.module2
    if module2.has_density:
        extra = json.loads(str(pieces[0]["meta"]))
        if module2.event_dim == 1:
            extra["grid"] = _grid_meta(pieces, job)
        meta = training_meta(module2, job.seed, job.events_per_param, **extra)
        meta.update(seeding="per-chunk", chunk=chunk)
        per_theta = pieces[0]["grid"].ndim == 3  # adaptive grids, one per θ; else one shared
        grid = np.concatenate([p["grid"] for p in pieces]) if per_theta else pieces[0]["grid"]
        densities = np.concatenate([p["densities"] for p in pieces])
    else:
        meta = training_meta(module2, job.seed, job.events_per_param, seeding="per-row")
        grid = densities = None
    if job.design:
        meta["theta_design"] = job.design
    return TrainingSet(
        theta=np.concatenate([p["theta"] for p in pieces]),
        events=np.concatenate([p["events"] for p in pieces]),
        grid=grid,
        densities=densities,
        norms=np.concatenate([p["norms"] for p in pieces]),
        meta=meta,
    )


def _grid_meta(pieces: list[dict[str, np.ndarray]], job: Job) -> dict:
    """meta["grid"] of the whole set: `grid_summary` over every chunk's grid errors, so a set
    above its tolerance warns once, as `simulate_training`'s does."""
    errors = [torch.as_tensor(p["grid_error"]) for p in pieces if "grid_error" in p]
    return grid_summary(job.grid, job.grid_size, job.grid_tol, errors, job.module2)


# ---------------------------------------------------------------- checks
def _check_sizes(n_params: int, events_per_param: int, chunk: int, workers: int) -> None:
    for name, value in (
        ("n-params", n_params),
        ("events-per-param", events_per_param),
        ("chunk", chunk),
        ("workers", workers),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"--{name} must be a whole number ≥ 1, got {value!r}")


def check_picklable(module2: Module2) -> None:
    """Raise a one-line `InputError` when the module-2 cannot travel to worker processes (a card
    travels as its path, see `Job`)."""
    if getattr(module2, "card", None) is not None:
        return
    try:
        pickle.dumps(module2)
    except Exception as err:  # noqa: BLE001 - PicklingError, AttributeError, TypeError alike
        raise InputError(
            f"module-2 '{module2.name}' cannot be sent to worker processes ({str(err)[:120]}): "
            "define its functions at module level in an importable module (not a lambda or a "
            "nested function), or use --workers 1"
        ) from None


# ---------------------------------------------------------------- the build
def build_training_set(
    module2: Module2,
    n_params: int,
    events_per_param: int,
    seed: int,
    out: str | Path,
    *,
    chunk: int = DEFAULT_CHUNK,
    workers: int = 1,
    engine: str = "local",
    address: str | None = None,
    grid_size: int = 128,
    method: str = "auto",
    grid: str = "auto",
    grid_tol: float = DEFAULT_GRID_TOL,
    progress: bool = True,
    overwrite: bool = False,
    design: dict | None = None,
) -> Path:
    """Simulate a training set into ``out`` chunk by chunk, in parallel, resumably.

    Args:
        module2: a density `Theory` or an `EventGenerator`.
        n_params: θ rows M, drawn from the prior box as `simulate_training` draws them.
        events_per_param: events K per channel per θ.
        seed: the set's seed (θ, and every row's or chunk's events).
        out: the ``.npz`` to write (its parts folder is ``OUT.parts`` beside it).
        chunk: θ rows per chunk file; a kill loses at most the chunks in flight.
        workers: local worker processes (``workers=1``: this process; Ray, Dask: the local
            cluster's size, ignored with ``address``).
        engine: ``"local"`` (or ``"process"``), ``"ray"`` or ``"dask"``.
        address: a running Ray cluster (``auto``, ``host:6379``) or Dask scheduler
            (``tcp://host:8786``); None starts a local cluster.
        grid_size, method: a density theory's grid size and event sampler.
        grid, grid_tol: how a 1-D density theory's grid nodes are placed ("auto" = "adaptive",
            per θ; or "chebyshev") and the L1 interpolation error they are checked against, as
            in `simulate_training`; the merged file's ``meta["grid"]`` summarizes every chunk.
        progress: a progress bar over chunks on stderr.
        overwrite: replace a finished ``out`` and drop another build's parts folder.
        design: the θ design from `theta_design` (None: uniform in the prior box); the file's
            ``meta["theta_design"]`` records it.

    Returns:
        ``out``, a training set `load_training` reads.

    Raises:
        InputError: bad sizes, an unknown engine, grid options the theory cannot use, a module-2
            that does not pickle, Ray or Dask missing,
            a finished ``out`` without ``overwrite``, or a parts folder of other settings;
            all before anything is written.
    """
    out = Path(out)
    _check_sizes(n_params, events_per_param, chunk, workers)
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    check_grid_options(module2, grid, grid_tol, "--")
    if module2.has_density and (
        isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 2
    ):
        raise InputError(f"--grid-size must be a whole number ≥ 2, got {grid_size!r}")
    if out.exists() and not overwrite:
        raise InputError(f"'{out}' exists; pass --overwrite to replace it")
    job = Job(
        module2,
        draw_theta(module2, n_params, seed, design),
        events_per_param,
        seed,
        grid_size,
        method,
        "adaptive" if grid == "auto" and module2.event_dim == 1 else grid,
        grid_tol,
        design,
    )
    chunks = plan_chunks(n_params, chunk)
    parts, manifest = parts_dir(out), _manifest(job, n_params, chunk)
    resuming = False if overwrite else _check_parts(parts, manifest)
    engine = "local" if engine == "process" else engine
    if engine == "local" and workers > 1:
        check_picklable(module2)  # (Ray's and Dask's cloudpickle send even a lambda by value)
    pool = Engine(engine, workers, address)
    with pool:
        with _one_builder(parts, out, overwrite):
            if not resuming:
                write_json(parts / MANIFEST, manifest)
            done = _finished(parts, chunks, job)
            todo = [c for c in chunks if c.index not in done]
            _run(pool.imap(_chunk_task, job, todo), parts, len(chunks), len(done), progress)
            ts = _merge(parts, chunks, job, chunk)
            ts.save(out)
            shutil.rmtree(parts)
    return out


@contextmanager
def _one_builder(parts: Path, out: Path, overwrite: bool) -> Iterator[None]:
    """Hold ``parts/.lock`` for the build: a second build of the same ``out`` at the same time
    is refused (two writers would redo each other's chunks). With ``overwrite``, what the
    folder held is cleared first."""
    if overwrite and parts.is_file():
        parts.unlink()
    parts.mkdir(parents=True, exist_ok=True)
    lock = FileLock(parts / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise InputError(
            f"another build of '{out}' is running (it holds '{parts / LOCK}'); wait for it to "
            "finish or stop it"
        ) from None
    try:
        if overwrite:
            for entry in parts.iterdir():
                if entry.name != LOCK:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        yield
    finally:
        lock.release()


def _run(
    results: Iterator[tuple[Chunk, dict[str, np.ndarray]]],
    parts: Path,
    total: int,
    done: int,
    progress: bool,
) -> None:
    """Write each chunk as it arrives, with a progress bar over chunks."""
    from tqdm.auto import tqdm

    with tqdm(
        total=total, initial=done, unit="chunk", desc="training set", disable=not progress
    ) as bar:
        for chunk, arrays in results:
            _write_chunk(parts, chunk, arrays)
            bar.update(1)
