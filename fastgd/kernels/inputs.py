"""The training examples as the kernels read them: each input row with the list
of its nonzero columns (``nonzero_columns``, a CSR index) so that the zeros
(most of MNIST's pixels) are skipped, or every column in order on the dense
path (``dense_columns``), chosen from the data by ``uses_dense_path``; and the
split of those lists into blocks of weight rows for a parallel update
(``row_splits``, ``balanced_bounds``).
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import config
from .numba_cache import njit

def nonzero_columns(X, threads=1):
    """(indptr, indices, values): row x of X is nonzero exactly in the columns
    indices[indptr[x]:indptr[x + 1]], in increasing order, where it holds values[...]
    (CSR; the values are copied so that training reads them contiguously).
    indptr is unsigned so that loops over it need no sign checks.  NumPy
    allocates and numba only counts and copies (``index_nonzero_columns``):
    numba's allocations are slow to compile, and this runs before a cold
    first run's first epoch.  With threads > 1 the copy is shared among up to
    that many threads (``config.INDEX_ENTRIES_PER_THREAD`` entries each at
    least), each a block of rows with about as many nonzero entries (the same
    arrays: each entry is copied by one thread, to its own place)."""
    n = X.shape[0]
    indptr = np.zeros(n + 1, np.uint64)
    index_nonzero_columns(X, indptr, np.empty(0, np.uint32), np.empty(0, X.dtype), 0, n)
    total = int(indptr[n])
    indices, values = np.empty(total, np.uint32), np.empty(total, X.dtype)
    if total:
        _copy_nonzero_columns(X, indptr, indices, values, threads)
    return indptr, indices, values


def _copy_nonzero_columns(X, indptr, indices, values, threads):
    """index_nonzero_columns's copy over every row of X, in `threads` blocks of
    rows at once (threads of this process: the kernel releases the GIL)."""
    n = X.shape[0]
    parts = max(1, min(int(threads), n, int(indptr[n]) // config.INDEX_ENTRIES_PER_THREAD))
    # block b starts at the first row whose entries start at b / parts of them or after
    targets = np.arange(1, parts) * (int(indptr[n]) / parts)
    starts = np.unique(np.concatenate([[0], np.searchsorted(indptr[:n], targets), [n]]))
    blocks = list(zip(starts[:-1].tolist(), starts[1:].tolist()))
    if len(blocks) == 1:
        index_nonzero_columns(X, indptr, indices, values, 0, n)
        return
    with ThreadPoolExecutor(len(blocks) - 1, thread_name_prefix="fastgd-index") as pool:
        others = [pool.submit(index_nonzero_columns, X, indptr, indices, values, x0, x1)
                  for x0, x1 in blocks[1:]]
        index_nonzero_columns(X, indptr, indices, values, *blocks[0])
        for other in others:
            other.result()


@njit(cache=True, nogil=True)
def nonzero_columns_in_kernel(X):
    """``nonzero_columns`` for the kernels' own use (their feedforward and
    backprop index a block of rows at a time): the same arrays."""
    n = X.shape[0]
    indptr = np.zeros(n + 1, np.uint64)
    index_nonzero_columns(X, indptr, np.empty(0, np.uint32), np.empty(0, X.dtype), 0, n)
    total = np.int64(indptr[n])
    indices, values = np.empty(total, np.uint32), np.empty(total, X.dtype)
    if total:
        index_nonzero_columns(X, indptr, indices, values, 0, n)
    return indptr, indices, values


@njit(cache=True, nogil=True)
def index_nonzero_columns(X, indptr, indices, values, x0, x1):
    """The two passes of ``nonzero_columns`` over rows x0..x1-1 of X, in one
    function so that a cold start compiles one: with indices empty, count
    (indptr[x + 1] = indptr[x] + the number of nonzero entries in row x; x0 = 0);
    else copy (indices[p] = k and values[p] = X[x, k] for the nonzero X[x, k] of
    row x, from p = indptr[x] on, in increasing k).

    The copy of a row writes every entry at p and moves p on past the nonzero
    ones, without a branch that a fifth of MNIST's entries would mispredict
    (twice as fast): its zeros after its last nonzero entry write place
    indptr[x + 1], which a later row of the block writes after.  A row whose
    indptr[x + 1] is not below the block's end writes only its nonzero entries,
    so that nothing is written past indptr[x1] and other blocks can be copied
    at the same time."""
    if indices.shape[0] == 0:
        for x in range(x0, x1):
            count = np.uint64(0)
            for k in range(X.shape[1]):
                count += np.uint64(X[x, k] != 0)
            indptr[x + 1] = indptr[x] + count
        return
    end = indptr[x1]
    for x in range(x0, x1):
        p = indptr[x]  # unsigned: an index numba need not check for a negative value
        if indptr[x + 1] < end:
            for k in range(X.shape[1]):
                value = X[x, k]
                indices[p] = k
                values[p] = value
                p += np.uint64(value != 0)
        else:
            for k in range(X.shape[1]):
                value = X[x, k]
                if value != 0:
                    indices[p] = k
                    values[p] = value
                    p += np.uint64(1)


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


def input_columns(X, dense, threads=1):
    """The rows of X as the training kernels read them: ``dense_columns`` for a
    module generated with dense=True, else ``nonzero_columns`` (the zeros skipped,
    copied by `threads` threads)."""
    return dense_columns(X) if dense else nonzero_columns(X, threads)


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
