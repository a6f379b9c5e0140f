"""The epoch driver: shuffle, mini-batch schedule, kernel choice, history, divergence.

One epoch is one pass over the shuffled training data, split into mini-batches
of ``mini_batch_size`` examples; each mini-batch makes one step
w -> w - (eta/m) sum_j dC_Xj/dw (likewise b).  The whole epoch runs inside a
numba kernel (``_kernels.train_serial`` or ``train_parallel``); Python only
draws the permutation, evaluates, and reports.
"""

import math
import os
import sys
import time
import warnings
from contextlib import contextmanager

import numba
import numpy as np

from . import _kernels
from ._validation import check_data, check_int, check_positive_float

# Epochs of growing cost, in a row, that count as divergence.
DIVERGENCE_PATIENCE = 3

# An epoch is run in segments of about this many examples (whole mini-batches),
# so long epochs can show progress and stop early on NaN.
_SEGMENT = 10_000

# Seconds into an epoch after which progress is shown.
_PROGRESS_AFTER = 2.0


class DivergenceError(RuntimeError):
    """Training diverged: the cost became NaN/inf or kept growing."""


class DivergenceWarning(RuntimeWarning):
    """Training diverged and was stopped (or continued, if asked)."""


class History(list):
    """One dict per epoch: epoch, seconds, cost, and when measured correct, total,
    accuracy (test_data) and training_cost (monitor_training_cost).

    ``cost`` is the running training cost: the mean of C_x over the epoch, each
    C_x computed by the forward pass of its own mini-batch step (free, but
    measured while the weights move).  ``training_cost`` is C on the whole
    training set after the epoch.  ``diverged`` holds the diagnosis, or None.
    """

    def __init__(self, *args, **info):
        super().__init__(*args)
        self.diverged = None
        self.info = info

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


# Examples per piece of the parallel forward/backward pass, and pieces of weight
# rows per thread in the parallel update: many small pieces, handed out as
# threads become free, so that a thread the OS preempts holds up only its piece.
EXAMPLE_BLOCK = 16
ROW_BLOCKS_PER_THREAD = 4
# A mini-batch larger than chunk_size sums its gradient in groups of this many
# examples (each group in a buffer of its own, then the groups in order), so
# that each thread adds up examples whose inputs it has just read.  Like
# chunk_size it decides the order of the additions, so it is a constant; its
# size trades the cost of zeroing and adding a buffer per group (one thread)
# against how many threads a mini-batch can keep busy (BENCHMARKS.md).
GROUP = 256
# Examples the parallel kernel backpropagates between two additions of the
# groups to nabla: more than the serial kernel's, to start fewer parallel
# regions (the size does not change the result).
PARALLEL_CHUNK = 1024

# Auto kernel: each candidate is timed on about this many examples (whole
# mini-batches), twice, alternating; the choice is timed again when a segment's
# time per example drifts by more than DRIFT from what the choice was timed at,
# and after RECHECK_EPOCHS epochs (doubling each time the choice stands), since
# a load that goes away need not change the speed of the kernel in use.
TRIAL_EXAMPLES = 2048
DRIFT = 0.3
RECHECK_EPOCHS = 4


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


class _Candidate:
    """One way to run the training kernel: which compiled variant, on how many
    threads, with how the work is cut into pieces.  All give the same bits."""

    def __init__(self, name, fn, threads, splits, chunk, example_block):
        self.name, self.fn, self.threads = name, fn, threads
        self.splits, self.chunk, self.example_block = splits, chunk, example_block


