"""Catching the signals that stop a run, and giving them back (no numba: the
command line uses this before it imports anything heavy)."""

import signal

SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def catch_signals(names, handler):
    """Send the signals ``names`` (those this platform has) to ``handler``, but for
    any ignored when the process started (nohup): they stay ignored.  Returns the
    handlers replaced, for ``restore_signals``."""
    previous = {}
    for name in names:
        if hasattr(signal, name):
            number = getattr(signal, name)
            if signal.getsignal(number) is not signal.SIG_IGN:
                previous[number] = signal.signal(number, handler)
    return previous


def restore_signals(previous):
    """Put back the handlers ``catch_signals`` replaced."""
    for number, handler in previous.items():
        signal.signal(number, handler)
