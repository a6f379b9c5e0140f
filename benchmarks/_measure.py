"""What the benchmark scripts share: the cores a process may run on, pinning to one of
them, and the median seconds of repeated calls (``time.perf_counter``)."""

import os
import statistics
import time


def allowed_cores():
    """The CPUs this process may run on, sorted (None where the OS does not say)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cores():
    """The CPUs this process may run on (what numba uses by default); all of the
    machine's where the OS does not say."""
    return allowed_cores() or list(range(os.cpu_count() or 1))


def can_pin():
    return hasattr(os, "sched_setaffinity")


def pin_to_one_core():
    """Pin this process to the lowest CPU it may run on, where the OS allows, so that
    a one-thread timing is not moved from core to core (and cache to cache)."""
    if can_pin():
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def pin_to(cpu):
    """A preexec_fn that pins the child to one CPU.  A refusal (a container's
    policy, say) leaves it unpinned: the child records the CPUs it really had."""
    def pin():
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    return pin


def seconds(call, *args):
    """The wall-clock seconds of ``call(*args)``."""
    began = time.perf_counter()
    call(*args)
    return time.perf_counter() - began


def median(values):
    """The median, as a float: the middle value, or the mean of the middle two."""
    return float(statistics.median(values))


def median_seconds(call, *args, rounds, before=None):
    """The median seconds of ``rounds`` calls of ``call(*args)``; with ``before``, each
    call is ``call(*args, before())``, ``before`` run untimed (a new order, say)."""
    if before is None:
        return median([seconds(call, *args) for _ in range(rounds)])
    times = []
    for _ in range(rounds):
        last = before()
        times.append(seconds(call, *args, last))
    return median(times)
