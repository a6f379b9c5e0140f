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

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ._validation import check_int
from .dataset import check_data
from .network import Network

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_BATCH_SIZES = (1, 10, 100, 1000)


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


def gradient_noise(net: Network, X: ArrayLike, y: ArrayLike,
                   batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_batches: int = 100,
                   seed: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES, label: str = "",
                   progress: Callable[..., object] | None = None) -> NoiseResult:
    """Measure how well mini-batches of each size m estimate the gradient; a ``NoiseResult``.

    One streamed pass over (X, y) gives G = (1/n) sum_x g_x and tr(Sigma) =
    (1/n) sum_x ||g_x - G||^2 (block statistics merged as in Chan et al., so
    no cancellation), hence B_simple = tr(Sigma)/|G|^2.  Then, for each m,
    ``n_batches`` mini-batches (``sample_batches``, seeded by ``seed``) are
    streamed the same way, g_m being the mean of its examples' rows, giving
    ||g_m - G|| / ||G|| and the cosine between g_m and G.  The kernel's rows are
    accumulated in float64; at most ``block_size(net, max_bytes)`` examples are
    in memory at once (noted in ``notes`` when that means several blocks).

    ``progress``, if given, is called after each block with a dict: ``stage``
    ("full gradient", then "mini-batches"), ``m`` (None for the full gradient),
    ``examples`` done and ``of`` (how many this stage streams), ``seconds``
    since the call began.  A whole MNIST training set takes tens of seconds.
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
    began = time.perf_counter()

    def report(stage, m, examples, of):
        if progress is not None:
            progress({"stage": stage, "m": m, "examples": examples, "of": of,
                      "seconds": time.perf_counter() - began})

    count, mean, m2 = 0, np.zeros(n_params), 0.0
    for start, stop, rows in _iter_rows(net, X, y, None, block):
        report("full gradient", None, stop, n)
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
        err, cos = _batch_errors(net, X, y, batches.ravel(), m, G, block,
                                 lambda done, of, m=m: report("mini-batches", m, done, of))
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


def _batch_errors(net, X, y, flat, m, G, block, report=None):
    """Relative errors and cosines of the mini-batches flat[b*m:(b+1)*m], b = 0, 1, ...

    Streams the concatenated batches in blocks; within a block the rows of each
    batch (or of its part in the block) are summed by one ``np.add.reduceat``,
    and a batch split across blocks carries its partial sum to the next.
    """
    g_norm = np.linalg.norm(G)
    errors, cosines = [], []
    carry = np.zeros_like(G)
    for start, stop, rows in _iter_rows(net, X, y, flat, block):
        if report is not None:
            report(stop, len(flat))
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

