"""The pictures of the experiments: time to accuracy (``fastgd.compare``), gradient noise
(``fastgd.noise``) and sweeps over the learning rate (``fastgd.sweeps``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import math

import numpy as np

from ..noise import NoiseResult
from .figure import figure_class

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..sweeps import SweepTable


# -- time to accuracy ----------------------------------------------------------------------

def time_to_accuracy(result: dict[str, Any], title: str | None = None) -> Figure:
    """Two panels for a ``fastgd.time_to_accuracy`` result: accuracy against epochs and
    against training seconds, one line per mode (labelled with its eta), dashed lines
    at the targets, circles where each target was first reached.  Both x axes are
    logarithmic: online learning reaches 90% within a fraction of an epoch while
    full-batch gradient descent takes hundreds of steps."""
    FigureClass = figure_class()
    fig = FigureClass(figsize=(13, 6), layout="constrained")
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

def noise(results: NoiseResult | Sequence[NoiseResult], title: str | None = None) -> Figure:
    """Relative error (left) and cosine (right) of mini-batch gradients against m, one
    colour per ``NoiseResult`` (from ``fastgd.gradient_noise``).

    Log-log axes for the error: the measured mean over the mini-batches (dots, with
    bars from the 16th to the 84th percentile), the RMS (open squares) and the law
    sqrt(B_simple/m * (n-m)/(n-1)) (dashed line).  ``results`` is one result or
    several (e.g. at initialisation and after training).
    """
    if isinstance(results, NoiseResult):
        results = [results]
    results = list(results)
    if not results or not all(isinstance(r, NoiseResult) for r in results):
        raise TypeError("results must be a NoiseResult or a list of them")
    FigureClass = figure_class()

    fig = FigureClass(figsize=(11, 6.2), layout="constrained")
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

def sweep(table: SweepTable, title: str | None = None) -> Figure:
    """Accuracy against eta for a ``fastgd.sweep`` result (a ``SweepTable`` or its rows),
    log x axis: one line per network (and per value of any other parameter the sweep
    varies besides eta and the seed), through the median over the seeds, with each
    seed's result as a dot and its spread as a band.  The accuracy is each run's best
    on the evaluation data; a cross marks a run whose training failed (diverged,
    saturated, stalled).  Points that raised an error have no accuracy to draw."""
    rows = list(getattr(table, "rows", table))
    if not all(isinstance(r, dict) and "eta" in r and "best_accuracy" in r for r in rows):
        raise TypeError("table must be a SweepTable (from fastgd.sweep) or its rows")
    FigureClass = figure_class()
    done = [r for r in rows if r["best_accuracy"] is not None]
    # Lines differ in everything that varies except eta (the x axis) and the seed
    # (the spread).
    keys = [k for k in ("sizes", "mini_batch_size", "epochs", "dtype")
            if len({str(r[k]) for r in rows}) > 1] or ["sizes"]
    names = {"sizes": "", "mini_batch_size": "m ", "epochs": "epochs ", "dtype": ""}
    lines: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in done:
        lines.setdefault(tuple(str(r[k]) for k in keys), []).append(r)

    fig = FigureClass(figsize=(8.5, 5.4), layout="constrained")
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


