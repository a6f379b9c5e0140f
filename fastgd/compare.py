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
import os
import sys
import time

import numpy as np

from ._validation import check_data, check_int, check_positive_float
from .network import Network
from .cli._arguments import check_output, int_at_least, positive_float
from .training import Trainer, numba_threads

DEFAULT_MODES = (1, 10, 100, 1000, None)
DEFAULT_ETA_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
DEFAULT_TARGETS = (0.90, 0.95)

PLOT_NEEDS = "matplotlib is needed for plots: pip install 'fastgd[plot]'"


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


def _warm_up(trainer, dtype):
    """Compile the kernels this run uses before its clock starts (a throwaway network)."""
    net = trainer.net
    k = min(trainer.n, 64)
    spare = Network(net.sizes, seed=0, dtype=dtype)
    small = Trainer(spare, (trainer.X[:k], trainer.y[:k]), min(trainer.mini_batch_size, k),
                    trainer.eta, threads=trainer.requested_threads, kernel=trainer.kernel_name)
    small.run_epoch(np.arange(k))
    spare._evaluate(trainer.X[:k], trainer.y[:k])


def _train_piece(trainer, order, start, stop):
    """Train on order[start:stop] (whole mini-batches) as Trainer.run_epoch does;
    returns the sum of C_x over those examples."""
    return trainer.run_slice(order, start, stop)


def train_curve(net, training_data, eval_data, mini_batch_size, eta, *, max_seconds=None,
                max_epochs=None, evaluations_per_epoch=10, evaluate_during=True, threads=None,
                stop_at=None):
    """Train ``net`` and record its accuracy on ``eval_data`` as it learns.

    Returns a dict with ``curve`` (a list of points ``{"epochs", "seconds",
    "examples", "correct", "total", "accuracy"}``, starting with the untrained
    network at 0 s), ``stopped`` ("max_seconds", "max_epochs", "diverged" or
    "target") and the run's settings.  ``seconds`` is training time only
    (evaluation excluded).  ``evaluate_during=False`` evaluates only at the
    start and the end (the eta sweep).  ``stop_at``: stop as soon as this
    accuracy is reached.
    """
    max_seconds, max_epochs = _check_budget(max_seconds, max_epochs)
    evaluations_per_epoch = check_int(evaluations_per_epoch, "evaluations_per_epoch", minimum=1)
    trainer = Trainer(net, training_data, mini_batch_size, eta, threads=threads)
    eval_X, eval_y = check_data(eval_data, net.sizes[0], net.sizes[-1], net.dtype, "eval_data")
    if len(eval_y) == 0:
        raise ValueError("eval_data must hold at least one example")
    n, m = trainer.n, trainer.mini_batch_size
    _warm_up(trainer, net.dtype)
    marks = _checkpoints(n, m, evaluations_per_epoch)

    def point(epochs, seconds, examples):
        with numba_threads(threads):
            correct, _ = net._evaluate(eval_X, eval_y)
        return {"epochs": epochs, "seconds": seconds, "examples": examples,
                "correct": int(correct), "total": len(eval_y),
                "accuracy": correct / len(eval_y)}

    curve = [point(0.0, 0.0, 0)]
    seconds, examples, epoch, stopped = 0.0, 0, 0, None
    while stopped is None:
        tic = time.perf_counter()
        order = net.rng.permutation(n)
        seconds += time.perf_counter() - tic
        start = 0
        for stop in marks:
            tic = time.perf_counter()
            cost = _train_piece(trainer, order, start, stop)
            seconds += time.perf_counter() - tic
            examples += stop - start
            start = stop
            if not math.isfinite(cost):
                stopped = "diverged"
            elif max_seconds is not None and seconds >= max_seconds:
                stopped = "max_seconds"
            elif max_epochs is not None and stop == n and epoch + 1 >= max_epochs:
                stopped = "max_epochs"
            if evaluate_during or stopped is not None:
                curve.append(point(examples / n, seconds, examples))
                if stop_at is not None and curve[-1]["accuracy"] >= stop_at and stopped is None:
                    stopped = "target"
            if stopped is not None:
                break
        epoch += 1
    return {"mini_batch_size": m, "eta": trainer.eta, "kernel": trainer.kernel_name,
            "threads": trainer.threads, "curve": curve, "stopped": stopped}


