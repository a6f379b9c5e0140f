"""Where the generated modules are made, found and run: ``kernels`` and
``generic_kernels`` (a network's module, generated, written to the cache and
imported once per process), ``ready`` and ``on_disk`` (whether a kernel would
compile on its first call), ``dispatcher`` (the numba dispatcher behind a
kernel), ``compiling`` (one process at a time compiles a
module's kernels), ``usable_kernels``, and ``call`` (a kernel called with
numba's SLP vectoriser on, and under the lock a threading layer needs).
"""

import glob
import importlib.util
import os
import sys
import threading
from contextlib import contextmanager, nullcontext
from types import ModuleType

try:
    import fcntl
except ImportError:  # Windows: no lock between processes, each compiles for itself
    fcntl = None  # type: ignore[assignment]

import numba
import numpy as np
from numba import types as nbtypes

from .. import config
from . import cache, numba_cache
from .buffers import padded
from .generator import COSTS, panel_width, settings
from .source import module_source

# Hash of the sources the generated modules depend on, part of every module's
# name (``cache.module_name``): read at import, as the drivers' source is, so that it describes
# the code this process runs even if the files change later.
_SOURCES = cache.source_hash()
_modules: dict[tuple, ModuleType] = {}
_modules_lock = threading.Lock()


def _module_for(widths, panel, cost="quadratic", dense=False, generic=False):
    """The generated module (a Python module object) for these layer widths, cost
    and input path.

    Written to ``cache.module_folder()`` under a name that carries the hash of
    fastgd's sources and of its own source (``cache.module_name``;
    a file there holding anything else is written again first), and imported
    from there, so numba caches its compiled code beside it.  The first call in
    a process also removes the modules of other sources from the folder
    (``cache.remove_stale_once``).  The settings the generator reads from
    fastgd.config (``generator.SETTINGS``) are part of the key: a change at run
    time gives the module generated with the new values.
    """
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    shape = tuple(int(w) for w in widths), panel, cost, bool(dense), bool(generic)
    key = shape + (settings(),)
    with _modules_lock:
        if key in _modules:
            return _modules[key]
        source = module_source(*shape)
        folder = cache.module_folder()
        cache.remove_stale_once(folder)
        name = cache.module_name(() if generic else shape[0], shape[3], _SOURCES, source)
        path = cache.write_module(folder, name, source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        # before any kernel compiles: its disk cache is read only past a checksum
        numba_cache.checksum_module(module)
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
_layer: list[str] = []  # numba's threading layer, once chosen: it never changes after


def _one_at_a_time(kernel):
    """The lock a parallel kernel must hold under a layer that is not thread-safe
    (also before the first parallel kernel has run, when the layer is unknown)."""
    if not getattr(kernel, "targetoptions", {}).get("parallel"):
        return nullcontext()
    if not _layer:
        try:
            _layer.append(numba.threading_layer())
        except ValueError:  # not chosen yet: the first parallel call chooses it
            return _parallel_lock
    return nullcontext() if _layer[0] in THREAD_SAFE_LAYERS else _parallel_lock


def call(kernel, *args):
    """kernel(*args), with the SLP vectoriser on in case it compiles now, and one
    parallel kernel at a time where the threading layer needs it."""
    with _slp_on():
        if not getattr(kernel, "targetoptions", {}).get("parallel"):
            return kernel(*args)  # no lock to look up: a call on one example feels it
        with _one_at_a_time(kernel):
            return kernel(*args)


def dispatcher(kernel):
    """The numba dispatcher that compiles and runs ``kernel``: itself, or for a
    serial driver (``train_serial``, ``gradient_sum_serial``: plain functions)
    the drive_descend it calls."""
    return getattr(kernel, "dispatcher", kernel)


def on_disk(kernel, dtype=None):
    """True if numba's disk cache holds compiled code for this kernel (for
    networks of ``dtype``, if given: ``for_dtype``), so that a first call loads
    it instead of compiling; False if not; None if unknown."""
    kernel = dispatcher(kernel)
    try:
        folder = kernel._cache.cache_path
        name = kernel.py_func.__qualname__
        # numba names the files after the source file's name, not the module's
        source = os.path.splitext(os.path.basename(kernel.py_func.__code__.co_filename))[0]
    except AttributeError:  # numba internals changed: do not guess
        return None
    if not glob.glob(os.path.join(folder, f"{source}.{name}-*.nbi")):
        return False
    if dtype is None:
        return True
    try:  # the index: each compiled signature (an index of another source counts as empty)
        signatures = [key[0] for key in kernel._cache._cache_file._load_index()]
    except Exception:  # numba internals changed, or a file it cannot read: do not guess
        return None
    nb_dtype = numba.from_dtype(np.dtype(dtype))
    return any(for_dtype(signature, nb_dtype) for signature in signatures)


def for_dtype(signature, nb_dtype):
    """Whether a kernel's signature (numba types) is the one networks of nb_dtype
    use: a float32 network's kernels take float32 arrays (its weights), beside
    float64 ones (sums of costs); a float64 network's take no float32 array."""
    floats = {t for t in _array_dtypes(signature) if isinstance(t, nbtypes.Float)}
    return nb_dtype in floats and (nb_dtype == nbtypes.float32) == (nbtypes.float32 in floats)


def _array_dtypes(types):
    """The dtypes of the arrays among types, inside tuples (the kernels' named
    tuples of arrays) too."""
    for t in types:
        if isinstance(t, nbtypes.Array):
            yield t.dtype
        elif isinstance(t, nbtypes.BaseTuple):
            yield from _array_dtypes(t.types)


def unrolled_outputs(sizes):
    """The outputs the specialised kernels of a network of these sizes write out
    one by one (the padded widths of the layers after the input): their code,
    and the time and memory numba and LLVM take to compile it, grow with it."""
    return sum(padded(int(w)) for w in list(sizes)[1:])


def specialisable(sizes):
    """Whether a network of these sizes gets kernels specialised to its widths:
    not past config.SPECIALIZE_MAX_OUTPUTS outputs written out, whose compile
    would take minutes to hours and gigabytes."""
    return unrolled_outputs(sizes) <= config.SPECIALIZE_MAX_OUTPUTS


def kernels(sizes, dtype, cost="quadratic", dense=False):
    """The generated module of kernels (train_serial, train_parallel,
    gradient_sum_*, and for the sparse path feedforward_* and gradients_*) for a
    network of these sizes and dtype, trained on `cost` (the feedforward kernels
    do not depend on it), reading its inputs from ``input_columns(X, dense)``.
    A network too wide to specialise (``specialisable``) gets the generic
    module (``generic_kernels``: the same names and bits)."""
    if not specialisable(sizes):
        return generic_kernels(sizes, cost, dense)
    return _module_for(list(sizes)[1:], panel_width(np.dtype(dtype).itemsize), cost, dense)


def generic_kernels(sizes, cost="quadratic", dense=False):
    """The generic module of kernels (the same names as ``kernels``'s), for a
    network of any sizes: slower loops, compiled in a fraction of the time and
    shared by every shape, with bit-identical results."""
    return _module_for([], None, cost, dense, generic=True)


_ready: set[tuple] = set()  # (kernel, dtype) known to be compiled or on disk: stays so


def ready(module, names, dtype):
    """True if each kernel of module named in names is compiled for dtype in this
    process, or numba's disk cache has code for it (a call then loads it instead
    of compiling)."""
    nb_dtype = numba.from_dtype(np.dtype(dtype))
    for name in names:
        kernel = dispatcher(getattr(module, name))
        if not hasattr(kernel, "signatures"):  # not a numba kernel (a test's stand-in)
            continue
        if (kernel, nb_dtype) in _ready:
            continue
        in_process = any(for_dtype(signature, nb_dtype) for signature in kernel.signatures)
        if not in_process and not on_disk(kernel, dtype):
            return False
        _ready.add((kernel, nb_dtype))
    return True


def usable_kernels(sizes, dtype, cost, names, dense=False):
    """The module to run the kernels `names` with now: the specialised one
    (``kernels``) if they are compiled or on disk, else, unless
    config.SPECIALIZE is "now", the generic one (the same results, compiled
    once for every shape), so that a call does not wait for a compile."""
    module = kernels(sizes, dtype, cost, dense)
    if config.SPECIALIZE == "now" or ready(module, names, dtype):
        return module
    return generic_kernels(sizes, cost, dense)


_held: dict[str, int] = {}  # lock files this process holds, with how deep
_held_lock = threading.Lock()


@contextmanager
def compiling(module, dtype, waiting=None):
    """Hold, while the block runs, the lock on compiling `module`'s kernels for
    `dtype` that every fastgd process using this cache folder takes (a file
    lock beside the module): of several processes that meet the same kernels
    cold at once (MPI ranks, Dask workers, test workers), one compiles them and
    the others then load them from numba's disk cache, instead of each
    compiling for minutes side by side.  waiting() is called if another
    process holds the lock, before this one waits for it.
    Re-entrant in a process (its threads share numba's own compiler lock);
    where file locks are missing (Windows) or the folder is read-only, no lock.
    """
    path = os.path.join(os.path.dirname(module.__file__),
                        f"{module.__name__}.{np.dtype(dtype).name}.lock")
    with _held_lock:
        depth = _held.get(path, 0)
        _held[path] = depth + 1
    handle = None
    try:
        if depth == 0 and fcntl is not None:
            try:
                handle = open(path, "a")
            except OSError:
                handle = None
            if handle is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # held by another process: say so, then wait for it
                    if waiting is not None:
                        waiting()
                    fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        if handle is not None:
            handle.close()  # releases the lock
        with _held_lock:
            _held[path] -= 1
            if not _held[path]:
                del _held[path]
