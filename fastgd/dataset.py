"""Data sets prepared once: ``Dataset``, and the cache that spares plain arrays
given again the work of preparing them.

Before an epoch can run, its data must be checked (finite inputs, labels in
range), put in the network's dtype, told dense or sparse and indexed for the
kernels (``kernels.uses_dense_path``, ``kernels.input_columns``); a
checkpoint also needs their fingerprint.  On MNIST that is a few tenths of a
second, more than an epoch takes, so doing it on every call of ``SGD`` makes a
1-epoch call cost several epochs.

* A ``Dataset`` does it once: it keeps a private, read-only copy of X and y,
  checked when it is made, and builds the index and the fingerprint the first
  time a network needs them (one per dtype), for every later call and network.

* Plain ``(X, y)`` arrays are recognised when given again (``prepare``): the
  index built for them is kept while X lives, and reused after one pass that
  compares X and y with it exactly (X with the index of its nonzero inputs,
  y with a copy), so that arrays changed in place are never mistaken for the
  ones indexed: those are checked and indexed again.  ``SGD`` runs that pass
  on a core its first epoch leaves free, while it trains (``DeferredCheck``),
  and trains again if X had changed.

The fingerprint (``Prepared.fingerprint``) identifies a data set as the
network sees it: its shape, dtype, the index the kernels read and the labels,
hashed by 8 lanes of xxh64-style rounds in a numba loop (a few ms on MNIST,
where SHA-256 of X took 0.1 s), the lanes then by SHA-256.
"""

import collections
import hashlib
import os
import stat
import threading
import weakref
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeAlias

import numba
import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import config, kernels
from ._files import BadFile, StrPath, as_path, atomic_write, read_member
from ._validation import (check_bool, check_dtype, check_inputs, check_int, check_labels, read_only,
                          warn_input_scale, writeable_twin)
from .kernels.numba_cache import njit

FILE_FORMAT = "fastgd-dataset-1"
# Tags the fingerprints a checkpoint holds; checkpoints without a tag hold
# SHA-256 fingerprints of X and y (training.data_fingerprint), still accepted.
FINGERPRINT_ALGORITHM = "fastgd-lanes-1"
# Plain arrays whose preparation is kept at once (each entry is dropped as soon
# as its X is freed; MNIST's training set keeps 60 MB of index).
CACHE_ENTRIES = 4