def first_reached(curve, target):
    """The first recorded point with accuracy >= target, or None (never extrapolated)."""
    for p in curve:
        if p["accuracy"] >= target:
            return p
    return None


def _fingerprint(net):
    return hashlib.sha256(np.ascontiguousarray(net.params).tobytes()).hexdigest()


# -- the comparison ----------------------------------------------------------------------

def sweep_eta(training_data, validation_data, mini_batch_size, eta_grid=DEFAULT_ETA_GRID, *,
              sizes=(784, 30, 10), seed=0, dtype="float32", sweep_seconds=3.0,
              sweep_epochs=None, threads=None, log=None):
    """Train one mode with each eta of ``eta_grid`` for a short budget, from the same
    initial weights; returns ``{"mini_batch_size", "trials": [...], "chosen_eta"}``
    where chosen_eta has the highest accuracy on ``validation_data`` at the end of
    the budget (ties: the smaller eta)."""
    grid = list(eta_grid) if eta_grid is not None else []
    if not grid:
        raise ValueError("eta_grid must hold at least one learning rate")
    grid = sorted({check_positive_float(eta, "eta_grid") for eta in grid})
    trials = []
    for eta in grid:
        net = Network(sizes, seed=seed, dtype=dtype)
        run = train_curve(net, training_data, validation_data, mini_batch_size, eta,
                          max_seconds=sweep_seconds, max_epochs=sweep_epochs,
                          evaluate_during=False, threads=threads)
        last = run["curve"][-1]
        trials.append({"eta": eta, "accuracy": last["accuracy"], "correct": last["correct"],
                       "total": last["total"], "seconds": last["seconds"],
                       "epochs": last["epochs"], "diverged": run["stopped"] == "diverged"})
        if log:
            log(f"  sweep {mode_label(mini_batch_size)}: eta {eta:g} -> "
                f"{last['accuracy']:.2%} on validation after {last['epochs']:.2f} epochs "
                f"({last['seconds']:.1f} s)")
    best = max(trials, key=lambda t: (t["accuracy"], -t["eta"]))
    return {"mini_batch_size": mini_batch_size, "trials": trials, "chosen_eta": best["eta"]}


def time_to_accuracy(training_data, eval_data, modes=DEFAULT_MODES, etas=None, *,
                     validation_data=None, sizes=(784, 30, 10), seed=0, dtype="float32",
                     max_seconds=30.0, max_epochs=1000, targets=DEFAULT_TARGETS,
                     evaluations_per_epoch=10, eta_grid=DEFAULT_ETA_GRID, sweep_seconds=3.0,
                     sweep_epochs=None, threads=None, eval_name="eval", log=None):
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
    log : callable, optional
        Called with progress lines (``print`` for the command line).

    Returns a JSON-serializable dict: the settings, ``sweep`` (None when
    ``etas`` is given) and ``runs``, one per mode, each with its ``curve``,
    ``reached`` (one entry per target: seconds and epochs, or None when not
    reached within the budget) and ``best_accuracy``.  See the module docstring
    for exactly what is timed.
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
    if etas is not None:
        if isinstance(etas, (str, bytes)) or not hasattr(etas, "__iter__"):
            raise TypeError(f"etas must be a sequence of learning rates, one per mode, "
                            f"got {etas!r}")
        etas = [check_positive_float(eta, "etas") for eta in etas]
        if len(etas) != len(modes):
            raise ValueError(f"etas must give one learning rate per mode: {len(modes)} modes, "
                             f"{len(etas)} etas")
        sweep = None
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
        for mode in modes:
            sweep.append(sweep_eta((X, y), (val_X, val_y), mode, eta_grid, sizes=sizes,
                                   seed=seed, dtype=dtype, sweep_seconds=sweep_seconds,
                                   sweep_epochs=sweep_epochs, threads=threads, log=log))
        etas = [s["chosen_eta"] for s in sweep]

    runs = []
    for mode, eta in zip(modes, etas):
        net = Network(sizes, seed=seed, dtype=dtype)
        start_weights = _fingerprint(net)
        run = train_curve(net, (X, y), (eval_X, eval_y), mode, eta, max_seconds=max_seconds,
                          max_epochs=max_epochs, evaluations_per_epoch=evaluations_per_epoch,
                          threads=threads)
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
        if log:
            log(f"  {mode_label(mode, n)}, eta {eta:g}: best {best['accuracy']:.2%} in "
                f"{curve[-1]['epochs']:.2f} epochs, {curve[-1]['seconds']:.1f} s "
                f"({run['stopped']})")
    return {"sizes": sizes, "seed": seed, "dtype": np.dtype(dtype).name, "train_size": n,
            "eval_name": eval_name, "eval_size": len(eval_y),
            "validation_size": None if sweep is None else len(val_y),
            "max_seconds": max_seconds, "max_epochs": max_epochs, "targets": targets,
            "evaluations_per_epoch": evaluations_per_epoch,
            "eta_grid": None if sweep is None else sorted(float(e) for e in eta_grid),
            "sweep_seconds": None if sweep is None else sweep_seconds,
            "sweep_epochs": None if sweep is None else sweep_epochs,
            "clock": "training seconds only: shuffling and the training kernel; evaluation "
                     "and JIT compilation excluded",
            "sweep": sweep, "runs": runs}


