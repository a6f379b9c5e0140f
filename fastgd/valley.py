"""The chapter's picture: the ball rolling down the valley C(v), and ``fastgd valley``.

``plot_valley`` draws a ``Descent`` (from ``fastgd.descent.minimize``): for two
variables, the contours of C(v1, v2) with the ball's path v_0 -> v_1 -> ... as
arrows, each step Delta v = -eta grad C at right angles to the contour it leaves;
for one variable, the curve C(v) with each step as an arrow along it.  Beside it,
C(v_k) against the step k: falling at every step while Delta C ≈ grad C · Delta v
holds, rising (in red) where eta is too large.  matplotlib is optional
(``pip install 'fastgd[plot]'``) and imported only here, when a picture is drawn.

The command line hook: ``add_parser(commands)`` adds ``fastgd valley`` to an argparse
subparsers object, with ``valley_command(args)`` as its handler:

    fastgd valley                                  # the bowl, eta 0.1
    fastgd valley --function narrow --eta 0.042    # too large: Delta C > 0
    fastgd valley --function one-variable --start 3 --out one.png
    fastgd valley --epsilon 0.1                    # fixed step length ||Delta v|| = 0.1

Without matplotlib the command prints the numbers, then fails with exit status 2 and
says how to install it.
"""

import argparse
import math
import os
import sys
import warnings

import numpy as np

from .cli._arguments import int_at_least, positive_float
from .descent import EXAMPLES, CostIncreaseWarning, NonFiniteError, minimize

NO_MATPLOTLIB = "matplotlib is needed for plots: pip install 'fastgd[plot]'"
INCREASE_COLOR = "tab:red"


# -- the picture ---------------------------------------------------------------------------