class Dataset:
    """Inputs X and integer labels y, checked once and kept read-only, for any
    number of training calls, evaluations and networks.

    Parameters
    ----------
    X : array of shape (n, inputs)
        Finite numbers, one row per example (pixels scaled to [0, 1]).
    y : array of shape (n,)
        Integer class labels >= 0 (each must also be below the number of
        output neurons of the network it is used with).
    dtype : "float32" (default) or "float64"
        The dtype X is kept in.  A network of the other dtype converts it
        once (and keeps the conversion), as it would plain arrays.

    X and y are copied (so a caller changing their arrays changes nothing
    here) and exposed read-only.  Every fastgd function that takes a pair
    ``(X, y)`` takes a Dataset in its place; a Dataset also unpacks as one
    (``X, y = data``).  ``save`` and ``load`` keep it in an ``.npz`` file.
    """

    def __init__(self, X: ArrayLike, y: ArrayLike, *, dtype: DTypeLike = "float32") -> None:
        given_X, given_y = np.asarray(X), np.asarray(y)
        inputs = check_inputs(given_X, None, np.dtype(check_dtype(dtype)), name="X", warn=False)
        labels = check_labels(given_y, inputs.shape[0], None, name="y")
        # private copies: nobody else may hold a reference to what is trained on
        if np.may_share_memory(inputs, given_X):
            inputs = inputs.copy()
        if np.may_share_memory(labels, given_y):
            labels = labels.copy()
        self._setup(inputs, labels)

    @classmethod
    def _own(cls, X, y):
        """A Dataset of arrays the caller made for it and gives away (load_mnist's):
        checked, not copied."""
        data = cls.__new__(cls)
        X = check_inputs(X, None, X.dtype, name="X", warn=False)
        data._setup(X, check_labels(y, X.shape[0], None, name="y"))
        return data

    @classmethod
    def _of_pixels(cls, pixels, y, dtype):
        """A Dataset of ``pixels / 256`` in `dtype` (load_mnist's), from uint8
        pixels of shape (n, inputs).  What the index needs is counted on the
        pixels, a quarter or an eighth of X's bytes: an input is nonzero where its
        pixel is, the largest input is the largest pixel / 256 (exact: 1/256 is a
        power of two), and every input is finite."""
        dtype = np.dtype(dtype)
        X = np.multiply(pixels, dtype.type(1 / 256), dtype=dtype)  # a new array, in one pass
        y = check_labels(y, X.shape[0], None, name="y")
        dense, fraction = kernels.uses_dense_path(pixels)
        largest_input = int(pixels.max()) / 256 if pixels.size else 0.0
        data = cls.__new__(cls)
        data._setup(X, y, _Index(dense, fraction, largest_input, int(y.max()) if y.size else -1))
        return data

    def _setup(self, X, y, index=None):
        self.dtype = X.dtype
        self._prepared = Prepared(X, y, _Index.of(X, y) if index is None else index)
        self._converted = {}  # the data in the other dtype, made when a network asks
        self._lock = threading.Lock()
        self._public = (read_only(X), read_only(y))

    @property
    def X(self) -> NDArray[np.floating]:
        """The inputs, (n, inputs), read-only."""
        return self._public[0]

    @property
    def y(self) -> NDArray[np.int64]:
        """The labels, (n,) int64, read-only."""
        return self._public[1]

    def __len__(self) -> int:
        return self._prepared.X.shape[0]

    def __iter__(self) -> Iterator[NDArray]:
        return iter(self._public)

    @property
    def dense(self) -> bool:
        """Whether training on these data takes the dense input path (at least
        ``config.DENSE_FROM`` of the inputs nonzero, ``kernels.uses_dense_path``),
        not the sparse one, which skips the zeros."""
        return self._prepared.dense

    def __getitem__(self, key: slice) -> "Dataset":
        """``data[start:stop:step]``: a Dataset of those examples, indexed on
        its own.  Without a step it shares this one's arrays (neither can change
        them); with one, it copies them (the kernels read contiguous rows)."""
        if not isinstance(key, slice):
            raise TypeError(f"a Dataset is indexed by a slice of its examples (such as "
                            f"data[:1000]), got {type(key).__name__}")
        return Dataset._own(self._prepared.X[key], self._prepared.y[key])

    def build_index(self, threads: int | None = None) -> "Dataset":
        """Build now the index the training kernels read (each row's nonzero
        inputs, on the sparse input path), which the first training call would
        build otherwise; returns the Dataset.  For a caller with time to spare
        now, such as a thread that loads the data beside other work.  `threads`
        threads copy the inputs (default: numba's setting in this thread).  For
        more than one thread it also splits each row's inputs at the blocks of
        weight rows that a parallel update of a small mini-batch shares out
        (``config.ROW_BLOCKS_PER_THREAD`` per thread), which that training would
        otherwise split first."""
        threads = (numba.get_num_threads() if threads is None
                   else check_int(threads, "threads", minimum=1))
        self._prepared.build_examples(threads)
        if threads > 1 and not self._prepared.index.dense and len(self):
            self._prepared.row_splits(config.ROW_BLOCKS_PER_THREAD * threads)
        return self

    def __repr__(self) -> str:
        X = self._prepared.X
        return (f"Dataset({X.shape[0]} examples of {X.shape[1]} inputs, "
                f"dtype={self.dtype.name!r})")

    def __reduce__(self):  # pickled (to another process) as its arrays
        return _unpickle, (self._prepared.X, self._prepared.y)

    def fingerprint(self) -> str:
        """The data's fingerprint as a network of this dtype sees them (what a
        checkpoint keeps to recognise its data); computed once."""
        return self._prepared.fingerprint()

    def prepared(self, n_inputs, n_classes, dtype, name):
        """The ``Prepared`` data for a network with n_inputs inputs, n_classes
        outputs and this dtype; the errors (and input-scale warning) are those
        ``check_data`` gives plain arrays named ``name``."""
        X = self._prepared.X
        if X.shape[1] != n_inputs:
            check_inputs(X, n_inputs, X.dtype, name=f"{name}[0] (X)")  # raises
        if self._prepared.index.largest_label >= n_classes:
            check_labels(self._prepared.y, X.shape[0], n_classes, name=f"{name}[1] (y)")
        prepared = self._prepared
        if np.dtype(dtype) != self.dtype:
            with self._lock:
                if np.dtype(dtype) not in self._converted:
                    # checked again: 1e39 is finite in float64, inf in float32
                    converted = check_inputs(X, n_inputs, dtype, name=f"{name}[0] (X)",
                                             warn=False)
                    self._converted[np.dtype(dtype)] = Prepared(
                        converted, prepared.y, _Index.of(converted, prepared.y))
                prepared = self._converted[np.dtype(dtype)]
        warn_input_scale(f"{name}[0] (X)", prepared.index.largest_input)
        return prepared

    def save(self, path: StrPath, *, overwrite: bool = False) -> None:
        """Write X and y to an ``.npz`` file (no pickle inside), atomically;
        FileExistsError if ``path`` exists, unless ``overwrite``."""
        path = as_path(path)
        overwrite = check_bool(overwrite, "overwrite")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory, expected a file name")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        X, y = self._prepared.X, self._prepared.y
        atomic_write(path, lambda f: np.savez(f, format=np.array(FILE_FORMAT), X=X, y=y),
                     overwrite=overwrite)

    @classmethod
    def load(cls, path: StrPath) -> "Dataset":
        """Read a Dataset written by ``save``.  The file is untrusted input: its
        members and their headers (dtype, shape, size) are checked before any
        data are read, and the data as a new Dataset's are; every problem is
        one ValueError naming the file."""
        path = as_path(path)
        X, y = _read_file(path)
        try:
            return cls._own(X, y)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{os.fspath(path)} is not a valid fastgd dataset file "
                             f"({e})") from None