# -- reporting ----------------------------------------------------------------------------

def _fmt_reached(entry):
    if entry["seconds"] is None:
        return "not reached", "not reached"
    return f"{entry['seconds']:.2f}", f"{entry['epochs']:.2f}"


def _table_rows(result):
    header = ["mode", "eta"]
    for t in result["targets"]:
        pct = f"{t:.0%}" if round(t * 100, 6) == round(t * 100) else f"{t:.1%}"
        header += [f"s to {pct}", f"epochs to {pct}"]
    header += ["best accuracy", "trained"]
    rows = []
    for run in result["runs"]:
        row = [run["label"], f"{run['eta']:g}"]
        for entry in run["reached"]:
            row += list(_fmt_reached(entry))
        row.append(f"{run['best_accuracy']:.2%}")
        row.append(f"{run['total_seconds']:.1f} s, {run['total_epochs']:.2f} ep "
                   f"({run['stopped']})")
        rows.append(row)
    return header, rows


def _sweep_rows(result):
    grid = result["eta_grid"]
    header = ["mode"] + [f"eta {eta:g}" for eta in grid] + ["chosen"]
    rows = []
    n = result["train_size"]
    for s in result["sweep"]:
        by_eta = {t["eta"]: t for t in s["trials"]}
        row = [mode_label(s["mini_batch_size"], n)]
        for eta in grid:
            t = by_eta[eta]
            row.append(f"{t['accuracy']:.2%}" + (" (div)" if t["diverged"] else ""))
        row.append(f"{s['chosen_eta']:g}")
        rows.append(row)
    return header, rows


def _text_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _markdown_table(header, rows):
    return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(r) + " |" for r in rows])


def _budget_text(result):
    parts = []
    if result["max_seconds"] is not None:
        parts.append(f"{result['max_seconds']:g} s of training")
    if result["max_epochs"] is not None:
        parts.append(f"{result['max_epochs']} epochs")
    return " or ".join(parts)


def format_report(result, markdown=False):
    """The sweep (if any) and the time-to-accuracy table, as lines of text (or Markdown)."""
    table = _markdown_table if markdown else _text_table
    lines = []
    if result["sweep"] is not None:
        limit = f"{result['sweep_seconds']:g} s" if result["sweep_seconds"] is not None else ""
        if result["sweep_epochs"] is not None:
            limit += (" or " if limit else "") + f"{result['sweep_epochs']} epochs"
        lines.append(f"eta sweep: accuracy on the {result['validation_size']} validation "
                     f"inputs after {limit} of training per eta (same initial weights); "
                     "the best is chosen")
        lines += table(*_sweep_rows(result))
        lines.append("")
    lines.append(f"Time to accuracy on the {result['eval_size']} {result['eval_name']} inputs: "
                 f"{result['train_size']} training inputs, network {result['sizes']}, "
                 f"seed {result['seed']}, budget {_budget_text(result)} per mode, "
                 f"evaluated {result['evaluations_per_epoch']} times per epoch; seconds are "
                 "training time only (evaluation excluded)")
    lines += table(*_table_rows(result))
    return lines


