"""Seconds per epoch: fastgd's kernels beside the baselines a user would otherwise pick.

One benchmark is one epoch of training (or, for the slow baselines, a fixed
number of examples, scaled in the report) from the same initial weights, in the
same shuffled order, with eta 3.0.  JIT compilation happens in a warm-up round
and is measured on its own in test_import_and_compile.

    pytest benchmarks/ --benchmark-json=bench.json
    python benchmarks/report.py bench.json
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import fastgd
from fastgd.training import Trainer

from baselines import NetworkPy, NumpyMatrix, TorchSGD
from conftest import SEED, SMOKE, record, thread_counts

MODES = {"online": 1, "m=10": 10, "m=100": 100, "m=1000": 1000, "full batch": None}
ETA = 3.0
ROUNDS = 1 if SMOKE else 5  # medians of 5: this machine is shared and noisy
BOOK = [784, 30, 10]
WIDER = [784, 100, 10]
THREADS = thread_counts()

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None


def run(benchmark, target, reset, rounds=ROUNDS):
    """Time target() from the state reset() restores, `rounds` times after one warm-up."""
    def setup():
        reset()
        return (), {}
    benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=1)


def workload(mnist_training, order, dtype, limit=None):
    X, y = mnist_training[dtype]
    return X, y, order if limit is None else order[:limit]


def batch_size(mode, order):
    """m for the mode; at most the examples there are (smoke runs have few)."""
    m = MODES[mode]
    return len(order) if m is None else min(m, len(order))


def initial(dtype, sizes=BOOK):
    net = fastgd.Network(sizes, seed=SEED, dtype=dtype)
    return net, [w.copy() for w in net.weights], [b.copy() for b in net.biases]


def fastgd_cases():
    for dtype in ("float32", "float64"):
        for mode in MODES:
            for threads in THREADS:
                for kernel in ("auto", "serial", "parallel"):
                    if kernel == "serial" and threads != 1:
                        continue  # the serial kernel uses one thread whatever the count
                    yield pytest.param(BOOK, dtype, mode, threads, kernel,
                                       id=f"{mode}-{dtype}-{threads}t-{kernel}")
    for mode in ("m=10", "full batch"):
        for threads in THREADS:
            yield pytest.param(WIDER, "float32", mode, threads, "auto",
                               id=f"784x100x10-{mode}-float32-{threads}t-auto")


@pytest.mark.parametrize("sizes, dtype, mode, threads, kernel", list(fastgd_cases()))
def test_fastgd(benchmark, machine, mnist_training, order, sizes, dtype, mode, threads, kernel):
    X, y, order = workload(mnist_training, order, dtype)
    net = fastgd.Network(sizes, seed=SEED, dtype=dtype)
    start = net.params.copy()
    trainer = Trainer(net, (X, y), batch_size(mode, order), ETA, threads=threads, kernel=kernel)
    benchmark.group = f"{mode} {dtype} {'x'.join(map(str, sizes))}"
    run(benchmark, lambda: trainer.run_epoch(order), lambda: net.params.__setitem__(..., start))
    record(benchmark, machine, impl=f"fastgd {kernel}", kernel=trainer.kernel_name,
           kernel_reason=trainer.kernel_reason, mode=mode, mini_batch_size=MODES[mode],
           threads=threads, dtype=dtype, sizes=sizes, examples=len(order))


@pytest.mark.parametrize("kernel", ["serial", "parallel"])
@pytest.mark.parametrize("per_thread", [4, 5, 8])
def test_parallel_threshold(benchmark, machine, mnist_training, order, per_thread, kernel):
    """Where splitting a mini-batch across every thread starts to pay, the evidence for
    training.PARALLEL_MIN_EXAMPLES_PER_THREAD: the serial kernel (one thread) against
    the parallel kernel (all threads) at m = per_thread * threads, float32, the book's
    network.  pytest-benchmark's table shows each group's ratio; the report skips these."""
    threads = THREADS[-1]
    if threads == 1:
        pytest.skip("one thread only: nothing to split")
    X, y, order = workload(mnist_training, order, "float32")
    m = min(per_thread * threads, len(order))
    net = fastgd.Network(BOOK, seed=SEED)
    start = net.params.copy()
    trainer = Trainer(net, (X, y), m, ETA, threads=1 if kernel == "serial" else threads,
                      kernel=kernel)
    benchmark.group = f"parallel threshold: m={m} ({per_thread} per thread, {threads} threads)"
    run(benchmark, lambda: trainer.run_epoch(order), lambda: net.params.__setitem__(..., start))
    benchmark.extra_info.update(machine, threshold_check=True, kernel=kernel,
                                threads=trainer.threads, mini_batch_size=m,
                                examples=len(order))


def blas_threads(threads):
    if threadpoolctl is None:
        if threads != 1:
            pytest.skip("threadpoolctl is not installed: cannot set the BLAS thread count")
        return None
    return threadpoolctl.threadpool_limits(threads)


# The per-step baselines are timed on a slice of the epoch when a whole one would
# take many seconds; the report scales them to examples/s.
NUMPY_LIMIT = {"online": 5_000}
NETWORK_PY_LIMIT = 2_000
TORCH_LIMIT = {"online": 5_000, "m=10": 20_000}


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"{t}t")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_matrix(benchmark, machine, mnist_training, order, dtype, mode, threads):
    X, y, order = workload(mnist_training, order, dtype, NUMPY_LIMIT.get(mode))
    _, weights, biases = initial(dtype)
    m = batch_size(mode, order)
    state = {}
    limits = blas_threads(threads)
    try:
        benchmark.group = f"{mode} {dtype} 784x30x10"
        run(benchmark, lambda: state["net"].epoch(X, y, order, m, ETA),
            lambda: state.update(net=NumpyMatrix(weights, biases)))
    finally:
        if limits is not None:
            limits.unregister()
    record(benchmark, machine, impl="numpy matrix", mode=mode, mini_batch_size=MODES[mode],
           threads=threads, dtype=dtype, sizes=BOOK, examples=len(order))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["online", "m=10"])
def test_network_py(benchmark, machine, mnist_training, order, mode, dtype):
    """float64 is the book's own precision (np.random.randn weights); float32 a port."""
    X, y, order = workload(mnist_training, order, dtype, NETWORK_PY_LIMIT)
    _, weights, biases = initial(dtype)
    state = {}
    limits = blas_threads(1)
    try:
        benchmark.group = f"{mode} {dtype} 784x30x10"
        run(benchmark, lambda: state["net"].epoch(X, y, order, batch_size(mode, order), ETA),
            lambda: state.update(net=NetworkPy(weights, biases)))
    finally:
        if limits is not None:
            limits.unregister()
    record(benchmark, machine, impl="network.py", mode=mode, mini_batch_size=MODES[mode],
           threads=1, dtype=dtype, sizes=BOOK, examples=len(order))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="PyTorch is not installed (pip install 'fastgd[torch]')")
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"{t}t")
@pytest.mark.parametrize("mode", MODES)
def test_torch(benchmark, machine, mnist_training, order, mode, threads):
    import torch
    X, y, order = workload(mnist_training, order, "float32", TORCH_LIMIT.get(mode))
    _, weights, biases = initial("float32")
    m = batch_size(mode, order)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    state = {}

    def reset():
        state["net"] = TorchSGD(weights, biases)
        state["data"] = state["net"].prepare(X, y, order)
    try:
        benchmark.group = f"{mode} float32 784x30x10"
        run(benchmark, lambda: state["net"].epoch(*state["data"], m, ETA), reset)
    finally:
        torch.set_num_threads(before)
    record(benchmark, machine, impl="pytorch", mode=mode, mini_batch_size=MODES[mode],
           threads=threads, dtype="float32", sizes=BOOK, examples=len(order),
           torch=torch.__version__)


