"""The work queue that lets one parallel region run a whole epoch segment.

Every worker thread of a training kernel runs the same loop over the stages
(the forward and backward passes of a mini-batch, its decay, its update...),
takes the pieces of each stage from a shared counter (``take_piece``,
``finish_and_take``) and starts the next stage once a second counter says
every piece of this one is finished (``wait_for``): atomic operations, much
cheaper than starting and joining a parallel region per stage.
"""

import sys

import numpy as np
from numba import types as nbtypes

from .intrinsics import fetch_add, load_acquire
from .maths import decay_rows
from .numba_cache import njit

# The work queue of a training kernel: counter[0] counts the pieces handed out,
# counter[1] the pieces finished.  Pieces are numbered across the stages of the
# whole run (a stage: the forward and backward passes of a mini-batch, its
# update, ...), in the order the stages must happen.


@njit(cache=True, nogil=True)
def work_queue():
    """(counter, total): a new work queue's counter, [0, 0], and a zero running
    total of the cost.  Allocated here, out of sight of the parallel kernels:
    numba's parallel pass reads an element of a np.zeros array made in the
    kernel as 0 after a prange loop whose called functions wrote to it."""
    return np.zeros(2, np.int64), np.zeros(1)


# Numbers per row of ``hogwild_queues``: 128 bytes, so that the counter and the
# total of one thread never share a cache line (64 bytes) with another's.
_QUEUE_ROW = 16


@njit(cache=True, nogil=True)
def hogwild_queues(n_threads):
    """(counters, totals): ``work_queue``'s counter and total for each of
    n_threads threads, as row w of each, the rows far enough apart that the
    threads, each bumping its own counter at every piece, never write one cache
    line.  Allocated here for the reason ``work_queue`` gives."""
    return np.zeros((n_threads, _QUEUE_ROW), np.int64), np.zeros((n_threads, _QUEUE_ROW))


# Hogwild!'s threads on more than one core train replicas of the weights and add
# what they learnt to the shared ones every few mini-batches (``merge_interval``):
# a step writes every output weight and bias and the rows of its nonzero inputs,
# so threads writing the shared weights at every step pass those cache lines
# between their cores at every step, and ran slower than one thread.  A merge
# reads and writes each parameter about three times, and moves the lines the
# other threads changed: MERGE_WORK times as many weight updates between merges
# keep it a fraction of the work on any machine, since both count memory traffic.
# Longer intervals are faster but step on staler weights (the Trainer keeps the
# first epoch, where that hurts, on one thread; BENCHMARKS.md has the accuracies).
MERGE_WORK = 16
# A thread's steps are computed on weights that lack every other thread's steps
# since its last merge: about n_threads * interval examples in flight, all of
# whose steps add up as if taken from one point.  Too many, at the book's
# eta = 3.0 (m = 10) on a 16-core Xeon: with a merge every 90 examples, 8
# threads (720 in flight) diverged in 3 runs of 3; with a merge every 40, 8
# threads (320) saturated an output neuron for good in 1 run of 2 (best
# accuracy 86%).  Two threads merging every 85-90 examples (about 170 in
# flight) kept the serial kernel's accuracy over the book's 30 epochs on both
# the Xeon and the 2-core EPYC.  So the
# interval shrinks with the thread count to keep at most STALE_EXAMPLES in
# flight, at the price of more merges: a bound on the method's staleness, not a
# machine's tuning (BENCHMARKS.md, section "Hogwild!").
STALE_EXAMPLES = 160


@njit(cache=True, nogil=True)
def merge_interval(indptr, sizes, n_params, mini_batch_size, n_threads):
    """Mini-batches between two merges of a Hogwild! thread's replica: enough for
    MERGE_WORK * n_params weight updates, an example updating its nonzero
    inputs' rows of layer 0 (the mean count, from the index) and every weight
    and bias of the other layers; but at most STALE_EXAMPLES / n_threads
    examples (at least one mini-batch), so that the n_threads threads have at
    most STALE_EXAMPLES examples' steps in flight."""
    n = indptr.shape[0] - 1
    nonzero = (indptr[n] - indptr[0]) / max(1, n)
    touched = nonzero * sizes[1] + sizes[1]
    for i in range(1, sizes.shape[0] - 1):
        touched += sizes[i] * sizes[i + 1] + sizes[i + 1]
    examples = min(MERGE_WORK * n_params / max(1.0, touched),
                   STALE_EXAMPLES / max(1, n_threads))
    return max(1, int(np.ceil(examples / mini_batch_size)))