def plot_time_to_accuracy(result, path_png, *, overwrite=False, title=None):
    """Two panels: accuracy vs epochs and accuracy vs training seconds, one line per
    mode (labelled with its eta), dashed lines at the targets.  Both x axes are
    logarithmic: online learning reaches 90% within a fraction of an epoch while
    full-batch gradient descent takes hundreds of steps.  Refuses to overwrite
    ``path_png`` unless ``overwrite=True``."""
    path_png = os.fspath(path_png)
    if os.path.exists(path_png) and not overwrite:
        raise FileExistsError(f"{path_png} exists; pass overwrite=True to replace it")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(PLOT_NEEDS) from None

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lowest = 1.0
    for i, run in enumerate(result["runs"]):
        pts = [p for p in run["curve"] if p["examples"] > 0]
        if not pts:
            continue
        acc = [p["accuracy"] for p in pts]
        lowest = min(lowest, min(acc))
        label = f"{run['label']}, eta {run['eta']:g}"
        style = dict(color=colors[i % len(colors)], lw=1.6, marker="." if len(pts) < 40 else None,
                     ms=4, label=label)
        axes[0].plot([p["epochs"] for p in pts], acc, **style)
        axes[1].plot([p["seconds"] for p in pts], acc, **style)
        for entry in run["reached"]:
            if entry["seconds"] is not None:
                axes[0].plot(entry["epochs"], entry["target"], "o", mfc="none", ms=7,
                             color=style["color"])
                axes[1].plot(entry["seconds"], entry["target"], "o", mfc="none", ms=7,
                             color=style["color"])
    bottom = max(0.0, min(0.8, math.floor(lowest * 10) / 10))
    for ax, xlabel in zip(axes, ["epochs (passes over the training data), log scale",
                                 "training seconds (evaluation excluded), log scale"]):
        for t in result["targets"]:
            ax.axhline(t, color="0.4", ls="--", lw=0.9)
            ax.annotate(f"{t:.0%}", xy=(0, t), xycoords=("axes fraction", "data"),
                        xytext=(3, 2), textcoords="offset points", fontsize=9, color="0.3")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylim(bottom, 1.0)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel(f"accuracy on the {result['eval_size']} {result['eval_name']} inputs")
    axes[0].set_title("accuracy against epochs")
    axes[1].set_title("accuracy against training time")
    axes[1].legend(loc="lower right", fontsize=9)
    fig.suptitle(title or (f"Online, mini-batch and full-batch gradient descent: network "
                           f"{result['sizes']}, {result['train_size']} training inputs, "
                           f"seed {result['seed']} (circles: targets first reached)"),
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path_png, dpi=110)
    plt.close(fig)
    return path_png


# -- command line hooks (wired into fastgd.cli) --------------------------------------------

def _parse_modes(text):
    import argparse
    modes = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("full", "full-batch", "none"):
            modes.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected mini-batch sizes or 'full', comma separated, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"mini-batch sizes must be >= 1, got {value}")
        modes.append(value)
    return modes


def _parse_floats(text):
    import argparse
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers, comma separated, got {text!r}") \
            from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"learning rates must be finite numbers > 0, "
                                         f"got {text!r}")
    return values


