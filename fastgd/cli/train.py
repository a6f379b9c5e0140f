"""``fastgd train``, ``fastgd profile`` and ``fastgd evaluate``.

    fastgd train                          # the book's run: [784, 30, 10], 30 epochs, m 10, eta 3.0
    fastgd train --epochs 5 --save net.npz --history net.json
    fastgd evaluate net.npz --on validation

Errors print one ``fastgd COMMAND: error: ...`` line; ``fastgd.cli.main`` gives
the exit statuses.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numba
import numpy as np

import fastgd
from fastgd.cli._arguments import (check_fits, check_outputs, draw_seed, finite_or_none,
                                   fraction, layer_sizes, non_negative_float,
                                   require_matplotlib)
from fastgd.cli._arguments import int_at_least as _int_at_least
from fastgd.cli._arguments import positive_float as _positive_float
from fastgd._files import atomic_write
from fastgd.training import DIVERGENCE_PATIENCE, choose_kernel

BOOK_SIZES = [784, 30, 10]
BOOK_MINI_BATCH_SIZE = 10
BOOK_VALIDATION_SIZE = 10_000


# -- argument types: each error names what was expected ---------------------------------

def _threads(text):
    value = _int_at_least(1)(text)
    most = numba.config.NUMBA_NUM_THREADS
    if value > most:
        raise argparse.ArgumentTypeError(
            f"must be <= {most} (numba's NUMBA_NUM_THREADS on this machine), got {value}")
    return value


def _directory(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is not a directory")
    return text


# -- the parser -------------------------------------------------------------------------

def add_parsers(commands):
    """Add train, profile and evaluate to the subcommands."""
    data_help = ("a directory of MNIST-style IDX files (train-images-idx3-ubyte, "
                 "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
                 "raw or .gz), e.g. Fashion-MNIST (default: the bundled MNIST)")
    validation_help = ("the last N training images are held back as validation data, as in "
                       "the book (default 10,000: 50,000 train, 10,000 validate); 0 trains on "
                       "all of them")
    dtypes = ["float32", "float64"]

    train = commands.add_parser(
        "train", help="train a network by stochastic gradient descent",
        description="Train a network of sigmoid neurons by stochastic gradient descent and "
                    "print how many test inputs it classifies correctly after each epoch. "
                    "The defaults reproduce the book's run: sizes 784,30,10, 30 epochs, "
                    "mini-batch size 10, eta 3.0.")
    _add_training_options(train, data_help, validation_help)
    train.add_argument("--save", metavar="PATH",
                       help="save the trained network to PATH (.npz; load it with "
                            "fastgd evaluate or fastgd.Network.load)")
    train.add_argument("--history", metavar="PATH",
                       help="write the per-epoch history (accuracy, costs, seconds) as JSON")
    train.add_argument("--plot", metavar="PATH.png",
                       help="draw the learning curves (accuracy and cost per epoch) to "
                            "PATH.png (needs matplotlib)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the files given to --save, --history, --plot, "
                            "--checkpoint and --save-best if they exist")
    train.add_argument("--checkpoint", metavar="PATH",
                       help="after every --checkpoint-every epochs, and when training stops "
                            "(Ctrl-C included), write the network, the epoch, the random "
                            "generator's state, the history and the run's options to PATH; "
                            "continue the run with --resume PATH")
    train.add_argument("--checkpoint-every", type=_int_at_least(1), default=1, metavar="N",
                       help="epochs between checkpoints (default 1)")
    train.add_argument("--resume", metavar="PATH",
                       help="continue the run of a checkpoint written by --checkpoint, with "
                            "its network, data and options, up to --epochs epochs in all "
                            "(default: the run's own); the checkpoint goes on being updated")
    train.add_argument("--save-best", metavar="PATH",
                       help="keep the network with the best accuracy on the evaluation "
                            "inputs (--evaluate-on) in PATH, updated as training goes")
    train.add_argument("--early-stop", type=_int_at_least(1), metavar="N",
                       help="stop after N epochs without a better accuracy on the evaluation "
                            "inputs")
    train.add_argument("--monitor-training-cost", action="store_true",
                       help="also compute the cost C (the network's, without the "
                            "regularization term) on all the training inputs after each epoch")
    train.add_argument("--on-divergence", choices=["stop", "warn", "raise"], default="stop",
                       help="when training fails (the cost becomes NaN, stays well above its "
                            f"best for {DIVERGENCE_PATIENCE} epochs, stops falling, or most "
                            "output neurons saturate: eta too large): stop training "
                            "(default), warn and go on, or stop at once; the command then "
                            "exits with status 1")
    train.add_argument("--quiet", action="store_true",
                       help="print only the seed (if drawn) and the final results")
    train.add_argument("--distributed", action="store_true",
                       help="share each step's gradient out over the ranks of an MPI job "
                            "(mpiexec -n P fastgd train --distributed ...; needs mpi4py: "
                            "pip install 'fastgd[mpi]'); only rank 0 prints and writes files; "
                            "--threads is per rank (default: the rank's cores divided by the "
                            "ranks sharing them). Pays off for large mini-batches and full "
                            "batch")
    train.add_argument("--reduce", choices=["ordered", "allreduce"],
                       help="with --distributed, how the ranks' gradient sums are combined: "
                            "ordered (default: in rank order, the same bits on any MPI) or "
                            "allreduce (MPI's own sum, faster for many ranks)")
    train.set_defaults(func=train_command, parser=train)

    profile = commands.add_parser(
        "profile", help="time a short training run: JIT compile, shuffle, kernel, evaluation",
        description="Run a short training run (3 epochs unless --epochs says otherwise) "
                    "and report import and JIT compile time, per-epoch seconds split into "
                    "shuffle, training kernel and evaluation, examples/s, and GFLOP/s "
                    "against the network's FLOP count and a quick measured peak.")
    _add_training_options(profile, data_help, validation_help, epochs=3)
    profile.add_argument("--json", action="store_true", help="print the report as JSON")
    profile.add_argument("--busy", action="store_true",
                         help="train beside a busy-loop process (another program using a "
                              "core), and time the serial kernel under the same load")
    profile.set_defaults(func=profile_command)

    evaluate = commands.add_parser(
        "evaluate", help="classify a data set with a saved network",
        description="Load a network saved by 'fastgd train --save' and report how many "
                    "inputs it classifies correctly, and its cost C (quadratic or "
                    "cross-entropy, as it was trained).")
    evaluate.add_argument("model", metavar="MODEL.npz",
                          help="a network saved by fastgd train --save")
    evaluate.add_argument("--data", type=_directory, metavar="DIR", help=data_help)
    evaluate.add_argument("--validation-size", type=_int_at_least(0), default=BOOK_VALIDATION_SIZE,
                          metavar="N", help=validation_help)
    evaluate.add_argument("--on", choices=["test", "validation", "training"], default="test",
                          help="which inputs to classify: the 10,000 test images (default), "
                               "the validation images (10,000) or the training images (50,000)")
    evaluate.add_argument("--dtype", choices=dtypes,
                          help="precision to evaluate in (default: the network's own)")
    evaluate.set_defaults(func=evaluate_command)



def _add_training_options(parser, data_help, validation_help, epochs=30):
    """The options of a training run, shared by train and profile."""
    parser.add_argument("--sizes", type=layer_sizes, default=BOOK_SIZES, metavar="N,N,...",
                       help="the number of neurons in the respective layers, input layer "
                            "first (default 784,30,10: 784 = 28x28 input pixels, 30 hidden "
                            "neurons, 10 output neurons, one per digit)")
    parser.add_argument("--epochs", type=_int_at_least(0), default=epochs,
                       help="the number of epochs to train for; an epoch is a pass over all "
                            f"the training inputs, in a new random order (default {epochs})")
    parser.add_argument("--mini-batch-size", type=_int_at_least(1), metavar="M",
                       help="m, the number of training inputs in each mini-batch: each step "
                            "of gradient descent estimates the gradient from m randomly "
                            f"chosen training inputs ({BOOK_MINI_BATCH_SIZE} unless --mode "
                            "says otherwise)")
    parser.add_argument("--eta", type=_positive_float, default=3.0,
                       help="the learning rate eta (default 3.0)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--mode", choices=["online", "mini-batch", "full-batch"],
                       default="mini-batch",
                       help="online: learn from one training input at a time (m = 1); "
                            "mini-batch: stochastic gradient descent with mini-batches of "
                            "--mini-batch-size (default); full-batch: ordinary gradient "
                            "descent, each step using all the training inputs")
    modes.add_argument("--full-batch", dest="mode", action="store_const", const="full-batch",
                       help="short for --mode full-batch")
    parser.add_argument("--reduction", choices=["mean", "sum"], default="mean",
                       help="mean: w -> w - (eta/m) sum_j dC_Xj/dw, the book's rule "
                            "(default); sum: drop the 1/m")
    parser.add_argument("--cost", choices=["quadratic", "cross-entropy"], default="quadratic",
                       help="the cost C_x to minimise: quadratic, ||y - a||^2 / 2 (default, "
                            "chapter 1), or cross-entropy, -sum_j [y_j ln a_j + (1 - y_j) "
                            "ln(1 - a_j)] (chapter 3: saturated output neurons still learn "
                            "fast; use a smaller eta, 0.5 in the book)")
    parser.add_argument("--init", choices=["large", "scaled"], default="large",
                       help="initial weights: large, Gaussian with standard deviation 1 "
                            "(default), or scaled, standard deviation 1/sqrt(n_in) for a neuron "
                            "with n_in inputs (chapter 3: hidden neurons do not start saturated)")
    parser.add_argument("--lmbda", type=non_negative_float, default=0.0, metavar="LAMBDA",
                       help="the regularization parameter lambda (default 0: none); with n "
                            "training inputs, L2 shrinks each weight by the factor 1 - eta "
                            "lambda / n each step (5.0 in the book, for 50,000 inputs)")
    parser.add_argument("--regularization", choices=["L2", "L1"], default="L2",
                       help="L2 (default): add (lambda/2n) sum w^2 to the cost; L1: add "
                            "(lambda/n) sum |w|, so w -> w - (eta lambda / n) sgn(w) each step")
    parser.add_argument("--eta-schedule", choices=["none", "halve-on-plateau"], default="none",
                       help="halve-on-plateau: halve eta each time the accuracy on the "
                            "evaluation inputs has not improved for --patience epochs, and "
                            "stop once eta has fallen to --min-eta-factor of its start "
                            "(evaluate on validation inputs: --evaluate-on validation); none "
                            "(default): eta stays fixed")
    parser.add_argument("--patience", type=_int_at_least(1), default=10, metavar="N",
                       help="epochs without a better accuracy before --eta-schedule halves "
                            "eta (default 10)")
    parser.add_argument("--min-eta-factor", type=fraction, default=1 / 128, metavar="F",
                       help="--eta-schedule stops training once eta has fallen to F times its "
                            "start (default 0.0078125; that is 1/128)")
    parser.add_argument("--seed", type=_int_at_least(0),
                       help="seeds the initial weights and biases (Gaussian, mean 0, "
                            "standard deviation 1, or as --init says) and the shuffling of the "
                            "training inputs (default: a fresh seed, printed so the run can be "
                            "repeated)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                       help="floating-point precision of weights and inputs (default float32)")
    parser.add_argument("--threads", type=_threads,
                       help=f"numba threads (default: numba's, {numba.get_num_threads()} here)")
    parser.add_argument("--kernel", choices=["auto", "serial", "parallel"], default="auto",
                       help="auto (default) splits a mini-batch across threads only when it "
                            "is large enough to pay off; all give the same weights")
    parser.add_argument("--data", type=_directory, metavar="DIR", help=data_help)
    parser.add_argument("--validation-size", type=_int_at_least(0), default=BOOK_VALIDATION_SIZE,
                        metavar="N", help=validation_help)
    parser.add_argument("--evaluate-on", choices=["test", "validation"], default="test",
                       help="the inputs to classify after each epoch: the 10,000 test images "
                            "(default, as in the book) or the validation images (see "
                            "--validation-size)")
    parser.add_argument("--train-size", type=_int_at_least(1), metavar="N",
                       help="train on the first N training inputs only, for quick runs "
                            "(default: all 50,000)")


# -- helpers ----------------------------------------------------------------------------

def _load_data(directory, dtype, validation_size, wanted):
    """The training, validation and test sets; `wanted` must not be empty."""
    try:
        training, validation, test = fastgd.load_mnist(directory, dtype=dtype,
                                                       validation_size=validation_size)
    except ValueError as e:
        raise ValueError(str(e).replace("validation_size", "--validation-size")) from None
    data = {"training": training, "validation": validation, "test": test}
    if len(data[wanted][1]) == 0:
        raise ValueError(f"there are no {wanted} inputs (--validation-size is 0)")
    return data


def _result(correct, total, name, cost, cost_function="quadratic"):
    percent = f"{correct / total:.2%}" if total else "n/a"
    return (f"{correct} / {total} {name} inputs classified correctly ({percent}); "
            f"{cost_function} cost C = {cost:.4g}")


def _plural(count, word):
    return f"{count} {word}{'s' if count != 1 else ''}"


# -- the subcommands --------------------------------------------------------------------

def _prepare(args):
    """Check the options against the data; returns (net, training data, evaluation
    data, m, seed)."""
    if args.mode != "mini-batch" and args.mini_batch_size is not None:
        raise ValueError(f"--mini-batch-size cannot be used with --mode {args.mode} "
                         f"(online means m = 1, full-batch means m = all the training inputs)")

    data = _load_data(args.data, args.dtype, args.validation_size, args.evaluate_on)
    X, y = data["training"]
    eval_data = data[args.evaluate_on]
    sizes_option = "--sizes " + ",".join(map(str, args.sizes))
    check_fits(args.sizes, (X, y), sizes_option)
    check_fits(args.sizes, eval_data, sizes_option)
    if args.train_size is not None:
        if args.train_size > len(y):
            raise ValueError(f"--train-size {args.train_size} is more than the {len(y)} "
                             "training inputs")
        X, y = X[:args.train_size], y[:args.train_size]
    n = len(y)
    m = {"online": 1, "full-batch": None,
         "mini-batch": args.mini_batch_size or BOOK_MINI_BATCH_SIZE}[args.mode]
    if m is not None and m > n:
        raise ValueError(f"mini-batch size {m} (--mini-batch-size) is more than the {n} "
                         "training inputs")

    seed = draw_seed(args.seed, to_stderr=getattr(args, "json", False))

    net = fastgd.Network(args.sizes, seed=seed, dtype=args.dtype, cost=args.cost,
                         init=args.init)
    return net, (X, y), eval_data, m, seed


def _chapter3_options(args):
    """The non-default chapter-3 options, as words for the header line."""
    words = []
    if args.cost != "quadratic":
        words.append(f"{args.cost} cost")
    if args.init != "large":
        words.append(f"{args.init} initial weights")
    if args.lmbda:
        words.append(f"{args.regularization} regularization, lambda {args.lmbda:g}")
    if args.eta_schedule != "none":
        words.append(f"eta halved after {_plural(args.patience, 'epoch')} without a better "
                     f"accuracy, down to {args.min_eta_factor:g} of its start")
    return "".join(f", {w}" for w in words)


# Options --resume takes from the checkpoint (the run's definition and its data);
# the others may be given again.
_FROM_CHECKPOINT = ("sizes", "dtype", "data", "validation_size", "evaluate_on", "train_size",
                    "mode", "mini_batch_size", "eta", "reduction", "seed",
                    "monitor_training_cost", "on_divergence", "checkpoint_every", "early_stop",
                    "save_best", "cost", "init", "lmbda", "regularization", "eta_schedule",
                    "patience", "min_eta_factor")


def train_command(args):
    comm = _communicator(args)  # None without --distributed
    rank0 = comm is None or comm.Get_rank() == 0
    if args.resume:
        _options_from_checkpoint(args)
    with _on_every_rank(comm):
        outputs = _check_outputs(args)
        net, (X, y), eval_data, m, seed = _prepare(args)
    n = len(y)
    if not args.quiet and rank0:
        threads = args.threads or numba.get_num_threads()
        kernel, reason = choose_kernel(n if m is None else m, threads, args.kernel)
        if comm is not None:
            reason = f"on each of {comm.Get_size()} MPI ranks, {args.reduce} sum"
        steps = {"online": "online learning (mini-batch size 1)",
                 "full-batch": f"full batch (mini-batch size {n})",
                 "mini-batch": f"mini-batch size {m}"}[args.mode]
        reduction = ", summed gradients" if args.reduction == "sum" else ""
        print(f"Network {net.sizes}, {args.dtype}{_chapter3_options(args)}; {n} training "
              f"inputs, {steps}, eta {args.eta}{reduction}, {_plural(args.epochs, 'epoch')}; "
              "evaluated on the "
              f"{len(eval_data[1])} {args.evaluate_on} inputs; seed {seed}; "
              f"kernel {kernel} ({reason}), {_plural(threads, 'thread')}",
              flush=True)
        if args.resume:
            print(f"Resuming {args.resume} from epoch {args._resume_epoch}", flush=True)

    status, interruption = 0, None
    with warnings.catch_warnings():
        # Reported below from history.diverged, once and without a source line.
        warnings.simplefilter("ignore", fastgd.DivergenceWarning)
        try:
            if args.resume:
                net, history = fastgd.resume(
                    args.resume, (X, y), eval_data, epochs=args.epochs, threads=args.threads,
                    kernel=args.kernel, verbose=not args.quiet, checkpoint=outputs.get(
                        "--checkpoint"), overwrite=args.overwrite)
            elif comm is not None:
                history = _distributed_sgd(comm, net, (X, y), m, eval_data, args)
            else:
                history = net.SGD(
                    (X, y), args.epochs, m, args.eta, test_data=eval_data,
                    reduction=args.reduction, threads=args.threads, kernel=args.kernel,
                    verbose=not args.quiet, monitor_training_cost=args.monitor_training_cost,
                    on_divergence=args.on_divergence, checkpoint=args.checkpoint,
                    checkpoint_every=args.checkpoint_every, save_best=args.save_best,
                    early_stop=args.early_stop, overwrite=args.overwrite,
                    lmbda=args.lmbda, regularization=args.regularization,
                    eta_schedule=None if args.eta_schedule == "none" else args.eta_schedule,
                    patience=args.patience, min_eta_factor=args.min_eta_factor,
                    info={"cli": {key: getattr(args, key) for key in _FROM_CHECKPOINT}})
        except fastgd.TrainingInterrupted as e:
            history, interruption = e.history, e
            status = 128 + e.signal
        except fastgd.DivergenceError as e:
            if e.history is None:
                raise
            history, status = e.history, 1

    if not rank0:  # rank 0 reports and writes the files
        return status or (1 if history.diverged else 0)
    for line in _summary(history, net, eval_data, args, interruption):
        print(line, flush=True)
    if history.diverged:
        # a failed run must not look like one that worked, to people or to scripts
        print(f"fastgd train: error: {history.diverged}", file=sys.stderr)
        status = status or 1
    if not _write_outputs(args, net, history, seed, n):
        status = status or 2
    return status


# Options of a run on one process only: a distributed run has no checkpoints,
# regularization or eta schedule yet.
_NOT_DISTRIBUTED = ("checkpoint", "resume", "save_best", "early_stop", "checkpoint_every",
                    "lmbda", "regularization", "eta_schedule", "patience", "min_eta_factor")


def _communicator(args):
    """MPI.COMM_WORLD for --distributed (None without it), after checking the
    options that go with it; the seed and the threads per rank are settled here,
    collectively: rank 0's seed, and the cores each rank may use."""
    if not args.distributed:
        if args.reduce is not None:
            raise ValueError("--reduce needs --distributed")
        return None
    for key in _NOT_DISTRIBUTED:
        if getattr(args, key) != args.parser.get_default(key):
            option = "--" + key.replace("_", "-")
            raise ValueError(f"{option} cannot be used with --distributed")
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"--distributed needs mpi4py and an MPI library ({e}); install "
                          "them with: pip install 'fastgd[mpi]'") from None
    from fastgd.distributed import default_threads
    comm = MPI.COMM_WORLD
    args.reduce = args.reduce or "ordered"
    if args.seed is None:
        args.seed = comm.bcast(draw_seed(None) if comm.Get_rank() == 0 else None, root=0)
    if args.threads is None:
        args.threads = default_threads(comm)
    return comm


