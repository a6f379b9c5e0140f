"""The layer-0 update walked weight row by weight row instead of example by example,
beside the generated ``update_rows``, on one pinned thread.

    python benchmarks/experiments/column_update.py [M ...] [--rounds R]

``update_rows`` adds each example's terms to the rows of its nonzero inputs, example
after example: a row is read from and written back to memory once per example that
touches it.  The variant first sorts the terms of a call's examples by row (a counting
sort over the rows, kept in example order within each row), then holds each row in
registers while all its terms are added, in the same order, so that it gives the same
bits and touches each row once per call.  Both are timed over MNIST's 50,000 images
in shuffled mini-batches of M examples after the same forward and backward passes;
the difference of the two epochs is the difference of the two updates.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from numba import njit

import fastgd
from fastgd import kernels
from fastgd.data import load_mnist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _measure import median, pin_to_one_core, seconds  # noqa: E402


def column_source(width):
    """column_update0: layer 0's weight rows += coef * sum_t x_tk d_t, row by row."""
    r = range(width)
    lines = [
        "def column_update0(t0, t1, rows, indptr, indices, values, coef, W0, D0, count,",
        "                   start, touched, term_t, term_c):",
        "    n_touched = np.uint64(0)",
        "    for t in range(t0, t1):  # how many terms each row has",
        "        x = rows[t]",
        "        for p in range(indptr[x], indptr[x + 1]):",
        "            k = indices[p]",
        "            c = count[k]",
        "            touched[n_touched] = k",
        "            n_touched += np.uint64(c == 0)",
        "            count[k] = c + np.uint64(1)",
        "    q = np.uint64(0)",
        "    for i in range(n_touched):  # where each row's terms start",
        "        k = touched[i]",
        "        start[k] = q",
        "        q += count[k]",
        "    for t in range(t0, t1):  # the terms, by row, in example order within a row",
        "        x = rows[t]",
        "        for p in range(indptr[x], indptr[x + 1]):",
        "            k = indices[p]",
        "            q = start[k]",
        "            start[k] = q + np.uint64(1)",
        "            term_t[q] = np.uint64(t)",
        "            term_c[q] = coef * values[p]",
        "    for i in range(n_touched):",
        "        k = touched[i]",
        "        q1 = start[k]",
        "        q0 = q1 - count[k]",
        "        count[k] = np.uint64(0)",
        *[f"        w{j} = W0[k, {j}]" for j in r],
        "        for q in range(q0, q1):",
        "            t, c = term_t[q], term_c[q]",
        *[f"            w{j} += c * D0[t, {j}]" for j in r],
        *[f"        W0[k, {j}] = w{j}" for j in r],
    ]
    return "\n".join(lines) + "\n"


def make_column_update(width):
    namespace = {"np": np}
    exec(compile(column_source(width), "<column_update0>", "exec"), namespace)
    return njit(nogil=True, error_model="numpy")(namespace["column_update0"])


