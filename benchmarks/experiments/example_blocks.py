"""The parallel kernel on two threads with other sizes of the forward and
backward stage's pieces (``EXAMPLE_BLOCK`` examples each), beside the serial
kernel, taking turns in one process (BENCHMARKS.md, "How much the rows passing
between cores cost"):

    python benchmarks/experiments/example_blocks.py [M] [ROUNDS] [SIZE ...]

e.g. ``100 10 16 13 10 8 25``. Prints each one's median epoch in ms; a "!"
marks weights that are not the serial kernel's bits (none should be).
"""

import statistics
import sys
from pathlib import Path

import numpy as np

import fastgd
import fastgd.training.trainer as trainer_module
from fastgd.training import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from row_blocks import take_turns  # noqa: E402


def main():
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    sizes = [int(b) for b in sys.argv[3:]] or [16, 13, 10, 8, 25]
    training, _, _ = fastgd.load_mnist(as_dataset=True)
    order = np.random.default_rng(0).permutation(len(training)).astype(np.int64)
    net = fastgd.Network([784, 30, 10], seed=1)
    made = {}
    saved = trainer_module.EXAMPLE_BLOCK
    try:
        for size in sizes:
            trainer_module.EXAMPLE_BLOCK = size
            made[f"block{size}"] = Trainer(net, training, m, 3.0, threads=2, kernel="parallel",
                                           specialize="now")
    finally:
        trainer_module.EXAMPLE_BLOCK = saved
    made["serial"] = Trainer(net, training, m, 3.0, threads=1, kernel="serial",
                             specialize="now")
    seconds, weights = take_turns(net, made, order, rounds)
    print(" ".join(f"{name} {statistics.median(times[1:]) * 1000:.1f}"
                   f"{'' if np.array_equal(weights[name], weights['serial']) else '!'}"
                   for name, times in seconds.items()))


if __name__ == "__main__":
    main()
