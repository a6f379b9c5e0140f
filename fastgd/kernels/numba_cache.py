"""numba's on-disk cache for fastgd's own kernels, with a checksum on every file.

numba keeps a function's compiled code in pickles (an index ``.nbi`` and one
``.nbc`` per signature) that carry no checksum: a damaged file either fails
to unpickle or, worse, unpickles into machine code that numba then runs (a
flipped bit there can kill the process with an illegal instruction).  The
cache installed here writes each file's payload after a magic line and the
SHA-256 of the payload, and unpickles nothing whose checksum does not match:
a damaged, truncated or foreign entry is a miss, deleted and compiled again.

It is installed on fastgd's dispatchers only (``njit`` for the package's
functions, ``checksum_module`` for a generated module's), never on numba as a
whole: the user's other numba code keeps numba's own cache.  Where numba's
internals are not what this module expects (they are private), the
dispatchers keep numba's default cache.

The index starts with numba's version followed by a mark of this format, so
that numba's own cache, finding another version there, ignores the index (and
rewrites it) instead of reading checksummed data as plain pickles; and this
cache ignores numba's plain indexes the same way.

Importing this module also draws numba's function ids at random
(``random_function_ids``): numba names each compiled function's machine code
and its environment after its module, name, argument types and an id from a
counter that starts at 1 in every process, so that code compiled by one process
and loaded from the cache by another can carry the very names of what the second
compiles itself (numba issue 10486), and one of the two then runs with the
other's symbols.  Several processes share fastgd's cache (``pytest -n``, MPI
ranks, a sweep's workers), so that is an event, not a curiosity.
"""

import hashlib
import os
import pickle
import secrets

import numba

try:
    from numba.core.bytecode import FunctionIdentity
    from numba.core.caching import FunctionCache, IndexDataCacheFile
    from numba.core.dispatcher import Dispatcher
except ImportError:  # numba's internals moved: numba's default cache stays
    FunctionCache = IndexDataCacheFile = Dispatcher = None  # type: ignore[misc, assignment]
    FunctionIdentity = None

# The line before each payload's checksum: says what wrote the file.
MAGIC = b"fastgd checksummed numba cache 1\n"
_DIGEST_SIZE = hashlib.sha256().digest_size
# What the index's version field holds: numba's, marked as this format.
_VERSION = f"{numba.__version__} fastgd-sha256-1"
# The members of numba's classes this module uses or overrides: if one is
# missing, this numba is not the one the module was written for.
_FILE_MEMBERS = ("_load_index", "_save_index", "_load_data", "_save_data", "_data_path",
                 "_dump", "_open_for_write", "load", "save")


class RandomIds:
    """An endless iterator of random 64-bit ids, fresh from the operating system
    on every draw (so that forked processes draw different ones too)."""

    def __iter__(self):
        return self

    def __next__(self):
        return secrets.randbits(64)


def random_function_ids():
    """Make numba draw the id in each compiled function's name at random instead
    of counting from 1 in each process: names then differ between processes
    that share a cache, as they do within one (two draws collide with
    probability 2**-64).  The ids are in the names alone; the code is the same.
    Returns whether numba has the counter this replaces."""
    if FunctionIdentity is None or not hasattr(FunctionIdentity, "_unique_ids"):
        return False
    if not isinstance(FunctionIdentity._unique_ids, RandomIds):
        FunctionIdentity._unique_ids = RandomIds()
    return True


RANDOM_FUNCTION_IDS = random_function_ids()


def _sealed(payload):
    """payload after MAGIC and its SHA-256."""
    return MAGIC + hashlib.sha256(payload).digest() + payload


def _unsealed(blob):
    """The payload of a _sealed blob, or None if blob is not one (another
    format, truncated, or any byte changed)."""
    head = len(MAGIC) + _DIGEST_SIZE
    if len(blob) < head or not blob.startswith(MAGIC):
        return None
    payload = blob[head:]
    if hashlib.sha256(payload).digest() != blob[len(MAGIC):head]:
        return None
    return payload


