"""Time to accuracy: online learning, mini-batches and full-batch gradient descent, compared.

The chapter's exercise asks for one advantage and one disadvantage of online
learning (mini-batch size m = 1) against stochastic gradient descent with
larger mini-batches.  ``time_to_accuracy`` measures it: for each mode (m = 1,
10, 100, 1000 or the full batch) it trains the same network, from the same
initial weights, and records the accuracy on ``eval_data`` against epochs and
against training wall-clock seconds.

How the numbers are measured
----------------------------
* Every mode starts from ``Network(sizes, seed=seed)``: the same initial weights
  and the same shuffling generator (``initial_params_sha256`` in each run
  records the weights it started from).
* Each epoch is one pass over the training data in a new random order, run
  through the project's own training kernel (``Trainer.kernel``, as
  ``Trainer.run_epoch`` calls it) in pieces of whole mini-batches, so a piece
  boundary never splits a mini-batch and the weights are exactly those
  ``SGD`` would give.  After each piece, about 1/``evaluations_per_epoch`` of an
  epoch, the network is evaluated on ``eval_data``.  Full-batch gradient
  descent makes one step per epoch, so it is evaluated once per epoch.
* The clock counts training only: drawing the permutation and the kernel
  calls.  Evaluation time is excluded (the clock is stopped while the network
  is evaluated), and the JIT compilation is done before the clock starts.
* A mode stops at the first evaluation at which its clock has reached
  ``max_seconds`` or it has trained ``max_epochs`` epochs (so the last point
  may pass ``max_seconds`` by up to one piece), or when the cost is no longer
  finite (diverged).
* ``max_seconds`` and ``sweep_seconds`` bound training time only, so the whole
  call takes longer: the eta sweep (``len(eta_grid)`` trials per mode), the
  evaluations, drawing the initial weights and the JIT compilation come on
  top (a 2-second ``max_seconds`` on MNIST can take a minute of wall-clock
  time).  ``max_total_seconds`` bounds the wall-clock time of the whole call,
  all of that included: each sweep trial and each run gets a share of the time
  left, in proportion to its training budget, and stops at the first piece
  boundary past its share (``stopped`` is then "max_total_seconds").  The call
  may pass the bound by one piece, one evaluation and one JIT compilation.
* "Seconds to 90%" is the clock at the first evaluation whose accuracy is at
  least 0.90, read off the recorded curve; a target that no evaluation reached
  is reported as not reached within the budget.  Nothing is interpolated or
  extrapolated, so the value is an upper bound, by at most one piece, on when
  the target was first passed.

Choosing eta
------------
Each mode has its own best learning rate (with the book's mean rule the step
of the full batch is eta times the *mean* gradient, so it wants a far larger
eta than online learning).  Unless ``etas`` is given, a sweep trains each mode
for ``sweep_seconds`` of training time with each eta of ``eta_grid``, from the
same initial weights, and keeps the eta with the highest accuracy on
``validation_data`` at the end of that short budget (ties: the smaller eta).
The test data are never used to choose.  The short budget favours etas that
learn fast early; that is the question asked here.
"""

import hashlib
import math
import numbers
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ._validation import check_int, check_positive_float
from .dataset import Data, check_data
from .network import Network
from .training import Trainer, measuring_mode, numba_threads

DEFAULT_MODES = (1, 10, 100, 1000, None)
DEFAULT_ETA_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
DEFAULT_TARGETS = (0.90, 0.95)


# -- checks ---------------------------------------------------------------------------

def _check_modes(modes, n):
    if isinstance(modes, (str, bytes)) or not hasattr(modes, "__iter__"):
        raise TypeError(f"modes must be a sequence of mini-batch sizes (None for the full "
                        f"batch), got {modes!r}")
    modes = list(modes)
    if not modes:
        raise ValueError("modes must name at least one mini-batch size")
    checked = []
    for mode in modes:
        if mode is not None:
            if isinstance(mode, bool) or not isinstance(mode, numbers.Integral):
                raise TypeError(f"modes must hold integers (mini-batch sizes) or None (the "
                                f"full batch), got {mode!r}")
            mode = int(mode)
            if mode < 1:
                raise ValueError(f"modes: a mini-batch size must be >= 1, got {mode}")
            if mode > n:
                raise ValueError(f"modes: mini-batch size {mode} is more than the {n} "
                                 "training inputs (use None for the full batch)")
        if mode in checked or (mode is None and n in checked) or (mode == n and None in checked):
            raise ValueError(f"modes must not repeat a mini-batch size, got {modes}")
        checked.append(mode)
    return checked


