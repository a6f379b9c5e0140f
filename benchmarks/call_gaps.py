"""The parallel kernel's speed per call, by the call's length and by what came
just before it.

auto's calibration times a kernel on short calls (at m = 1000 a scouting trial
is one call of one mini-batch), run in turn with the other kernel; an epoch
runs long calls back to back.  This script times calls of 1, 2, 4 and 10
mini-batches of a parallel Trainer, each call after one of three gaps: none
(back to back), a 2 ms sleep, or one mini-batch of the serial kernel (what
calibration puts between two trials), so that a cost paid per call, or paid
after the threads have gone idle, shows apart from the work itself.

    python benchmarks/call_gaps.py --threads 16 --modes 1000 100 [--calls 6]

Prints a Markdown table, microseconds per example, each call apart, and the
threading layer and the OpenMP settings in force.
"""

import argparse
import os
import time

import numba
import numpy as np

import fastgd
from fastgd.training.kernel_choice import threading_layer
from fastgd.training.trainer import Trainer

SEED = 12345


def per_call(trainer, order, start, size):
    """Microseconds per example of one call on order[start:start + size]."""
    began = time.perf_counter()
    trainer.run_candidate(trainer.current, order, start, start + size)
    return 1e6 * (time.perf_counter() - began) / size


def measure(X, y, threads, m, calls):
    """Rows (gap, mini-batches a call, [us per example of each call])."""
    n = len(y)
    order = np.random.default_rng(SEED).permutation(n)
    parallel = Trainer(fastgd.Network([784, 30, 10], seed=SEED), (X, y), m, 3.0,
                       threads=threads, kernel="parallel")
    serial = Trainer(fastgd.Network([784, 30, 10], seed=SEED), (X, y), m, 3.0,
                     threads=1, kernel="serial")
    for trainer in (parallel, serial):
        trainer.wait_for_specialized()
        trainer.run_epoch(order)
    m = parallel.mini_batch_size
    gaps = {"none": lambda: None,
            "sleep 2 ms": lambda: time.sleep(0.002),
            "serial mini-batch": lambda: serial.run_candidate(serial.current, order, 0, m)}
    rows, start = [], 0
    for gap, before in gaps.items():
        for batches in (1, 2, 4, 10):
            size = min(n, batches * m)
            times = []
            for _ in range(calls):
                if start + size > n:
                    start = 0
                before()
                times.append(per_call(parallel, order, start, size))
                start += size
            rows.append((gap, batches, times))
    epoch = time.perf_counter()
    parallel.run_epoch(order)
    return rows, 1e6 * (time.perf_counter() - epoch) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+",
                        default=[numba.config.NUMBA_NUM_THREADS])
    parser.add_argument("--modes", nargs="+", default=["1000", "100"])
    parser.add_argument("--calls", type=int, default=6)
    args = parser.parse_args(argv)
    (X, y), _, _ = fastgd.load_mnist()
    omp = {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "KMP_", "GOMP_"))}
    first = True
    for threads in args.threads:
        for mode in args.modes:
            m = None if mode == "full" else int(mode)
            rows, epoch = measure(X, y, threads, m, args.calls)
            if first:
                print(f"{os.cpu_count()} CPUs, affinity {len(os.sched_getaffinity(0))}, numba "
                      f"{numba.__version__}, threading layer {threading_layer()}, "
                      f"OpenMP settings {omp or 'none'}; us per example, each call apart\n")
                print("| threads | m | gap before each call | mini-batches a call | calls |")
                print("| --: | --: | --- | --: | --- |")
                first = False
            for gap, batches, times in rows:
                print(f"| {threads} | {mode} | {gap} | {batches} | "
                      + "/".join(f"{t:.2f}" for t in times) + " |", flush=True)
            print(f"| {threads} | {mode} | a whole epoch after | - | {epoch:.2f} |", flush=True)


if __name__ == "__main__":
    main()
