"""Which training kernel runs and how its work is cut, none of which changes a
result: numba's thread count for a block (``numba_threads``), the kernel a run
starts with (``choose_kernel``), the mini-batch sizes updated directly or summed
in groups (``chunk_size``, ``GROUP``, ``chunk``; these decide the order of the
additions, so they are constants) and one way to run the kernel
(``Candidate``)."""

import os
from contextlib import contextmanager

import numba

from .._validation import check_int
from .options import KERNELS, check_choice


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



def available_cores():
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threading_layer():
    """numba's threading layer, or "not yet chosen" before a parallel kernel has run."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        return "not yet chosen"


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


def chunk(m, most, group):
    """Examples of a large mini-batch backpropagated between two additions of
    the group sums to nabla: at most `most`, in whole groups (all of a smaller
    mini-batch).  It changes no result."""
    return m if m <= most else max(group, most // group * group)



def choose_kernel(mini_batch_size, threads, kernel="auto"):
    """(name, reason) of the kernel a run starts with: "serial", "parallel", or
    "auto" (timed at run time) when both are candidates; "hogwild" (not
    deterministic) only when asked for, never by "auto"."""
    if check_choice(kernel, "kernel", KERNELS) != "auto":
        if kernel == "hogwild" and threads > 1:
            return kernel, (f"asked for: the first epoch on 1 thread, then {threads} threads "
                            "on replicas of the weights merged every few mini-batches")
        return kernel, "asked for"
    if threads == 1:
        return "serial", "1 thread"
    counts = " or ".join(str(t) for t in parallel_thread_counts(threads))
    return "auto", (f"serial on 1 thread or parallel on {counts} threads, whichever is "
                    "faster on this machine now: timed during the first epoch, and again "
                    "when the speed drifts")


def parallel_thread_counts(threads):
    """The thread counts that auto times the parallel kernel on, given `threads`:
    all of them, then half as many, and so on down to 2.  More threads are not
    always faster: a step has only so many pieces to share, each thread adds
    its own overhead to every step, and on all the cores of a machine any
    other work stalls the step while it waits for its slowest thread
    (BENCHMARKS.md, "Sixteen cores").  The counts give the same bits."""
    counts = [threads]
    while counts[-1] // 2 >= 2:
        counts.append(counts[-1] // 2)
    return counts



class Candidate:
    """One way to run the training kernel: which compiled variant (``name``:
    "serial", "parallel" or "hogwild"), on how many threads, with how the work
    is cut into pieces.  All give the same bits (hogwild aside).  ``label``
    names it in a calibration: its name, or "parallel on T threads" for the
    parallel kernel on fewer threads than the run has."""

    def __init__(self, name, fn, threads, splits, chunk, example_block, label=None):
        self.name, self.fn, self.threads = name, fn, threads
        self.splits, self.chunk, self.example_block = splits, chunk, example_block
        self.label = name if label is None else label

