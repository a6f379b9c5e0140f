"""Data-parallel gradient descent over MPI: one mini-batch's gradient summed by P processes.

    mpiexec -n 4 python train.py        # with, in train.py:
    >>> from mpi4py import MPI
    >>> history = net.SGD(training_data, 30, 1000, 3.0, test_data, comm=MPI.COMM_WORLD)

Every rank holds the whole training set and draws the same permutation each
epoch.  Each step w -> w - (eta/m) sum_j dC_Xj/dw is shared out: of the
mini-batch X_1..X_m, rank r backpropagates the contiguous slice
X_(r m/P + 1)..X_((r+1) m/P) with the summing half of the training kernel
(``kernels.drivers._gradient_sum``), the P partial sums nabla_r are combined, and
every rank applies the same update to its own copy of the weights.

Combining, ``reduce``:

* ``"ordered"`` (default): an Allgather of the P partial sums, then
  ((nabla_0 + nabla_1) + nabla_2) + ... on every rank, in rank order.  The
  same bits on every MPI, every run and every rank, and the same bits as
  ``shards=P`` in one process (the emulation, for tests).  It moves P times
  the gradient to every rank: fine for fastgd's networks (25,616 numbers for
  [784, 30, 10]) up to tens of ranks.
* ``"allreduce"``: MPI's own sum (Allreduce), whose grouping of the terms
  depends on the library, the rank count and the message size: results agree
  with "ordered" within float rounding, and it scales to more ranks.

A mini-batch's gradient is summed in groups of ``training.GROUP`` examples
counted from the start of each rank's slice, so one rank (P = 1) gives the
bits of ``net.SGD`` for every mini-batch larger than ``training.chunk_size``
(smaller ones are applied example by example there, here as one sum: the same
within rounding); P ranks give the same within float rounding.

mpi4py is imported only when a communicator is given (``pip install
'fastgd[mpi]'``).  See the README ("Beyond one machine") for launch recipes.
"""

import math
import os
import socket
import time
import warnings
import zlib

import numba
import numpy as np

from . import kernels
from ._validation import check_int, check_positive_float, stacklevel_outside_package
from .dataset import check_data
from .config import PARALLEL_CHUNK, TRIAL_EXAMPLES
from .training import (GROUP, KERNELS, ON_DIVERGENCE, REDUCTIONS, DivergenceError,
                       DivergenceWarning, History, check_choice, chunk, chunk_size,
                       compile_notice, diagnose, epoch_line, epoch_record, numba_threads)

REDUCES = ("ordered", "allreduce")
# Steps between two checks that every rank holds the same weights (and at each
# epoch's end): a checksum of the weights per rank, gathered: about as cheap as
# one step's combine, so a check every 10 steps costs a few per cent at most.
CHECK_EVERY = 10
# Examples whose gradient is timed at the start (for the break-even warning),
# and combines timed.
TIMING_EXAMPLES = 512
TIMING_COMBINES = 7


def _every_rank(error):
    """Mark an exception that every rank raises at the same point (so that no rank
    waits for another): a launcher need not abort the job for it."""
    error.every_rank = True
    return error


class DistributedWarning(RuntimeWarning):
    """A distributed run that will be slower than it could be: ranks oversubscribe
    the cores, or too few examples per rank per step to pay for the communication."""


class _Emulated:
    """P ranks in one process: the P slices' sums added in rank order, exactly as
    ``reduce="ordered"`` adds them after the Allgather."""

    def __init__(self, size):
        self.size, self.rank, self.comm = size, 0, None

    def agree(self, summary):
        return [summary] * self.size

    def bcast(self, value):
        return value

    def gather_costs(self, costs):
        return costs

    def check_same(self, params):
        return bool(np.isfinite(params).all())


