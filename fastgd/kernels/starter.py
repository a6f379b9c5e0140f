"""The starter kernel: gradient descent and the forward pass for any widths in one
small numba function (``start_kernel``), which compiles in a few seconds where the
generated modules take tens, so that a first run on a cold cache trains at once.

It covers the runs most first runs are: sparse inputs, mini-batches of at most
direct_max examples (``training.kernel_choice.chunk_size``: 256 for the book's
network), no regularization, either cost, one thread (``eligible``).  For those
it computes every number with the same operations in the same order as the
generated kernels' serial run: forward_pass's two chains of z_j, backward_pass's
four lanes, update_rows' order over examples and inputs (``generic``), so the
weights are bit-identical whichever trained them; tests/test_starter.py checks
it.  The work queue, groups, decay, dense inputs and threads of ``drive_descend``
are what it leaves out, and what makes it compile fast.

``train_serial`` and ``feedforward_serial`` are Python functions with the
signatures of a generated module's kernels of those names, so that the Trainer
and the Network run the starter as they run any module's kernels.
"""

import functools
import os
from types import SimpleNamespace

import numpy as np

from . import cache
from .buffers import layer_views, scratch_views
from .generator import COSTS, check_chains
from .inputs import nonzero_columns
from .maths import (CE_SMALLEST, cross_entropy_output_error, flush_tiny,
                    quadratic_output_error, sigmoid)
from .numba_cache import njit

@njit(cache=True, nogil=True, error_model="numpy")
def start_kernel(train, rows, start, stop, mini_batch_size, typed, indptr, indices, values,
                 labels, weights, biases, A, D, costs, second, tiny, eta, mean, cross_entropy,
                 out):
    """With train: gradient descent over the examples rows[start:stop], one
    mini-batch of at most len(costs) examples at a time, w -> w - (eta/m) sum_x
    dC_x/dw (likewise b; - eta sum_x with mean False); returns the sum of C_x,
    each with the weights in force when its mini-batch started.  Without:
    out[x] = a^L(x) for each x in rows[start:stop], in mini-batches likewise.

    weights[i], biases[i]: layer i's (n_in, stride) block of params and its
    biases; A[i], D[i]: (len(costs), stride) activations and errors, D's
    padding zero; second: a row as wide as the widest layer; typed: one number
    of params' dtype (the step is rounded there, as in drive_descend); out:
    (n, n_out), or (0, n_out) with train.  Nothing here allocates (np.empty
    and its kin cost a second of compiling each) nor prefetches (as fast
    without, and a second less to compile).
    """
    L = len(weights) - 1
    one = np.uint64(1)
    zero = second[0] - second[0]
    n_out = out.shape[1]
    total = 0.0
    for mb_start in range(start, stop, mini_batch_size):
        mb = min(mini_batch_size, stop - mb_start)
        for t in range(mb):
            x = rows[mb_start + t]
            p0, p1 = indptr[x], indptr[x + one]
            pairs = (p1 - p0) >> one
            # feedforward, each layer: z = w a + b, a = sigma(z)
            for i in range(L + 1):
                W, B = weights[i], biases[i]
                z = A[i][t]
                y = second[:W.shape[1]]
                for j in range(W.shape[1]):
                    z[j] = B[j]
                    y[j] = zero
                if i == 0:
                    for q in range(pairs):
                        p = p0 + q + q
                        k, ak = indices[p], values[p]
                        k2, ak2 = indices[p + one], values[p + one]
                        for j in range(W.shape[1]):
                            z[j] += ak * W[k, j]
                        for j in range(W.shape[1]):
                            y[j] += ak2 * W[k2, j]
                    if p0 + pairs + pairs < p1:
                        k, ak = indices[p1 - one], values[p1 - one]
                        for j in range(W.shape[1]):
                            z[j] += ak * W[k, j]
                else:
                    previous = A[i - 1][t]
                    n_in = W.shape[0]
                    for k in range(0, n_in - 1, 2):
                        ak, ak2 = previous[k], previous[k + 1]
                        for j in range(W.shape[1]):
                            z[j] += ak * W[k, j]
                        for j in range(W.shape[1]):
                            y[j] += ak2 * W[k + 1, j]
                    if n_in % 2:
                        ak = previous[n_in - 1]
                        for j in range(W.shape[1]):
                            z[j] += ak * W[n_in - 1, j]
                for j in range(W.shape[1]):
                    z[j] = z[j] + y[j]
                for j in range(W.shape[1]):
                    z[j] = sigmoid(z[j])
            if not train:
                for j in range(n_out):
                    out[x, j] = A[L][t, j]
                continue
            # BP1: delta^L = nabla_a C (.) sigma'(z^L), with sigma'(z) = a (1 - a)
            label = labels[x]
            AL, DL = A[L], D[L]
            if cross_entropy:
                p = 1.0
                for j in range(n_out):
                    a = AL[t, j]
                    yj = 1.0 if label == j else 0.0
                    p *= np.float64(a) if label == j else 1.0 - np.float64(a)
                    DL[t, j] = flush_tiny(cross_entropy_output_error(a, yj), tiny)
                costs[t] = -np.log(max(p, CE_SMALLEST))
            else:
                cost = 0.0
                for j in range(n_out):
                    a = AL[t, j]
                    yj = 1.0 if label == j else 0.0
                    cost += 0.5 * (a - yj) * (a - yj)
                    DL[t, j] = flush_tiny(quadratic_output_error(a, yj), tiny)
                costs[t] = cost
            # BP2: delta^l = ((w^(l+1))^T delta^(l+1)) (.) sigma'(z^l)
            for i in range(L - 1, -1, -1):
                W, Ai, Di, d = weights[i + 1], A[i], D[i], D[i + 1][t]
                for k in range(W.shape[0]):
                    w = W[k]
                    s0, s1, s2, s3 = w[0] * d[0], w[1] * d[1], w[2] * d[2], w[3] * d[3]
                    for j in range(4, W.shape[1], 4):
                        s0 += w[j] * d[j]
                        s1 += w[j + 1] * d[j + 1]
                        s2 += w[j + 2] * d[j + 2]
                        s3 += w[j + 3] * d[j + 3]
                    s = (s0 + s1) + (s2 + s3)
                    ak = Ai[t, k]
                    Di[t, k] = flush_tiny(s * ak * (1.0 - ak), tiny)
        if not train:
            continue
        for t in range(mb):
            total += costs[t]
        # BP3, BP4 and the update, straight into params, example by example:
        # b -> b - (eta/m) sum_x delta, w -> w - (eta/m) sum_x a_in delta_out
        typed[0] = -eta / mb if mean else -eta
        coef = typed[0]
        W, B, D0 = weights[0], biases[0], D[0]
        for t in range(mb):
            x = rows[mb_start + t]
            d = D0[t]
            for p in range(indptr[x], indptr[x + one]):
                k = indices[p]
                c = coef * values[p]
                for j in range(W.shape[1]):
                    W[k, j] += c * d[j]
            for j in range(W.shape[1]):
                B[j] += coef * d[j]
        for i in range(1, L + 1):
            W, B, Di, previous = weights[i], biases[i], D[i], A[i - 1]
            for t in range(mb):
                d = Di[t]
                for k in range(W.shape[0]):
                    c = coef * previous[t, k]
                    for j in range(W.shape[1]):
                        W[k, j] += c * d[j]
                for j in range(W.shape[1]):
                    B[j] += coef * d[j]
    return total