# What every function that takes data takes: a pair (X, y) of arrays (inputs, one
# per row, and integer labels), or a Dataset.
Data: TypeAlias = tuple[NDArray, NDArray] | Dataset


def _unpickle(X, y):
    return Dataset._own(X, y)  # arrays just unpickled: nobody else holds them


def data_pair(X, y):
    """What functions taking ``X, y`` pass on to ``check_data``: a Dataset given
    as X (y omitted), or the pair (X, y)."""
    if isinstance(X, Dataset):
        if y is not None:
            raise TypeError("give a Dataset alone, without y: it holds its labels")
        return X
    if y is None:
        raise TypeError("y (the labels of X) is missing; give X and y, or a fastgd.Dataset")
    return X, y


class _Index:
    """What a data set's content decides, built once: the input path (dense or
    sparse), its largest input and label, and, on first use, the kernels'
    ``Examples``, the fingerprint and the row splits of the parallel update."""

    def __init__(self, dense, nonzero_fraction, largest_input, largest_label, examples=None):
        self.dense, self.nonzero_fraction = dense, nonzero_fraction
        self.largest_input, self.largest_label = largest_input, largest_label
        self.examples = examples
        self.fingerprint = None
        self.splits = {}
        self.lock = threading.Lock()

    @classmethod
    def of(cls, X, y, examples=None):
        dense, fraction = kernels.uses_dense_path(X)
        return cls(dense, fraction, float(X.max()) if X.size else 0.0,
                   int(y.max()) if y.size else -1, examples)


class Prepared:
    """Data checked for a network: ``X`` (C-contiguous, in its dtype) and ``y``
    (int64), with what ``_Index`` keeps for them."""

    __slots__ = ("X", "y", "index", "pending")

    def __init__(self, X, y, index, pending=None):
        self.X, self.y, self.index = X, y, index
        # a DeferredCheck when prepare(defer=True) reused the index of a plain X
        # without comparing X with it yet
        self.pending = pending

    @property
    def dense(self):
        """Whether the kernels take the dense input path (``uses_dense_path``)."""
        return self.index.dense

    @property
    def nonzero_fraction(self):
        return self.index.nonzero_fraction

    @property
    def examples(self):
        """The kernels' ``Examples`` (``input_columns`` and labels), built once, by
        as many threads as numba's setting in the calling thread."""
        return self.build_examples(numba.get_num_threads())

    def build_examples(self, threads):
        """``examples``, built by `threads` threads if not built yet."""
        index = self.index
        with index.lock:
            if index.examples is None:
                index.examples = kernels.Examples(
                    *kernels.input_columns(self.X, index.dense, threads), self.y)
            return index.examples

    def row_splits(self, n_blocks):
        """``kernels.row_splits`` for n_blocks blocks of layer 0's weight rows,
        balanced by their nonzero inputs (the sparse path), built once."""
        examples = self.examples
        index = self.index
        with index.lock:
            if n_blocks not in index.splits:
                bounds = kernels.balanced_bounds(examples.indices, self.X.shape[1], n_blocks)
                index.splits[n_blocks] = kernels.row_splits(examples.indptr,
                                                             examples.indices, bounds)
            return index.splits[n_blocks]

    def fingerprint(self):
        """The data as the network sees them (shape, dtype, the kernels' index
        and labels), hashed: ``FINGERPRINT_ALGORITHM``; computed once."""
        examples = self.examples
        index = self.index
        with index.lock:
            if index.fingerprint is None:
                digest = hashlib.sha256(FINGERPRINT_ALGORITHM.encode())
                digest.update(repr((self.X.shape, self.X.dtype.str)).encode())
                for part in (examples.indptr, examples.indices, examples.values, self.y):
                    digest.update(_summary(part))
                index.fingerprint = digest.hexdigest()
            return index.fingerprint