class _on_every_rank:
    """With a communicator: an error on any rank is raised on every rank (each rank
    waits for the others here), so that none waits forever for one that stopped."""

    def __init__(self, comm):
        self.comm = comm

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if self.comm is None or (kind is not None and not issubclass(kind, Exception)):
            return False
        failed = self.comm.allgather(None if error is None else str(error))
        if error is not None:
            return False
        for rank, message in enumerate(failed):
            if message is not None:
                raise ValueError(f"rank {rank} stopped: {message}")
        return False


def _distributed_sgd(comm, net, training_data, m, eval_data, args):
    """fastgd.distributed.SGD with the command line's options.  An error that only
    this rank meets (the library's own errors are raised on every rank) aborts
    the whole job: the other ranks would wait for this one forever."""
    from fastgd.distributed import SGD
    try:
        return SGD(net, training_data, args.epochs, m, args.eta, eval_data, comm=comm,
                   reduce=args.reduce, reduction=args.reduction, threads=args.threads,
                   kernel=args.kernel,
                   verbose=not args.quiet, monitor_training_cost=args.monitor_training_cost,
                   on_divergence=args.on_divergence,
                   info={"cli": {key: getattr(args, key) for key in _FROM_CHECKPOINT}})
    except Exception as e:
        if getattr(e, "every_rank", False) or comm.Get_size() == 1:
            raise
        print(f"fastgd train: error: rank {comm.Get_rank()}: {type(e).__name__}: {e}; "
              "aborting the MPI job", file=sys.stderr, flush=True)
        comm.Abort(1)


