"""numba's disk cache for fastgd's kernels (fastgd.kernels.numba_cache): a
damaged cache file is a miss, removed and compiled again, never executed; the
checksummed cache is on fastgd's dispatchers only.

The tiny kernels run in processes of their own, as a damaged cache would meet
the next run of fastgd."""

import glob
import os
import pickle
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastgd import kernels
from fastgd.kernels import maths, numba_cache

# How each tiny kernel's cache files are damaged between two runs.
DAMAGES = ("intact", "data: flipped bytes", "data: truncated", "data: empty",
           "data: numba's plain pickle", "index: flipped bytes", "index: truncated",
           "index: garbage")

# One kernel per damage (each has cache files of its own), in a program that
# loads fastgd.kernels.numba_cache from its file (it imports numba only), so that
# a run does not import all of fastgd; it prints each kernel's result, cache hits
# and misses.
TINY_KERNELS = '''
import importlib.util, os
spec = importlib.util.spec_from_file_location("numba_cache", os.environ["NUMBA_CACHE_PY"])
numba_cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(numba_cache)
''' + "".join(f'''
@numba_cache.njit(cache=True)
def kernel{i}(x):
    return 3 * x + {i}

print(kernel{i}(14), sum(kernel{i}.stats.cache_hits.values()),
      sum(kernel{i}.stats.cache_misses.values()))
''' for i in range(len(DAMAGES)))

pytestmark = pytest.mark.skipif(not numba_cache.COMPATIBLE,
                                reason="this numba's cache internals are not the ones "
                                       "fastgd's checksummed cache extends")


def flip(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def damage(path, how):
    size = os.path.getsize(path)
    if how.endswith("flipped bytes"):
        for at in {len(numba_cache.MAGIC) + 40, size // 2, size - 3}:
            flip(path, at)
    elif how.endswith("truncated"):
        os.truncate(path, size // 2)
    elif how.endswith("empty"):
        os.truncate(path, 0)
    elif how.endswith("plain pickle"):  # what numba's own cache writes: never unpickled
        with open(path, "wb") as f:
            pickle.dump(("not", "compiled", "code"), f)
    else:
        with open(path, "wb") as f:
            f.write(os.urandom(size))


def test_a_damaged_cache_entry_is_compiled_again_never_run(tmp_path):
    (tmp_path / "tiny_kernels.py").write_text(TINY_KERNELS)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               NUMBA_CACHE_PY=numba_cache.__file__, PYTHONPATH=str(tmp_path))

    def run():
        done = subprocess.run([sys.executable, "-c", "import tiny_kernels"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr  # not killed, no traceback
        return [tuple(int(v) for v in line.split()) for line in done.stdout.splitlines()]

    def files(i, ext):
        return glob.glob(str(tmp_path / "numba" / "**" / f"*.kernel{i}-*.{ext}"),
                         recursive=True)

    right = [(42 + i,) for i in range(len(DAMAGES))]
    assert run() == [r + (0, 1) for r in right]  # compiled and saved
    for i, how in enumerate(DAMAGES):
        [data], [index] = files(i, "nbc"), files(i, "nbi")
        with open(data, "rb") as f:
            assert f.read().startswith(numba_cache.MAGIC)
        if how != "intact":
            damage(data if how.startswith("data") else index, how)
    # a damaged entry is a miss: compiled again, with the right answer
    assert run() == [r + ((1, 0) if how == "intact" else (0, 1))
                     for r, how in zip(right, DAMAGES)]
    assert run() == [r + (1, 0) for r in right]  # and saved again, intact
    assert all(len(files(i, "nbc")) == 1 for i in range(len(DAMAGES)))


def test_fastgds_dispatchers_have_the_checksummed_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGD_CACHE_DIR", str(tmp_path / "fastgd"))
    monkeypatch.setattr(kernels.loader, "_modules", {})
    module = kernels.generic_kernels([4, 3, 2])
    for dispatcher in (maths.sigmoid, maths.apply_nabla, kernels.dispatcher(module.train_serial),
                       kernels.dispatcher(module.train_parallel), module.forward_pass,
                       module.drive_descend):
        assert type(dispatcher._cache) is numba_cache.ChecksummedFunctionCache


def test_other_numba_code_keeps_numbas_own_cache():
    def twice(x):
        return 2 * x

    assert type(numba.njit(cache=True)(twice)._cache) is numba.core.caching.FunctionCache


def test_on_disk_and_ready_tell_the_dtypes_compiled(tmp_path, monkeypatch):
    """A kernel compiled for float32 networks is not on disk, nor ready, for
    float64 ones (which would compile it: the notice and the lock between
    processes are for them too), and the other way round; a float32 kernel also
    takes float64 arrays (sums of costs), inside tuples too."""
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    (tmp_path / "tiny_dtype_kernel.py").write_text(
        "import numpy as np\n"
        "from fastgd.kernels.numba_cache import njit\n\n"
        "@njit(cache=True)\n"
        "def kernel(pair, costs):\n"
        "    return pair[0].sum() + costs.sum()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import tiny_dtype_kernel as module
    kernel, names = module.kernel, ["kernel"]
    costs = np.zeros(2)  # float64 whatever the network's dtype

    assert kernels.on_disk(kernel) is False and not kernels.ready(module, names, "float32")
    kernel((np.ones(3, np.float32), np.ones(3, np.float32)), costs)
    assert kernels.on_disk(kernel) is True
    assert kernels.on_disk(kernel, "float32") is True
    assert kernels.on_disk(kernel, "float64") is False
    assert kernels.ready(module, names, "float32")
    assert not kernels.ready(module, names, "float64")
    kernel((np.ones(3), np.ones(3)), costs)
    assert kernels.on_disk(kernel, "float64") is True and kernels.ready(module, names, "float64")


# A program that compiles one function after loading numba_cache (or not) and
# prints the names numba gave its machine code and its environment.
NAMED_KERNEL = '''
import importlib.util, os, sys
if sys.argv[1] == "with":
    spec = importlib.util.spec_from_file_location("numba_cache", os.environ["NUMBA_CACHE_PY"])
    numba_cache = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(numba_cache)
import numba

@numba.njit
def kernel(x):
    return 3 * x

kernel(1)
(overload,) = kernel.overloads.values()
print(overload.fndesc.mangled_name, overload.fndesc.env_name)
'''


def test_processes_name_the_same_function_apart(tmp_path):
    """numba issue 10486: numba names a compiled function after a counter that
    every process starts at 1, so that two processes compiling alike give their
    code the same names, and one that loads the other's from a shared cache can
    run with symbols of the wrong function or environment.  With numba_cache
    loaded, the names differ from process to process; without it they are the
    same (the check that this test can tell the two apart)."""
    program = tmp_path / "named.py"
    program.write_text(NAMED_KERNEL)
    env = dict(os.environ, NUMBA_CACHE_PY=numba_cache.__file__)

    def names(mode):
        return subprocess.run([sys.executable, str(program), mode], env=env, check=True,
                              capture_output=True, text=True).stdout.split()

    assert numba_cache.RANDOM_FUNCTION_IDS
    without = [names("without") for _ in range(2)]
    assert without[0] == without[1]
    named = [names("with") for _ in range(3)]
    assert len({name for pair in named for name in pair}) == 6
