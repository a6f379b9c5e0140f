"""``fastgd sweep``: a grid of training runs on Dask (``fastgd.sweep``), as a table,
CSV, JSON, Markdown and a plot of accuracy against eta.

    fastgd sweep --eta 0.1,0.5,1,3,10,30 --hidden 30,100 --seed 1,2,3 --epochs 10 --out sweep
    fastgd sweep --eta 1,3 --scheduler tcp://10.0.0.5:8786      # on an existing cluster

The points run side by side on a local Dask cluster, one worker process and one
numba thread per core, or on the cluster at --scheduler.
"""

import argparse
import os
import sys
import time

from fastgd.cli._arguments import (DTYPES, Progress, check_output, comma_list, int_at_least,
                                   layer_sizes, positive_float, require_matplotlib)
from fastgd.cli.train_arguments import EVALUATE_ON
from fastgd.sweeps import ON_DIVERGENCE

DEFAULT_ETAS = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
OUTPUTS = ("sweep.csv", "sweep.json", "sweep.md", "sweep.png")


def sizes_list(text):
    """An argparse type: networks separated by ';', each as layer_sizes
    (784,30,10;784,100,10)."""
    try:
        return [layer_sizes(part.strip()) for part in text.split(";")]
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e}, in {text!r}: expected networks separated by "
                                         "';', such as '784,30,10;784,100,10'") from None


def dtype_name(text):
    """An argparse type: one of DTYPES (float32 or float64)."""
    if text not in DTYPES:
        raise argparse.ArgumentTypeError(f"expected {' or '.join(DTYPES)}, got {text!r}")
    return text