def _options_from_checkpoint(args):
    """Set the run's options from the checkpoint given to --resume, refusing any
    that the command line sets to something else."""
    from fastgd.training import read_checkpoint
    _, state = read_checkpoint(args.resume)
    saved = state["history"]["info"].get("cli")
    if saved is None:
        raise ValueError(f"--resume {args.resume}: this checkpoint was not written by "
                         "fastgd train; continue it with fastgd.resume() from Python")
    for key in _FROM_CHECKPOINT:
        given, default = getattr(args, key), args.parser.get_default(key)
        # a checkpoint from before an option existed ran with its default
        value = saved.get(key, default)
        if given != default and given != value:
            option = "--" + key.replace("_", "-")
            raise ValueError(f"{option} cannot be changed when resuming (--resume "
                             f"{args.resume} has {option} {value}); leave it out")
        setattr(args, key, value)
    if args.epochs == args.parser.get_default("epochs"):
        args.epochs = state["definition"]["epochs"]
    if args.epochs < state["epoch"]:
        raise ValueError(f"--epochs {args.epochs} is less than the {state['epoch']} epochs "
                         f"--resume {args.resume} has already done")
    if args.checkpoint is None:
        args.checkpoint = args.resume
    args._resume_epoch = (f"{state['epoch']}" + (f" (+ {state['position']} examples)"
                                                  if state["position"] else ""))
    args._resume_state = state