def plot_valley(result, C, path_png, *, name=None, minimum=None, overwrite=False,
                grid=161):
    """Draw the descent ``result`` on the valley of ``C`` and save it as a PNG.

    result:    a Descent of a function of one or two variables
    C:         the function it descended (called on a grid of points to draw it)
    path_png:  where to write the picture, a file name ending in .png; an existing file
               is refused unless overwrite=True
    name:      how to name C in the title, such as "C(v) = v1^2 + v2^2" (default: the
               function's __name__)
    minimum:   where C is smallest, marked with a star if given
    grid:      points per axis at which C is evaluated for the contours (or the curve)

    Returns path_png.  Raises ImportError when matplotlib is not installed.
    """
    from .descent import Descent

    if not isinstance(result, Descent):
        raise TypeError(f"result must be a Descent from fastgd.descent.minimize, "
                        f"got {type(result).__name__}")
    if result.n not in (1, 2):
        raise ValueError(f"result must be the descent of a function of one or two variables "
                         f"to draw its valley, got {result.n} variables")
    if not callable(C):
        raise TypeError(f"C must be the function that was minimized, got {C!r}")
    grid = _check_grid(grid)
    path_png = _check_png(path_png, overwrite, "path_png")
    if name is None:
        name = f"C = {getattr(C, '__name__', 'C')}"
    if minimum is not None:
        minimum = np.array(minimum, dtype=np.float64, ndmin=1)
        if minimum.shape != (result.n,):
            raise ValueError(f"minimum must have {result.n} coordinates like v, "
                             f"got shape {minimum.shape}")
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(NO_MATPLOTLIB) from e

    fig = Figure(figsize=(12, 5), layout="constrained")
    valley, costs = fig.subplots(1, 2, width_ratios=[1.35, 1])
    if result.n == 2:
        _draw_contours(valley, result, C, minimum, grid)
    else:
        _draw_curve(valley, result, C, minimum, grid)
    _draw_costs(costs, result)
    fig.suptitle(f"Gradient descent on {name}: {_rate(result)}, "
                 f"{result.steps_taken} step{'s' if result.steps_taken != 1 else ''}"
                 + _increase_note(result), fontsize=13)

    with open(path_png, "wb" if overwrite else "xb") as f:
        try:
            fig.savefig(f, format="png", dpi=110)
        except BaseException:
            f.close()
            os.remove(path_png)
            raise
    return path_png


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
    return f"\nDelta C > 0 at {count} step{'s' if count != 1 else ''} (red): eta is too large"


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
    """Below the plot, where it hides no part of the path."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, fontsize=9,
              frameon=False)


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


def _check_grid(grid):
    from ._validation import check_int
    return check_int(grid, "grid", minimum=3)


def _check_png(path, overwrite, what):
    """A .png file name that may be written: refuse an existing file unless overwrite."""
    path = os.fspath(path)
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"{what} must be a file name ending in .png, got {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a directory, expected a file name")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{what} {path} exists; pass overwrite=True (--overwrite) "
                              f"to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{what} {path}: no such directory {parent}")
    return path


# -- the command line ------------------------------------------------------------------------

def _start(text):
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.8,-0.6 (one for one-variable), "
            f"got {text!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"must be finite numbers, got {text!r}")
    return values


def add_parser(commands):
    """Add the ``valley`` subcommand to ``commands`` (from ``parser.add_subparsers()``)."""
    defaults = "; ".join(f"{key} {ex.formula}, eta {ex.eta:g}, {ex.steps} steps from "
                         f"{_format_v(ex.start)}" for key, ex in EXAMPLES.items())
    valley = commands.add_parser(
        "valley", help="gradient descent down a small valley C(v), with its picture",
        description="Roll the ball down a valley: gradient descent v -> v - eta grad C on "
                    "a function with a known minimum. Prints a few steps (v, C, Delta C), "
                    "warns where Delta C > 0 (eta too large), and draws the path on the "
                    f"valley as a PNG (needs matplotlib). Functions: {defaults}.")
    valley.add_argument("--function", choices=list(EXAMPLES), default="bowl",
                        help="bowl: C = v1^2 + v2^2 (default); narrow: the long valley "
                             "C = v1^2 + 25 v2^2, where eta > 0.04 overshoots and climbs; "
                             "one-variable: C = (v - 1)^2, the chapter's exercise")
    rate = valley.add_mutually_exclusive_group()
    rate.add_argument("--eta", type=positive_float,
                      help="the learning rate (default per function: 0.1 for bowl and "
                           "one-variable, 0.03 for narrow)")
    rate.add_argument("--epsilon", type=positive_float,
                      help="instead of eta, a fixed step length: Delta v = -epsilon grad C "
                           "/ ||grad C||, so that ||Delta v|| = epsilon")
    valley.add_argument("--steps", type=int_at_least(0),
                        help="the number of steps (default per function: 30 bowl, "
                             "50 narrow, 25 one-variable)")
    valley.add_argument("--start", type=_start, metavar="V1,V2",
                        help="the ball's starting point v_0: two numbers, or one for "
                             "one-variable (default per function, listed above)")
    valley.add_argument("--out", default="valley.png", metavar="PATH.png",
                        help="where to write the picture (default valley.png)")
    valley.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists")
    valley.set_defaults(func=valley_command)
    return valley


def valley_command(args):
    """Run ``fastgd valley``: returns the exit status (0; 1 when the descent diverges to
    infinity or NaN; 2 without matplotlib, after printing the numbers)."""
    example = EXAMPLES[args.function]
    _check_png(args.out, args.overwrite, "--out")
    one = args.function == "one-variable"
    if args.start is None:
        start = example.start
    else:
        if len(args.start) != (1 if one else 2):
            raise ValueError(f"--start needs {'one number v' if one else 'two numbers v1,v2'} "
                             f"for --function {args.function}, got "
                             f"{','.join(f'{x:g}' for x in args.start)}")
        start = args.start[0] if one else np.array(args.start)
    steps = example.steps if args.steps is None else args.steps
    if args.epsilon is not None:
        rate = {"epsilon": args.epsilon}
        rate_text = f"fixed step length epsilon {args.epsilon:g}"
    else:
        rate = {"eta": example.eta if args.eta is None else args.eta}
        rate_text = f"eta {rate['eta']:g}"
    print(f"Gradient descent on {example.formula} ({example.name}, smallest at "
          f"{_format_v(example.minimum)}); {rate_text}, {steps} steps from "
          f"v = {_format_v(start)}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CostIncreaseWarning)
        try:
            result = minimize(example.C, example.grad_C, start, steps=steps,
                              on_increase="warn", **rate)
        except NonFiniteError as e:
            print("\n".join(_table(e.result)))
            print(f"fastgd: error: {e}", file=sys.stderr)
            return 1
    print("\n".join(_table(result)))
    print(f"Final: v = {_format_v(result.v)}, C = {result.C:.6g} after "
          f"{result.steps_taken} steps" + (" (grad C = 0: stopped)"
                                           if result.reason == "stationary" else ""))
    for warning in caught:
        if issubclass(warning.category, CostIncreaseWarning):
            print(f"fastgd: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)

    try:
        plot_valley(result, example.C, args.out, name=example.formula,
                    minimum=example.minimum, overwrite=args.overwrite)
    except ImportError as e:
        print(f"fastgd: error: {e}", file=sys.stderr)
        return 2
    print(f"picture written to {args.out}")
    return 0


def _format_v(v):
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if v.size == 1:
        return f"{v[0]:.6g}"
    return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"


def _table(result, head=6, tail=4):
    """A few rows of the path: k, v_k, C(v_k) and Delta C = C(v_k) - C(v_{k-1})."""
    rows = len(result.costs)
    shown = set(range(min(head, rows))) | set(range(max(rows - tail, 0), rows))
    if len(result.increases):
        shown.add(int(result.increases[0]) + 1)  # the first step where C went up
    up = set(int(k) + 1 for k in result.increases)
    width = max(len(_format_v(v)) for v in result.path) if rows else 1
    lines = [f"{'k':>5}  {'v_k':<{width}}  {'C(v_k)':>12}  {'Delta C':>12}"]
    previous = None
    for k in sorted(shown):
        if previous is not None and k != previous + 1:
            lines.append(f"{'...':>5}")
        delta = "" if k == 0 else f"{result.costs[k] - result.costs[k - 1]:12.4g}"
        mark = "  <- Delta C > 0" if k in up else ""
        lines.append(f"{k:>5}  {_format_v(result.path[k]):<{width}}  "
                     f"{result.costs[k]:12.6g}  {delta:>12}{mark}")
        previous = k
    return lines