def _layer_views(params, layout):
    """``buffers.layer_views`` run as Python, as tuples (one numba type)."""
    weights, biases = layer_views.py_func(params, layout)
    return tuple(weights), tuple(biases)


def _scratch_views(buffer, layout, rows):
    """``buffers.scratch_views`` run as Python, as a tuple."""
    return tuple(scratch_views.py_func(buffer, layout, rows))


def _tiny(dtype):
    """The errors the kernels flush to zero are below this (``maths.flush_tiny``)."""
    info = np.finfo(dtype)
    return float(info.tiny / info.eps)


@functools.cache  # one per cost, found again by every evaluation while it is in use
def kernels(cost):
    """The starter's kernels for a network trained on `cost`, as a namespace with
    a generated module's names (``train_serial``, ``feedforward_serial``) and
    flags (``generic``, ``starter``); ``dispatcher`` on each is start_kernel."""
    cross_entropy = check_cost(cost) == "cross-entropy"

    def train_serial(examples, idx, start, stop, mini_batch_size, eta, mean, params, layout,
                     scratch, plan, decay=1.0, shrink=0.0):
        """The generated ``train_serial`` (``drivers.drive_train_serial``) for the runs
        ``eligible`` admits, on ``start_kernel``: the same steps and the same bits."""
        if decay != 1.0 or shrink != 0.0:
            raise ValueError("the starter kernel does not regularize")
        rows_held = scratch.A.shape[0] // int(layout.a_off[-1])
        if min(mini_batch_size, stop - start) > min(plan.direct_max, rows_held):
            raise ValueError("the starter kernel takes mini-batches of at most direct_max "
                             "examples")
        weights, biases = _layer_views(params, layout)
        A = _scratch_views(scratch.A, layout, rows_held)
        D = _scratch_views(scratch.D, layout, rows_held)
        return start_kernel(True, idx, start, stop, mini_batch_size, np.zeros(1, params.dtype),
                            examples.indptr, examples.indices, examples.values,
                            examples.labels, weights, biases, A, D, scratch.costs,
                            np.zeros(int(np.max(layout.stride)), params.dtype),
                            _tiny(params.dtype), float(eta), bool(mean), cross_entropy,
                            np.zeros((0, int(layout.sizes[-1])), params.dtype))

    def feedforward_serial(X, params, layout, out, block):
        """The generated ``feedforward_serial`` (``drivers.drive_feedforward``) on
        ``start_kernel``: out[x] = a^L(x) for every row x of X, the same bits."""
        indptr, indices, values = nonzero_columns(X)
        rows = max(1, min(block, X.shape[0]))
        buffer = np.zeros(rows * int(layout.a_off[-1]), params.dtype)
        weights, biases = _layer_views(params, layout)
        A = _scratch_views(buffer, layout, rows)
        start_kernel(False, np.arange(X.shape[0]), 0, X.shape[0], rows,
                     np.zeros(1, params.dtype), indptr, indices, values,
                     np.zeros(0, np.int64), weights, biases, A, A, np.zeros(rows),
                     np.zeros(int(np.max(layout.stride)), params.dtype), _tiny(params.dtype),
                     0.0, True, cross_entropy, out)

    train_serial.dispatcher = feedforward_serial.dispatcher = start_kernel
    # __file__ places the lock that one process at a time compiles under
    # (``loader.compiling``) in the generated modules' folder
    return SimpleNamespace(generic=False, starter=True, train_serial=train_serial,
                           feedforward_serial=feedforward_serial, start_kernel=start_kernel,
                           __name__=__name__,
                           __file__=os.path.join(cache.module_folder(), "starter"))


def eligible(cost, dense, mini_batch_size, direct_max, regularized, kernel):
    """Whether a run of these settings can start on the starter kernel: sparse
    inputs, mini-batches of at most direct_max examples, no regularization,
    the serial kernel, and the generated code's default two chains."""
    return (cost in COSTS and not dense and mini_batch_size <= direct_max and not regularized
            and kernel == "serial" and check_chains() == 2)


def check_cost(cost):
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    return cost
