"""Data-parallel gradient descent over MPI: one mini-batch's gradient summed by P processes.

    mpiexec -n 4 python train.py        # with, in train.py:
    >>> from mpi4py import MPI
    >>> history = net.SGD(training_data, 30, 1000, 3.0, test_data, comm=MPI.COMM_WORLD)

Every rank holds the whole training set and draws the same permutation each
epoch.  Each step w -> w - (eta/m) sum_j dC_Xj/dw is shared out: of the
mini-batch X_1..X_m, rank r backpropagates the contiguous slice
X_(r m/P + 1)..X_((r+1) m/P) with the summing half of the training kernel
(the gradient-sum kernels), the P partial sums nabla_r are combined, and
every rank applies the same update to its own copy of the weights.  The
training is fastgd's one epoch loop (``training.Trainer`` and ``training.Run``)
given a combiner (``training.combine``); this module holds what is MPI's: the
combiners over a communicator, the checks that every rank was given the same
run, the threads per rank, and stopping every rank when one fails.

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

A rank that fails (an exception of its own, a second Ctrl-C) aborts the whole
job (``MPI_Abort``) after one line on stderr saying why: the other ranks would
wait for it forever.  A first SIGINT, SIGTERM or SIGHUP on any rank stops every
rank at the same segment boundary (``TrainingInterrupted`` on each).

A mini-batch's gradient is summed in groups of ``training.GROUP`` examples
counted from the start of each rank's slice, so one rank (P = 1) gives the
bits of ``net.SGD`` for every mini-batch larger than ``training.chunk_size``
(smaller ones are applied example by example there, here as one sum: the same
within rounding); P ranks give the same within float rounding.

mpi4py is imported only when a communicator is given (``pip install
'fastgd[mpi]'``).  See the README ("Beyond one machine") for launch recipes.
"""
import dataclasses
import math
import os
import socket
import sys
import time
import warnings
import zlib
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np

from ._validation import check_int, check_positive_float, stacklevel_outside_package
from .dataset import Data, check_data
from .network import Network
from .training import (DETERMINISTIC_KERNELS, DivergenceError, History, Run,
                       TrainingInterrupted, TrainingOptions, check_choice)
from .training.combine import CHECK_EVERY, Shards, slices

REDUCES = ("ordered", "allreduce")
# Examples whose gradient is timed at the start (for the break-even warning),
# and combines timed.
TIMING_EXAMPLES = 512
TIMING_COMBINES = 7


def _every_rank(error):
    """Mark an exception that every rank raises at the same point (so that no rank
    waits for another): the job need not be aborted for it."""
    error.every_rank = True
    return error


class DistributedWarning(RuntimeWarning):
    """A distributed run that will be slower than it could be: ranks oversubscribe
    the cores, or too few examples per rank per step to pay for the communication."""


class Communicator(Shards):
    """The combiner of one rank of an MPI communicator (an mpi4py Comm): this
    rank's slice summed here, the P sums combined by ``reduce``."""

    def __init__(self, comm, reduce, check_every=CHECK_EVERY):
        from mpi4py import MPI
        super().__init__(comm.Get_size(), check_every)
        self.MPI, self.comm, self.reduce = MPI, comm, reduce
        self.rank = comm.Get_rank()
        self.costs = [0.0]  # this rank's only
        self.gathered = None

    def gradient(self, gradient_sum, nabla, first, mb):
        bounds = slices(first, mb, self.size)
        self.costs[0] += gradient_sum(bounds[self.rank], bounds[self.rank + 1])
        return self.combine(nabla)

    def combine(self, nabla):
        """The sum of every rank's nabla: in rank order after an Allgather
        ("ordered"), or MPI's own (Allreduce)."""
        if self.total is None:
            self.total = np.empty_like(nabla)
        if self.reduce == "allreduce":
            self.comm.Allreduce(nabla, self.total, op=self.MPI.SUM)
            return self.total
        if self.gathered is None:
            self.gathered = np.empty((self.size, nabla.size), nabla.dtype)
        self.comm.Allgather(nabla, self.gathered)
        self.total[:] = self.gathered[0]
        for r in range(1, self.size):
            self.total += self.gathered[r]
        return self.total

    def same_and_finite(self, params):
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

    def gathered_costs(self):
        return self.comm.allgather(self.costs[0])

    def agree(self, flag):
        """The first rank's flag that is set (a signal number, True), else None."""
        return next((value for value in self.comm.allgather(flag) if value), None)

    def share(self, value):
        return self.comm.bcast(value, root=0)

    def in_turn(self, compile):
        """Compile (or load from numba's cache) one rank per node first, so that
        the others load what it wrote instead of all compiling at once."""
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        first = node.Get_rank() == 0
        for turn in (True, False):
            if first == turn:
                compile()
            node.Barrier()
        node.Free()


