"""The epoch driver: shuffle, mini-batch schedule, kernel choice, history, divergence.

One epoch is one pass over the shuffled training data, split into mini-batches
of ``mini_batch_size`` examples; each mini-batch makes one step
w -> w - (eta/m) sum_j dC_Xj/dw (likewise b).  The whole epoch runs inside a
numba kernel (``kernels.train_serial`` or ``train_parallel``); Python only
draws the permutation, evaluates, and reports.
"""

import functools
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections import namedtuple
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np

from . import config, kernels
from ._files import atomic_write, check_writable
from .config import (DRIFT, EXAMPLE_BLOCK, PARALLEL_CHUNK, PROGRESS_AFTER, RECHECK_EPOCHS,
                     ROW_BLOCKS_PER_THREAD, SEGMENT, TRIAL_CUTOFF, TRIAL_EXAMPLES)
from ._validation import (check_dtype, check_int, check_positive_float, check_sizes,
                          stacklevel_outside_package)
from .dataset import FINGERPRINT_ALGORITHM, prepare
from .network import check_regularization, read_network, write_network

# Failure verdicts (see diagnose): epochs the cost must stay more than
# DIVERGENCE_TOLERANCE above its best to count as diverging; epochs the
# output neurons must stay pinned to count as saturated; epochs after the
# first in which the cost must fall STALL_TOLERANCE below the first's.
DIVERGENCE_PATIENCE = 3
DIVERGENCE_TOLERANCE = 0.1
SATURATED_EPOCHS = 2
STALL_EPOCHS = 3
STALL_TOLERANCE = 0.01
# Training inputs on which saturation is measured after each epoch.
SATURATION_SAMPLE = 1000

CHECKPOINT_FORMAT = "fastgd-checkpoint-1"

# config.SPECIALIZE: when a Trainer whose specialised kernels are not compiled yet
# gets them (see Trainer): compiled in a background thread while it trains on
# the generic kernels, compiled first ("now"), or not at all ("never").
SPECIALIZE_MODES = ("background", "now", "never")


def check_choice(value, name, choices):
    """value if it is one of choices, else ValueError naming the argument."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value



class DivergenceError(RuntimeError):
    """Training failed (see ``diagnose``) with ``on_divergence="raise"``;
    ``history`` holds the epochs run."""

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal (SIGINT, SIGTERM or SIGHUP).

    signal:     the signal's number
    history:    the History of the epochs completed
    epoch:      epochs completed; position: examples trained of the next one
    checkpoint: the checkpoint written, or None
    """

    def __init__(self, signum, history, epoch, position, checkpoint):
        super().__init__(f"training interrupted by {_signal_name(signum)} after {epoch} "
                         f"epochs" + (f" and {position} examples" if position else ""))
        self.signal, self.history = signum, history
        self.epoch, self.position, self.checkpoint = epoch, position, checkpoint


class DivergenceWarning(RuntimeWarning):
    """Training diverged and was stopped (or continued, if asked)."""


class History(list):
    """One dict per epoch: epoch, seconds, cost, and when measured correct, total,
    accuracy (test_data) and training_cost (monitor_training_cost).

    ``cost`` is the running training cost: the mean of C_x over the epoch, each
    C_x computed by the forward pass of its own mini-batch step (free, but
    measured while the weights move).  ``training_cost`` is C on the whole
    training set after the epoch; ``pinned_outputs`` counts the saturated output
    neurons (see ``diagnose``); ``eta``, with an eta schedule, the learning rate
    the epoch was trained with.  ``diverged`` holds the failure verdict, or None,
    and ``stopped`` why training ended before ``info["epochs_planned"]``.
    """

    def __init__(self, *args, **info):
        super().__init__(*args)
        self.diverged = None   # the failure verdict (see diagnose), or None
        self.stopped = None    # why training stopped before epochs_planned, or None
        self.best_saved = None  # {"epoch", "path"} of the network save_best kept
        self.checkpoint = None  # {"epoch", "position", "path"} of the last checkpoint
        self.info = info

    def plot(self):
        """Learning curves, accuracy and cost per epoch, as a matplotlib Figure."""
        from .plots import learning_curves
        return learning_curves(self)

    def column(self, key):
        """The values of one field across epochs, as an array (NaN where absent)."""
        return np.array([row.get(key, np.nan) for row in self], dtype=float)