COMPILE_SCRIPT = """
import json, time
t0 = time.perf_counter()
import numpy as np
import fastgd
t1 = time.perf_counter()
net = fastgd.Network([784, 30, 10], seed=0)
X = np.random.default_rng(0).random((256, 784)).astype(np.float32)
y = np.zeros(256, dtype=np.int64)
net.SGD((X, y), 1, 10, 3.0, verbose=False, kernel="serial", test_data=(X, y))
t2 = time.perf_counter()
net.SGD((X, y), 1, 64, 3.0, verbose=False, kernel="parallel")
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_serial_s": t2 - t1, "first_parallel_s": t3 - t2}))
"""


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_import_and_compile(benchmark, machine, tmp_path_factory, cache):
    """A fresh process: import, then the first serial and first parallel training call.

    cold: an empty numba cache (everything compiles); warm: the cache filled by a
    previous process (what every run after the first one sees)."""
    cache_dir = tmp_path_factory.mktemp(f"numba-cache-{cache}")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    result = {}

    def fresh_process():
        if cache == "cold":
            for path in cache_dir.iterdir():
                path.unlink()
        out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, check=True,
                             capture_output=True, text=True).stdout
        result.update(json.loads(out.strip().splitlines()[-1]))

    if cache == "warm":
        fresh_process()  # fill the cache
    benchmark.group = "import and JIT compile"
    benchmark.pedantic(fresh_process, rounds=1, iterations=1)
    record(benchmark, machine, impl=f"fastgd import+compile ({cache} cache)", cache=cache,
           **result)
