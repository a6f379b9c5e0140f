"""The parallel training driver as fastgd builds it, calling drive_descend through a
function pointer (``kernels.source.CallByPointer``), against a copy that calls
it by name, as fastgd did before: epoch time, the cost of a call, and the bits.

    python benchmarks/descend_pointer.py [--mini-batch-sizes 100 1000 50000]
                                         [--threads 2] [--rounds 11]

Both run in one process, on the same generated module, taking turns round by
round from the same weights over the same order of MNIST's 50,000 training
images ([784, 30, 10] float32, the specialised kernels).  Prints, per mini-batch
size, the median epoch of each in ms and whether their weights are the same
bits; then the median time of a call on no examples (numba's dispatch, and for
the pointer the pointer's types and unboxing), in us.  The copy is compiled
here, before the timing: the compile times themselves are what `fastgd compile`
prints per kernel (BENCHMARKS.md).
"""

import argparse
import statistics
import time

import numpy as np
from numba import njit, prange

import fastgd
from fastgd import kernels
from fastgd.training.kernel_choice import numba_threads
from fastgd.training.trainer import Trainer

# drive_train before the pointer: drive_descend called by name, so that numba
# compiles a copy of it into the driver
LINKED_SOURCE = '''
def drive_train_linked(examples, idx, start, stop, mini_batch_size, eta, mean, params, layout,
                       scratch, plan, decay, shrink):
    counter, total = work_queue()
    for p in range(scratch.nabla.shape[0]):
        scratch.nabla[p] = 0
    for _worker in prange(plan.n_workers):
        drive_descend(examples, idx, start, stop, mini_batch_size, eta, mean, np.bool_(True),
                      params, layout, scratch, plan, plan.direct_max, decay, shrink, counter,
                      total)
    return total[0]
'''


def linked_driver(module):
    """The linked copy of the module's parallel training driver."""
    names = {"np": np, "prange": prange, "work_queue": module.work_queue,
             "drive_descend": module.drive_descend}
    exec(LINKED_SOURCE, names)
    return njit(nogil=True, parallel=True, error_model="numpy")(names["drive_train_linked"])


def setup(data, m, threads, specialize="now", sizes=(784, 30, 10)):
    """(net, trainer, args): a float32 network of `sizes` (seed 1), its Trainer on
    the parallel kernel, and the arguments of one epoch's call of the driver."""
    net = fastgd.Network(list(sizes), seed=1, dtype="float32")
    trainer = Trainer(net, data, m, 3.0, threads=threads, kernel="parallel",
                      specialize=specialize)
    c, b = trainer.current, trainer.buffers
    plan = kernels.Plan(c.splits, c.spans, b.direct_max, b.group, c.chunk, c.example_block,
                        threads)
    order = np.random.default_rng(1).permutation(trainer.n).astype(np.int64)
    args = (trainer.examples, order, 0, trainer.n, m, 3.0, True, net.params,
            net.layout.arrays, b.scratch, plan, 1.0, 0.0)
    return net, trainer, args


def epochs(drivers, net, args, threads, rounds):
    """{name: [seconds of each round after the first]} and {name: the weights
    after one epoch}, the drivers taking turns from the same weights."""
    start = net.params.copy()
    seconds = {name: [] for name in drivers}
    weights = {}
    with numba_threads(threads):
        for r in range(rounds + 1):  # the first compiles or loads
            for name, driver in drivers.items():
                net.params[:] = start
                began = time.perf_counter()
                driver(*args)
                if r:
                    seconds[name].append(time.perf_counter() - began)
                weights[name] = net.params.copy()
    net.params[:] = start
    return seconds, weights


def call_cost(drivers, args, threads, calls=1000, rounds=5):
    """{name: the fastest of `rounds` means of `calls` calls on no examples, seconds}."""
    empty = args[:2] + (0, 0) + args[4:]
    best = {}
    with numba_threads(threads):
        for name, driver in drivers.items():
            driver(*empty)
            times = []
            for _ in range(rounds):
                began = time.perf_counter()
                for _ in range(calls):
                    driver(*empty)
                times.append((time.perf_counter() - began) / calls)
            best[name] = min(times)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mini-batch-sizes", type=int, nargs="+", default=[100, 1000, 50000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=11)
    options = parser.parse_args()
    (X, y), _, _ = fastgd.load_mnist()
    print("| m | pointer, ms | linked copy, ms | same bits |\n| --: | --: | --: | --- |")
    for m in options.mini_batch_sizes:
        net, trainer, args = setup((X, y), m, options.threads)
        drivers = {"pointer": trainer.module.train_parallel,
                   "linked": linked_driver(trainer.module)}
        seconds, weights = epochs(drivers, net, args, options.threads, options.rounds)
        same = weights["pointer"].tobytes() == weights["linked"].tobytes()
        print(f"| {m} | {statistics.median(seconds['pointer']) * 1e3:.1f} | "
              f"{statistics.median(seconds['linked']) * 1e3:.1f} | {same} |")
    cost = call_cost(drivers, args, options.threads)
    print(f"\na call on no examples: pointer {cost['pointer'] * 1e6:.0f} us, "
          f"linked copy {cost['linked'] * 1e6:.0f} us")


if __name__ == "__main__":
    main()
