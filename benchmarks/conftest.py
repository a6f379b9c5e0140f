"""Shared workload for the benchmark suite: MNIST, initial weights, machine facts.

Set FASTGD_BENCH_SMOKE=1 for a smoke run (a few hundred examples, one round),
as CI does: it checks that every benchmark still runs, it measures nothing.
"""

import os
import platform

import numba
import numpy as np
import pytest

import fastgd

SMOKE = bool(os.environ.get("FASTGD_BENCH_SMOKE"))
EPOCH = 50_000  # examples in the book's training set: s/epoch is quoted for this many
SEED = 1


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def thread_counts():
    """1, 2, 4, ... up to the cores numba may use, and that number itself."""
    most = numba.config.NUMBA_NUM_THREADS
    counts = [1]
    while counts[-1] * 2 <= most:
        counts.append(counts[-1] * 2)
    return [1] if SMOKE else sorted(set(counts + [most]))


def threading_layer():
    """numba's threading layer, after running a parallel kernel once so that one is chosen."""
    net = fastgd.Network([4, 3, 2], seed=0)
    net.SGD((np.ones((64, 4)), np.zeros(64, int)), 1, 64, 1.0, verbose=False, kernel="parallel")
    return numba.threading_layer()


MACHINE = {}


@pytest.fixture(scope="session")
def machine():
    if not MACHINE:
        MACHINE.update(cpu=cpu_model(), cores=os.cpu_count(), numba=numba.__version__,
                       numpy=np.__version__, threading_layer=threading_layer(),
                       numba_max_threads=numba.config.NUMBA_NUM_THREADS, smoke=SMOKE)
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


def record(benchmark, machine, **info):
    """Put what a reader of the JSON needs next to each result: the machine, the
    settings and, when timed, examples/s and seconds per 50,000-example epoch."""
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(info)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and "examples" in info:
        per_second = info["examples"] / stats.stats.median
        benchmark.extra_info.update(examples_per_s=per_second, s_per_epoch=EPOCH / per_second)
