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

Beside them, the floors each pass could at best reach on this machine, driven the
same way: ``stream_inputs`` reads each example's nonzero inputs (indices and
values) and nothing else; ``read_rows`` also reads the layer-0 weight row of each
(z = sum_k a_k w_k, 32 numbers per row, in four independent sums so that no chain
of additions sets the pace): the part of the forward pass no kernel can skip;
``add_rows`` adds a multiple of a fixed 32-number error to each of those rows:
the part of the update no kernel can skip.  The gap of each pass to its floor
is what the kernels could still gain there.
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


FLOORS = ("stream_inputs", "read_rows", "add_rows")


def floor_source(width):
    """The source of ``floor_pass`` for rows of `width` numbers, each row's numbers
    in named variables (as the generated kernels hold them, so that LLVM keeps them
    in vector registers): kind 0 sums the example's inputs, kind 1 its layer-0
    rows in two alternating sums (as the forward pass does, so that two chains of
    additions overlap), kind 2 adds a_k d to each of those rows."""
    r = range(width)
    ind = " " * 12
    lines = [
        "def floor_pass(kind, order, indptr, indices, values, W0, out, d):",
        "    zero = W0.dtype.type(0)",
        *[f"    d{j} = d[{j}]" for j in r],
        "    for t in range(order.shape[0]):",
        "        x = order[t]",
        "        p0, p1 = indptr[x], indptr[x + 1]",
        "        if kind == 0:",
        "            s = zero",
        "            for p in range(p0, p1):",
        "                s += values[p] * W0.dtype.type(indices[p])",
        "            out[x] = s",
        "        elif kind == 1:",
        *[f"{ind}z{j} = zero" for j in r],
        *[f"{ind}y{j} = zero" for j in r],
        f"{ind}for q in range((p1 - p0) // 2):",
        f"{ind}    p = p0 + 2 * q",
        f"{ind}    k, a, k2, a2 = indices[p], values[p], indices[p + 1], values[p + 1]",
        *[f"{ind}    z{j} += a * W0[k, {j}]" for j in r],
        *[f"{ind}    y{j} += a2 * W0[k2, {j}]" for j in r],
        f"{ind}if (p1 - p0) % 2:",
        f"{ind}    k, a = indices[p1 - 1], values[p1 - 1]",
        *[f"{ind}    z{j} += a * W0[k, {j}]" for j in r],
        f"{ind}out[x] = " + " + ".join(f"z{j} + y{j}" for j in r),
        "        else:",
        f"{ind}for p in range(p0, p1):",
        f"{ind}    k, a = indices[p], values[p]",
        *[f"{ind}    W0[k, {j}] += a * d{j}" for j in r],
    ]
    return "\n".join(lines) + "\n"


def make_floor_pass(width):
    """``floor_source(width)`` compiled: floor_pass(kind, order, indptr, indices,
    values, W0, out, d), over the examples `order`; out[x] keeps a result of each
    example's reads so that none is optimised away."""
    namespace = {}
    exec(compile(floor_source(width), "<floor_pass>", "exec"), namespace)
    return njit(nogil=True, error_model="numpy")(namespace["floor_pass"])


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
    W0 = np.array(weights[0])  # a copy: add_rows changes it
    floor_pass = make_floor_pass(W0.shape[1])
    out = np.zeros(len(y), net.dtype)
    d = np.full(W0.shape[1], 1e-9, net.dtype)  # tiny: the rows stay normal numbers
    for name, order in orders.items():
        for parts in (1, 2, 3):
            call = (parts, order, examples, args.chunk, weights, biases, target_w, target_b,
                    *scratch, costs, one - one, one, net.sizes[-1])
            kernels.call(drive, *call)  # compiles once, then warms the caches
            times[name, parts] = median_seconds(drive, *call, rounds=args.rounds)
        for kind, floor in enumerate(FLOORS):
            call = (kind, order, examples.indptr, examples.indices, examples.values, W0, out, d)
            kernels.call(floor_pass, *call)
            times[name, floor] = median_seconds(floor_pass, *call, rounds=args.rounds)
    print(f"\n[784, 30, 10] float32, {len(y):,} examples in chunks of {args.chunk}, 1 thread, "
          f"medians of {args.rounds} (ms)\n")
    print("| examples | " + " | ".join(PARTS) + " | backward | update |")
    print("| --- |" + " --- |" * (len(PARTS) + 2))
    for name in orders:
        t = [times[name, parts] * 1e3 for parts in (1, 2, 3)]
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in t)
              + f" | {t[1] - t[0]:.1f} | {t[2] - t[1]:.1f} |")
    print("\nThe floors, and the passes' gaps to them (ms):\n")
    print("| examples | " + " | ".join(FLOORS) + " | forward - read_rows "
          "| all three - (read_rows + add_rows) |")
    print("| --- |" + " --: |" * (len(FLOORS) + 2))
    for name in orders:
        f = [times[name, floor] * 1e3 for floor in FLOORS]
        forward, whole = times[name, 1] * 1e3, times[name, 3] * 1e3
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in f)
              + f" | {forward - f[1]:.1f} | {whole - f[1] - f[2]:.1f} |")

if __name__ == "__main__":
    main()
