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

# This module is fastgd.sweeps, not fastgd.sweep: importing a submodule named
# fastgd.sweep would put the module where the function fastgd.sweep is.

import csv
import io
import itertools
import json
import logging
import math
import os
import time
import uuid
import warnings
from contextlib import contextmanager

import numpy as np

from ._files import atomic_write

DASK_HINT = "Dask is needed for sweeps: pip install 'fastgd[dask]'"

# What a grid may vary; "hidden" is a short way to give "sizes".
GRID_KEYS = ("sizes", "hidden", "eta", "mini_batch_size", "seed", "epochs", "dtype")

# The parameters of a point, then what its run gave, in the tables' column order.
POINT_COLUMNS = ("sizes", "eta", "mini_batch_size", "seed", "epochs", "dtype")
RESULT_COLUMNS = ("best_accuracy", "best_correct", "best_epoch", "final_accuracy",
                  "final_correct", "total", "final_cost", "eval_cost", "epochs_run",
                  "seconds", "diverged", "stopped", "error")
COLUMNS = ("point",) + POINT_COLUMNS + RESULT_COLUMNS


def sweep(grid, training_data, eval_data, *, epochs=30, eta=3.0, sizes=None,
          mini_batch_size=10, seed=0, dtype="float32", on_divergence="stop", client=None,
          n_workers=None, progress=None):
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

    The kernels of each network shape are compiled (or loaded from numba's cache) in
    this process first, so that the workers load them from the on-disk cache
    instead of each compiling them; a cluster on other machines shares that only
    through a shared cache directory (``FASTGD_CACHE_DIR``).
    """
    fixed = dict(epochs=epochs, eta=eta, sizes=sizes, mini_batch_size=mini_batch_size,
                 seed=seed, dtype=dtype)
    todo = grid_points(grid, training_data, eval_data, **fixed)
    if on_divergence not in ("stop", "warn"):
        raise ValueError(f"on_divergence must be 'stop' or 'warn', got {on_divergence!r}")
    if n_workers is not None and client is not None:
        raise ValueError("n_workers sizes the local cluster that sweep starts; it cannot be "
                         "given with client")
    try:
        import distributed
    except ImportError:
        raise ImportError(DASK_HINT) from None
    began = time.perf_counter()
    warm(network_shapes(todo), training_data)
    if n_workers is None:
        n_workers = min(len(todo), available_cores())
    with _connected(client, n_workers) as dask_client:
        workers = len(dask_client.nthreads())
        rows = _run(dask_client, distributed, todo, (training_data, eval_data),
                    on_divergence, progress, own_cluster=client is None)
        address = dask_client.scheduler.address
    fixed = {key: todo[0][key] for key in POINT_COLUMNS
             if key not in grid and not (key == "sizes" and "hidden" in grid)}
    return SweepTable(rows, info=dict(
        grid=_plain({key: list(values) for key, values in grid.items()}), fixed=fixed,
        on_divergence=on_divergence, train_size=len(training_data[1]),
        eval_size=len(eval_data[1]), workers=workers,
        scheduler=None if client is None else address,
        wall_seconds=time.perf_counter() - began))


def grid_points(grid, training_data, eval_data, *, epochs=30, eta=3.0, sizes=None,
                mini_batch_size=10, seed=0, dtype="float32"):
    """The points of ``grid`` (see ``sweep``), in grid order: one dict of
    POINT_COLUMNS each, ``hidden`` turned into ``sizes``, the other keywords
    filling in what the grid does not vary."""
    fixed = dict(epochs=epochs, eta=eta, sizes=sizes, mini_batch_size=mini_batch_size,
                 seed=seed, dtype=dtype)
    if not isinstance(grid, dict):
        raise TypeError(f"grid must be a dict of lists, such as {{'eta': [1, 3]}}, got "
                        f"{type(grid).__name__}")
    unknown = sorted(set(grid) - set(GRID_KEYS), key=str)
    if unknown:
        raise ValueError(f"grid keys must be among {', '.join(GRID_KEYS)}; got {unknown}")
    if "sizes" in grid and "hidden" in grid:
        raise ValueError("grid gives both sizes and hidden: give one (hidden sizes are "
                         "sizes without the input and output layers)")
    for key, values in grid.items():
        if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
            raise TypeError(f"grid[{key!r}] must be a list of values, got {values!r}")
        if len(list(values)) == 0:
            raise ValueError(f"grid[{key!r}] is empty: give at least one value")
    n_in = _shape(training_data, "training_data")[0]
    n_out = 1 + max(_max_label(training_data, "training_data"),
                    _max_label(eval_data, "eval_data"))
    if fixed.get("sizes") is None:
        fixed["sizes"] = [n_in, 30, n_out]
    keys = list(grid)
    points = []
    for values in itertools.product(*(list(grid[key]) for key in keys)):
        point = {**fixed, **dict(zip(keys, values))}
        if "hidden" in point:
            hidden = point.pop("hidden")
            hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
            point["sizes"] = [n_in, *hidden, n_out]
        point = _plain({key: point[key] for key in POINT_COLUMNS})
        point["dtype"] = _dtype_name(point["dtype"])
        points.append(point)
    return points


def _shape(data, name):
    try:
        X, y = data
        return X.shape[1], len(y)
    except (TypeError, ValueError, AttributeError, IndexError):
        raise TypeError(f"{name} must be a pair (X, y) of arrays, X of shape (n, inputs)") \
            from None


def _max_label(data, name):
    _shape(data, name)
    y = data[1]
    return int(np.max(y)) if len(y) else 0


def _dtype_name(dtype):
    """"float32" for np.float32 too, so that the tables hold names; anything else
    is left for the point's run to refuse."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        return dtype
    return name if name in ("float32", "float64") else dtype


def _is_shape(point):
    """Whether the point's sizes and dtype look like a network (the warm-up skips
    those that do not; their run reports the error)."""
    sizes = point["sizes"]
    return (isinstance(sizes, list) and len(sizes) >= 2
            and all(isinstance(n, int) and n >= 1 for n in sizes)
            and point["dtype"] in ("float32", "float64"))


def _plain(value):
    """numpy scalars as Python numbers, so that the table's JSON is plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


# -- one point ------------------------------------------------------------------------------

def run_point(point, data, on_divergence="stop"):
    """Train one point (a dict of POINT_COLUMNS) on ``data`` = (training_data,
    eval_data); returns its row.  What the workers run; any exception becomes the
    row's ``error``."""
    from .training import DivergenceWarning
    from .network import Network
    training_data, eval_data = data
    row = {key: point[key] for key in POINT_COLUMNS}
    began = time.perf_counter()
    try:
        net = Network(point["sizes"], seed=point["seed"], dtype=point["dtype"])
        # The verdict goes into the row; as a warning it would only clutter the
        # worker's log.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            history = net.SGD(training_data, point["epochs"], point["mini_batch_size"],
                              point["eta"], test_data=eval_data, verbose=False, threads=1,
                              on_divergence=on_divergence, handle_signals=False)
    except Exception as e:
        return failed(point, e, seconds=time.perf_counter() - began)
    row.update(summarize(history))
    row["seconds"] = time.perf_counter() - began
    return row