def add_parsers(commands):
    """Add ``sweep`` to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser(
        "sweep", help="train a grid of eta, hidden sizes, mini-batch sizes, seeds, ... on Dask",
        description="Train the network once for every combination of the values given "
                    "(each option takes a comma-separated list), the runs side by side on "
                    "a Dask cluster: by default a local one with a worker process and one "
                    "numba thread per core, or the cluster at --scheduler. Each run is "
                    "evaluated after each epoch on the validation data (the test data stay "
                    "unseen until the hyper-parameters are chosen). Progress goes to stderr "
                    "as runs finish; the table goes to stdout and, with --out, to CSV, JSON, "
                    "Markdown and a plot of accuracy against eta. A run that fails is "
                    "reported and the others go on. Needs Dask: pip install 'fastgd[dask]'.")
    networks = parser.add_mutually_exclusive_group()
    networks.add_argument("--hidden", type=comma_list(int_at_least(1), "30,100", unique=True),
                          metavar="N,N,...",
                          help="neurons in the hidden layer, one network per value, each "
                               "with an input neuron per pixel and an output neuron per "
                               "digit (default: 30, the book's [784, 30, 10])")
    networks.add_argument("--sizes", type=sizes_list, metavar="N,N,...;N,N,...",
                          help="whole networks, input layer first, separated by ';' "
                               "(quote them for the shell): '784,30,10;784,30,30,10'")
    parser.add_argument("--eta", type=comma_list(positive_float, "0.5,1,3,10", unique=True),
                        default=DEFAULT_ETAS, metavar="ETA,ETA,...",
                        help="learning rates (default 0.1,0.3,1,3,10,30)")
    parser.add_argument("--mini-batch-size", type=comma_list(int_at_least(1), "10,100",
                                                             unique=True),
                        default=[10], metavar="M,M,...",
                        help="mini-batch sizes m (default 10)")
    parser.add_argument("--seed", type=comma_list(int_at_least(0), "1,2,3", unique=True),
                        default=[0], metavar="S,S,...",
                        help="seeds of the initial weights and the shuffling; several show "
                             "how much a result owes to chance (default 0)")
    parser.add_argument("--epochs", type=comma_list(int_at_least(1), "10,30", unique=True),
                        default=[30], metavar="E,E,...",
                        help="epochs of each run (default 30)")
    parser.add_argument("--dtype", type=comma_list(dtype_name, "float32,float64", unique=True),
                        default=["float32"], metavar="DTYPE,...",
                        help="float32, float64 or both (default float32)")
    parser.add_argument("--on-divergence", choices=ON_DIVERGENCE, default="stop",
                        help="a run whose training fails (diverges, saturates, stalls) "
                             "stops there (default stop), or goes on to its last epoch "
                             "(warn): a saturated start sometimes recovers")
    parser.add_argument("--train-size", type=int_at_least(1), metavar="N",
                        help="train on the first N training inputs only (default: all 50,000)")
    parser.add_argument("--evaluate-on", choices=EVALUATE_ON, default="validation",
                        help="the inputs each run is scored on after each epoch: the 10,000 "
                             "validation images (default), or the test images, whose "
                             "accuracy is then no longer an unbiased estimate")
    parser.add_argument("--data", metavar="DIR",
                        help="a directory of MNIST-style IDX files (default: the bundled MNIST)")
    parser.add_argument("--workers", type=int_at_least(1), metavar="N",
                        help="worker processes of the local cluster (default: one per core, "
                             "at most one per run)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster of this scheduler (tcp://host:8786) "
                             "instead of a local one; its workers must have fastgd installed")
    parser.add_argument("--out", metavar="DIR",
                        help="write " + ", ".join(OUTPUTS) + " in this directory (made if "
                             "missing)")
    parser.add_argument("--no-plot", action="store_true", help="do not write sweep.png")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files in --out that exist")
    parser.set_defaults(func=sweep_command)
    return parser


def _grid(args):
    """The grid in the order of the table: networks, m, eta, seed, epochs, dtype."""
    grid = {"sizes": args.sizes} if args.sizes is not None else {"hidden": args.hidden or [30]}
    grid.update(mini_batch_size=args.mini_batch_size, eta=args.eta, seed=args.seed,
                epochs=args.epochs, dtype=args.dtype)
    return grid


def _outputs(args):
    """{name: path} of the files --out asks for, checked before any run."""
    if args.out is None:
        return {}
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise NotADirectoryError(f"--out {args.out} is a file; give a directory (made if "
                                 "missing)")
    names = [n for n in OUTPUTS if not (n.endswith(".png") and args.no_plot)]
    paths = {name: os.path.join(args.out, name) for name in names}
    if os.path.isdir(args.out):
        for path in paths.values():
            check_output(path, "--out", args.overwrite)
    return paths


def _describe(row):
    sizes = "-".join(map(str, row["sizes"])) if isinstance(row["sizes"], list) else row["sizes"]
    return (f"{sizes}, m {row['mini_batch_size']}, eta {row['eta']:g}, seed {row['seed']}, "
            f"{_plural(row['epochs'], 'epoch')}" + (f", {row['dtype']}" if row["dtype"] != "float32"
                                         else ""))


def progress_lines(began):
    """``fastgd.sweep``'s progress callback as a line on stderr per finished run."""
    say = Progress()

    def progress(done, total, row):
        elapsed = time.perf_counter() - began
        if row is None:
            say(f"{_plural(total, 'run')} sent to the Dask cluster ({elapsed:.1f} s)", force=True)
            return
        if row["error"] is not None:
            result = "error: " + row["error"]
        else:
            result = (f"best {row['best_accuracy']:.2%} (epoch {row['best_epoch']}), final "
                      f"{row['final_accuracy']:.2%}, {row['seconds']:.1f} s")
            if row["diverged"]:
                result += "; " + row["diverged"].split(":")[0]
        say(f"[{done}/{total}] {_describe(row)}: {result}  ({elapsed:.0f} s)", force=True)
    return progress


def _plural(count, word):
    return f"{count} {word}{'s' if count != 1 else ''}"