def _discard(path):
    """Remove a damaged cache file (another process may have done it first)."""
    try:
        os.remove(path)
    except OSError:
        pass


if IndexDataCacheFile is not None:
    class ChecksummedCacheFile(IndexDataCacheFile):
        """numba's index and data files, each payload checked before it is
        unpickled; a file that fails the check, or whose checked payload still
        does not unpickle, is removed and counts as a miss."""

        def __init__(self, cache_path, filename_base, source_stamp):
            super().__init__(cache_path, filename_base, source_stamp)
            self._version = _VERSION

        def _load_index(self):
            try:
                with open(self._index_path, "rb") as f:
                    blob = f.read()
            except FileNotFoundError:
                return {}
            version = pickle.dumps(self._version, protocol=-1)
            if not blob.startswith(version):
                # another version's or numba's own index (or a damaged one):
                # never unpickled; the next save writes this one's over it
                return {}
            payload = _unsealed(blob[len(version):])
            try:
                if payload is None:
                    raise ValueError("checksum")
                stamp, overloads = pickle.loads(payload)
            except Exception:  # damaged: start the index afresh
                _discard(self._index_path)
                return {}
            return overloads if stamp == self._source_stamp else {}

        def _save_index(self, overloads):
            payload = self._dump((self._source_stamp, overloads))
            with self._open_for_write(self._index_path) as f:
                pickle.dump(self._version, f, protocol=-1)
                f.write(_sealed(payload))

        def _load_data(self, name):
            path = self._data_path(name)
            with open(path, "rb") as f:
                blob = f.read()
            payload = _unsealed(blob)
            try:
                if payload is None:
                    raise ValueError("checksum")
                return pickle.loads(payload)
            except Exception:  # damaged: compiled again, and saved under the same name
                _discard(path)
                return None

        def _save_data(self, name, data):
            with self._open_for_write(self._data_path(name)) as f:
                f.write(_sealed(self._dump(data)))

    class ChecksummedFunctionCache(FunctionCache):
        """numba's FunctionCache with its files in ChecksummedCacheFile."""

        def __init__(self, py_func):
            super().__init__(py_func)
            self._cache_file = ChecksummedCacheFile(
                self._cache_path, self._impl.filename_base,
                self._impl.locator.get_source_stamp())
else:
    ChecksummedFunctionCache = None  # type: ignore[misc, assignment]


def _compatible():
    """Whether this numba's cache classes have the members this module uses."""
    if ChecksummedFunctionCache is None:
        return False
    return (all(callable(getattr(IndexDataCacheFile, m, None)) for m in _FILE_MEMBERS)
            and callable(getattr(Dispatcher, "enable_caching", None)))


COMPATIBLE = _compatible()


def checksummed(dispatcher):
    """dispatcher, its numba disk cache (if it has numba's default one, and
    this numba is COMPATIBLE) replaced by ChecksummedFunctionCache.  Call it
    before the dispatcher's first compile."""
    if COMPATIBLE and type(getattr(dispatcher, "_cache", None)) is FunctionCache:
        try:
            cache = ChecksummedFunctionCache(dispatcher.py_func)
        except Exception:  # numba's internals differ after all: keep its cache
            return dispatcher
        dispatcher._cache = cache
    return dispatcher


def njit(**options):
    """numba.njit(**options), with the checksummed disk cache where
    options ask for caching (``cache=True``)."""
    decorate = numba.njit(**options)

    def decorator(function):
        return checksummed(decorate(function))

    return decorator


def checksum_module(module):
    """Install the checksummed cache on every dispatcher defined in module (a
    generated module of kernels, before any of them has compiled), the drivers
    behind its ``source.CallByPointer`` kernels too."""
    if not COMPATIBLE:
        return
    for value in vars(module).values():
        value = getattr(value, "dispatcher", value)
        if (isinstance(value, Dispatcher)
                and getattr(value.py_func, "__module__", None) == module.__name__):
            checksummed(value)
