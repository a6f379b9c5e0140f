"""One point of a sweep: what a worker runs, and the compiling done first in this process."""

import time
import warnings

from .._validation import DTYPES
from .grid import POINT_COLUMNS

# What a point's run gave, in the tables' column order after POINT_COLUMNS.
RESULT_COLUMNS = ("best_accuracy", "best_correct", "best_epoch", "final_accuracy",
                  "final_correct", "total", "final_cost", "eval_cost", "epochs_run",
                  "seconds", "diverged", "stopped", "error")


def run_point(point, data, on_divergence="stop"):
    """Train one point (a dict of POINT_COLUMNS) on ``data`` = (training_data,
    eval_data); returns its row.  What the workers run; any exception becomes the
    row's ``error``."""
    from ..training import DivergenceWarning
    from ..trainable import Network
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
    from .. import kernels
    return [(sizes, dtype) for sizes, dtype in shapes
            if kernels.on_disk(kernels.kernels(sizes, dtype).train_serial, dtype) is False]


def warm(shapes, training_data):
    """Compile (or load from numba's cache) the kernels a sweep's points run, for
    each (sizes, dtype), by training on one example in this process: the workers
    then load them from the on-disk cache instead of each compiling them (10-20 s
    a shape).  A shape that fails here is left to its points to report."""
    from ..trainable import Network
    X, y = training_data
    one = (X[:1], y[:1])
    for sizes, dtype in shapes:
        try:
            Network(list(sizes), seed=0, dtype=dtype).SGD(
                one, 1, 1, 1.0, test_data=one, verbose=False, threads=1,
                handle_signals=False, on_divergence="warn")
        except Exception:  # each point reports its own error
            pass


def _is_shape(point):
    """Whether the point's sizes and dtype look like a network (the warm-up skips
    those that do not; their run reports the error)."""
    sizes = point["sizes"]
    return (isinstance(sizes, list) and len(sizes) >= 2
            and all(isinstance(n, int) and n >= 1 for n in sizes)
            and point["dtype"] in DTYPES)
