"""The numba loops that do all of fastgd's arithmetic.

Plain functions over arrays: no validation and no Python objects here (the
callers in ``network.py`` and ``training.py`` check every input first).

Parameter layout
----------------
All weights and biases live in one flat array ``params``.  Layer ``i`` (from
``sizes[i]`` neurons to ``sizes[i+1]`` neurons) keeps its weights transposed,
as an ``(n_in, stride)`` block at ``w_off[i]``, so that the weights leaving one
input neuron are contiguous: the forward pass adds ``a_k * w[k, :]`` for each
input ``a_k`` and the update adds ``a_k * delta`` to the same row.  Inputs that
are zero (81% of MNIST's pixels) are skipped: each input row comes with the
list of its nonzero columns (``nonzero_columns``, a CSR index).  ``stride[i]`` is ``sizes[i+1]`` rounded
up to a multiple of 8: the padding weights and biases are zero and stay zero
(their errors delta are zero), and whole vector registers fit each row, which
made the book's 30-neuron layer about twice as fast.  No loop is a float
reduction that would need fastmath to vectorise.  The biases of layer ``i``
(``stride[i]`` of them, padding included) follow at ``b_off[i]``.

Per-example scratch (activations ``A`` and errors ``D``, one row per example of
the chunk being processed) keeps layer ``i``'s ``stride[i]`` values at
``a_off[i]``; ``a_off[-1]`` is the row length.

Inner loops index only with plain ``range`` variables (``delta[j]``, not
``D[t, off + j]``): numba cannot tell that ``off + j`` is not negative, and the
check it then inserts stops the loop from vectorising (it cost 6x here).

Errors delta smaller than tiny/eps of the dtype (1e-31 in float32, 2e-292 in
float64) are flushed to zero, so that neither they nor their products in the
update are denormal numbers: arithmetic on those is ~100 times slower on x86,
about 1% of float32 MNIST gradients fell there, and flushing made online
learning 13% faster.  Their effect on the weights is below float rounding.

Determinism
-----------
Work is split across threads only where no two threads write the same number:
examples in the forward/backward pass (each writes its own scratch row) and
weight rows in the update (each row sums its examples in a fixed order).
Results are therefore bit-identical for any thread count, and the serial
variant of each kernel (the same function compiled without ``parallel``)
gives the same bits as well.
"""

import types

import numpy as np
from numba import njit, prange


def _compile_serial_and_parallel(impl):
    """Compile one plain function twice, umap-style: serial and prange-parallel.

    numba's on-disk cache is keyed by the function's qualified name, not by
    the ``parallel`` flag, so each variant gets a name of its own.
    """
    variants = []
    for suffix, parallel in (("_serial", False), ("_parallel", True)):
        fn = types.FunctionType(impl.__code__, impl.__globals__,
                                impl.__name__ + suffix, impl.__defaults__)
        fn.__qualname__ = impl.__qualname__ + suffix
        fn.__doc__ = impl.__doc__
        variants.append(njit(cache=True, nogil=True, parallel=parallel)(fn))
    return tuple(variants)


@njit(cache=True, nogil=True, inline="always")
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@njit(cache=True, nogil=True)
def _weights(params, sizes, stride, w_off):
    """Each layer's weights as a (sizes[i], stride[i]) view of params: row k of
    layer i holds w_jk for all j.  (Made once per kernel call: each reshape
    calls into numba's C helpers.)"""
    return [params[w_off[i]:w_off[i] + sizes[i] * stride[i]].reshape((sizes[i], stride[i]))
            for i in range(sizes.shape[0] - 1)]


@njit(cache=True, nogil=True)
def nonzero_columns(X):
    """(indptr, indices, values): row x of X is nonzero exactly in the columns
    indices[indptr[x]:indptr[x + 1]], in increasing order, where it holds values[...]
    (CSR; the values are copied so that training reads them contiguously)."""
    n, n_in = X.shape
    indptr = np.zeros(n + 1, np.int64)
    for x in range(n):
        count = 0
        for k in range(n_in):
            if X[x, k] != 0:
                count += 1
        indptr[x + 1] = indptr[x] + count
    indices = np.empty(indptr[n], np.int32)
    values = np.empty(indptr[n], X.dtype)
    for x in range(n):
        p = indptr[x]
        for k in range(n_in):
            if X[x, k] != 0:
                indices[p] = k
                values[p] = X[x, k]
                p += 1
    return indptr, indices, values


