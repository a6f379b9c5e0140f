"""What the subcommands share: argparse types (each error says what was expected),
output checks, the drawn seed, the network-fits-the-data check, JSON numbers, the
matplotlib check and progress lines on stderr."""

import argparse
import math
import os
import secrets
import sys
import time

from fastgd._files import check_writable
from fastgd._validation import DTYPES as _DTYPES

# The precisions a network may have, as --dtype offers them.
DTYPES = list(_DTYPES)


# -- argparse types ----------------------------------------------------------------------

def int_at_least(minimum):
    """An argparse type: one integer >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def positive_float(text):
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text):
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def fraction(text):
    """An argparse type: a number strictly between 0 and 1, as a decimal or as
    a ratio such as 1/128."""
    try:
        numerator, _, denominator = text.partition("/")
        value = float(numerator) / float(denominator) if denominator else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number such as 0.01 or 1/128, "
                                         f"got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def finite_float(text):
    """An argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def mini_batch_size_or_full(text):
    """An argparse type: a mini-batch size >= 1, or 'full' (None: the full batch)."""
    if text.strip().lower() in ("full", "full-batch", "none"):
        return None
    try:
        return int_at_least(1)(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e} (a mini-batch size, or 'full' for the full "
                                         "batch)") from None


def comma_list(item, example, *, unique=False, at_least=1):
    """An argparse type: comma-separated values, each parsed by ``item`` (another
    argparse type), such as ``example``; at least ``at_least`` of them, none
    repeated if ``unique``."""
    def parse(text):
        values = []
        for part in text.split(","):
            try:
                values.append(item(part.strip()))
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentTypeError(
                    f"{e}, in {text!r}: expected comma-separated values such as "
                    f"{example}") from None
        if len(values) < at_least:
            raise argparse.ArgumentTypeError(f"expected at least {at_least} comma-separated "
                                             f"values such as {example}, got {text!r}")
        if unique and len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"must not repeat a value, got {text!r}")
        return values
    return parse


def layer_sizes(text):
    """An argparse type: the number of neurons in each layer, input first, such as
    784,30,10 (at least two layers, each of at least one neuron)."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers of neurons such as 784,30,10, "
            f"got {text!r}") from None
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(
            f"needs at least two layers (input and output), such as 784,10; got {text!r}")
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"every layer needs at least one neuron, got {text!r}")
    return sizes


# -- checks before the work starts ---------------------------------------------------------

def check_output(path, option, overwrite, suffix=None):
    """Fail before training, not after, if the results could not be written to
    ``path`` (given as ``option``): a directory, a missing or read-only parent
    directory, a read-only file, the wrong suffix, or an existing file without
    --overwrite.  None passes."""
    if path is None:
        return
    if suffix is not None and not str(path).lower().endswith(suffix):
        raise ValueError(f"{option} must be a file name ending in {suffix}, got {path!r}")
    check_writable(path, option)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{option} {path} exists; pass --overwrite to replace it")


def check_outputs(outputs, overwrite, own=()):
    """check_output for each {option: path}, and no file given to two options.
    ``own`` holds files the command may replace without --overwrite (a resumed
    run's checkpoint)."""
    seen = {}
    for option, path in outputs.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise ValueError(f"{seen[real]} and {option} are the same file {path}: give "
                             "each its own")
        seen[real] = option
        check_output(path, option, overwrite or real in own,
                     suffix=".png" if option == "--plot" else None)


def require_matplotlib(alternative=None):
    """Fail now, not after the measurement, when a plot is asked for and matplotlib is
    missing: ImportError with the one install hint (and ``alternative``, such as
    "or pass --no-plot")."""
    from fastgd.plots import PLOT_HINT
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError(PLOT_HINT + (f" ({alternative})" if alternative else "")) from None


def check_fits(sizes, data, what):
    """The network's input layer must have one neuron per pixel and its output layer
    one neuron per label; ``what`` names the network in the error (e.g. "--sizes
    784,30,10")."""
    X, y = data
    if sizes[0] != X.shape[1]:
        raise ValueError(f"{what} has {sizes[0]} input neurons, but the images have "
                         f"{X.shape[1]} pixels: the input layer needs one neuron per pixel")
    if len(y) and sizes[-1] <= y.max():
        raise ValueError(f"{what} has {sizes[-1]} output neurons, but the labels go up to "
                         f"{y.max()}: the output layer needs one neuron per label")


def draw_seed(seed, *, to_stderr=False):
    """``seed``, or when it is None a fresh one, printed so that the run can be repeated
    (on stderr when stdout carries JSON)."""
    if seed is None:
        seed = secrets.randbelow(2**31)
        print(f"seed {seed} (pass --seed {seed} to repeat this run)",
              file=sys.stderr if to_stderr else sys.stdout, flush=True)
    return seed


# -- output ------------------------------------------------------------------------------

def finite_or_none(value):
    """JSON has no NaN or infinity (a diverged run's cost): null instead."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Progress:
    """Progress lines on stderr, at most one every ``every`` seconds unless forced,
    so that a long command is never silent and never floods the terminal."""

    def __init__(self, every=2.0, stream=None):
        self.every = every
        self.stream = stream
        self.last = -math.inf

    def __call__(self, line, force=False):
        now = time.perf_counter()
        if force or now - self.last >= self.every:
            self.last = now
            print(line, file=self.stream or sys.stderr, flush=True)
