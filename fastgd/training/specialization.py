"""The kernels specialised for a network's widths: compiled in the background
while a Trainer starts on the generic ones (``Specialization``), and what the
user is told while kernels compile (``compile_notice``, with an estimate from
this machine's past compiles, ``compile_estimate``)."""

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
from numba.core.dispatcher import Dispatcher

from .. import config, kernels
from .._files import atomic_write


class Specialization:
    """The specialised kernels of a Trainer that started on the generic ones,
    compiled in the background: ``done()`` says when they are ready;
    ``candidates`` then holds them, or ``error`` what went wrong.

    A thread starts a separate process that compiles them into numba's disk
    cache (``_COMPILER``) and waits for it: that process is not slowed by this
    one's training (nor slows it, holding the GIL, since numba compiles mostly
    in Python), and it finishes the cache even when this process ends first,
    so that the next run of the shape starts on the specialised kernels.  The
    thread then loads the kernels here (or compiles them, if that process could
    not): the trainer's candidates, each run once on an empty range with
    scratch of its own (the trainer's buffers are in use), and the evaluation
    kernels."""

    def __init__(self, trainer):
        self.candidates, self.error, self.seconds = None, None, None
        self.compiler = None  # the compiling process, while it runs
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._compile, args=(trainer,), daemon=True,
                                       name="fastgd-specialize")
        self.thread.start()

    def done(self):
        return not self.thread.is_alive()

    def cancel(self):
        """The run has ended: leave the compiling process to finish the cache, but
        load nothing here, and wait for a load already under way.  A thread still
        inside numba when the interpreter exits can crash the process."""
        self.cancelled.set()
        if self.compiler is None:  # loading (from the cache, or compiling) here
            self.thread.join()

    def _compile(self, trainer):
        started = time.perf_counter()
        try:
            net = trainer.net
            self._compile_elsewhere(trainer)
            if self.cancelled.is_set():
                raise RuntimeError("cancelled: the run ended first")
            candidates = [trainer.candidate(trainer.module, plan) for plan in trainer.plans]
            # an empty run loads (or compiles) a kernel: on scratch and weights of
            # its own, of the same types, since the trainer's are in use meanwhile
            scratch = trainer.new_buffers(1)
            params = kernels.aligned_copy(net.params)
            for candidate in candidates:
                trainer.run_candidate(candidate, np.arange(0), 0, 0, params=params, buffers=scratch)
            net.warm_up()
            self.candidates = candidates
            record_compile_seconds(net, time.perf_counter() - started)
        except Exception as e:  # reported by the trainer, which goes on with the generic kernels
            self.error = e
        self.seconds = time.perf_counter() - started

    def _compile_elsewhere(self, trainer):
        """Compile the trainer's specialised kernels in a process of their own,
        in a session of its own (so that a Ctrl-C meant for this process does
        not stop it), and wait for it; nothing if that cannot be done (the
        caller then compiles them here)."""
        net = trainer.net
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = _COMPILER.format(root=root, sizes=list(net.sizes), dtype=net.dtype.name,
                                cost=net.cost_function, dense=trainer.dense,
                                kernel=trainer.kernel_name, threads=trainer.threads)
        try:
            self.compiler = subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            return
        self.compiler.wait()
        self.compiler = None


# The program of the process that compiles a Trainer's specialised kernels into
# the disk cache (``Specialization``): a Trainer of the same shape, dtype, cost,
# input path, kernel choice and threads on one example has the same argument
# types, so the kernels it compiles are the ones the trainer loads.  At a lower
# priority: it must not slow the training it runs beside on a busy machine.
_COMPILER = """
import os, sys
sys.path.insert(0, {root!r})
try:
    os.nice(10)
except (AttributeError, OSError):
    pass
import numpy as np
from fastgd import config
config.SPECIALIZE = "now"
from fastgd.network import Network
from fastgd.training import Trainer
net = Network({sizes!r}, seed=0, dtype={dtype!r}, cost={cost!r})
X = np.full((1, {sizes!r}[0]), 1 if {dense!r} else 0, net.dtype)
Trainer(net, (X, np.zeros(1, np.int64)), 1, 1.0, kernel={kernel!r}, threads={threads!r})
net.warm_up()
"""


