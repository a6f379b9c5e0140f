"""Seconds per epoch with the kernels' arrays on a cache line, and shifted off it.

    python benchmarks/alignment.py [--mini-batch-size 100 1000 0] [--rounds 3]

fastgd allocates the parameters and the training kernel's scratch (activations,
errors, nabla, the group sums) on 64-byte cache lines (``kernels.aligned_zeros``).
This script measures what that is worth: for each offset of 0, 16, 32 and 48
bytes past a line, the serial kernel on one thread (pinned to one core where the
OS allows) trains [784, 30, 10] float32 epochs on MNIST with copies of those
arrays moved to that offset, and the median of 4 epochs is printed per round, the
offsets alternating within each round.  The offset changes no result, only where
each weight row falls on the cache lines.  A mini-batch size of 0 means full batch.
"""

import argparse

import numpy as np

import fastgd
from fastgd import config as fastgd_config
from fastgd import kernels
from fastgd.data import load_mnist
from fastgd.training import Trainer

from _measure import median_seconds, pin_to_one_core

# Steady-state timings: the kernels specialised for each shape from the first epoch
# (not the generic ones that a cold cache starts on).
fastgd_config.SPECIALIZE = "now"

OFFSETS = (0, 16, 32, 48)
EPOCHS = 4


def shifted(array, offset):
    """A copy of array whose data start `offset` bytes past a cache line."""
    buffer = kernels.aligned_zeros(array.nbytes + kernels.CACHE_LINE, np.uint8)
    out = buffer[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    assert out.size == 0 or out.ctypes.data % kernels.CACHE_LINE == offset
    return out


def epoch_seconds(training_data, mini_batch_size, offset):
    """Median seconds of EPOCHS serial epochs with params and scratch at `offset`."""
    net = fastgd.Network([784, 30, 10], seed=1)
    trainer = Trainer(net, training_data, mini_batch_size, 3.0, threads=1, kernel="serial")
    buffers = trainer.buffers
    params = shifted(net.params, offset)
    buffers.A, buffers.D, buffers.nabla = (shifted(buffers.A, offset),
                                           shifted(buffers.D, offset),
                                           shifted(buffers.nabla, offset))
    # whole rows of a group buffer, so that each row is shifted alike
    buffers.groups = shifted(buffers.groups, offset)

    def epoch(order):
        trainer._run(trainer.current, order, 0, trainer.n, params=params)
    return median_seconds(epoch, rounds=EPOCHS, before=lambda: net.rng.permutation(trainer.n))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mini-batch-size", type=int, nargs="+", default=[100, 1000, 0],
                        metavar="M")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if any(m < 0 for m in args.mini_batch_size) or args.rounds < 1:
        parser.error("--mini-batch-size takes sizes >= 0 (0: full batch), --rounds >= 1")
    pin_to_one_core()
    training_data = load_mnist(dtype="float32")[0]
    results = {}
    for _ in range(args.rounds):
        for m in args.mini_batch_size:
            for offset in OFFSETS:
                seconds = epoch_seconds(training_data, m or None, offset)
                results.setdefault((m, offset), []).append(seconds)
    print("| m | " + " | ".join(f"{o} bytes past a line (s)" for o in OFFSETS) + " |")
    print("| --- |" + " --- |" * len(OFFSETS))
    for m in args.mini_batch_size:
        cells = [", ".join(f"{s:.4f}" for s in results[m, o]) for o in OFFSETS]
        print(f"| {m or 'full'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
