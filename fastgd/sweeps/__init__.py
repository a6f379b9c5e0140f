"""Hyper-parameter sweeps on Dask: the book's experiments (eta, the hidden layer, the
mini-batch size, the seed) as a grid of independent training runs.

    >>> import fastgd
    >>> training_data, validation_data, test_data = fastgd.load_mnist()
    >>> table = fastgd.sweep({"eta": [0.5, 1, 3, 10], "hidden": [30, 100], "seed": [1, 2]},
    ...                      training_data, validation_data, epochs=10)
    >>> table.to_csv("sweep.csv")

Each point of the grid trains ``Network(sizes, seed=seed, dtype=dtype).SGD(training_data,
epochs, mini_batch_size, eta, test_data=eval_data, threads=1)`` on a Dask worker, one
numba thread per worker: many small runs side by side use the cores better than one
run at a time split across them.  Each run is the same computation as in a plain
process, so its results are bit for bit those of the same call made directly.

Dask (``pip install 'fastgd[dask]'``) is imported only when a sweep runs.  Like any
code that starts worker processes by spawning, a script that calls ``sweep`` must do
so under ``if __name__ == "__main__":``.
"""

# This package is fastgd.sweeps, not fastgd.sweep: importing a submodule named
# fastgd.sweep would put the module where the function fastgd.sweep is.
#
#   grid.py     the points of a grid (POINT_COLUMNS)
#   points.py   one point's run, its row (RESULT_COLUMNS), the kernels compiled first
#   cluster.py  the Dask cluster: started locally or connected to, the points sent to it
#   table.py    SweepTable: the rows, as CSV, JSON and Markdown

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from numpy.typing import DTypeLike

from .._validation import check_int
from ..dataset import Data

from .cluster import DASK_HINT, available_cores, connected, local_cluster, run_points
from .grid import GRID_KEYS, POINT_COLUMNS, grid_points, plain
from .points import RESULT_COLUMNS, needs_compiling, network_shapes, run_point, summarize, warm
from .table import COLUMNS, SweepTable

# What a point whose training fails does: stops there, or goes on to its last epoch
# (never "raise": one failed point must not end the others).
ON_DIVERGENCE = ("stop", "warn")

__all__ = ["sweep", "SweepTable", "grid_points", "run_point", "summarize", "network_shapes",
           "needs_compiling", "warm", "available_cores", "local_cluster", "DASK_HINT",
           "GRID_KEYS", "POINT_COLUMNS", "RESULT_COLUMNS", "COLUMNS", "ON_DIVERGENCE"]


