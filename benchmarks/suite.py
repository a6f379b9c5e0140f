"""What the benchmark suite shares: its settings, what --impl and --bench-threads
selected, facts about the machine and process, and record(), which files them
beside every result.  The pytest hooks and fixtures that use them are in conftest.py.

Set FASTGD_BENCH_SMOKE=1 for a smoke run (a few hundred examples, one round),
as CI does: it checks that every benchmark still runs, it measures nothing.
FASTGD_BENCH_ROUNDS=K times K rounds instead of 5.
"""


import json
import os
import platform

import numba
import numpy as np

import fastgd

SMOKE = bool(os.environ.get("FASTGD_BENCH_SMOKE"))
# Medians of 5 rounds by default: this machine is shared and noisy.
ROUNDS = int(os.environ.get("FASTGD_BENCH_ROUNDS") or (1 if SMOKE else 5))
EPOCH = 50_000  # examples in the book's training set: s/epoch is quoted for this many
SEED = 1
IMPLS = ("fastgd", "numpy", "network.py", "torch", "jax")  # the groups --impl picks from
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# What --impl and --bench-threads asked for (None: everything), read at collection
# time by test_epoch.py, whose thread-count parameters depend on it.
SELECTED = {"impl": None, "threads": None}


def runs_all_threads():
    """Whether this process runs the benchmarks that use every core (busy machine,
    import+compile).  A plain run does; under --bench-threads N, only the process
    whose N is every thread numba may use, and not a 1-thread process pinned to
    one core of a machine that has more (numba counts the cores it may run on)."""
    n = SELECTED["threads"]
    if n is None:
        return True
    return n == numba.config.NUMBA_NUM_THREADS and (n > 1 or os.cpu_count() == 1)


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
    """1, 2, 4, ... up to the cores numba may use, and that number itself; only
    --bench-threads's count when it is given."""
    if SELECTED["threads"] is not None:
        return [SELECTED["threads"]]
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


def process_label():
    """Which of benchmarks/run.py's processes this is, for the report's header
    (run.py names the one that runs test_start.py in FASTGD_BENCH_PROCESS)."""
    if os.environ.get("FASTGD_BENCH_PROCESS"):
        return os.environ["FASTGD_BENCH_PROCESS"]
    impl, threads = SELECTED["impl"], SELECTED["threads"]
    if impl is None and threads is None:
        return "all implementations and thread counts"
    plural = "s" if threads != 1 else ""
    return f"{impl or 'all implementations'}, {threads or 'all'} thread{plural}"


def blas_info():
    """Which BLAS (and OpenMP) libraries NumPy loaded, their versions, the kernel
    (architecture) OpenBLAS picked and their thread counts right now, and the
    OpenBLAS variables that can override that choice: the same NumPy code runs at
    very different speeds with a different BLAS kernel."""
    try:
        import threadpoolctl
    except ImportError:
        pools = None
    else:
        pools = [{"user_api": p.get("user_api"), "internal_api": p.get("internal_api"),
                  "version": p.get("version"), "architecture": p.get("architecture"),
                  "num_threads": p.get("num_threads"),
                  "library": os.path.basename(p.get("filepath") or ""),
                  # numpy.libs or scipy.libs: numba's kernels load SciPy's BLAS too
                  "folder": os.path.basename(os.path.dirname(p.get("filepath") or ""))}
                 for p in threadpoolctl.threadpool_info()]
    removed = os.environ.get("FASTGD_BENCH_REMOVED_ENV")  # set by benchmarks/run.py
    return {"blas": pools,
            "openblas_env": {name: os.environ.get(name) for name in OPENBLAS_VARIABLES},
            "removed_env": removed.split(",") if removed else []}


def jsonable(value):
    """value with NumPy scalars and arrays turned into plain numbers and lists, as
    pytest-benchmark writes extra_info with the json module."""
    def plain(o):
        return o.tolist() if hasattr(o, "tolist") else str(o)
    return json.loads(json.dumps(value, default=plain))


def record(benchmark, machine, **info):
    """Put what a reader of the JSON needs next to each result: the machine, the
    settings and, when timed, examples/s and seconds per 50,000-example epoch."""
    benchmark.extra_info.update(machine)
    benchmark.extra_info.update(jsonable(info))
    stats = getattr(benchmark, "stats", None)
    if stats is not None and "examples" in info:
        per_second = info["examples"] / stats.stats.median
        benchmark.extra_info.update(examples_per_s=per_second, s_per_epoch=EPOCH / per_second)