@njit(cache=True, nogil=True)
def _forward(xv, nz, params, weights, sizes, stride, b_off, a_off, a):
    """a^l = sigmoid(w^l a^(l-1) + b^l) for every layer, into a, for the input whose
    nonzero entries are xv[p] at the indices nz[p]."""
    for i in range(sizes.shape[0] - 1):
        s = stride[i]
        w = weights[i]
        z = a[a_off[i]:a_off[i] + s]
        z[:] = params[b_off[i]:b_off[i] + s]
        if i == 0:
            for p in range(nz.shape[0]):
                k, xk = nz[p], xv[p]
                for j in range(s):
                    z[j] += xk * w[k, j]
        else:
            inp = a[a_off[i - 1]:a_off[i - 1] + sizes[i]]
            for k in range(sizes[i]):
                ak = inp[k]
                for j in range(s):
                    z[j] += ak * w[k, j]
        for j in range(sizes[i + 1]):
            z[j] = _sigmoid(z[j])


@njit(cache=True, nogil=True)
def _forward_backward(xv, nz, label, params, weights, sizes, stride, b_off, a_off, a, d):
    """Backpropagation for one example: activations into a, errors delta into d.

    delta^L = (a^L - y) * sigma'(z^L) and
    delta^l = ((w^(l+1))^T delta^(l+1)) * sigma'(z^l), with sigma'(z) = a (1 - a).
    Returns C_x = ||y - a^L||^2 / 2 with y the one-hot vector of label.
    The padding entries of d must be zero on entry; they are left so.
    """
    _forward(xv, nz, params, weights, sizes, stride, b_off, a_off, a)
    tiny = np.finfo(d.dtype).tiny / np.finfo(d.dtype).eps
    last = sizes.shape[0] - 2
    cost = 0.0
    for j in range(sizes[last + 1]):
        aj = a[a_off[last] + j]
        diff = aj - 1.0 if j == label else aj
        cost += 0.5 * diff * diff
        dj = diff * aj * (1.0 - aj)
        d[a_off[last] + j] = dj if abs(dj) >= tiny else 0.0
    for i in range(last, 0, -1):
        w = weights[i]
        delta = d[a_off[i]:a_off[i] + stride[i]]
        for k in range(sizes[i]):
            # four partial sums (in the dtype) in a fixed order: not latency bound,
            # still exact to repeat
            s0 = w[k, 0] * delta[0]
            s1 = w[k, 1] * delta[1]
            s2 = w[k, 2] * delta[2]
            s3 = w[k, 3] * delta[3]
            for j in range(4, stride[i], 4):
                s0 += w[k, j] * delta[j]
                s1 += w[k, j + 1] * delta[j + 1]
                s2 += w[k, j + 2] * delta[j + 2]
                s3 += w[k, j + 3] * delta[j + 3]
            ak = a[a_off[i - 1] + k]
            dk = ((s0 + s1) + (s2 + s3)) * ak * (1.0 - ak)
            d[a_off[i - 1] + k] = dk if abs(dk) >= tiny else 0.0
    return cost


def _train(indptr, indices, values, labels, idx, start, stop, mini_batch_size, eta, mean,
           params, nabla, sizes, stride, w_off, b_off, a_off, A, D, costs, n_blocks):
    """Gradient descent over the examples idx[start:stop], one mini-batch at a time.

    For each mini-batch X_1..X_m: w -> w - (eta/m) sum_j dC_Xj/dw (likewise b),
    or w -> w - eta sum_j dC_Xj/dw when mean is False.  The last, short
    mini-batch uses its own length m, as network.py does.

    A mini-batch of at most A.shape[0] examples ("a chunk") is backpropagated
    in one go and its update added straight to params.  A larger one is
    processed chunk by chunk, its gradient summed in nabla, and applied once
    at the end, so every example sees the same weights.  D's padding columns
    must be zero on entry.  The update is split into n_blocks blocks of weight
    rows (1 for the serial kernel); the result does not depend on n_blocks.

    Returns the sum of C_x over the examples, each evaluated with the weights
    in force when its mini-batch started (the running training cost).
    """
    chunk = A.shape[0]
    n_params = params.shape[0]
    weights = _weights(params, sizes, stride, w_off)
    # nabla is empty when every mini-batch fits in one chunk
    nabla_w = _weights(nabla, sizes, stride, w_off) if nabla.shape[0] == n_params else weights
    typed = np.ones(1, params.dtype)  # gives the coefficients params' dtype
    one = typed[0]
    total_cost = 0.0
    for mb_start in range(start, stop, mini_batch_size):
        mb = min(mini_batch_size, stop - mb_start)
        typed[0] = -eta / mb if mean else -eta
        step = typed[0]
        direct = mb <= chunk
        if direct:
            target, target_w, coef = params, weights, step
        else:
            target, target_w, coef = nabla, nabla_w, one
            for p in prange(n_params):
                nabla[p] = 0
        for first in range(mb_start, mb_start + mb, chunk):
            count = min(chunk, mb_start + mb - first)
            # backpropagation, split by example: each writes its own row of A and D
            for t in prange(count):
                x = idx[first + t]
                nz = slice(indptr[x], indptr[x + 1])
                costs[t] = _forward_backward(values[nz], indices[nz], labels[x],
                                             params, weights, sizes, stride, b_off, a_off,
                                             A[t], D[t])
            for t in range(count):
                total_cost += costs[t]
            # target += coef * sum_t a_t delta_t, split by blocks of weight rows;
            # every weight adds its examples in the order t = 0, 1, ... whatever the split
            for blk in prange(n_blocks):
                _add_outer_products(blk, n_blocks, indptr, indices, values, idx, first, count,
                                    target, target_w, coef, sizes, stride, b_off, a_off, A, D)
        if not direct:
            for p in prange(n_params):
                params[p] += step * nabla[p]
    return total_cost


