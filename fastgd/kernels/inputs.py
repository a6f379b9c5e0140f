"""The training examples as the kernels read them: each input row with the list
of its nonzero columns (``nonzero_columns``, a CSR index) so that the zeros
(most of MNIST's pixels) are skipped, or every column in order on the dense
path (``dense_columns``), chosen from the data by ``uses_dense_path``; and the
split of those lists into blocks of weight rows for a parallel update
(``row_splits``, ``balanced_bounds``).
"""

import numpy as np

from .. import config
from .numba_cache import njit

def nonzero_columns(X):
    """(indptr, indices, values): row x of X is nonzero exactly in the columns
    indices[indptr[x]:indptr[x + 1]], in increasing order, where it holds values[...]
    (CSR; the values are copied so that training reads them contiguously).
    indptr is unsigned so that loops over it need no sign checks.  NumPy
    allocates and numba only counts and copies (``index_nonzero_columns``):
    numba's allocations are slow to compile, and this runs before a cold
    first run's first epoch."""
    n = X.shape[0]
    indptr = np.zeros(n + 1, np.uint64)
    index_nonzero_columns(X, indptr, np.empty(0, np.uint32), np.empty(0, X.dtype))
    total = int(indptr[n])
    # one slot more: the copy writes every entry and keeps the nonzero ones
    indices, values = np.empty(total + 1, np.uint32), np.empty(total + 1, X.dtype)
    if total:
        index_nonzero_columns(X, indptr, indices, values)
    return indptr, indices[:total], values[:total]


@njit(cache=True, nogil=True)
def nonzero_columns_in_kernel(X):
    """``nonzero_columns`` for the kernels' own use (their feedforward and
    backprop index a block of rows at a time): the same arrays."""
    n = X.shape[0]
    indptr = np.zeros(n + 1, np.uint64)
    index_nonzero_columns(X, indptr, np.empty(0, np.uint32), np.empty(0, X.dtype))
    total = np.int64(indptr[n])
    indices, values = np.empty(total + 1, np.uint32), np.empty(total + 1, X.dtype)
    if total:
        index_nonzero_columns(X, indptr, indices, values)
    return indptr, indices[:total], values[:total]


@njit(cache=True, nogil=True)
def index_nonzero_columns(X, indptr, indices, values):
    """The two passes of ``nonzero_columns``, in one function so that a cold
    start compiles one: with indices empty, count (indptr[x + 1] = indptr[x] +
    the number of nonzero entries in row x of X); else copy (indices[p] = k
    and values[p] = X[x, k] for the nonzero X[x, k] of row x, from p = indptr[x]
    on, in increasing k).  The copy writes every entry at p and moves p on
    past the nonzero ones, without a branch that a fifth of the entries would
    mispredict (twice as fast on MNIST): indices and values need one slot past
    the last nonzero entry."""
    if indices.shape[0] == 0:
        for x in range(X.shape[0]):
            count = np.uint64(0)
            for k in range(X.shape[1]):
                count += np.uint64(X[x, k] != 0)
            indptr[x + 1] = indptr[x] + count
        return
    for x in range(X.shape[0]):
        p = indptr[x]  # unsigned: an index numba need not check for a negative value
        for k in range(X.shape[1]):
            value = X[x, k]
            indices[p] = k
            values[p] = value
            p += np.uint64(value != 0)


def load_numba(dtype):
    """Load ``nonzero_columns`` for X of `dtype` (compile it, on a cold cache) by
    indexing one row of zeros.  The first kernel a process compiles or loads
    also fills numba's typing and lowering registries, about half a second of
    importing: done here, a caller can run it beside work that does not need
    numba (reading the data, in ``fastgd train``) instead of after it."""
    nonzero_columns(np.zeros((1, 1), dtype))


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
    ``config.DENSE_FROM`` or more (read at every call), skipping the zeros saves
    less than reading each nonzero input's column costs (BENCHMARKS.md).  The
    path fixes the order of the additions, so the setting changes the bits."""
    fraction = np.count_nonzero(X) / X.size if X.size else 0.0
    return bool(fraction >= config.DENSE_FROM), float(fraction)


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
    counts = column_counts(indices, n_in).astype(np.float64) + 1.0
    cumulative = np.cumsum(counts)
    targets = cumulative[-1] * np.arange(1, n_blocks) / n_blocks
    inner = np.searchsorted(cumulative, targets) + 1
    return np.concatenate([[0], np.minimum(inner, n_in), [n_in]]).astype(np.int64)


def column_counts(indices, n_in, chunk=1 << 18):
    """How many times each column 0..n_in-1 occurs in ``indices``: np.bincount a
    chunk at a time, because bincount first copies its whole input to intp (twice
    the size of these uint32 indices; on MNIST a 60 MB temporary that costs more
    to allocate than the counting)."""
    counts = np.zeros(n_in, np.int64)
    for start in range(0, indices.shape[0], chunk):
        counts += np.bincount(indices[start:start + chunk], minlength=n_in)
    return counts