# -- plain arrays given again --------------------------------------------------------

class _Entry:
    """What was prepared for one plain X (held weakly) and y (copied)."""

    def __init__(self, X, y, labels, index):
        self.X = weakref.ref(X, _forget_entry)
        self.shape, self.dtype = X.shape, X.dtype
        self.y = y
        self.labels, self.index = labels, index


# id(X) -> _Entry, most recently used last
_entries: collections.OrderedDict[int, _Entry] = collections.OrderedDict()
# reentrant: an X freed by the garbage collector while a thread holds the lock
# calls _forget_entry in that thread
_entries_lock = threading.RLock()


def _forget_entry(ref):
    with _entries_lock:
        for key, entry in list(_entries.items()):
            if entry.X is ref:
                del _entries[key]


def prepare(data, n_inputs, n_classes, dtype, name, threads=None, defer=False):
    """``data`` (a Dataset, or a pair (X, y)) checked as ``check_data`` does and
    ready for the kernels: a ``Prepared``.  Plain arrays are indexed, or
    compared with their index, by `threads` threads (default: numba's setting
    in this thread).

    A plain X that is a C-contiguous array of the network's dtype, on the
    sparse input path, is remembered (its index, while X lives): given again,
    with the same contents, it is not checked or indexed again.  The contents
    are compared exactly (``same_inputs``, one pass over X; labels by value),
    never trusted.  With defer, that pass is left to the caller: the Prepared
    then holds it as ``pending`` (a ``DeferredCheck``), which the caller must
    run before it keeps anything computed from these data.  Dense data are
    prepared on every call (no index to build, but checked each time): a
    Dataset keeps them."""
    if isinstance(data, Dataset):
        return data.prepared(n_inputs, n_classes, dtype, name)
    threads = numba.get_num_threads() if threads is None else threads
    dtype = np.dtype(dtype)
    X = data[0] if isinstance(data, (tuple, list)) and len(data) == 2 else None
    if isinstance(X, np.ndarray):
        X = writeable_twin(X)
        data = (X, data[1])
    cacheable = (isinstance(X, np.ndarray) and type(X) is np.ndarray and X.dtype == dtype
                 and X.ndim == 2 and X.flags.c_contiguous and X.flags.aligned)
    if cacheable:
        entry = _lookup(X, data[1], threads, compare=not defer)
        if entry is not None:
            index = entry.index
            if X.shape[1] != n_inputs or index.largest_label >= n_classes:
                check_data(data, n_inputs, n_classes, dtype, name)  # raises
            warn_input_scale(f"{name}[0] (X)", index.largest_input)
            return Prepared(X, entry.labels, index,
                            DeferredCheck(X, index.examples) if defer else None)
    X, y = check_data(data, n_inputs, n_classes, dtype, name)
    index = _Index.of(X, y)
    if not cacheable or index.dense:
        # the dense path reads X itself, so a later call would have to compare X
        # with a copy of it: twice the memory, kept between calls; not worth it
        return Prepared(X, y, index)
    labels = y.copy() if np.may_share_memory(y, data[1]) else y
    index.examples = kernels.Examples(*kernels.nonzero_columns(X, threads),
                                      labels)
    with _entries_lock:
        _entries[id(X)] = _Entry(X, np.array(data[1], copy=True), labels, index)
        _entries.move_to_end(id(X))
        while len(_entries) > CACHE_ENTRIES:
            _entries.popitem(last=False)
    return Prepared(X, labels, index)


