"""``fastgd noise``: how noisy mini-batch gradients are, at initialisation and after
training (``fastgd.noise.gradient_noise``), as tables, JSON and a plot.

    fastgd noise                         # 1-2 minutes on 2 cores
    fastgd noise --batch-sizes 1,10,100  # a third of that

Each measurement computes 161,100 per-example gradients with the defaults: one pass
over the 50,000 inputs, then 100 mini-batches of each size (1 + 10 + 100 + 1000
examples); with --train-epochs 1 (the default) it is done twice.
"""

import json
import sys
import time

from fastgd import noise, plots
from fastgd.cli._arguments import (DTYPES, Progress, check_fits, check_output, comma_list,
                                   draw_seed, int_at_least, layer_sizes, require_matplotlib)

TRAIN_MINI_BATCH_SIZE = 10
TRAIN_ETA = 3.0


def add_parsers(commands):
    """Add ``noise`` to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser(
        "noise", help="measure how noisy mini-batch gradients are (the 1/sqrt(m) law)",
        description="Compute the per-example gradients of the quadratic cost on the MNIST "
                    "training inputs, the full gradient G, the gradient noise scale "
                    "B_simple = tr(Sigma)/|G|^2, and the relative error and cosine of random "
                    "mini-batch gradients for each size m, against the prediction "
                    "sqrt(B_simple/m * (n-m)/(n-1)); at initialisation, and again after "
                    f"--train-epochs epochs of SGD (m {TRAIN_MINI_BATCH_SIZE}, eta "
                    f"{TRAIN_ETA}). With the defaults this takes 1-2 minutes on 2 cores: "
                    "each measurement computes the gradients of all the inputs and of "
                    "--batches mini-batches of each size (100 of m = 1000 alone are "
                    "100,000 examples). Progress goes to stderr.")
    parser.add_argument("--sizes", type=layer_sizes, default=[784, 30, 10], metavar="N,N,...",
                        help="neurons in each layer, input first (default 784,30,10)")
    parser.add_argument("--seed", type=int_at_least(0),
                        help="seeds the initial weights, the training order and the "
                             "mini-batches (default: drawn and printed)")
    parser.add_argument("--batch-sizes", type=comma_list(int_at_least(1), "1,10,100",
                                                         unique=True),
                        default=list(noise.DEFAULT_BATCH_SIZES), metavar="M,M,...",
                        help="mini-batch sizes m to measure (default 1,10,100,1000)")
    parser.add_argument("--batches", type=int_at_least(1), default=100, metavar="K",
                        help="random mini-batches per size (default 100)")
    parser.add_argument("--train-epochs", type=int_at_least(0), default=1, metavar="E",
                        help=f"measure again after E epochs of SGD with m "
                             f"{TRAIN_MINI_BATCH_SIZE}, eta {TRAIN_ETA} (default 1; 0 "
                             "measures at initialisation only)")
    parser.add_argument("--examples", type=int_at_least(1), metavar="N",
                        help="use the first N training inputs (default: all 50,000)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="precision of the network and its gradients (default float32; "
                             "statistics are always accumulated in float64)")
    parser.add_argument("--max-mb", type=int_at_least(1),
                        default=noise.DEFAULT_MAX_BYTES // 2**20, metavar="MB",
                        help="memory for per-example gradients at once; they are streamed in "
                             "blocks that fit (default 256)")
    parser.add_argument("--out", default="noise.png", metavar="PNG",
                        help="where to write the plot (default noise.png; needs matplotlib)")
    parser.add_argument("--no-plot", action="store_true", help="do not write a plot")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON (other messages go to stderr)")
    parser.set_defaults(func=noise_command)
    return parser


def progress_lines(label, every=2.0):
    """``gradient_noise``'s progress callback as lines on stderr, one every ``every``
    seconds and one at the end of each stage."""
    say = Progress(every)

    def progress(event):
        what = ("the full gradient" if event["m"] is None
                else f"{event['of'] // event['m']} mini-batches of m = {event['m']}")
        say(f"noise {label}: {what}, {event['examples']} / {event['of']} examples, "
            f"{event['seconds']:.1f} s", force=event["examples"] == event["of"])
    return progress


def noise_command(args):
    """Run ``fastgd noise``; returns the exit status."""
    from fastgd.data import load_mnist
    from fastgd.network import Network
    from fastgd.training import SGD

    info = sys.stderr if args.json else sys.stdout
    out = None if args.no_plot else args.out
    check_output(out, "--out", args.overwrite)
    if out is not None:
        require_matplotlib("or pass --no-plot")

    (X, y), _, _ = load_mnist(dtype=args.dtype)
    if args.examples is not None:
        if args.examples > len(y):
            raise ValueError(f"--examples {args.examples} is more than the {len(y)} "
                             "training inputs")
        X, y = X[:args.examples], y[:args.examples]
    n = len(y)
    check_fits(args.sizes, (X, y), "--sizes " + ",".join(map(str, args.sizes)))
    too_big = [m for m in args.batch_sizes if m > n]
    if too_big:
        raise ValueError(f"--batch-sizes {too_big[0]} is more than the {n} training inputs "
                         "(see --examples)")
    seed = draw_seed(args.seed, to_stderr=args.json)

    from fastgd.precompile import compile_kernels
    from fastgd.training import measuring_mode
    if args.train_epochs and measuring_mode() == "now":
        # training between the two measurements: compile first, and say so (unless
        # fastgd.config.SPECIALIZE is "never": the generic kernels, for any shape)
        compile_kernels(args.sizes, args.dtype, verbose=True)
    net = Network(args.sizes, seed=seed, dtype=args.dtype)
    measure = dict(batch_sizes=args.batch_sizes, n_batches=args.batches, seed=seed,
                   max_bytes=args.max_mb * 2**20)
    label = "at initialisation"
    results = [noise.gradient_noise(net, X, y, label=label, progress=progress_lines(label),
                                    **measure)]
    _report(results[-1], args.json)
    if args.train_epochs:
        epochs = f"{args.train_epochs} epoch{'s' if args.train_epochs != 1 else ''}"
        print(f"training {epochs} (m {TRAIN_MINI_BATCH_SIZE}, eta {TRAIN_ETA}) ...",
              file=sys.stderr, flush=True)
        tic = time.perf_counter()
        SGD(net, (X, y), args.train_epochs, min(TRAIN_MINI_BATCH_SIZE, n), TRAIN_ETA,
            verbose=False)
        print(f"trained in {time.perf_counter() - tic:.1f} s", file=sys.stderr, flush=True)
        label = f"after {epochs}"
        results.append(noise.gradient_noise(net, X, y, label=label,
                                            progress=progress_lines(label), **measure))
        _report(results[-1], args.json)
    if args.json:
        print(json.dumps({"sizes": net.sizes, "dtype": args.dtype, "seed": seed,
                          "results": [r.to_dict() for r in results]}, indent=1))
    if out is not None:
        plots.save(plots.noise(results), out, overwrite=args.overwrite)
        print(f"plot written to {out}", file=info)
    return 0


def _report(result, as_json):
    if not as_json:
        print("\n".join(result.table()), end="\n\n", flush=True)