def sweep(grid: Mapping[str, Sequence[Any]], training_data: Data, eval_data: Data, *,
          epochs: int = 30, eta: float = 3.0, sizes: Sequence[int] | None = None,
          mini_batch_size: int = 10, seed: int = 0, dtype: DTypeLike = "float32",
          on_divergence: str = "stop", client: Any = None, n_workers: int | None = None,
          progress: Callable[..., object] | None = None) -> SweepTable:
    """Train the network at every point of ``grid`` on a Dask cluster; returns a
    ``SweepTable`` with one row per point, in grid order.

    Parameters
    ----------
    grid : dict of lists
        Values to try for any of ``eta``, ``sizes`` (lists of layer sizes) or
        ``hidden`` (hidden layer sizes: 30 means [n_in, 30, n_out], (30, 30) two
        hidden layers), ``mini_batch_size``, ``seed``, ``epochs`` and ``dtype``.
        The points are every combination, the first key varying slowest.
    training_data, eval_data : (X, y)
        Each point trains on ``training_data`` and is evaluated on ``eval_data``
        after each epoch: choose hyper-parameters on validation data, not on the
        test data.
    epochs, eta, sizes, mini_batch_size, seed, dtype :
        The values of what ``grid`` does not vary.  ``sizes=None`` is the book's
        [n_in, 30, n_out], n_in the inputs' length and n_out one neuron per label.
    on_divergence : "stop" (default) or "warn"
        What a run does when its training fails (see ``fastgd.training.diagnose``):
        stop there, which saves the sweep's time, or go on to its last epoch (a
        saturated start sometimes recovers).
    client : None, a scheduler address, or a ``distributed.Client``
        None starts a ``LocalCluster`` of ``n_workers`` worker processes (default:
        one per core, at most one per point), each running one numba thread, and
        closes it afterwards.  An address (``"tcp://host:8786"``) or a Client uses
        that cluster; it must be able to import fastgd.
    progress : callable, optional
        ``progress(0, total, None)`` once the work is sent, then
        ``progress(done, total, row)`` as each point finishes.

    A point that fails (bad values, an error in training, a worker that died) is a
    row whose ``error`` holds what went wrong; the other points go on.  A run that
    diverges is a result, not an error: its ``diverged`` holds the verdict.

    Interrupted (KeyboardInterrupt, or any exception while the points run), the
    exception raised carries ``table``: the SweepTable of the points finished so
    far, the others rows whose ``error`` says they did not finish, and
    ``info["incomplete"]`` how many did.

    The kernels of each network shape are compiled (or loaded from numba's cache) in
    this process first, so that the workers load them from the on-disk cache
    instead of each compiling them; a cluster on other machines shares that only
    through a shared cache directory (``FASTGD_CACHE_DIR``).
    """
    fixed = dict(epochs=epochs, eta=eta, sizes=sizes, mini_batch_size=mini_batch_size,
                 seed=seed, dtype=dtype)
    todo = grid_points(grid, training_data, eval_data, **fixed)
    if on_divergence not in ON_DIVERGENCE:
        raise ValueError(f"on_divergence must be {' or '.join(map(repr, ON_DIVERGENCE))}, "
                         f"got {on_divergence!r}")
    if n_workers is not None and client is not None:
        raise ValueError("n_workers sizes the local cluster that sweep starts; it cannot be "
                         "given with client")
    if n_workers is not None:
        check_int(n_workers, "n_workers", minimum=1)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a function progress(done, total, row), got "
                        f"{progress!r}"[:200])
    try:
        import distributed
    except ImportError:
        raise ImportError(DASK_HINT) from None
    if client is not None and not isinstance(client, (str, distributed.Client)):
        raise TypeError(f"client must be None, a scheduler address or a distributed.Client, "
                        f"got {type(client).__name__} {client!r}"[:200])
    began = time.perf_counter()
    warm(network_shapes(todo), training_data)
    if n_workers is None:
        n_workers = min(len(todo), available_cores())
    fixed = {key: todo[0][key] for key in POINT_COLUMNS
             if key not in grid and not (key == "sizes" and "hidden" in grid)}
    # unpacked, not indexed: a Dataset unpacks as (X, y) but has no [1]
    (_, train_y), (_, eval_y) = training_data, eval_data
    info = dict(grid=plain({key: list(values) for key, values in grid.items()}), fixed=fixed,
                on_divergence=on_divergence, train_size=len(train_y),
                eval_size=len(eval_y), workers=0,
                scheduler=client if isinstance(client, str) else None)
    try:
        with connected(client, n_workers) as dask_client:
            info["workers"] = len(dask_client.nthreads())
            info["scheduler"] = None if client is None else dask_client.scheduler.address
            rows = run_points(dask_client, distributed, todo, (training_data, eval_data),
                              on_divergence, progress, own_cluster=client is None)
    except BaseException as e:
        finished = getattr(e, "rows", None) or [None] * len(todo)
        # the caller (fastgd sweep) writes what finished: attached to the error
        e.table = SweepTable(  # type: ignore[attr-defined]
            _unfinished(todo, finished),
            info=dict(info, wall_seconds=time.perf_counter() - began,
                      incomplete=f"interrupted: {sum(r is not None for r in finished)} of "
                                 f"{len(todo)} runs finished"))
        raise
    return SweepTable(rows, info=dict(info, wall_seconds=time.perf_counter() - began))


def _unfinished(points, rows):
    """The rows, with a row saying so for each point that did not finish."""
    complete = []
    for i, (point, row) in enumerate(zip(points, rows)):
        if row is None:
            row = {key: point.get(key) for key in POINT_COLUMNS}
            row.update(dict.fromkeys(RESULT_COLUMNS), point=i,
                       error="not finished: the sweep was interrupted")
        complete.append(row)
    return complete
