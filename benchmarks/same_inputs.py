"""The check that plain arrays given again still hold what was indexed
(``fastgd.dataset.same_inputs``), beside a pass that only reads X.

    python benchmarks/same_inputs.py [--rounds 15]

On MNIST's 50,000 training images in float32 (157 MB): medians in ms of
``same_inputs`` on 1 and 2 threads, and of ``np.count_nonzero`` of X's bits, the
least a check that sees every change must read.
"""

import argparse
import statistics
import time

import numpy as np

from fastgd.data import load_mnist
from fastgd.dataset import prepare, same_inputs


def median_ms(f, rounds):
    f()
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        f()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    (X, y), _, _ = load_mnist()
    examples = prepare((X, y), X.shape[1], 10, X.dtype, "training_data", 1).index.examples
    bits = X.view(np.uint32)
    print("| pass | median, ms |\n| --- | --: |")
    for threads in (1, 2):
        ms = median_ms(lambda t=threads: same_inputs(X, examples, t), args.rounds)
        print(f"| same_inputs, {threads} thread(s) | {ms:.1f} |")
    ms = median_ms(lambda: np.count_nonzero(bits), args.rounds)
    print(f"| np.count_nonzero of X's bits | {ms:.1f} |")


if __name__ == "__main__":
    main()
