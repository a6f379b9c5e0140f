"""Where a 1-thread epoch goes: the forward pass, the backward pass and the update, timed apart.

    python benchmarks/passes.py [--chunk 256] [--rounds 7]

The generated kernels of [784, 30, 10] float32 (``kernels.kernels``), driven by a
small numba loop over MNIST's 50,000 training images in chunks of ``--chunk``
examples, as a large mini-batch's groups are: the forward pass alone, then forward
and backward, then both and the update into a gradient buffer (what
``_train`` does per group, without the group sums' additions and the step).  The
weights stay fixed, so every round does the same work.  One thread, pinned to
one core where the OS allows; medians of ``--rounds`` timings, for the examples
shuffled (as training sees them) and in their stored order (the difference is
the wait for each shuffled example's inputs to arrive from memory).
"""

import argparse

import numpy as np
from numba import njit

import fastgd
from fastgd import kernels
from fastgd.data import load_mnist

from _measure import median_seconds, pin_to_one_core

PARTS = ("forward", "forward + backward", "forward + backward + update")


def make_driver(module):
    """A numba loop that runs the first `parts` of the passes over the examples
    `order`, chunk by chunk."""
    forward_pass, backward_pass = module.forward_pass, module.backward_pass
    update_rows = module.update_rows

    @njit(nogil=True, error_model="numpy")
    def drive(parts, order, examples, chunk, weights, biases, target_w, target_b, A, D, costs,
              zero, one, n_out):
        indptr, indices, values, labels = examples
        no_splits = np.empty((0, 0), np.uint64)
        n_layers = len(weights)
        for first in range(0, order.shape[0], chunk):
            count = min(chunk, order.shape[0] - first)
            rows = order[first:]
            forward_pass(0, count, rows, indptr, indices, values, no_splits, no_splits,
                         weights, biases, A, zero)
            if parts >= 2:
                backward_pass(0, count, rows, labels, weights, A, D, costs, n_out)
            if parts >= 3:
                for piece in range(n_layers):
                    update_rows(piece, 1, 0, count, rows, indptr, indices, values, no_splits,
                                one, target_w, target_b, A, D)

    return drive


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=256, help="examples per call (default 256)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.chunk < 1 or args.rounds < 1:
        parser.error("--chunk and --rounds take integers >= 1")
    pin_to_one_core()
    X, y = load_mnist(dtype="float32")[0]
    net = fastgd.Network([784, 30, 10], dtype="float32", seed=1)
    layout = net.layout.arrays
    examples = kernels.Examples(*kernels.nonzero_columns(X), y.astype(np.int64))
    module = kernels.kernels(net.sizes, net.dtype)
    per_example = int(layout.a_off[-1])
    A = kernels.aligned_zeros(args.chunk * per_example, net.dtype)
    D = kernels.aligned_zeros(args.chunk * per_example, net.dtype)
    costs = kernels.aligned_zeros(args.chunk, np.float64)
    target = kernels.aligned_zeros(net.layout.n_params, net.dtype)
    weights, biases = (tuple(p) for p in kernels.buffers.layer_views(net.params, layout))
    target_w, target_b = (tuple(p) for p in kernels.buffers.layer_views(target, layout))
    scratch = (tuple(kernels.buffers.scratch_views(A, layout, args.chunk)),
               tuple(kernels.buffers.scratch_views(D, layout, args.chunk)))
    drive = make_driver(module)
    one = np.ones(1, net.dtype)[0]
    orders = {"shuffled": np.random.default_rng(1).permutation(len(y)),
              "stored order": np.arange(len(y))}
    print("Compiling the passes...", flush=True)
    times = {}
    for name, order in orders.items():
        for parts in (1, 2, 3):
            call = (parts, order, examples, args.chunk, weights, biases, target_w, target_b,
                    *scratch, costs, one - one, one, net.sizes[-1])
            kernels.call(drive, *call)  # compiles once, then warms the caches
            times[name, parts] = median_seconds(drive, *call, rounds=args.rounds)
    print(f"\n[784, 30, 10] float32, {len(y):,} examples in chunks of {args.chunk}, 1 thread, "
          f"medians of {args.rounds} (ms)\n")
    print("| examples | " + " | ".join(PARTS) + " | backward | update |")
    print("| --- |" + " --- |" * (len(PARTS) + 2))
    for name in orders:
        t = [times[name, parts] * 1e3 for parts in (1, 2, 3)]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in t)
              + f" | {t[1] - t[0]:.1f} | {t[2] - t[1]:.1f} |")


if __name__ == "__main__":
    main()
