"""What training shows while it runs: the progress line during a slow epoch
(on stderr) and the line printed after each epoch."""

import sys

from ..config import PROGRESS_AFTER


class ProgressLine:
    """Shows "Epoch 3: 20000 / 50000 examples, 4.1 s" on stderr once an epoch is slow."""

    def __init__(self):
        self.shown = False

    def __call__(self, epoch, done, n, seconds):
        if seconds > PROGRESS_AFTER and done < n:
            print(f"\rEpoch {epoch}: {done} / {n} examples, {seconds:.1f} s",
                  end="", file=sys.stderr, flush=True)
            self.shown = True

    def clear(self):
        if self.shown:
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr, flush=True)
            self.shown = False



def epoch_line(record):
    """The line printed after an epoch of a History: "Epoch 3: 9129 / 10000  (1.23 s)"."""
    seconds = f"({record['seconds']:.2f} s)"
    if "eta" in record:  # a schedule is on
        seconds = f"eta {record['eta']:g}  {seconds}"
    if "correct" in record:
        return f"Epoch {record['epoch']}: {record['correct']} / {record['total']}  {seconds}"
    return f"Epoch {record['epoch']} complete  {seconds}"

