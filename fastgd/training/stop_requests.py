"""Stopping a run on a signal: ``StopRequests`` turns SIGINT, SIGTERM and SIGHUP
into a request the epoch loop sees at its next segment boundary."""

import signal
import threading


class StopRequests:
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
            raise KeyboardInterrupt(f"second {signal_name(signum)}: stopped at once")
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



def signal_name(signum):
    """The signal's name ("SIGINT"), or "signal N" for a number without one."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
