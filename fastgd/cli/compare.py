"""``fastgd compare``: time to 90% and 95% accuracy of online, mini-batch and full-batch
gradient descent (``fastgd.compare.time_to_accuracy``), as a table, Markdown and a plot.

    fastgd compare                                   # about 7 minutes on 2 cores
    fastgd compare --max-total-seconds 120 --out tta.png
"""

import json
import sys
import time

from fastgd import compare, plots
from fastgd.compare import DEFAULT_ETA_GRID, DEFAULT_MODES, mode_label
from fastgd.cli._arguments import (Progress, check_output, comma_list, int_at_least,
                                   mini_batch_size_or_full, positive_float,
                                   require_matplotlib)


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
    text = " or ".join(parts) + " per mode"
    if result.get("max_total_seconds") is not None:
        text += (f", all within {result['max_total_seconds']:g} s of wall-clock time "
                 f"(took {result['wall_seconds']:.1f} s)")
    return text


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
                 f"seed {result['seed']}, budget {_budget_text(result)}, "
                 f"evaluated {result['evaluations_per_epoch']} times per epoch; seconds are "
                 "training time only (evaluation excluded)")
    lines += table(*_table_rows(result))
    return lines


# -- the subcommand ------------------------------------------------------------------------

def add_parsers(commands):
    """Add ``compare`` to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser(
        "compare", help="time to 90%% and 95%% accuracy: online, mini-batch and full batch",
        description="Train the same network from the same initial weights with each "
                    "mini-batch size (1 = online learning, full = full-batch gradient "
                    "descent), each with its best eta from a short sweep scored on the "
                    "validation data, and report the training seconds and epochs each takes "
                    "to reach 90% and 95% accuracy on the test data (evaluation time "
                    "excluded), or 'not reached' within the budget. --max-seconds and "
                    "--sweep-seconds count training time only: with the defaults the "
                    "command takes about 7 minutes on 2 cores (5 modes x (6 sweep trials of "
                    "3 s + 30 s), plus evaluations and JIT compilation); "
                    "--max-total-seconds bounds the whole command. Progress goes to stderr.")
    parser.add_argument("--modes", type=comma_list(mini_batch_size_or_full, "1,10,full"),
                        default=list(DEFAULT_MODES), metavar="M,M,...",
                        help="mini-batch sizes to compare, 'full' for the full batch "
                             "(default 1,10,100,1000,full)")
    parser.add_argument("--etas", type=comma_list(positive_float, "3,10"),
                        metavar="ETA,ETA,...",
                        help="one learning rate per mode, in the order of --modes; skips "
                             "the sweep")
    parser.add_argument("--eta-grid", type=comma_list(positive_float, "1,3,10"),
                        default=list(DEFAULT_ETA_GRID), metavar="ETA,ETA,...",
                        help="learning rates the sweep tries for each mode "
                             "(default 0.3,1,3,10,30,100)")
    parser.add_argument("--sweep-seconds", type=positive_float, default=3.0,
                        help="training seconds per (mode, eta) in the sweep, evaluation "
                             "excluded (default 3)")
    parser.add_argument("--max-seconds", type=positive_float, default=30.0,
                        help="training seconds per mode: shuffling and the training kernel "
                             "only; the sweep, the evaluations and JIT compilation come on "
                             "top (default 30)")
    parser.add_argument("--max-total-seconds", type=positive_float, metavar="SECONDS",
                        help="wall-clock seconds for the whole command, data loading, sweep, "
                             "evaluations and compilation included: each sweep trial and "
                             "each mode gets a share of the time left, in proportion to "
                             "--sweep-seconds and --max-seconds, and stops when it is used "
                             "(default: no bound)")
    parser.add_argument("--max-epochs", type=int_at_least(1), default=1000,
                        help="epochs per mode at most (default 1000)")
    parser.add_argument("--evaluations-per-epoch", type=int_at_least(1), default=10,
                        metavar="K", help="evaluate on the test data after about every "
                                          "1/K of an epoch (default 10)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seeds the initial weights, the same for every mode (default 0)")
    parser.add_argument("--train-size", type=int_at_least(1), metavar="N",
                        help="train on the first N training inputs only (default: all 50,000)")
    parser.add_argument("--threads", type=int_at_least(1),
                        help="numba threads (default: numba's)")
    parser.add_argument("--data", metavar="DIR",
                        help="a directory of MNIST-style IDX files (default: the bundled MNIST)")
    parser.add_argument("--out", metavar="PNG", help="write the two-panel plot here")
    parser.add_argument("--markdown", metavar="FILE",
                        help="write the sweep and the table as Markdown here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out and --markdown files that exist")
    parser.add_argument("--json", action="store_true",
                        help="print the whole result (curves included) as JSON")
    parser.set_defaults(func=compare_command)
    return parser


def progress_lines(n, every=2.0):
    """The progress callback of ``time_to_accuracy`` as lines on stderr: the end of each
    sweep trial and each mode, and a line every ``every`` seconds in between."""
    say = Progress(every)

    def progress(event):
        label = mode_label(event["mode"], n)
        if event["stage"] == "sweep":
            if event["done"]:
                say(f"sweep {label}, eta {event['eta']:g}: {event['accuracy']:.2%} on "
                    f"validation after {event['epochs']:.2f} epochs ({event['seconds']:.1f} s "
                    f"training, {event['wall_seconds']:.1f} s in all)", force=True)
            return
        accuracy = "" if event["accuracy"] is None else f", {event['accuracy']:.2%}"
        line = (f"mode {label}, eta {event['eta']:g}: epoch {event['epochs']:.2f}, "
                f"{event['seconds']:.1f} s training ({event['wall_seconds']:.1f} s in all)"
                f"{accuracy}")
        if event["done"]:
            say(f"{line}; stopped: {event['stopped']}", force=True)
        else:
            say(line)
    return progress


def compare_command(args):
    """Run ``fastgd compare``; returns the exit status."""
    from fastgd.data import load_mnist
    began = time.perf_counter()
    check_output(args.out, "--out", args.overwrite)
    check_output(args.markdown, "--markdown", args.overwrite)
    if args.out is not None:
        require_matplotlib()
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
    info = sys.stderr
    if args.etas is None:
        print(f"sweeping eta over {','.join(f'{e:g}' for e in args.eta_grid)} for each mode, "
              f"{args.sweep_seconds:g} s of training each, scored on the validation data",
              file=info, flush=True)
    from fastgd.precompile import compile_kernels
    from fastgd.training import measuring_mode
    if measuring_mode() == "now":  # the kernels it will time (not the generic ones only)
        compile_kernels([784, 30, 10], verbose=True)  # compare trains the book's network
    total = None
    if args.max_total_seconds is not None:
        total = max(args.max_total_seconds - (time.perf_counter() - began), 1e-3)
    result = compare.time_to_accuracy(
        training, test, args.modes, args.etas, validation_data=validation, seed=args.seed,
        max_seconds=args.max_seconds, max_epochs=args.max_epochs,
        evaluations_per_epoch=args.evaluations_per_epoch, eta_grid=args.eta_grid,
        sweep_seconds=args.sweep_seconds, threads=args.threads, eval_name="test",
        max_total_seconds=total, progress=progress_lines(n))
    if args.max_total_seconds is not None:
        result["max_total_seconds"] = args.max_total_seconds
        result["wall_seconds"] = time.perf_counter() - began
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("\n".join(format_report(result)))
    if args.markdown:
        with open(args.markdown, "w" if args.overwrite else "x") as f:
            f.write("\n".join(format_report(result, markdown=True)) + "\n")
        print(f"table written to {args.markdown}", file=info)
    if args.out:
        plots.save(plots.time_to_accuracy(result), args.out, overwrite=args.overwrite)
        print(f"plot written to {args.out}", file=info)
    return 0
