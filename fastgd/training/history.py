"""What a run leaves: the ``History`` of its epochs (one record each, made by
``epoch_record``), ``EpochStep`` (where the epoch loop stands), and the ways a
run ends early (``DivergenceError``, ``DivergenceWarning``,
``TrainingInterrupted``)."""

from collections import namedtuple
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .diagnose import SATURATION_SAMPLE
from .kernel_choice import numba_threads
from .stop_requests import signal_name


class DivergenceError(RuntimeError):
    """Training failed (see ``diagnose``) with ``on_divergence="raise"``;
    ``history`` holds the epochs run, ``network`` the network trained (as it was
    when training stopped; the one ``fastgd.resume`` read, for a resumed run)."""

    def __init__(self, message, history=None, network=None):
        super().__init__(message)
        self.history, self.network = history, network


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal (SIGINT, SIGTERM or SIGHUP).

    signal:     the signal's number
    history:    the History of the epochs completed
    epoch:      epochs completed; position: examples trained of the next one
    checkpoint: the checkpoint written, or None
    network:    the network trained, as it was when training stopped (for a run of
                ``fastgd.resume``, the network it read from the checkpoint)
    """

    def __init__(self, signum, history, epoch, position, checkpoint, network=None):
        super().__init__(f"training interrupted by {signal_name(signum)} after {epoch} "
                         f"epochs" + (f" and {position} examples" if position else ""))
        self.signal, self.history = signum, history
        self.epoch, self.position, self.checkpoint = epoch, position, checkpoint
        self.network = network


class DivergenceWarning(RuntimeWarning):
    """Training diverged and was stopped (or continued, if asked)."""


class History(list[dict[str, Any]]):
    """One dict per epoch: epoch, seconds, cost, and when measured correct, total,
    accuracy (test_data) and training_cost (monitor_training_cost).

    ``cost`` is the running training cost: the mean of C_x over the epoch, each
    C_x computed by the forward pass of its own mini-batch step (free, but
    measured while the weights move).  ``training_cost`` is C on the whole
    training set after the epoch; ``pinned_outputs`` counts the saturated output
    neurons (see ``diagnose``); ``eta``, with an eta schedule, the learning rate
    the epoch was trained with.  ``diverged`` holds the failure verdict, or None,
    and ``stopped`` why training ended before ``info["epochs_planned"]``.
    ``fastgd.plots.learning_curves(history)`` draws it.
    """

    def __init__(self, *args: Iterable[dict[str, Any]], **info: Any) -> None:
        super().__init__(*args)
        self.diverged: str | None = None  # the failure verdict (see diagnose), or None
        self.stopped: str | None = None   # why training stopped before epochs_planned, or None
        # {"epoch", "path"} of the network save_best kept
        self.best_saved: dict[str, Any] | None = None
        # {"epoch", "position", "path"} of the last checkpoint
        self.checkpoint: dict[str, Any] | None = None
        self.info: dict[str, Any] = info

    def column(self, key: str) -> NDArray[np.float64]:
        """The values of one field across epochs, as an array (NaN where absent)."""
        return np.array([row.get(key, np.nan) for row in self], dtype=float)


class EpochStep(namedtuple("EpochStep", "epoch position cost seconds shuffle_seconds done "
                                          "stopped")):
    """Where ``Trainer.epochs`` stands: ``epoch``; ``position``, the examples of it
    trained; ``cost``, their summed C_x; ``seconds`` of training in it so far
    (``shuffle_seconds`` of them drawing the permutation); ``done``, the epoch is
    complete; ``stopped``, the loop ends here (a stop request or a cost that is
    not finite)."""


def epoch_record(net, epoch, cost, seconds, training_data, test_data, *,
                 monitor_training_cost=False, threads=None):
    """A History entry: the epoch, its seconds, the running cost (``cost`` is the
    sum of C_x over the epoch), and what evaluating the network now tells
    (test_data's results, C on the training set if monitored, the pinned output
    neurons on the first SATURATION_SAMPLE training inputs).  The data must be
    checked already (``check_data``): this runs after every epoch."""
    X, y = training_data
    record = {"epoch": epoch, "seconds": seconds, "cost": cost / len(y)}
    with numba_threads(threads):
        if monitor_training_cost:
            record["training_cost"] = net._evaluation(X, y).cost
        if test_data is not None:
            result = net._evaluation(*test_data)
            record.update(correct=result.correct, total=result.total,
                          accuracy=result.accuracy, test_cost=result.cost)
            if result.nonfinite:
                record["nonfinite_outputs"] = result.nonfinite
        record["pinned_outputs"] = net._evaluation(X[:SATURATION_SAMPLE],
                                                   y[:SATURATION_SAMPLE]).pinned
    return record
