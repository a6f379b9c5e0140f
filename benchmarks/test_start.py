"""Cold and warm start: what a new user waits for, in fresh processes.

test_whole_process: benchmarks/new_user.py (import, fastgd.load_mnist(), [784, 30,
10] float32 from the same initial weights, one epoch at m = 10, eta = 3.0, the
test set classified) in a new process per implementation, timed from outside
from start to exit.  The implementations take turns within each round (the
order rotated each round) and the report compares medians from the same run:
fastgd with its default settings (generic kernels first, the specialised ones
compiled in the background), fastgd with FASTGD_SPECIALIZE=now (the old
behaviour: compile everything first; cold only, as warm it is the default),
JAX, PyTorch where installed, and NumPy, which compiles nothing.

- cold: every process gets new, empty NUMBA_CACHE_DIR and FASTGD_CACHE_DIR
  folders, so fastgd compiles all its kernels.  JAX keeps no compiled code on
  disk unless a persistent compilation cache is configured: the children get
  none (JAX_COMPILATION_CACHE_DIR and the like are removed) and each records
  jax_compilation_cache_dir.  Python's own .pyc files and the OS's file cache
  are warm for everyone: fastgd's are compiled before the first timed process
  (pip does so for installed packages such as JAX), and PYTHONDONTWRITEBYTECODE
  is not passed on, which would leave a checkout's sources to be compiled again
  in every fastgd process and in none of JAX's.
- warm: the folders filled by one earlier, untimed process that compiled
  everything (FASTGD_SPECIALIZE=now): what every run after the first finished
  one sees.  JAX's warm processes are cold starts again, measured again so
  that each ratio comes from one run.

test_cli_first_epoch: `python -m fastgd train --epochs 1 --seed 1` from start to
its first "Epoch 0" line on stdout (read as it comes), then killed; cold and warm
as above.  After each warm round, untimed by the benchmark itself, numba's own
floor: a process that imports numba and calls one small function from numba's
cache, start to exit (FLOOR_SCRIPT; extra_info["floor_s"]), the least any
program built on numba's cached kernels takes to start on this machine.

A smoke run (FASTGD_BENCH_SMOKE=1) skips the cold benchmarks (compiling takes
tens of seconds whatever the data) and runs the warm ones, fastgd and JAX only,
on 500 training and 1,000 test examples, with the caches this process already
uses (no filling run):
it checks that the code runs, it measures nothing.  FASTGD_BENCH_START=fastgd,jax
limits the implementations (keys of START_IMPLS); FASTGD_BENCH_ROUNDS=K sets
the rounds (default 3).

    pytest benchmarks/test_start.py --benchmark-json=start.json
"""

import compileall
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pytest

import fastgd

from suite import OPENBLAS_VARIABLES, SMOKE, record

HERE = os.path.dirname(os.path.abspath(__file__))
# The folder that holds the fastgd this process imported: the children import the same one.
IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastgd.__file__)))
ROUNDS = int(os.environ.get("FASTGD_BENCH_ROUNDS") or (1 if SMOKE else 3))
TRAIN_SIZE, TEST_SIZE = (500, 1_000) if SMOKE else (50_000, 10_000)
CHILD_TIMEOUT = 1_800  # s: a cold compile on a loaded 2-core machine takes minutes, not hours
JAX_CACHE_VARIABLES = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES",
                       "JAX_ENABLE_COMPILATION_CACHE")
# key: (new_user.py's implementation, environment set for it, whether it runs warm too)
START_IMPLS = {
    "fastgd": ("fastgd", {}, True),
    "fastgd now": ("fastgd", {"FASTGD_SPECIALIZE": "now"}, False),
    "jax": ("jax", {}, True),
    "pytorch": ("torch", {}, True),
    "numpy": ("numpy", {}, True),
}
REQUIRES = {"jax": "jax", "pytorch": "torch"}  # the module a key needs installed


def wanted_impls(cache):
    """The START_IMPLS keys this run measures with `cache`: installed, asked for
    in FASTGD_BENCH_START (default all), and in a smoke run only fastgd and JAX."""
    asked = os.environ.get("FASTGD_BENCH_START")
    keys = [k.strip() for k in asked.split(",")] if asked else list(START_IMPLS)
    unknown = [k for k in keys if k not in START_IMPLS]
    if unknown:
        raise pytest.UsageError(f"FASTGD_BENCH_START: unknown {unknown}; "
                                f"known: {', '.join(START_IMPLS)}")
    keys = [k for k in keys if cache == "cold" or START_IMPLS[k][2]]
    keys = [k for k in keys if k not in REQUIRES or importlib.util.find_spec(REQUIRES[k])]
    if SMOKE:
        keys = [k for k in keys if k in ("fastgd", "jax")]
    return keys


