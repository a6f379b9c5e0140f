"""How noisy is a mini-batch gradient?  The book's polling analogy, measured.

Stochastic gradient descent estimates the gradient of C = (1/n) sum_x C_x,

    G = grad C = (1/n) sum_x g_x,        g_x = grad C_x,

by the mean over a random mini-batch of m examples, g_m = (1/m) sum_{x in batch} g_x.
How good is the poll?  With the per-example covariance (population version)

    Sigma = (1/n) sum_x (g_x - G)(g_x - G)^T,   tr(Sigma) = (1/n) sum_x ||g_x - G||^2,

a mini-batch of m examples drawn *with* replacement has E||g_m - G||^2 = tr(Sigma)/m,
and one drawn *without* replacement (as here, and as SGD's epochs do) has the
finite-population correction fpc = (n - m)/(n - 1):

    E||g_m - G||^2 = tr(Sigma)/m * (n - m)/(n - 1).

So the relative error of the poll is about sqrt(B_simple/m * fpc), where

    B_simple = tr(Sigma) / |G|^2

is the "simple gradient noise scale" of McCandlish et al. (2018), "An Empirical
Model of Large-Batch Training": mini-batches much smaller than B_simple give
mostly noise, much larger ones mostly the true gradient.  The law predicts the
root-mean-square error exactly (in expectation); the mean error lies below it
(Jensen), close to it once the error is concentrated (large m).

:func:`gradient_noise` measures G, tr(Sigma) and B_simple exactly, and the
relative error and cosine of ``n_batches`` random mini-batches of each size.
Everything is accumulated in float64 from the kernel's per-example rows
(``Network.gradients``), streamed in blocks of examples so that the rows in
memory stay under ``max_bytes`` (256 MiB by default): a whole MNIST training
set works without n x n_params numbers in memory.
"""

import argparse
import json
import math
import os
import secrets
import sys
from dataclasses import dataclass, field

import numpy as np

from ._validation import check_data, check_int

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_BATCH_SIZES = (1, 10, 100, 1000)
PLOT_HINT = "matplotlib is needed for plots: pip install 'fastgd[plot]'"


# -- streaming per-example gradients --------------------------------------------------------

def bytes_per_example(net):
    """Memory one example of a block takes: its kernel row (n_params numbers in the
    network's dtype), its float64 copy (none for float64 networks) and up to one
    float64 partial sum."""
    itemsize = np.dtype(net.dtype).itemsize
    return net.layout.n_params * (itemsize + (0 if itemsize == 8 else 8) + 8)


