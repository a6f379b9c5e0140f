"""Seconds per epoch: fastgd's kernels beside the baselines a user would otherwise pick.

One benchmark is one epoch of training (or, for the slow baselines, a fixed
number of examples, scaled in the report) from the same initial weights, in the
same shuffled order, with eta 3.0.  JIT compilation (numba's, JAX's) happens in
a warm-up round; fastgd's is measured on its own in test_import_and_compile.

    python benchmarks/run.py --out bench.json      # one process per implementation
    python benchmarks/report.py bench.json         # and thread count (see run.py)

`pytest benchmarks/ --benchmark-json=bench.json` runs everything in one
process instead; JAX is then measured only at the thread count XLA started with.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numba
import pytest

import fastgd
from fastgd.training import Trainer

from baselines import JaxScan, NetworkPy, NumpyMatrix, TorchSGD
from _measure import allowed_cores
from suite import ROUNDS, SEED, SMOKE, blas_info, record, thread_counts

MODES = {"online": 1, "m=10": 10, "m=100": 100, "m=1000": 1000, "full batch": None}
ETA = 3.0
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


def group(mode, dtype, sizes):
    """pytest-benchmark's group: the results that compare with each other."""
    return f"{mode} {dtype} {'x'.join(map(str, sizes))}"


def initial(dtype, sizes=BOOK):
    net = fastgd.Network(sizes, seed=SEED, dtype=dtype)
    return net, [w.copy() for w in net.weights], [b.copy() for b in net.biases]


def fastgd_cases():
    """Every kernel for the book's network; auto only for the wider one."""
    for dtype in ("float32", "float64"):
        for mode in MODES:
            for threads in THREADS:
                for kernel in ("auto", "serial", "parallel"):
                    if kernel == "serial" and threads != 1:
                        continue  # the serial kernel uses one thread whatever the count
                    yield pytest.param(BOOK, dtype, mode, threads, kernel,
                                       id=f"{mode}-{dtype}-{threads}t-{kernel}")
    for mode in MODES:
        for threads in THREADS:
            yield pytest.param(WIDER, "float32", mode, threads, "auto",
                               id=f"784x100x10-{mode}-float32-{threads}t-auto")


def baseline_cases():
    """The book's network in float32 and float64, the wider one in float32."""
    for sizes, dtypes in ((BOOK, ("float32", "float64")), (WIDER, ("float32",))):
        for dtype in dtypes:
            for mode in MODES:
                for threads in THREADS:
                    yield pytest.param(sizes, dtype, mode, threads,
                                       id=f"{'x'.join(map(str, sizes))}-{mode}-{dtype}-{threads}t")


def specialised_trainer(*args, **kwargs):
    """A Trainer on the kernels specialised for its network, as every later run
    has them.  With config.SPECIALIZE's default ("background"), a shape whose
    kernels numba's cache lacks starts on the generic kernels while the
    specialised ones compile for a minute or more: the rounds timed meanwhile
    would measure the generic kernels.  Waiting here keeps compiling out of them."""
    trainer = Trainer(*args, **kwargs)
    trainer.wait_for_specialized()
    return trainer


def trainer_facts(trainer):
    """The kernel auto chose and why, the one it ran last and its calibration
    when it has them, and which build that kernel was (starter, generic or
    specialised); read after the epochs, since auto may decide during them."""
    facts = dict(kernel=trainer.kernel_name, kernel_reason=trainer.kernel_reason,
                 kernel_build=trainer.build)
    info = trainer.info()
    for key in ("kernel_in_use", "threads_in_use", "calibration"):
        if info.get(key) is not None:
            facts[key] = info[key]
    return facts