def summarize(history):
    """The RESULT_COLUMNS of a training History (seconds and error aside)."""
    records = [r for r in history if "correct" in r]
    row = dict.fromkeys(RESULT_COLUMNS)
    row.update(epochs_run=len(history), diverged=history.diverged, stopped=history.stopped)
    if records:
        best = max(records, key=lambda r: (r["correct"], -r["epoch"]))
        last = records[-1]
        row.update(best_accuracy=best["accuracy"], best_correct=best["correct"],
                   best_epoch=best["epoch"], final_accuracy=last["accuracy"],
                   final_correct=last["correct"], total=last["total"],
                   eval_cost=last["test_cost"])
    if len(history):
        row["final_cost"] = history[-1]["cost"]
    return row


def failed(point, error, seconds=None):
    """The row of a point whose run raised ``error``."""
    row = {key: point.get(key) for key in POINT_COLUMNS}
    row.update(dict.fromkeys(RESULT_COLUMNS))
    row.update(seconds=seconds, error=f"{type(error).__name__}: {error}")
    return row


def network_shapes(points):
    """The distinct (sizes, dtype) of the points that look like networks, sorted."""
    return sorted({(tuple(p["sizes"]), p["dtype"]) for p in points if _is_shape(p)})


def needs_compiling(shapes):
    """The (sizes, dtype) among ``shapes`` whose kernels numba's disk cache does not
    hold yet: ``sweep`` compiles each first, 10-20 s a shape."""
    from . import kernels
    return [(sizes, dtype) for sizes, dtype in shapes
            if kernels.on_disk(kernels.kernels(sizes, dtype).train_serial) is False]


def warm(shapes, training_data):
    """Compile (or load from numba's cache) the kernels a sweep's points run, for
    each (sizes, dtype), by training on one example in this process: the workers
    then load them from the on-disk cache instead of each compiling them (10-20 s
    a shape).  A shape that fails here is left to its points to report."""
    from .network import Network
    X, y = training_data
    one = (X[:1], y[:1])
    for sizes, dtype in shapes:
        try:
            Network(list(sizes), seed=0, dtype=dtype).SGD(
                one, 1, 1, 1.0, test_data=one, verbose=False, threads=1,
                handle_signals=False, on_divergence="warn")
        except Exception:  # each point reports its own error
            pass


# -- the cluster ----------------------------------------------------------------------------