def child_env(caches, extra=None, blas=False):
    """The environment of one fresh process: the same fastgd as this one, caches
    in `caches` (None: this process's own), no JAX compilation cache, FASTGD_SPECIALIZE
    only where asked (fastgd's default otherwise), and for NumPy (blas) without the
    OpenBLAS variables that can force an older kernel."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [IMPORT_ROOT, env.get("PYTHONPATH")]))
    for name in (*JAX_CACHE_VARIABLES, "FASTGD_SPECIALIZE", "FASTGD_BENCH_REMOVED_ENV",
                 "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    if SMOKE:  # the generic kernels only, as in this process (conftest.py)
        env["FASTGD_SPECIALIZE"] = os.environ.get("FASTGD_SPECIALIZE", "never")
    if caches is not None:
        env.update(NUMBA_CACHE_DIR=str(caches), FASTGD_CACHE_DIR=os.path.join(caches, "fastgd"))
    if blas:
        removed = [name for name in OPENBLAS_VARIABLES if env.pop(name, None) is not None]
        if removed:
            env["FASTGD_BENCH_REMOVED_ENV"] = ",".join(removed)
    env.update(extra or {})
    return env


def fresh_folder(parent):
    """A new, empty cache folder under parent."""
    return tempfile.mkdtemp(prefix="caches-", dir=parent)


def new_user(impl, env):
    """Run benchmarks/new_user.py once; returns its result with the process's wall
    time (start to exit, seen from here) and what fastgd said on stderr."""
    cmd = [sys.executable, os.path.join(HERE, "new_user.py"), impl,
           "--train-size", str(TRAIN_SIZE), "--test-size", str(TEST_SIZE)]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("result ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit status {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("result "):])
    result.update(wall_s=wall, compile_notes=compile_notes(done.stderr),
                  compiling_after_exit_s=wait_for_exit(result.get("compiler_pid")))
    return result


def wait_for_exit(pid):
    """Wait until the process pid (fastgd's background compile, left running when
    the user's process ended; not a child of this one) has ended, so that it
    slows no later timed process; returns the seconds waited."""
    started = time.perf_counter()
    while pid is not None and time.perf_counter() - started < CHILD_TIMEOUT:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:  # another user's process by now: ours has ended
            break
        time.sleep(0.2)
    return time.perf_counter() - started


def compile_notes(stderr):
    """fastgd's compile messages (generic kernels compiled in N s, the specialised
    ones in the background in N s), without the ticking counter."""
    notes = []
    for line in stderr.replace("\r", "\n").splitlines():
        line = line.strip()
        if line.startswith(("compiled in", "specialised kernels compiled")):
            notes.append(line)
    return notes


@pytest.fixture(scope="session", autouse=True)
def fastgd_bytecode():
    """fastgd's .pyc files, compiled before any timed process as pip compiles an
    installed package's: a checkout's first import would otherwise compile them."""
    compileall.compile_dir(os.path.dirname(os.path.abspath(fastgd.__file__)), quiet=1)


@pytest.fixture(scope="session")
def warm_caches(tmp_path_factory):
    """Cache folders filled by one untimed process that compiled every kernel the
    user's program runs (FASTGD_SPECIALIZE=now); None in a smoke run, whose warm
    processes use this process's caches as they are."""
    if SMOKE:
        return None
    folder = str(tmp_path_factory.mktemp("start-warm-caches"))
    new_user("fastgd", child_env(folder, {"FASTGD_SPECIALIZE": "now"}))
    return folder


def summary(results):
    """Medians and the per-round lists of one implementation's results."""
    def each(key):
        return [r[key] for r in results]
    return {"wall_s": each("wall_s"), "in_script_s": each("in_script_s"),
            "epoch_s": each("epoch_s"), "accuracy": each("accuracy"),
            "wall_median_s": statistics.median(each("wall_s")),
            "epoch_median_s": statistics.median(each("epoch_s")),
            "results": results}


