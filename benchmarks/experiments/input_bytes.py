"""What smaller inputs would save: one pass over MNIST's nonzero inputs, shuffled and
in stored order, as fastgd stores them (a uint32 column and a float32 value, 8 bytes
each) and in 6 and 3 bytes (uint16 columns; values as uint8 codes into a table of
MNIST's 255 distinct nonzero values: the same numbers).

    python benchmarks/experiments/input_bytes.py [ROUNDS]

One pinned thread, no prefetching (the kernels prefetch; this measures what the
bytes themselves cost), median ms of ROUNDS passes (default 7).
"""

import sys
from pathlib import Path

import numpy as np
from numba import njit

from fastgd import kernels
from fastgd.data import load_mnist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _measure import median_seconds, pin_to_one_core  # noqa: E402


@njit(nogil=True)
def stream(order, indptr, indices, values):
    """sum_x sum_p values[p] * indices[p] over the examples `order`."""
    s = 0.0
    for i in range(order.shape[0]):
        x = order[i]
        for p in range(indptr[x], indptr[x + 1]):
            s += values[p] * indices[p]
    return s


@njit(nogil=True)
def stream_codes(order, indptr, indices, codes, table):
    """``stream`` with the values looked up: table[codes[p]]."""
    s = 0.0
    for i in range(order.shape[0]):
        x = order[i]
        for p in range(indptr[x], indptr[x + 1]):
            s += table[codes[p]] * indices[p]
    return s


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    pin_to_one_core()
    X, y = load_mnist(dtype="float32")[0]
    indptr, indices, values = kernels.nonzero_columns(X)
    table = np.unique(values)  # MNIST's distinct nonzero values: 255 of them
    if table.shape[0] > 256:
        sys.exit(f"{table.shape[0]} distinct values: more than a uint8 code can name")
    codes = np.searchsorted(table, values).astype(np.uint8)
    assert np.array_equal(table[codes], values)
    columns16 = indices.astype(np.uint16)
    orders = {"shuffled": np.random.default_rng(1).permutation(len(y)).astype(np.uint64),
              "stored order": np.arange(len(y), dtype=np.uint64)}
    print(f"{indices.shape[0]:,} nonzero inputs, 1 thread, median of {rounds} passes (ms)")
    for name, order in orders.items():
        passes = {"8 bytes": (stream, order, indptr, indices, values),
                  "6 bytes": (stream, order, indptr, columns16, values),
                  "3 bytes": (stream_codes, order, indptr, columns16, codes, table)}
        for call in passes.values():
            call[0](*call[1:])  # compiles
        print(f"{name}: " + ", ".join(
            f"{size} {median_seconds(*call, rounds=rounds) * 1e3:.1f}"
            for size, call in passes.items()))


if __name__ == "__main__":
    main()