def available_cores():
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextmanager
def local_cluster(n_workers=None):
    """A ``distributed.Client`` of a new ``LocalCluster``: ``n_workers`` worker
    processes (default one per core), each with one thread and one numba thread,
    started by spawning (never forking: a fork after a parallel kernel has run
    hangs under GNU OpenMP).  Both are closed on leaving the block."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(DASK_HINT) from None
    n_workers = available_cores() if n_workers is None else n_workers
    # NUMBA_NUM_THREADS must be in a worker's environment before numba is imported
    # there, so the nanny sets it before spawning.  The nanny runs in this process
    # and sets it (and the rest of pre-spawn-environ) in os.environ, where numba would
    # read it again at its next compilation here and fail ("Cannot set
    # NUMBA_NUM_THREADS ... once the threads have been launched"): those variables
    # are put back after the start, and again at the end (a nanny restarting a
    # worker sets them again).
    settings = {"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": "1",
                "distributed.worker.multiprocessing-method": "spawn"}
    with dask.config.set(settings):
        names = [*dask.config.get("distributed.nanny.pre-spawn-environ"), "PYTHONHASHSEED"]
        before = {name: os.environ.get(name) for name in names}
        try:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                   processes=True,
                                   dashboard_address=":0")  # any free port: never a clash
        finally:
            _put_back(before)
    try:
        with Client(cluster) as client:
            # Closing on an interrupt cancels the runs in progress, of which each
            # worker would warn; the interrupt has already said so.
            client.run(_quiet_cancellations)
            yield client
    except BaseException:
        # Interrupted: the workers are in the middle of training, which cannot be
        # stopped, so the nanny kills them after a few seconds.  That is expected
        # here, not worth a warning.
        with _quiet("distributed"):
            cluster.close()
        raise
    else:
        cluster.close()
    finally:
        _put_back(before)


def _quiet_cancellations():
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)


@contextmanager
def _quiet(name):
    """Only errors from the logger ``name`` while in the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _put_back(environment):
    """Set (or unset, for None) these environment variables as they were."""
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def _connected(client, n_workers):
    """A Client: a new local cluster's, one connected to the address ``client``, or
    ``client`` itself."""
    if client is None:
        with local_cluster(n_workers) as new:
            yield new
        return
    if isinstance(client, str):
        from distributed import Client
        try:
            connected = Client(client, timeout="10s")
        except OSError as e:
            raise OSError(f"cannot reach the Dask scheduler at {client}: {e}") from None
        with connected:
            yield connected
        return
    yield client


def _run(client, distributed, points, data, on_divergence, progress, own_cluster):
    """Send the points to the cluster and collect their rows in grid order."""
    # The data go to every worker once, not with each point.
    [data] = client.scatter([data], broadcast=True)
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(run_point, point, data, on_divergence,
                             key=f"fastgd-sweep-{token}-{i}", pure=False)
               for i, point in enumerate(points)]
    where = {future.key: i for i, future in enumerate(futures)}
    rows = [None] * len(points)
    try:
        if progress is not None:
            progress(0, len(points), None)
        for done, future in enumerate(distributed.as_completed(futures), 1):
            i = where[future.key]
            try:
                rows[i] = future.result()
            except Exception as e:  # a worker that died, a lost future
                rows[i] = failed(points[i], e)
            rows[i]["point"] = i
            if progress is not None:
                progress(done, len(points), rows[i])
    except BaseException:
        if not own_cluster:  # someone else's cluster goes on: free it of the sweep
            client.cancel(futures + [data])
        raise
    client.cancel([data])
    return rows


# -- the table ------------------------------------------------------------------------------