def make_driver(module, column_update0):
    """One epoch: forward, backward and an update of every M examples of `order`
    (kind 0: update_rows; kind 1: column_update0 for layer 0's weights)."""
    forward_pass, backward_pass = module.forward_pass, module.backward_pass
    update_rows = module.update_rows

    @njit(nogil=True, error_model="numpy")
    def drive(kind, order, examples, m, weights, biases, target_w, target_b, A, D, costs,
              zero, coef, n_out, count, start, touched, term_t, term_c, splits, spans):
        indptr, indices, values, labels = examples
        no_splits = np.empty((0, 0), np.uint64)
        n_row_blocks = max(1, splits.shape[1] - 1)
        n_layers = len(weights)
        for first in range(0, order.shape[0], m):
            mb = min(m, order.shape[0] - first)
            rows = order[first:]
            forward_pass(0, mb, rows, indptr, indices, values, splits, spans,
                         weights, biases, A, zero)
            backward_pass(0, mb, rows, labels, weights, A, D, costs, n_out)
            if kind == 2:
                for piece in range(n_row_blocks + n_layers - 1):
                    update_rows(piece, n_row_blocks, 0, mb, rows, indptr, indices, values,
                                spans, coef, target_w, target_b, A, D)
            elif kind == 0:
                for piece in range(n_layers):
                    update_rows(piece, 1, 0, mb, rows, indptr, indices, values, no_splits,
                                coef, target_w, target_b, A, D)
            else:
                column_update0(0, mb, rows, indptr, indices, values, coef, target_w[0], D[0],
                               count, start, touched, term_t, term_c)
                B0, D0 = target_b[0], D[0]
                for t in range(mb):
                    for j in range(B0.shape[0]):
                        B0[j] += coef * D0[t, j]
                for piece in range(1, n_layers):
                    update_rows(piece, 1, 0, mb, rows, indptr, indices, values, no_splits,
                                coef, target_w, target_b, A, D)

    return drive


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("m", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--blocks", type=int, nargs="*", default=[2, 3, 4])
    args = parser.parse_args()
    pin_to_one_core()
    X, y = load_mnist(dtype="float32")[0]
    net = fastgd.Network([784, 30, 10], dtype="float32", seed=1)
    layout = net.layout.arrays
    examples = kernels.Examples(*kernels.nonzero_columns(X), y.astype(np.int64))
    module = kernels.kernels(net.sizes, net.dtype)
    weights, biases = (tuple(p) for p in kernels.buffers.layer_views(net.params, layout))
    width = weights[0].shape[1]
    drive = make_driver(module, make_column_update(width))
    order = np.random.default_rng(1).permutation(len(y))
    per_example = int(layout.a_off[-1])
    coef = np.array([-3.0 / 1000], net.dtype)[0]  # small: the targets stay normal numbers
    zero = coef - coef
    n_in = net.sizes[0]
    print(f"[784, 30, 10] float32, {len(y):,} shuffled examples, 1 thread, medians of "
          f"{args.rounds} epochs (ms): forward, backward and update", flush=True)
    for m in args.m:
        A = kernels.aligned_zeros(m * per_example, net.dtype)
        D = kernels.aligned_zeros(m * per_example, net.dtype)
        costs = kernels.aligned_zeros(m, np.float64)
        scratch = (tuple(kernels.buffers.scratch_views(A, layout, m)),
                   tuple(kernels.buffers.scratch_views(D, layout, m)))
        most = m * X.shape[1]
        sort = (np.zeros(n_in, np.uint64), np.zeros(n_in, np.uint64), np.zeros(n_in, np.uint64),
                np.zeros(most, np.uint64), np.zeros(most, net.dtype))
        results, calls = {}, {}
        variants = [(0, "update_rows", 1), (1, "row by row", 1)]
        variants += [(2, f"{nb} row blocks", nb) for nb in args.blocks]
        for kind, name, nb in variants:
            if nb > 1:
                bounds = kernels.balanced_bounds(examples.indices, n_in, nb)
                splits = kernels.row_splits(examples.indptr, examples.indices, bounds)
            else:
                splits = np.empty((0, 0), np.uint64)
            spans = np.zeros((m, splits.shape[1]), np.uint64)
            target = kernels.aligned_zeros(net.layout.n_params, net.dtype)
            target_w, target_b = (tuple(p) for p in
                                  kernels.buffers.layer_views(target, layout))
            calls[name] = (kind, order, examples, m, weights, biases, target_w, target_b,
                           *scratch, costs, zero, coef, net.sizes[-1], *sort, splits, spans)
            kernels.call(drive, *calls[name])  # compiles, then one epoch from zero
            results[name] = target.copy()
        times = {name: [] for name in calls}
        for _ in range(args.rounds):  # in turns, so that a slow spell of the VM hits all
            for name, call in calls.items():
                times[name].append(seconds(drive, *call) * 1e3)
        print(f"m = {m}: " + ", ".join(
            f"{name} {median(times[name]):.1f}"
            + ("" if name == "update_rows" else
               f" ({'same' if np.array_equal(results[name], results['update_rows']) else 'OTHER'}"
               " bits)") for name in times), flush=True)

if __name__ == "__main__":
    main()