def _text_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def sweep_command(args):
    """Run ``fastgd sweep``; returns the exit status."""
    import fastgd
    from fastgd import sweeps
    began = time.perf_counter()
    if args.workers is not None and args.scheduler is not None:
        raise ValueError("--workers sizes the local cluster; it cannot be used with "
                         "--scheduler (the cluster there has its own workers)")
    paths = _outputs(args)
    if "sweep.png" in paths:
        require_matplotlib("or pass --no-plot")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ImportError(sweeps.DASK_HINT) from None
    training, validation, test = fastgd.load_mnist(args.data)
    evaluation = {"validation": validation, "test": test}[args.evaluate_on]
    if args.train_size is not None:
        if args.train_size > len(training[1]):
            raise ValueError(f"--train-size {args.train_size} is more than the "
                             f"{len(training[1])} training inputs")
        training = (training[0][:args.train_size], training[1][:args.train_size])
    grid = _grid(args)
    points = sweeps.grid_points(grid, training, evaluation)
    info = sys.stderr
    if args.evaluate_on == "test":
        print("note: scoring on the test data makes the chosen run's test accuracy an "
              "optimistic estimate; --evaluate-on validation keeps them unseen", file=info)
    new = sweeps.needs_compiling(sweeps.network_shapes(points))
    if new:
        print("compiling kernels for " + ", ".join(f"{list(s)} {d}" for s, d in new)
              + " first (10-20 s each, once: the workers load them from the cache)",
              file=info, flush=True)
    workers = args.workers or min(len(points), sweeps.available_cores())
    where = (f"the Dask cluster at {args.scheduler}" if args.scheduler else
             f"a local Dask cluster of {_plural(workers, 'worker')}")
    print(f"{_plural(len(points), 'run')} on {len(training[1])} training inputs, scored on "
          f"{len(evaluation[1])} {args.evaluate_on} inputs, on {where}", file=info, flush=True)
    if paths:
        os.makedirs(args.out, exist_ok=True)
        for path in paths.values():
            check_output(path, "--out", args.overwrite)
    report = progress_lines(began)
    signals = getattr(args, "signals", None)  # fastgd.cli.Signals, from main()

    def progress(done, total, row):
        if row is None and signals is not None:
            # The runs have started: a signal now raises, so that the runs finished
            # are written (before, it ends the process at once: nothing to keep).
            signals.raise_signals()
        report(done, total, row)

    try:
        table = fastgd.sweep(grid, training, evaluation, on_divergence=args.on_divergence,
                             client=args.scheduler, n_workers=args.workers, progress=progress)
    except BaseException as e:
        table = getattr(e, "table", None)  # interrupted: the runs finished are kept
        if table is not None and any(row["epochs_run"] is not None or row["error"] is not None
                                     and not row["error"].startswith("not finished")
                                     for row in table.rows):
            table.info["eval_name"] = args.evaluate_on
            try:
                _report(table, paths, args, info)
            except (OSError, ValueError) as error:
                print(f"fastgd sweep: error: the runs finished could not be written: {error}",
                      file=info)
        raise
    table.info["eval_name"] = args.evaluate_on
    _report(table, paths, args, info)
    failed = sum(row["error"] is not None for row in table.rows)
    if failed == len(table.rows):
        print(f"fastgd sweep: error: every run failed; the first: {table.rows[0]['error']}",
              file=info)
        return 1
    return 0


def _report(table, paths, args, info):
    """The table on stdout, and the files --out asks for."""
    header, rows = table.cells()
    print(table.description())
    print("\n".join(_text_table(header, rows)))
    for row in table.best():
        print(f"best of {_describe(row)}: {row['best_accuracy']:.2%} after epoch "
              f"{row['best_epoch']}")
    if paths:
        table.to_csv(paths["sweep.csv"], overwrite=args.overwrite)
        table.to_json(paths["sweep.json"], overwrite=args.overwrite)
        table.to_markdown(paths["sweep.md"], overwrite=args.overwrite)
        if "sweep.png" in paths:
            from fastgd import plots
            plots.save(plots.sweep(table), paths["sweep.png"], overwrite=args.overwrite)
        print("written: " + ", ".join(paths.values()), file=info)