def _check_targets(targets):
    try:
        targets = [float(t) for t in targets]
    except (TypeError, ValueError):
        raise TypeError(f"targets must be a sequence of accuracies in (0, 1], got "
                        f"{targets!r}") from None
    if not targets or not all(0 < t <= 1 for t in targets):
        raise ValueError(f"targets must be accuracies in (0, 1], got {targets}")
    return sorted(set(targets))


def _check_budget(max_seconds, max_epochs, seconds_name="max_seconds",
                  epochs_name="max_epochs"):
    if max_seconds is not None:
        max_seconds = check_positive_float(max_seconds, seconds_name)
    if max_epochs is not None:
        max_epochs = check_int(max_epochs, epochs_name, minimum=1)
    if max_seconds is None and max_epochs is None:
        raise ValueError(f"give {seconds_name} or {epochs_name} (or both): "
                         "training needs a budget")
    return max_seconds, max_epochs


def mode_label(mode, n=None):
    """'m=1 (online)', 'm=10', ..., 'full batch (m=50000)'."""
    if mode is None:
        return "full batch" if n is None else f"full batch (m={n})"
    return "m=1 (online)" if mode == 1 else f"m={mode}"


# -- one training run, evaluated as it goes ---------------------------------------------

def _checkpoints(n, m, evaluations_per_epoch):
    """Positions in an epoch (examples done) after which to evaluate: close to
    multiples of n / evaluations_per_epoch, always whole mini-batches, ending at n."""
    marks = {min(n, round(n * i / (evaluations_per_epoch * m)) * m)
             for i in range(1, evaluations_per_epoch)}
    marks.discard(0)
    marks.add(n)
    return sorted(marks)


def train_curve(net, training_data, eval_data, mini_batch_size, eta, *, max_seconds=None,
                max_epochs=None, evaluations_per_epoch=10, evaluate_during=True, threads=None,
                stop_at=None, deadline=None, progress=None):
    """Train ``net`` and record its accuracy on ``eval_data`` as it learns.

    Returns a dict with ``curve`` (a list of points ``{"epochs", "seconds",
    "examples", "correct", "total", "accuracy"}``, starting with the untrained
    network at 0 s), ``stopped`` ("max_seconds", "max_epochs", "diverged",
    "target" or "max_total_seconds"), ``wall_seconds`` (the whole call: JIT
    warm-up and evaluations included) and the run's settings.  ``seconds`` is
    training time only (evaluation excluded).  ``evaluate_during=False``
    evaluates only at the start and the end (the eta sweep).  ``stop_at``: stop
    as soon as this accuracy is reached.  ``deadline``: a ``time.perf_counter()``
    value; training stops at the first piece boundary past it.  ``progress``:
    called after each piece with ``{"epochs", "seconds", "wall_seconds",
    "accuracy", "done", "stopped"}`` (accuracy None when the piece was not
    evaluated, stopped None until the last piece).
    """
    max_seconds, max_epochs = _check_budget(max_seconds, max_epochs)
    evaluations_per_epoch = check_int(evaluations_per_epoch, "evaluations_per_epoch", minimum=1)
    wall_start = time.perf_counter()
    trainer = Trainer(net, training_data, mini_batch_size, eta, threads=threads,
                      specialize=measuring_mode())
    eval_X, eval_y = check_data(eval_data, net.sizes[0], net.sizes[-1], net.dtype, "eval_data")
    if len(eval_y) == 0:
        raise ValueError("eval_data must hold at least one example")
    n, m = trainer.n, trainer.mini_batch_size
    marks = _checkpoints(n, m, evaluations_per_epoch)

    def point(epochs, seconds, examples):
        with numba_threads(threads):
            correct = net.evaluation(eval_X, eval_y, name="eval_data").correct
        return {"epochs": epochs, "seconds": seconds, "examples": examples,
                "correct": int(correct), "total": len(eval_y),
                "accuracy": correct / len(eval_y)}

    curve = [point(0.0, 0.0, 0)]
    done_seconds, stopped = 0.0, None  # training seconds of the epochs completed
    epochs = max_epochs if max_epochs is not None else sys.maxsize
    for step in trainer.epochs(epochs, marks=marks):
        seconds = done_seconds + step.seconds
        examples = step.epoch * n + step.position
        if step.done:
            done_seconds = seconds
        if not math.isfinite(step.cost):
            stopped = "diverged"
        elif max_seconds is not None and seconds >= max_seconds:
            stopped = "max_seconds"
        elif max_epochs is not None and step.done and step.epoch + 1 >= max_epochs:
            stopped = "max_epochs"
        elif deadline is not None and time.perf_counter() >= deadline:
            stopped = "max_total_seconds"
        evaluated = evaluate_during or stopped is not None
        if evaluated:
            curve.append(point(examples / n, seconds, examples))
            if stop_at is not None and curve[-1]["accuracy"] >= stop_at and stopped is None:
                stopped = "target"
        if progress is not None:
            progress({"epochs": examples / n, "seconds": seconds,
                      "wall_seconds": time.perf_counter() - wall_start,
                      "accuracy": curve[-1]["accuracy"] if evaluated else None,
                      "done": stopped is not None, "stopped": stopped})
        if stopped is not None:
            break
    return {"mini_batch_size": m, "eta": trainer.eta, "kernel": trainer.kernel_name,
            "threads": trainer.threads, "curve": curve, "stopped": stopped,
            "wall_seconds": time.perf_counter() - wall_start}


