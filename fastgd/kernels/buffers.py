"""Where the numbers live: the parameter and scratch layout the kernels share,
padded rows and cache-line-aligned allocation.

Layer ``i`` (from ``sizes[i]`` neurons to ``sizes[i+1]``) keeps its weights
transposed, as an ``(n_in, stride)`` block of the flat ``params`` array, so that
the weights leaving one input neuron are contiguous; ``stride[i]`` is
``sizes[i+1]`` rounded up to a multiple of ``PAD`` (``padded``), and the padding
weights and biases are zero and stay zero.  Per-example scratch (activations
``A`` and errors ``D``) is one flat buffer each, layer-major.  ``layer_views`` and
``scratch_views`` make the 2-D views the kernels index, once per call.
"""

from collections import namedtuple

import numpy as np

from .numba_cache import njit

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


@njit(cache=True, nogil=True)
def layer_views(params, layout):
    """(weights, biases): each layer's weights as a (sizes[i], stride[i]) view of
    params (row k holds w_jk for all j) and its biases as a (stride[i],) view."""
    sizes, stride, w_off, b_off = layout.sizes, layout.stride, layout.w_off, layout.b_off
    n_layers = sizes.shape[0] - 1
    weights = [params[w_off[i]:w_off[i] + sizes[i] * stride[i]].reshape((sizes[i], stride[i]))
               for i in range(n_layers)]
    biases = [params[b_off[i]:b_off[i] + stride[i]] for i in range(n_layers)]
    return weights, biases


@njit(cache=True, nogil=True)
def scratch_views(buffer, layout, rows):
    """Layer i's per-example values (activations or errors) as a (rows, stride[i])
    view of buffer: layer-major, so that a layer's rows are contiguous."""
    stride, a_off = layout.stride, layout.a_off
    return [buffer[rows * a_off[i]:rows * a_off[i + 1]].reshape((rows, stride[i]))
            for i in range(stride.shape[0])]