class _Communicator:
    """One rank of an MPI communicator (an mpi4py Comm)."""

    def __init__(self, comm, reduce):
        from mpi4py import MPI
        self.MPI, self.comm, self.reduce = MPI, comm, reduce
        self.size, self.rank = comm.Get_size(), comm.Get_rank()

    def agree(self, summary):
        return self.comm.allgather(summary)

    def bcast(self, value):
        return self.comm.bcast(value, root=0)

    def gather_costs(self, costs):
        return self.comm.allgather(costs[0])

    def combine(self, nabla, gathered, total):
        """total = the sum of every rank's nabla (gathered: (P, n_params) scratch)."""
        if self.reduce == "allreduce":
            self.comm.Allreduce(nabla, total, op=self.MPI.SUM)
            return
        self.comm.Allgather(nabla, gathered)
        total[:] = gathered[0]
        for r in range(1, self.size):
            total += gathered[r]

    def check_same(self, params):
        """True if the weights are finite; RuntimeError on every rank if any rank's
        weights differ from the others' (a checksum of their bytes)."""
        sums = self.comm.allgather((zlib.crc32(params), bool(np.isfinite(params).all())))
        if len({s for s, _ in sums}) > 1:
            differ = [r for r, (s, _) in enumerate(sums) if s != sums[0][0]]
            raise _every_rank(RuntimeError(
                f"the ranks' weights have drifted apart: rank(s) {differ} hold weights "
                "different from rank 0's.  Every rank must run the same fastgd, numba and "
                "CPU kind (the kernels' bits depend on them); reduce='ordered' guarantees "
                "identical sums"))
        return sums[0][1]