@pytest.mark.bench("fastgd")
@pytest.mark.parametrize("sizes, dtype, mode, threads, kernel", list(fastgd_cases()))
def test_fastgd(benchmark, machine, mnist_training, order, sizes, dtype, mode, threads, kernel):
    X, y, order = workload(mnist_training, order, dtype)
    net = fastgd.Network(sizes, seed=SEED, dtype=dtype)
    start = net.params.copy()
    trainer = specialised_trainer(net, (X, y), batch_size(mode, order), ETA,
                                  threads=threads, kernel=kernel)
    benchmark.group = group(mode, dtype, sizes)
    run(benchmark, lambda: trainer.run_epoch(order), lambda: net.params.__setitem__(..., start))
    record(benchmark, machine, impl=f"fastgd {kernel}", mode=mode, mini_batch_size=MODES[mode],
           threads=threads, dtype=dtype, sizes=sizes, examples=len(order),
           **trainer_facts(trainer))


BUSY_MODES = list(MODES)  # every m: auto may choose either kernel at any of them


@pytest.fixture
def busy_loop():
    """A CPU-bound process competing for the cores, as on a machine busy with
    something else (fastgd profile --busy's); not pinned, so the OS places it.
    Started before the test makes its Trainer (auto may calibrate then) and
    killed even if the test fails."""
    from fastgd.profile import busy_loop
    with busy_loop() as loop:
        yield loop


@pytest.mark.bench("fastgd", threads="all")
@pytest.mark.parametrize("kernel", ["auto", "serial"])
@pytest.mark.parametrize("mode", BUSY_MODES)
def test_busy_machine(benchmark, machine, mnist_training, order, busy_loop, mode, kernel):
    """One core taken by another process: auto on every thread against the serial
    kernel on one.  A parallel kernel that waits for its slowest thread can lose
    to serial here; auto should see the load and not."""
    X, y, order = workload(mnist_training, order, "float32")
    net = fastgd.Network(BOOK, seed=SEED)
    start = net.params.copy()
    threads = numba.config.NUMBA_NUM_THREADS if kernel == "auto" else 1
    trainer = specialised_trainer(net, (X, y), batch_size(mode, order), ETA,
                                  threads=threads, kernel=kernel)
    benchmark.group = "busy machine"
    run(benchmark, lambda: trainer.run_epoch(order), lambda: net.params.__setitem__(..., start))
    record(benchmark, machine, impl=f"fastgd {kernel}", busy=True, mode=mode,
           mini_batch_size=MODES[mode], threads=threads, dtype="float32", sizes=BOOK,
           examples=len(order), **trainer_facts(trainer))


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


@pytest.mark.bench("numpy")
@pytest.mark.parametrize("sizes, dtype, mode, threads", list(baseline_cases()))
def test_numpy_matrix(benchmark, machine, mnist_training, order, sizes, dtype, mode, threads):
    X, y, order = workload(mnist_training, order, dtype, NUMPY_LIMIT.get(mode))
    _, weights, biases = initial(dtype, sizes)
    m = batch_size(mode, order)
    state = {}
    limits = blas_threads(threads)
    try:
        benchmark.group = group(mode, dtype, sizes)
        run(benchmark, lambda: state["net"].epoch(X, y, order, m, ETA),
            lambda: state.update(net=NumpyMatrix(weights, biases)))
        blas = blas_info()  # inside the limits: the thread count BLAS ran with
    finally:
        if limits is not None:
            limits.unregister()
    record(benchmark, machine, impl="numpy matrix", mode=mode, mini_batch_size=MODES[mode],
           threads=threads, dtype=dtype, sizes=sizes, examples=len(order), **blas)


@pytest.mark.bench("network.py", threads=1)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["online", "m=10"])
def test_network_py(benchmark, machine, mnist_training, order, mode, dtype):
    """float64 is the book's own precision (np.random.randn weights); float32 a port."""
    X, y, order = workload(mnist_training, order, dtype, NETWORK_PY_LIMIT)
    _, weights, biases = initial(dtype)
    state = {}
    limits = blas_threads(1)
    try:
        benchmark.group = group(mode, dtype, BOOK)
        run(benchmark, lambda: state["net"].epoch(X, y, order, batch_size(mode, order), ETA),
            lambda: state.update(net=NetworkPy(weights, biases)))
        blas = blas_info()
    finally:
        if limits is not None:
            limits.unregister()
    record(benchmark, machine, impl="network.py", mode=mode, mini_batch_size=MODES[mode],
           threads=1, dtype=dtype, sizes=BOOK, examples=len(order), **blas)