def _check_outputs(args):
    """Before training: every output path can be written, none is given twice, and
    none exists unless --overwrite (a resumed run goes on writing its own)."""
    outputs = {option: getattr(args, option[2:].replace("-", "_"))
               for option in ("--save", "--history", "--checkpoint", "--save-best", "--plot")}
    outputs = {option: path for option, path in outputs.items() if path is not None}
    own = set()
    if args.resume:
        resumed = os.path.realpath(args.resume)
        clash = [o for o, p in outputs.items() if o != "--checkpoint"
                 and os.path.realpath(p) == resumed]
        if clash:
            raise ValueError(f"{clash[0]} would overwrite the checkpoint given to "
                             f"--resume, {args.resume}")
        own = {resumed} | ({os.path.realpath(args.save_best)} if args.save_best else set())
    check_outputs(outputs, args.overwrite, own)
    if args.plot:
        require_matplotlib()
    return outputs


def _summary(history, net, eval_data, args, interruption):
    """The lines that end a training run: how far it got, why it stopped, the best
    and final results, and what auto chose."""
    lines = []
    if history:
        best = max(history, key=lambda record: record["correct"])
        last = history[-1]
        seconds = sum(record["seconds"] for record in history)
        lines.append(f"Trained {_plural(len(history), 'epoch')} in {seconds:.2f} s; "
                     f"best: epoch {best['epoch']}, "
                     f"{best['correct']} / {best['total']} ({best['accuracy']:.2%})")
        final = f"Final: epoch {last['epoch']}, " + _result(
            last["correct"], last["total"], args.evaluate_on, last["test_cost"],
            net.cost_function)
        if "training_cost" in last:
            final += f"; on the training inputs C = {last['training_cost']:.4g}"
        lines.append(final)
    elif interruption is None:
        lines.append("No epochs run; untrained network: "
                     + _result(net.evaluate(*eval_data), len(eval_data[1]), args.evaluate_on,
                               net.cost(*eval_data), net.cost_function))
    planned = history.info.get("epochs_planned", len(history))
    if interruption is not None:
        where = (f" and {interruption.position} examples of epoch {interruption.epoch}"
                 if interruption.position else "")
        lines.append(f"Interrupted after {_plural(interruption.epoch, 'epoch')} of "
                     f"{planned}{where} ({history.stopped})")
        if interruption.position and np.isfinite(net.params).all():
            lines.append(f"The network now, part-way through epoch {interruption.epoch}: "
                         + _result(net.evaluate(*eval_data), len(eval_data[1]),
                                   args.evaluate_on, net.cost(*eval_data), net.cost_function))
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
        at = _plural(c["epoch"], "epoch") + (f" and {c['position']} examples"
                                             if c["position"] else "")
        lines.append(f"checkpoint written to {c['path']} ({at} done; continue with "
                     f"--resume {c['path']})")
    if history.info.get("calibration") and not args.quiet:
        lines.append(_calibration_line(history.info["calibration"]))
    return lines


