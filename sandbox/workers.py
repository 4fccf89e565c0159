"""Worker processes and Dask clusters: the one way the sandbox spreads work.

`map_tasks` applies a function to tasks here, in a pool of local processes, or on a
Dask cluster; the engine (`sandbox.optim.engine.descend`) and the sweeps
(`sandbox.runs.sweep.run`) both go through it. Every worker is set up by
`start_worker` (malloc tuning, Ctrl-C left to the parent) and, on a cluster,
`prepare_worker` (the losses of the run built once, so a module a worker cannot
import stops the run before any task).
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence, TypeVar

from sandbox._types import Loss
from sandbox.losses.spec import adopt, get_loss

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext
    from multiprocessing.pool import Pool

    from distributed import Client

_Task = TypeVar("_Task")
_Result = TypeVar("_Result")


def map_tasks(function: Callable[[_Task], _Result], tasks: Sequence[_Task], workers: int = 1,
              scheduler: str | None = None, prepare: Callable[[], object] | None = None, ordered: bool = True
              ) -> Iterator[_Result]:
    """Apply `function` to every task: here, in `workers` processes, or on a Dask cluster.

    The results come in the tasks' order, or with ``ordered=False`` as they finish
    (a sweep stores each group of cells as soon as it is done). On a cluster,
    ``prepare()`` runs on every worker first, so that a loss a worker cannot import
    stops the run before any task (`prepare_worker`).
    """
    if scheduler is not None:
        with dask_client(scheduler, prepare) as client:
            futures = client.map(function, tasks, pure=False)  # the cluster runs them all
            if ordered:
                for future in futures:
                    yield future.result()
            else:
                from distributed import as_completed
                for _, result in as_completed(futures, with_results=True):
                    yield result
        return
    if workers == 1 or len(tasks) <= 1:
        _tune_malloc()
        yield from map(function, tasks)
        return
    with process_pool(min(workers, len(tasks))) as pool:
        yield from (pool.imap if ordered else pool.imap_unordered)(function, tasks)


def forks() -> bool:
    """Whether worker processes start by fork (inheriting everything) rather than spawn."""
    return process_context().get_start_method() == "fork"


def process_context() -> BaseContext:
    """The multiprocessing context of the worker processes.

    The start method set with ``multiprocessing.set_start_method``, if any; otherwise
    fork where the system has it (workers start at once and inherit what this
    process defined), else spawn.
    """
    chosen = multiprocessing.get_start_method(allow_none=True)
    if chosen is None:
        chosen = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(chosen)


def process_pool(workers: int) -> Pool:
    """A pool of `workers` processes, each set up by `start_worker`."""
    return process_context().Pool(workers, initializer=start_worker)


@contextlib.contextmanager
def dask_client(scheduler: str, prepare: Callable[[], object] | None = None) -> Iterator[Client]:
    """A ``dask.distributed`` client of the scheduler at `scheduler`, every worker set up by
    `start_worker` and then ``prepare()``; ValueError if dask.distributed is missing."""
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ValueError("a scheduler needs dask.distributed: pip install 'giou-sandbox[dask]'") from None
    with Client(scheduler) as client:
        client.run(start_worker)
        if prepare is not None:
            client.run(prepare)
        yield client


def prepare_worker(losses: Iterable[str | Loss], registered: dict[str, str]) -> None:
    """Make a worker able to run `losses` (specs): register what `travelling` sent, build each once.

    On a Dask cluster this runs on every worker before any task, so that a module
    a worker cannot import is an error at once, not part-way through a run.
    """
    adopt(registered)
    for loss in losses:
        get_loss(loss)


def start_worker() -> None:
    """Set up a worker process: the engine's malloc tuning, and Ctrl-C left to the process that runs it.

    A terminal's Ctrl-C reaches the whole process group; the parent stops its pool
    and says what was kept, and workers that raised too would only add tracebacks.
    """
    _tune_malloc()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _tune_malloc() -> None:
    """Keep freed memory in the heap instead of returning it to the system after each array.

    glibc serves allocations above 128 KiB with mmap and frees them with munmap, so
    each of the thousands of temporary arrays of a chunk costs page faults; with a
    higher threshold the batch runs about 1.5 times faster. No effect elsewhere.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