@contextmanager
def _every_rank_stops(group):
    """A failure of this rank alone (any exception not raised by every rank at
    the same point, a second Ctrl-C) aborts the MPI job after one line on
    stderr: the other ranks would otherwise wait for this one forever in the
    next collective.  An abort cannot return an error, hence the line."""
    try:
        yield
    except BaseException as e:
        shared = (getattr(e, "every_rank", False)
                  or isinstance(e, (DivergenceError, TrainingInterrupted)))
        if not isinstance(group, Communicator) or group.size == 1 or shared:
            raise
        reason = str(e) or type(e).__name__
        if not isinstance(e, KeyboardInterrupt):
            reason = f"{type(e).__name__}: {reason}"
        print(f"fastgd: rank {group.rank} of {group.size} failed ({reason}); aborting the "
              "MPI job, every rank stops", file=sys.stderr, flush=True)
        group.comm.Abort(130 if isinstance(e, KeyboardInterrupt) else 1)


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


def default_threads(comm: Any) -> int:
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


def SGD(net: Network, training_data: Data, epochs: int, mini_batch_size: int | None,
        eta: float, test_data: Data | None = None, *, comm: Any = None,
        shards: int | None = None, reduce: str = "ordered", reduction: str = "mean",
        shuffle: bool = True, threads: int | None = None, kernel: str = "auto",
        verbose: bool = True, monitor_training_cost: bool = False, on_divergence: str = "stop",
        check_every: int = CHECK_EVERY, handle_signals: bool = True,
        info: dict | None = None) -> History:
    """Train ``net`` with each mini-batch's gradient shared out over the ranks of
    ``comm``; returns a ``History``, the same on every rank.

    Call it on every rank, with the same data, sizes, dtype and options (checked:
    a ValueError on every rank names what differs).  Rank 0's weights and random
    generator are broadcast at the start, so every rank ends with rank 0's
    network trained, and the same ``net.rng`` state.  Only rank 0 evaluates
    ``test_data`` and prints; the epoch records are broadcast from it.

    Parameters as ``fastgd.training.SGD`` (epochs, mini_batch_size, eta,
    test_data, reduction, shuffle, kernel, verbose, monitor_training_cost,
    on_divergence, handle_signals, info), and:

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
        at each segment's end); RuntimeError on every rank if not.

    Warns (``DistributedWarning``) when the ranks' threads oversubscribe a node's
    cores, and when a step gives a rank fewer examples than the break-even: the
    examples whose gradient takes as long as one combine, both measured at the
    start (``History.info["distributed"]``).
    """
    group = _group(comm, shards, reduce)
    with _every_rank_stops(group):
        options = dict(reduction=reduction, shuffle=shuffle, kernel=kernel, threads=threads,
                       verbose=verbose, monitor_training_cost=monitor_training_cost,
                       on_divergence=on_divergence, handle_signals=handle_signals, info=info)
        return _prepared(group, reduce, net, training_data, epochs, mini_batch_size, eta,
                         test_data, options, check_every).train()


