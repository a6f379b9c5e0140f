"""The chapter's picture: the ball rolling down the valley C(v), a ``Descent`` from
``fastgd.minimize`` drawn on the contours (two variables) or the curve (one) of C."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import math

import numpy as np

from .._validation import check_int
from .figure import figure_class

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..descent import Descent

INCREASE_COLOR = "tab:red"


def valley(result: Descent, C: Callable[..., Any], *, name: str | None = None,
           minimum: Sequence[float] | None = None, grid: int = 161) -> Figure:
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
    from ..descent import Descent  # here, not above: it loads numba, which no other picture needs

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
    where = None if minimum is None else np.array(minimum, dtype=np.float64, ndmin=1)
    if where is not None and where.shape != (result.n,):
        raise ValueError(f"minimum must have {result.n} coordinates like v, "
                         f"got shape {where.shape}")
    FigureClass = figure_class()

    fig = FigureClass(figsize=(12, 5.4), layout="constrained")
    left, costs = fig.subplots(1, 2, width_ratios=[1.35, 1])
    if result.n == 2:
        _draw_contours(left, result, C, where, grid)
    else:
        _draw_curve(left, result, C, where, grid)
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

