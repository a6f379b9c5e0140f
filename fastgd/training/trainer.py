"""The Trainer: what a training run prepares once (data indexed, kernel chosen,
scratch allocated, kernels compiled), and the one epoch loop of fastgd
(``Trainer.epochs``), which SGD, ``fastgd profile`` and ``fastgd compare`` all
train through.

One epoch is one pass over the shuffled training data, split into mini-batches
of ``mini_batch_size`` examples; each mini-batch makes one step
w -> w - (eta/m) sum_j dC_Xj/dw (likewise b).  The whole epoch runs inside a
numba kernel (``kernels.train_serial`` or ``train_parallel``); Python only
draws the permutation, evaluates, and reports.
"""

import math
import sys
import time
import warnings
import weakref
from typing import Any

import numpy as np

from .. import config, kernels
from .._validation import check_int, check_positive_float, stacklevel_outside_package
from ..config import (DRIFT, EXAMPLE_BLOCK, PARALLEL_CHUNK, RECHECK_EPOCHS,
                      ROW_BLOCKS_PER_THREAD, SEGMENT, TRIAL_CUTOFF, TRIAL_EXAMPLES)
from ..dataset import prepare
from ..network import check_regularization
from .buffers import Buffers
from .history import EpochStep
from .kernel_choice import (GROUP, Candidate, choose_kernel, chunk, chunk_size, numba_threads,
                            parallel_thread_counts, threading_layer)
from .options import REDUCTIONS, SPECIALIZE_MODES, check_choice
from .specialization import Specialization, compile_notice

