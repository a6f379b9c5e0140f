"""The benchmark suite's pytest hooks and fixtures: MNIST, the shuffled order, machine
facts, and the options that pick one implementation and one thread count per process.
What the benchmarks import (settings, helpers) is in suite.py, not here: tests/ has a
conftest.py too, and `from conftest import` would find whichever pytest loaded last.

Set FASTGD_BENCH_SMOKE=1 for a smoke run (a few hundred examples, one round),
as CI does: it checks that every benchmark still runs, it measures nothing.
FASTGD_BENCH_ROUNDS=K times K rounds instead of 5.

Plain `pytest benchmarks/` runs every implementation at every thread count in
one process.  benchmarks/run.py instead starts one process per implementation
and thread count, with --impl NAME --bench-threads N: BLAS and XLA fix their
thread pools when they load, and a 1-thread measurement should be pinned to
one core, which only a fresh process can arrange.
"""

import os

import numba
import numpy as np
import pytest

import fastgd
from fastgd import config as fastgd_config

from _measure import allowed_cores
from suite import (IMPLS, MACHINE, SEED, SELECTED, SMOKE, cpu_model,
                   process_label, runs_all_threads, threading_layer)

# Steady-state timings: the kernels specialised for each shape from the first epoch
# (not the generic ones that a cold cache starts on).  A smoke run times nothing: it
# runs on the generic kernels, compiled once for every shape (and already on disk
# when the test suite ran before it with the same cache), and so do the processes it
# starts, which would otherwise compile the specialised kernels in the background.
if SMOKE:
    os.environ.setdefault("FASTGD_SPECIALIZE", "never")
    fastgd_config.SPECIALIZE = os.environ["FASTGD_SPECIALIZE"]
else:
    fastgd_config.SPECIALIZE = "now"


def pytest_addoption(parser):
    group = parser.getgroup("fastgd benchmarks")
    group.addoption("--impl", choices=IMPLS,
                    help="run only this implementation's benchmarks (benchmarks/run.py "
                         "starts one process per implementation)")
    group.addoption("--bench-threads", type=int, metavar="N",
                    help="run only the benchmarks at N threads; the busy-machine and "
                         "import+compile ones run when N is every thread numba may use")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "bench(impl, threads=None): the implementation group a benchmark belongs "
        "to, and its thread count when it has no `threads` parameter ('all': every core)")
    threads = config.getoption("bench_threads", None)
    if threads is not None and not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        raise pytest.UsageError(f"--bench-threads must be 1 to {numba.config.NUMBA_NUM_THREADS} "
                                f"(numba's NUMBA_NUM_THREADS here), got {threads}")
    SELECTED.update(impl=config.getoption("impl", None), threads=threads)


def pytest_collection_modifyitems(config, items):
    """Deselect what --impl and --bench-threads leave out."""
    if SELECTED["impl"] is None and SELECTED["threads"] is None:
        return
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("bench")
        impl = marker.args[0] if marker else None
        threads = marker.kwargs.get("threads") if marker else None
        params = getattr(item, "callspec", None)
        if params is not None and "threads" in params.params:
            threads = params.params["threads"]
        wanted = SELECTED["impl"] is None or impl == SELECTED["impl"]
        if SELECTED["threads"] is not None:
            wanted = wanted and (runs_all_threads() if threads == "all"
                                 else threads == SELECTED["threads"])
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def machine():
    """Facts about the machine and this process, recorded beside every result."""
    if not MACHINE:
        MACHINE.update(cpu=cpu_model(), cores=os.cpu_count(), numba=numba.__version__,
                       numpy=np.__version__, threading_layer=threading_layer(),
                       numba_max_threads=numba.config.NUMBA_NUM_THREADS, smoke=SMOKE,
                       process=process_label(), affinity=allowed_cores(), pid=os.getpid())
        if os.environ.get("FASTGD_BENCH_COMMAND"):  # set by benchmarks/run.py
            MACHINE["command"] = os.environ["FASTGD_BENCH_COMMAND"]
    return MACHINE


@pytest.fixture(scope="session")
def mnist_training():
    """The book's 50,000 training inputs (300 in a smoke run), float32 and float64."""
    (X, y), _, _ = fastgd.load_mnist()
    if SMOKE:
        X, y = X[:300], y[:300]
    return {"float32": (X, y), "float64": (X.astype(np.float64), y)}


@pytest.fixture(scope="session")
def order(mnist_training):
    n = len(mnist_training["float32"][1])
    return np.random.default_rng(SEED).permutation(n)
