"""The numba loops that do all of fastgd's arithmetic.

Plain functions over arrays: no validation and no Python objects here (the
callers in ``network.py`` and ``training.py`` check every input first).  Each
training kernel matches a function of ``tests/naive.py``: ``train`` is
``naive.train_epoch`` (``update_mini_batch`` per mini-batch), ``feedforward`` is
``naive.feedforward`` and ``gradients`` is ``naive.backprop`` per example
(``backprop`` too, on one example, in the book's shapes).

Parameter layout
----------------
All weights and biases live in one flat array ``params``.  Layer ``i`` (from
``sizes[i]`` neurons to ``sizes[i+1]`` neurons) keeps its weights transposed,
as an ``(n_in, stride)`` block at ``w_off[i]``, so that the weights leaving one
input neuron are contiguous: the forward pass adds ``a_k * w[k, :]`` for each
input ``a_k`` and the update adds ``a_k * delta`` to the same row.  Inputs that
are zero (most of MNIST's pixels) are skipped: each input row comes with the
list of its nonzero columns (``nonzero_columns``, a CSR index).  ``stride[i]``
is ``sizes[i+1]`` rounded up to a multiple of 8 (``PAD``): the padding weights
and biases are zero and stay zero (their errors delta are zero), and whole
vector registers fit each row.  The biases of layer ``i`` (``stride[i]`` of
them, padding included) follow at ``b_off[i]``.

Per-example scratch (activations ``A`` and errors ``D`` of the chunk of
examples being processed) is one flat buffer each, layer-major: layer ``i``
holds a ``(chunk, stride[i])`` block, so ``a_off[-1]`` is the length per
example.  Kernels take each layer's weights, biases and scratch as 2-D views
made once per call (``_layers``, ``_scratch``): a view costs a C call and a
reference count, too much to pay per example.

Code generated for the layer widths
-----------------------------------
The three inner operations of backpropagation, for a fixed network shape,
are written out by ``layer_code`` with the widths ``sizes[1:]`` as literal
numbers: ``forward_pass`` (z = w a + b, a = sigmoid(z)), ``backward_pass``
(delta^L, then delta^l = (w^(l+1))^T delta^(l+1) * sigma'(z^l)) and
``update_rows`` (w += coef * a delta^T, b += coef * delta).  Written out, a
layer's z_j are local variables: they stay in vector registers while the
inputs stream past, and numba's SLP vectoriser (``numba.config.SLP_VECTORIZE``,
off by default and switched on only while fastgd's kernels compile, see
``_slp_on``) packs them into vector instructions.  A loop over a runtime width
keeps z in memory instead, with a load and a store per input.  Layers wider
than the vector registers hold are done in panels (``panel_width``), so the
registers never run out; panels only group columns, so they change no result.

The generated source is written once to a file named after its hash (see
``_module_for``), so that numba can cache the compiled code on disk like any
other module; ``_train``, ``_feedforward``, ``_gradients`` and ``_backprop``
below are the drivers copied into that file beside the generated operations.

Other details that keep the loops fast (what each is worth is measured in
BENCHMARKS.md):

* inner loops index with unsigned or constant indices only: numba inserts a
  wrap-around check for any index it cannot prove non-negative, which stops
  vectorisation;
* the next examples' nonzero inputs are prefetched, in two steps: into L2
  well ahead, into L1 a few examples ahead (``_prefetch_row_outer``,
  ``_prefetch_row``): examples come shuffled, from anywhere in memory;
* errors delta smaller than tiny/eps of the dtype (1e-31 in float32, 2e-292
  in float64) are flushed to zero (``_flush``), so that neither they nor their
  products in the update are denormal numbers, ~100 times slower on x86.
  Their effect on the weights is below float rounding; NaN is kept.

Determinism
-----------
A mini-batch is processed in chunks of ``chunk`` examples whose forward and
backward passes all use the weights of the step's start.  Work is split across
threads only where no two threads write the same number: blocks of examples in
the forward/backward pass (each writes its own scratch rows) and blocks of
weight rows in the update (each row adds its examples in the order t = 0, 1,
...).  The split changes which thread computes a number, never how: results are
bit-identical for any thread count and for the serial variant (the same
function compiled without ``parallel``).

Threads
-------
A training kernel opens one parallel region per call (an epoch segment), not
one per stage of each mini-batch: every thread runs the same loop over the
stages, takes the pieces of each from a shared counter, and starts the next
stage once a second counter says every piece of this one is finished
(``_take``, ``_finish_and_take``, ``_wait_for``: atomic operations, much
cheaper than starting and joining a region).
"""

import functools
import glob
import importlib.util
import inspect
import os
import sys
import threading
import types
from collections import namedtuple
from contextlib import nullcontext

import numba
import numpy as np
from llvmlite import binding as ll
from llvmlite import ir
from numba import njit, prange
from numba import types as nbtypes
from numba.core import cgutils
from numba.extending import intrinsic

from . import kernel_cache
from .config import (CHAINS, DECAY_ROWS, DENSE_FROM, PANEL, PARAM_BLOCK, PREFETCH_AHEAD,
                     PREFETCH_OUTER, SPINS_BEFORE_YIELD, TRANSPOSE_FROM)
from .kernel_cache import cache_dir  # noqa: F401  (callers know it as _kernels.cache_dir)

# Rows are padded to a multiple of this many numbers: a vector register's width.
PAD = 8


# -- the kernel contract: what the Python side passes to the kernels --------------------

LayoutArrays = namedtuple("LayoutArrays", "sizes stride w_off b_off a_off")
LayoutArrays.__doc__ = """Where layer i lives, as int64 arrays: ``sizes`` (neurons per layer),
``stride`` (sizes[i+1] rounded up to PAD), ``w_off`` and ``b_off`` (offsets of its
weights and biases in params), ``a_off`` (offset of its per-example values in a
scratch row; a_off[-1] is a row's length)."""

Examples = namedtuple("Examples", "indptr indices values labels")
Examples.__doc__ = """The training examples: their nonzero inputs as a CSR index
(``nonzero_columns``) and their int64 labels."""

Scratch = namedtuple("Scratch", "nabla groups A D costs")
Scratch.__doc__ = """Buffers a training kernel writes: ``nabla`` (n_params, or empty when
every mini-batch is direct), ``groups`` (one zeroed row of at least n_params per group
of a large mini-batch's chunk; columns beyond n_params unused), ``A`` and ``D``
(activations and errors of the rows held, layer-major; D's padding zero), ``costs``
(C_x of each row held, float64).  Each should start on a cache line, and so
should each row of groups (``aligned_zeros``, ``aligned_rows``): the kernels give
the same results otherwise, more slowly (and threads writing neighbouring rows
would share a line)."""

Plan = namedtuple("Plan", "splits spans direct_max group chunk example_block n_workers")
Plan.__doc__ = """How a training kernel cuts its work (no effect on the result except
direct_max and group, which fix the order of the additions): ``splits`` and
``spans`` (row blocks of a direct update, ``row_splits``; empty for one block),
``direct_max``, ``group``, ``chunk``, ``example_block`` and ``n_workers``."""