def block_size(net, max_bytes=DEFAULT_MAX_BYTES):
    """Examples per block so that block * bytes_per_example(net) <= max_bytes (at least 1)."""
    max_bytes = check_int(max_bytes, "max_bytes", minimum=1)
    return max(1, max_bytes // bytes_per_example(net))


def iter_gradients(net, X, y, *, indices=None, max_bytes=DEFAULT_MAX_BYTES):
    """Per-example gradients g_x = grad C_x in float64, streamed block by block.

    Yields ``(start, stop, rows)``: ``rows[i]`` is the gradient (flat, laid out as
    ``net.params``; ``net.layout.unpack(row)`` gives nabla_b, nabla_w) for example
    ``indices[start + i]`` (``start + i`` when ``indices`` is None).  Blocks hold
    at most ``block_size(net, max_bytes)`` examples, so that n x n_params numbers
    are never in memory at once; ``rows`` is overwritten by nobody, but is a new
    array each block.  Checks the data like ``Network.gradients``.
    """
    X, y = check_data((X, y), net.sizes[0], net.sizes[-1], net.dtype, "data")
    yield from _iter_rows(net, X, y, indices, block_size(net, max_bytes))


def _iter_rows(net, X, y, indices, block):
    total = len(y) if indices is None else len(indices)
    for start in range(0, total, block):
        stop = min(total, start + block)
        if indices is None:
            rows = net.gradients(X[start:stop], y[start:stop])
        else:
            chosen = indices[start:stop]
            rows = net.gradients(X[chosen], y[chosen])
        yield start, stop, rows.astype(np.float64, copy=False)


# -- the measurement ----------------------------------------------------------------------

@dataclass(frozen=True)
class NoiseResult:
    """Gradient noise of one network on one data set; see the module docstring.

    For each mini-batch size ``batch_sizes[i]``: ``errors[i]`` and ``cosines[i]``
    hold, per random mini-batch, ||g_m - G|| / ||G|| and g_m.G / (||g_m|| ||G||);
    ``mean_error``, ``std_error`` (population std over the batches), ``rms_error``
    and ``mean_cosine`` summarise them, and ``predicted_error`` is
    sqrt(B_simple/m * (n-m)/(n-1)).  ``trace_sigma`` is the population version
    (1/n) sum_x ||g_x - G||^2.
    """
    n: int
    n_params: int
    batch_sizes: tuple
    n_batches: int
    seed: object
    gradient_norm: float
    trace_sigma: float
    noise_scale: float
    errors: tuple
    cosines: tuple
    block: int
    n_blocks: int
    notes: tuple = ()
    label: str = ""
    mean_error: np.ndarray = field(init=False, repr=False)
    std_error: np.ndarray = field(init=False, repr=False)
    rms_error: np.ndarray = field(init=False, repr=False)
    mean_cosine: np.ndarray = field(init=False, repr=False)
    predicted_error: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        summary = dict(mean_error=[e.mean() for e in self.errors],
                       std_error=[e.std() for e in self.errors],
                       rms_error=[math.sqrt(np.mean(e * e)) for e in self.errors],
                       mean_cosine=[c.mean() for c in self.cosines],
                       predicted_error=[self.predicted(m) for m in self.batch_sizes])
        for name, values in summary.items():
            object.__setattr__(self, name, np.array(values, dtype=np.float64))

    def fpc(self, m):
        """The finite-population correction (n - m)/(n - 1) for drawing without replacement."""
        return (self.n - m) / (self.n - 1) if self.n > 1 else 0.0

    def predicted(self, m):
        """The 1/sqrt(m) law: sqrt(B_simple/m * (n-m)/(n-1)), the expected RMS relative error."""
        return math.sqrt(self.noise_scale / m * self.fpc(m))

    def predicted_cosine(self, m):
        """The cosine if the noise were orthogonal to G: 1/sqrt(1 + predicted(m)^2)."""
        return 1.0 / math.sqrt(1.0 + self.predicted(m) ** 2)

    def to_dict(self):
        """Plain numbers for JSON (NaN written as None)."""
        def num(v):
            v = float(v)
            return v if math.isfinite(v) else None
        return {"label": self.label, "n": self.n, "n_params": self.n_params,
                "n_batches": self.n_batches, "seed": self.seed,
                "gradient_norm": num(self.gradient_norm), "trace_sigma": num(self.trace_sigma),
                "trace_sigma_version": "population: (1/n) sum_x ||g_x - G||^2",
                "noise_scale": num(self.noise_scale), "block": self.block,
                "n_blocks": self.n_blocks, "notes": list(self.notes),
                "batches": [{"m": m, "mean_error": num(self.mean_error[i]),
                             "std_error": num(self.std_error[i]),
                             "rms_error": num(self.rms_error[i]),
                             "predicted_error": num(self.predicted_error[i]),
                             "fpc": self.fpc(m), "mean_cosine": num(self.mean_cosine[i]),
                             "predicted_cosine": num(self.predicted_cosine(m))}
                            for i, m in enumerate(self.batch_sizes)]}

    def table(self):
        """The result as lines of text: a header, then one row per mini-batch size."""
        head = f"{self.label}: " if self.label else ""
        lines = [f"{head}{self.n} examples, |G| = {self.gradient_norm:.4g}, "
                 f"tr(Sigma) = {self.trace_sigma:.4g}, B_simple = tr(Sigma)/|G|^2 = "
                 f"{self.noise_scale:.4g}",
                 f"{'m':>6}  {'rel. error: mean':>16} {'± std':>8} {'rms':>8}  "
                 f"{'predicted':>9}  {'cosine':>7} {'predicted':>9}"]
        for i, m in enumerate(self.batch_sizes):
            lines.append(f"{m:>6}  {self.mean_error[i]:>16.4f} {self.std_error[i]:>8.4f} "
                         f"{self.rms_error[i]:>8.4f}  {self.predicted_error[i]:>9.4f}  "
                         f"{self.mean_cosine[i]:>7.4f} {self.predicted_cosine(m):>9.4f}")
        lines.append(f"predicted = sqrt(B_simple/m * (n-m)/(n-1)); {self.n_batches} random "
                     "mini-batches per m, drawn without replacement")
        return lines + list(self.notes)


def sample_batches(n, batch_sizes, n_batches, seed=None):
    """The mini-batches ``gradient_noise`` measures: for each m, an (n_batches, m)
    array of example indices, each row drawn without replacement from 0..n-1."""
    rng = np.random.default_rng(seed)
    return [np.stack([rng.choice(n, m, replace=False) for _ in range(n_batches)])
            for m in batch_sizes]


def gradient_noise(net, X, y, batch_sizes=DEFAULT_BATCH_SIZES, n_batches=100, seed=None,
                   max_bytes=DEFAULT_MAX_BYTES, label=""):
    """Measure how well mini-batches of each size m estimate the gradient; a ``NoiseResult``.

    One streamed pass over (X, y) gives G = (1/n) sum_x g_x and tr(Sigma) =
    (1/n) sum_x ||g_x - G||^2 (block statistics merged as in Chan et al., so
    no cancellation), hence B_simple = tr(Sigma)/|G|^2.  Then, for each m,
    ``n_batches`` mini-batches (``sample_batches``, seeded by ``seed``) are
    streamed the same way, g_m being the mean of its examples' rows, giving
    ||g_m - G|| / ||G|| and the cosine between g_m and G.  The kernel's rows are
    accumulated in float64; at most ``block_size(net, max_bytes)`` examples are
    in memory at once (noted in ``notes`` when that means several blocks).
    """
    if not np.isfinite(net.params).all():
        raise ValueError("the network's weights or biases are not finite; "
                         "gradients would be meaningless")
    X, y = check_data((X, y), net.sizes[0], net.sizes[-1], net.dtype, "data")
    n = len(y)
    if n == 0:
        raise ValueError("data must hold at least one example")
    batch_sizes = _check_batch_sizes(batch_sizes, n)
    n_batches = check_int(n_batches, "n_batches", minimum=1)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    block = block_size(net, max_bytes)
    n_params = net.layout.n_params

    # One pass: count, mean and sum of squared deviations, merged block by block.
    count, mean, m2 = 0, np.zeros(n_params), 0.0
    for start, stop, rows in _iter_rows(net, X, y, None, block):
        k = stop - start
        block_mean = rows.sum(axis=0) / k
        rows -= block_mean
        block_m2 = float(np.einsum("ij,ij->", rows, rows))
        delta = block_mean - mean
        total = count + k
        m2 += block_m2 + float(delta @ delta) * count * k / total
        mean += delta * (k / total)
        count = total
    G = mean
    g_norm = float(np.linalg.norm(G))
    trace_sigma = m2 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        noise_scale = float(np.float64(trace_sigma) / np.float64(g_norm) ** 2)

    errors, cosines = [], []
    for m, batches in zip(batch_sizes, sample_batches(n, batch_sizes, n_batches, seed)):
        err, cos = _batch_errors(net, X, y, batches.ravel(), m, G, block)
        errors.append(err)
        cosines.append(cos)

    n_blocks = -(-n // block)
    notes = []
    if n_blocks > 1:
        notes.append(f"streamed: per-example gradients in {n_blocks} blocks of <= {block} "
                     f"examples ({_bytes(bytes_per_example(net) * block)} each, max_bytes "
                     f"{_bytes(max_bytes)}); the {n} rows alone would take "
                     f"{_bytes(n * net.layout.n_params * net.dtype.itemsize)}")
    if g_norm == 0:
        notes.append("the full gradient G is zero: relative errors and B_simple are undefined")
    return NoiseResult(n=n, n_params=n_params, batch_sizes=tuple(batch_sizes),
                       n_batches=n_batches, seed=seed, gradient_norm=g_norm,
                       trace_sigma=trace_sigma, noise_scale=noise_scale,
                       errors=tuple(errors), cosines=tuple(cosines), block=block,
                       n_blocks=n_blocks, notes=tuple(notes), label=label)


def _batch_errors(net, X, y, flat, m, G, block):
    """Relative errors and cosines of the mini-batches flat[b*m:(b+1)*m], b = 0, 1, ...

    Streams the concatenated batches in blocks; within a block the rows of each
    batch (or of its part in the block) are summed by one ``np.add.reduceat``,
    and a batch split across blocks carries its partial sum to the next.
    """
    g_norm = np.linalg.norm(G)
    errors, cosines = [], []
    carry = np.zeros_like(G)
    for start, stop, rows in _iter_rows(net, X, y, flat, block):
        first = -(-start // m) * m                   # first batch starting in this block
        starts = np.arange(first, stop, m) - start   # where batches start in the block
        if start % m:                                 # a batch from the last block goes on
            starts = np.concatenate(([0], starts))
        sums = np.add.reduceat(rows, starts, axis=0)
        if start % m:
            sums[0] += carry
        if stop % m:                                  # the last batch goes on next block
            carry = sums[-1].copy()
            sums = sums[:-1]
        else:
            carry[:] = 0.0
        if len(sums):
            sums /= m                                 # mini-batch gradients g_m
            norms = np.sqrt(np.einsum("ij,ij->i", sums, sums))
            dots = sums @ G
            sums -= G
            with np.errstate(divide="ignore", invalid="ignore"):
                errors.append(np.sqrt(np.einsum("ij,ij->i", sums, sums)) / g_norm)
                cosines.append(dots / (norms * g_norm))
    return np.concatenate(errors), np.concatenate(cosines)


def _bytes(count):
    for unit in ("bytes", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} GiB"


def _check_batch_sizes(batch_sizes, n):
    try:
        sizes = list(batch_sizes)
    except TypeError:
        raise TypeError(f"batch_sizes must be a list of mini-batch sizes such as "
                        f"(1, 10, 100), got {batch_sizes!r}") from None
    if not sizes:
        raise ValueError("batch_sizes must hold at least one mini-batch size")
    sizes = [check_int(m, "batch_sizes", minimum=1, maximum=n) for m in sizes]
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"batch_sizes must not repeat a size, got {sizes}")
    return sizes


# -- the plot -----------------------------------------------------------------------------

def plot_noise(results, path, *, overwrite=False, title=None):
    """Plot relative error (left) and cosine (right) against m, one colour per result.

    Log-log axes for the error: the measured mean over the mini-batches (dots,
    with bars from the 16th to the 84th percentile), the RMS (open squares) and the law sqrt(B_simple/m * (n-m)/(n-1))
    (dashed line).  ``results`` is one ``NoiseResult`` or several (e.g. at
    initialisation and after training).  Refuses to replace ``path`` unless
    ``overwrite=True``.  Returns ``path``.
    """
    if isinstance(results, NoiseResult):
        results = [results]
    results = list(results)
    if not results or not all(isinstance(r, NoiseResult) for r in results):
        raise TypeError("results must be a NoiseResult or a list of them")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"path {path} is a directory, expected a file name")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(PLOT_HINT) from None

    fig = Figure(figsize=(11, 6.2), layout="constrained")
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
    fig.savefig(path, dpi=110)
    return path


# -- the command line: ``fastgd noise`` -------------------------------------------------------

def add_parser(commands):
    """Add the ``noise`` subcommand to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser(
        "noise", help="measure how noisy mini-batch gradients are (the 1/sqrt(m) law)",
        description="Compute the per-example gradients of the quadratic cost on the MNIST "
                    "training inputs, the full gradient G, the gradient noise scale "
                    "B_simple = tr(Sigma)/|G|^2, and the relative error and cosine of random "
                    "mini-batch gradients for each size m, against the prediction "
                    "sqrt(B_simple/m * (n-m)/(n-1)); at initialisation, and again after "
                    "--train-epochs epochs of SGD (m 10, eta 3.0).")
    parser.add_argument("--sizes", type=_int_list("784,30,10", minimum=1, layers=True),
                        default=[784, 30, 10], metavar="N,N,...",
                        help="neurons in each layer, input first (default 784,30,10)")
    parser.add_argument("--seed", type=_int_list("1", minimum=0, single=True),
                        help="seeds the initial weights, the training order and the "
                             "mini-batches (default: drawn and printed)")
    parser.add_argument("--batch-sizes", type=_int_list("1,10,100,1000",
                                                        minimum=1, unique=True),
                        default=list(DEFAULT_BATCH_SIZES), metavar="M,M,...",
                        help="mini-batch sizes m to measure (default 1,10,100,1000)")
    parser.add_argument("--batches", type=_int_list("100", minimum=1, single=True),
                        default=100, metavar="K",
                        help="random mini-batches per size (default 100)")
    parser.add_argument("--train-epochs", type=_int_list("1", minimum=0,
                                                         single=True),
                        default=1, metavar="E",
                        help="measure again after E epochs of SGD with m 10, eta 3.0 "
                             "(default 1; 0 measures at initialisation only)")
    parser.add_argument("--examples", type=_int_list("2000", minimum=1,
                                                     single=True),
                        metavar="N", help="use the first N training inputs (default: all 50,000)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="precision of the network and its gradients (default float32; "
                             "statistics are always accumulated in float64)")
    parser.add_argument("--max-mb", type=_int_list("256", minimum=1, single=True),
                        default=DEFAULT_MAX_BYTES // 2**20, metavar="MB",
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


def noise_command(args):
    """Run ``fastgd noise``; returns the exit status."""
    import fastgd
    from fastgd.training import SGD

    info = sys.stderr if args.json else sys.stdout
    out = None if args.no_plot else args.out
    if out is not None:
        if os.path.isdir(out):
            raise IsADirectoryError(f"--out {out} is a directory, expected a file name")
        if os.path.exists(out) and not args.overwrite:
            raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it")
        parent = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"--out {out}: no such directory {parent}")
        try:
            import matplotlib.figure  # noqa: F401  (fail now, not after the measurement)
        except ImportError:
            print(f"fastgd: error: {PLOT_HINT} (or pass --no-plot)", file=sys.stderr)
            return 2

    (X, y), _, _ = fastgd.load_mnist(dtype=args.dtype)
    if args.examples is not None:
        if args.examples > len(y):
            raise ValueError(f"--examples {args.examples} is more than the {len(y)} "
                             "training inputs")
        X, y = X[:args.examples], y[:args.examples]
    n = len(y)
    if args.sizes[0] != X.shape[1] or args.sizes[-1] <= y.max():
        raise ValueError(f"--sizes {','.join(map(str, args.sizes))} does not fit MNIST: "
                         f"the input layer needs {X.shape[1]} neurons (one per pixel) and "
                         f"the output layer at least {y.max() + 1} (one per label)")
    too_big = [m for m in args.batch_sizes if m > n]
    if too_big:
        raise ValueError(f"--batch-sizes {too_big[0]} is more than the {n} training inputs "
                         "(see --examples)")
    seed = args.seed
    if seed is None:
        seed = secrets.randbelow(2**31)
        print(f"seed {seed} (pass --seed {seed} to repeat this run)", file=info, flush=True)

    net = fastgd.Network(args.sizes, seed=seed, dtype=args.dtype)
    measure = dict(batch_sizes=args.batch_sizes, n_batches=args.batches, seed=seed,
                   max_bytes=args.max_mb * 2**20)
    results = [gradient_noise(net, X, y, label="at initialisation", **measure)]
    _report(results[-1], args.json, info)
    if args.train_epochs:
        SGD(net, (X, y), args.train_epochs, min(10, n), 3.0, verbose=False)
        epochs = f"{args.train_epochs} epoch{'s' if args.train_epochs != 1 else ''}"
        results.append(gradient_noise(net, X, y, label=f"after {epochs}", **measure))
        _report(results[-1], args.json, info)
    if args.json:
        print(json.dumps({"sizes": net.sizes, "dtype": args.dtype, "seed": seed,
                          "results": [r.to_dict() for r in results]}, indent=1))
    if out is not None:
        plot_noise(results, out, overwrite=args.overwrite)
        print(f"plot written to {out}", file=info)
    return 0


def _report(result, as_json, info):
    if not as_json:
        print("\n".join(result.table()), end="\n\n", flush=True)
    else:
        print(f"measured {result.label}", file=info, flush=True)


def _int_list(example, minimum, single=False, layers=False, unique=False):
    """An argparse type: comma-separated integers >= minimum (one, if single)."""
    def parse(text):
        try:
            values = [int(part) for part in text.split(",")]
        except ValueError:
            what = "an integer" if single else "comma-separated integers"
            raise argparse.ArgumentTypeError(f"expected {what} such as {example}, "
                                             f"got {text!r}") from None
        if single and len(values) != 1:
            raise argparse.ArgumentTypeError(f"expected one integer such as {example}, "
                                             f"got {text!r}")
        if layers and len(values) < 2:
            raise argparse.ArgumentTypeError(f"needs at least two layers (input and output), "
                                             f"such as {example}; got {text!r}")
        if min(values) < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text!r}")
        if unique and len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"must not repeat a value, got {text!r}")
        return values[0] if single else values
    return parse