def _write_outputs(args, net, history, seed, n):
    """Write --save first, then --history and --plot; returns False if any write failed.  A
    network that could not be written where asked is written to a fallback file."""
    ok, saved = True, False
    if args.save:
        try:
            net.save(args.save, overwrite=args.overwrite or bool(args.resume))
            print(f"saved to {args.save}")
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
                  "epochs": [{_history_key(key, args.evaluate_on): finite_or_none(value)
                              for key, value in record.items()} for record in history]}
        try:
            atomic_write(args.history, lambda f: json.dump(report, f, indent=1),
                         overwrite=args.overwrite, binary=False)
            print(f"history written to {args.history}")
        except (OSError, ValueError) as e:
            print(f"fastgd train: error: --history {args.history}: {e}", file=sys.stderr)
            ok = False
    if args.plot and history:
        try:
            from fastgd import plots
            plots.save(plots.learning_curves(history), args.plot, overwrite=args.overwrite)
            print(f"learning curves drawn to {args.plot}")
        except (OSError, ValueError, ImportError) as e:
            print(f"fastgd train: error: --plot {args.plot}: {e}", file=sys.stderr)
            ok = False
    if not ok and not saved:
        rescued = _rescue(net)
        if rescued:
            print(f"the trained network was written to {rescued} instead", file=sys.stderr)
    return ok