@contextmanager
def compile_notice(net, enabled=True, stream=None, dense=False, generic=False, names=None,
                   module=None):
    """While the block runs, tell the user (on stderr) that fastgd's kernels are
    being compiled for this network's shape and input path (with generic, the
    generic kernels, compiled once for every shape; "background": while the
    specialised ones follow in the background), with an estimate from this
    machine's own past compiles and the seconds so far; nothing if they are in
    numba's disk cache.  names: the kernels the block runs (default: the
    serial and parallel training kernels, the serial one alone for generic).
    generic="starter": the starter kernel (``kernels.starter``; module, its
    kernels, must be given), while the specialised ones follow in the
    background.
    A network too wide for specialised kernels
    (``kernels.specialisable``) gets the generic ones, and is told so once
    even when nothing compiles.

    Whether told or not, the block holds the lock that makes other fastgd
    processes meeting the same kernels cold wait and then load them
    (``kernels.compiling``), instead of compiling them side by side."""
    stream = sys.stderr if stream is None else stream
    if not kernels.specialisable(net.sizes):
        generic = True
        if enabled:
            print(f"fastgd: a {net.sizes} network trains on the generic kernels only: "
                  f"{kernels.unrolled_outputs(net.sizes)} outputs are more than kernels "
                  "specialised to its widths write out (config.SPECIALIZE_MAX_OUTPUTS = "
                  f"{config.SPECIALIZE_MAX_OUTPUTS}); the same results, more slowly",
                  file=stream, flush=True)
    if module is None:
        module = (kernels.generic_kernels(net.sizes, net.cost_function, dense) if generic
                  else kernels.kernels(net.sizes, net.dtype, net.cost_function, dense))
    if names is None:
        names = ["train_serial"] if generic else ["train_serial", "train_parallel"]
    if kernels.ready(module, names, net.dtype):
        yield
        return
    if not enabled:
        with kernels.compiling(module, net.dtype):
            yield
        return
    kind = "specialised"
    if generic == "starter":
        kind = "starter"
    elif generic:  # the parallel kernels take about as long again as the serial one
        kind = "generic" if all(name.endswith("_serial") for name in names) else (
            "generic-parallel")
    estimate = compile_estimate(net, kind)
    about = f"about {estimate:.0f} s, from this machine's past compiles" if estimate else (
        "a first estimate: 3-20 s" if kind == "starter" else "a first estimate: 10-60 s")
    if generic == "starter":
        what = ("fastgd's starter kernel (first run of fastgd only; the kernels specialised "
                f"for a {net.sizes} network follow in the background)")
    elif generic == "background":
        what = ("fastgd's generic kernels (first run of fastgd only; the kernels specialised "
                f"for a {net.sizes} network follow in the background)")
    elif generic:
        what = "fastgd's generic kernels (once for every network shape)"
    else:
        what = f"fastgd's kernels for a {net.sizes} network (first run of this shape only)"
    waited = []

    def waiting():
        waited.append(True)
        print("  (waiting for another fastgd process that is compiling them)", file=stream,
              flush=True)

    print(f"Compiling {what}: numba keeps them on disk; {about}...", file=stream, flush=True)
    started = time.perf_counter()
    finished = threading.Event()

    def tick():  # numba's compiler lets other threads run (llvmlite releases the GIL)
        while not finished.wait(1.0):
            print(f"\r  compiling: {time.perf_counter() - started:.0f} s", end="",
                  file=stream, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    missed = _cache_misses(module)
    try:
        with kernels.compiling(module, net.dtype, waiting):
            yield
    except BaseException:
        finished.set()
        ticker.join()
        print("\r" + " " * 30 + "\r", end="", file=stream, flush=True)
        raise
    finished.set()
    ticker.join()
    seconds = time.perf_counter() - started
    print(f"\r  compiled in {seconds:.1f} s      ", file=stream, flush=True)
    # Only a compile is this machine's compile time: not a wait for another process,
    # nor kernels loaded from numba's cache (that process had just written them).
    if not waited and _cache_misses(module) > missed:
        record_compile_seconds(net, seconds, kind)


def _cache_misses(module):
    """Compiles so far, in this process, of the numba kernels module defines
    (each a miss of numba's disk cache)."""
    return sum(sum(value.stats.cache_misses.values()) for value in vars(module).values()
               if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__)



# Past compiles kept per kind for the estimate, the most recent last.
_COMPILES_KEPT = 8


def _compile_units(net, kind):
    """What a compile's time grows with: the generic kernels' code is the same
    for every shape; the specialised kernels' grows with the outputs written
    out (the padded widths of the layers after the input)."""
    if kind in ("starter", "generic", "generic-parallel"):
        return 1.0
    return float(sum(kernels.padded(w) for w in net.sizes[1:]))


def _compile_record_path():
    return os.path.join(kernels.cache_dir(), "compile-seconds.json")


def _compile_records():
    try:
        with open(_compile_record_path()) as f:
            records = json.load(f)
        return {kind: [float(v) for v in values][-_COMPILES_KEPT:]
                for kind, values in records.items() if isinstance(values, list)}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def compile_estimate(net, kind="specialised"):
    """Seconds compiling `kind` ("starter", "generic", "generic-parallel" or "specialised")
    kernels for this network should take here: the median of this machine's
    past compiles, per unit of ``_compile_units``; None before the first.  A
    network too wide for specialised kernels compiles the generic ones
    instead."""
    if not kernels.specialisable(net.sizes) and kind == "specialised":
        kind = "generic"
    seconds_per_unit = _compile_records().get(kind)
    if not seconds_per_unit:
        return None
    return float(np.median(seconds_per_unit)) * _compile_units(net, kind)


def record_compile_seconds(net, seconds, kind="specialised"):
    """Keep how long compiling took, for the next estimate (best effort: a cache
    folder that cannot be written only costs the estimate)."""
    if not kernels.specialisable(net.sizes) and kind == "specialised":
        kind = "generic"
    records = _compile_records()
    values = records.setdefault(kind, [])
    values.append(seconds / _compile_units(net, kind))
    records[kind] = values[-_COMPILES_KEPT:]
    try:
        os.makedirs(kernels.cache_dir(), exist_ok=True)
        atomic_write(_compile_record_path(), lambda f: f.write(json.dumps(records)),
                     overwrite=True, binary=False)
    except OSError:
        pass



def measuring_mode():
    """The ``specialize`` mode of a run that measures speed (``fastgd.profile``,
    ``fastgd.compare``): the kernels a run ends up on, compiled first ("now"), so
    that no measurement mixes the two builds; the generic ones alone ("never")
    where config.SPECIALIZE asks for that (the test suite does)."""
    return "never" if config.SPECIALIZE == "never" else "now"


def compiling_needed(net, dense=False):
    """True if training this network's shape will compile kernels first (numba's
    disk cache has none for it yet): tens of seconds, worth telling the user."""
    module = kernels.kernels(net.sizes, net.dtype, net.cost_function, dense)
    return not kernels.ready(module, ["train_serial", "train_parallel"], net.dtype)
