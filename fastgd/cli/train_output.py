"""What ``fastgd train`` prints when a run ends, and the files it writes."""

import json
import os
import sys
import tempfile
import time

import numpy as np

from fastgd import plots
from fastgd._files import atomic_write
from fastgd.cli._arguments import finite_or_none


def result_line(correct, total, name, cost, cost_function="quadratic"):
    percent = f"{correct / total:.2%}" if total else "n/a"
    return (f"{correct} / {total} {name} inputs classified correctly ({percent}); "
            f"{cost_function} cost C = {cost:.4g}")


def plural(count, word):
    return f"{count} {word}{'s' if count != 1 else ''}"


def summary(history, net, eval_data, args, interruption):
    """The lines that end a training run: how far it got, why it stopped, the best
    and final results, and what auto chose."""
    lines = []
    if history:
        best = max(history, key=lambda record: record["correct"])
        last = history[-1]
        seconds = sum(record["seconds"] for record in history)
        lines.append(f"Trained {plural(len(history), 'epoch')} in {seconds:.2f} s; "
                     f"best: epoch {best['epoch']}, "
                     f"{best['correct']} / {best['total']} ({best['accuracy']:.2%})")
        final = f"Final: epoch {last['epoch']}, " + result_line(
            last["correct"], last["total"], args.evaluate_on, last["test_cost"],
            net.cost_function)
        if "training_cost" in last:
            final += f"; on the training inputs C = {last['training_cost']:.4g}"
        lines.append(final)
    elif interruption is None:
        lines.append("No epochs run; untrained network: "
                     + result_line(net.evaluate(eval_data), len(eval_data), args.evaluate_on,
                               net.cost(eval_data), net.cost_function))
    planned = history.info.get("epochs_planned", len(history))
    if interruption is not None:
        where = (f" and {interruption.position} examples of epoch {interruption.epoch}"
                 if interruption.position else "")
        lines.append(f"Interrupted after {plural(interruption.epoch, 'epoch')} of "
                     f"{planned}{where} ({history.stopped})")
        if interruption.position and np.isfinite(net.params).all():
            lines.append(f"The network now, part-way through epoch {interruption.epoch}: "
                         + result_line(net.evaluate(eval_data), len(eval_data),
                                   args.evaluate_on, net.cost(eval_data), net.cost_function))
    elif history.stopped and history.stopped == history.diverged:
        lines.append(f"Stopped after {len(history)} of {planned} epochs: training failed")
    elif history.stopped:
        reason = history.stopped.replace("(early_stop)", "(--early-stop)").replace(
            "(eta_schedule,", "(--eta-schedule,")
        lines.append(f"Stopped after {len(history)} of {planned} epochs: {reason}")
    if history.best_saved:
        lines.append(f"best network (epoch {history.best_saved['epoch']}) kept in "
                     f"{history.best_saved['path']}")
    if history.checkpoint:
        c = history.checkpoint
        at = plural(c["epoch"], "epoch") + (f" and {c['position']} examples"
                                             if c["position"] else "")
        lines.append(f"checkpoint written to {c['path']} ({at} done; continue with "
                     f"--resume {c['path']})")
    if history.info.get("calibration") and not args.quiet:
        lines.append(calibration_line(history.info["calibration"]))
    return lines


def write_outputs(args, net, history, seed, n):
    """Write --save first, then --history and --plot; returns False if any write failed.  A
    network that could not be written where asked is written to a fallback file."""
    ok, saved = True, False
    signals = getattr(args, "signals", None)  # fastgd.cli.Signals: what is still unwritten

    def written(option, path):
        if signals is not None and f"{option} {path}" in signals.unwritten:
            signals.unwritten.remove(f"{option} {path}")
    if args.save:
        try:
            net.save(args.save, overwrite=args.overwrite or bool(args.resume))
            print(f"saved to {args.save}")
            written("--save", args.save)
            saved = True
        except (OSError, ValueError) as e:
            print(f"fastgd train: error: --save {args.save}: {e}", file=sys.stderr)
            ok = False
    if args.history:
        report = {"sizes": net.sizes, "seed": seed, "data": args.data,
                  "train_size": n, "evaluate_on": args.evaluate_on,
                  "reduction": args.reduction, "info": history.info,
                  "epochs_planned": history.info.get("epochs_planned"),
                  "diverged": history.diverged, "stopped": history.stopped,
                  "best_saved": history.best_saved, "checkpoint": history.checkpoint,
                  "epochs": [{history_key(key, args.evaluate_on): finite_or_none(value)
                              for key, value in record.items()} for record in history]}
        try:
            atomic_write(args.history, lambda f: json.dump(report, f, indent=1),
                         overwrite=args.overwrite, binary=False)
            print(f"history written to {args.history}")
            written("--history", args.history)
        except (OSError, ValueError) as e:
            print(f"fastgd train: error: --history {args.history}: {e}", file=sys.stderr)
            ok = False
    if args.plot and history:
        try:
            plots.save(plots.learning_curves(history), args.plot, overwrite=args.overwrite)
            print(f"learning curves drawn to {args.plot}")
            written("--plot", args.plot)
        except (OSError, ValueError, ImportError) as e:
            print(f"fastgd train: error: --plot {args.plot}: {e}", file=sys.stderr)
            ok = False
    if not ok and not saved:
        rescued = rescue(net)
        if rescued:
            print(f"the trained network was written to {rescued} instead", file=sys.stderr)
    return ok


def history_key(key, evaluate_on):
    """A History field's name in --history: the cost on the evaluation inputs is
    named after them (validation_cost with --evaluate-on validation)."""
    return f"{evaluate_on}_cost" if key == "test_cost" else key


def rescue(net):
    """Write the network to a new file in the current folder (or the temporary
    folder); returns its path, or None if the network cannot be written at all."""
    if not np.isfinite(net.params).all():
        print("fastgd train: the network's weights are not finite: there is nothing to "
              "keep", file=sys.stderr)
        return None
    name = f"fastgd-rescued-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.npz"
    for folder in (os.getcwd(), tempfile.gettempdir()):
        try:
            path = os.path.join(folder, name)
            net.save(path)
            return path
        except OSError:
            continue
    return None


def calibration_line(calibration):
    """What auto chose, by how much, and how often it looked again."""
    last = calibration[-1]
    timings = " vs ".join(f"{name} {seconds * 1e6:.2f}" for name, seconds in
                          sorted(last["s_per_example"].items(), key=lambda item: item[1]))
    again = f"; timed {len(calibration)} times in all" if len(calibration) > 1 else ""
    return f"kernel auto: {last['chose']} ({timings} us per example){again}"
