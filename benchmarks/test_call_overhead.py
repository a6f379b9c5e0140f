"""What a training call costs beyond its epochs: a 1-epoch ``SGD`` call on data
already used, against the epoch inside a 5-epoch call (History's ``seconds``).

    python benchmarks/test_call_overhead.py [--rounds 5] [--threads 1 2]

prints, for m = 1, 10, 100, 1000 and full batch on MNIST's 50,000 training
images ([784, 30, 10], float32, eta 3.0, no test data), the median epoch of
``--rounds`` 5-epoch calls, and medians of as many 1-epoch calls with the same
plain arrays (after a first call that prepares them) and with a
``fastgd.Dataset``, each over that epoch; the three kinds of call take turns, so
that a change in the machine's load touches all three.  Under pytest
(``pytest benchmarks/test_call_overhead.py``) each 1-epoch call is a benchmark,
the epoch of its 5-epoch call in extra_info.
Neither is a test of speed: the numbers depend on the machine and its load.
"""

import argparse
import os
import time

import numba
import numpy as np
import pytest

import fastgd

from suite import ROUNDS, SEED, record, thread_counts

# config.SPECIALIZE is set in conftest.py: the specialised kernels from the first
# epoch (steady-state timings), the generic ones in a smoke run.

MODES = {"online": 1, "m=10": 10, "m=100": 100, "m=1000": 1000, "full batch": None}
ETA = 3.0
BOOK = [784, 30, 10]
KINDS = ("plain arrays", "Dataset")


def batch_size(mode, n):
    m = MODES[mode]
    return n if m is None else min(m, n)


def epoch_in_a_longer_call(X, y, m, threads, epochs=5):
    """The median epoch's seconds of an ``epochs``-epoch call (from History)."""
    net = fastgd.Network(BOOK, seed=SEED)
    history = net.SGD((X, y), epochs, m, ETA, verbose=False, threads=threads,
                      on_divergence="warn")
    return float(np.median(history.column("seconds")))


def one_epoch_call(net, data, m, threads):
    return lambda: net.SGD(data, 1, m, ETA, verbose=False, threads=threads,
                           on_divergence="warn")


@pytest.mark.bench("fastgd")
@pytest.mark.filterwarnings("ignore::fastgd.DivergenceWarning")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("threads", thread_counts())
@pytest.mark.parametrize("mode", list(MODES))
def test_one_epoch_call(benchmark, machine, mnist_training, mode, threads, kind):
    """A 1-epoch call on data already used (the warm-up round uses them first)."""
    X, y = mnist_training["float32"]
    m = batch_size(mode, len(y))
    epoch = epoch_in_a_longer_call(X, y, m, threads)
    data = (X, y) if kind == "plain arrays" else fastgd.Dataset(X, y)
    net = fastgd.Network(BOOK, seed=SEED)
    start = net.params.copy()
    benchmark.group = f"1-epoch call, {mode}"
    benchmark.pedantic(one_epoch_call(net, data, m, threads),
                       setup=lambda: net.params.__setitem__(..., start),
                       rounds=ROUNDS, warmup_rounds=1)
    # no "impl" or "mode": report.py's tables are of epochs, not of calls
    record(benchmark, machine, call=kind, mini_batch_size=MODES[mode], threads=threads,
           dtype="float32", sizes=BOOK, epoch_s_in_5_epoch_call=epoch)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["call_over_epoch"] = stats.stats.median / epoch


def seconds(call):
    """(seconds the call took, its History's epoch seconds)."""
    began = time.perf_counter()
    history = call()
    return time.perf_counter() - began, history[0]["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}))
    args = parser.parse_args()
    import warnings
    warnings.simplefilter("ignore", fastgd.DivergenceWarning)  # eta 3.0 for 5 epochs
    (X, y), _, _ = fastgd.load_mnist()
    print(f"{BOOK} float32, {len(y):,} examples, eta {ETA}; medians of {args.rounds} rounds, "
          "each a 5-epoch call and a 1-epoch call of each kind, in turn (seconds); "
          "'beyond' is a 1-epoch call's time beyond its own epoch (ms), which a change in "
          f"the machine's load moves less than the ratios; load average {os.getloadavg()[0]:.1f}"
          "\n")
    print("| m | threads | epoch in a 5-epoch call | first call, plain arrays | "
          "1-epoch call, plain arrays | ratio | beyond | Dataset(X, y) | "
          "1-epoch call, Dataset | ratio | beyond |")
    print("| --- |" + " --- |" * 10)
    for threads in args.threads:
        for mode in MODES:
            m = batch_size(mode, len(y))
            epoch_in_a_longer_call(X, y, m, threads, epochs=1)  # compiles, if need be
            plain_net, kept_net = (fastgd.Network(BOOK, seed=SEED) for _ in range(2))
            plain = one_epoch_call(plain_net, (X.copy(), y), m, threads)  # new arrays
            first = seconds(plain)[0]  # prepares them
            began = time.perf_counter()
            data = fastgd.Dataset(X, y)
            made = time.perf_counter() - began
            kept = one_epoch_call(kept_net, data, m, threads)
            kept()  # builds the index
            epochs, plains, kepts = [], [], []
            for _ in range(args.rounds):  # in turn, so that a change of load hits all three
                epochs.append(epoch_in_a_longer_call(X, y, m, threads))
                plains.append(seconds(plain))
                kepts.append(seconds(kept))
            epoch = float(np.median(epochs))
            cells = [mode, str(threads), f"{epoch:.3f}", f"{first:.3f}"]
            for calls in (plains, kepts):
                call = float(np.median([c for c, _ in calls]))
                beyond = float(np.median([c - e for c, e in calls]))
                cells += [f"{call:.3f}", f"{call / epoch:.2f}", f"{beyond * 1e3:.0f}"]
                if calls is plains:
                    cells.append(f"{made:.3f}")
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