def _threads_facts(comm):
    """(this rank's default threads, the node's communicator, the CPUs of every rank
    on this node): the CPUs this rank may run on, divided by the ranks on the node
    whose CPUs overlap them."""
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    mine = _cpus()
    cpus = node.allgather(sorted(mine))
    sharing = sum(1 for other in cpus if mine & set(other))
    return max(1, min(len(mine) // sharing, numba.config.NUMBA_NUM_THREADS)), node, cpus


def default_threads(comm):
    """The numba threads a rank uses by default: the CPUs it may run on
    (``os.sched_getaffinity``) divided by the ranks on its node that share them.
    Collective: every rank of ``comm`` must call it."""
    threads, node, _ = _threads_facts(comm)
    node.Free()
    return threads


def _cpus():
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def SGD(net, training_data, epochs, mini_batch_size, eta, test_data=None, *, comm=None,
        shards=None, reduce="ordered", reduction="mean", shuffle=True, threads=None,
        kernel="auto", verbose=True, monitor_training_cost=False, on_divergence="stop",
        check_every=CHECK_EVERY, info=None):
    """Train ``net`` with each mini-batch's gradient shared out over the ranks of
    ``comm``; returns a ``History``, the same on every rank.

    Call it on every rank, with the same data, sizes, dtype and options (checked:
    a ValueError on every rank names what differs).  Rank 0's weights and random
    generator are broadcast at the start, so every rank ends with rank 0's
    network trained, and the same ``net.rng`` state.  Only rank 0 evaluates
    ``test_data`` (the others may pass None) and prints; the epoch records are
    broadcast from it.

    Parameters as ``fastgd.training.SGD`` (epochs, mini_batch_size, eta,
    test_data, reduction, shuffle, kernel, verbose, monitor_training_cost,
    on_divergence, info), and:

    comm : mpi4py communicator, optional
        The ranks sharing the work (e.g. ``MPI.COMM_WORLD``).
    shards : int, optional
        Without ``comm``: emulate that many ranks in this process (the slices'
        sums added in rank order), bit-identical to ``reduce="ordered"`` on that
        many ranks.  For tests.
    reduce : "ordered" (default) or "allreduce"
        How the ranks' sums are combined (see the module's docstring).
    threads : int, optional
        numba threads per rank.  Default: the CPUs the rank may use divided by
        the ranks on its node that share them (one per rank under MPICH, which
        does not pin; a rank's own cores under a launcher that pins).  With
        kernel="auto", a rank of several threads times the serial and the
        parallel kernel on its first examples and keeps the faster (the same
        bits either way).
    check_every : int
        Steps between checks that every rank holds identical weights (also done
        at each epoch's end); RuntimeError on every rank if not.

    Warns (``DistributedWarning``) when the ranks' threads oversubscribe a node's
    cores, and when a step gives a rank fewer examples than the break-even: the
    examples whose gradient takes as long as one combine, both measured at the
    start (``History.info["distributed"]``).
    """
    run = Run(net, comm=comm, shards=shards, reduce=reduce, verbose=verbose)
    run.prepare(training_data, epochs, mini_batch_size, eta, test_data, reduction, shuffle,
                threads, monitor_training_cost, on_divergence, check_every, info, kernel=kernel)
    return run.train()


class Run:
    """One call of distributed SGD on one rank: ``prepare`` checks the arguments
    (against every rank's), broadcasts rank 0's weights and generator, compiles and
    times; ``run_epoch(order)`` is one epoch (what the benchmarks time), ``train``
    the epoch loop with its evaluation and verdicts."""

    def __init__(self, net, *, comm=None, shards=None, reduce="ordered", verbose=True):
        if comm is not None and shards is not None:
            raise ValueError("give comm (MPI ranks) or shards (ranks emulated in one "
                             "process), not both")
        if reduce not in REDUCES:
            raise ValueError(f"reduce must be 'ordered' or 'allreduce', got {reduce!r}")
        if comm is None:
            group = _Emulated(1 if shards is None else check_int(shards, "shards", minimum=1))
        else:
            if not all(hasattr(comm, name) for name in ("Get_rank", "Get_size", "Allreduce")):
                raise TypeError(f"comm must be an mpi4py communicator (such as "
                                f"MPI.COMM_WORLD), got {comm!r}"[:200])
            group = _Communicator(comm, reduce)
        self.net, self.group, self.reduce = net, group, reduce
        self.rank0 = group.rank == 0
        self.verbose = verbose and self.rank0
        self.steps = 0

    # -- before training: checks every rank agrees on, weights and seed from rank 0 ---

    def prepare(self, training_data, epochs, mini_batch_size, eta, test_data, reduction,
                shuffle, threads, monitor_training_cost, on_divergence, check_every, info,
                kernel="auto"):
        net, group = self.net, self.group
        error, summary = None, None
        try:  # a rank's bad input is reported on every rank: none waits for it forever
            self.epochs = check_int(epochs, "epochs", minimum=0)
            check_choice(on_divergence, "on_divergence", ON_DIVERGENCE)
            check_choice(kernel, "kernel", KERNELS)
            check_choice(reduction, "reduction", REDUCTIONS)
            self.check_every = check_int(check_every, "check_every", minimum=1)
            self.X, self.y = check_data(training_data, net.sizes[0], net.sizes[-1],
                                        net.dtype, "training_data")
            self.n = n = self.X.shape[0]
            if n == 0:
                raise ValueError("training_data must hold at least one example")
            self.m = n if mini_batch_size is None else check_int(
                mini_batch_size, "mini_batch_size", minimum=1, maximum=n)
            self.eta = check_positive_float(eta, "eta")
            self.test = None
            if test_data is not None and self.rank0:
                self.test = check_data(test_data, net.sizes[0], net.sizes[-1], net.dtype,
                                       "test_data")
            if threads is not None:
                threads = check_int(threads, "threads", minimum=1,
                                    maximum=numba.config.NUMBA_NUM_THREADS)
            data_sum = zlib.crc32(np.ascontiguousarray(self.y, np.int64),
                                  zlib.crc32(np.ascontiguousarray(self.X)))
            summary = {"sizes": list(net.sizes), "dtype": net.dtype.name,
                       "training examples": n, "mini-batch size": self.m, "eta": self.eta,
                       "epochs": self.epochs, "reduction": reduction, "shuffle": bool(shuffle),
                       "reduce": self.reduce, "check_every": self.check_every,
                       "training data (CRC-32)": f"{data_sum:08x}"}
        except (ValueError, TypeError) as e:
            error = f"{type(e).__name__}: {e}"
        summaries = group.agree(error or summary)
        failed = [(r, s) for r, s in enumerate(summaries) if isinstance(s, str)]
        if failed:
            r, message = failed[0]
            raise _every_rank(ValueError(f"rank {r} of {group.size} refused its arguments: "
                                          f"{message}"))
        for r, other in enumerate(summaries):
            for key, value in other.items():
                if value != summaries[0][key]:
                    raise _every_rank(ValueError(
                        f"the ranks disagree on the {key}: rank {r} has {value!r}, rank 0 "
                        f"{summaries[0][key]!r}; every rank must call SGD with the same "
                        "network sizes, dtype, training data and options"))
        self.mean, self.shuffle = reduction == "mean", bool(shuffle)
        self.monitor_training_cost, self.on_divergence = monitor_training_cost, on_divergence

        # rank 0's weights and generator (its seed, and where it stands) everywhere
        if group.comm is not None:
            group.comm.Bcast(net.params, root=0)
        state = group.bcast((net.seed, net.rng.bit_generator.state))
        net.seed, net.rng.bit_generator.state = state
        if not np.isfinite(net.params).all():  # rank 0's, now every rank's
            raise _every_rank(ValueError("the network's weights or biases are not finite; "
                                         "set finite values (or draw a new Network) before "
                                         "training"))

        self._threads(threads)
        self._kernel(kernel)
        self.facts = {"ranks": group.size, "reduce": self.reduce,
                      "emulated": group.comm is None, "threads_per_rank": self.threads}
        if self.kernel_timings is not None:
            self.facts.update(kernel=self.kernel_name, kernel_s_per_example=self.kernel_timings)
        if group.comm is not None:
            self._measure()
        self.history = History(**(info or {}), mini_batch_size=self.m, eta=self.eta,
                               threads=self.threads, kernel=self.kernel_name,
                               dtype=net.dtype.name, distributed=self.facts,
                               epochs_planned=self.epochs)

    def _threads(self, threads):
        """Threads per rank; a warning (on rank 0) naming the nodes whose cores
        the ranks' threads oversubscribe."""
        group = self.group
        self.node = None
        if group.comm is None:
            with numba_threads(threads) as n_threads:
                self.threads = n_threads
            return
        default, self.node, cpus = _threads_facts(group.comm)
        self.threads = default if threads is None else threads
        demand = sum(self.node.allgather(self.threads))
        cores = len(set().union(*map(set, cpus)))
        nodes = group.comm.allgather((socket.gethostname(), self.node.Get_size(), demand,
                                      cores) if self.node.Get_rank() == 0 else None)
        crowded = [f"{host}: {ranks} ranks x threads = {want} threads on {have} cores"
                   for host, ranks, want, have in filter(None, nodes) if want > have]
        if crowded and self.rank0:
            warnings.warn(
                "the ranks oversubscribe the cores (" + "; ".join(crowded) + "): threads "
                "wait for each other and every step waits for the slowest rank.  Start "
                "fewer ranks per node or pass fewer threads (--threads).",
                DistributedWarning, stacklevel=stacklevel_outside_package())

    def _kernel(self, kernel):
        """The compiled gradient sum, its plan and scratch for this rank's largest slice.

        kernel="auto" with more than one thread: the serial kernel (one thread) and
        the parallel one are both compiled and timed on the rank's first examples,
        and the faster is kept, as training's kernel="auto" does: they give the same
        bits, and a parallel kernel whose threads share their cores with other work
        can be many times slower than one thread."""
        net, P = self.net, self.group.size
        # every rank holds the whole training set (checked), so all take the same path
        self.dense, self.nonzero_fraction = kernels.uses_dense_path(self.X)
        module = kernels.kernels(net.sizes, net.dtype, net.cost_function, self.dense)
        layout = net.layout
        direct_max = chunk_size(layout)
        group = min(GROUP, direct_max)
        largest = max(1, -(-self.m // P))
        no_splits = np.zeros((0, 0), np.uint64)
        candidates = []
        if kernel in ("serial", "auto"):
            candidates.append(("serial", module.gradient_sum_serial, kernels.Plan(
                no_splits, no_splits, direct_max, group, chunk(largest, direct_max, group),
                1, 1)))
        if kernel == "parallel" or (kernel == "auto" and self.threads > 1):
            most = max(direct_max, PARALLEL_CHUNK, 2 * group * self.threads)
            candidates.append(("parallel", module.gradient_sum_parallel, kernels.Plan(
                no_splits, no_splits, direct_max, group, chunk(largest, most, group), 1,
                self.threads)))
        rows = min(largest, max(plan.chunk for _, _, plan in candidates))
        per_example = int(layout.a_off[-1])
        self.nabla = kernels.aligned_zeros(layout.n_params, net.dtype)
        self.scratch = kernels.Scratch(
            self.nabla, kernels.aligned_rows(-(-rows // group), layout.n_params, net.dtype),
            kernels.aligned_zeros(rows * per_example, net.dtype),
            kernels.aligned_zeros(rows * per_example, net.dtype),
            kernels.aligned_zeros(rows, np.float64))
        self.total = np.zeros(layout.n_params, net.dtype)
        self.gathered = (np.zeros((P, layout.n_params), net.dtype)
                         if self.group.comm is not None and self.reduce == "ordered" else None)
        self.examples = kernels.Examples(*kernels.input_columns(self.X, self.dense), self.y)
        # Compile (or load from numba's cache) now: one rank per node first, so that
        # the others load what it wrote instead of all compiling at once.
        first = self.node is None or self.node.Get_rank() == 0
        for turn in (True, False):
            if first == turn:
                with compile_notice(net, self.verbose and first and self.rank0,
                                    dense=self.dense):
                    for self.kernel_name, self.fn, self.plan in candidates:
                        self._sum(np.arange(0), 0, 0)
            if self.node is None:
                break
            self.node.Barrier()
        if self.node is not None:
            self.node.Free()
            self.node = None
        self.kernel_timings = None
        if len(candidates) > 1:
            k = min(self.n, TRIAL_EXAMPLES)
            seconds = {name: [] for name, _, _ in candidates}
            for _ in range(2):
                for self.kernel_name, self.fn, self.plan in candidates:
                    began = time.perf_counter()
                    self._sum(np.arange(k), 0, k)
                    seconds[self.kernel_name].append((time.perf_counter() - began) / k)
            # each counts as fast as its slower trial, as in Trainer._calibrate: one
            # lucky trial on a busy machine must not choose the parallel kernel
            self.kernel_timings = {name: max(t) for name, t in seconds.items()}
            self.kernel_name, self.fn, self.plan = min(
                candidates, key=lambda c: self.kernel_timings[c[0]])

    def _sum(self, order, start, stop):
        """nabla = the gradient summed over order[start:stop]; returns the sum of C_x."""
        with numba_threads(self.threads):
            return kernels.call(self.fn, self.examples, order, start, stop, self.net.params,
                                 self.net.layout.arrays, self.scratch, self.plan)

    def _measure(self):
        """Time one example's gradient and one combine (the slowest rank's, so that
        every rank agrees); warn on rank 0 when a step gives a rank fewer examples
        than the break-even."""
        comm = self.group.comm
        k = min(self.n, TIMING_EXAMPLES)
        began = time.perf_counter()
        self._sum(np.arange(k), 0, k)
        per_example = (time.perf_counter() - began) / k
        seconds = []
        for _ in range(TIMING_COMBINES):
            comm.Barrier()
            began = time.perf_counter()
            self.group.combine(self.nabla, self.gathered, self.total)
            seconds.append(time.perf_counter() - began)
        latency = float(np.median(seconds))
        pairs = comm.allgather((latency, per_example))
        latency, per_example = max(p[0] for p in pairs), max(p[1] for p in pairs)
        break_even = math.ceil(latency / per_example)
        fewest = self.m // self.group.size
        self.facts.update(combine_s=latency, s_per_example=per_example,
                          break_even_examples=break_even, fewest_examples_per_rank=fewest)
        if fewest < break_even and self.rank0:
            warnings.warn(
                f"each step gives a rank as few as {fewest} examples, fewer than the "
                f"{break_even} whose gradient takes as long as one combine here "
                f"({latency * 1e6:.0f} us against {per_example * 1e6:.2f} us per example): "
                f"communication outweighs the work shared out.  Use a larger mini-batch "
                f"(or full batch), or fewer ranks.", DistributedWarning,
                stacklevel=stacklevel_outside_package())

    # -- training ----------------------------------------------------------------------

    def _step_gradient(self, order, first, mb, costs):
        """self.total = the mini-batch's summed gradient, combined over the ranks
        in rank order (or by Allreduce); each rank's cost added to costs[rank]."""
        P, group = self.group.size, self.group
        bounds = [first + mb * r // P for r in range(P + 1)]
        if group.comm is not None:
            r = group.rank
            costs[0] += self._sum(order, bounds[r], bounds[r + 1])
            group.combine(self.nabla, self.gathered, self.total)
            return
        for r in range(P):
            costs[r] += self._sum(order, bounds[r], bounds[r + 1])
            if r == 0:
                self.total[:] = self.nabla
            else:
                self.total += self.nabla

    def run_epoch(self, order):
        """One epoch over the examples X[order] (the same order on every rank);
        returns the sum of C_x over them, or NaN once the weights are not finite
        (the epoch then ends early)."""
        group, params = self.group, self.net.params
        costs = [0.0] * (group.size if group.comm is None else 1)
        finite = True
        for first in range(0, self.n, self.m):
            mb = min(self.m, self.n - first)
            self._step_gradient(order, first, mb, costs)
            # the same operation, in the same dtype, as _train's params += step * nabla
            step = params.dtype.type(-self.eta / mb if self.mean else -self.eta)
            params += step * self.total
            self.steps += 1
            if self.steps % self.check_every == 0 and first + mb < self.n:
                finite = group.check_same(params)
                if not finite:
                    break
        finite = group.check_same(params) and finite
        cost = 0.0
        for c in group.gather_costs(costs):  # in rank order
            cost += c
        return cost if finite else math.nan

    def train(self):
        net, group, history = self.net, self.group, self.history
        for epoch in range(self.epochs):
            order = net.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            started = time.perf_counter()
            cost = self.run_epoch(order)
            record = None
            if self.rank0:
                record = self._record(epoch, cost, time.perf_counter() - started)
                history.append(record)
                verdict = diagnose(history, self.eta, net.sizes[-1])
                history.pop()
            record, verdict = group.bcast((record, verdict if self.rank0 else None))
            history.append(record)
            if self.verbose:
                print(epoch_line(record), flush=True)
            if self._stop(verdict):
                break
        return history

    def _record(self, epoch, cost, seconds):
        """The epoch's entry in the History (rank 0 only: it evaluates)."""
        return epoch_record(self.net, epoch, cost, seconds, (self.X, self.y), self.test,
                            monitor_training_cost=self.monitor_training_cost,
                            threads=self.threads)

    def _stop(self, verdict):
        """Whether training stops after this epoch (the same answer on every rank:
        the verdict is rank 0's)."""
        history = self.history
        if verdict and history.diverged is None:
            history.diverged = verdict
            if self.on_divergence == "raise":
                raise _every_rank(DivergenceError(verdict, history))
            if self.rank0:
                warnings.warn(verdict, DivergenceWarning,
                              stacklevel=stacklevel_outside_package())
            if self.on_divergence == "stop":
                history.stopped = verdict
                return True
        if not math.isfinite(history[-1]["cost"]):
            history.stopped = history.diverged
            return True
        return False

