"""One picklable job mapped over many tasks on local processes, a Ray cluster or a Dask cluster.

`Engine` is what `surrogates.datasets.build_training_set` (training-set chunks) and
`inverse.study` (pseudo-experiments) run on:

* ``engine="local"``: local worker processes (`concurrent.futures.ProcessPoolExecutor`, forkserver
  where there is one, else spawn), one torch thread each, at most ``workers`` tasks in flight (so a
  kill loses at most that many); ``workers=1`` runs the tasks in this process, one after another;
* ``engine="ray"``: Ray, a running cluster at ``address`` (``"auto"``, ``"host:port"`` of its head,
  or ``"ray://host:10001"`` through Ray Client; e.g. nodes started by ``ray start`` in a SLURM job)
  or a new local cluster on this machine of ``workers`` CPUs, one single-thread task per CPU
  (needs ``pip install 'surrogate-zoo[ray]'``); a process that already joined a Ray cluster
  (``ray.init``) runs on that one and leaves it running;
* ``engine="dask"``: Dask distributed, a running scheduler at ``address`` (e.g. workers started by
  a SLURM job, see docs/guide/studies.md) or a new local cluster of ``workers`` processes with one
  thread each (needs ``pip install 'surrogate-zoo[dask]'``).

``Engine.imap(fn, shared, tasks)`` yields ``(task, fn(shared, task))`` as each finishes, in no set
order. ``fn`` must be a module-level function; ``shared`` (what every task needs: a theory, a
config) is sent to each worker once (Ray: ``ray.put`` once); both travel by pickle (Dask, Ray:
cloudpickle). A local worker process exits when the process that started it dies, so a ``kill -9``
leaves no orphans running.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

import torch

from surrogates.errors import InputError

__all__ = ["ENGINES", "DASK_HINT", "RAY_HINT", "Engine", "check_ray_address"]

ENGINES = ("local", "ray", "dask")
DASK_HINT = "pip install 'surrogate-zoo[dask]'"
RAY_HINT = "pip install 'surrogate-zoo[ray]'"

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


def _ray_call(fn: Job, shared: Any, task: Task) -> tuple[Task, Any]:
    torch.set_num_threads(1)
    return task, fn(shared, task)


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """One ``InputError`` line unless a Ray cluster's ``host:port`` (or ``ray://host:port``)
    accepts a connection within ``timeout`` s: Ray itself retries a dead address for minutes.
    ``auto`` is left to Ray (it fails at once when no cluster runs here)."""
    if address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(
            f"--address '{address}' is not a Ray cluster's address: give auto, HOST:PORT or "
            "ray://HOST:PORT"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise InputError(
            f"cannot reach the Ray cluster at '{address}' ({err.strerror or err}); start it "
            "first (ray start --head) or check --address"
        ) from None


def _quiet_token_notice(record: logging.LogRecord) -> bool:
    """Drop Ray's notice that a new local cluster has token authentication on (its default; the
    warning that it is off still shows)."""
    return "Token authentication is enabled" not in record.getMessage()


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
    """Where tasks run: local processes, a Ray or a Dask cluster (see the module docstring).

    Args:
        engine: ``"local"``, ``"ray"`` or ``"dask"``.
        workers: local processes, or the size of a new local Ray or Dask cluster (ignored with
            ``address``).
        address: a running Ray cluster (``auto``, ``host:6379``, ``ray://host:10001``), or a
            running Dask scheduler (``tcp://host:8786``) or its scheduler file
            (``scheduler.json``); None starts a local cluster.

    Raises:
        InputError: an unknown engine, ``workers`` not a whole number ≥ 1, Ray or Dask missing,
            or a cluster that cannot be reached; before any task runs.
    """

    def __init__(self, engine: str = "local", workers: int = 1, address: str | None = None) -> None:
        if engine not in ENGINES:
            raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"--workers must be a whole number ≥ 1, got {workers!r}")
        if address is not None and engine == "local":
            raise InputError(
                "--address names a Ray cluster or a Dask scheduler; pass it with --engine ray "
                "or --engine dask"
            )
        self.engine, self.workers, self.address = engine, workers, address
        self.client: Any = None
        self._cluster: Any = None
        self._ray_joined = False  # this engine called ray.init (and calls ray.shutdown)
        if engine == "dask":
            self._start_dask()
        elif engine == "ray":
            self._start_ray()

    def _start_ray(self) -> None:
        try:
            import ray
        except ImportError:
            raise InputError(f"engine 'ray' needs Ray: {RAY_HINT}") from None
        if self.address:
            check_ray_address(self.address)
        if ray.is_initialized():  # this process already joined a cluster: run there, keep it
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
        quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        if self.address:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise InputError(
                    f"cannot reach the Ray cluster at '{self.address}' ({first}); start it "
                    "first (ray start --head) or check --address"
                ) from None
        else:
            auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
            auth.addFilter(_quiet_token_notice)
            try:
                ray.init(num_cpus=self.workers, **quiet)
            finally:
                auth.removeFilter(_quiet_token_notice)
        self._ray_joined = True

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

    @property
    def ray_address(self) -> str | None:
        """The Ray cluster's head address (``host:port``) another process can join, e.g.
        ``python -m surrogates.hpo flow --evaluator ray --address ADDRESS``; None off Ray."""
        if self.engine != "ray":
            return None
        import ray

        return ray.get_runtime_context().gcs_address

    def describe(self) -> str:
        """The engine in words, e.g. for a manifest or a log line."""
        if self.engine == "local":
            return f"local, {self.workers} worker process{'es' if self.workers > 1 else ''}"
        where = self.address or "local cluster"
        return f"{self.engine} ({where}), {self.n_workers} workers"

    @property
    def n_workers(self) -> int:
        """Workers that run tasks at once (a Ray cluster's CPUs now, a Dask cluster's current
        worker threads)."""
        if self.engine == "ray":
            import ray

            return max(1, int(ray.cluster_resources().get("CPU", 0)))
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
        if self.engine == "ray":
            return self._ray(fn, shared, tasks)
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

    @staticmethod
    def _ray(fn: Job, shared: Any, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        import ray

        call = ray.remote(num_cpus=1)(_ray_call)
        remote = ray.put(shared)  # once; each task gets the object, not a copy in its arguments
        running = [call.remote(fn, remote, task) for task in tasks]
        try:
            while running:
                done, running = ray.wait(running, num_returns=1)
                try:
                    yield ray.get(done[0])
                except ray.exceptions.RayTaskError as err:
                    # the job's own error (an InputError is one line), not Ray's wrapper
                    cause = getattr(err, "cause", None)
                    raise (cause if isinstance(cause, Exception) else err) from None
        finally:
            for ref in running:  # a stopped run: what has not finished is not run further
                ray.cancel(ref)

    def close(self) -> None:
        """Close the Dask client and disconnect from Ray; a local cluster this engine started is
        shut down with it, a running cluster at ``address`` (or one this process had joined
        before) is left running."""
        if self._ray_joined:
            import ray

            ray.shutdown()  # for a cluster at an address: only this driver leaves it
            self._ray_joined = False
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
