"""One picklable job mapped over many tasks on local processes or a Dask cluster.

`Engine` is what `surrogates.datasets.build_training_set` (training-set chunks) and
`inverse.study` (pseudo-experiments) run on:

* ``engine="local"``: local worker processes (`concurrent.futures.ProcessPoolExecutor`, forkserver
  where there is one, else spawn), one torch thread each, at most ``workers`` tasks in flight (so a
  kill loses at most that many); ``workers=1`` runs the tasks in this process, one after another;
* ``engine="dask"``: Dask distributed, a running scheduler at ``address`` (e.g. workers started by
  a SLURM job, see docs/guide/studies.md) or a new local cluster of ``workers`` processes with one
  thread each (needs ``pip install 'surrogate-zoo[dask]'``).

``Engine.imap(fn, shared, tasks)`` yields ``(task, fn(shared, task))`` as each finishes, in no set
order. ``fn`` must be a module-level function; ``shared`` (what every task needs: a theory, a
config) is sent to each worker once; both travel by pickle (Dask: cloudpickle). A worker process
exits when the process that started it dies, so a ``kill -9`` leaves no orphans running.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

import torch

from surrogates.errors import InputError

__all__ = ["ENGINES", "DASK_HINT", "Engine"]

ENGINES = ("local", "dask")
DASK_HINT = "pip install 'surrogate-zoo[dask]'"

Task = Any
Job = Callable[[Any, Task], Any]  # fn(shared, task) -> result

# A worker started for `python -m pkg.mod` runs pkg.mod again as its main module (multiprocessing
# does so by name) after the forkserver imported it for the job: runpy then warns once per worker
# that the module was already imported. Harmless here; the filter is inherited by the workers.
warnings.filterwarnings(
    "ignore", message=r".*found in sys\.modules after import of package", category=RuntimeWarning
)

_FN: Job | None = None  # what a local worker process runs (set by its initializer)
_SHARED: Any = None


def _init_worker(fn: Job, shared: Any) -> None:
    """A local worker: one torch thread (the workers share the cores), the job kept, and an exit
    when the process that started it dies."""
    global _FN, _SHARED
    torch.set_num_threads(1)
    _FN, _SHARED = fn, shared
    parent = multiprocessing.parent_process()  # the starting process, even under forkserver
    if parent is not None:

        def watch() -> None:
            parent.join()
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()


def _local_call(task: Task) -> tuple[Task, Any]:
    assert _FN is not None, "worker started without its job"
    return task, _FN(_SHARED, task)


def _dask_call(fn: Job, shared: Any, task: Task) -> tuple[Task, Any]:
    torch.set_num_threads(1)
    return task, fn(shared, task)


def _context(fn: Job) -> multiprocessing.context.BaseContext:
    """Forkserver where there is one (POSIX): a server that imported the job's module once forks
    the workers, so each starts in a fraction of a second; spawn elsewhere (each worker imports)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # the job's own module; "__main__" only where the job lives there (a script): preloading the
    # main module of `python -m pkg.mod` imports pkg.mod a second time under runpy's warning
    main = ["__main__"] if fn.__module__ == "__main__" else []
    context.set_forkserver_preload([*main, __name__, fn.__module__])
    return context


class Engine:
    """Where tasks run: local processes or a Dask cluster (see the module docstring).

    Args:
        engine: ``"local"`` or ``"dask"``.
        workers: local processes, or the size of a new local Dask cluster (ignored with
            ``address``).
        address: a running Dask scheduler (``tcp://host:8786``) or a scheduler file
            (``scheduler.json``); None starts a local cluster.

    Raises:
        InputError: an unknown engine, ``workers`` not a whole number ≥ 1, Dask missing, or a
            scheduler that cannot be reached; before any task runs.
    """

    def __init__(self, engine: str = "local", workers: int = 1, address: str | None = None) -> None:
        if engine not in ENGINES:
            raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"--workers must be a whole number ≥ 1, got {workers!r}")
        if address is not None and engine != "dask":
            raise InputError("--address names a Dask scheduler; pass it with --engine dask")
        self.engine, self.workers, self.address = engine, workers, address
        self.client: Any = None
        self._cluster: Any = None
        if engine == "dask":
            self._start_dask()

    def _start_dask(self) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise InputError(f"engine 'dask' needs dask.distributed: {DASK_HINT}") from None
        if self.address:
            is_file = self.address.endswith(".json")
            if is_file and not os.path.isfile(self.address):
                raise InputError(
                    f"Dask scheduler file '{self.address}' does not exist; start the scheduler "
                    "with --scheduler-file first or check --address"
                )
            try:
                kw = {"scheduler_file": self.address} if is_file else {"address": self.address}
                self.client = Client(**kw, timeout=30)
            except (OSError, TimeoutError) as err:
                raise InputError(
                    f"cannot reach the Dask scheduler at '{self.address}' ({err}); start it "
                    "first or check --address"
                ) from None
            return
        self._cluster = LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client = Client(self._cluster)

    def describe(self) -> str:
        """The engine in words, e.g. for a manifest or a log line."""
        if self.engine == "local":
            return f"local, {self.workers} worker process{'es' if self.workers > 1 else ''}"
        where = self.address or "local cluster"
        return f"dask ({where}), {self.n_workers} workers"

    @property
    def n_workers(self) -> int:
        """Workers that run tasks at once (a Dask cluster's current worker threads)."""
        if self.client is None:
            return self.workers
        return max(1, sum(self.client.nthreads().values()))

    def imap(self, fn: Job, shared: Any, tasks: Iterable[Task]) -> Iterator[tuple[Task, Any]]:
        """``(task, fn(shared, task))`` for every task, as each finishes."""
        tasks = list(tasks)
        if not tasks:
            return iter(())
        if self.engine == "dask":
            return self._dask(fn, shared, tasks)
        if self.workers > 1 and len(tasks) > 1:
            return self._processes(fn, shared, tasks, min(self.workers, len(tasks)))
        return ((task, fn(shared, task)) for task in tasks)

    @staticmethod
    def _processes(
        fn: Job, shared: Any, tasks: list[Task], workers: int
    ) -> Iterator[tuple[Task, Any]]:
        pool = ProcessPoolExecutor(
            workers, mp_context=_context(fn), initializer=_init_worker, initargs=(fn, shared)
        )
        try:
            queue, running = list(tasks), set()
            while queue or running:
                while queue and len(running) < workers:
                    running.add(pool.submit(_local_call, queue.pop(0)))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _dask(self, fn: Job, shared: Any, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        from dask.distributed import as_completed

        client = self.client
        remote = client.scatter(shared, broadcast=True)
        futures = [client.submit(_dask_call, fn, remote, task, pure=False) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)

    def close(self) -> None:
        """Close the Dask client (and the local cluster this engine started)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