class Trainer:
    """What SGD prepares once for a training run, and one epoch of it.

    Checks the data and options, converts X to the network's dtype (a copy
    only if needed), indexes its nonzero inputs, picks the kernel and
    allocates scratch; ``run_epoch(order)`` then runs one epoch over
    ``X[order]``.  ``SGD`` uses it, and so do the benchmarks and ``fastgd
    profile``, so they time exactly what training runs.

    With ``kernel="auto"`` and more than one thread, the serial and the
    parallel kernel are both candidates: the first epoch times each on a few
    thousand examples of real training (they give identical weights, so the
    timing costs no work), keeps the faster, and times them again whenever an
    epoch segment's speed drifts.  ``calibration`` records each decision.
    """

    def __init__(self, net, training_data, mini_batch_size, eta, *, reduction="mean",
                 threads=None, kernel="auto"):
        if not np.isfinite(net.params).all():
            raise ValueError("the network's weights or biases are not finite; "
                             "set finite values (or draw a new Network) before training")
        self.net = net
        self.X, self.y = check_data(training_data, net.sizes[0], net.sizes[-1], net.dtype,
                                    "training_data")
        self.n = n = self.X.shape[0]
        if n == 0:
            raise ValueError("training_data must hold at least one example")
        self.mini_batch_size = m = n if mini_batch_size is None else check_int(
            mini_batch_size, "mini_batch_size", minimum=1, maximum=n)
        self.eta = check_positive_float(eta, "eta")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.mean = reduction == "mean"
        with numba_threads(threads) as n_threads:
            self.threads = n_threads
        self.requested_threads = threads
        self.kernel_name, self.kernel_reason = choose_kernel(m, n_threads, kernel)
        self.indptr, self.indices, self.values = _kernels.nonzero_columns(self.X)
        module = _kernels.kernels(net.sizes, net.dtype)
        direct_max = chunk_size(net.layout)
        group = min(GROUP, direct_max)
        self.candidates = []
        if self.kernel_name in ("serial", "auto"):
            self.candidates.append(_Candidate("serial", module.train_serial, 1, self._splits(1),
                                              _chunk(m, direct_max, group), direct_max))
        if self.kernel_name in ("parallel", "auto"):
            self.candidates.append(_Candidate(
                "parallel", module.train_parallel, n_threads,
                # only direct mini-batches split their update by weight rows
                self._splits(ROW_BLOCKS_PER_THREAD * n_threads if m <= direct_max else 1),
                _chunk(m, max(direct_max, PARALLEL_CHUNK, 2 * group * n_threads), group),
                EXAMPLE_BLOCK))
        self.buffers = _Buffers(net, m, max(min(m, direct_max),
                                            max(c.chunk for c in self.candidates)), group)
        for c in self.candidates:
            c.spans = np.zeros((len(self.buffers.costs) if c.splits.size else 0,
                                c.splits.shape[1]), np.uint64)
        self.current = self.candidates[0]
        self.calibration = []
        self._reference = None  # s/example the current candidate was timed at
        self._recheck = len(self.candidates) > 1
        self._trained = 0  # examples trained so far
        self._recheck_interval = RECHECK_EPOCHS * n
        self._next_recheck = None
        self.segment = max(1, _SEGMENT // m) * m
        # An empty run compiles each kernel (or loads it from numba's cache) now,
        # so that the first epoch's time is training time only.
        for candidate in self.candidates:
            self._run(candidate, np.arange(0), 0, 0)

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
        bounds = _kernels.balanced_bounds(self.indices, self.net.sizes[0], n_blocks)
        return _kernels.row_splits(self.indptr, self.indices, bounds)

    def info(self):
        """The run's settings, as recorded in a History."""
        return dict(mini_batch_size=self.mini_batch_size, eta=self.eta, threads=self.threads,
                    kernel=self.kernel_name, kernel_reason=self.kernel_reason,
                    kernel_in_use=self.current.name, calibration=self.calibration,
                    threading_layer=_threading_layer(), dtype=self.net.dtype.name)

    def run_epoch(self, order, progress=None, epoch=None):
        """One epoch over the examples X[order]; returns the sum of C_x over them.

        ``progress(done, n)`` is called after each segment of about _SEGMENT
        examples; the epoch stops early once the cost is not finite.
        """
        total_cost = 0.0
        start = 0
        while start < self.n:
            if self._recheck:
                cost, start = self._calibrate(order, start, epoch)
                total_cost += cost
                if start >= self.n or not math.isfinite(total_cost):
                    break
            stop = min(self.n, start + self.segment)
            began = time.perf_counter()
            total_cost += self.run_slice(order, start, stop)
            self._watch((time.perf_counter() - began) / (stop - start), stop - start)
            self._trained += stop - start
            start = stop
            if not math.isfinite(total_cost):
                break
            if progress is not None:
                progress(stop, self.n)
        return total_cost

    def run_slice(self, order, start, stop):
        """Train on the examples order[start:stop] (start at a mini-batch boundary)
        with the kernel in use; returns the sum of C_x over them."""
        return self._run(self.current, order, start, stop)

    def _run(self, candidate, order, start, stop, params=None):
        with numba_threads(candidate.threads):
            return _kernels.call(
                candidate.fn, self.indptr, self.indices, self.values, self.y, order, start,
                stop, self.mini_batch_size, self.eta, self.mean,
                self.net.params if params is None else params, *self.buffers.args(),
                candidate.splits, candidate.spans, self.buffers.direct_max, self.buffers.group,
                candidate.chunk, candidate.example_block, candidate.threads)

    def _calibrate(self, order, start, epoch):
        """Time every candidate, keep the fastest; returns (cost, new start).

        Each candidate trains twice on about TRIAL_EXAMPLES examples, in turn.
        When the epoch has room, these are the epoch's own next examples (the
        candidates give the same weights, so nothing is wasted); otherwise (a
        few huge mini-batches) they run on a copy of the weights, which is
        thrown away."""
        m = self.mini_batch_size
        trial = max(1, -(-TRIAL_EXAMPLES // m)) * m
        rounds = 2
        in_place = start + rounds * len(self.candidates) * trial <= self.n
        seconds = {c.name: [] for c in self.candidates}
        cost = 0.0
        for _ in range(rounds):
            for candidate in self.candidates:
                if in_place:
                    began = time.perf_counter()
                    cost += self._run(candidate, order, start, start + trial)
                    seconds[candidate.name].append((time.perf_counter() - began) / trial)
                    start += trial
                else:
                    n_trial = min(self.n, TRIAL_EXAMPLES)
                    scratch = self.net.params.copy()
                    began = time.perf_counter()
                    self._run(candidate, order, 0, n_trial, params=scratch)
                    seconds[candidate.name].append((time.perf_counter() - began) / n_trial)
        best = {name: min(times) for name, times in seconds.items()}
        previous = self.current.name if self.calibration else None
        self.current = next(c for c in self.candidates if c.name == min(best, key=best.get))
        self._reference = best[self.current.name]
        self._recheck = False
        self._recheck_interval = (2 * self._recheck_interval if previous == self.current.name
                                  else RECHECK_EPOCHS * self.n)
        if in_place:
            self._trained += rounds * len(self.candidates) * trial
        self._next_recheck = self._trained + self._recheck_interval
        self.calibration.append({"epoch": epoch, "s_per_example": best,
                                 "chose": self.current.name,
                                 "timed_on": "training" if in_place else "a copy of the weights"})
        return cost, start

    def _watch(self, s_per_example, examples):
        """Ask for new timings when a long enough segment's speed drifts, or when
        the current choice is due to be checked again."""
        if self._reference is None:
            return
        due = self._trained + examples >= self._next_recheck
        drifted = (examples >= TRIAL_EXAMPLES
                   and abs(s_per_example / self._reference - 1.0) > DRIFT)
        self._recheck = due or drifted


def SGD(net, training_data, epochs, mini_batch_size, eta, test_data=None, *,
        reduction="mean", shuffle=True, threads=None, kernel="auto", verbose=True,
        monitor_training_cost=False, on_divergence="stop"):
    """Train ``net`` by stochastic gradient descent; returns a ``History``.

    Parameters
    ----------
    training_data : (X, y)
        X of shape (n, sizes[0]), y integer labels of shape (n,).
    epochs : int >= 0
    mini_batch_size : int in 1..n, or None
        m examples per step: 1 is online learning, None (or n) full batch.
        When m does not divide n, the last mini-batch of each epoch is
        shorter and its step uses its own length (as network.py does).
    eta : float > 0
        The learning rate.
    test_data : (X, y), optional
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
        What to do when the cost becomes NaN/inf, or grows for
        DIVERGENCE_PATIENCE epochs in a row (Delta C > 0: eta too large).
    """
    epochs = check_int(epochs, "epochs", minimum=0)
    if on_divergence not in ("stop", "warn", "raise"):
        raise ValueError(f"on_divergence must be 'stop', 'warn' or 'raise', got {on_divergence!r}")
    if verbose and compiling_needed(net):
        print(f"Compiling fastgd's kernels for a {net.sizes} network (once per network "
              "shape: numba keeps them on disk for later runs)...", file=sys.stderr, flush=True)
    trainer = Trainer(net, training_data, mini_batch_size, eta, reduction=reduction,
                      threads=threads, kernel=kernel)
    if test_data is not None:
        test_X, test_y = check_data(test_data, net.sizes[0], net.sizes[-1], net.dtype,
                                    "test_data")
    n = trainer.n
    history = History(**trainer.info())
    for epoch in range(epochs):
        order = net.rng.permutation(n) if shuffle else np.arange(n)
        start_time = time.perf_counter()
        progress = _ProgressLine(epoch, start_time) if verbose else None
        total_cost = trainer.run_epoch(order, progress, epoch=epoch)
        record = {"epoch": epoch, "seconds": time.perf_counter() - start_time,
                  "cost": total_cost / n}
        if progress is not None:
            progress.clear()
        with numba_threads(threads):
            if monitor_training_cost:
                record["training_cost"] = net._evaluate(trainer.X, trainer.y)[1]
            if test_data is not None:
                correct, test_cost = net._evaluate(test_X, test_y)
                record.update(correct=correct, total=len(test_y),
                              accuracy=correct / len(test_y) if len(test_y) else float("nan"),
                              test_cost=test_cost)
        history.append(record)
        if verbose:
            print(_epoch_line(record), flush=True)
        diagnosis = _divergence(history, trainer.eta)
        if diagnosis and history.diverged is None:
            history.diverged = diagnosis
            if on_divergence == "raise":
                raise DivergenceError(diagnosis)
            warnings.warn(diagnosis, DivergenceWarning, stacklevel=_stacklevel_outside_package())
            if on_divergence == "stop" or not math.isfinite(total_cost):
                break
    history.info.update(threading_layer=_threading_layer(), kernel_in_use=trainer.current.name)
    return history


def compiling_needed(net):
    """True if training this network's shape will compile kernels first (numba's
    disk cache has none for it yet): tens of seconds, worth telling the user."""
    module = _kernels.kernels(net.sizes, net.dtype)
    return any(_kernels.on_disk(k) is False
               for k in (module.train_serial, module.train_parallel))


class _ProgressLine:
    """Shows "Epoch 3: 20000 / 50000 examples, 4.1 s" on stderr once an epoch is slow."""

    def __init__(self, epoch, start_time):
        self.epoch, self.start_time, self.shown = epoch, start_time, False

    def __call__(self, done, n):
        elapsed = time.perf_counter() - self.start_time
        if elapsed > _PROGRESS_AFTER and done < n:
            print(f"\rEpoch {self.epoch}: {done} / {n} examples, {elapsed:.1f} s",
                  end="", file=sys.stderr, flush=True)
            self.shown = True

    def clear(self):
        if self.shown:
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr, flush=True)


class _Buffers:
    """Scratch arrays for the training kernel, allocated once per training run:
    activations and errors for `rows` examples, and for mini-batches larger
    than direct_max, nabla and a buffer per group of the largest chunk."""

    def __init__(self, net, m, rows, group):
        layout = net.layout
        self.direct_max = chunk_size(layout)
        self.group = group
        per_example = int(layout.a_off[-1])
        self.A = np.zeros(rows * per_example, net.dtype)
        self.D = np.zeros(rows * per_example, net.dtype)  # padding must stay zero
        self.costs = np.empty(rows, np.float64)
        large = m > self.direct_max
        self.nabla = np.empty(layout.n_params if large else 0, net.dtype)
        # zero between uses: the kernel zeroes each buffer as it adds it to nabla
        self.groups = np.zeros((-(-rows // group) if large else 0, layout.n_params), net.dtype)
        self.layout = layout

    def args(self):
        return (self.nabla, self.groups, *self.layout.kernel_args(), self.A, self.D, self.costs)


def _epoch_line(record):
    seconds = f"({record['seconds']:.2f} s)"
    if "correct" in record:
        return f"Epoch {record['epoch']}: {record['correct']} / {record['total']}  {seconds}"
    return f"Epoch {record['epoch']} complete  {seconds}"


def _divergence(history, eta):
    """The diagnosis if training has diverged, else None."""
    key = "training_cost" if "training_cost" in history[-1] else "cost"
    costs = history.column(key)
    if not math.isfinite(costs[-1]):
        return (f"training diverged in epoch {history[-1]['epoch']}: the cost is {costs[-1]} "
                f"(weights are no longer finite); eta = {eta:g} is too large, try a smaller eta")
    if len(costs) > DIVERGENCE_PATIENCE and np.all(np.diff(costs[-DIVERGENCE_PATIENCE - 1:]) > 0):
        return (f"training is diverging: the cost grew for {DIVERGENCE_PATIENCE} epochs in a "
                f"row (Delta C > 0, now {costs[-1]:.4g}); eta = {eta:g} is probably too large, "
                "try a smaller eta")
    return None


def _stacklevel_outside_package():
    """The warnings.warn stacklevel of the first caller outside fastgd, so that a
    warning points at the user's line whether they called Network.SGD or fastgd.SGD."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _threading_layer():
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        return "not yet chosen"