def prepare(net: Network, training_data: Data, epochs: int, mini_batch_size: int | None,
            eta: float, *, comm: Any = None, reduce: str = "ordered", **options: Any) -> Run:
    """The run ``SGD`` would train, checked and agreed on every rank, its kernels
    compiled, but not started: ``run.trainer.run_epoch(order)`` is one epoch (what
    the MPI benchmark times).  ``options`` are SGD's keywords."""
    group = _group(comm, None, reduce)
    check_every = options.pop("check_every", CHECK_EVERY)
    with _every_rank_stops(group):
        return _prepared(group, reduce, net, training_data, epochs, mini_batch_size, eta,
                         None, options, check_every)


def _group(comm, shards, reduce):
    """The combiner of a step's gradient: MPI ranks (comm) or ranks emulated here."""
    if comm is not None and shards is not None:
        raise ValueError("give comm (MPI ranks) or shards (ranks emulated in one "
                         "process), not both")
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be 'ordered' or 'allreduce', got {reduce!r}")
    if comm is None:
        return Shards(1 if shards is None else check_int(shards, "shards", minimum=1))
    if not all(hasattr(comm, name) for name in ("Get_size", "Allgather", "Abort")):
        raise TypeError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), got "
                        f"{type(comm).__name__}")
    return Communicator(comm, reduce)


def _prepared(group, reduce, net, training_data, epochs, mini_batch_size, eta, test_data,
              options, check_every):
    """The Run of every rank, once the ranks agree on it, with its facts in
    ``history.info["distributed"]``."""
    options = dict(options, verbose=options.get("verbose", True) and group.rank == 0)
    options = _agree_on_the_run(group, net, training_data, epochs, mini_batch_size, eta,
                                test_data, options, reduce, check_every)
    options = dataclasses.replace(options, threads=_threads(group, options.threads))
    run = Run(net, training_data, epochs, mini_batch_size, eta,
              test_data if group.rank == 0 else None, options, combiner=group)
    trainer = run.trainer
    facts = {"ranks": group.size, "reduce": reduce,
             "emulated": not isinstance(group, Communicator),
             "threads_per_rank": trainer.threads}
    if trainer.calibration:
        facts.update(kernel=trainer.current.label,
                     kernel_s_per_example=trainer.calibration[-1]["s_per_example"])
    if isinstance(group, Communicator):
        _measure(trainer, group, facts)
    run.history.info["distributed"] = facts
    return run


def _allgather(group, value):
    """Every rank's value, in rank order (the emulated ranks all hold this one's)."""
    if isinstance(group, Communicator):
        return group.comm.allgather(value)
    return [value] * group.size


def _agree_on_the_run(group, net, training_data, epochs, mini_batch_size, eta, test_data,
                      options, reduce, check_every):
    """The checked TrainingOptions, once every rank has checked its arguments and
    found them the same as rank 0's (else a ValueError on every rank: none waits
    for another forever); then rank 0's weights and generator on every rank."""
    error, summary = None, None
    try:
        options = TrainingOptions(**options)
        # ranks must agree on every bit of their gradients: no hogwild here
        check_choice(options.kernel, "kernel", DETERMINISTIC_KERNELS)
        epochs = check_int(epochs, "epochs", minimum=0)
        group.check_every = check_int(check_every, "check_every", minimum=1)
        X, y = check_data(training_data, net.sizes[0], net.sizes[-1], net.dtype,
                          "training_data")
        n = X.shape[0]
        if n == 0:
            raise ValueError("training_data must hold at least one example")
        m = n if mini_batch_size is None else check_int(
            mini_batch_size, "mini_batch_size", minimum=1, maximum=n)
        eta = check_positive_float(eta, "eta")
        if test_data is not None and group.rank == 0:
            check_data(test_data, net.sizes[0], net.sizes[-1], net.dtype, "test_data")
        data_sum = zlib.crc32(np.ascontiguousarray(y, np.int64),
                              zlib.crc32(np.ascontiguousarray(X)))
        summary = {"sizes": list(net.sizes), "dtype": net.dtype.name,
                   "training examples": n, "mini-batch size": m, "eta": eta,
                   "epochs": epochs, "reduction": options.reduction,
                   "shuffle": bool(options.shuffle), "on_divergence": options.on_divergence,
                   "handle_signals": bool(options.handle_signals), "reduce": reduce,
                   "check_every": group.check_every,
                   "training data (CRC-32)": f"{data_sum:08x}"}
    except (ValueError, TypeError) as e:
        error = f"{type(e).__name__}: {e}"
    summaries = _allgather(group, error or summary)
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
    if isinstance(group, Communicator):
        group.comm.Bcast(net.params, root=0)
        net.seed, net.rng.bit_generator.state = group.share(
            (net.seed, net.rng.bit_generator.state))
    if not np.isfinite(net.params).all():  # rank 0's, now every rank's
        raise _every_rank(ValueError("the network's weights or biases are not finite; "
                                     "set finite values (or draw a new Network) before "
                                     "training"))
    return options


