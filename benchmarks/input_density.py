"""Seconds per epoch of the sparse and the dense input path as the inputs get denser.

    python benchmarks/input_density.py [--mini-batch-size 100] [--rounds 5]

MNIST's training images with a share of their zero pixels set to 1/255, so that
the fraction of nonzero inputs runs from MNIST's own (0.19) to 1; for each, the
serial kernel on one thread (pinned to one core where the OS allows) trains
[784, 30, 10] float32 epochs over one shuffled order on each path, and the
median of the rounds is printed as a Markdown table.  Where the two cross is
what ``config.DENSE_FROM`` should sit near (BENCHMARKS.md, "Dense or sparse
inputs").  Each path is forced by setting ``fastgd.config.DENSE_FROM``, which
decides the path from the data.
"""

import argparse

import numpy as np

import fastgd
from fastgd import config as fastgd_config
from fastgd.data import load_mnist
from fastgd.training import Trainer

from _measure import median_seconds, pin_to_one_core

# Steady-state timings: the kernels specialised for each shape from the first epoch
# (not the generic ones that a cold cache starts on).
fastgd_config.SPECIALIZE = "now"

DENSITIES = (0.19, 0.4, 0.6, 0.8, 0.9, 1.0)


def denser(X, target, rng):
    """X with enough of its zeros set to 1/255 that about `target` of it is nonzero."""
    zero = X == 0
    have = 1.0 - zero.mean()
    share = max(0.0, (target - have) / (1.0 - have))
    out = X.copy()
    out[zero & (rng.random(X.shape) < share)] = np.float32(1 / 255)
    return out


def epoch_seconds(X, y, path, mini_batch_size, rounds):
    """Median seconds of `rounds` epochs (after one untimed) on the given path."""
    fastgd_config.DENSE_FROM = 0.0 if path == "dense" else 2.0
    net = fastgd.Network([784, 30, 10], seed=1)
    trainer = Trainer(net, (X, y), mini_batch_size, 0.1, threads=1, kernel="serial")
    assert trainer.dense == (path == "dense")
    order = np.random.default_rng(1).permutation(len(y))
    trainer.run_epoch(order)
    return median_seconds(trainer.run_epoch, order, rounds=rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mini-batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pin_to_one_core()
    (X, y), _, _ = load_mnist()
    X = np.asarray(X, np.float32)
    rng = np.random.default_rng(0)
    default = fastgd_config.DENSE_FROM
    print(f"m = {args.mini_batch_size}, serial, 1 thread; seconds per epoch, "
          f"median of {args.rounds}; DENSE_FROM is {default}")
    print("| nonzero inputs | sparse path | dense path |\n| --- | --- | --- |")
    for target in DENSITIES:
        data = denser(X, target, rng)
        fraction = np.count_nonzero(data) / data.size
        sparse, dense = (epoch_seconds(data, y, path, args.mini_batch_size, args.rounds)
                         for path in ("sparse", "dense"))
        print(f"| {fraction:.2f} | {sparse:.3g} | {dense:.3g} |", flush=True)
    fastgd_config.DENSE_FROM = default


if __name__ == "__main__":
    main()