def _lookup(X, y, threads, compare=True):
    """The entry prepared for this X and y, if they still hold what it was
    prepared from (X compared only with compare); else None."""
    with _entries_lock:
        entry = _entries.get(id(X))
        if entry is None or entry.X() is not X:
            return None
        _entries.move_to_end(id(X))
    y = np.asarray(y)
    if (X.shape != entry.shape or y.dtype != entry.y.dtype or y.shape != entry.y.shape
            or not np.array_equal(y, entry.y)):
        return None
    return entry if not compare or same_inputs(X, entry.index.examples, threads) else None


def _forget_x(X):
    """Drop what was prepared for X (its contents changed)."""
    with _entries_lock:
        entry = _entries.get(id(X))
        if entry is not None and entry.X() is X:
            del _entries[id(X)]


class DeferredCheck:
    """``same_inputs`` for a plain X given again, whose index ``prepare(...,
    defer=True)`` returned without comparing: the caller runs it now or in a
    thread of its own while it trains on that index (``start``: on a core
    that training leaves free, the comparison then costs no time), and asks
    ``same()`` before it keeps anything it computed; a False answer means X
    changed in place since it was indexed: the cache has forgotten it, and
    the caller must prepare it again and throw away what it computed."""

    def __init__(self, X, examples):
        self.X, self.examples = X, examples
        self.thread, self.answer = None, None
        # load the comparison's compiled code here, in the caller's thread: a
        # thread of ours must not wait for numba's lock, which a background
        # compile can hold for many seconds
        same_inputs(X[:0], examples)

    def start(self):
        """Compare, on one thread of its own."""
        self.thread = threading.Thread(target=self._compare, args=(1,), daemon=True,
                                       name="fastgd-compare-inputs")
        self.thread.start()

    def _compare(self, threads):
        try:
            self.answer = same_inputs(self.X, self.examples, threads)
        except Exception:  # prepared again by the caller, which then reports it
            self.answer = False

    def same(self, threads=1):
        """Whether X still holds what was indexed (compared now on `threads`
        threads, unless ``start`` did it already)."""
        if self.thread is None:
            self._compare(threads)
        else:
            self.thread.join()
        if not self.answer:
            _forget_x(self.X)
        return bool(self.answer)