def padded(width):
    """Row length in memory: width rounded up to a multiple of PAD (vector
    registers fit whole rows; the generated code also relies on it)."""
    return -(-width // PAD) * PAD


# Bytes in a cache line: where arrays the kernels read by rows must start.
CACHE_LINE = 64


def aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype) whose data start on a cache line (CACHE_LINE bytes).

    NumPy only promises 16 bytes, so the rows of params, of the scratch
    buffers and of the group sums would start wherever the allocator put the
    array: a row of 32 float32 (128 bytes, two cache lines) then spans three,
    and its vector loads and stores straddle two lines.  That costs a fifth
    of an epoch or more (BENCHMARKS.md), and it changed from one process to
    the next.  The result owns a slightly larger buffer (its ``base``)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    buffer = np.zeros(count * dtype.itemsize + CACHE_LINE, np.uint8)
    start = -buffer.ctypes.data % CACHE_LINE
    return buffer[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def aligned_copy(array):
    """A copy of array that starts on a cache line (``aligned_zeros``)."""
    out = aligned_zeros(array.shape, array.dtype)
    out[...] = array
    return out


def aligned_rows(n_rows, row_length, dtype):
    """aligned_zeros((n_rows, length)) with length >= row_length chosen so that
    every row starts on a cache line; the extra columns are never used."""
    itemsize = np.dtype(dtype).itemsize
    per_line = max(1, CACHE_LINE // itemsize)
    length = -(-row_length // per_line) * per_line
    return aligned_zeros((n_rows, length), dtype)
# Every generated kernel's numba options.  error_model="numpy": a float division
# by zero gives inf or NaN instead of raising, so that numba inserts no check
# (which would stop the sigmoid loop from vectorising).
_OPTIONS = 'cache=True, nogil=True, error_model="numpy"'


# ------------------------------------------------------------ hand-written helpers

@intrinsic
def _bits(typingctx, x):
    """The 64 bits of a float64 as an int64 (a reinterpretation, not a conversion)."""
    if x != nbtypes.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return nbtypes.int64(x), codegen


@intrinsic
def _from_bits(typingctx, i):
    """The float64 whose 64 bits are the int64 i (the inverse of _bits)."""
    if i != nbtypes.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return nbtypes.float64(i), codegen


_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its low 21 bits zero: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_ROUND = 6755399441055744.0           # 1.5 * 2**52: x + _ROUND rounds x to an integer
_EXP_TAYLOR = tuple(1.0 / np.prod(np.arange(1.0, k + 1)) for k in range(14))  # 1/k!


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _exp(x):
    """e^x in float64, within about an ulp of np.exp, in code that vectorises.

    np.exp is a call into the C library per number, which SLP cannot pack, and
    the forward pass takes one per neuron and example.  Here: x = n ln 2 + r
    with |r| <= ln(2) / 2 (n rounded with the 1.5 * 2^52 trick, ln 2 in two
    parts), e^r from its Taylor series to r^13 (the rest is below 1e-17), and
    2^n built from its bits in two halves, so that n from -1076 to 1025 is
    exact, gradual underflow included, and larger n overflows to inf.
    """
    xc = min(max(x, -746.0), 710.0)
    t = xc * 1.4426950408889634 + _ROUND
    n = t - _ROUND
    ni = _bits(t) - _bits(_ROUND)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = _EXP_TAYLOR[13]
    for k in range(12, -1, -1):  # Horner's rule; a constant count, so it unrolls
        p = p * r + _EXP_TAYLOR[k]
    n1 = ni >> 1
    e = p * _from_bits((n1 + 1023) << 52) * _from_bits((ni - n1 + 1023) << 52)
    return e if x == x else x


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _sigmoid(z):
    """1 / (1 + e^-z), in float64 whatever z's dtype (rounded where it is stored)."""
    return 1.0 / (1.0 + _exp(-np.float64(z)))


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _flush(d, tiny):
    """d, or 0 where |d| < tiny (a denormal-to-be); NaN stays NaN."""
    return 0.0 if abs(d) < tiny else d


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _quadratic_output_error(a, y):
    """delta^L_j for the quadratic cost: (a - y) * sigma'(z), sigma'(z) = a (1 - a)."""
    return (a - y) * a * (1.0 - a)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _cross_entropy_output_error(a, y):
    """delta^L_j for the cross-entropy cost: a - y (the sigma'(z) of dC/da cancels)."""
    return a - y


# The cross-entropy cost of an example is -ln of a product of the outputs'
# probabilities (one logarithm per example instead of one per output).  A
# product of 0, from an output rounded to exactly 0 or 1, counts as this one:
# C_x = 708 instead of infinity, which would read as divergence.
_CE_SMALLEST = float(np.finfo(np.float64).tiny)


@njit(cache=True, nogil=True, error_model="numpy")
def _decay_rows(weights, sizes, r0, r1, scale, shrink):
    """w -> scale * w when shrink is 0 (L2: scale = 1 - eta lmbda / n), else
    w -> w - shrink * sgn(w) (L1: shrink = eta lmbda / n), for the weights
    leaving the input neurons r0..r1-1, counted across layers (layer 0's inputs
    first); not the biases.  scale and shrink are in the weights' dtype.

    Whole rows are done, padding included, as one contiguous run of numbers:
    a row of 30 weights is too short for the vectoriser.  The padding stays
    exactly zero (0 * scale = 0, sgn(0) = 0).  Each rule is its own loop on
    unsigned indices, and shrink * sgn(w) is written as copysign(shrink, w)
    with w = 0 kept (the same bits as with np.sign, NaN kept), so that both
    vectorise."""
    base = 0
    for i in range(len(weights)):
        n_in = sizes[i]
        lo = min(max(r0 - base, 0), n_in)
        hi = max(min(r1 - base, n_in), lo)
        base += n_in
        w = weights[i]
        stride = w.shape[1]
        run = w.reshape(n_in * stride)[lo * stride:hi * stride]
        if shrink == 0:
            for p in range(np.uint64(run.shape[0])):
                run[p] *= scale
        else:
            for p in range(np.uint64(run.shape[0])):
                v = run[p]
                r = v - np.copysign(shrink, v)
                run[p] = r if v != 0 else v


@njit(cache=True, nogil=True, error_model="numpy")
def _add_groups(nabla, groups, n_groups, p0, p1):
    """nabla[p0:p1] += groups[g, p0:p1] for g = 0, 1, ..., n_groups - 1 in turn, and
    each of those buffers zeroed for its next use.  Each addition and each zeroing
    is its own loop on unsigned indices, so that both vectorise (one loop over two
    arrays that may overlap would not)."""
    n = np.uint64(p1 - p0)
    total = nabla[p0:p1]
    for g in range(n_groups):
        part = groups[g, p0:p1]
        for p in range(n):
            total[p] += part[p]
        for p in range(n):
            part[p] = 0


@njit(cache=True, nogil=True, error_model="numpy")
def _apply(params, nabla, step, p0, p1):
    """params[p0:p1] += step * nabla[p0:p1], and nabla[p0:p1] zeroed for the
    next mini-batch (loops on unsigned indices, so that both vectorise)."""
    n = np.uint64(p1 - p0)
    w = params[p0:p1]
    g = nabla[p0:p1]
    for p in range(n):
        w[p] += step * g[p]
    for p in range(n):
        g[p] = 0


def _element_pointer(context, builder, signature, args):
    """LLVM pointer to array[i] for an intrinsic called as f(array, i, ...)."""
    arrayty = signature.args[0]
    ary = context.make_array(arrayty)(context, builder, args[0])
    return cgutils.get_item_pointer2(context, builder, ary.data,
                                     cgutils.unpack_tuple(builder, ary.shape),
                                     cgutils.unpack_tuple(builder, ary.strides),
                                     arrayty.layout, [args[1]])


def _prefetch_intrinsic(name, locality, doc):
    """An intrinsic name(array, i) that asks the CPU to start loading the cache
    line of array[i] (LLVM's prefetch hint, for reading data) into the cache
    levels that `locality` names: 3 all of them, down to L1; 1 the outer ones
    (L2 on x86).  A hint changes no result, only when the data arrive."""
    def prefetch(typingctx, array, i):
        if not isinstance(array, nbtypes.Array) or not isinstance(i, nbtypes.Integer):
            return None

        def codegen(context, builder, signature, args):
            ptr = _element_pointer(context, builder, signature, args)
            byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
                "llvm.prefetch.p0")
            # read, locality, data
            builder.call(fn, [builder.bitcast(ptr, byte_ptr), i32(0), i32(locality), i32(1)])
            return context.get_dummy_value()

        return nbtypes.void(array, i), codegen

    prefetch.__name__ = prefetch.__qualname__ = name
    prefetch.__doc__ = doc
    return intrinsic(prefetch)


_prefetch = _prefetch_intrinsic("_prefetch", 3, "Start loading array[i] into every cache level.")
_prefetch_outer = _prefetch_intrinsic(
    "_prefetch_outer", 1,
    "Start loading array[i] into the outer cache levels (L2), not L1: for data "
    "needed later, which would only push out of L1 what is needed now.")


@njit(cache=True, nogil=True, inline="always")
def _prefetch_row(x, indptr, indices, values, splits):
    """Start loading row x of the CSR arrays (and of splits) into cache: examples
    come in shuffled order, so each one's nonzero inputs lie somewhere new in
    memory.  Dense rows (``dense_columns``) have no indices."""
    if indices.shape[0] > 0:
        for p in range(indptr[x], indptr[x + 1], np.uint64(64 // indices.itemsize)):
            _prefetch(indices, p)
    for p in range(indptr[x], indptr[x + 1], np.uint64(64 // values.itemsize)):
        _prefetch(values, p)
    if splits.shape[0] > 0:
        _prefetch(splits[x], 0)
        _prefetch(splits[x], splits.shape[1] - 1)


@njit(cache=True, nogil=True, inline="always")
def _prefetch_row_outer(x, indptr, indices, values):
    """Start loading row x of the CSR arrays into L2 only: the first of two
    steps, many examples ahead (``_prefetch_row``, into L1, is the second,
    nearer the row's use), so that the wait for memory overlaps more examples'
    work without filling L1."""
    if indices.shape[0] > 0:
        for p in range(indptr[x], indptr[x + 1], np.uint64(64 // indices.itemsize)):
            _prefetch_outer(indices, p)
    for p in range(indptr[x], indptr[x + 1], np.uint64(64 // values.itemsize)):
        _prefetch_outer(values, p)


@intrinsic
def _fetch_add(typingctx, array, i, value):
    """old = array[i]; array[i] += value, atomically; returns old.  Acquire-release
    ordering: what a thread wrote before its addition is seen by a thread that
    reads the sum after it (``_wait_for``)."""
    if not (isinstance(array, nbtypes.Array) and array.dtype == nbtypes.int64
            and isinstance(i, nbtypes.Integer) and value == nbtypes.int64):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        return builder.atomic_rmw("add", ptr, args[2], "acq_rel")

    return nbtypes.int64(array, i, value), codegen


@intrinsic
def _load_acquire(typingctx, array, i):
    """array[i], read atomically with acquire ordering (the compiler can neither
    keep it in a register across a loop nor move later reads before it)."""
    if not (isinstance(array, nbtypes.Array) and array.dtype == nbtypes.int64
            and isinstance(i, nbtypes.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        return builder.load_atomic(ptr, "acquire", 8)

    return nbtypes.int64(array, i), codegen


# The work queue of a training kernel: counter[0] counts the pieces handed out,
# counter[1] the pieces finished.  Pieces are numbered across the stages of the
# whole run (a stage: the forward and backward passes of a mini-batch, its
# update, ...), in the order the stages must happen.


@njit(cache=True, nogil=True)
def _work_queue():
    """(counter, total): a new work queue's counter, [0, 0], and a zero running
    total of the cost.  Allocated here, out of sight of the parallel kernels:
    numba's parallel pass reads an element of a np.zeros array made in the
    kernel as 0 after a prange loop whose called functions wrote to it."""
    return np.zeros(2, np.int64), np.zeros(1)


if sys.platform == "win32":
    @njit(cache=True, nogil=True)
    def _yield_cpu():
        """Nothing (Windows has no sched_yield): the wait spins."""
        return 0
else:
    # POSIX sched_yield, called by its name: numba links it from the C library the
    # process has loaded (no address in the compiled code, so it caches)
    _yield_cpu = nbtypes.ExternalFunction("sched_yield", nbtypes.int32())


@njit(cache=True, nogil=True, inline="always")
def _take(counter):
    """The next piece nobody has taken: threads take pieces as they become free,
    so a thread the OS preempts delays only the piece it holds, and no thread
    needs to know how many others there are."""
    return _fetch_add(counter, 0, np.int64(1))


@njit(cache=True, nogil=True, inline="always")
def _finish_and_take(counter):
    """Count the piece held as finished, and take the next one."""
    _fetch_add(counter, 1, np.int64(1))
    return _fetch_add(counter, 0, np.int64(1))


@njit(cache=True, nogil=True, inline="always")
def _wait_for(counter, end, patience):
    """Wait until every piece before `end` is finished (the end of a stage, whose
    results the next stage reads); returns end, the next stage's first piece.

    A thread waits here holding no piece of the stages it waits for (only,
    perhaps, one of a later stage), so each of those pieces is held by a thread
    that is running it: no deadlock, even when the workers run one after
    another on one thread.

    After `patience` turns of the loop the thread gives its CPU away at every
    turn (``_yield_cpu``): with more threads than CPUs, the thread it waits
    for may be waiting for a CPU, and a spinning thread would hold one for
    its whole time slice.  On an idle machine a stage's end comes sooner."""
    spins = 0
    while _load_acquire(counter, 1) < end:
        spins += 1
        if spins > patience:
            _yield_cpu()
    return end


@njit(cache=True, nogil=True, inline="always")
def _decay_stage(counter, piece, base, n_pieces, rows_per_piece, weights, sizes, scale,
                 shrink, patience):
    """The weight decay of one step as a stage of a training kernel's work queue
    (``_descend``): n_pieces pieces of rows_per_piece weight rows (``_decay_rows``).
    Takes the piece the worker holds and the stage's first piece; returns the
    piece it holds after the stage and the next stage's first piece."""
    while piece < base + n_pieces:
        first = (piece - base) * rows_per_piece
        _decay_rows(weights, sizes, first, first + rows_per_piece, scale, shrink)
        piece = _finish_and_take(counter)
    return piece, _wait_for(counter, base + n_pieces, patience)


@njit(cache=True, nogil=True)
def nonzero_columns(X):
    """(indptr, indices, values): row x of X is nonzero exactly in the columns
    indices[indptr[x]:indptr[x + 1]], in increasing order, where it holds values[...]
    (CSR; the values are copied so that training reads them contiguously).
    indptr is unsigned so that loops over it need no sign checks."""
    n, n_in = X.shape
    counts = np.zeros(n + 1, np.int64)
    for x in range(n):
        count = 0
        for k in range(n_in):
            if X[x, k] != 0:
                count += 1
        counts[x + 1] = counts[x] + count
    indices = np.empty(counts[n], np.uint32)
    values = np.empty(counts[n], X.dtype)
    for x in range(n):
        p = counts[x]
        for k in range(n_in):
            if X[x, k] != 0:
                indices[p] = k
                values[p] = X[x, k]
                p += 1
    return counts.astype(np.uint64), indices, values


def dense_columns(X):
    """(indptr, indices, values) of the dense input path: row x of X is
    values[indptr[x]:indptr[x + 1]], all of its columns in order, so that a
    column is its position in the row and indices is empty (nothing to read).
    values is X itself, flattened (a copy only if X is not C-contiguous)."""
    n, n_in = X.shape
    indptr = np.arange(n + 1, dtype=np.uint64) * np.uint64(n_in)
    return indptr, np.empty(0, np.uint32), np.ascontiguousarray(X).reshape(-1)


def uses_dense_path(X):
    """(dense, nonzero fraction): whether training on the rows of X takes the
    dense input path, from the fraction of X's entries that are not zero: at
    DENSE_FROM or more, skipping the zeros saves less than reading each
    nonzero input's column costs (BENCHMARKS.md)."""
    fraction = np.count_nonzero(X) / X.size if X.size else 0.0
    return bool(fraction >= DENSE_FROM), float(fraction)


def input_columns(X, dense):
    """The rows of X as the training kernels read them: ``dense_columns`` for a
    module generated with dense=True, else ``nonzero_columns`` (the zeros skipped)."""
    return dense_columns(X) if dense else nonzero_columns(X)


@njit(cache=True, nogil=True)
def row_splits(indptr, indices, bounds):
    """splits[x, r] = the first position p of row x with indices[p] >= bounds[r]
    (bounds ascending, bounds[0] = 0, bounds[-1] = n_in): the nonzero inputs
    of row x in the r-th block of weight rows are splits[x, r]:splits[x, r + 1]."""
    n = indptr.shape[0] - 1
    n_blocks = bounds.shape[0] - 1
    splits = np.empty((n, n_blocks + 1), np.uint64)
    for x in range(n):
        p = indptr[x]
        for r in range(n_blocks):
            while p < indptr[x + 1] and indices[p] < bounds[r]:
                p += np.uint64(1)
            splits[x, r] = p
        splits[x, n_blocks] = indptr[x + 1]
    return splits


def balanced_bounds(indices, n_in, n_blocks):
    """Row boundaries 0 = b_0 < ... <= b_n_blocks = n_in that give each block of
    weight rows about the same number of nonzero inputs (the update's work)."""
    counts = np.bincount(indices, minlength=n_in).astype(np.float64) + 1.0
    cumulative = np.cumsum(counts)
    targets = cumulative[-1] * np.arange(1, n_blocks) / n_blocks
    inner = np.searchsorted(cumulative, targets) + 1
    return np.concatenate([[0], np.minimum(inner, n_in), [n_in]]).astype(np.int64)


@njit(cache=True, nogil=True)
def _layers(params, layout):
    """(weights, biases): each layer's weights as a (sizes[i], stride[i]) view of
    params (row k holds w_jk for all j) and its biases as a (stride[i],) view."""
    sizes, stride, w_off, b_off = layout.sizes, layout.stride, layout.w_off, layout.b_off
    n_layers = sizes.shape[0] - 1
    weights = [params[w_off[i]:w_off[i] + sizes[i] * stride[i]].reshape((sizes[i], stride[i]))
               for i in range(n_layers)]
    biases = [params[b_off[i]:b_off[i] + stride[i]] for i in range(n_layers)]
    return weights, biases


@njit(cache=True, nogil=True)
def _scratch(buffer, layout, rows):
    """Layer i's per-example values (activations or errors) as a (rows, stride[i])
    view of buffer: layer-major, so that a layer's rows are contiguous."""
    stride, a_off = layout.stride, layout.a_off
    return [buffer[rows * a_off[i]:rows * a_off[i + 1]].reshape((rows, stride[i]))
            for i in range(stride.shape[0])]


# ------------------------------------------------------------ drivers
# Plain functions: their source is copied into each generated module, where
# forward_pass, backward_pass and update_rows are the generated operations.

def _train(examples, idx, start, stop, mini_batch_size, eta, mean, params, layout, scratch,
           plan, decay=1.0, shrink=0.0):
    """Gradient descent over the examples idx[start:stop], one mini-batch at a time
    (naive.train_epoch).

    examples, layout, scratch and plan are the namedtuples ``Examples``,
    ``LayoutArrays``, ``Scratch`` and ``Plan`` (see their fields there).

    For each mini-batch X_1..X_m: w -> w - (eta/m) sum_j dC_Xj/dw (likewise b),
    or w -> w - eta sum_j dC_Xj/dw when mean is False.  The last, short
    mini-batch uses its own length m, as network.py does.  Regularisation is
    one factor or one sign term per step: each mini-batch's weights (not
    biases) become decay * w (L2, decay = 1 - eta lmbda / n) or
    w - shrink * sgn(w) (L1, shrink = eta lmbda / n) after its gradient is
    computed and before it is applied; decay 1.0 and shrink 0.0 skip it.

    n_workers loops (one per thread) share the work in one parallel region
    (``_descend``); returns the sum of C_x over the examples, each evaluated
    with the weights in force when its mini-batch started (the running
    training cost).
    """
    counter, total = _work_queue()
    for p in range(scratch.nabla.shape[0]):
        scratch.nabla[p] = 0
    for _worker in prange(plan.n_workers):
        _descend(examples, idx, start, stop, mini_batch_size, eta, mean, True, params, layout,
                 scratch, plan, plan.direct_max, decay, shrink, counter, total)
    return total[0]


def _gradient_sum(examples, idx, start, stop, params, layout, scratch, plan):
    """nabla = sum_x dC_x/dw (likewise b) over the examples idx[start:stop], in
    params' layout; returns the sum of their C_x.  Nothing else is changed.

    The summing half of ``_train``'s step for a large mini-batch, for a
    mini-batch shared between processes (``fastgd.distributed``): groups are
    counted from ``start``, so that called on a whole mini-batch it gives the
    bits of the nabla that ``_train`` applies, whatever the chunk, the thread
    count or the variant.  Only nabla, groups, A, D and costs of the scratch,
    and group, chunk and n_workers of the plan, are used.
    """
    counter, total = _work_queue()
    for p in range(scratch.nabla.shape[0]):
        scratch.nabla[p] = 0
    for _worker in prange(plan.n_workers):
        _descend(examples, idx, start, stop, max(1, stop - start), 0.0, False, False, params,
                 layout, scratch, plan, 0, 1.0, 0.0, counter, total)
    return total[0]


def _descend(examples, idx, start, stop, mini_batch_size, eta, mean, apply, params, layout,
             scratch, plan, direct_max, decay, shrink, counter, total):
    """One worker's share of ``_train`` (or, with apply False, of
    ``_gradient_sum``): every worker runs this same sequence of stages, and
    takes the pieces of each stage from the shared ``counter`` (``_take``)
    until they are all taken; a stage starts once the previous one is
    finished (``_wait_for``).  So a call is one parallel region, and the end
    of a stage costs a wait on a counter instead of a join and a new fork.

    A mini-batch of at most direct_max examples is backpropagated in one go
    (all its examples see the same weights) and its update added straight to
    params, example by example; stages: forward and backward passes in blocks
    of example_block examples, the decay in blocks of DECAY_ROWS weight rows
    (``_decay_stage``), the update in the blocks of weight rows that splits
    describes (``row_splits``; spans holds their bounds for the chunk's
    examples; neither has columns for a single block), each weight adding its
    examples' terms in the order t = 0, 1, ...

    A larger one is processed ``chunk`` examples at a time in groups of
    ``group`` examples, counted from the mini-batch's start; stages per chunk:
    each group's gradient summed in a buffer of its own (a row of ``groups``,
    zero on entry and left zero), so that each thread adds up the examples
    whose inputs it has just read; then the buffers added to nabla in group
    order, in blocks of PARAM_BLOCK parameters (``_add_groups``).  Then the
    decay, and nabla applied (``_apply``, which leaves it zero again).  With
    apply False, nabla (zero on entry) keeps the sum instead.  A and D hold
    the activations and errors of max(chunk, direct_max) examples (fewer if
    the mini-batches are smaller); D's padding must be zero on entry.

    What decides the order of the additions, and so the bits, depends only on
    the network: direct_max and group.  Nothing else does: not chunk (a
    multiple of group), nor the pieces the work is cut into, nor which worker
    takes which.  The first piece of the stage after a chunk's backward pass
    adds its costs C_x to total[0], in order.
    """
    indptr, indices, values, labels = examples
    nabla, groups, A, D, costs = scratch
    splits, spans, group, chunk, example_block = (plan.splits, plan.spans, plan.group,
                                                  plan.chunk, plan.example_block)
    sizes = layout.sizes
    n_out = sizes[sizes.shape[0] - 1]
    n_params = params.shape[0]
    rows_held = A.shape[0] // layout.a_off[-1]
    n_row_blocks = max(1, splits.shape[1] - 1)
    n_pieces = n_row_blocks + sizes.shape[0] - 2
    n_layer_pieces = sizes.shape[0] - 1  # one block of rows for layer 0, then the others
    n_param_blocks = (n_params + PARAM_BLOCK - 1) // PARAM_BLOCK
    no_splits = np.empty((0, 0), np.uint64)  # groups update whole rows: no spans to copy
    weights, biases = _layers(params, layout)
    As, Ds = _scratch(A, layout, rows_held), _scratch(D, layout, rows_held)
    typed = np.ones(1, params.dtype)  # gives the coefficients params' dtype
    one = typed[0]
    zero = one - one
    decaying = apply and (decay != 1.0 or shrink != 0.0)
    typed[0] = decay
    scale = typed[0]
    typed[0] = shrink
    sign_term = typed[0]
    n_rows = 0  # weight rows, all layers: the decay's pieces are blocks of them
    for i in range(sizes.shape[0] - 1):
        n_rows += sizes[i]
    n_decay_pieces = (n_rows + DECAY_ROWS - 1) // DECAY_ROWS if decaying else 0
    patience = SPINS_BEFORE_YIELD  # turns of a wait before it yields the CPU
    # Integer arguments as int64 values, not constants: numba compiles a callee
    # anew for each constant argument (a Literal type), and the drivers below
    # call the passes with these where others pass variables.
    no_offset, one_block = np.int64(0), np.int64(1)
    piece = _take(counter)  # the piece this worker holds
    base = 0  # the current stage's first piece
    for mb_start in range(start, stop, mini_batch_size):
        mb = min(mini_batch_size, stop - mb_start)
        typed[0] = -eta / mb if mean else -eta
        step = typed[0]
        if mb <= direct_max:
            rows = idx[mb_start:stop]  # beyond mb: prefetched only
            n_blocks = (mb + example_block - 1) // example_block
            while piece < base + n_blocks:
                t0 = (piece - base) * example_block
                t1 = min(mb, t0 + example_block)
                forward_pass(t0, t1, rows, indptr, indices, values, splits, spans, weights,
                             biases, As, zero)
                backward_pass(t0, t1, rows, labels, weights, As, Ds, costs, n_out)
                piece = _finish_and_take(counter)
            base = _wait_for(counter, base + n_blocks, patience)
            piece, base = _decay_stage(counter, piece, base, n_decay_pieces, DECAY_ROWS, weights,
                                       sizes, scale, sign_term, patience)
            while piece < base + n_pieces:
                if piece == base:
                    for t in range(mb):
                        total[0] += costs[t]
                update_rows(piece - base, n_row_blocks, no_offset, mb, rows, indptr, indices,
                            values, spans, step, weights, biases, As, Ds)
                piece = _finish_and_take(counter)
            base = _wait_for(counter, base + n_pieces, patience)
            continue
        for first in range(mb_start, mb_start + mb, chunk):
            count = min(chunk, mb_start + mb - first)
            rows = idx[first:stop]
            n_groups = (count + group - 1) // group
            while piece < base + n_groups:
                g = piece - base
                t0 = g * group
                t1 = min(count, t0 + group)
                forward_pass(t0, t1, rows, indptr, indices, values, no_splits, no_splits,
                             weights, biases, As, zero)
                backward_pass(t0, t1, rows, labels, weights, As, Ds, costs, n_out)
                group_w, group_b = _layers(groups[g], layout)
                for layer_piece in range(n_layer_pieces):
                    update_rows(layer_piece, one_block, t0, t1, rows, indptr, indices, values,
                                no_splits, one, group_w, group_b, As, Ds)
                piece = _finish_and_take(counter)
            base = _wait_for(counter, base + n_groups, patience)
            while piece < base + n_param_blocks:
                blk = piece - base
                if blk == 0:
                    for t in range(count):
                        total[0] += costs[t]
                _add_groups(nabla, groups, n_groups, blk * PARAM_BLOCK,
                            min(n_params, (blk + 1) * PARAM_BLOCK))
                piece = _finish_and_take(counter)
            base = _wait_for(counter, base + n_param_blocks, patience)
        if not apply:
            continue
        piece, base = _decay_stage(counter, piece, base, n_decay_pieces, DECAY_ROWS, weights,
                                   sizes, scale, sign_term, patience)
        while piece < base + n_param_blocks:
            blk = piece - base
            _apply(params, nabla, step, blk * PARAM_BLOCK, min(n_params, (blk + 1) * PARAM_BLOCK))
            piece = _finish_and_take(counter)
        base = _wait_for(counter, base + n_param_blocks, patience)


def _feedforward(X, params, layout, out, block):
    """out[x] = a^L(x) for every row x of X, in blocks of `block` examples
    (naive.feedforward).  (The passes' integer arguments are int64 values, not
    constants, so that they reuse the training kernels' compiled passes.)"""
    n = X.shape[0]
    sizes, a_off = layout.sizes, layout.a_off
    last = sizes.shape[0] - 2
    weights, biases = _layers(params, layout)
    n_blocks = (n + block - 1) // block
    for bi in prange(n_blocks):
        x0, x1 = bi * block, min(n, (bi + 1) * block)
        indptr, indices, values = nonzero_columns(X[x0:x1])
        As = _scratch(np.zeros((x1 - x0) * a_off[-1], params.dtype), layout, x1 - x0)
        no_splits = np.empty((0, 0), np.uint64)
        forward_pass(np.int64(0), x1 - x0, np.arange(x1 - x0), indptr, indices, values,
                     no_splits, no_splits, weights, biases, As, np.zeros(1, params.dtype)[0])
        for t in range(x1 - x0):
            for j in range(sizes[last + 1]):
                out[x0 + t, j] = As[last][t, j]


def _gradients(X, labels, params, layout, nabla):
    """nabla[x] = the gradient of C_x for each example x (row x of X), in params'
    layout (naive.backprop): dC_x/db^l = delta^l and dC_x/dw^l_jk = a^(l-1)_k
    delta^l_j; padding entries are zero."""
    n = X.shape[0]
    sizes, a_off = layout.sizes, layout.a_off
    n_layers = sizes.shape[0] - 1
    weights, biases = _layers(params, layout)
    for x in prange(n):
        indptr, indices, values = nonzero_columns(X[x:x + 1])
        As = _scratch(np.zeros(a_off[-1], params.dtype), layout, 1)
        Ds = _scratch(np.zeros(a_off[-1], params.dtype), layout, 1)
        cost = np.empty(1)
        first_row = np.zeros(1, np.int64)
        no_splits = np.empty((0, 0), np.uint64)
        forward_pass(np.int64(0), np.int64(1), first_row, indptr, indices, values, no_splits,
                     no_splits, weights, biases, As, np.zeros(1, params.dtype)[0])
        backward_pass(np.int64(0), np.int64(1), first_row, labels[x:x + 1], weights, As, Ds,
                      cost, sizes[n_layers])
        g = nabla[x]
        g[:] = 0
        nabla_w, nabla_b = _layers(g, layout)
        for i in range(n_layers):
            # each layer's arrays taken from the lists once, and the inner loop on
            # an unsigned bound: indexing the lists inside it kept it from
            # vectorising, five times slower on one MNIST example
            delta, nb, nw = Ds[i][0], nabla_b[i], nabla_w[i]
            n_out = np.uint64(sizes[i + 1])
            for j in range(n_out):
                nb[j] = delta[j]
            for k in range(sizes[i]):
                ak = X[x, k] if i == 0 else As[i - 1][0, k]
                row = nw[k]
                for j in range(n_out):
                    row[j] = ak * delta[j]


def _backprop(X, labels, params, layout, nabla_b, nabla_w):
    """The gradient of C_x for the one example x = X[0] with label labels[0],
    shaped as the book's (naive.backprop): nabla_b holds dC_x/db^l = delta^l for
    each layer after the input in turn, nabla_w the matrices dC_x/dw^l_jk =
    a^(l-1)_k delta^l_j, (sizes[l], sizes[l-1]) each, row-major, one after the other.

    ``_gradients`` on one row, storing the same products in the book's
    orientation: its rows are params' transposed blocks, which backprop would
    otherwise copy transposed (half of its time on the book's network)."""
    sizes, a_off = layout.sizes, layout.a_off
    weights, biases = _layers(params, layout)
    indptr, indices, values = nonzero_columns(X[0:1])
    As = _scratch(np.zeros(a_off[-1], params.dtype), layout, 1)
    Ds = _scratch(np.zeros(a_off[-1], params.dtype), layout, 1)
    cost = np.empty(1)
    first_row = np.zeros(1, np.int64)
    no_splits = np.empty((0, 0), np.uint64)
    forward_pass(np.int64(0), np.int64(1), first_row, indptr, indices, values, no_splits,
                 no_splits, weights, biases, As, np.zeros(1, params.dtype)[0])
    backward_pass(np.int64(0), np.int64(1), first_row, labels[0:1], weights, As, Ds, cost,
                  sizes[sizes.shape[0] - 1])
    b0 = 0
    w0 = 0
    for i in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[i], sizes[i + 1]
        delta = Ds[i][0]
        for j in range(n_out):
            nabla_b[b0 + j] = delta[j]
        # The loops and products of _gradients, only stored elsewhere: of two NaNs
        # multiplied, which one the product is depends on how the loop compiles (a
        # loop over k for each delta_j, faster, gave the other one), and a network
        # whose weights diverged must get the same NaNs from either.
        block = nabla_w[w0:w0 + n_out * n_in].reshape((n_out, n_in))
        for k in range(n_in):
            ak = X[0, k] if i == 0 else As[i - 1][0, k]
            for j in range(np.uint64(n_out)):
                block[j, k] = ak * delta[j]
        b0 += n_out
        w0 += n_in * n_out


# ------------------------------------------------------------ code generation

def _panels(width, panel):
    """(first, last) output columns of each panel of at most `panel` columns."""
    return [(j0, min(width, j0 + panel)) for j0 in range(0, width, panel)]


@functools.cache
def _host_cpu_features():
    """This CPU's features as LLVM names them ("+avx2,+fma,..."), asked once per
    process: llvmlite takes about 0.2 ms to ask, which a call of the network on one
    example would otherwise pay every time, and the answer cannot change."""
    return ll.get_host_cpu_features().flatten()


def panel_width(itemsize):
    """Outputs per panel for numbers of `itemsize` bytes on this machine: the
    forward pass's two chains of accumulators fill half its vector registers
    (32 of 64 bytes with AVX-512, 16 of 32 bytes with AVX2, else 16 of 16
    bytes).  Panels group columns only: they do not change any result.

    PANEL and numba's CPU_FEATURES are read at every call, so that a change
    to either takes effect; the rest is worked out once per answer."""
    if PANEL is not None:
        return PANEL
    return _register_panel(numba.config.CPU_FEATURES or _host_cpu_features(), itemsize)


@functools.cache
def _register_panel(features, itemsize):
    """panel_width on a CPU with these features (searching the long list of
    features takes a microsecond: too long to repeat on every call)."""
    if "+avx512f" in features:
        register_bytes = 32 * 64
    elif "+avx" in features:
        register_bytes = 16 * 32
    else:
        register_bytes = 16 * 16
    return max(PAD, register_bytes // 4 // itemsize // PAD * PAD)


def _example_loop_head():
    """The head of forward_pass's loop over the examples t0 <= t < t1, the same in
    both builds: each example's nonzero inputs p0..p1-1 (``pairs`` pairs of
    them), its row splits copied to spans, and later examples' inputs
    prefetched (see _forward_code)."""
    return [f"    for t in range(t0, min(t1, t0 + {PREFETCH_AHEAD})):  # the first ones now",
            "        _prefetch_row(rows[t], indptr, indices, values, splits)",
            "    for t in range(t0, t1):",
            "        x = rows[t]",
            f"        if t + {PREFETCH_AHEAD} < rows.shape[0]:",
            f"            _prefetch_row(rows[t + {PREFETCH_AHEAD}], indptr, indices, values, "
            "splits)",
            f"        if t + {PREFETCH_OUTER} < rows.shape[0]:",
            f"            _prefetch_row_outer(rows[t + {PREFETCH_OUTER}], indptr, indices, "
            "values)",
            "        for r in range(spans.shape[1]):",
            "            spans[t, r] = splits[x, r]",
            "        p0, p1 = indptr[x], indptr[x + 1]",
            "        pairs = (p1 - p0) >> one"]


def _forward_code(widths, panel, dense=False):
    """forward_pass: a^l = sigmoid(w^l a^(l-1) + b^l) for the examples t0 <= t < t1,
    layer by layer, into A[l][t]; example t's input is row rows[t] of the CSR arrays.
    Layer 0 walks the nonzero inputs (with dense, all of them: the column of
    values[p] is then p - p0, not indices[p]); later layers all their inputs; zero is 0
    in A's dtype (where the second chains start).  The inputs
    of rows[t + PREFETCH_AHEAD] are prefetched into L1, and those of
    rows[t + PREFETCH_OUTER] into L2, if rows goes on that far.
    splits[x] is copied to spans[t] for the update (see update_rows): the
    update then reads it in order instead of from anywhere in memory.

    With CHAINS = 2, each z_j is summed in two chains, the 1st, 3rd, 5th...
    inputs' terms (after b_j) and the 2nd, 4th, ... inputs' terms, added at
    the end: one chain waits for each addition to finish before the next.
    """
    n_layers = len(widths)

    def column(p):
        return f"{p} - p0" if dense else f"indices[{p}]"

    lines = ["def forward_pass(t0, t1, rows, indptr, indices, values, splits, spans, weights,",
             "                 biases, A, zero):",
             "    one = np.uint64(1)"]
    lines += [f"    W{i}, B{i}, A{i} = weights[{i}], biases[{i}], A[{i}]" for i in range(n_layers)]
    lines += _example_loop_head()
    for i, n_out in enumerate(widths):
        # The padding columns are computed too, in whole vectors (their weights
        # and biases are zero; their activations sigmoid(0) are never read).
        for j0, j1 in _panels(padded(n_out), panel):
            cols = range(j0, j1)
            lines += [f"        # layer {i}, outputs {j0}..{j1 - 1}"]
            lines += [f"        z{j} = B{i}[{j}]" for j in cols]
            if CHAINS == 1:
                if i == 0:
                    lines += ["        for p in range(p0, p1):",
                              f"            k, ak = {column('p')}, values[p]"]
                else:
                    lines += [f"        for k in range({widths[i - 1]}):",
                              f"            ak = A{i - 1}[t, k]"]
                lines += [f"            z{j} += ak * W{i}[k, {j}]" for j in cols]
                lines += [f"        A{i}[t, {j}] = z{j}" for j in cols]
                continue
            lines += [f"        y{j} = zero" for j in cols]
            if i == 0:
                lines += ["        for q in range(pairs):",
                          "            p = p0 + q + q",
                          f"            k, ak = {column('p')}, values[p]",
                          f"            k2, ak2 = {column('p + one')}, values[p + one]"]
            else:
                lines += [f"        for k in range(0, {widths[i - 1] - 1}, 2):",
                          f"            ak, ak2 = A{i - 1}[t, k], A{i - 1}[t, k + 1]",
                          "            k2 = k + 1"]
            lines += [f"            z{j} += ak * W{i}[k, {j}]" for j in cols]
            lines += [f"            y{j} += ak2 * W{i}[k2, {j}]" for j in cols]
            if i == 0:
                lines += ["        if p0 + pairs + pairs < p1:",
                          f"            k, ak = {column('p1 - one')}, values[p1 - one]"]
            elif widths[i - 1] % 2:
                last = widths[i - 1] - 1
                lines += ["        if True:",
                          f"            k, ak = {last}, A{i - 1}[t, {last}]"]
            if i == 0 or widths[i - 1] % 2:
                lines += [f"            z{j} += ak * W{i}[k, {j}]" for j in cols]
            lines += [f"        A{i}[t, {j}] = z{j} + y{j}" for j in cols]
        # a loop, not written out: the loop vectoriser packs the sigmoids' branches
        lines += [f"        for j in range(A{i}.shape[1]):",
                  f"            A{i}[t, j] = _sigmoid(A{i}[t, j])"]
    return lines


def _dot_terms(width, term):
    """sum_j term_j for j < width, as four partial sums over j mod 4, then
    (s0 + s1) + (s2 + s3): a fixed order (the same bits every time), four
    independent chains.  term is the source of a product, with {j} for j."""
    sums = []
    for lane in range(4):
        terms = [term.format(j=j) for j in range(lane, width, 4)]
        sums.append(" + ".join(terms) if terms else "0.0")
    return f"(({sums[0]}) + ({sums[1]})) + (({sums[2]}) + ({sums[3]}))"


COSTS = ("quadratic", "cross-entropy")


def _backward_code(widths, cost="quadratic"):
    """backward_pass: the errors delta into D[l][t] for the examples t0 <= t < t1,
    whose activations are in A and desired outputs the one-hot labels[rows[t]]:
    delta^L = (a^L - y) * sigma'(z^L) for the quadratic cost, a^L - y for the
    cross-entropy cost; delta^l = ((w^(l+1))^T delta^(l+1)) * sigma'(z^l), with
    sigma'(z) = a (1 - a).  costs[t] = C_x: ||y - a^L||^2 / 2, or
    -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] (see _CE_SMALLEST).
    D's padding columns must be zero on entry; they are left so.

    (w^(l+1))^T delta^(l+1) sums, for each input k, the k-th row of w^(l+1)'s
    stored block (one weight per output j) times delta^(l+1): a short dot
    product per k, which does not vectorise.  With TRANSPOSE_FROM examples or
    more, the call first copies each block transposed (T[j, k] = w_jk) so that
    the loop over k reads T's rows in order and computes several k at once;
    each k's sum has the same terms in the same order either way, so the bits
    do not depend on it."""
    L = len(widths) - 1
    lines = ["def backward_pass(t0, t1, rows, labels, weights, A, D, costs, n_out):",
             "    tiny = np.finfo(D[0].dtype).tiny / np.finfo(D[0].dtype).eps"]
    lines += [f"    W{i}, A{i}, D{i} = weights[{i}], A[{i}], D[{i}]" for i in range(L + 1)]
    lines += [f"    transposed = t1 - t0 >= {TRANSPOSE_FROM}"]
    for i in range(L - 1, -1, -1):
        stride = padded(widths[i + 1])
        # without the copy T is W itself, never read: nothing allocated per call
        # (an online epoch calls this once per example)
        lines += ["    if transposed:",
                  f"        T{i + 1} = np.empty(({stride}, {widths[i]}), W{i + 1}.dtype)",
                  f"        for k in range({widths[i]}):",
                  f"            for j in range({stride}):",
                  f"                T{i + 1}[j, k] = W{i + 1}[k, j]",
                  "    else:",
                  f"        T{i + 1} = W{i + 1}"]
    lines += ["    for t in range(t0, t1):",
              "        label = labels[rows[t]]"]
    if cost == "quadratic":
        lines += ["        cost = 0.0"]
        for j in range(widths[L]):
            lines += [f"        a = A{L}[t, {j}]",
                      f"        y = 1.0 if label == {j} else 0.0",
                      "        cost += 0.5 * (a - y) * (a - y)",
                      f"        D{L}[t, {j}] = _flush(_quadratic_output_error(a, y), tiny)"]
        lines += ["        costs[t] = cost"]
    elif cost == "cross-entropy":
        # C_x = -ln(a_label * prod_{j != label} (1 - a_j)): the probability the
        # outputs give the desired output, one logarithm per example
        lines += ["        p = 1.0"]
        for j in range(widths[L]):
            lines += [f"        a = A{L}[t, {j}]",
                      f"        y = 1.0 if label == {j} else 0.0",
                      "        p *= np.float64(a) if label == " + str(j)
                      + " else 1.0 - np.float64(a)",
                      f"        D{L}[t, {j}] = _flush(_cross_entropy_output_error(a, y), tiny)"]
        lines += ["        costs[t] = -np.log(max(p, _CE_SMALLEST))"]
    else:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    for i in range(L - 1, -1, -1):
        stride = padded(widths[i + 1])
        lines += [f"        # layer {i}: back through the {widths[i + 1]} x {widths[i]} weights"]
        lines += [f"        d{j} = D{i + 1}[t, {j}]" for j in range(stride)]
        for path, term in (("if transposed", f"T{i + 1}[{{j}}, k] * d{{j}}"),
                           ("else", f"W{i + 1}[k, {{j}}] * d{{j}}")):
            lines += [f"        {path}:",
                      f"            for k in range({widths[i]}):",
                      f"                s = {_dot_terms(stride, term)}",
                      f"                ak = A{i}[t, k]",
                      f"                D{i}[t, k] = _flush(s * ak * (1.0 - ak), tiny)"]
    return lines


def _update_code(widths, panel, dense=False):
    """update_rows: target_w[l] += coef * sum_t a^(l-1)_t (delta^l_t)^T and
    target_b[l] += coef * sum_t delta^l_t over the examples t = t0, t0 + 1, ..., t1 - 1
    in order, for one piece of the weights.  Pieces 0..n_row_blocks-1 are blocks
    of layer 0's rows: piece r takes the nonzero inputs spans[t, r]:spans[t, r + 1]
    of each example t (``row_splits``, copied by forward_pass), and the last one
    also adds layer 0's biases; piece n_row_blocks + i - 1 is the whole of layer i.
    With one block of rows, each example's nonzero inputs are all of its row.
    With dense, the column of values[p] is its position in the row.

    Example by example, delta_t stays in registers while the rows of its
    nonzero inputs are updated.  (Walking the chunk column by column instead,
    each row in registers, is slower: a row's terms form one dependency chain.)
    """
    lines = ["def update_rows(piece, n_row_blocks, t0, t1, rows, indptr, indices, values, spans,",
             "                coef, target_w, target_b, A, D):"]
    lines += [f"    W{i}, B{i}, D{i} = target_w[{i}], target_b[{i}], D[{i}]"
              for i in range(len(widths))]
    for i, n_out in enumerate(widths):
        stride = padded(n_out)
        if i == 0:
            lines += ["    if piece < n_row_blocks:",
                      "        for t in range(t0, t1):",
                      "            row = indptr[rows[t]]",
                      "            if n_row_blocks == 1:",
                      "                p0, p1 = row, indptr[rows[t] + 1]",
                      "            else:",
                      "                p0, p1 = spans[t, piece], spans[t, piece + 1]"]
        else:
            lines += [f"    if piece == n_row_blocks + {i - 1}:",
                      f"        A{i - 1} = A[{i - 1}]",
                      "        for t in range(t0, t1):"]
        for j0, j1 in _panels(stride, panel):
            cols = range(j0, j1)
            lines += [f"            d{j} = D{i}[t, {j}]" for j in cols]
            if i == 0:
                lines += ["            for p in range(p0, p1):",
                          "                k = " + ("p - row" if dense else "indices[p]"),
                          "                c = coef * values[p]"]
            else:
                lines += [f"            for k in range({widths[i - 1]}):",
                          f"                c = coef * A{i - 1}[t, k]"]
            lines += [f"                W{i}[k, {j}] += c * d{j}" for j in cols]
            bias_guard = "piece == n_row_blocks - 1" if i == 0 else "True"
            lines += [f"            if {bias_guard}:"]
            lines += [f"                B{i}[{j}] += coef * d{j}" for j in cols]
    return lines


def layer_code(widths, panel, cost="quadratic", dense=False):
    """Source of forward_pass, backward_pass and update_rows for a network whose
    layers after the input have `widths` neurons (sizes[1:]), computing `panel`
    outputs at a time, trained on `cost` ("quadratic" or "cross-entropy"), on
    inputs from ``nonzero_columns`` or, with dense, ``dense_columns``."""
    parts = [_forward_code(widths, panel, dense), _backward_code(widths, cost),
             _update_code(widths, panel, dense)]
    return "\n\n\n".join(f"@njit({_OPTIONS})\n" + "\n".join(p) for p in parts)


# ------------------------------------------------------------ the generic operations
# The same three operations as layer_code's, for any hidden widths: loops over
# the widths read from the arrays instead of code written out per width.  They
# compile in a fraction of the time (one module serves every network with the
# same output count, cost and input path) and run more slowly: fastgd trains on
# them while the specialised module compiles in the background
# (``training.Trainer``).  Each number is computed with the same operations in
# the same order as in layer_code's version (the chains of z_j, the four lanes
# of the backward sums, the update's order over examples and inputs), so the
# weights are bit-identical whichever trained them; tests/test_generic.py
# checks it.


def _generic_forward_code(dense=False):
    """forward_pass for any widths: layer_code's forward_pass with each layer's
    z_j summed in A[l][t, :] (the first chain) and a row `second` (the second),
    instead of in named variables."""
    column = "p - p0" if dense else "indices[p]"
    column2 = "p + one - p0" if dense else "indices[p + one]"
    last_column = "p1 - one - p0" if dense else "indices[p1 - one]"
    lines = ["def forward_pass(t0, t1, rows, indptr, indices, values, splits, spans, weights,",
             "                 biases, A, zero):",
             "    one = np.uint64(1)",
             "    widest = 0",
             "    for i in range(len(weights)):",
             "        widest = max(widest, weights[i].shape[1])",
             "    second = np.empty(widest, A[0].dtype)"]
    lines += _example_loop_head()
    lines += ["        for i in range(len(weights)):",
             "            W, B = weights[i], biases[i]",
             "            z = A[i][t]",
             "            y = second[:W.shape[1]]",
             "            for j in range(W.shape[1]):",
             "                z[j] = B[j]",
             "                y[j] = zero"]
    if CHAINS == 1:
        lines += ["            if i == 0:",
                  "                for p in range(p0, p1):",
                  f"                    k, ak = {column}, values[p]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "            else:",
                  "                previous = A[i - 1][t]",
                  "                for k in range(W.shape[0]):",
                  "                    ak = previous[k]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]"]
    elif CHAINS == 2:
        lines += ["            if i == 0:",
                  "                for q in range(pairs):",
                  "                    p = p0 + q + q",
                  f"                    k, ak = {column}, values[p]",
                  f"                    k2, ak2 = {column2}, values[p + one]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "                    for j in range(W.shape[1]):",
                  "                        y[j] += ak2 * W[k2, j]",
                  "                if p0 + pairs + pairs < p1:",
                  f"                    k, ak = {last_column}, values[p1 - one]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "            else:",
                  "                previous = A[i - 1][t]",
                  "                n_in = W.shape[0]",
                  "                for k in range(0, n_in - 1, 2):",
                  "                    ak, ak2 = previous[k], previous[k + 1]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "                    for j in range(W.shape[1]):",
                  "                        y[j] += ak2 * W[k + 1, j]",
                  "                if n_in % 2:",
                  "                    ak = previous[n_in - 1]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[n_in - 1, j]",
                  "            for j in range(W.shape[1]):",
                  "                z[j] = z[j] + y[j]"]
    else:
        raise ValueError(f"config.CHAINS must be 1 or 2, got {CHAINS!r}")
    lines += ["            for j in range(W.shape[1]):",
              "                z[j] = _sigmoid(z[j])"]
    return lines


def _generic_backward_code(cost="quadratic"):
    """backward_pass for any widths (n_out outputs): layer_code's
    backward_pass with loops over the widths; each input's sum of w_jk delta_j
    is formed in the same four lanes over j mod 4, in the same order."""
    lines = ["def backward_pass(t0, t1, rows, labels, weights, A, D, costs, n_out):",
             "    tiny = np.finfo(D[0].dtype).tiny / np.finfo(D[0].dtype).eps",
             "    L = len(weights) - 1",
             "    for t in range(t0, t1):",
             "        label = labels[rows[t]]",
             "        AL, DL = A[L], D[L]"]
    if cost == "quadratic":
        lines += ["        cost = 0.0",
                  "        for j in range(n_out):",
                  "            a = AL[t, j]",
                  "            y = 1.0 if label == j else 0.0",
                  "            cost += 0.5 * (a - y) * (a - y)",
                  "            DL[t, j] = _flush(_quadratic_output_error(a, y), tiny)",
                  "        costs[t] = cost"]
    elif cost == "cross-entropy":
        lines += ["        p = 1.0",
                  "        for j in range(n_out):",
                  "            a = AL[t, j]",
                  "            y = 1.0 if label == j else 0.0",
                  "            p *= np.float64(a) if label == j else 1.0 - np.float64(a)",
                  "            DL[t, j] = _flush(_cross_entropy_output_error(a, y), tiny)",
                  "        costs[t] = -np.log(max(p, _CE_SMALLEST))"]
    else:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    lines += ["        for i in range(L - 1, -1, -1):",
              "            W, Ai, Di, d = weights[i + 1], A[i], D[i], D[i + 1][t]",
              "            for k in range(W.shape[0]):",
              "                w = W[k]",
              "                s0, s1, s2, s3 = w[0] * d[0], w[1] * d[1], w[2] * d[2], w[3] * d[3]",
              "                for j in range(4, W.shape[1], 4):",
              "                    s0 += w[j] * d[j]",
              "                    s1 += w[j + 1] * d[j + 1]",
              "                    s2 += w[j + 2] * d[j + 2]",
              "                    s3 += w[j + 3] * d[j + 3]",
              "                s = (s0 + s1) + (s2 + s3)",
              "                ak = Ai[t, k]",
              "                Di[t, k] = _flush(s * ak * (1.0 - ak), tiny)"]
    return lines


def _generic_update_code(dense=False):
    """update_rows for any widths: layer_code's update_rows with loops over the
    widths; each weight adds its terms in the same order (examples t, then
    inputs p)."""
    lines = ["def update_rows(piece, n_row_blocks, t0, t1, rows, indptr, indices, values, spans,",
             "                coef, target_w, target_b, A, D):",
             "    if piece < n_row_blocks:",
             "        W, B, D0 = target_w[0], target_b[0], D[0]",
             "        for t in range(t0, t1):",
             "            row = indptr[rows[t]]",
             "            if n_row_blocks == 1:",
             "                p0, p1 = row, indptr[rows[t] + 1]",
             "            else:",
             "                p0, p1 = spans[t, piece], spans[t, piece + 1]",
             "            d = D0[t]",
             "            for p in range(p0, p1):",
             "                k = " + ("p - row" if dense else "indices[p]"),
             "                c = coef * values[p]",
             "                for j in range(W.shape[1]):",
             "                    W[k, j] += c * d[j]",
             "            if piece == n_row_blocks - 1:",
             "                for j in range(W.shape[1]):",
             "                    B[j] += coef * d[j]",
             "        return",
             "    i = piece - n_row_blocks + 1",
             "    W, B, Di, previous = target_w[i], target_b[i], D[i], A[i - 1]",
             "    for t in range(t0, t1):",
             "        d = Di[t]",
             "        for k in range(W.shape[0]):",
             "            c = coef * previous[t, k]",
             "            for j in range(W.shape[1]):",
             "                W[k, j] += c * d[j]",
             "        for j in range(W.shape[1]):",
             "            B[j] += coef * d[j]"]
    return lines


def generic_layer_code(cost="quadratic", dense=False):
    """Source of the generic forward_pass, backward_pass and update_rows: any
    widths, trained on `cost`, inputs as for layer_code."""
    parts = [_generic_forward_code(dense), _generic_backward_code(cost),
             _generic_update_code(dense)]
    return "\n\n\n".join(f"@njit({_OPTIONS})\n" + "\n".join(p) for p in parts)


_HEADER = '''"""fastgd's training kernels for {what}, {cost} cost, {inputs} inputs:
generated by fastgd._kernels.{generator}, compiled and cached by numba.  Do not edit."""

import numpy as np
from numba import njit, prange

from fastgd._kernels import (_CE_SMALLEST, _add_groups, _apply, _cross_entropy_output_error,
                             _decay_stage, _finish_and_take, _flush, _layers, _prefetch_row,
                             _prefetch_row_outer,
                             _quadratic_output_error, _scratch, _sigmoid, _take, _wait_for,
                             _work_queue, compile_serial_and_parallel, nonzero_columns)

'''

_FOOTER = '''
generic = {generic}

# every worker of the kernels below runs it: compiled once, for both variants
_descend = njit(cache=True, nogil=True, error_model="numpy")(_descend)
train_serial, train_parallel = compile_serial_and_parallel(_train)
gradient_sum_serial, gradient_sum_parallel = compile_serial_and_parallel(_gradient_sum)
'''
# _feedforward, _gradients and _backprop index their rows with nonzero_columns: only
# the modules of the sparse path have them.
_SPARSE_FOOTER = (
    "feedforward_serial, feedforward_parallel = compile_serial_and_parallel(_feedforward)\n"
    "gradients_serial, gradients_parallel = compile_serial_and_parallel(_gradients)\n"
    "backprop = njit(cache=True, nogil=True, error_model=\"numpy\")(_backprop)\n")


# Read once, at import: inspect reads the file on disk, which may change later.
# The tunables the drivers use are written into the generated source as numbers,
# so that the source's hash (the cache's key) changes when they do.
_DRIVERS = "\n\n".join(inspect.getsource(f) for f in (_train, _gradient_sum, _descend,
                                                      _feedforward, _gradients, _backprop)
                       ).replace("PARAM_BLOCK", str(PARAM_BLOCK)
                                 ).replace("DECAY_ROWS", str(DECAY_ROWS)
                                 ).replace("SPINS_BEFORE_YIELD", str(SPINS_BEFORE_YIELD))


def module_source(widths, panel, cost="quadratic", dense=False, generic=False):
    """The whole generated module for these layer widths, panel width, cost and
    input path; with generic, the generic operations for any widths with
    widths (``generic_layer_code``; widths and panel are not used)."""
    if generic:
        what = "any layer widths (generic loops)"
        generator, code = "generic_layer_code", generic_layer_code(cost, dense)
    else:
        what = f"layer widths {list(widths)}, {panel} outputs at a time"
        generator, code = "layer_code", layer_code(widths, panel, cost, dense)
    return (_HEADER.format(what=what, generator=generator, cost=cost,
                           inputs="dense" if dense else "sparse")
            + code + "\n\n\n" + _DRIVERS
            + _FOOTER.format(generic=bool(generic)) + ("" if dense else _SPARSE_FOOTER))


def compile_serial_and_parallel(impl):
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
        variants.append(njit(cache=True, nogil=True, parallel=parallel,
                             error_model="numpy")(fn))
    return tuple(variants)


# Hash of the sources the generated modules depend on, part of every module's
# name (``kernel_cache``): read at import, as _DRIVERS is, so that it describes
# the code this process runs even if the files change later.
_SOURCES = kernel_cache.source_hash()
_modules = {}
_modules_lock = threading.Lock()


def _module_for(widths, panel, cost="quadratic", dense=False, generic=False):
    """The generated module (a Python module object) for these layer widths, cost
    and input path.

    Written to ``kernel_cache.module_folder()`` under a name that carries the
    hash of fastgd's sources and of its own source (``kernel_cache.module_name``;
    a file there holding anything else is written again first), and imported
    from there, so numba caches its compiled code beside it.  The first call in
    a process also removes the modules of other sources from the folder
    (``kernel_cache.remove_stale_once``).
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    key = tuple(int(w) for w in widths), panel, cost, bool(dense), bool(generic)
    with _modules_lock:
        if key in _modules:
            return _modules[key]
        source = module_source(*key)
        folder = kernel_cache.module_folder()
        kernel_cache.remove_stale_once(folder)
        name = kernel_cache.module_name(() if generic else key[0], key[3], _SOURCES, source)
        path = kernel_cache.write_module(folder, name, source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _modules[key] = module
        return module


_slp_lock = threading.Lock()
_slp_users = [0, None]  # fastgd calls in flight, numba's setting before the first


class _slp_on:
    """numba's SLP vectoriser on while fastgd's kernels may compile (numba reads
    the setting whenever it optimises a module).  Every fastgd kernel is
    compiled under it, so the on-disk cache never holds a mix, and the tests
    run exactly the code that ships.  Nested and threaded uses are counted.

    A class rather than a generator-based context manager: entering and leaving
    it costs a fraction of a microsecond instead of about 2.5, which a call of
    the network on one example (a few microseconds of arithmetic) would feel."""

    __slots__ = ()

    def __enter__(self):
        with _slp_lock:
            if _slp_users[0] == 0:
                _slp_users[1] = numba.config.SLP_VECTORIZE
                numba.config.SLP_VECTORIZE = 1
            _slp_users[0] += 1

    def __exit__(self, *exc_info):
        with _slp_lock:
            _slp_users[0] -= 1
            if _slp_users[0] == 0:
                numba.config.SLP_VECTORIZE = _slp_users[1]
        return False


# Threading layers that may run parallel kernels from several Python threads at
# once (numba's documentation); under any other (workqueue) two at once abort
# the process, so fastgd runs its parallel kernels one at a time there.
THREAD_SAFE_LAYERS = ("tbb", "omp")
_parallel_lock = threading.Lock()


def _one_at_a_time(kernel):
    """The lock a parallel kernel must hold under a layer that is not thread-safe
    (also before the first parallel kernel has run, when the layer is unknown)."""
    if not getattr(kernel, "targetoptions", {}).get("parallel"):
        return nullcontext()
    try:
        if numba.threading_layer() in THREAD_SAFE_LAYERS:
            return nullcontext()
    except ValueError:  # not chosen yet: the first parallel call chooses it
        pass
    return _parallel_lock


def call(kernel, *args):
    """kernel(*args), with the SLP vectoriser on in case it compiles now, and one
    parallel kernel at a time where the threading layer needs it."""
    with _slp_on():
        if not getattr(kernel, "targetoptions", {}).get("parallel"):
            return kernel(*args)  # no lock to look up: a call on one example feels it
        with _one_at_a_time(kernel):
            return kernel(*args)


def on_disk(kernel):
    """True if numba's disk cache holds compiled code for this kernel (a first
    call then loads it instead of compiling), False if not, None if unknown."""
    try:
        folder = kernel._cache.cache_path
        name = kernel.py_func.__qualname__
        module = kernel.py_func.__module__
    except AttributeError:  # numba internals changed: do not guess
        return None
    return bool(glob.glob(os.path.join(folder, f"{module}.{name}-*.nbi")))


def kernels(sizes, dtype, cost="quadratic", dense=False):
    """The generated module of kernels (train_serial, train_parallel,
    gradient_sum_*, and for the sparse path feedforward_* and gradients_*) for a
    network of these sizes and dtype, trained on `cost` (the feedforward kernels
    do not depend on it), reading its inputs from ``input_columns(X, dense)``."""
    return _module_for(list(sizes)[1:], panel_width(np.dtype(dtype).itemsize), cost, dense)


def generic_kernels(sizes, cost="quadratic", dense=False):
    """The generic module of kernels (the same names as ``kernels``'s), for a
    network of any sizes: slower loops, compiled in a fraction of the time and
    shared by every shape, with bit-identical results."""
    return _module_for([], None, cost, dense, generic=True)


_ready = set()  # (kernel, dtype) known to be compiled or on disk: stays so


def ready(module, names, dtype):
    """True if each kernel of module named in names is compiled for dtype in this
    process, or numba's disk cache has code for it (a call then loads it instead
    of compiling)."""
    nb_dtype = numba.from_dtype(np.dtype(dtype))
    for name in names:
        kernel = getattr(module, name)
        if (kernel, nb_dtype) in _ready:
            continue
        in_process = any(isinstance(t, nbtypes.Array) and t.dtype == nb_dtype
                         for signature in kernel.signatures for t in signature)
        if not in_process and not on_disk(kernel):
            return False
        _ready.add((kernel, nb_dtype))
    return True


def usable_kernels(sizes, dtype, cost, names, dense=False):
    """The module to run the kernels `names` with now: the specialised one
    (``kernels``) if they are compiled or on disk, else, unless
    config.SPECIALIZE is "now", the generic one (the same results, compiled
    once for every shape), so that a call does not wait for a compile."""
    from . import config
    module = kernels(sizes, dtype, cost, dense)
    if config.SPECIALIZE == "now" or ready(module, names, dtype):
        return module
    return generic_kernels(sizes, cost, dense)