def add_parser(commands):
    """Add the ``compare`` subcommand to an argparse subparsers object; returns its parser."""
    compare = commands.add_parser(
        "compare", help="time to 90%% and 95%% accuracy: online, mini-batch and full batch",
        description="Train the same network from the same initial weights with each "
                    "mini-batch size (1 = online learning, full = full-batch gradient "
                    "descent), each with its best eta from a short sweep scored on the "
                    "validation data, and report the training seconds and epochs each takes "
                    "to reach 90%% and 95%% accuracy on the test data (evaluation time "
                    "excluded), or 'not reached' within the budget.")
    compare.add_argument("--modes", type=_parse_modes, default=list(DEFAULT_MODES),
                         metavar="M,M,...",
                         help="mini-batch sizes to compare, 'full' for the full batch "
                              "(default 1,10,100,1000,full)")
    compare.add_argument("--etas", type=_parse_floats, metavar="ETA,ETA,...",
                         help="one learning rate per mode, in the order of --modes; skips "
                              "the sweep")
    compare.add_argument("--eta-grid", type=_parse_floats, default=list(DEFAULT_ETA_GRID),
                         metavar="ETA,ETA,...",
                         help="learning rates the sweep tries for each mode "
                              "(default 0.3,1,3,10,30,100)")
    compare.add_argument("--sweep-seconds", type=positive_float, default=3.0,
                         help="training seconds per (mode, eta) in the sweep (default 3)")
    compare.add_argument("--max-seconds", type=positive_float, default=30.0,
                         help="training seconds per mode, evaluation excluded (default 30)")
    compare.add_argument("--max-epochs", type=int_at_least(1), default=1000,
                         help="epochs per mode at most (default 1000)")
    compare.add_argument("--evaluations-per-epoch", type=int_at_least(1), default=10,
                         metavar="K", help="evaluate on the test data after about every "
                                           "1/K of an epoch (default 10)")
    compare.add_argument("--seed", type=int_at_least(0), default=0,
                         help="seeds the initial weights, the same for every mode (default 0)")
    compare.add_argument("--train-size", type=int_at_least(1), metavar="N",
                         help="train on the first N training inputs only (default: all 50,000)")
    compare.add_argument("--threads", type=int_at_least(1),
                         help="numba threads (default: numba's)")
    compare.add_argument("--data", metavar="DIR",
                         help="a directory of MNIST-style IDX files (default: the bundled MNIST)")
    compare.add_argument("--out", metavar="PNG", help="write the two-panel plot here")
    compare.add_argument("--markdown", metavar="FILE",
                         help="write the sweep and the table as Markdown here")
    compare.add_argument("--overwrite", action="store_true",
                         help="replace --out and --markdown files that exist")
    compare.add_argument("--json", action="store_true",
                         help="print the whole result (curves included) as JSON")
    compare.set_defaults(func=compare_command)
    return compare


def compare_command(args):
    """Run ``fastgd compare``; returns the exit status."""
    import json

    from .data import load_mnist
    check_output(args.out, "--out", args.overwrite)
    check_output(args.markdown, "--markdown", args.overwrite)
    if args.out is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError(PLOT_NEEDS) from None
    if args.etas is not None and len(args.etas) != len(args.modes):
        raise ValueError(f"--etas must give one learning rate per mode: {len(args.modes)} "
                         f"modes, {len(args.etas)} etas")
    training, validation, test = load_mnist(args.data)
    if args.train_size is not None:
        if args.train_size > len(training[1]):
            raise ValueError(f"--train-size {args.train_size} is more than the "
                             f"{len(training[1])} training inputs")
        training = (training[0][:args.train_size], training[1][:args.train_size])
    n = len(training[1])
    for m in args.modes:
        if m is not None and m > n:
            raise ValueError(f"--modes: mini-batch size {m} is more than the {n} training "
                             "inputs")
    log_to = sys.stderr if args.json else sys.stdout
    log = (lambda line: print(line, file=log_to, flush=True))
    if args.etas is None:
        log(f"sweeping eta over {','.join(f'{e:g}' for e in args.eta_grid)} for each mode, "
            f"{args.sweep_seconds:g} s each, scored on the validation data")
    result = time_to_accuracy(training, test, args.modes, args.etas, validation_data=validation,
                              seed=args.seed, max_seconds=args.max_seconds,
                              max_epochs=args.max_epochs,
                              evaluations_per_epoch=args.evaluations_per_epoch,
                              eta_grid=args.eta_grid, sweep_seconds=args.sweep_seconds,
                              threads=args.threads, eval_name="test", log=log)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print()
        print("\n".join(format_report(result)))
    if args.markdown:
        with open(args.markdown, "w" if args.overwrite else "x") as f:
            f.write("\n".join(format_report(result, markdown=True)) + "\n")
        print(f"table written to {args.markdown}", file=log_to)
    if args.out:
        plot_time_to_accuracy(result, args.out, overwrite=args.overwrite)
        print(f"plot written to {args.out}", file=log_to)
    return 0