def _history_key(key, evaluate_on):
    """A History field's name in --history: the cost on the evaluation inputs is
    named after them (validation_cost with --evaluate-on validation)."""
    return f"{evaluate_on}_cost" if key == "test_cost" else key


def _rescue(net):
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


def _calibration_line(calibration):
    """What auto chose, by how much, and how often it looked again."""
    last = calibration[-1]
    timings = " vs ".join(f"{name} {seconds * 1e6:.2f}" for name, seconds in
                          sorted(last["s_per_example"].items(), key=lambda item: item[1]))
    again = f"; timed {len(calibration)} times in all" if len(calibration) > 1 else ""
    return f"kernel auto: {last['chose']} ({timings} us per example){again}"


def profile_command(args):
    from fastgd.profile import format_report, profile_training
    net, training_data, eval_data, m, _ = _prepare(args)
    report = profile_training(net, training_data, eval_data, args.epochs, m, args.eta,
                              reduction=args.reduction, threads=args.threads,
                              kernel=args.kernel, busy=args.busy, lmbda=args.lmbda,
                              regularization=args.regularization)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print("\n".join(format_report(report)))
    return 0


def evaluate_command(args):
    net = fastgd.Network.load(args.model)
    if args.dtype and args.dtype != net.dtype.name:
        net = fastgd.Network(net.sizes, net.weights, net.biases, dtype=args.dtype,
                             cost=net.cost_function, init=net.init)
    X, y = _load_data(args.data, net.dtype.name, args.validation_size, args.on)[args.on]
    check_fits(net.sizes, (X, y), f"the network in {args.model}")
    print(_result(net.evaluate(X, y), len(y), args.on, net.cost(X, y), net.cost_function))
    return 0


