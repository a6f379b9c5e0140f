"""Why training has failed, from its History (``diagnose``): diverged,
saturated, stalled or diverging, each judged over several epochs."""

import math

import numpy as np

# Failure verdicts (see diagnose): epochs the cost must stay more than
# DIVERGENCE_TOLERANCE above its best to count as diverging; epochs the
# output neurons must stay pinned to count as saturated; epochs after the
# first in which the cost must fall STALL_TOLERANCE below the first's.
DIVERGENCE_PATIENCE = 3
DIVERGENCE_TOLERANCE = 0.1
SATURATED_EPOCHS = 2
STALL_EPOCHS = 3
STALL_TOLERANCE = 0.01
# Training inputs on which saturation is measured after each epoch.
SATURATION_SAMPLE = 1000


def diagnose(history, eta, n_outputs):
    """Why training has failed, from its History, or None if it looks healthy.

    * diverged: the cost is NaN or infinite;
    * saturated: for SATURATED_EPOCHS epochs in a row, at least half the output
      neurons are pinned at 0 or 1 for (almost) every input (``pinned_outputs``,
      measured on the first SATURATION_SAMPLE training inputs): with
      sigma'(z) ~ 0 they no longer learn, the mark of an eta too large (with the
      cross-entropy cost the output error a - y has no sigma'(z), but outputs
      pinned whatever the input are still the mark of steps far too large; a
      healthy run's outputs, near 0 for the nine digits in ten not theirs and
      near 1 for the tenth, are not pinned);
    * stalled: STALL_EPOCHS epochs after the first, the cost has not fallen
      STALL_TOLERANCE below the first epoch's;
    * diverging: the cost of each of the last DIVERGENCE_PATIENCE epochs is more
      than DIVERGENCE_TOLERANCE above the best before them.

    Each test looks at several epochs and has a tolerance, so the wiggle of a
    healthy run's cost (a few per cent) is never taken for failure.
    """
    key = "training_cost" if "training_cost" in history[-1] else "cost"
    costs = history.column(key)
    last = history[-1]
    if not math.isfinite(costs[-1]):
        return (f"training diverged in epoch {last['epoch']}: the cost is {costs[-1]} (the "
                f"weights are no longer finite); eta = {eta:g} is too large, try a smaller eta")
    accuracy = (f", accuracy {last['accuracy']:.1%} (chance is {1 / n_outputs:.0%})"
                if "accuracy" in last else "")
    pinned = history.column("pinned_outputs")[-SATURATED_EPOCHS:]
    if len(pinned) == SATURATED_EPOCHS and np.all(pinned >= n_outputs / 2):
        why = ("their sigma'(z) is about 0, so they no longer learn"
               if history.info.get("cost", "quadratic") == "quadratic" else
               "with the cross-entropy cost, a sign that the steps are far too large")
        return (f"training has saturated: in epochs {history[-SATURATED_EPOCHS]['epoch']}-"
                f"{last['epoch']}, {int(pinned[-1])} of the {n_outputs} output neurons are "
                f"pinned at 0 or 1 whatever the input (cost C = {costs[-1]:.4g}{accuracy}); "
                f"{why}.  eta = {eta:g} is "
                "probably too large: try a smaller eta (10 times smaller, say)")
    if len(costs) > STALL_EPOCHS and costs[1:].min() > (1 - STALL_TOLERANCE) * costs[0]:
        return (f"training has stalled: after {len(costs)} epochs the cost is "
                f"{costs[-1]:.4g}, never {STALL_TOLERANCE:.0%} below the first epoch's "
                f"{costs[0]:.4g}{accuracy}.  eta = {eta:g} may be too large (saturated "
                "neurons) or too small: try eta 10 times smaller, then larger")
    window = costs[-DIVERGENCE_PATIENCE:]
    if len(costs) > DIVERGENCE_PATIENCE:
        best = costs[:-DIVERGENCE_PATIENCE].min()
        if np.all(window > (1 + DIVERGENCE_TOLERANCE) * best):
            return (f"training is diverging: the cost of each of the last "
                    f"{DIVERGENCE_PATIENCE} epochs is more than {DIVERGENCE_TOLERANCE:.0%} "
                    f"above the best so far ({best:.4g}, now {costs[-1]:.4g}); eta = {eta:g} "
                    "is probably too large, try a smaller eta")
    return None