# Each network's last calibration per settings (Trainer._remember_calibration).
_LAST_CALIBRATION: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


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
    parallel kernel are both candidates, the parallel one on all the threads
    and on halves of them down to 2 (``parallel_thread_counts``): the first
    epoch times each on a few thousand examples of real training (they give
    identical weights, so the timing costs no work), keeps the fastest, and
    times them again whenever an epoch segment's speed drifts.
    ``calibration`` records each decision, by the candidates' labels.

    Where the kernels specialised for the network's widths are not compiled
    yet, ``specialize`` (default: config.SPECIALIZE) says what to do:
    "background" trains on the starter kernel where it can
    (``kernels.starter.eligible``; compiled in seconds), else on the generic
    kernels (compiled once for every shape), both with the same bits, and
    switches to the specialised ones at a segment boundary once they are
    compiled (``Specialization``); "now" compiles them
    first; "never" trains on the generic kernels only.  ``build`` says which
    train now.

    With a ``combiner`` (``fastgd.training.combine``), each step's gradient is
    summed over the combiner's ranks instead, one step at a time: the same loop,
    evaluation and History, for P processes over MPI or P ranks emulated here.
    """

    def __init__(self, net, training_data, mini_batch_size, eta, *, reduction="mean",
                 threads=None, kernel="auto", lmbda=0.0, regularization="L2", notice=False,
                 specialize=None, combiner=None, defer_check=False):
        if not np.isfinite(net.params).all():
            raise ValueError("the network's weights or biases are not finite; "
                             "set finite values (or draw a new Network) before training")
        self.net = net
        with numba_threads(threads) as n_threads:
            self.threads = n_threads
        # checked and indexed once per data set (see fastgd.dataset), by the
        # threads that will train on them; with defer_check, a plain X given
        # again is compared with its index by the caller (self.data.pending)
        self.data = prepare(training_data, net.sizes[0], net.sizes[-1], net.dtype,
                            "training_data", n_threads, defer=defer_check)
        self.X, self.y = self.data.X, self.data.y
        self.n = n = self.X.shape[0]
        if n == 0:
            raise ValueError("training_data must hold at least one example")
        self.mini_batch_size = m = n if mini_batch_size is None else check_int(
            mini_batch_size, "mini_batch_size", minimum=1, maximum=n)
        self.eta = check_positive_float(eta, "eta")
        self.mean = check_choice(reduction, "reduction", REDUCTIONS) == "mean"
        # n in the decay eta lmbda / n is the training set's size, as in the book
        self.lmbda = check_regularization(lmbda, regularization)
        self.regularization = regularization
        self.combiner = combiner
        if combiner is not None and self.lmbda != 0.0:
            raise ValueError("lmbda must be 0 when the gradient is combined over ranks "
                             "(regularization is not implemented there)")
        self.requested_threads = threads
        self.kernel_name, self.kernel_reason = choose_kernel(m, n_threads, kernel)
        self.dense, self.nonzero_fraction = self.data.dense, self.data.nonzero_fraction
        self.examples = self.data.build_examples(n_threads)
        self.module = kernels.kernels(net.sizes, net.dtype, net.cost_function, self.dense)
        direct_max = chunk_size(net.layout)
        group = min(GROUP, direct_max)
        if combiner is not None:  # a rank sums at most its share of a mini-batch
            m = max(1, -(-m // combiner.size))
        # (name, threads, row blocks of a direct update, chunk, example block)
        self.plans = []
        if self.kernel_name in ("serial", "auto"):
            self.plans.append(("serial", 1, 1, chunk(m, direct_max, group), direct_max))
        if self.kernel_name in ("parallel", "auto"):
            # auto also times the parallel kernel on fewer threads than the run has
            for t in (parallel_thread_counts(n_threads) if self.kernel_name == "auto"
                      else [n_threads]):
                self.plans.append((
                    "parallel", t,
                    # only direct mini-batches split their update by weight rows
                    ROW_BLOCKS_PER_THREAD * t if m <= direct_max and combiner is None else 1,
                    chunk(m, max(direct_max, PARALLEL_CHUNK, 2 * group * t), group),
                    EXAMPLE_BLOCK))
        if self.kernel_name == "hogwild":  # each thread runs the serial plan on its own share
            self.plans.append(("hogwild", n_threads, 1, chunk(m, direct_max, group), direct_max))
        self.buffers = Buffers(net, m, max(min(m, direct_max),
                                            max(plan[3] for plan in self.plans)), group,
                               n_threads if self.kernel_name == "hogwild" else None,
                               summing=combiner is not None, direct_max=direct_max)
        self.calibration = []
        self._reference = None  # s/example the current candidate was timed at
        self._trained = 0  # examples trained so far
        self._recheck_interval = RECHECK_EPOCHS * n
        self._next_recheck = None
        self.segment = max(1, SEGMENT // self.mini_batch_size) * self.mini_batch_size
        self.position = 0
        self.rng_before = None
        self.notice = notice
        self.specialized = None  # the background compile of the specialised kernels
        mode = (check_choice(config.SPECIALIZE, "config.SPECIALIZE", SPECIALIZE_MODES)
                if specialize is None else check_choice(specialize, "specialize",
                                                        SPECIALIZE_MODES))
        if not kernels.specialisable(net.sizes):
            mode = "never"  # too wide to write out (config.SPECIALIZE_MAX_OUTPUTS)
        names = list(dict.fromkeys(f"train_{plan[0]}" for plan in self.plans))
        if combiner is not None:
            self._combined(self._generic() if mode == "never" else self.module, notice, mode)
            return
        if mode == "background" and not kernels.ready(self.module, names, net.dtype):
            # Train now on kernels that compile in seconds (the starter) or once for
            # every shape (the generic ones, the first plan only), and switch to the
            # specialised ones at a segment boundary once a background process has
            # compiled them.
            if kernels.starter.eligible(net.cost_function, self.dense, self.mini_batch_size,
                                        direct_max, self.lmbda != 0.0, self.plans[0][0]):
                starter = kernels.starter.kernels(net.cost_function)  # evaluates too
                self._use([self.candidate(starter, self.plans[0])])
                with compile_notice(net, notice, generic="starter", names=["train_serial"],
                                    module=starter):
                    self.run_candidate(self.current, np.arange(0), 0, 0)
            else:
                self._use([self.candidate(self._generic(), self.plans[0])])
                with compile_notice(net, notice, dense=self.dense, generic="background",
                                    names=names[:1]):
                    self.run_candidate(self.current, np.arange(0), 0, 0)
                    # evaluation between epochs must not wait for numba's compiler lock,
                    # which the background compile holds for tens of seconds at a time
                    net.warm_up(generic=True)
            self.specialized = Specialization(self)
            return
        module = self._generic() if mode == "never" else self.module
        self._use([self.candidate(module, plan) for plan in self.plans])
        # An empty run compiles each kernel (or loads it from numba's cache) now,
        # so that the first epoch's time is training time only; with notice, the
        # user is told when that means compiling (``compile_notice``).
        with compile_notice(net, notice, dense=self.dense, generic=mode == "never",
                            names=names):
            for candidate in self.candidates:
                self.run_candidate(candidate, np.arange(0), 0, 0)

    def _generic(self):
        """The generic kernels for this run's cost and input path."""
        return kernels.generic_kernels(self.net.sizes, self.net.cost_function, self.dense)

    def _combined(self, module, notice, mode):
        """With a combiner: module's gradient-sum kernels, compiled now (its
        ranks in turn) and, if there are two, timed on the first examples (no
        weight changes) and the faster kept: rechecking them during the epoch,
        as without a combiner, would train other steps on each rank."""
        self._use([self.candidate(module, plan, kind="gradient_sum") for plan in self.plans])
        self._recheck = False

        def compile_all():
            with compile_notice(self.net, notice, dense=self.dense, generic=mode == "never",
                                names=list(dict.fromkeys(f"gradient_sum_{plan[0]}"
                                                         for plan in self.plans))):
                for candidate in self.candidates:
                    self.gradient_sum(candidate, np.arange(0), 0, 0)
        self.combiner.in_turn(compile_all)
        if len(self.candidates) > 1:
            seconds = {c.label: [] for c in self.candidates}
            for _ in range(2):
                for candidate in self.candidates:
                    # as in _calibrate, after an empty call that wakes its threads
                    k = self._trial_examples(candidate, TRIAL_EXAMPLES)
                    if candidate.threads > 1:
                        self.gradient_sum(candidate, np.arange(0), 0, 0)
                    began = time.perf_counter()
                    self.gradient_sum(candidate, np.arange(k), 0, k)
                    seconds[candidate.label].append((time.perf_counter() - began) / k)
            # each counts as fast as its slower trial, as in _calibrate
            slower = {name: max(times) for name, times in seconds.items()}
            self.current = next(c for c in self.candidates
                                if c.label == min(slower, key=slower.get))
            self.calibration.append({"epoch": None, "s_per_example": slower,
                                     "chose": self.current.label,
                                     "timed_on": "gradient sums"})

    def _trial_examples(self, candidate, examples):
        """How many examples a trial that is not part of the epoch times: about
        `examples`, and for a parallel candidate at least its chunk (what it
        shares among its threads at a time: fewer would leave threads idle that
        the epoch keeps busy)."""
        return min(self.n, examples if candidate.threads == 1 else max(examples, candidate.chunk))

    def gradient_sum(self, candidate, order, start, stop):
        """With a combiner: buffers.nabla = the gradient summed over the examples
        order[start:stop] by ``candidate``; returns the sum of their C_x."""
        buffers = self.buffers
        plan = kernels.Plan(candidate.splits, candidate.spans, buffers.direct_max,
                             buffers.group, candidate.chunk, candidate.example_block,
                             candidate.threads)
        with numba_threads(candidate.threads):
            return kernels.call(candidate.fn, self.examples, order, start, stop,
                                 self.net.params, self.net.layout.arrays, buffers.scratch, plan)

    def _combined_steps(self, candidate, order, start, stop):
        """With a combiner: each mini-batch of order[start:stop] one step, its
        gradient summed over the ranks; returns the sum of C_x (NaN once the
        weights are not finite, which ends the slice early)."""
        params, m, combiner = self.net.params, self.mini_batch_size, self.combiner
        for first in range(start, stop, m):
            mb = min(m, self.n - first)
            total = combiner.gradient(
                lambda a, b: self.gradient_sum(candidate, order, a, b), self.buffers.nabla,
                first, mb)
            # the same operation, in the same dtype, as drive_train's params += step * nabla
            params += params.dtype.type(-self.eta / mb if self.mean else -self.eta) * total
            if not combiner.after_step(params):
                break
        return combiner.cost(params)

    def candidate(self, module, plan, rows=None, kind="train"):
        """The _Candidate that runs `plan` (an entry of ``_plans``) with module's
        kernels of that kind, its spans sized for `rows` examples (the buffers'
        by default)."""
        name, threads, row_blocks, chunk, example_block = plan
        label = (f"{name} on {threads} threads" if name == "parallel" and threads != self.threads
                 else name)
        candidate = Candidate(name, getattr(module, f"{kind}_{name}"), threads,
                               self._splits(row_blocks), chunk, example_block, label)
        rows = len(self.buffers.costs) if rows is None else rows
        candidate.spans = np.zeros((rows if candidate.splits.size else 0,
                                    candidate.splits.shape[1]), np.uint64)
        return candidate

    def new_buffers(self, rows):
        """Scratch of this run's shape for `rows` examples, apart from the run's own."""
        return Buffers(self.net, self.mini_batch_size, rows, self.buffers.group,
                       self.buffers.threads, direct_max=self.buffers.direct_max)

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

    def threads_next(self):
        """The most threads the next segment can train on: the kernel in use, or
        every candidate's when they are due to be timed."""
        if self._recheck:
            return max(c.threads for c in self.candidates)
        return self.current.threads

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
        widths), "generic" (any widths: the same bits, more slowly) or "starter"
        (``kernels.starter``: the same bits, compiled in seconds)."""
        module = self.current.fn.__module__
        if module == kernels.starter.__name__:
            return "starter"
        return "generic" if module.startswith("fastgd_kernels_generic") else "specialised"

    def info(self):
        """The run's settings, as recorded in a History."""
        return dict(mini_batch_size=self.mini_batch_size, eta=self.eta, threads=self.threads,
                    cost=self.net.cost_function, lmbda=self.lmbda,
                    regularization=self.regularization,
                    kernel=self.kernel_name, kernel_reason=self.kernel_reason,
                    # hogwild's bits depend on how its threads interleave
                    deterministic=self.kernel_name != "hogwild",
                    kernel_in_use=self.current.name, threads_in_use=self.current.threads,
                    kernels=self.build,
                    calibration=self.calibration,
                    inputs="dense" if self.dense else "sparse",
                    nonzero_input_fraction=self.nonzero_fraction,
                    threading_layer=threading_layer(), dtype=self.net.dtype.name)

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
            if should_stop is not None and self.agree(should_stop()):
                break
        self.position = start
        return total_cost

    def agree(self, flag):
        """Any rank's flag that is set (a stop request), the same on every rank:
        this one's without a combiner, else the first rank's that is set."""
        return flag if self.combiner is None else self.combiner.agree(flag)

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
        return self.run_candidate(self.current, order, start, stop)

    def decay(self):
        """(decay, shrink) of the kernel for the current eta: each mini-batch's
        weights become decay * w - shrink * sgn(w) before its step, that is
        w (1 - eta lmbda / n) for L2 and w - (eta lmbda / n) sgn(w) for L1."""
        rate = self.eta * self.lmbda / self.n
        return (1.0 - rate, 0.0) if self.regularization == "L2" else (1.0, rate)

    def run_candidate(self, candidate, order, start, stop, params=None, buffers=None):
        """Train ``candidate`` on order[start:stop] (an empty range only loads or
        compiles its kernel); on the trainer's weights and buffers unless
        ``params`` and ``buffers`` are given.  Returns the sum of C_x."""
        if not 0 <= start <= stop <= len(order):  # the kernels index order unchecked
            raise ValueError(f"start and stop must satisfy 0 <= start <= stop <= len(order) "
                             f"= {len(order)}, got start={start}, stop={stop}")
        if self.combiner is not None:
            return self._combined_steps(candidate, order, start, stop)
        buffers = self.buffers if buffers is None else buffers
        threads = candidate.threads
        if candidate.name == "hogwild" and self._trained < self.n:
            # Hogwild!'s first epoch on one thread (the serial kernel's steps): early
            # on, when the errors are large, the steps of threads on stale replicas,
            # added up, can push an output neuron into saturation for good
            threads = 1
        plan = kernels.Plan(candidate.splits, candidate.spans, buffers.direct_max,
                             buffers.group, candidate.chunk, candidate.example_block, threads)
        with numba_threads(threads):
            return kernels.call(
                candidate.fn, self.examples, order, start, stop, self.mini_batch_size,
                self.eta, self.mean, self.net.params if params is None else params,
                self.net.layout.arrays, buffers.scratch, plan, *self.decay())

    def _calibrate(self, order, start, epoch, end):
        """Time every candidate, keep the fastest; returns (cost, new start).

        Each candidate first trains two short scouting trials (an eighth of
        TRIAL_EXAMPLES each, whole mini-batches), the candidates in turn, and
        the faster of its two counts: a kernel's first run on a new Trainer
        pays once what the epochs do not (on a 16-core Xeon the parallel
        kernel's first slice on 16 threads ran at 19 us per example, then 0.8
        us), and on all the cores of a machine any other work can stall a
        parallel kernel for a while; one slow trial does not decide.  A
        candidate more than TRIAL_CUTOFF times slower than the fastest is then
        dropped, so that a kernel crippled by a busy machine costs two short
        trials, not several long ones.  The others then train twice on about
        TRIAL_EXAMPLES examples each, in turn, and the slower time of each
        counts: on a busy machine the parallel kernel's speed swings with where
        the OS runs the other work (it waits for its slowest thread), and one
        lucky trial must not choose it.  When the epoch has room before
        ``end``, these are the epoch's own next examples (the candidates give
        the same weights, so nothing is wasted); otherwise (a few huge
        mini-batches) they run on a copy of the weights, which is thrown away."""
        m = self.mini_batch_size
        scout = max(1, -(-TRIAL_EXAMPLES // (8 * m))) * m
        trial = max(1, -(-TRIAL_EXAMPLES // m)) * m
        in_place = start + len(self.candidates) * (2 * scout + 2 * trial) <= end
        cost = 0.0
        first = start

        def timed(candidate, size, examples):
            """Seconds per example of one trial: `size` examples (whole mini-batches)
            of the epoch in place, else the first ``_trial_examples`` of a
            mini-batch on a copy of the weights."""
            nonlocal cost, start
            if candidate.threads > 1:
                # an empty call first, untimed: it wakes the candidate's threads,
                # asleep since its last call, which the epoch's calls (back to
                # back) find awake
                self.run_candidate(candidate, order, 0, 0)
            if in_place:
                began = time.perf_counter()
                cost += self.run_candidate(candidate, order, start, start + size)
                start += size
                return (time.perf_counter() - began) / size
            n_trial = self._trial_examples(candidate, examples)
            scratch = kernels.aligned_copy(self.net.params)
            began = time.perf_counter()
            self.run_candidate(candidate, order, 0, n_trial, params=scratch)
            return (time.perf_counter() - began) / n_trial

        scouts = {c.label: [] for c in self.candidates}
        for _ in range(2):
            for candidate in self.candidates:
                scouts[candidate.label].append(timed(candidate, scout, TRIAL_EXAMPLES // 8))
        fastest = min(min(times) for times in scouts.values())
        running = [c for c in self.candidates if min(scouts[c.label]) <= TRIAL_CUTOFF * fastest]
        full = {c.label: [] for c in running}
        for _ in range(2):
            for candidate in running:
                full[candidate.label].append(timed(candidate, trial, TRIAL_EXAMPLES))
        # recorded for a candidate dropped after scouting: its faster scouting trial;
        # it is out (one slow full trial of another must not bring it back)
        slower = {name: max(full[name]) if name in full else min(times)
                  for name, times in scouts.items()}
        previous = self.current.label if self.calibration else None
        self.current = min(running, key=lambda c: slower[c.label])
        self._reference = min(full[self.current.label])
        self._recheck = False
        self._recheck_interval = (2 * self._recheck_interval if previous == self.current.label
                                  else RECHECK_EPOCHS * self.n)
        self._trained += start - first
        self._next_recheck = self._trained + self._recheck_interval
        self.calibration.append({"epoch": epoch, "s_per_example": slower,
                                 "chose": self.current.label,
                                 "timed_on": "training" if in_place else "a copy of the weights",
                                 "trials": {name: scouts[name] + full.get(name, [])
                                            for name in scouts}})
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
                tuple(c.label for c in self.candidates))

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
        if len(self.candidates) < 2 or self.combiner is not None:
            return
        last = _LAST_CALIBRATION.get(self.net, {}).get(self._calibration_key())
        if last is None:
            return
        self.current = next(c for c in self.candidates if c.label == last["chose"])
        self._reference = last["reference"]
        self._recheck_interval = last["interval"]
        self._next_recheck = self._trained + last["left"]
        self._recheck = last["recheck"] or last["left"] <= 0
        self.calibration.append({"epoch": None, "s_per_example": last["s_per_example"],
                                 "chose": last["chose"], "timed_on": "an earlier call"})