@pytest.mark.bench("fastgd", threads="all")
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_whole_process(benchmark, machine, request, tmp_path, cache):
    """Every implementation once per round, in turn; the benchmark's own time is
    one whole round, each process's wall time is in extra_info["runs"]."""
    if cache == "cold" and SMOKE:
        pytest.skip("a cold start compiles for tens of seconds: not in a smoke run")
    keys = wanted_impls(cache)
    if not keys:
        pytest.skip(f"no implementation to start with {cache} caches (FASTGD_BENCH_START, "
                    "or not installed)")
    caches = request.getfixturevalue("warm_caches") if cache == "warm" else None
    found = {key: [] for key in keys}
    turn = [0]

    def one_round():
        start = turn[0] % len(keys)
        turn[0] += 1
        for key in keys[start:] + keys[:start]:
            impl, extra, _ = START_IMPLS[key]
            folder = fresh_folder(tmp_path) if cache == "cold" else caches
            try:
                found[key].append(new_user(impl, child_env(folder, extra, impl == "numpy")))
            finally:
                if cache == "cold":
                    shutil.rmtree(folder, ignore_errors=True)

    benchmark.group = "cold and warm start"
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    runs = {key: dict(summary(found[key]), env=START_IMPLS[key][1]) for key in keys}
    record(benchmark, machine, impl="every implementation in turn", start="whole process",
           caches=cache, sizes=[784, 30, 10], dtype="float32", mini_batch_size=10, eta=3.0,
           train_examples=TRAIN_SIZE, test_examples=TEST_SIZE, start_rounds=len(found[keys[0]]),
           order=keys, runs=runs)


# numba's floor: import numba, load one cached function, call it, exit.
FLOOR_SCRIPT = """\
import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def total(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
    return s


print(total(np.ones(3)))
"""


class NumbaFloor:
    """Seconds from start to exit of FLOOR_SCRIPT in a fresh process whose
    function numba's cache already holds (one untimed run fills it)."""

    def __init__(self, env, folder):
        self.script = os.path.join(folder, "numba_floor.py")
        with open(self.script, "w", encoding="utf-8") as f:
            f.write(FLOOR_SCRIPT)
        self.env = env
        self.seconds()  # compiles the function into the cache

    def seconds(self):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, self.script], env=self.env, capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT)
        wall = time.perf_counter() - started
        if done.returncode != 0 or done.stdout.strip() != "3.0":
            raise RuntimeError(f"{self.script} failed (exit status {done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        return wall


class Cli:
    """`python -m fastgd train --epochs 1` started, and read line by line up to its
    first "Epoch 0" line."""

    def __init__(self, env):
        self.command = [sys.executable, "-m", "fastgd", "train", "--epochs", "1",
                        "--seed", "1", "--train-size", str(TRAIN_SIZE)]
        self.env = env
        self.process = None
        self.line = None

    def first_epoch_line(self):
        """Start the process and return at its first "Epoch 0" line."""
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file: a full pipe would block it
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, bufsize=1)
        for line in self.process.stdout:
            if line.startswith("Epoch 0"):
                self.line = line.strip()
                return
        self.process.wait()
        self.stderr.seek(0)
        raise RuntimeError(f"{' '.join(self.command)} ended (exit status "
                           f"{self.process.returncode}) without an Epoch 0 line:\n"
                           f"{self.stderr.read()[-3000:]}")

    def stop(self):
        """Kill the process (it has said what is timed) and keep fastgd's compile notes."""
        if self.process is None:
            return []
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.stderr.seek(0)
        notes = compile_notes(self.stderr.read())
        self.stderr.close()
        self.process = None
        return notes


@pytest.mark.bench("fastgd", threads="all")
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_cli_first_epoch(benchmark, machine, request, tmp_path, cache):
    """Seconds from starting `python -m fastgd train --epochs 1` to its first epoch line."""
    if cache == "cold" and SMOKE:
        pytest.skip("a cold start compiles for tens of seconds: not in a smoke run")
    warm = request.getfixturevalue("warm_caches") if cache == "warm" else None
    state = {"lines": [], "notes": [], "cli": None, "floor": []}
    floor = NumbaFloor(child_env(warm), str(tmp_path)) if cache == "warm" else None

    def setup():
        folder = fresh_folder(tmp_path) if cache == "cold" else warm
        state["cli"] = Cli(child_env(folder))
        return (), {}

    def teardown():
        state["notes"].append(state["cli"].stop())
        state["lines"].append(state["cli"].line)
        if floor is not None:  # right after, on the same caches
            state["floor"].append(floor.seconds())

    try:
        benchmark.group = "cold and warm start"
        # with --benchmark-disable, pedantic calls neither the timer nor teardown
        benchmark.pedantic(lambda: state["cli"].first_epoch_line(), setup=setup,
                           teardown=teardown, rounds=ROUNDS, iterations=1)
    finally:
        if state["cli"] is not None and state["cli"].process is not None:
            teardown()
    record(benchmark, machine, impl="fastgd train (CLI)", start="first epoch line",
           caches=cache, cli_command=" ".join(["python", *state["cli"].command[1:]]),
           train_examples=TRAIN_SIZE, epoch_lines=state["lines"], compile_notes=state["notes"],
           floor_s=state["floor"], floor_script=FLOOR_SCRIPT if floor is not None else None)