def first_reached(curve, target):
    """The first recorded point with accuracy >= target, or None (never extrapolated)."""
    for p in curve:
        if p["accuracy"] >= target:
            return p
    return None


def _fingerprint(net):
    return hashlib.sha256(np.ascontiguousarray(net.params).tobytes()).hexdigest()


class _WallClock:
    """Shares out a wall-clock bound: each stage still to run gets the time left in
    proportion to its weight (its training budget).  Without a bound, no deadlines."""

    def __init__(self, max_total_seconds, weights):
        self.start = time.perf_counter()
        self.limit = max_total_seconds
        self.weights_left = float(sum(weights))

    def deadline(self, weight):
        """The perf_counter() time by which the next stage, of this weight, should end."""
        if self.limit is None:
            return None
        now = time.perf_counter()
        left = max(0.0, self.start + self.limit - now)
        share = left * weight / self.weights_left if self.weights_left > 0 else left
        self.weights_left -= weight
        return now + share

    def elapsed(self):
        return time.perf_counter() - self.start


def _tagged(progress, **tags):
    """A progress callback for one stage: the stage's own fields added to each event."""
    if progress is None:
        return None
    return lambda event: progress({**tags, **event})


# -- the comparison ----------------------------------------------------------------------

def sweep_eta(training_data, validation_data, mini_batch_size, eta_grid=DEFAULT_ETA_GRID, *,
              sizes=(784, 30, 10), seed=0, dtype="float32", sweep_seconds=3.0,
              sweep_epochs=None, threads=None, max_total_seconds=None, progress=None):
    """Train one mode with each eta of ``eta_grid`` for a short budget, from the same
    initial weights; returns ``{"mini_batch_size", "trials": [...], "chosen_eta"}``
    where chosen_eta has the highest accuracy on ``validation_data`` at the end of
    the budget (ties: the smaller eta).  ``max_total_seconds`` bounds the wall-clock
    time of the whole sweep (shared equally among the etas still to try);
    ``progress`` is called as in ``train_curve``, with ``"stage": "sweep"``,
    ``"mode"`` and ``"eta"`` added."""
    grid = list(eta_grid) if eta_grid is not None else []
    if not grid:
        raise ValueError("eta_grid must hold at least one learning rate")
    grid = sorted({check_positive_float(eta, "eta_grid") for eta in grid})
    if max_total_seconds is not None:
        max_total_seconds = check_positive_float(max_total_seconds, "max_total_seconds")
    clock = _WallClock(max_total_seconds, [1.0] * len(grid))
    trials = []
    for eta in grid:
        net = Network(sizes, seed=seed, dtype=dtype)
        run = train_curve(net, training_data, validation_data, mini_batch_size, eta,
                          max_seconds=sweep_seconds, max_epochs=sweep_epochs,
                          evaluate_during=False, threads=threads,
                          deadline=clock.deadline(1.0),
                          progress=_tagged(progress, stage="sweep", mode=mini_batch_size,
                                           eta=eta))
        last = run["curve"][-1]
        trials.append({"eta": eta, "accuracy": last["accuracy"], "correct": last["correct"],
                       "total": last["total"], "seconds": last["seconds"],
                       "epochs": last["epochs"], "diverged": run["stopped"] == "diverged",
                       "stopped": run["stopped"], "wall_seconds": run["wall_seconds"]})
    best = max(trials, key=lambda t: (t["accuracy"], -t["eta"]))
    return {"mini_batch_size": mini_batch_size, "trials": trials, "chosen_eta": best["eta"]}