def chunk_size(layout):
    """A mini-batch this size or smaller updates the weights directly, example by
    example; a larger one sums its gradient in groups of min(GROUP, this)
    examples.  It depends on the network only, never on the machine or thread
    count, because it decides the order of the additions.  Small enough that a
    group's inputs and scratch stay in the L2 cache between the forward pass
    and the update."""
    per_example = int(layout.a_off[-1])
    return int(max(16, min(256, 1_000_000 // per_example)))


# A mini-batch larger than chunk_size sums its gradient in groups of this many
# examples (each group in a buffer of its own, then the groups in order), so
# that each thread adds up examples whose inputs it has just read.  Like
# chunk_size it decides the order of the additions, so it is a constant; its
# size trades the cost of zeroing and adding a buffer per group (one thread)
# against how many threads a mini-batch can keep busy (BENCHMARKS.md).
GROUP = 256


def _chunk(m, most, group):
    """Examples of a large mini-batch backpropagated between two additions of
    the group sums to nabla: at most `most`, in whole groups (all of a smaller
    mini-batch).  It changes no result."""
    return m if m <= most else max(group, most // group * group)


def choose_kernel(mini_batch_size, threads, kernel="auto"):
    """(name, reason) of the kernel a run starts with: "serial", "parallel", or
    "auto" (timed at run time) when both are candidates."""
    if kernel not in ("auto", "serial", "parallel"):
        raise ValueError(f"kernel must be 'auto', 'serial' or 'parallel', got {kernel!r}")
    if kernel != "auto":
        return kernel, "asked for"
    if threads == 1:
        return "serial", "1 thread"
    return "auto", (f"serial on 1 thread or parallel on {threads} threads, whichever is "
                    "faster on this machine now: timed during the first epoch, and again "
                    "when the speed drifts")


@contextmanager
def numba_threads(threads):
    """Run the block with numba's thread count set to `threads`, then restore it."""
    before = numba.get_num_threads()
    if threads is None:
        yield before
        return
    most = numba.config.NUMBA_NUM_THREADS
    threads = check_int(threads, "threads", minimum=1)
    if threads > most:
        raise ValueError(f"threads must be <= {most} (numba's NUMBA_NUM_THREADS on this "
                         f"machine), got {threads}")
    numba.set_num_threads(threads)
    try:
        yield threads
    finally:
        numba.set_num_threads(before)


class EpochStep(namedtuple("EpochStep", "epoch position cost seconds shuffle_seconds done "
                                          "stopped")):
    """Where ``Trainer.epochs`` stands: ``epoch``; ``position``, the examples of it
    trained; ``cost``, their summed C_x; ``seconds`` of training in it so far
    (``shuffle_seconds`` of them drawing the permutation); ``done``, the epoch is
    complete; ``stopped``, the loop ends here (a stop request or a cost that is
    not finite)."""


# Each network's last calibration per settings (Trainer._remember_calibration).
_LAST_CALIBRATION = weakref.WeakKeyDictionary()


class _Candidate:
    """One way to run the training kernel: which compiled variant, on how many
    threads, with how the work is cut into pieces.  All give the same bits."""

    def __init__(self, name, fn, threads, splits, chunk, example_block):
        self.name, self.fn, self.threads = name, fn, threads
        self.splits, self.chunk, self.example_block = splits, chunk, example_block


class Trainer:
    """What SGD prepares once for a training run, and one epoch of it.

    Checks the data and options, converts X to the network's dtype (a copy
    only if needed), indexes its nonzero inputs (``dataset.prepare``: once per
    Dataset, and once per plain X while it holds the same numbers), picks the
    kernel, allocates scratch and compiles the kernels (saying so on stderr
    with notice=True);
    ``run_epoch(order)`` then runs one epoch over ``X[order]``.  ``SGD`` uses
    it, and so do the benchmarks and ``fastgd profile``, so they time exactly
    what training runs.

    With ``kernel="auto"`` and more than one thread, the serial and the
    parallel kernel are both candidates: the first epoch times each on a few
    thousand examples of real training (they give identical weights, so the
    timing costs no work), keeps the faster, and times them again whenever an
    epoch segment's speed drifts.  ``calibration`` records each decision.

    Where the kernels specialised for the network's widths are not compiled
    yet, ``specialize`` (default: config.SPECIALIZE) says what to do:
    "background" trains on the generic kernels (the same bits, compiled once
    for every shape) and switches to the specialised ones at a segment
    boundary once they are compiled (``_Specialization``); "now" compiles them
    first; "never" trains on the generic kernels only.  ``build`` says which
    train now.
    """

    def __init__(self, net, training_data, mini_batch_size, eta, *, reduction="mean",
                 threads=None, kernel="auto", lmbda=0.0, regularization="L2", notice=False,
                 specialize=None):
        if not np.isfinite(net.params).all():
            raise ValueError("the network's weights or biases are not finite; "
                             "set finite values (or draw a new Network) before training")
        self.net = net
        # checked and indexed once per data set (see fastgd.dataset)
        self.data = prepare(training_data, net.sizes[0], net.sizes[-1], net.dtype,
                            "training_data")
        self.X, self.y = self.data.X, self.data.y
        self.n = n = self.X.shape[0]
        if n == 0:
            raise ValueError("training_data must hold at least one example")
        self.mini_batch_size = m = n if mini_batch_size is None else check_int(
            mini_batch_size, "mini_batch_size", minimum=1, maximum=n)
        self.eta = check_positive_float(eta, "eta")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.mean = reduction == "mean"
        # n in the decay eta lmbda / n is the training set's size, as in the book
        self.lmbda = check_regularization(lmbda, regularization)
        self.regularization = regularization
        with numba_threads(threads) as n_threads:
            self.threads = n_threads
        self.requested_threads = threads
        self.kernel_name, self.kernel_reason = choose_kernel(m, n_threads, kernel)
        self.dense, self.nonzero_fraction = self.data.dense, self.data.nonzero_fraction
        self.examples = self.data.examples
        self.module = kernels.kernels(net.sizes, net.dtype, net.cost_function, self.dense)
        direct_max = chunk_size(net.layout)
        group = min(GROUP, direct_max)
        # (name, threads, row blocks of a direct update, chunk, example block)
        self._plans = []
        if self.kernel_name in ("serial", "auto"):
            self._plans.append(("serial", 1, 1, _chunk(m, direct_max, group), direct_max))
        if self.kernel_name in ("parallel", "auto"):
            self._plans.append((
                "parallel", n_threads,
                # only direct mini-batches split their update by weight rows
                ROW_BLOCKS_PER_THREAD * n_threads if m <= direct_max else 1,
                _chunk(m, max(direct_max, PARALLEL_CHUNK, 2 * group * n_threads), group),
                EXAMPLE_BLOCK))
        self.buffers = _Buffers(net, m, max(min(m, direct_max),
                                            max(plan[3] for plan in self._plans)), group)
        self.calibration = []
        self._reference = None  # s/example the current candidate was timed at
        self._trained = 0  # examples trained so far
        self._recheck_interval = RECHECK_EPOCHS * n
        self._next_recheck = None
        self.segment = max(1, SEGMENT // m) * m
        self.position = 0
        self.rng_before = None
        self.notice = notice
        self.specialized = None  # the background compile of the specialised kernels
        mode = (check_choice(config.SPECIALIZE, "config.SPECIALIZE", SPECIALIZE_MODES)
                if specialize is None else check_choice(specialize, "specialize",
                                                        SPECIALIZE_MODES))
        names = [f"train_{plan[0]}" for plan in self._plans]
        generic = kernels.generic_kernels(net.sizes, net.cost_function, self.dense)
        if mode == "background" and not kernels.ready(self.module, names, net.dtype):
            # Train on the generic kernels now (compiled once for every shape),
            # the first plan only, and switch to the specialised ones at a
            # segment boundary once a background thread has compiled them.
            self._use([self._candidate(generic, self._plans[0])])
            with compile_notice(net, notice, dense=self.dense, generic="background"):
                self._run(self.current, np.arange(0), 0, 0)
                # evaluation between epochs must not wait for numba's compiler lock,
                # which the background compile holds for tens of seconds at a time
                net.warm_up(generic=True)
            self.specialized = _Specialization(self)
            return
        module = generic if mode == "never" else self.module
        self._use([self._candidate(module, plan) for plan in self._plans])
        # An empty run compiles each kernel (or loads it from numba's cache) now,
        # so that the first epoch's time is training time only; with notice, the
        # user is told when that means compiling (``compile_notice``).
        with compile_notice(net, notice, dense=self.dense, generic=mode == "never"):
            for candidate in self.candidates:
                self._run(candidate, np.arange(0), 0, 0)

    def _candidate(self, module, plan, rows=None):
        """The _Candidate that runs `plan` (an entry of ``_plans``) with module's
        kernels, its spans sized for `rows` examples (the buffers' by default)."""
        name, threads, row_blocks, chunk, example_block = plan
        candidate = _Candidate(name, getattr(module, f"train_{name}"), threads,
                               self._splits(row_blocks), chunk, example_block)
        rows = len(self.buffers.costs) if rows is None else rows
        candidate.spans = np.zeros((rows if candidate.splits.size else 0,
                                    candidate.splits.shape[1]), np.uint64)
        return candidate

    def _use(self, candidates):
        """Train with these candidates from now on (timing them if there are several)."""
        self.candidates = candidates
        self.current = candidates[0]
        self._reference = None
        self._recheck = len(candidates) > 1

    def _maybe_specialize(self):
        """At a segment boundary: switch to the specialised kernels if the
        background compile has finished (they give the same bits)."""
        if self.specialized is None or not self.specialized.done():
            return
        job, self.specialized = self.specialized, None
        if job.error is not None:
            warnings.warn(f"fastgd could not compile the specialised kernels for "
                          f"{self.net.sizes} ({job.error!r}); training goes on with the "
                          "generic kernels (the same results, more slowly)", RuntimeWarning,
                          stacklevel=stacklevel_outside_package())
            return
        self._use(job.candidates)
        if self.notice:
            print(f"  specialised kernels compiled in the background in {job.seconds:.1f} s; "
                  "training goes on with them", file=sys.stderr, flush=True)

    @property
    def kernel(self):
        """The compiled kernel in use now."""
        return self.current.fn

    def _splits(self, n_blocks):
        """Where each example's nonzero inputs cross the boundaries of n_blocks
        blocks of layer 0's weight rows, balanced by their nonzero counts (none
        for one block: that is each example's whole row)."""
        if n_blocks == 1:
            return np.zeros((0, 0), np.uint64)
        n_in = self.net.sizes[0]
        if self.dense:  # every row has every column: equal blocks, at fixed positions
            bounds = np.arange(n_blocks + 1, dtype=np.uint64) * np.uint64(n_in) // np.uint64(
                n_blocks)
            return self.examples.indptr[:-1, None] + bounds[None, :]
        return self.data.row_splits(n_blocks)

    def wait_for_specialized(self, timeout=None):
        """Block until the background compile (if any) has finished, and switch
        to its kernels; returns True if the specialised kernels are in use."""
        if self.specialized is not None:
            self.specialized.thread.join(timeout)
            self._maybe_specialize()
        return self.specialized is None and self.current.fn is getattr(
            self.module, f"train_{self.current.name}")

    @property
    def build(self):
        """Which kernels train now: "specialised" (generated for this network's
        widths) or "generic" (any widths: the same bits, more slowly)."""
        return "generic" if self.current.fn.__module__.startswith(
            "fastgd_kernels_generic") else "specialised"

    def info(self):
        """The run's settings, as recorded in a History."""
        return dict(mini_batch_size=self.mini_batch_size, eta=self.eta, threads=self.threads,
                    cost=self.net.cost_function, lmbda=self.lmbda,
                    regularization=self.regularization,
                    kernel=self.kernel_name, kernel_reason=self.kernel_reason,
                    kernel_in_use=self.current.name, kernels=self.build,
                    calibration=self.calibration,
                    inputs="dense" if self.dense else "sparse",
                    nonzero_input_fraction=self.nonzero_fraction,
                    threading_layer=_threading_layer(), dtype=self.net.dtype.name)

    def run_epoch(self, order, progress=None, epoch=None, *, start=0, stop=None, cost=0.0,
                  should_stop=None):
        """One epoch over the examples X[order]; returns the sum of C_x over them.

        ``progress(done, n)`` is called after each segment of about SEGMENT
        examples.  The epoch ends early, at a segment boundary, once the cost is
        not finite or ``should_stop()`` is true; ``self.position`` then says how
        many examples of ``order`` were trained (n after a whole epoch).
        ``start`` and ``cost`` continue an epoch from that position and sum;
        ``stop`` (whole mini-batches) ends this call there instead of at n.
        """
        total_cost = cost
        end = self.n if stop is None else stop
        while start < end:
            self._maybe_specialize()
            if self._recheck:
                cost, start = self._calibrate(order, start, epoch, end)
                total_cost += cost
                if start >= end or not math.isfinite(total_cost):
                    break
            stop = min(end, start + self.segment)
            began = time.perf_counter()
            total_cost += self.run_slice(order, start, stop)
            self._watch((time.perf_counter() - began) / (stop - start), stop - start)
            self._trained += stop - start
            start = stop
            if not math.isfinite(total_cost):
                break
            if progress is not None:
                progress(stop, self.n)
            if should_stop is not None and should_stop():
                break
        self.position = start
        return total_cost

    def epochs(self, count, *, shuffle=True, first=0, position=0, cost=0.0, marks=(),
               should_stop=None, progress=None):
        """The one epoch loop of fastgd: train ``count`` epochs, numbered from
        ``first``, yielding an ``EpochStep`` at each of ``marks`` (positions in an
        epoch, whole mini-batches) and at the end of each epoch.

        Each epoch trains on a permutation drawn from ``net.rng`` (``arange``
        without ``shuffle``); ``self.rng_before`` holds the generator's state
        before that draw, so that a stopped epoch can be drawn again and
        continued: ``position`` and ``cost`` continue the first epoch from
        there.  The epoch stops early, with a step whose ``done`` is False, when
        the cost is not finite or ``should_stop()`` is true (checked after each
        segment); the loop ends after such a step.  ``progress(epoch, done, n,
        seconds)`` is called after each segment.  A step's ``seconds`` is the
        epoch's training time so far (its shuffle included), excluding whatever
        the caller does between steps (evaluation).  SGD, ``fastgd profile`` and
        ``fastgd compare`` all train through this loop.
        """
        n = self.n
        for epoch in range(first, first + count):
            self.rng_before = self.net.rng.bit_generator.state
            tic = time.perf_counter()
            order = self.net.rng.permutation(n) if shuffle else np.arange(n)
            shuffle_seconds = seconds = time.perf_counter() - tic
            hook = None if progress is None else (
                lambda done, total, e=epoch, s=seconds, t=tic: progress(
                    e, done, total, s + time.perf_counter() - t))
            for stop in sorted({*marks, n}):
                if stop <= position:
                    continue
                tic = time.perf_counter()
                cost = self.run_epoch(order, hook, epoch, start=position, stop=stop, cost=cost,
                                      should_stop=should_stop)
                seconds += time.perf_counter() - tic
                position = self.position
                ended = position < stop or not math.isfinite(cost)
                yield EpochStep(epoch, position, cost, seconds, shuffle_seconds,
                                position >= n, ended)
                if ended:
                    return
            position, cost = 0, 0.0

    def run_slice(self, order, start, stop):
        """Train on the examples order[start:stop] (start at a mini-batch boundary)
        with the kernel in use; returns the sum of C_x over them."""
        return self._run(self.current, order, start, stop)

    def decay(self):
        """(decay, shrink) of the kernel for the current eta: each mini-batch's
        weights become decay * w - shrink * sgn(w) before its step, that is
        w (1 - eta lmbda / n) for L2 and w - (eta lmbda / n) sgn(w) for L1."""
        rate = self.eta * self.lmbda / self.n
        return (1.0 - rate, 0.0) if self.regularization == "L2" else (1.0, rate)

    def _run(self, candidate, order, start, stop, params=None, buffers=None):
        buffers = self.buffers if buffers is None else buffers
        plan = kernels.Plan(candidate.splits, candidate.spans, buffers.direct_max,
                             buffers.group, candidate.chunk, candidate.example_block,
                             candidate.threads)
        with numba_threads(candidate.threads):
            return kernels.call(
                candidate.fn, self.examples, order, start, stop, self.mini_batch_size,
                self.eta, self.mean, self.net.params if params is None else params,
                self.net.layout.arrays, buffers.scratch, plan, *self.decay())

    def _calibrate(self, order, start, epoch, end):
        """Time every candidate, keep the fastest; returns (cost, new start).

        Each candidate first trains a short scouting trial (a quarter of
        TRIAL_EXAMPLES, whole mini-batches), in turn; a candidate more than
        TRIAL_CUTOFF times slower than the fastest there is dropped, so that a
        kernel crippled by a busy machine costs one short trial, not several
        long ones.  The others then train twice on about TRIAL_EXAMPLES
        examples each, in turn, and the slower time of each counts: on a busy
        machine the parallel kernel's speed swings with where the OS runs the
        other work (it waits for its slowest thread), and one lucky trial must
        not choose it.  When the epoch has room before ``end``, these are the
        epoch's own next examples (the candidates give the same weights, so
        nothing is wasted); otherwise (a few huge mini-batches) they run on a
        copy of the weights, which is thrown away."""
        m = self.mini_batch_size
        scout = max(1, -(-TRIAL_EXAMPLES // (4 * m))) * m
        trial = max(1, -(-TRIAL_EXAMPLES // m)) * m
        in_place = start + len(self.candidates) * (scout + 2 * trial) <= end
        seconds = {c.name: [] for c in self.candidates}
        cost = 0.0
        first = start
        running = list(self.candidates)
        for size in (scout, trial, trial):
            for candidate in running:
                if in_place:
                    began = time.perf_counter()
                    cost += self._run(candidate, order, start, start + size)
                    seconds[candidate.name].append((time.perf_counter() - began) / size)
                    start += size
                else:  # part of one mini-batch, as many examples as a trial
                    n_trial = min(self.n, TRIAL_EXAMPLES // 4 if size == scout else TRIAL_EXAMPLES)
                    scratch = kernels.aligned_copy(self.net.params)
                    began = time.perf_counter()
                    self._run(candidate, order, 0, n_trial, params=scratch)
                    seconds[candidate.name].append((time.perf_counter() - began) / n_trial)
            if size == scout:
                fastest = min(seconds[c.name][0] for c in running)
                running = [c for c in running if seconds[c.name][0] <= TRIAL_CUTOFF * fastest]
        # a candidate dropped after its scouting trial has that one time only
        slower = {name: max(times[1:] or times) for name, times in seconds.items()}
        previous = self.current.name if self.calibration else None
        self.current = next(c for c in self.candidates if c.name == min(slower, key=slower.get))
        self._reference = min(seconds[self.current.name][1:] or seconds[self.current.name])
        self._recheck = False
        self._recheck_interval = (2 * self._recheck_interval if previous == self.current.name
                                  else RECHECK_EPOCHS * self.n)
        self._trained += start - first
        self._next_recheck = self._trained + self._recheck_interval
        self.calibration.append({"epoch": epoch, "s_per_example": slower,
                                 "chose": self.current.name,
                                 "timed_on": "training" if in_place else "a copy of the weights"})
        self._remember_calibration()
        return cost, start

    def _watch(self, s_per_example, examples):
        """Ask for new timings when a long enough segment's speed drifts in the
        direction that can change the choice, or when the current choice is due
        to be checked again.  A load that comes slows the parallel kernel most
        (it waits for its slowest thread), so the parallel kernel is timed again
        when it slows down, and the serial one when it speeds up (the load has
        gone); the serial kernel slowing down, under load, would only time a
        parallel kernel slower still, at that cost on every segment."""
        if self._reference is None:
            return
        due = self._trained + examples >= self._next_recheck
        ratio = s_per_example / self._reference
        drifted = examples >= TRIAL_EXAMPLES and (
            ratio > 1.0 + DRIFT if self.current.threads > 1 else ratio < 1.0 - DRIFT)
        self._recheck = due or drifted
        self._remember_calibration(examples)  # not yet counted in _trained

    # -- the last calibration, for the network's next call ------------------------------

    def _calibration_key(self):
        """What a calibration is remembered under, for its network: the settings
        that change the kernels' speeds or the recheck schedule."""
        return (self.mini_batch_size, self.threads, self.dense, self.n,
                tuple(c.name for c in self.candidates))

    def _remember_calibration(self, examples=0):
        """Keep the choice, what it was timed at and the examples left until it
        is due to be checked (``examples`` more having been trained), for the
        network's next SGD call with these settings
        (``start_from_last_calibration``)."""
        if self._reference is None or self._next_recheck is None:
            return
        remembered = _LAST_CALIBRATION.setdefault(self.net, {})
        remembered[self._calibration_key()] = dict(
            self.calibration[-1], reference=self._reference, interval=self._recheck_interval,
            left=self._next_recheck - self._trained - examples, recheck=self._recheck)

    def start_from_last_calibration(self):
        """Start from the network's last calibration with these settings, if there is
        one: a series of short calls (1 epoch each, say) then times the kernels as
        often as one long call does, not at the start of every call.  The kernels
        give the same bits, so this changes only the speed; the drift rule and
        the recheck schedule go on from where the last call left them."""
        if len(self.candidates) < 2:
            return
        last = _LAST_CALIBRATION.get(self.net, {}).get(self._calibration_key())
        if last is None:
            return
        self.current = next(c for c in self.candidates if c.name == last["chose"])
        self._reference = last["reference"]
        self._recheck_interval = last["interval"]
        self._next_recheck = self._trained + last["left"]
        self._recheck = last["recheck"] or last["left"] <= 0
        self.calibration.append({"epoch": None, "s_per_example": last["s_per_example"],
                                 "chose": last["chose"], "timed_on": "an earlier call"})


def SGD(net, training_data, epochs, mini_batch_size, eta, test_data=None, *,
        reduction="mean", shuffle=True, threads=None, kernel="auto", verbose=True,
        monitor_training_cost=False, on_divergence="stop", checkpoint=None,
        checkpoint_every=1, save_best=None, early_stop=None, overwrite=False,
        handle_signals=True, info=None, lmbda=0.0, regularization="L2", eta_schedule=None,
        patience=10, min_eta_factor=1 / 128):
    """Train ``net`` by stochastic gradient descent; returns a ``History``.

    The cost minimised is the network's own (``Network(cost=...)``).

    Parameters
    ----------
    training_data : (X, y) or Dataset
        X of shape (n, sizes[0]), y integer labels of shape (n,).  Checked and
        indexed for the kernels once: a ``fastgd.Dataset`` keeps that work, and
        plain arrays given again unchanged (compared in one pass) reuse it.
    epochs : int >= 0
    mini_batch_size : int in 1..n, or None
        m examples per step: 1 is online learning, None (or n) full batch.
        When m does not divide n, the last mini-batch of each epoch is
        shorter and its step uses its own length (as network.py does).
    eta : float > 0
        The learning rate.
    test_data : (X, y) or Dataset, optional
        Evaluated after each epoch: ``Epoch 0: 9129 / 10000`` is printed.
    reduction : "mean" (default) or "sum"
        "mean": w -> w - (eta/m) sum_j dC_Xj/dw, the book's rule; "sum"
        drops the 1/m (the step is eta times the summed gradient).
    shuffle : bool
        Reshuffle the training data each epoch from ``net.rng`` (an index
        permutation: the data are never copied); False keeps the order given.
    threads : int, optional
        numba threads for this call (numba's setting is restored afterwards).
    kernel : "auto", "serial" or "parallel"
        "auto" times the serial kernel (1 thread) against the parallel one
        (all threads) during the first epoch and keeps the faster, timing them
        again when the speed drifts (``History.info["calibration"]``).  All
        give bit-identical weights.
    verbose : bool
        Print one line per epoch, and progress during epochs longer than a
        couple of seconds.
    monitor_training_cost : bool
        Also compute C on the whole training set after each epoch.
    on_divergence : "stop" (default), "warn" or "raise"
        What to do when training fails (see ``diagnose``): the cost becomes
        NaN/inf, grows well above its best, stops falling, or the output
        neurons saturate.  A NaN cost always ends training.
    checkpoint : path, optional
        After every ``checkpoint_every`` epochs (and when training stops for
        any reason), write the network, the epoch, the generator's state, the
        History and the run's options there, atomically; ``resume`` continues
        the run from it.
    save_best : path, optional
        Keep the network with the best accuracy on ``test_data`` there.
    early_stop : int, optional
        Stop after this many epochs without a better accuracy on ``test_data``.
    overwrite : bool
        Allow ``checkpoint`` and ``save_best`` to replace files that exist.
    handle_signals : bool
        In the main thread, SIGINT (Ctrl-C), SIGTERM and SIGHUP stop training at
        the next segment boundary (a fraction of a second): the checkpoint is
        written and ``TrainingInterrupted`` raised, carrying the partial
        History.  A second signal aborts at once.
    info : dict, optional
        Entries added to ``History.info`` (and so kept in checkpoints): what a
        caller needs to know to resume the run, such as where its data came from.
    lmbda : float >= 0
        The regularization parameter lambda (0, the default, is none).  With
        n the number of training inputs, each step adds the gradient of
        (lmbda/2n) sum_w w^2 ("L2": w -> (1 - eta lmbda/n) w - (eta/m) sum_j
        dC_Xj/dw) or of (lmbda/n) sum_w |w| ("L1": w -> w - (eta lmbda/n)
        sgn(w) - ...).  Biases are not regularized.  The running cost in the
        History leaves the regularization term out; ``net.cost(X, y, lmbda)``
        includes it.
    regularization : "L2" (default) or "L1"
    eta_schedule : None (default) or "halve-on-plateau"
        "halve-on-plateau": halve eta whenever the accuracy on ``test_data``
        (use validation data) has not improved for ``patience`` epochs, and
        stop once eta has fallen to ``min_eta_factor`` times its start.  Each
        epoch's record holds the ``eta`` it was trained with.
    patience : int >= 1
    min_eta_factor : float in (0, 1)
    """
    return _Run(net, training_data, epochs, mini_batch_size, eta, test_data, dict(
        reduction=reduction, shuffle=shuffle, threads=threads, kernel=kernel, verbose=verbose,
        monitor_training_cost=monitor_training_cost, on_divergence=on_divergence,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every, save_best=save_best,
        early_stop=early_stop, overwrite=overwrite, handle_signals=handle_signals,
        info=info, lmbda=lmbda, regularization=regularization, eta_schedule=eta_schedule,
        patience=patience, min_eta_factor=min_eta_factor)).train()


# What defines a run (a checkpoint keeps these; resume takes them from it).
_RUN_OPTIONS = ("epochs", "mini_batch_size", "eta", "reduction", "shuffle",
                "monitor_training_cost", "on_divergence", "checkpoint_every", "save_best",
                "early_stop")
# Options added since; a checkpoint without them was written with these values.
_RUN_OPTION_DEFAULTS = {"lmbda": 0.0, "regularization": "L2", "eta_schedule": None,
                        "patience": 10, "min_eta_factor": 1 / 128}
ETA_SCHEDULES = (None, "halve-on-plateau")


def scheduled_eta(history, eta, patience):
    """The eta of the next epoch under "halve-on-plateau", replayed from the
    History (so that a resumed run needs no other state): eta is halved each
    time the accuracy has gone `patience` epochs without beating its best,
    and the count starts again after each halving."""
    best, since = None, 0
    for record in history:
        if best is None or record["correct"] > best:
            best, since = record["correct"], 0
        else:
            since += 1
            if since >= patience:
                eta, since = eta / 2, 0
    return eta


class _Run:
    """One call of SGD: the options checked, the Trainer made, and the epoch loop
    with its evaluation, verdicts, checkpoints and stop requests."""

    def __init__(self, net, training_data, epochs, mini_batch_size, eta, test_data, options,
                 resume_state=None):
        o = options
        self.net, self.epochs = net, check_int(epochs, "epochs", minimum=0)
        if o["on_divergence"] not in ("stop", "warn", "raise"):
            raise ValueError(f"on_divergence must be 'stop', 'warn' or 'raise', "
                             f"got {o['on_divergence']!r}")
        self.checkpoint_every = check_int(o["checkpoint_every"], "checkpoint_every", minimum=1)
        self.early_stop = (None if o["early_stop"] is None
                           else check_int(o["early_stop"], "early_stop", minimum=1))
        if test_data is None and (self.early_stop is not None or o["save_best"] is not None):
            raise ValueError("early_stop and save_best need test_data (the accuracy they "
                             "watch is measured on it)")
        if o["eta_schedule"] not in ETA_SCHEDULES:
            raise ValueError(f"eta_schedule must be None or 'halve-on-plateau', "
                             f"got {o['eta_schedule']!r}")
        if o["eta_schedule"] is not None and test_data is None:
            raise ValueError("eta_schedule needs test_data (the accuracy it watches is "
                             "measured on it)")
        self.patience = check_int(o["patience"], "patience", minimum=1)
        self.min_eta_factor = check_positive_float(o["min_eta_factor"], "min_eta_factor")
        if self.min_eta_factor >= 1:
            raise ValueError(f"min_eta_factor must be less than 1, got {o['min_eta_factor']!r}")
        self.options = o
        paths = {name: os.fspath(o[name]) for name in ("checkpoint", "save_best")
                 if o[name] is not None}
        if len({os.path.realpath(p) for p in paths.values()}) < len(paths):
            raise ValueError("checkpoint and save_best must be different files")
        # a resumed run goes on writing the files it wrote before
        own = set() if resume_state is None else {
            os.path.realpath(p) for p in (resume_state["path"],
                                          resume_state["definition"]["save_best"]) if p}
        for name, path in paths.items():
            check_writable(path, name)
            if (os.path.exists(path) and not o["overwrite"]
                    and os.path.realpath(path) not in own):
                raise FileExistsError(f"{name} {path} exists; pass overwrite=True to "
                                      "replace it")
        self.paths = paths
        self.trainer = Trainer(net, training_data, mini_batch_size, eta,
                               reduction=o["reduction"], threads=o["threads"],
                               kernel=o["kernel"], lmbda=o["lmbda"],
                               regularization=o["regularization"], notice=o["verbose"])
        # SGD's calls on one network go on from each other's calibration (not
        # fastgd profile's or the benchmarks' Trainers, which time the kernels)
        self.trainer.start_from_last_calibration()
        self.eta = self.trainer.eta  # the start: the schedule changes trainer.eta
        self.test = None
        self.data = {"training_data": self.trainer.data, "test_data": None}
        if test_data is not None:
            self.data["test_data"] = prepare(test_data, net.sizes[0], net.sizes[-1], net.dtype,
                                             "test_data")
            self.test = self.data["test_data"].X, self.data["test_data"].y
        self._fingerprint = None  # computed when a checkpoint needs it
        self.definition = dict(
            epochs=self.epochs, mini_batch_size=self.trainer.mini_batch_size,
            eta=self.trainer.eta, reduction=o["reduction"], shuffle=bool(o["shuffle"]),
            monitor_training_cost=bool(o["monitor_training_cost"]),
            on_divergence=o["on_divergence"], checkpoint_every=self.checkpoint_every,
            save_best=paths.get("save_best"), early_stop=self.early_stop,
            lmbda=self.trainer.lmbda, regularization=o["regularization"],
            eta_schedule=o["eta_schedule"], patience=self.patience,
            min_eta_factor=self.min_eta_factor)
        self.history = History(**(o.get("info") or {}), **self.trainer.info(),
                               epochs_planned=self.epochs)
        # Where the run stands: epochs done, and within the next one the
        # examples done, their summed cost, and the generator's state before
        # that epoch's permutation (so the permutation can be drawn again).
        self.epoch, self.position, self.partial_cost = 0, 0, 0.0
        self.rng_before = None
        if resume_state is not None:
            self._restore(resume_state)

    # -- the loop ---------------------------------------------------------------------

    def train(self):
        net, trainer, history = self.net, self.trainer, self.history
        if self.position:  # resuming mid-epoch: draw the same permutation again
            net.rng.bit_generator.state = self.rng_before
        progress = _ProgressLine() if self.options["verbose"] else None
        with _StopRequests(self.options["handle_signals"]) as stop:
            steps = trainer.epochs(self.epochs - self.epoch, shuffle=self.options["shuffle"],
                                   first=self.epoch, position=self.position,
                                   cost=self.partial_cost, should_stop=stop.requested,
                                   progress=progress)
            for step in steps:
                if progress is not None:
                    progress.clear()
                self.rng_before = trainer.rng_before
                if not step.done and math.isfinite(step.cost):
                    self.position, self.partial_cost = step.position, step.cost
                    self._interrupted(stop.signal)
                self.position, self.partial_cost = 0, 0.0
                record = self._record(step.cost, step.seconds)
                self.epoch += 1
                history.append(record)
                if self.options["verbose"]:
                    print(_epoch_line(record), flush=True)
                reason = self._after_epoch()
                if reason is not None:
                    history.stopped = reason
                    self._write_checkpoint()
                    break
                if self.epoch % self.checkpoint_every == 0 or self.epoch == self.epochs:
                    self._write_checkpoint()
                if stop.signal is not None:
                    self._interrupted(stop.signal)
        history.info.update(threading_layer=_threading_layer(),
                            kernel_in_use=trainer.current.name, kernels=trainer.build)
        return history

    def _record(self, cost, seconds):
        """The epoch's entry in the History."""
        trainer = self.trainer
        record = epoch_record(self.net, self.epoch, cost, seconds, (trainer.X, trainer.y),
                              self.test, monitor_training_cost=self.options[
                                  "monitor_training_cost"], threads=self.options["threads"])
        if self.options["eta_schedule"] is not None:
            record["eta"] = trainer.eta
        return record

    def _after_epoch(self):
        """Verdict, best network and early stop after an epoch; returns why
        training stops now, or None to go on."""
        history, o = self.history, self.options
        verdict = diagnose(history, self.trainer.eta, self.net.sizes[-1])
        if verdict and history.diverged is None:
            history.diverged = verdict
            if o["on_divergence"] == "raise":
                self._write_checkpoint()
                raise DivergenceError(verdict, history)
            warnings.warn(verdict, DivergenceWarning, stacklevel=stacklevel_outside_package())
            if o["on_divergence"] == "stop":
                return verdict
        if not math.isfinite(history[-1]["cost"]):
            return history.diverged
        if self.test is None:
            return None
        best = max(range(len(history)), key=lambda i: (history[i]["correct"], -i))
        if best == len(history) - 1 and "save_best" in self.paths:
            write_network(self.paths["save_best"], self.net, overwrite=True)
            history.best_saved = {"epoch": history[best]["epoch"], "path": self.paths["save_best"]}
        if self.early_stop is not None and len(history) - 1 - best >= self.early_stop:
            return (f"no better accuracy for {self.early_stop} epochs (early_stop): the best "
                    f"was {history[best]['correct']} / {history[best]['total']} in epoch "
                    f"{history[best]['epoch']}")
        if self.options["eta_schedule"] is not None:
            eta = scheduled_eta(history, self.eta, self.patience)
            if eta <= self.eta * self.min_eta_factor:
                return (f"eta fell to {eta:g}, {self.min_eta_factor:g} of its start "
                        f"{self.eta:g} (eta_schedule, halved after each {self.patience} "
                        "epochs without a better accuracy)")
            self.trainer.eta = eta
        return None

    def _interrupted(self, signum):
        """Write the checkpoint (mid-epoch if need be) and raise TrainingInterrupted."""
        written = self._write_checkpoint()
        self.history.stopped = f"interrupted by {_signal_name(signum)}"
        self.history.info.update(threading_layer=_threading_layer(),
                                 kernel_in_use=self.trainer.current.name,
                                 kernels=self.trainer.build)
        raise TrainingInterrupted(signum, self.history, self.epoch, self.position,
                                  written)

    # -- checkpoints ----------------------------------------------------------------

    @property
    def fingerprint(self):
        """The fingerprints (``FINGERPRINT_ALGORITHM``) of the training and test
        data, computed on first use: only a checkpoint needs them."""
        if self._fingerprint is None:
            self._fingerprint = {key: None if data is None else data.fingerprint()
                                 for key, data in self.data.items()}
        return self._fingerprint

    def _write_checkpoint(self):
        """Write the checkpoint, if asked for and the weights are finite (a diverged
        network never replaces the last good checkpoint); returns its path or None."""
        path = self.paths.get("checkpoint")
        if path is None or not np.isfinite(self.net.params).all():
            return None
        state = {"fingerprint": self.fingerprint,
                 "fingerprint_algorithm": FINGERPRINT_ALGORITHM, "definition": self.definition,
                 "seed": self.net.seed, "dtype": self.net.dtype.name,
                 "epoch": self.epoch, "position": self.position,
                 "partial_cost": self.partial_cost,
                 "rng": (self.rng_before if self.position else self.net.rng.bit_generator.state),
                 "history": {"records": list(self.history), "info": self.history.info,
                             "diverged": self.history.diverged,
                             "stopped": self.history.stopped,
                             "best_saved": self.history.best_saved}}
        write_network(path, self.net, overwrite=True, file_format=CHECKPOINT_FORMAT,
                      extra={"state": np.array(json.dumps(state, default=_json_default))})
        self.history.checkpoint = {"epoch": self.epoch, "position": self.position,
                                   "path": path}
        return path

    def _restore(self, state):
        # checkpoints written before the algorithm was tagged hold SHA-256 fingerprints
        algorithm = state.get("fingerprint_algorithm", "sha256")
        if algorithm == "sha256":
            fingerprint = {key: None if data is None else data_fingerprint(data.X, data.y)
                           for key, data in self.data.items()}
        elif algorithm == FINGERPRINT_ALGORITHM:
            fingerprint = self.fingerprint
        else:
            raise ValueError(f"the checkpoint {state['path']} fingerprints its data with "
                             f"{str(algorithm)[:40]!r}, which this fastgd does not know "
                             "(written by a newer version?)")
        for key in ("training_data", "test_data"):
            if state["fingerprint"][key] != fingerprint[key]:
                what = "no" if fingerprint[key] is None else "different"
                raise ValueError(f"the checkpoint {state['path']} was written for other "
                                 f"{key}: this call gives {what} {key} "
                                 f"({key} must be the same to resume the run)")
        saved = state["history"]
        self.history[:] = saved["records"]
        self.history.diverged = saved["diverged"]
        self.history.best_saved = saved.get("best_saved")
        for key, value in saved["info"].items():
            self.history.info.setdefault(key, value)
        self.history.info["resumed"] = {"from": state["path"], "epoch": state["epoch"],
                                        "position": state["position"]}
        self.epoch, self.position = state["epoch"], state["position"]
        self.partial_cost = state["partial_cost"]
        if self.options["eta_schedule"] is not None:
            self.trainer.eta = scheduled_eta(self.history, self.eta, self.patience)
        self.net.rng.bit_generator.state = state["rng"]
        self.rng_before = state["rng"]


def resume(path, training_data, test_data=None, *, epochs=None, threads=None, kernel="auto",
           verbose=True, checkpoint=None, save_best=None, overwrite=False,
           handle_signals=True):
    """Continue the run whose checkpoint is at ``path``; returns (network, History).

    The network, the epoch (and position within it), the generator's state, the
    History and the options that define the run (mini-batch size, eta, ...) come
    from the checkpoint, so a run of 6 epochs and a run of 3 epochs resumed for
    3 more give bit-identical weights.  ``training_data`` and ``test_data`` (pairs
    (X, y) or ``Dataset`` objects) must be the data the checkpoint was written for
    (checked by their fingerprints, ``Dataset.fingerprint``).  ``epochs``
    is the total to reach (default: the run's own); ``checkpoint`` defaults to
    ``path``, which is updated as the run goes on.
    """
    net, state = read_checkpoint(path)
    definition = state["definition"]
    net.seed = state["seed"]
    options = dict(reduction=definition["reduction"], shuffle=definition["shuffle"],
                   threads=threads, kernel=kernel, verbose=verbose,
                   monitor_training_cost=definition["monitor_training_cost"],
                   on_divergence=definition["on_divergence"],
                   checkpoint=path if checkpoint is None else checkpoint,
                   checkpoint_every=definition["checkpoint_every"],
                   save_best=definition["save_best"] if save_best is None else save_best,
                   early_stop=definition["early_stop"], overwrite=overwrite,
                   handle_signals=handle_signals,
                   **{key: definition.get(key, default)
                      for key, default in _RUN_OPTION_DEFAULTS.items()})
    total = definition["epochs"] if epochs is None else check_int(epochs, "epochs", minimum=0)
    if total < state["epoch"]:
        raise ValueError(f"epochs must be at least the {state['epoch']} epochs the checkpoint "
                         f"has done, got {total}")
    run = _Run(net, training_data, total, definition["mini_batch_size"], definition["eta"],
               test_data, options, resume_state=state)
    return net, run.train()


def read_checkpoint(path):
    """(network, state) of a checkpoint: ``state`` holds the epoch, the position in
    the next one, the run's options (``definition``), the History (``history``)
    and the data's fingerprints.  ValueError if the file is not a valid checkpoint."""
    net, texts = read_network(path, file_format=CHECKPOINT_FORMAT, extra=("state",),
                              what="fastgd checkpoint")
    try:
        state = json.loads(texts["state"])
        definition = state["definition"]
        if state["dtype"] != net.dtype.name:
            raise ValueError("dtype does not match the weights")
        state["epoch"], state["position"] = int(state["epoch"]), int(state["position"])
        for key in _RUN_OPTIONS:
            definition[key]
        state["history"]["records"], state["history"]["info"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a valid fastgd checkpoint (its state is "
                         f"damaged: {e!r})") from None
    state["path"] = os.fspath(path)
    return net, state


def data_fingerprint(X, y):
    """SHA-256 of a data set as the network sees it (inputs in its dtype, labels):
    the fingerprint of checkpoints written before ``FINGERPRINT_ALGORITHM``
    (0.1 s on MNIST), computed only to resume one of them."""
    digest = hashlib.sha256()
    digest.update(repr((X.shape, X.dtype.str)).encode())
    digest.update(np.ascontiguousarray(X).data)
    digest.update(np.ascontiguousarray(y, np.int64).data)
    return digest.hexdigest()


class _Specialization:
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
        self.thread = threading.Thread(target=self._compile, args=(trainer,), daemon=True,
                                       name="fastgd-specialize")
        self.thread.start()

    def done(self):
        return not self.thread.is_alive()

    def _compile(self, trainer):
        started = time.perf_counter()
        try:
            net = trainer.net
            self._compile_elsewhere(trainer)
            candidates = [trainer._candidate(trainer.module, plan) for plan in trainer._plans]
            # an empty run loads (or compiles) a kernel: on scratch and weights of
            # its own, of the same types, since the trainer's are in use meanwhile
            scratch = _Buffers(net, trainer.mini_batch_size, 1, trainer.buffers.group)
            params = kernels.aligned_copy(net.params)
            for candidate in candidates:
                trainer._run(candidate, np.arange(0), 0, 0, params=params, buffers=scratch)
            net.warm_up()
            self.candidates = candidates
            _record_compile_seconds(net, time.perf_counter() - started)
        except Exception as e:  # reported by the trainer, which goes on with the generic kernels
            self.error = e
        self.seconds = time.perf_counter() - started

    def _compile_elsewhere(self, trainer):
        """Compile the trainer's specialised kernels in a process of their own,
        in a session of its own (so that a Ctrl-C meant for this process does
        not stop it), and wait for it; nothing if that cannot be done (the
        caller then compiles them here)."""
        net = trainer.net
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
# the disk cache (``_Specialization``): a Trainer of the same shape, dtype, cost,
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


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a checkpoint")


class _StopRequests:
    """While training, SIGINT, SIGTERM and SIGHUP ask it to stop at the next
    segment boundary (so the work so far can be kept); a second one aborts at
    once.  Only the main thread can handle signals; elsewhere this does nothing."""

    def __init__(self, enabled):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signal = None
        self.previous = {}

    def requested(self):
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:
            self.__exit__()
            raise KeyboardInterrupt(f"second {_signal_name(signum)}: stopped at once")
        self.signal = signum

    def __enter__(self):
        if self.enabled:
            for name in ("SIGINT", "SIGTERM", "SIGHUP"):
                if hasattr(signal, name):
                    number = getattr(signal, name)
                    self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}
        return False


def _signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextmanager
def compile_notice(net, enabled=True, stream=None, dense=False, generic=False):
    """While the block runs, tell the user (on stderr) that fastgd's kernels are
    being compiled for this network's shape and input path (with generic, the
    generic kernels, compiled once for every shape; "background": while the
    specialised ones follow in the background), with an estimate from this
    machine's own past compiles and the seconds so far; nothing if they are in
    numba's disk cache."""
    module = (kernels.generic_kernels(net.sizes, net.cost_function, dense) if generic
              else kernels.kernels(net.sizes, net.dtype, net.cost_function, dense))
    names = ["train_serial"] if generic else ["train_serial", "train_parallel"]
    if not enabled or kernels.ready(module, names, net.dtype):
        yield
        return
    stream = sys.stderr if stream is None else stream
    kind = "generic" if generic else "specialised"
    estimate = compile_estimate(net, kind)
    about = f"about {estimate:.0f} s, from this machine's past compiles" if estimate else (
        "a first estimate: 10-60 s")
    if generic == "background":
        what = ("fastgd's generic kernels (first run of fastgd only; the kernels specialised "
                f"for a {net.sizes} network follow in the background)")
    elif generic:
        what = "fastgd's generic kernels (once for every network shape)"
    else:
        what = f"fastgd's kernels for a {net.sizes} network (first run of this shape only)"
    print(f"Compiling {what}: numba keeps them on disk; {about}...", file=stream, flush=True)
    started = time.perf_counter()
    finished = threading.Event()

    def tick():  # numba's compiler lets other threads run (llvmlite releases the GIL)
        while not finished.wait(1.0):
            print(f"\r  compiling: {time.perf_counter() - started:.0f} s", end="",
                  file=stream, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
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
    _record_compile_seconds(net, seconds, kind)


INPUTS = ("sparse", "dense", "both")


@dataclass(frozen=True)
class CompiledKernel:
    """One step of ``compile_kernels``: ``kernel`` (the generated module's name
    for it, such as "train_serial"; "feedforward" is both evaluation kernels),
    ``inputs`` ("sparse", "dense", or None where the kernel has one path),
    ``cached`` (numba's disk cache held it before: loaded, not compiled; None
    if unknown) and ``seconds``."""
    kernel: str
    inputs: str | None
    cached: bool | None
    seconds: float


@dataclass(frozen=True)
class CompiledKernels:
    """What ``compile_kernels`` did: the network it compiled for (``sizes``,
    ``dtype``, ``cost``, ``inputs``), the cache ``folder``, each kernel
    (``kernels``, CompiledKernel) and the ``seconds`` it all took."""
    sizes: list
    dtype: str
    cost: str
    inputs: str
    folder: str
    kernels: tuple
    seconds: float

    @property
    def compiled(self):
        """The kernels compiled now (not loaded from numba's disk cache)."""
        return tuple(k for k in self.kernels if not k.cached)


def compile_kernels(sizes, dtype="float32", cost="quadratic", *, inputs="sparse",
                    distributed=False, verbose=False):
    """Compile ahead of time, into the on-disk cache (or load from it), the
    kernels that training and evaluating a network of these sizes use, so that
    no later run compiles them (a Docker image, each node of a cluster, CI).

    cost: "quadratic" or "cross-entropy", the cost it trains on.  inputs: the
    training input path, "sparse" (the default, and MNIST's: most inputs are
    zero and are skipped), "dense" (training data with at least
    config.DENSE_FROM of their inputs nonzero) or "both".  distributed: also the
    gradient sums that distributed (MPI) training runs.  verbose: say on stderr
    while compiling (``compile_notice``).  The evaluation kernels do not depend
    on cost or inputs.  Returns CompiledKernels.
    """
    from .network import Network
    sizes = check_sizes(sizes)
    dtype = np.dtype(check_dtype(dtype)).name
    if cost not in kernels.COSTS:
        raise ValueError(f"cost must be one of {', '.join(map(repr, kernels.COSTS))}, "
                         f"got {cost!r}")
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {', '.join(map(repr, INPUTS))}, got {inputs!r}")
    net = Network(sizes, seed=0, dtype=dtype, cost=cost)
    began = time.perf_counter()
    steps = []
    with _specialize("now"):  # the specialised kernels, not the generic stopgap
        for dense in ((False, True) if inputs == "both" else (inputs == "dense",)):
            data = _one_example(net, dense)
            with compile_notice(net, verbose, dense=dense):
                steps += _compile_training(net, data, dense)
            if distributed:
                steps += _compile_distributed(net, data, dense)
        module = kernels.kernels(net.sizes, net.dtype, net.cost_function)
        steps.append(_compile_step("feedforward", None,
                                   [module.feedforward_serial, module.feedforward_parallel],
                                   net.warm_up))
    return CompiledKernels(sizes, dtype, cost, inputs, kernels.cache.module_folder(create=False),
                           tuple(steps), time.perf_counter() - began)


def _one_example(net, dense):
    """A training set of one example whose inputs take the dense or the sparse path."""
    X = np.full((1, net.sizes[0]), 1 if dense else 0, net.dtype)
    if kernels.uses_dense_path(X)[0] != dense:
        raise ValueError(f"inputs={'dense' if dense else 'sparse'!r}: training never takes "
                         "that path with this fastgd.config.DENSE_FROM")
    return X, np.zeros(1, np.int64)


def _compile_step(kernel, inputs, fns, run):
    """CompiledKernel of ``run()``, which compiles (or loads) the numba kernels fns."""
    known = [kernels.on_disk(fn) for fn in fns]
    cached = None if None in known else all(known)
    began = time.perf_counter()
    run()
    return CompiledKernel(kernel, inputs, cached, time.perf_counter() - began)


def _compile_training(net, data, dense):
    """Compile the serial and the parallel training kernel as a Trainer does
    (an empty run), so that they have exactly the argument types of training."""
    module = kernels.kernels(net.sizes, net.dtype, net.cost_function, dense)
    return [_compile_step(f"train_{kind}", "dense" if dense else "sparse",
                          [getattr(module, f"train_{kind}")],
                          functools.partial(Trainer, net, data, 1, 1.0, kernel=kind))
            for kind in ("serial", "parallel")]


def _compile_distributed(net, data, dense):
    """Compile the serial and the parallel gradient sum as distributed training
    does (``distributed.Run.prepare`` of one emulated rank, no epochs)."""
    from .distributed import Run

    def prepare(kind):
        Run(net, shards=1, verbose=False).prepare(
            data, 0, 1, 1.0, None, "mean", False, None, False, "stop", 1, None, kernel=kind)

    module = kernels.kernels(net.sizes, net.dtype, net.cost_function, dense)
    return [_compile_step(f"gradient_sum_{kind}", "dense" if dense else "sparse",
                          [getattr(module, f"gradient_sum_{kind}")],
                          functools.partial(prepare, kind))
            for kind in ("serial", "parallel")]


@contextmanager
def _specialize(mode):
    """config.SPECIALIZE set to mode while the block runs."""
    before, config.SPECIALIZE = config.SPECIALIZE, mode
    try:
        yield
    finally:
        config.SPECIALIZE = before


# Past compiles kept per kind for the estimate, the most recent last.
_COMPILES_KEPT = 8


def _compile_units(net, kind):
    """What a compile's time grows with: the generic kernels' code is the same
    for every shape; the specialised kernels' grows with the outputs written
    out (the padded widths of the layers after the input)."""
    return 1.0 if kind == "generic" else float(sum(kernels.padded(w) for w in net.sizes[1:]))


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
    """Seconds compiling `kind` ("generic" or "specialised") kernels for this
    network should take here: the median of this machine's past compiles, per
    unit of ``_compile_units``; None before the first."""
    seconds_per_unit = _compile_records().get(kind)
    if not seconds_per_unit:
        return None
    return float(np.median(seconds_per_unit)) * _compile_units(net, kind)


def _record_compile_seconds(net, seconds, kind="specialised"):
    """Keep how long compiling took, for the next estimate (best effort: a cache
    folder that cannot be written only costs the estimate)."""
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


def epoch_record(net, epoch, cost, seconds, training_data, test_data, *,
                 monitor_training_cost=False, threads=None):
    """A History entry: the epoch, its seconds, the running cost (``cost`` is the
    sum of C_x over the epoch), and what evaluating the network now tells
    (test_data's results, C on the training set if monitored, the pinned output
    neurons on the first SATURATION_SAMPLE training inputs).  The data must be
    checked already (``check_data``): this runs after every epoch."""
    X, y = training_data
    record = {"epoch": epoch, "seconds": seconds, "cost": cost / len(y)}
    with numba_threads(threads):
        if monitor_training_cost:
            record["training_cost"] = net._evaluation(X, y).cost
        if test_data is not None:
            result = net._evaluation(*test_data)
            record.update(correct=result.correct, total=result.total,
                          accuracy=result.accuracy, test_cost=result.cost)
            if result.nonfinite:
                record["nonfinite_outputs"] = result.nonfinite
        record["pinned_outputs"] = net._evaluation(X[:SATURATION_SAMPLE],
                                                   y[:SATURATION_SAMPLE]).pinned
    return record


def compiling_needed(net, dense=False):
    """True if training this network's shape will compile kernels first (numba's
    disk cache has none for it yet): tens of seconds, worth telling the user."""
    module = kernels.kernels(net.sizes, net.dtype, net.cost_function, dense)
    return not kernels.ready(module, ["train_serial", "train_parallel"], net.dtype)


class _ProgressLine:
    """Shows "Epoch 3: 20000 / 50000 examples, 4.1 s" on stderr once an epoch is slow."""

    def __init__(self):
        self.shown = False

    def __call__(self, epoch, done, n, seconds):
        if seconds > PROGRESS_AFTER and done < n:
            print(f"\rEpoch {epoch}: {done} / {n} examples, {seconds:.1f} s",
                  end="", file=sys.stderr, flush=True)
            self.shown = True

    def clear(self):
        if self.shown:
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr, flush=True)
            self.shown = False


class _Buffers:
    """Scratch arrays for the training kernel, allocated once per training run:
    activations and errors for `rows` examples, and for mini-batches larger
    than direct_max, nabla and a buffer per group of the largest chunk."""

    def __init__(self, net, m, rows, group):
        layout = net.layout
        self.direct_max = chunk_size(layout)
        self.group = group
        per_example = int(layout.a_off[-1])
        # on cache lines, as params is (``kernels.aligned_zeros``)
        self.A = kernels.aligned_zeros(rows * per_example, net.dtype)
        self.D = kernels.aligned_zeros(rows * per_example, net.dtype)  # padding stays zero
        self.costs = kernels.aligned_zeros(rows, np.float64)  # written by every thread
        large = m > self.direct_max
        self.nabla = kernels.aligned_zeros(layout.n_params if large else 0, net.dtype)
        # zero between uses: the kernel zeroes each buffer as it adds it to nabla
        self.groups = kernels.aligned_rows(-(-rows // group) if large else 0, layout.n_params,
                                            net.dtype)
        self.layout = layout

    @property
    def scratch(self):
        return kernels.Scratch(self.nabla, self.groups, self.A, self.D, self.costs)


def _epoch_line(record):
    seconds = f"({record['seconds']:.2f} s)"
    if "eta" in record:  # a schedule is on
        seconds = f"eta {record['eta']:g}  {seconds}"
    if "correct" in record:
        return f"Epoch {record['epoch']}: {record['correct']} / {record['total']}  {seconds}"
    return f"Epoch {record['epoch']} complete  {seconds}"


def diagnose(history, eta, n_outputs):
    """Why training has failed, from its History, or None if it looks healthy.

    * diverged: the cost is NaN or infinite;
    * saturated: for SATURATED_EPOCHS epochs in a row, at least half the output
      neurons are pinned at 0 or 1 for (almost) every input (``pinned_outputs``,
      measured on the first SATURATION_SAMPLE training inputs): with
      sigma'(z) ~ 0 they no longer learn, the mark of an eta too large (with the
      cross-entropy cost the output error a - y has no sigma'(z), but outputs
      pinned whatever the input are still the mark of steps far too large; a
      healthy run's outputs, near 0 for the nine digits in ten not theirs and
      near 1 for the tenth, are not pinned);
    * stalled: STALL_EPOCHS epochs after the first, the cost has not fallen
      STALL_TOLERANCE below the first epoch's;
    * diverging: the cost of each of the last DIVERGENCE_PATIENCE epochs is more
      than DIVERGENCE_TOLERANCE above the best before them.

    Each test looks at several epochs and has a tolerance, so the wiggle of a
    healthy run's cost (a few per cent) is never taken for failure.
    """
    key = "training_cost" if "training_cost" in history[-1] else "cost"
    costs = history.column(key)
    last = history[-1]
    if not math.isfinite(costs[-1]):
        return (f"training diverged in epoch {last['epoch']}: the cost is {costs[-1]} (the "
                f"weights are no longer finite); eta = {eta:g} is too large, try a smaller eta")
    accuracy = (f", accuracy {last['accuracy']:.1%} (chance is {1 / n_outputs:.0%})"
                if "accuracy" in last else "")
    pinned = history.column("pinned_outputs")[-SATURATED_EPOCHS:]
    if len(pinned) == SATURATED_EPOCHS and np.all(pinned >= n_outputs / 2):
        why = ("their sigma'(z) is about 0, so they no longer learn"
               if history.info.get("cost", "quadratic") == "quadratic" else
               "with the cross-entropy cost, a sign that the steps are far too large")
        return (f"training has saturated: in epochs {history[-SATURATED_EPOCHS]['epoch']}-"
                f"{last['epoch']}, {int(pinned[-1])} of the {n_outputs} output neurons are "
                f"pinned at 0 or 1 whatever the input (cost C = {costs[-1]:.4g}{accuracy}); "
                f"{why}.  eta = {eta:g} is "
                "probably too large: try a smaller eta (10 times smaller, say)")
    if len(costs) > STALL_EPOCHS and costs[1:].min() > (1 - STALL_TOLERANCE) * costs[0]:
        return (f"training has stalled: after {len(costs)} epochs the cost is "
                f"{costs[-1]:.4g}, never {STALL_TOLERANCE:.0%} below the first epoch's "
                f"{costs[0]:.4g}{accuracy}.  eta = {eta:g} may be too large (saturated "
                "neurons) or too small: try eta 10 times smaller, then larger")
    window = costs[-DIVERGENCE_PATIENCE:]
    if len(costs) > DIVERGENCE_PATIENCE:
        best = costs[:-DIVERGENCE_PATIENCE].min()
        if np.all(window > (1 + DIVERGENCE_TOLERANCE) * best):
            return (f"training is diverging: the cost of each of the last "
                    f"{DIVERGENCE_PATIENCE} epochs is more than {DIVERGENCE_TOLERANCE:.0%} "
                    f"above the best so far ({best:.4g}, now {costs[-1]:.4g}); eta = {eta:g} "
                    "is probably too large, try a smaller eta")
    return None


def _threading_layer():
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        return "not yet chosen"
