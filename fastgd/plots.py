"""The pictures: time to accuracy, gradient noise, sweeps, the valley, learning curves.

Each function draws on a new ``matplotlib.figure.Figure`` and returns it; no
pyplot, no backend is chosen or changed for whoever imports fastgd.  ``save``
writes a figure to a file, refusing to replace one unless asked::

    from fastgd import plots
    plots.save(plots.learning_curves(history), "curves.png")

matplotlib is optional (``pip install 'fastgd[plot]'``) and imported only when a
picture is drawn; without it each function raises ImportError with
``PLOT_HINT``.
"""

import math
import os

import numpy as np

from ._files import atomic_write

PLOT_HINT = "matplotlib is needed for plots: pip install 'fastgd[plot]'"
INCREASE_COLOR = "tab:red"


def figure_class():
    """matplotlib's Figure class, or ImportError saying how to install matplotlib."""
    try:
        import matplotlib  # noqa: F401  (a blocked matplotlib fails here even when
        from matplotlib.figure import Figure  # matplotlib.figure was imported before)
    except ImportError:
        raise ImportError(PLOT_HINT) from None
    return Figure


def check_path(path, overwrite=False, name="path", suffix=None):
    """A file name that may be written: not a directory, in a directory that exists,
    ending in ``suffix`` if given, and not an existing file unless ``overwrite``."""
    path = os.fspath(path)
    if suffix is not None and not str(path).lower().endswith(suffix):
        raise ValueError(f"{name} must be a file name ending in {suffix}, got {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name} {path} is a directory, expected a file name")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{name} {path} exists; pass overwrite=True to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{name} {path}: no such directory {parent}")
    return path


def save(fig, path, *, overwrite=False, dpi=110):
    """Write ``fig`` to ``path`` (the format from its suffix, e.g. .png); an existing
    file is refused unless ``overwrite=True``, and nothing is left behind when drawing
    fails.  Returns ``path``."""
    path = check_path(path, overwrite)
    fmt = os.path.splitext(path)[1][1:].lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), overwrite=overwrite)
    return path


# -- learning curves ---------------------------------------------------------------------

def learning_curves(history, title=None):
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
    Figure = figure_class()

    def column(key):
        return np.array([r.get(key, np.nan) if r.get(key) is not None else np.nan
                         for r in records], dtype=float)

    epochs = column("epoch")
    fig = Figure(figsize=(11, 4.6), layout="constrained")
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


def overfitting(runs, title=None):
    """The book's overfitting picture: for each run (a label and its History, or
    its list of epoch records, measured with ``monitor_training_cost`` and
    ``test_data``), the cost on the training data (left; it goes on falling)
    and the accuracy on the test data (right; it stops rising) per epoch."""
    if not runs:
        raise ValueError("runs must hold at least one training run")
    Figure = figure_class()
    fig = Figure(figsize=(11, 4.6), layout="constrained")
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


# -- time to accuracy ----------------------------------------------------------------------