def time_to_accuracy(training_data: Data, eval_data: Data,
                     modes: Sequence[int | None] = DEFAULT_MODES,
                     etas: Sequence[float] | None = None, *,
                     validation_data: Data | None = None, sizes: Sequence[int] = (784, 30, 10),
                     seed: int = 0, dtype: DTypeLike = "float32", max_seconds: float = 30.0,
                     max_epochs: int = 1000, targets: Sequence[float] = DEFAULT_TARGETS,
                     evaluations_per_epoch: int = 10,
                     eta_grid: Sequence[float] = DEFAULT_ETA_GRID, sweep_seconds: float = 3.0,
                     sweep_epochs: int | None = None, threads: int | None = None,
                     eval_name: str = "eval", max_total_seconds: float | None = None,
                     progress: Callable[..., object] | None = None) -> dict[str, Any]:
    """Accuracy on ``eval_data`` against epochs and training seconds, for each mode.

    Parameters
    ----------
    training_data, eval_data : (X, y)
        Train on the first, report accuracy on the second (the test data).
    modes : sequence of int or None
        Mini-batch sizes: 1 is online learning, None the full batch.
    etas : sequence of float, optional
        One learning rate per mode.  When None, each mode's eta is chosen by a
        sweep over ``eta_grid`` (``sweep_seconds`` of training each), scored on
        ``validation_data``, which is then required.
    seed : int
        Every mode starts from ``Network(sizes, seed=seed)``: same weights.
    max_seconds, max_epochs :
        The budget of each mode (training seconds, evaluation excluded); a mode
        stops at the first evaluation past either.  None: no limit of that kind.
    targets : accuracies whose time and epochs to reach are reported.
    evaluations_per_epoch : int
        Evaluate after about every 1/k of an epoch (whole mini-batches).
    max_total_seconds : float, optional
        A wall-clock bound for the whole call: sweep, JIT compilation and
        evaluations included (see the module docstring).  None: no bound.
    progress : callable, optional
        Called after each piece of training with a dict: ``stage`` ("sweep" or
        "run"), ``mode``, ``eta``, ``epochs``, ``seconds`` (training),
        ``wall_seconds`` (this stage so far), ``accuracy`` (None when the piece
        was not evaluated), ``done`` (the stage's last piece) and ``stopped``.

    Returns a JSON-serializable dict: the settings, ``sweep`` (None when
    ``etas`` is given) and ``runs``, one per mode, each with its ``curve``,
    ``reached`` (one entry per target: seconds and epochs, or None when not
    reached within the budget) and ``best_accuracy``; ``wall_seconds`` is the
    whole call.  See the module docstring for exactly what is timed.
    """
    from ._validation import check_sizes
    sizes = check_sizes(sizes)
    seed = check_int(seed, "seed", minimum=0)
    X, y = check_data(training_data, sizes[0], sizes[-1], dtype, "training_data")
    if len(y) == 0:
        raise ValueError("training_data must hold at least one example")
    eval_X, eval_y = check_data(eval_data, sizes[0], sizes[-1], dtype, "eval_data")
    if len(eval_y) == 0:
        raise ValueError("eval_data must hold at least one example")
    n = len(y)
    modes = _check_modes(modes, n)
    targets = _check_targets(targets)
    max_seconds, max_epochs = _check_budget(max_seconds, max_epochs)
    evaluations_per_epoch = check_int(evaluations_per_epoch, "evaluations_per_epoch", minimum=1)
    if max_total_seconds is not None:
        max_total_seconds = check_positive_float(max_total_seconds, "max_total_seconds")
    if etas is not None:
        if isinstance(etas, (str, bytes)) or not hasattr(etas, "__iter__"):
            raise TypeError(f"etas must be a sequence of learning rates, one per mode, "
                            f"got {etas!r}")
        etas = [check_positive_float(eta, "etas") for eta in etas]
        if len(etas) != len(modes):
            raise ValueError(f"etas must give one learning rate per mode: {len(modes)} modes, "
                             f"{len(etas)} etas")
        sweep: list[dict[str, Any]] | None = None
    else:
        if validation_data is None:
            raise ValueError("validation_data is needed to choose eta (or give etas)")
        val_X, val_y = check_data(validation_data, sizes[0], sizes[-1], dtype,
                                  "validation_data")
        if len(val_y) == 0:
            raise ValueError("validation_data must hold at least one example")
        sweep_seconds, sweep_epochs = _check_budget(sweep_seconds, sweep_epochs,
                                                    "sweep_seconds", "sweep_epochs")
        sweep = []

    # The wall-clock bound is shared out by training budget: a sweep trial weighs
    # sweep_seconds, a run max_seconds (1 and 10 when budgeted by epochs only).
    run_weight = max_seconds if max_seconds is not None else 10.0
    sweep_weight = 0.0
    if sweep is not None:
        trial_weight = sweep_seconds if sweep_seconds is not None else 1.0
        sweep_weight = trial_weight * len(set(eta_grid if eta_grid is not None else ()))
    clock = _WallClock(max_total_seconds, [sweep_weight] * len(modes) + [run_weight] * len(modes))

    if sweep is not None:
        for mode in modes:
            deadline = clock.deadline(sweep_weight)
            sweep.append(sweep_eta((X, y), (val_X, val_y), mode, eta_grid, sizes=sizes,
                                   seed=seed, dtype=dtype, sweep_seconds=sweep_seconds,
                                   sweep_epochs=sweep_epochs, threads=threads,
                                   max_total_seconds=None if deadline is None else
                                   max(deadline - time.perf_counter(), 1e-9),
                                   progress=progress))
        etas = [s["chosen_eta"] for s in sweep]

    assert etas is not None  # given, or chosen by the sweep above
    runs = []
    for mode, eta in zip(modes, etas):
        net = Network(sizes, seed=seed, dtype=dtype)
        start_weights = _fingerprint(net)
        run = train_curve(net, (X, y), (eval_X, eval_y), mode, eta, max_seconds=max_seconds,
                          max_epochs=max_epochs, evaluations_per_epoch=evaluations_per_epoch,
                          threads=threads, deadline=clock.deadline(run_weight),
                          progress=_tagged(progress, stage="run", mode=mode, eta=eta))
        curve = run["curve"]
        reached = []
        for target in targets:
            p = first_reached(curve, target)
            reached.append({"target": target,
                            "seconds": None if p is None else p["seconds"],
                            "epochs": None if p is None else p["epochs"]})
        best = max(curve, key=lambda p: p["accuracy"])
        runs.append({"mode": mode, "label": mode_label(mode, n), **run,
                     "initial_params_sha256": start_weights, "reached": reached,
                     "best_accuracy": best["accuracy"], "best_correct": best["correct"],
                     "total_seconds": curve[-1]["seconds"], "total_epochs": curve[-1]["epochs"]})
    return {"sizes": sizes, "seed": seed, "dtype": np.dtype(dtype).name, "train_size": n,
            "eval_name": eval_name, "eval_size": len(eval_y),
            "validation_size": None if sweep is None else len(val_y),
            "max_seconds": max_seconds, "max_epochs": max_epochs, "targets": targets,
            "evaluations_per_epoch": evaluations_per_epoch,
            "eta_grid": None if sweep is None else sorted(float(e) for e in eta_grid),
            "sweep_seconds": None if sweep is None else sweep_seconds,
            "sweep_epochs": None if sweep is None else sweep_epochs,
            "max_total_seconds": max_total_seconds, "wall_seconds": clock.elapsed(),
            "clock": "training seconds only: shuffling and the training kernel; evaluation "
                     "and JIT compilation excluded",
            "sweep": sweep, "runs": runs}

