"""Two threads at m = 100 with the update's row blocks staying with one thread,
and with no weight row shared at all (a bound), beside the kernel as it is and
the serial one (BENCHMARKS.md, "How much the rows passing between cores cost").

The variants are not in fastgd: apply the patch beside this file first, in a
checkout of your own, and run from its root:

    git apply benchmarks/experiments/row_affinity.patch
    python benchmarks/experiments/row_affinity.py [M] [ROUNDS]

It adds config.ROW_AFFINITY: 1, a worker first claims the row block its thread
id names (the same bits); 2, as 1 but each worker's update goes to its own copy
of the weights, so no row moves between cores (wrong weights: a bound only).
Prints each one's median epoch in ms and whether its weights are the serial
kernel's bits.
"""

import statistics
import sys
from pathlib import Path

import numpy as np

import fastgd
from fastgd import config
from fastgd.training import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from row_blocks import take_turns  # noqa: E402


def main():
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    if not hasattr(config, "ROW_AFFINITY"):
        sys.exit("apply benchmarks/experiments/row_affinity.patch first")
    training, _, _ = fastgd.load_mnist(as_dataset=True)
    order = np.random.default_rng(0).permutation(len(training)).astype(np.int64)
    net = fastgd.Network([784, 30, 10], seed=1)
    made = {}
    for mode, name in enumerate(("unchanged", "stay with a thread", "no sharing")):
        config.ROW_AFFINITY = mode
        made[name] = Trainer(net, training, m, 3.0, threads=2, kernel="parallel",
                             specialize="now")
    config.ROW_AFFINITY = 0
    made["serial"] = Trainer(net, training, m, 3.0, threads=1, kernel="serial",
                             specialize="now")
    seconds, weights = take_turns(net, made, order, rounds)
    for name, times in seconds.items():
        same = np.array_equal(weights[name], weights["serial"])
        print(f"{name}: {statistics.median(times[1:]) * 1000:.1f} ms, serial bits {same}")


if __name__ == "__main__":
    main()