def time_to_accuracy(result, title=None):
    """Two panels for a ``fastgd.time_to_accuracy`` result: accuracy against epochs and
    against training seconds, one line per mode (labelled with its eta), dashed lines
    at the targets, circles where each target was first reached.  Both x axes are
    logarithmic: online learning reaches 90% within a fraction of an epoch while
    full-batch gradient descent takes hundreds of steps."""
    Figure = figure_class()
    fig = Figure(figsize=(13, 6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    lowest = 1.0
    for i, run in enumerate(result["runs"]):
        pts = [p for p in run["curve"] if p["examples"] > 0]
        if not pts:
            continue
        acc = [p["accuracy"] for p in pts]
        lowest = min(lowest, min(acc))
        style = dict(color=f"C{i % 10}", lw=1.6,
                     marker="." if len(pts) < 40 else None, ms=4,
                     label=f"{run['label']}, eta {run['eta']:g}")
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
    # Below the panels: inside, it hid the full-batch curve, which is still low
    # at the right where a legend would go.
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        legend = dict(ncol=min(len(handles), 5), fontsize=9, frameon=False)
        try:
            fig.legend(handles, labels, loc="outside lower center", **legend)
        except ValueError:  # matplotlib < 3.7 has no "outside": under the right panel
            axes[1].legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                           **{**legend, "ncol": 2})
    fig.suptitle(title or (f"Online, mini-batch and full-batch gradient descent: network "
                           f"{result['sizes']}, {result['train_size']} training inputs, "
                           f"seed {result['seed']} (circles: targets first reached)"),
                 fontsize=11)
    return fig


# -- gradient noise ----------------------------------------------------------------------

def noise(results, title=None):
    """Relative error (left) and cosine (right) of mini-batch gradients against m, one
    colour per ``NoiseResult`` (from ``fastgd.gradient_noise``).

    Log-log axes for the error: the measured mean over the mini-batches (dots, with
    bars from the 16th to the 84th percentile), the RMS (open squares) and the law
    sqrt(B_simple/m * (n-m)/(n-1)) (dashed line).  ``results`` is one result or
    several (e.g. at initialisation and after training).
    """
    from .noise import NoiseResult
    if isinstance(results, NoiseResult):
        results = [results]
    results = list(results)
    if not results or not all(isinstance(r, NoiseResult) for r in results):
        raise TypeError("results must be a NoiseResult or a list of them")
    Figure = figure_class()

    fig = Figure(figsize=(11, 6.2), layout="constrained")
    ax_err, ax_cos = fig.subplots(1, 2)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for i, r in enumerate(results):
        colour = colours[i % len(colours)]
        name = r.label or f"result {i + 1}"
        m = np.array(r.batch_sizes, dtype=float)
        order = np.argsort(m)
        m = m[order]
        grid = np.unique(np.geomspace(m[0], m[-1], 200).tolist() + m.tolist())
        law = [r.predicted(g) for g in grid]
        ax_err.plot(grid, law, "--", color=colour, lw=1.2,
                    label=f"{name}: sqrt(B/m·fpc), B = {r.noise_scale:.3g}")
        # Bars from the 16th to the 84th percentile (mean ± std would go below 0 on a
        # log axis where the errors are heavy-tailed, as after training at m = 1).
        low, high = np.array([np.percentile(r.errors[j], [16, 84]) for j in order]).T
        mean = r.mean_error[order]
        ax_err.errorbar(m, mean, yerr=[np.maximum(mean - low, 0), np.maximum(high - mean, 0)],
                        fmt="o", color=colour, capsize=3, ms=5,
                        label=f"{name}: mean (bars 16th-84th percentile)")
        ax_err.plot(m, r.rms_error[order], "s", mfc="none", color=colour, ms=7,
                    label=f"{name}: rms")
        ax_cos.plot(grid, [1 / math.sqrt(1 + p * p) for p in law], "--", color=colour, lw=1.2,
                    label=f"{name}: 1/sqrt(1 + B/m·fpc)")
        ax_cos.plot(m, r.mean_cosine[order], "o-", color=colour, ms=5, lw=0.8,
                    label=f"{name}: mean cosine")
    ax_err.set_xscale("log")
    ax_err.set_yscale("log")
    ax_err.set_xlabel("mini-batch size m")
    ax_err.set_ylabel("relative error  ||g_m − ∇C|| / ||∇C||")
    ax_err.set_title("Mini-batch gradient error: the 1/√m law")
    ax_err.grid(True, which="both", alpha=0.3)
    ax_err.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax_cos.set_xscale("log")
    ax_cos.set_xlabel("mini-batch size m")
    ax_cos.set_ylabel("cosine between g_m and ∇C")
    ax_cos.set_ylim(0, 1.02)
    ax_cos.set_title("Direction of the mini-batch gradient")
    ax_cos.grid(True, which="both", alpha=0.3)
    ax_cos.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    r = results[0]
    fig.suptitle(title or f"Gradient noise on {r.n} examples, {r.n_batches} mini-batches "
                          f"per m (drawn without replacement; fpc = (n−m)/(n−1))")
    return fig


# -- sweeps ------------------------------------------------------------------------------

def sweep(table, title=None):
    """Accuracy against eta for a ``fastgd.sweep`` result (a ``SweepTable`` or its rows),
    log x axis: one line per network (and per value of any other parameter the sweep
    varies besides eta and the seed), through the median over the seeds, with each
    seed's result as a dot and its spread as a band.  The accuracy is each run's best
    on the evaluation data; a cross marks a run whose training failed (diverged,
    saturated, stalled).  Points that raised an error have no accuracy to draw."""
    rows = list(getattr(table, "rows", table))
    if not all(isinstance(r, dict) and "eta" in r and "best_accuracy" in r for r in rows):
        raise TypeError("table must be a SweepTable (from fastgd.sweep) or its rows")
    Figure = figure_class()
    done = [r for r in rows if r["best_accuracy"] is not None]
    # Lines differ in everything that varies except eta (the x axis) and the seed
    # (the spread).
    keys = [k for k in ("sizes", "mini_batch_size", "epochs", "dtype")
            if len({str(r[k]) for r in rows}) > 1] or ["sizes"]
    names = {"sizes": "", "mini_batch_size": "m ", "epochs": "epochs ", "dtype": ""}
    lines = {}
    for r in done:
        lines.setdefault(tuple(str(r[k]) for k in keys), []).append(r)

    fig = Figure(figsize=(8.5, 5.4), layout="constrained")
    ax = fig.add_subplot()
    for i, runs in enumerate(lines.values()):
        colour = f"C{i % 10}"
        label = ", ".join(
            names[k] + ("-".join(map(str, runs[0][k])) if k == "sizes" else str(runs[0][k]))
            for k in keys)
        etas = sorted({r["eta"] for r in runs})
        by_eta = [[100 * r["best_accuracy"] for r in runs if r["eta"] == eta] for eta in etas]
        ax.plot(etas, [np.median(a) for a in by_eta], "-", color=colour, lw=1.8, marker="o",
                ms=5, label=label)
        if any(len(a) > 1 for a in by_eta):
            ax.fill_between(etas, [min(a) for a in by_eta], [max(a) for a in by_eta],
                            color=colour, alpha=0.15, lw=0)
        for ok in (True, False):
            chosen = [r for r in runs if (r["diverged"] is None) == ok]
            ax.plot([r["eta"] for r in chosen], [100 * r["best_accuracy"] for r in chosen],
                    "." if ok else "x", color=colour, ms=6 if ok else 8, alpha=0.7,
                    mew=1.5, ls="none")
    if not done:
        ax.text(0.5, 0.5, "no point of the sweep finished", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    ax.set_xscale("log")
    etas = sorted({r["eta"] for r in done})
    if etas:  # the grid's own values, not powers of ten, mark the axis
        ax.set_xticks(etas, [f"{eta:g}" for eta in etas])
        ax.minorticks_off()
        ax.set_xlim(etas[0] / 1.5, etas[-1] * 1.5)
    ax.set_xlabel("learning rate eta (log scale)")
    total = next((r["total"] for r in done if r.get("total")), None)
    name = getattr(table, "info", {}).get("eval_name", "evaluation")
    ax.set_ylabel("best accuracy (%)" + (f" on the {total} {name} inputs" if total else ""))
    ax.grid(True, alpha=0.3)
    if lines:
        if any(r["diverged"] is not None for r in done):
            ax.plot([], [], "x", color="0.3", ms=8, mew=1.5,
                    label="run that failed (diverged, saturated, stalled)")
        ax.legend(fontsize=9, loc="best")
    seeds = sorted({r["seed"] for r in done}, key=str)
    errors = len(rows) - len(done)
    fig.suptitle(title or (
        "Accuracy against the learning rate: "
        + (f"median over seeds {', '.join(map(str, seeds))} (dots: each seed, band: their "
           "range)" if len(seeds) > 1 else f"seed {seeds[0]}" if seeds else "no results")
        + (f"; {errors} point{'s' if errors != 1 else ''} failed with an error"
           if errors else "")), fontsize=11)
    return fig


# -- the valley ----------------------------------------------------------------------------

def valley(result, C, *, name=None, minimum=None, grid=161):
    """The chapter's picture of a ``Descent`` (from ``fastgd.minimize``) on the valley of C.

    For two variables, the contours of C(v1, v2) with the ball's path v_0 -> v_1 -> ...
    as arrows, each step Delta v = -eta grad C at right angles to the contour it
    leaves; for one variable, the curve C(v) with each step as an arrow along it.
    Beside it, C(v_k) against the step k: falling at every step while
    Delta C ≈ grad C · Delta v holds, rising (in red) where the step is too large.

    C:        the function that was minimized (called on a grid of points to draw it)
    name:     how to name C in the title, such as "C(v) = v1^2 + v2^2" (default: the
              function's __name__)
    minimum:  where C is smallest, marked if given
    grid:     points per axis at which C is evaluated for the contours (or the curve)
    """
    from ._validation import check_int
    from .descent import Descent

    if not isinstance(result, Descent):
        raise TypeError(f"result must be a Descent from fastgd.descent.minimize, "
                        f"got {type(result).__name__}")
    if result.n not in (1, 2):
        raise ValueError(f"result must be the descent of a function of one or two variables "
                         f"to draw its valley, got {result.n} variables")
    if not callable(C):
        raise TypeError(f"C must be the function that was minimized, got {C!r}")
    grid = check_int(grid, "grid", minimum=3)
    if name is None:
        name = f"C = {getattr(C, '__name__', 'C')}"
    if minimum is not None:
        minimum = np.array(minimum, dtype=np.float64, ndmin=1)
        if minimum.shape != (result.n,):
            raise ValueError(f"minimum must have {result.n} coordinates like v, "
                             f"got shape {minimum.shape}")
    Figure = figure_class()

    fig = Figure(figsize=(12, 5.4), layout="constrained")
    left, costs = fig.subplots(1, 2, width_ratios=[1.35, 1])
    if result.n == 2:
        _draw_contours(left, result, C, minimum, grid)
    else:
        _draw_curve(left, result, C, minimum, grid)
    _draw_costs(costs, result)
    fig.suptitle(f"Gradient descent on {name}: {_rate(result)}, "
                 f"{result.steps_taken} step{'s' if result.steps_taken != 1 else ''}"
                 + _increase_note(result), fontsize=13)
    return fig


def _rate(result):
    """The learning rate in words: eta = 0.1, a schedule's range, or epsilon."""
    if result.epsilon is not None:
        return f"fixed step length epsilon = {result.epsilon:g}"
    if result.etas.size == 0 or np.all(result.etas == result.etas[0]):
        return f"eta = {result.etas[0]:g}" if result.etas.size else "no steps"
    return f"eta from {result.etas[0]:.3g} to {result.etas[-1]:.3g} (schedule)"


def _increase_note(result):
    count = len(result.increases)
    if not count:
        return ""
    steps = f"{count} step{'s' if count != 1 else ''}"
    if result.epsilon is not None:
        return (f"\nDelta C > 0 at {steps} (red): the step length epsilon is too large "
                "this close to the minimum")
    return f"\nDelta C > 0 at {steps} (red): eta is too large"


def _bounds(values, pad=0.15, least=0.5):
    """An interval around values, padded, at least `least` wide."""
    lo, hi = float(np.min(values)), float(np.max(values))
    span = max(hi - lo, least)
    middle = (lo + hi) / 2
    return middle - span * (0.5 + pad), middle + span * (0.5 + pad)


def _evaluate(C, points, scalar):
    """C at each point (NaN where it is not finite), as an array."""
    values = np.empty(len(points))
    with np.errstate(all="ignore"):
        for i, v in enumerate(points):
            value = float(C(float(v[0]) if scalar else v))
            values[i] = value if math.isfinite(value) else np.nan
    return values


def _levels(Z, count=14):
    """Contour levels closer together near the bottom: for a quadratic C they are
    evenly spaced ellipses."""
    finite = Z[np.isfinite(Z)]
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return None
    return low + np.linspace(0, math.sqrt(high - low), count + 1)[1:] ** 2


def _draw_contours(ax, result, C, minimum, grid):
    path = result.path
    points = path if minimum is None else np.vstack([path, minimum])
    (x0, x1), (y0, y1) = _bounds(points[:, 0]), _bounds(points[:, 1])
    X, Y = np.meshgrid(np.linspace(x0, x1, grid), np.linspace(y0, y1, grid))
    Z = _evaluate(C, np.column_stack([X.ravel(), Y.ravel()]), False).reshape(X.shape)
    levels = _levels(Z)
    if levels is not None:
        filled = ax.contourf(X, Y, Z, levels=np.concatenate([[np.nanmin(Z)], levels]),
                             cmap="Blues_r", alpha=0.85)
        ax.contour(X, Y, Z, levels=levels, colors="white", linewidths=0.6, alpha=0.8)
        ax.figure.colorbar(filled, ax=ax, label="C(v)", shrink=0.85)
    _draw_steps(ax, path[:, 0], path[:, 1], result)
    if minimum is not None:
        ax.plot(*minimum, marker="*", markersize=16, color="gold", markeredgecolor="black",
                linestyle="none", label="minimum", zorder=5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if max(x1 - x0, y1 - y0) < 4 * min(x1 - x0, y1 - y0):
        ax.set_aspect("equal")  # then each step is seen at right angles to its contour
    ax.set_xlabel("v1")
    ax.set_ylabel("v2")
    ax.set_title("the valley C(v1, v2) and the ball's path")
    _legend_below(ax)


def _draw_curve(ax, result, C, minimum, grid):
    v = result.path[:, 0]
    points = v if minimum is None else np.concatenate([v, minimum])
    x0, x1 = _bounds(points)
    xs = np.linspace(x0, x1, max(grid, 200))
    ax.plot(xs, _evaluate(C, xs[:, None], True), color="tab:blue", linewidth=2,
            label=getattr(C, "__name__", "C"))
    _draw_steps(ax, v, result.costs, result)
    # The steps themselves are moves along the v axis: show them there too.
    bottom = ax.get_ylim()[0]
    ax.plot(v, np.full_like(v, bottom), marker="|", markersize=14, color="black",
            linestyle="none", label="v_k on the v axis")
    if minimum is not None:
        ax.axvline(minimum[0], color="goldenrod", linestyle="--", label="minimum")
    ax.set_xlim(x0, x1)
    ax.set_xlabel("v")
    ax.set_ylabel("C(v)")
    ax.set_title("one variable: each step moves v by -eta C'(v),\n"
                 "downhill, a distance proportional to the slope")
    _legend_below(ax)


def _legend_below(ax):
    """Below the plot, where it hides no part of the path, and below the x label: the
    gap is in points (borderaxespad, in font sizes), not in axes fractions, which
    shrink with the axes when the aspect is equal."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), borderaxespad=3.9, ncol=4,
              fontsize=9, frameon=False)


def _draw_steps(ax, x, y, result):
    """The points v_k joined by arrows; a step with Delta C > 0 in red."""
    up = set(int(k) for k in result.increases)
    for k in range(len(x) - 1):
        color = INCREASE_COLOR if k in up else "black"
        ax.annotate("", xy=(x[k + 1], y[k + 1]), xytext=(x[k], y[k]),
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.3,
                                    shrinkA=2, shrinkB=2, mutation_scale=12))
    ax.plot(x, y, marker="o", markersize=4, color="black", linestyle="none",
            label="v_k, k = 0, 1, ...", zorder=4)
    ax.plot(x[:1], y[:1], marker="o", markersize=9, color="tab:orange",
            markeredgecolor="black", linestyle="none", label="start v_0", zorder=5)


def _draw_costs(ax, result):
    k = np.arange(len(result.costs))
    costs = result.costs
    ax.plot(k, costs, color="black", marker="o", markersize=3, linewidth=1)
    up = result.increases + 1
    if len(up):
        ax.plot(up, costs[up], color=INCREASE_COLOR, marker="o", markersize=6,
                linestyle="none", label="Delta C > 0")
        ax.legend(fontsize=9)
    if costs.size and costs.min() > 0 and costs.max() / costs.min() > 100:
        ax.set_yscale("log")
    ax.set_xlabel("step k")
    ax.set_ylabel("C(v_k)")
    ax.set_title("C along the path")
    ax.grid(True, alpha=0.3)

