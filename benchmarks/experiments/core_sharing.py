"""Do this machine's cores share what the kernels wait on?  Each of four loops runs
pinned to the first allowed CPU alone, then on the first two at once (each on its
own arrays); a slowdown well above 1 when both run means the two CPUs share that
resource (SMT siblings share L1 and L2; every core shares memory bandwidth).

    python benchmarks/experiments/core_sharing.py [REPEATS]

- arithmetic: three chains of multiply-adds, no memory;
- L1 rows: ``W[k] += c d`` on random rows of a 8 KB array (the update's pattern);
- L2 rows: the same on a 512 KB array (a layer-0 update of MNIST reads 100 KB);
- memory: a copy of 64 MB into another 64 MB.
"""

import os
import sys
import threading
import time

import numpy as np
from numba import njit


@njit(nogil=True)
def arithmetic(n):
    a, b, c = 1.0, 0.5, 0.25
    for _ in range(n):
        a, b, c = a * 1.0001 + 1e-9, b * 1.0001 + 1e-9, c * 1.0001 + 1e-9
    return a + b + c


@njit(nogil=True)
def add_rows(W, ks, d, reps):
    for _ in range(reps):
        for i in range(ks.shape[0]):
            k = ks[i]
            for j in range(W.shape[1]):
                W[k, j] += 1e-9 * d[j]
    return W[0, 0]


@njit(nogil=True)
def copy(X, Y, reps):
    for _ in range(reps):
        for i in range(X.shape[0]):
            Y[i] = X[i]
    return Y[0]


def work(kind, cpu):
    """The arguments of one loop, its own arrays for `cpu`."""
    rng = np.random.default_rng(cpu)
    if kind == "arithmetic":
        return arithmetic, (100_000_000,)
    if kind in ("L1 rows", "L2 rows"):
        n_rows = 64 if kind == "L1 rows" else 4096
        ks = rng.integers(0, n_rows, 20_000).astype(np.uint64)
        return add_rows, (np.zeros((n_rows, 32), np.float32), ks, np.ones(32, np.float32), 300)
    X = np.ones(16_000_000, np.float32)
    return copy, (X, np.ones_like(X), 6)  # both written before the clock starts


def run(kind, cpu, out):
    os.sched_setaffinity(0, {cpu})  # this thread only
    f, args = work(kind, cpu)
    began = time.perf_counter()
    f(*args)
    out[cpu] = time.perf_counter() - began


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        sys.exit("needs two CPUs")
    for kind in ("arithmetic", "L1 rows", "L2 rows", "memory"):
        f, args = work(kind, cpus[0])
        f(*args)  # compiled here, in one thread
        for _ in range(repeats):
            alone = {}
            run(kind, cpus[0], alone)
            both = {}
            threads = [threading.Thread(target=run, args=(kind, cpu, both)) for cpu in cpus]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(f"{kind}: alone {alone[cpus[0]] * 1e3:.0f} ms, both at once "
                  + ", ".join(f"{both[cpu] * 1e3:.0f}" for cpu in cpus)
                  + f" ms: slowdown {max(both.values()) / alone[cpus[0]]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