@njit(cache=True, nogil=True)
def _add_outer_products(blk, n_blocks, indptr, indices, values, idx, first, count, target,
                        target_w, coef, sizes, stride, b_off, a_off, A, D):
    """target_w[k, :] += coef * a_t[k] * delta_t for the rows k of block blk of each
    layer, example by example; the last block also does target_b += coef * delta_t."""
    for i in range(sizes.shape[0] - 1):
        n_in, s = sizes[i], stride[i]
        k0, k1 = blk * n_in // n_blocks, (blk + 1) * n_in // n_blocks
        w = target_w[i]
        b = target[b_off[i]:b_off[i] + s]
        for t in range(count):
            delta = D[t, a_off[i]:a_off[i] + s]
            if i == 0:
                x = idx[first + t]
                for p in range(indptr[x], indptr[x + 1]):
                    k = indices[p]
                    if k >= k0 and k < k1:
                        c = coef * values[p]
                        for j in range(s):
                            w[k, j] += c * delta[j]
            else:
                a = A[t, a_off[i - 1]:a_off[i - 1] + n_in]
                for k in range(k0, k1):
                    c = coef * a[k]
                    for j in range(s):
                        w[k, j] += c * delta[j]
            if blk == n_blocks - 1:
                for j in range(s):
                    b[j] += coef * delta[j]


def _feedforward(X, params, sizes, stride, w_off, b_off, a_off, out, block):
    """out[x] = a^L(x) for every row x of X, in blocks of `block` examples."""
    n, n_in = X.shape
    last = sizes.shape[0] - 2
    n_blocks = (n + block - 1) // block
    weights = _weights(params, sizes, stride, w_off)
    for bi in prange(n_blocks):
        a = np.empty(a_off[last + 1], params.dtype)
        nz = np.empty(n_in, np.int32)
        xv = np.empty(n_in, X.dtype)
        for x in range(bi * block, min(n, (bi + 1) * block)):
            n_nz = 0
            for k in range(n_in):
                if X[x, k] != 0:
                    nz[n_nz] = k
                    xv[n_nz] = X[x, k]
                    n_nz += 1
            _forward(xv[:n_nz], nz[:n_nz], params, weights, sizes, stride, b_off, a_off, a)
            for j in range(sizes[last + 1]):
                out[x, j] = a[a_off[last] + j]


def _gradients(X, labels, params, sizes, stride, w_off, b_off, a_off, nabla):
    """nabla[x] = the gradient of C_x for each example x (row x of X), in params' layout.

    dC_x/db^l = delta^l and dC_x/dw^l_jk = a^(l-1)_k delta^l_j (backpropagation);
    padding entries are zero.
    """
    n, n_in = X.shape
    n_layers = sizes.shape[0] - 1
    weights = _weights(params, sizes, stride, w_off)
    for x in prange(n):
        a = np.empty(a_off[n_layers], params.dtype)
        d = np.zeros(a_off[n_layers], params.dtype)
        everything = np.arange(n_in)
        _forward_backward(X[x], everything, labels[x], params, weights, sizes, stride,
                          b_off, a_off, a, d)
        g = nabla[x]
        g[:] = 0
        nabla_w = _weights(g, sizes, stride, w_off)
        for i in range(n_layers):
            w = nabla_w[i]
            for j in range(sizes[i + 1]):
                g[b_off[i] + j] = d[a_off[i] + j]
            for k in range(sizes[i]):
                ak = X[x, k] if i == 0 else a[a_off[i - 1] + k]
                for j in range(sizes[i + 1]):
                    w[k, j] = ak * d[a_off[i] + j]


train_serial, train_parallel = _compile_serial_and_parallel(_train)
feedforward_serial, feedforward_parallel = _compile_serial_and_parallel(_feedforward)
gradients_serial, gradients_parallel = _compile_serial_and_parallel(_gradients)
