"""Learning curves of one training run, and the book's overfitting picture of several."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .figure import figure_class

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..training import History


def learning_curves(history: History, title: str | None = None) -> Figure:
    """Accuracy (left) and cost (right) per epoch of a training ``History``.

    Left: the accuracy on the evaluation data after each epoch, when the run was
    evaluated.  Right: the running training cost ``cost`` (the mean of C_x over
    the epoch, measured while the weights move), and C on the whole training set
    (``training_cost``) and on the evaluation data (``test_cost``) after each
    epoch when they were measured.  The cost axis is logarithmic when the costs
    span more than a factor of 20.
    """
    records = list(history)
    if not records:
        raise ValueError("history must hold at least one epoch to draw")
    if not all(isinstance(r, dict) and "epoch" in r for r in records):
        raise TypeError("history must be a training History: one dict per epoch with "
                        "'epoch' (and 'cost', 'accuracy', ...)")
    FigureClass = figure_class()

    def column(key):
        return np.array([r.get(key, np.nan) if r.get(key) is not None else np.nan
                         for r in records], dtype=float)

    epochs = column("epoch")
    fig = FigureClass(figsize=(11, 4.6), layout="constrained")
    ax_acc, ax_cost = fig.subplots(1, 2)
    accuracy = column("accuracy")
    marker = "o" if len(records) <= 40 else None
    if np.isfinite(accuracy).any():
        ax_acc.plot(epochs, 100 * accuracy, marker=marker, ms=4, color="tab:blue",
                    label="evaluation accuracy")
        best = int(np.nanargmax(accuracy))
        ax_acc.plot(epochs[best], 100 * accuracy[best], "o", mfc="none", ms=10,
                    color="tab:blue", label=f"best: {accuracy[best]:.2%} (epoch "
                                            f"{int(epochs[best])})")
        total = records[best].get("total")
        ax_acc.set_ylabel("accuracy (%)" + (f" on the {total} evaluation inputs"
                                            if total else ""))
        ax_acc.legend(loc="lower right", fontsize=9)
    else:
        ax_acc.text(0.5, 0.5, "not evaluated during training\n(no test_data)",
                    ha="center", va="center", transform=ax_acc.transAxes, color="0.4")
        ax_acc.set_ylabel("accuracy (%)")
        ax_acc.set_ylim(0, 100)
        ax_acc.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_title("accuracy after each epoch")
    ax_acc.grid(True, alpha=0.3)

    drawn = []
    for key, label, colour in [("cost", "running training cost (mean C_x over the epoch)",
                                "tab:orange"),
                               ("training_cost", "C on the training set after the epoch",
                                "tab:green"),
                               ("test_cost", "C on the evaluation data after the epoch",
                                "tab:purple")]:
        values = column(key)
        if np.isfinite(values).any():
            ax_cost.plot(epochs, values, marker=marker, ms=4, color=colour, label=label)
            drawn.append(values[np.isfinite(values)])
    if drawn:
        values = np.concatenate(drawn)
        if values.min() > 0 and values.max() / values.min() > 20:
            ax_cost.set_yscale("log")
        ax_cost.legend(loc="upper right", fontsize=9)
    ax_cost.set_xlabel("epoch")
    info = getattr(history, "info", None) or {}
    ax_cost.set_ylabel(f"{info.get('cost', 'quadratic')} cost C")
    ax_cost.set_title("cost after each epoch")
    ax_cost.grid(True, alpha=0.3)
    for ax in (ax_acc, ax_cost):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title or f"Learning curves: {len(records)} epoch"
                          f"{'s' if len(records) != 1 else ''}")
    return fig


def overfitting(runs: Mapping[str, Iterable[dict[str, Any]]], title: str | None = None) -> Figure:
    """The book's overfitting picture: for each run (a label and its History, or
    its list of epoch records, measured with ``monitor_training_cost`` and
    ``test_data``), the cost on the training data (left; it goes on falling)
    and the accuracy on the test data (right; it stops rising) per epoch."""
    if not runs:
        raise ValueError("runs must hold at least one training run")
    FigureClass = figure_class()
    fig = FigureClass(figsize=(11, 4.6), layout="constrained")
    ax_cost, ax_acc = fig.subplots(1, 2)
    colours = ["tab:red", "tab:blue", "tab:green", "tab:purple"]
    for (label, records), colour in zip(runs.items(), colours * len(runs)):
        records = list(records)
        if not all(isinstance(r, dict) and "training_cost" in r and "accuracy" in r
                   for r in records):
            raise ValueError(f"run {label!r} must have 'training_cost' and 'accuracy' in "
                             "every epoch (SGD with monitor_training_cost and test_data)")
        epochs = np.array([r["epoch"] for r in records], float)
        ax_cost.plot(epochs, [r["training_cost"] for r in records], color=colour, label=label)
        accuracy = 100 * np.array([r["accuracy"] for r in records], float)
        ax_acc.plot(epochs, accuracy, color=colour, label=label)
        best = int(np.argmax(accuracy))
        ax_acc.plot(epochs[best], accuracy[best], "o", mfc="none", ms=9, color=colour)
    ax_cost.set_yscale("log")
    ax_cost.set_ylabel("cost C (the regularization term left out)")
    ax_cost.set_title("cost on the training data")
    ax_acc.set_ylabel("accuracy on the test data (%)")
    ax_acc.set_title("accuracy on the test data (o: best)")
    for ax in (ax_cost, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title or "Overfitting")
    return fig

