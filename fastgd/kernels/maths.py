"""The book's scalar maths, as numba functions the generated kernels inline:
sigma(z) = 1 / (1 + e^-z) (``sigmoid``, with its own vectorisable ``exp``),
the output error delta^L of each cost (BP1: ``quadratic_output_error``,
``cross_entropy_output_error``), the flush of tiny errors to zero
(``flush_tiny``), and the update's pieces on whole runs of parameters: the weight
decay of chapter 3 (``decay_rows``), group sums added to nabla
(``add_groups``) and w -> w - (eta/m) nabla applied (``apply_nabla``).
"""

import numpy as np

from .intrinsics import float_bits, float_from_bits
from .numba_cache import njit

_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its low 21 bits zero: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_ROUND = 6755399441055744.0           # 1.5 * 2**52: x + _ROUND rounds x to an integer
_EXP_TAYLOR = tuple(1.0 / np.prod(np.arange(1.0, k + 1)) for k in range(14))  # 1/k!


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def exp(x):
    """e^x in float64, within about an ulp of np.exp, in code that vectorises.

    np.exp is a call into the C library per number, which SLP cannot pack, and
    the forward pass takes one per neuron and example.  Here: x = n ln 2 + r
    with |r| <= ln(2) / 2 (n rounded with the 1.5 * 2^52 trick, ln 2 in two
    parts), e^r from its Taylor series to r^13 (the rest is below 1e-17), and
    2^n built from its bits in two halves, so that n from -1076 to 1025 is
    exact, gradual underflow included, and larger n overflows to inf.
    """
    xc = min(max(x, -746.0), 710.0)
    t = xc * 1.4426950408889634 + _ROUND
    n = t - _ROUND
    ni = float_bits(t) - float_bits(_ROUND)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = _EXP_TAYLOR[13]
    for k in range(12, -1, -1):  # Horner's rule; a constant count, so it unrolls
        p = p * r + _EXP_TAYLOR[k]
    n1 = ni >> 1
    e = p * float_from_bits((n1 + 1023) << 52) * float_from_bits((ni - n1 + 1023) << 52)
    return e if x == x else x


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def sigmoid(z):
    """1 / (1 + e^-z), in float64 whatever z's dtype (rounded where it is stored)."""
    return 1.0 / (1.0 + exp(-np.float64(z)))


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def flush_tiny(d, tiny):
    """d, or 0 where |d| < tiny (a denormal-to-be); NaN stays NaN."""
    return 0.0 if abs(d) < tiny else d


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def quadratic_output_error(a, y):
    """delta^L_j for the quadratic cost: (a - y) * sigma'(z), sigma'(z) = a (1 - a)."""
    return (a - y) * a * (1.0 - a)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def cross_entropy_output_error(a, y):
    """delta^L_j for the cross-entropy cost: a - y (the sigma'(z) of dC/da cancels)."""
    return a - y


# The cross-entropy cost of an example is -ln of a product of the outputs'
# probabilities (one logarithm per example instead of one per output).  A
# product of 0, from an output rounded to exactly 0 or 1, counts as this one:
# C_x = 708 instead of infinity, which would read as divergence.
CE_SMALLEST = float(np.finfo(np.float64).tiny)


@njit(cache=True, nogil=True, error_model="numpy")
def decay_rows(weights, sizes, r0, r1, scale, shrink):
    """w -> scale * w when shrink is 0 (L2: scale = 1 - eta lmbda / n), else
    w -> w - shrink * sgn(w) (L1: shrink = eta lmbda / n), for the weights
    leaving the input neurons r0..r1-1, counted across layers (layer 0's inputs
    first); not the biases.  scale and shrink are in the weights' dtype.

    Whole rows are done, padding included, as one contiguous run of numbers:
    a row of 30 weights is too short for the vectoriser.  The padding stays
    exactly zero (0 * scale = 0, sgn(0) = 0).  Each rule is its own loop on
    unsigned indices, and shrink * sgn(w) is written as copysign(shrink, w)
    with w = 0 kept (the same bits as with np.sign, NaN kept), so that both
    vectorise."""
    base = 0
    for i in range(len(weights)):
        n_in = sizes[i]
        lo = min(max(r0 - base, 0), n_in)
        hi = max(min(r1 - base, n_in), lo)
        base += n_in
        w = weights[i]
        stride = w.shape[1]
        run = w.reshape(n_in * stride)[lo * stride:hi * stride]
        if shrink == 0:
            for p in range(np.uint64(run.shape[0])):
                run[p] *= scale
        else:
            for p in range(np.uint64(run.shape[0])):
                v = run[p]
                r = v - np.copysign(shrink, v)
                run[p] = r if v != 0 else v


@njit(cache=True, nogil=True, error_model="numpy")
def add_groups(nabla, groups, n_groups, p0, p1):
    """nabla[p0:p1] += groups[g, p0:p1] for g = 0, 1, ..., n_groups - 1 in turn, and
    each of those buffers zeroed for its next use.  Each addition and each zeroing
    is its own loop on unsigned indices, so that both vectorise (one loop over two
    arrays that may overlap would not)."""
    n = np.uint64(p1 - p0)
    total = nabla[p0:p1]
    for g in range(n_groups):
        part = groups[g, p0:p1]
        for p in range(n):
            total[p] += part[p]
        for p in range(n):
            part[p] = 0


@njit(cache=True, nogil=True, error_model="numpy")
def apply_nabla(params, nabla, step, p0, p1):
    """params[p0:p1] += step * nabla[p0:p1], and nabla[p0:p1] zeroed for the
    next mini-batch (loops on unsigned indices, so that both vectorise)."""
    n = np.uint64(p1 - p0)
    w = params[p0:p1]
    g = nabla[p0:p1]
    for p in range(n):
        w[p] += step * g[p]
    for p in range(n):
        g[p] = 0