def _threads(group, threads):
    """Threads per rank; over MPI, a warning (on rank 0) naming the nodes whose
    cores the ranks' threads oversubscribe."""
    if not isinstance(group, Communicator):
        return threads
    if threads is not None:
        threads = check_int(threads, "threads", minimum=1,
                            maximum=numba.config.NUMBA_NUM_THREADS)
    default, node, cpus = _threads_facts(group.comm)
    threads = default if threads is None else threads
    demand = sum(node.allgather(threads))
    cores = len(set().union(*map(set, cpus)))
    nodes = group.comm.allgather((socket.gethostname(), node.Get_size(), demand, cores)
                                 if node.Get_rank() == 0 else None)
    node.Free()
    crowded = [f"{host}: {ranks} ranks x threads = {want} threads on {have} cores"
               for host, ranks, want, have in filter(None, nodes) if want > have]
    if crowded and group.rank == 0:
        warnings.warn(
            "the ranks oversubscribe the cores (" + "; ".join(crowded) + "): threads "
            "wait for each other and every step waits for the slowest rank.  Start "
            "fewer ranks per node or pass fewer threads (--threads).",
            DistributedWarning, stacklevel=stacklevel_outside_package())
    return threads


def _measure(trainer, group, facts):
    """Time one example's gradient and one combine (the slowest rank's, so that
    every rank agrees); warn on rank 0 when a step gives a rank fewer examples
    than the break-even."""
    comm = group.comm
    k = min(trainer.n, TIMING_EXAMPLES)
    began = time.perf_counter()
    trainer.gradient_sum(trainer.current, np.arange(k), 0, k)
    per_example = (time.perf_counter() - began) / k
    seconds = []
    for _ in range(TIMING_COMBINES):
        comm.Barrier()
        began = time.perf_counter()
        group.combine(trainer.buffers.nabla)
        seconds.append(time.perf_counter() - began)
    latency = float(np.median(seconds))
    pairs = comm.allgather((latency, per_example))
    latency, per_example = max(p[0] for p in pairs), max(p[1] for p in pairs)
    break_even = math.ceil(latency / per_example)
    fewest = trainer.mini_batch_size // group.size
    facts.update(combine_s=latency, s_per_example=per_example,
                 break_even_examples=break_even, fewest_examples_per_rank=fewest)
    if fewest < break_even and group.rank == 0:
        warnings.warn(
            f"each step gives a rank as few as {fewest} examples, fewer than the "
            f"{break_even} whose gradient takes as long as one combine here "
            f"({latency * 1e6:.0f} us against {per_example * 1e6:.2f} us per example): "
            f"communication outweighs the work shared out.  Use a larger mini-batch "
            f"(or full batch), or fewer ranks.", DistributedWarning,
            stacklevel=stacklevel_outside_package())