class SweepTable:
    """A sweep's results: ``rows``, one dict per point in grid order (COLUMNS), and
    ``info`` (the grid, the fixed values, the data sizes, the workers, the wall time).

    Accuracies are on the evaluation data: the best after any epoch
    (``best_epoch``, counted from 0 as training prints them) and after the last;
    ``final_cost`` is the running training cost of the last epoch and
    ``eval_cost`` the cost on the evaluation data after it.
    """

    def __init__(self, rows, info=None):
        self.rows = [{key: row.get(key) for key in COLUMNS} for row in rows]
        self.info = dict(info or {})

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __repr__(self):
        failed = sum(row["error"] is not None for row in self.rows)
        return f"<SweepTable: {len(self.rows)} points, {failed} failed>"

    def varied(self):
        """The POINT_COLUMNS that take more than one value."""
        return [key for key in POINT_COLUMNS
                if len({json.dumps(row[key]) for row in self.rows}) > 1]

    def to_csv(self, path, *, overwrite=False):
        """Write every row as CSV (sizes as 784-30-10; empty cells for no value)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows:
            writer.writerow(["" if row[key] is None else _cell(key, row[key])
                             for key in COLUMNS])
        _write_text(path, buffer.getvalue(), overwrite)

    def to_json(self, path, *, overwrite=False):
        """Write {"info": ..., "rows": [...]} as JSON (null for a NaN or infinite cost)."""
        text = json.dumps(_finite({"info": self.info, "rows": self.rows}), indent=1,
                          allow_nan=False)
        _write_text(path, text + "\n", overwrite)

    @classmethod
    def read_json(cls, path):
        """The table ``to_json`` wrote (to draw or summarise it again)."""
        with open(path) as f:
            try:
                saved = json.load(f)
                return cls(saved["rows"], info=saved.get("info"))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{path} is not a sweep table written by to_json: "
                                 f"{e}") from None

    def to_markdown(self, path, *, overwrite=False):
        """Write ``markdown()`` to ``path``."""
        _write_text(path, self.markdown(), overwrite)

    def cells(self):
        """(header, rows) of text cells: the parameters that vary, then the results."""
        varied = self.varied() or ["eta"]
        header = ["#"] + [_LABELS[key] for key in varied] + [
            "best accuracy", "at epoch", "final accuracy", "final cost", "seconds", "verdict"]
        rows = []
        for row in self.rows:
            cells = [str(row["point"])] + [_cell(key, row[key]) for key in varied]
            if row["error"] is not None:
                cells += ["", "", "", "", _number(row["seconds"], ".1f"),
                          "error: " + row["error"]]
            else:
                cells += [_percent(row["best_accuracy"]), _number(row["best_epoch"], "d"),
                          _percent(row["final_accuracy"]), _number(row["final_cost"], ".4g"),
                          _number(row["seconds"], ".1f"), _verdict(row)]
            rows.append(cells)
        return header, rows

    def markdown(self):
        """The sweep as Markdown: a line on what was fixed, the table, and the best
        point of each network."""
        header, rows = self.cells()
        escape = lambda text: str(text).replace("|", "\\|")  # noqa: E731
        lines = [self.description(), ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(escape(c) for c in cells) + " |" for cells in rows]
        best = self.best()
        if best:
            lines += ["", "Best point of each network (by best accuracy):", ""]
            lines += [f"- {_cell('sizes', row['sizes'])}: {_percent(row['best_accuracy'])} "
                      f"at eta {row['eta']:g}, m {row['mini_batch_size']}, seed {row['seed']} "
                      f"(epoch {row['best_epoch']})" for row in best]
        return "\n".join(lines) + "\n"

    def description(self):
        """One sentence: what each point did, and what was fixed."""
        info = self.info
        fixed = [key for key in POINT_COLUMNS if key not in self.varied()]
        parts = [f"{_LABELS[key]} {_cell(key, self.rows[0][key])}" for key in fixed
                 if self.rows]
        text = _plural(len(self.rows), "point")
        if "train_size" in info:
            text += (f", each training on {info['train_size']} inputs and evaluated on "
                     f"{info['eval_size']} {info.get('eval_name', 'evaluation')} inputs after "
                     "each epoch")
        if parts:
            text += "; " + ", ".join(parts)
        if "wall_seconds" in info:
            text += (f"; {info['wall_seconds']:.1f} s on "
                     f"{_plural(info.get('workers', 0), 'Dask worker')}")
        return text + "."

    def best(self):
        """The row with the best accuracy of each network (sizes), ties to the first."""
        chosen = {}
        for row in self.rows:
            if row["best_accuracy"] is None:
                continue
            key = json.dumps(row["sizes"])
            if key not in chosen or row["best_accuracy"] > chosen[key]["best_accuracy"]:
                chosen[key] = row
        return list(chosen.values())

    def plot(self):
        """Accuracy against eta, one line per network: see ``plots.sweep``."""
        from .plots import sweep
        return sweep(self)


_LABELS = {"sizes": "sizes", "eta": "eta", "mini_batch_size": "m", "seed": "seed",
           "epochs": "epochs", "dtype": "dtype"}


def _cell(key, value):
    if key == "sizes" and isinstance(value, list):
        return "-".join(map(str, value))
    if isinstance(value, float) and key != "eta":
        return repr(value)
    if key == "eta" and isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


def _plural(count, word):
    return f"{count} {word}{'s' if count != 1 else ''}"


def _number(value, spec):
    return "" if value is None else format(value, spec)


def _percent(value):
    return "" if value is None else f"{value:.2%}"


def _verdict(row):
    if row["diverged"]:
        return row["diverged"].split(":")[0]
    if row["stopped"]:
        return "stopped: " + row["stopped"].split(":")[0]
    return "ok"


def _finite(value):
    """JSON has no NaN or infinity (a diverged run's cost): null instead."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_text(path, text, overwrite):
    atomic_write(path, lambda f: f.write(text.encode()), overwrite=overwrite)