@njit(cache=True, nogil=True)
def hogwild_replica(params):
    """(local, snapshot): a Hogwild! thread's own copy of the weights, and the
    shared weights as they were when it last took them."""
    return np.empty_like(params), np.empty_like(params)


@njit(cache=True, nogil=True)
def pull_replica(params, local, snapshot):
    """local = snapshot = the shared weights as they are now (other threads may
    be adding to them: each number is one read)."""
    for p in range(params.shape[0]):
        value = params[p]
        local[p] = value
        snapshot[p] = value


@njit(cache=True, nogil=True)
def merge_replica(params, local, snapshot):
    """params += local - snapshot, without locks: what this thread learnt since
    it took the weights, added to whatever the other threads have added
    meanwhile; then local = snapshot = the result, as ``pull_replica`` takes
    it.  One pass with no branch, which vectorises."""
    for p in range(params.shape[0]):
        value = params[p] + (local[p] - snapshot[p])
        params[p] = value
        local[p] = value
        snapshot[p] = value


if sys.platform == "win32":
    @njit(cache=True, nogil=True)
    def _yield_cpu():
        """Nothing (Windows has no sched_yield): the wait spins."""
        return 0
else:
    # POSIX sched_yield, called by its name: numba links it from the C library the
    # process has loaded (no address in the compiled code, so it caches)
    _yield_cpu = nbtypes.ExternalFunction("sched_yield", nbtypes.int32())


@njit(cache=True, nogil=True, inline="always")
def take_piece(counter):
    """The next piece nobody has taken: threads take pieces as they become free,
    so a thread the OS preempts delays only the piece it holds, and no thread
    needs to know how many others there are."""
    return fetch_add(counter, 0, np.int64(1))


@njit(cache=True, nogil=True, inline="always")
def finish_and_take(counter):
    """Count the piece held as finished, and take the next one."""
    fetch_add(counter, 1, np.int64(1))
    return fetch_add(counter, 0, np.int64(1))


@njit(cache=True, nogil=True, inline="always")
def wait_for(counter, end, patience):
    """Wait until every piece before `end` is finished (the end of a stage, whose
    results the next stage reads); returns end, the next stage's first piece.

    A thread waits here holding no piece of the stages it waits for (only,
    perhaps, one of a later stage), so each of those pieces is held by a thread
    that is running it: no deadlock, even when the workers run one after
    another on one thread.

    After `patience` turns of the loop the thread gives its CPU away at every
    turn (``_yield_cpu``): with more threads than CPUs, the thread it waits
    for may be waiting for a CPU, and a spinning thread would hold one for
    its whole time slice.  On an idle machine a stage's end comes sooner."""
    spins = 0
    while load_acquire(counter, 1) < end:
        spins += 1
        if spins > patience:
            _yield_cpu()
    return end


@njit(cache=True, nogil=True, inline="always")
def decay_stage(counter, piece, base, n_pieces, rows_per_piece, weights, sizes, scale,
                 shrink, patience):
    """The weight decay of one step as a stage of a training kernel's work queue
    (``drive_descend``): n_pieces pieces of rows_per_piece weight rows (``decay_rows``).
    Takes the piece the worker holds and the stage's first piece; returns the
    piece it holds after the stage and the next stage's first piece."""
    while piece < base + n_pieces:
        first = (piece - base) * rows_per_piece
        decay_rows(weights, sizes, first, first + rows_per_piece, scale, shrink)
        piece = finish_and_take(counter)
    return piece, wait_for(counter, base + n_pieces, patience)

