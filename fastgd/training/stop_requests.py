"""Stopping a run on a signal: ``StopRequests`` turns SIGINT, SIGTERM and SIGHUP
into a request the epoch loop sees at its next segment boundary."""

import signal
import threading

from .._signals import SIGNALS, catch_signals, restore_signals


class StopRequests:
    """While training, SIGINT, SIGTERM and SIGHUP ask it to stop at the next
    segment boundary (so the work so far can be kept); a second one aborts at
    once (``SecondSignal``, a KeyboardInterrupt).  Only the main thread can
    handle signals; elsewhere this does nothing.  A signal the process ignores
    (started under ``nohup``, say) stays ignored.  ``runs`` counts the runs that
    have started in this process: the command line keeps a signal that comes
    after one until it has written the outputs."""

    runs = 0

    def __init__(self, enabled):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signal = None
        self.previous = {}

    def requested(self):
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:
            self.__exit__()
            raise SecondSignal(signum)
        self.signal = signum

    def __enter__(self):
        if self.enabled:
            StopRequests.runs += 1
            self.previous = catch_signals(SIGNALS, self._handle)
        return self

    def __exit__(self, *exc):
        restore_signals(self.previous)
        self.previous = {}
        return False


class SecondSignal(KeyboardInterrupt):
    """A second signal while a run was stopping: training stopped at once.
    ``signal`` is its number."""

    def __init__(self, signum):
        super().__init__(f"second {signal_name(signum)}: stopped at once")
        self.signal = signum


def signal_name(signum):
    """The signal's name ("SIGINT"), or "signal N" for a number without one."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"

