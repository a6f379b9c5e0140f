"""``fastgd valley``: the ball rolling down a small valley C(v), with its picture.

    fastgd valley                                  # the bowl, eta 0.1
    fastgd valley --function narrow --eta 0.042    # too large: Delta C > 0
    fastgd valley --function one-variable --start 3 --out one.png
    fastgd valley --epsilon 0.1                    # fixed step length ||Delta v|| = 0.1

Without matplotlib the command prints the numbers, then fails with exit status 2 and
says how to install it.
"""

import sys
import warnings

import numpy as np

from fastgd.cli._arguments import (check_output, comma_list, finite_float, int_at_least,
                                   positive_float)
from fastgd import plots
from fastgd.descent import CostIncreaseWarning, NonFiniteError, minimize
from fastgd.valley import EXAMPLES


def add_parsers(commands):
    """Add ``valley`` to an argparse subparsers object; returns its parser."""
    defaults = "; ".join(f"{key} {ex.formula}, eta {ex.eta:g}, {ex.steps} steps from "
                         f"{format_v(ex.start)}" for key, ex in EXAMPLES.items())
    valley = commands.add_parser(
        "valley", help="gradient descent down a small valley C(v), with its picture",
        description="Roll the ball down a valley: gradient descent v -> v - eta grad C on "
                    "a function with a known minimum. Prints a few steps (v, C, Delta C), "
                    "warns where Delta C > 0 (eta too large), and draws the path on the "
                    f"valley as a PNG (needs matplotlib). Functions: {defaults}.")
    valley.add_argument("--function", choices=list(EXAMPLES), default="bowl",
                        help="bowl: C = v1^2 + v2^2 (default bowl); narrow: the long valley "
                             "C = v1^2 + 25 v2^2, where eta > 0.04 overshoots and climbs; "
                             "one-variable: C = (v - 1)^2, the chapter's exercise")
    rate = valley.add_mutually_exclusive_group()
    rate.add_argument("--eta", type=positive_float,
                      help="the learning rate (default per function: "
                           + ", ".join(f"{ex.eta:g} for {key}" for key, ex in EXAMPLES.items())
                           + ")")
    rate.add_argument("--epsilon", type=positive_float,
                      help="instead of eta, a fixed step length: Delta v = -epsilon grad C "
                           "/ ||grad C||, so that ||Delta v|| = epsilon")
    valley.add_argument("--steps", type=int_at_least(0),
                        help="the number of steps (default per function: "
                             + ", ".join(f"{ex.steps} {key}" for key, ex in EXAMPLES.items())
                             + ")")
    valley.add_argument("--start", type=comma_list(finite_float, "0.8,-0.6"), metavar="V1,V2",
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
    check_output(args.out, "--out", args.overwrite, suffix=".png")
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
          f"{format_v(example.minimum)}); {rate_text}, {steps} steps from "
          f"v = {format_v(start)}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CostIncreaseWarning)
        try:
            result = minimize(example.C, example.grad_C, start, steps=steps,
                              on_increase="warn", **rate)
        except NonFiniteError as e:
            print("\n".join(path_table(e.result)))
            print(f"fastgd valley: error: {e}", file=sys.stderr)
            return 1
    print("\n".join(path_table(result)))
    print(f"Final: v = {format_v(result.v)}, C = {result.C:.6g} after "
          f"{result.steps_taken} steps" + (" (grad C = 0: stopped)"
                                           if result.reason == "stationary" else ""))
    for warning in caught:
        if issubclass(warning.category, CostIncreaseWarning):
            # The library's message points to Descent.increases, not a thing on the
            # command line.
            message = str(warning.message).replace("; they are listed in Descent.increases",
                                                   "")
            print(f"fastgd valley: warning: {message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)

    try:
        picture = plots.valley(result, example.C, name=example.formula,
                               minimum=example.minimum)
        plots.save(picture, args.out, overwrite=args.overwrite)
    except ImportError as e:
        print(f"fastgd valley: error: {e}", file=sys.stderr)
        return 2
    print(f"picture written to {args.out}")
    return 0


def format_v(v):
    """A point v as 0.5 or (0.8, -0.6)."""
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if v.size == 1:
        return f"{v[0]:.6g}"
    return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"


def path_table(result, head=6, tail=4):
    """A few rows of the path: k, v_k, C(v_k) and Delta C = C(v_k) - C(v_{k-1})."""
    rows = len(result.costs)
    shown = set(range(min(head, rows))) | set(range(max(rows - tail, 0), rows))
    if len(result.increases):
        shown.add(int(result.increases[0]) + 1)  # the first step where C went up
    up = set(int(k) + 1 for k in result.increases)
    width = max(len(format_v(v)) for v in result.path) if rows else 1
    lines = [f"{'k':>5}  {'v_k':<{width}}  {'C(v_k)':>12}  {'Delta C':>12}"]
    previous = None
    for k in sorted(shown):
        if previous is not None and k != previous + 1:
            lines.append(f"{'...':>5}")
        delta = "" if k == 0 else f"{result.costs[k] - result.costs[k - 1]:12.4g}"
        mark = "  <- Delta C > 0" if k in up else ""
        lines.append(f"{k:>5}  {format_v(result.path[k]):<{width}}  "
                     f"{result.costs[k]:12.6g}  {delta:>12}{mark}")
        previous = k
    return lines