def same_inputs(X, examples, threads=1):
    """True if X holds, bit for bit, the inputs the CSR index ``examples`` was
    built from.  With threads > 1, up to that many threads compare blocks of
    rows at once (``config.INDEX_ENTRIES_PER_THREAD`` entries of X each at
    least): a pass over all of X, at the speed of memory, which one core
    does not reach alone."""
    words = np.uint32 if X.dtype.itemsize == 4 else np.uint64
    bits, values = X.view(words), examples.values.view(words)
    n = X.shape[0]
    parts = max(1, min(int(threads), n, X.size // config.INDEX_ENTRIES_PER_THREAD))
    bounds = [n * b // parts for b in range(parts + 1)]

    def compare(b):
        x0, x1 = bounds[b], bounds[b + 1]
        return bool(kernels.call(_same_rows, bits[x0:x1], examples.indptr[x0:x1 + 1],
                                 examples.indices, values))

    if parts == 1:
        return compare(0)
    with ThreadPoolExecutor(parts - 1, thread_name_prefix="fastgd-compare") as pool:
        others = [pool.submit(compare, b) for b in range(1, parts)]
        first = compare(0)
        return all([first] + [other.result() for other in others])


@njit(cache=True, nogil=True)
def _same_rows(bits, indptr, indices, values):
    """Whether each row x of bits (inputs as bit patterns) is nonzero exactly at
    indices[indptr[x]:indptr[x + 1]], where it holds values[...] (a CSR index
    from ``kernels.nonzero_columns``).  Counting a row's nonzero patterns and
    gathering the indexed ones is enough: the indices of a row are distinct.
    A -0.0 counts as nonzero here (the index left it out): such data are
    indexed again on every call, which is slow, never wrong."""
    n, n_in = bits.shape
    for x in range(n):
        row = bits[x]
        count = np.uint64(0)
        for k in range(n_in):
            count += np.uint64(row[k] != 0)
        differ = False
        for p in range(indptr[x], indptr[x + 1]):
            differ |= row[indices[p]] != values[p]
        if differ or count != indptr[x + 1] - indptr[x]:
            return False
    return True


# -- the fingerprint ---------------------------------------------------------------

# xxh64's primes: multiplying by them (odd) and rotating mixes every bit of a
# word into its lane.
_PRIME_1 = np.uint64(0x9E3779B185EBCA87)
_PRIME_2 = np.uint64(0xC2B2AE3D27D4EB4F)


@njit(cache=True, nogil=True)
def _lanes(words):
    """Eight lanes of xxh64 rounds, lane l taking words l, l + 8, ...: each
    round is a bijection of the lane's state for a given word, so a change to
    any one word always changes its lane.  Independent lanes let the rounds
    overlap (a few ms for MNIST's index, where one chain waits on each multiply)."""
    lanes = np.empty(8, np.uint64)
    for lane in range(8):
        lanes[lane] = np.uint64(lane + 1) * _PRIME_1
    whole = words.shape[0] // 8 * 8
    for i in range(0, whole, 8):
        for lane in range(8):
            a = lanes[lane] + words[i + lane] * _PRIME_2
            lanes[lane] = ((a << np.uint64(31)) | (a >> np.uint64(33))) * _PRIME_1
    for i in range(whole, words.shape[0]):
        a = lanes[0] + words[i] * _PRIME_2
        lanes[0] = ((a << np.uint64(31)) | (a >> np.uint64(33))) * _PRIME_1
    return lanes


def _summary(array):
    """Bytes that stand for a contiguous array's contents: its length, the lanes
    of its whole 8-byte words and its last few bytes."""
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    whole = raw.size // 8 * 8
    lanes = kernels.call(_lanes, raw[:whole].view(np.uint64))
    return np.uint64(raw.size).tobytes() + lanes.tobytes() + raw[whole:].tobytes()


# -- files -------------------------------------------------------------------------

def _read_file(path):
    """(X, y) of a Dataset file, each member's header checked before its data
    are read (the network file's reader, ``network.read_member``)."""
    what = "fastgd dataset file"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path} is not a regular file (expected a {what}, an .npz archive)")
    try:
        with open(path, "rb") as raw:
            if raw.read(4) != b"PK\x03\x04":
                raise BadFile("not an .npz archive")
            raw.seek(0)
            # data may be compressed, but not beyond reason (a zip bomb)
            most = max(64 * os.fstat(raw.fileno()).st_size, 1 << 20)
            with zipfile.ZipFile(raw) as archive:
                members = {}
                for info in archive.infolist():
                    if info.filename not in ("format.npy", "X.npy", "y.npy"):
                        raise BadFile(f"unexpected member {info.filename[:40]!r}")
                    members[info.filename[:-4]] = info
                for required in ("format", "X", "y"):
                    if required not in members:
                        raise BadFile(f"no {required!r} entry")
                text = read_member(archive, members["format"], "U", None, 256)
                if str(text) != FILE_FORMAT:
                    raise BadFile(f"format {str(text)[:40]!r}, expected {FILE_FORMAT!r}")
                X = read_member(archive, members["X"], "f", None, most)
                if X.ndim != 2:
                    raise BadFile(f"X has shape {X.shape}, expected (examples, inputs)")
                y = read_member(archive, members["y"], "i", None, 8 * X.shape[0])
                if y.shape != (X.shape[0],):
                    raise BadFile(f"y has shape {y.shape}, expected ({X.shape[0]},): one "
                                   "label per row of X")
        return X, y
    except BadFile as e:
        raise ValueError(f"{path} is not a {what} ({e})") from None
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, KeyError, OverflowError,
            MemoryError, TypeError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise ValueError(f"{path} is not a readable {what} (damaged or truncated?): "
                         f"{e}") from None


def check_data(data, n_inputs, n_classes, dtype, name) -> tuple[np.ndarray, np.ndarray]:
    """A data set given as a pair (X, y), or a ``fastgd.Dataset``; returns
    validated arrays (a Dataset's own, checked when it was made: only what
    depends on the network is checked here)."""
    if isinstance(data, Dataset):
        prepared = data.prepared(n_inputs, n_classes, dtype, name)
        return prepared.X, prepared.y
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (X, y) of inputs and integer labels, "
                        f"or a fastgd.Dataset, got {type(data).__name__}")
    X = check_inputs(data[0], n_inputs, dtype, name=f"{name}[0] (X)")
    y = check_labels(data[1], X.shape[0], n_classes, name=f"{name}[1] (y)")
    return X, y
