"""The parallel kernel's update at m = 100 with 1, 2 and 4 blocks of weight rows per
thread (``config.ROW_BLOCKS_PER_THREAD``), beside the serial kernel.

    python benchmarks/row_blocks.py [--mini-batch-size 100] [--rounds 15] [--threads 2]

One process trains [784, 30, 10] float32 on MNIST's 50,000 training images
(the specialised kernels), the parallel kernel on two threads (--threads) with each count
of row blocks and the serial kernel on one, taking turns round by round from
the same weights over the same order; prints the median epoch of each in ms
(the first round left out) and whether its weights are the serial kernel's
bits.  The count changes only how the update is shared out, never the sums.
"""

import argparse
import statistics
import time

import numpy as np

import fastgd
import fastgd.training.trainer as trainer_module
from fastgd.training import Trainer

COUNTS = (1, 2, 4)


def trainers(net, data, m, counts=COUNTS, threads=2, specialize="now"):
    """{count: a parallel Trainer whose plan has count row blocks per thread},
    and "serial": the serial one."""
    made = {}
    saved = trainer_module.ROW_BLOCKS_PER_THREAD
    try:
        for count in counts:
            trainer_module.ROW_BLOCKS_PER_THREAD = count
            made[count] = Trainer(net, data, m, 3.0, threads=threads, kernel="parallel",
                                  specialize=specialize)
    finally:
        trainer_module.ROW_BLOCKS_PER_THREAD = saved
    made["serial"] = Trainer(net, data, m, 3.0, threads=1, kernel="serial",
                             specialize=specialize)
    return made


def take_turns(net, made, order, rounds):
    """({name: epoch seconds per round}, {name: weights after its last round})."""
    start = net.params.copy()
    seconds = {name: [] for name in made}
    weights = {}
    for _ in range(rounds):
        for name, trainer in made.items():
            net.params[...] = start
            began = time.perf_counter()
            trainer.run_epoch(order)
            seconds[name].append(time.perf_counter() - began)
            weights[name] = net.params.copy()
    net.params[...] = start
    return seconds, weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mini-batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    training, _, _ = fastgd.load_mnist(as_dataset=True)
    order = np.random.default_rng(0).permutation(len(training)).astype(np.int64)
    net = fastgd.Network([784, 30, 10], seed=1)
    seconds, weights = take_turns(net, trainers(net, training, args.mini_batch_size,
                                                threads=args.threads), order, args.rounds)
    print("| plan | median epoch, ms | the serial kernel's bits |\n| --- | --: | --- |")
    for name, times in seconds.items():
        label = (name if name == "serial"
                 else f"{name} row block(s) per thread, {args.threads} threads")
        same = np.array_equal(weights[name], weights["serial"])
        print(f"| {label} | {statistics.median(times[1:] or times) * 1000:.1f} | {same} |")


if __name__ == "__main__":
    main()
