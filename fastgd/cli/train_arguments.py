"""The options of ``fastgd train``, ``fastgd profile`` and ``fastgd evaluate``: each
function adds one command's parser and returns it (``fastgd.cli.train`` runs them)."""

import argparse
import os

import numba

from fastgd.cli._arguments import DTYPES, fraction, layer_sizes, non_negative_float
from fastgd.cli._arguments import int_at_least as _int_at_least
from fastgd.cli._arguments import positive_float as _positive_float
from fastgd.distributed import REDUCES
from fastgd.network_file import COSTS, INITS
from fastgd.training import (DIVERGENCE_PATIENCE, ETA_SCHEDULES, KERNELS, ON_DIVERGENCE,
                             REDUCTIONS, REGULARIZATIONS)

BOOK_SIZES = [784, 30, 10]
BOOK_MINI_BATCH_SIZE = 10
BOOK_VALIDATION_SIZE = 10_000
# The CLI spells eta_schedule=None "none".
ETA_SCHEDULE_NAMES = ["none" if schedule is None else schedule for schedule in ETA_SCHEDULES]
# The inputs a run is evaluated on after each epoch (the CLI's own choice).
EVALUATE_ON = ["test", "validation"]

DATA_HELP = ("a directory of MNIST-style IDX files (train-images-idx3-ubyte, "
             "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, "
             "raw or .gz), e.g. Fashion-MNIST (default: the bundled MNIST)")
VALIDATION_HELP = ("the last N training images are held back as validation data, as in "
                   "the book (default 10,000: 50,000 train, 10,000 validate); 0 trains on "
                   "all of them")


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

def add_train(commands):
    """The parser of ``fastgd train``."""
    train = commands.add_parser(
        "train", help="train a network by stochastic gradient descent",
        description="Train a network of sigmoid neurons by stochastic gradient descent and "
                    "print how many test inputs it classifies correctly after each epoch. "
                    "The defaults reproduce the book's run: sizes 784,30,10, 30 epochs, "
                    "mini-batch size 10, eta 3.0.")
    add_training_options(train)
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
    train.add_argument("--on-divergence", choices=ON_DIVERGENCE, default="stop",
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
    train.add_argument("--reduce", choices=REDUCES,
                       help="with --distributed, how the ranks' gradient sums are combined: "
                            "ordered (default: in rank order, the same bits on any MPI) or "
                            "allreduce (MPI's own sum, faster for many ranks)")
    return train


def add_profile(commands):
    """The parser of ``fastgd profile``."""
    profile = commands.add_parser(
        "profile", help="time a short training run: JIT compile, shuffle, kernel, evaluation",
        description="Run a short training run (3 epochs unless --epochs says otherwise) "
                    "and report import and JIT compile time, per-epoch seconds split into "
                    "shuffle, training kernel and evaluation, examples/s, and GFLOP/s "
                    "against the network's FLOP count and a quick measured peak.")
    add_training_options(profile, epochs=3)
    profile.add_argument("--json", action="store_true", help="print the report as JSON")
    profile.add_argument("--busy", action="store_true",
                         help="train beside a busy-loop process (another program using a "
                              "core), and time the serial kernel under the same load")
    return profile


def add_evaluate(commands):
    """The parser of ``fastgd evaluate``."""
    evaluate = commands.add_parser(
        "evaluate", help="classify a data set with a saved network",
        description="Load a network saved by 'fastgd train --save' and report how many "
                    "inputs it classifies correctly, and its cost C (quadratic or "
                    "cross-entropy, as it was trained).")
    evaluate.add_argument("model", metavar="MODEL.npz",
                          help="a network saved by fastgd train --save")
    evaluate.add_argument("--data", type=_directory, metavar="DIR", help=DATA_HELP)
    evaluate.add_argument("--validation-size", type=_int_at_least(0), default=BOOK_VALIDATION_SIZE,
                          metavar="N", help=VALIDATION_HELP)
    evaluate.add_argument("--on", choices=[*EVALUATE_ON, "training"], default="test",
                          help="which inputs to classify: the 10,000 test images (default), "
                               "the validation images (10,000) or the training images (50,000)")
    evaluate.add_argument("--dtype", choices=DTYPES,
                          help="precision to evaluate in (default: the network's own)")
    return evaluate


def add_training_options(parser, epochs=30):
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
    parser.add_argument("--reduction", choices=REDUCTIONS, default="mean",
                       help="mean: w -> w - (eta/m) sum_j dC_Xj/dw, the book's rule "
                            "(default); sum: drop the 1/m")
    parser.add_argument("--cost", choices=COSTS, default="quadratic",
                       help="the cost C_x to minimise: quadratic, ||y - a||^2 / 2 (default, "
                            "chapter 1), or cross-entropy, -sum_j [y_j ln a_j + (1 - y_j) "
                            "ln(1 - a_j)] (chapter 3: saturated output neurons still learn "
                            "fast; use a smaller eta, 0.5 in the book)")
    parser.add_argument("--init", choices=INITS, default="large",
                       help="initial weights: large, Gaussian with standard deviation 1 "
                            "(default), or scaled, standard deviation 1/sqrt(n_in) for a neuron "
                            "with n_in inputs (chapter 3: hidden neurons do not start saturated)")
    parser.add_argument("--lmbda", type=non_negative_float, default=0.0, metavar="LAMBDA",
                       help="the regularization parameter lambda (default 0: none); with n "
                            "training inputs, L2 shrinks each weight by the factor 1 - eta "
                            "lambda / n each step (5.0 in the book, for 50,000 inputs)")
    parser.add_argument("--regularization", choices=REGULARIZATIONS, default="L2",
                       help="L2 (default): add (lambda/2n) sum w^2 to the cost; L1: add "
                            "(lambda/n) sum |w|, so w -> w - (eta lambda / n) sgn(w) each step")
    parser.add_argument("--eta-schedule", choices=ETA_SCHEDULE_NAMES, default="none",
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
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="floating-point precision of weights and inputs (default float32)")
    parser.add_argument("--threads", type=_threads,
                       help=f"numba threads (default: numba's, {numba.get_num_threads()} here)")
    parser.add_argument("--kernel", choices=KERNELS, default="auto",
                       help="auto (default) times the serial kernel (1 thread) against the "
                            "parallel one (all threads, and half as many, a quarter... down "
                            "to 2) during the first epoch, keeps the fastest, and times them "
                            "again when the speed drifts; these three "
                            "give the same weights. hogwild (Hogwild!, for small mini-batches) "
                            "lets each thread train on its own share of the mini-batches, "
                            "adding its changes to the shared weights every few mini-batches, "
                            "without locks, after a first epoch on one thread: NOT "
                            "deterministic on more than one thread (the weights differ from "
                            "run to run)")
    parser.add_argument("--data", type=_directory, metavar="DIR", help=DATA_HELP)
    parser.add_argument("--validation-size", type=_int_at_least(0), default=BOOK_VALIDATION_SIZE,
                        metavar="N", help=VALIDATION_HELP)
    parser.add_argument("--evaluate-on", choices=EVALUATE_ON, default="test",
                       help="the inputs to classify after each epoch: the 10,000 test images "
                            "(default, as in the book) or the validation images (see "
                            "--validation-size)")
    parser.add_argument("--train-size", type=_int_at_least(1), metavar="N",
                       help="train on the first N training inputs only, for quick runs "
                            "(default: all 50,000)")
