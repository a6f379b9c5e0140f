"""The generated passes on smaller inputs: fastgd's 8 bytes per nonzero input (a uint32
column, a float32 value) against 5 (uint8 codes into a table of MNIST's distinct
values) and 3 (uint16 columns too), over a shuffled epoch, one pinned thread.

    python benchmarks/experiments/input_codes.py [M ...]

The kernels of [784, 30, 10] float32 are generated as fastgd generates them, and for
the coded inputs with every ``values[p]`` read as ``TABLE[values[p]]``; the table gives
back MNIST's values exactly, so every variant adds the same numbers in the same order
(printed: whether the weights' bits agree).  Each epoch runs the forward pass, the
backward pass and an update into a buffer for every M examples, the variants taking
turns; median ms of 9 epochs.  Not in fastgd: the coded inputs would change the
kernels' argument types through every driver and the cold start's compile plan.
"""

import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from numba import njit

import fastgd
from fastgd import kernels
from fastgd.data import load_mnist
from fastgd.kernels import generator, intrinsics, loader, maths

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _measure import median, pin_to_one_core  # noqa: E402
from passes import make_driver  # noqa: E402


def passes(source, table=None):
    """forward_pass, backward_pass and update_rows compiled from `source` (not
    cached), as the attributes of a generated module, for ``passes.make_driver``."""
    namespace = {"np": np, "njit": njit, "TABLE": table,
                 "prefetch_row": intrinsics.prefetch_row,
                 "prefetch_row_outer": intrinsics.prefetch_row_outer,
                 **{name: getattr(maths, name) for name in (
                     "flush_tiny", "quadratic_output_error", "sigmoid",
                     "cross_entropy_output_error", "CE_SMALLEST")}}
    exec(compile(source.replace("cache=True, ", ""), "<passes>", "exec"), namespace)
    return SimpleNamespace(**{name: namespace[name] for name in (
        "forward_pass", "backward_pass", "update_rows")})


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 1000]
    pin_to_one_core()
    X, y = load_mnist(dtype="float32")[0]
    indptr, indices, values = kernels.nonzero_columns(X)
    table = np.unique(values)
    if table.shape[0] > 256:
        sys.exit(f"{table.shape[0]} distinct values: more than a uint8 code can name")
    codes = np.searchsorted(table, values).astype(np.uint8)
    assert np.array_equal(table[codes], values)
    source = generator.layer_code([30, 10], generator.panel_width(4))
    plain = make_driver(passes(source))
    coded = make_driver(passes(re.sub(r"values\[(p[^\]]*)\]", r"TABLE[values[\1]]", source),
                               table))
    variants = {"8 bytes": (plain, indices, values),
                "5 bytes": (coded, indices, codes),
                "3 bytes": (coded, indices.astype(np.uint16), codes)}
    net = fastgd.Network([784, 30, 10], dtype="float32", seed=1)
    layout = net.layout.arrays
    weights, biases = (tuple(p) for p in kernels.buffers.layer_views(net.params, layout))
    order = np.random.default_rng(1).permutation(len(y))
    coef, zero = np.float32(-3.0 / 1000), np.float32(0)
    per_example = int(layout.a_off[-1])
    print(f"{indices.shape[0]:,} nonzero inputs, {table.shape[0]} distinct values; "
          "[784, 30, 10] float32, 1 thread, median ms of 9 epochs", flush=True)
    for m in sizes:
        A = kernels.aligned_zeros(m * per_example, net.dtype)
        D = kernels.aligned_zeros(m * per_example, net.dtype)
        costs = kernels.aligned_zeros(m, np.float64)
        scratch = (tuple(kernels.buffers.scratch_views(A, layout, m)),
                   tuple(kernels.buffers.scratch_views(D, layout, m)))
        calls, bits = {}, {}
        for name, (epoch, columns, numbers) in variants.items():
            target = kernels.aligned_zeros(net.layout.n_params, net.dtype)
            target_w, target_b = (tuple(p) for p in kernels.buffers.layer_views(target, layout))
            examples = kernels.Examples(indptr, columns, numbers, y.astype(np.int64))
            # all three passes, every m examples, the update scaled by coef
            call = (3, order, examples, m, weights, biases, target_w, target_b, *scratch,
                    costs, zero, coef, net.sizes[-1])
            with loader._slp_on():  # as fastgd compiles its kernels
                epoch(*call)
            bits[name], calls[name] = target.copy(), (epoch, call)
        times = {name: [] for name in calls}
        for _ in range(9):  # in turns, so that a slow spell of the VM hits all
            for name, (epoch, call) in calls.items():
                began = time.perf_counter()
                epoch(*call)
                times[name].append((time.perf_counter() - began) * 1e3)
        same = all(np.array_equal(b, bits["8 bytes"]) for b in bits.values())
        print(f"m = {m}: " + ", ".join(f"{name} {median(t):.1f}" for name, t in times.items())
              + f"; the same bits: {same}", flush=True)


if __name__ == "__main__":
    main()
