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

Per-example scratch (activations ``A`` and errors ``D`` of the chunk of
examples being processed) is one flat buffer each, layer-major: layer ``i``
holds a ``(chunk, stride[i])`` block at ``chunk * a_off[i]``, so ``a_off[-1]``
is the length per example.  Kernels take each layer's weights, biases and
scratch as 2-D views made once per call (``_layers``, ``_scratch``): views
made per example cost a C call for each reshape and a reference count each,
about a third of an m=10 epoch's time for the book's network.

Inner loops index only with plain ``range`` variables (``delta[t, j]``, not
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
from llvmlite import ir
from numba import njit, prange
from numba import types as nbtypes
from numba.core import cgutils
from numba.extending import intrinsic


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
def _layers(params, sizes, stride, w_off, b_off):
    """(weights, biases): each layer's weights as a (sizes[i], stride[i]) view of
    params (row k holds w_jk for all j) and its biases as a (stride[i],) view.

    Made once per kernel call: a reshape calls into numba's C helpers, and
    every view costs a reference count.
    """
    n_layers = sizes.shape[0] - 1
    weights = [params[w_off[i]:w_off[i] + sizes[i] * stride[i]].reshape((sizes[i], stride[i]))
               for i in range(n_layers)]
    biases = [params[b_off[i]:b_off[i] + stride[i]] for i in range(n_layers)]
    return weights, biases


@njit(cache=True, nogil=True)
def _scratch(buffer, stride, a_off, rows):
    """Layer i's per-example values (activations or errors) as a (rows, stride[i])
    view of buffer: layer-major, so that a layer's rows are contiguous."""
    return [buffer[rows * a_off[i]:rows * a_off[i + 1]].reshape((rows, stride[i]))
            for i in range(stride.shape[0])]


@intrinsic
def _prefetch(typingctx, array, i):
    """Ask the CPU to start loading the cache line of array[i] (LLVM's prefetch
    hint: it changes no result, only when the data arrive)."""
    if not isinstance(array, nbtypes.Array) or not isinstance(i, nbtypes.Integer):
        return None

    def codegen(context, builder, signature, args):
        arrayty = signature.args[0]
        ary = context.make_array(arrayty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer2(context, builder, ary.data,
                                        cgutils.unpack_tuple(builder, ary.shape),
                                        cgutils.unpack_tuple(builder, ary.strides),
                                        arrayty.layout, [args[1]])
        byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read, keep in all cache levels, data
        builder.call(fn, [builder.bitcast(ptr, byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return nbtypes.void(array, nbtypes.intp), codegen


@njit(cache=True, nogil=True)
def _prefetch_row(x, indptr, indices, values):
    """Start loading row x of the CSR arrays into cache.

    Examples come in shuffled order, so each one's nonzero inputs lie somewhere
    new in memory; asking for the next example's while this one computes made
    an m=10 epoch about 8% faster.
    """
    for p in range(indptr[x], indptr[x + 1], 64 // indices.itemsize):
        _prefetch(indices, p)
    for p in range(indptr[x], indptr[x + 1], 64 // values.itemsize):
        _prefetch(values, p)


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
    indices = np.empty(indptr[n], np.uint32)
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
def _forward(t0, t1, rows, indptr, indices, values, weights, biases, sizes, A):
    """a^l = sigmoid(w^l a^(l-1) + b^l), layer by layer, into A[l][t] for the
    examples t0 <= t < t1; example t's input is row rows[t] of the CSR arrays."""
    for i in range(sizes.shape[0] - 1):
        w, b, z = weights[i], biases[i], A[i]
        s = z.shape[1]
        for t in range(t0, t1):
            for j in range(s):
                z[t, j] = b[j]
            if i == 0:
                x = rows[t]
                if t + 1 < t1:
                    _prefetch_row(rows[t + 1], indptr, indices, values)
                nz, xv = indices[indptr[x]:indptr[x + 1]], values[indptr[x]:indptr[x + 1]]
                for p in range(nz.shape[0]):
                    k, xk = nz[p], xv[p]
                    for j in range(s):
                        z[t, j] += xk * w[k, j]
            else:
                inp = A[i - 1]
                for k in range(sizes[i]):
                    ak = inp[t, k]
                    for j in range(s):
                        z[t, j] += ak * w[k, j]
            for j in range(sizes[i + 1]):
                z[t, j] = _sigmoid(z[t, j])


@njit(cache=True, nogil=True)
def _backward(t0, t1, rows, labels, weights, sizes, A, D, costs):
    """Backpropagation of the errors into D[l][t] for the examples t0 <= t < t1,
    whose activations are in A and desired outputs the one-hot labels[rows[t]]:

    delta^L = (a^L - y) * sigma'(z^L) and
    delta^l = ((w^(l+1))^T delta^(l+1)) * sigma'(z^l), with sigma'(z) = a (1 - a).
    costs[t] = C_x = ||y - a^L||^2 / 2.  D's padding columns must be zero on
    entry; they are left so.
    """
    tiny = np.finfo(D[0].dtype).tiny / np.finfo(D[0].dtype).eps
    last = sizes.shape[0] - 2
    a, d = A[last], D[last]
    for t in range(t0, t1):
        label = labels[rows[t]]
        cost = 0.0
        for j in range(sizes[last + 1]):
            aj = a[t, j]
            diff = aj - 1.0 if j == label else aj
            cost += 0.5 * diff * diff
            dj = diff * aj * (1.0 - aj)
            d[t, j] = dj if abs(dj) >= tiny else 0.0
        costs[t] = cost
    for i in range(last, 0, -1):
        w, delta, a, d = weights[i], D[i], A[i - 1], D[i - 1]
        for t in range(t0, t1):
            for k in range(sizes[i]):
                # four partial sums (in the dtype) in a fixed order: not latency bound,
                # still exact to repeat
                s0 = w[k, 0] * delta[t, 0]
                s1 = w[k, 1] * delta[t, 1]
                s2 = w[k, 2] * delta[t, 2]
                s3 = w[k, 3] * delta[t, 3]
                for j in range(4, delta.shape[1], 4):
                    # unsigned indices: numba checks j + 1 < 0 otherwise
                    j0, j1, j2, j3 = np.uint64(j), np.uint64(j + 1), np.uint64(j + 2), np.uint64(j + 3)
                    s0 += w[k, j0] * delta[t, j0]
                    s1 += w[k, j1] * delta[t, j1]
                    s2 += w[k, j2] * delta[t, j2]
                    s3 += w[k, j3] * delta[t, j3]
                ak = a[t, k]
                dk = ((s0 + s1) + (s2 + s3)) * ak * (1.0 - ak)
                d[t, k] = dk if abs(dk) >= tiny else 0.0


def _train(indptr, indices, values, labels, idx, start, stop, mini_batch_size, eta, mean,
           params, nabla, sizes, stride, w_off, b_off, a_off, A, D, costs, n_blocks):
    """Gradient descent over the examples idx[start:stop], one mini-batch at a time.

    For each mini-batch X_1..X_m: w -> w - (eta/m) sum_j dC_Xj/dw (likewise b),
    or w -> w - eta sum_j dC_Xj/dw when mean is False.  The last, short
    mini-batch uses its own length m, as network.py does.

    A mini-batch of at most ``chunk = len(A) // a_off[-1]`` examples is
    backpropagated in one go and its update added straight to params.  A
    larger one is processed chunk by chunk, its gradient summed in nabla, and
    applied once at the end, so every example sees the same weights.  D's
    padding must be zero on entry.  Backpropagation is split into n_blocks
    blocks of examples and the update into n_blocks blocks of weight rows (1
    for the serial kernel); the result does not depend on n_blocks.

    Returns the sum of C_x over the examples, each evaluated with the weights
    in force when its mini-batch started (the running training cost).
    """
    n_params = params.shape[0]
    chunk = A.shape[0] // a_off[-1]
    weights, biases = _layers(params, sizes, stride, w_off, b_off)
    # nabla is empty when every mini-batch fits in one chunk
    nabla_w, nabla_b = (_layers(nabla, sizes, stride, w_off, b_off) if nabla.shape[0] == n_params
                        else (weights, biases))
    As, Ds = _scratch(A, stride, a_off, chunk), _scratch(D, stride, a_off, chunk)
    typed = np.ones(1, params.dtype)  # gives the coefficients params' dtype
    one = typed[0]
    total_cost = 0.0
    for mb_start in range(start, stop, mini_batch_size):
        mb = min(mini_batch_size, stop - mb_start)
        typed[0] = -eta / mb if mean else -eta
        step = typed[0]
        direct = mb <= chunk
        if direct:
            target_w, target_b, coef = weights, biases, step
        else:
            target_w, target_b, coef = nabla_w, nabla_b, one
            for p in prange(n_params):
                nabla[p] = 0
        for first in range(mb_start, mb_start + mb, chunk):
            count = min(chunk, mb_start + mb - first)
            rows = idx[first:first + count]
            # backpropagation, split by example: each writes its own rows of A and D
            for blk in prange(n_blocks):
                t0, t1 = blk * count // n_blocks, (blk + 1) * count // n_blocks
                _forward(t0, t1, rows, indptr, indices, values, weights, biases, sizes, As)
                _backward(t0, t1, rows, labels, weights, sizes, As, Ds, costs)
            for t in range(count):
                total_cost += costs[t]
            # target += coef * sum_t a_t delta_t, split by blocks of weight rows;
            # every weight adds its examples in the order t = 0, 1, ... whatever the split
            for blk in prange(n_blocks):
                _add_outer_products(blk, n_blocks, rows, indptr, indices, values, count,
                                    target_w, target_b, coef, sizes, As, Ds)
        if not direct:
            for p in prange(n_params):
                params[p] += step * nabla[p]
    return total_cost


@njit(cache=True, nogil=True)
def _add_outer_products(blk, n_blocks, rows, indptr, indices, values, count, target_w, target_b,
                        coef, sizes, A, D):
    """target_w[i][k, :] += coef * a_t[k] * delta_t for the rows k of block blk of
    each layer i, example by example; the last block also does
    target_b[i] += coef * delta_t."""
    for i in range(sizes.shape[0] - 1):
        n_in = sizes[i]
        k0, k1 = blk * n_in // n_blocks, (blk + 1) * n_in // n_blocks
        w, b, delta = target_w[i], target_b[i], D[i]
        s = delta.shape[1]
        for t in range(count):
            if i == 0:
                x = rows[t]
                nz, xv = indices[indptr[x]:indptr[x + 1]], values[indptr[x]:indptr[x + 1]]
                for p in range(nz.shape[0]):
                    k = nz[p]
                    if k >= k0 and k < k1:
                        c = coef * xv[p]
                        for j in range(s):
                            w[k, j] += c * delta[t, j]
            else:
                a = A[i - 1]
                for k in range(k0, k1):
                    c = coef * a[t, k]
                    for j in range(s):
                        w[k, j] += c * delta[t, j]
            if blk == n_blocks - 1:
                for j in range(s):
                    b[j] += coef * delta[t, j]


def _feedforward(X, params, sizes, stride, w_off, b_off, a_off, out, block):
    """out[x] = a^L(x) for every row x of X, in blocks of `block` examples."""
    n = X.shape[0]
    last = sizes.shape[0] - 2
    weights, biases = _layers(params, sizes, stride, w_off, b_off)
    n_blocks = (n + block - 1) // block
    for bi in prange(n_blocks):
        x0, x1 = bi * block, min(n, (bi + 1) * block)
        indptr, indices, values = nonzero_columns(X[x0:x1])
        As = _scratch(np.empty((x1 - x0) * a_off[-1], params.dtype), stride, a_off, x1 - x0)
        _forward(0, x1 - x0, np.arange(x1 - x0), indptr, indices, values, weights, biases,
                 sizes, As)
        for t in range(x1 - x0):
            for j in range(sizes[last + 1]):
                out[x0 + t, j] = As[last][t, j]


def _gradients(X, labels, params, sizes, stride, w_off, b_off, a_off, nabla):
    """nabla[x] = the gradient of C_x for each example x (row x of X), in params' layout.

    dC_x/db^l = delta^l and dC_x/dw^l_jk = a^(l-1)_k delta^l_j (backpropagation);
    padding entries are zero.
    """
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    weights, biases = _layers(params, sizes, stride, w_off, b_off)
    for x in prange(n):
        indptr, indices, values = nonzero_columns(X[x:x + 1])
        As = _scratch(np.empty(a_off[-1], params.dtype), stride, a_off, 1)
        Ds = _scratch(np.zeros(a_off[-1], params.dtype), stride, a_off, 1)
        cost = np.empty(1)
        first_row = np.zeros(1, np.int64)
        _forward(0, 1, first_row, indptr, indices, values, weights, biases, sizes, As)
        _backward(0, 1, first_row, labels[x:x + 1], weights, sizes, As, Ds, cost)
        g = nabla[x]
        g[:] = 0
        nabla_w, nabla_b = _layers(g, sizes, stride, w_off, b_off)
        for i in range(n_layers):
            for j in range(sizes[i + 1]):
                nabla_b[i][j] = Ds[i][0, j]
            for k in range(sizes[i]):
                ak = X[x, k] if i == 0 else As[i - 1][0, k]
                for j in range(sizes[i + 1]):
                    nabla_w[i][k, j] = ak * Ds[i][0, j]


train_serial, train_parallel = _compile_serial_and_parallel(_train)
feedforward_serial, feedforward_parallel = _compile_serial_and_parallel(_feedforward)
gradients_serial, gradients_parallel = _compile_serial_and_parallel(_gradients)