@pytest.mark.bench("torch")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="PyTorch is not installed (pip install 'fastgd[torch]')")
@pytest.mark.parametrize("sizes, dtype, mode, threads", list(baseline_cases()))
def test_torch(benchmark, machine, mnist_training, order, sizes, dtype, mode, threads):
    import torch
    X, y, order = workload(mnist_training, order, dtype, TORCH_LIMIT.get(mode))
    _, weights, biases = initial(dtype, sizes)
    m = batch_size(mode, order)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    state = {}

    def reset():
        state["net"] = TorchSGD(weights, biases)
        state["data"] = state["net"].prepare(X, y, order)
    try:
        benchmark.group = group(mode, dtype, sizes)
        run(benchmark, lambda: state["net"].epoch(*state["data"], m, ETA), reset)
    finally:
        torch.set_num_threads(before)
    record(benchmark, machine, impl="pytorch", mode=mode, mini_batch_size=MODES[mode],
           threads=threads, dtype=dtype, sizes=sizes, examples=len(order),
           torch=torch.__version__)


def xla_threads():
    """The threads XLA's CPU backend computes with in this process.  It sizes its
    pool once, when jax loads: one thread under benchmarks/run.py's 1-thread
    XLA_FLAGS, else every core the process may run on."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if "--xla_cpu_multi_thread_eigen=false" in flags and "intra_op_parallelism_threads=1" in flags:
        return 1
    cpus = allowed_cores()
    return len(cpus) if cpus else os.cpu_count()


@pytest.mark.bench("jax")
@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="JAX is not installed (pip install 'fastgd[jax]')")
@pytest.mark.parametrize("sizes, dtype, mode, threads", list(baseline_cases()))
def test_jax(benchmark, machine, mnist_training, order, sizes, dtype, mode, threads):
    """The whole epoch one jitted lax.scan; jit compiles in the warm-up round."""
    pool = xla_threads()
    if threads != pool and not SMOKE:  # a smoke run only checks that the code runs
        pytest.skip(f"XLA computes with {pool} thread(s) in this process, fixed when jax "
                    "loads: benchmarks/run.py runs each thread count in its own process")
    import jax
    X, y, order = workload(mnist_training, order, dtype)
    _, weights, biases = initial(dtype, sizes)
    m = batch_size(mode, order)
    data = JaxScan(weights, biases).prepare(X, y, order, m)
    state = {}
    benchmark.group = group(mode, dtype, sizes)
    run(benchmark, lambda: state["net"].epoch(data, ETA),
        lambda: state.update(net=JaxScan(weights, biases)))
    record(benchmark, machine, impl="jax", mode=mode, mini_batch_size=MODES[mode],
           threads=threads, dtype=dtype, sizes=sizes, examples=len(order), jax=jax.__version__,
           xla_threads=pool, xla_flags=os.environ.get("XLA_FLAGS"))


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


@pytest.mark.bench("fastgd", threads="all")
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_import_and_compile(benchmark, machine, tmp_path_factory, cache):
    """A fresh process: import, then the first serial and first parallel training call.

    cold: an empty numba cache (everything compiles); warm: the cache filled by a
    previous process (what every run after the first one sees).  A smoke run leaves
    out the cold one, as test_start.py does, and its warm one starts from this
    process's caches."""
    if cache == "cold" and SMOKE:
        pytest.skip("a cold start compiles for tens of seconds: not in a smoke run")
    cache_dir = tmp_path_factory.mktemp(f"numba-cache-{cache}")
    env = dict(os.environ) if SMOKE else dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    result = {}

    def fresh_process():
        if cache == "cold":
            for path in cache_dir.iterdir():
                path.unlink()
        out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, check=True,
                             capture_output=True, text=True).stdout
        result.update(json.loads(out.strip().splitlines()[-1]))

    if cache == "warm" and not SMOKE:
        fresh_process()  # fill the cache
    benchmark.group = "import and JIT compile"
    benchmark.pedantic(fresh_process, rounds=1, iterations=1)
    record(benchmark, machine, impl=f"fastgd import+compile ({cache} cache)", cache=cache,
           **result)
