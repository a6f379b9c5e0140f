"""Gradient descent on a function C(v) of any number of variables (Nielsen, chapter 1).

Before the neural networks: we are given a cost C(v) of the variables
v = (v_1, ..., v_m) and its gradient grad C = (dC/dv_1, ..., dC/dv_m)^T, and
picture C as a valley that a ball rolls down.  Moving v by Delta v changes C by

    Delta C ≈ grad C · Delta v,

so choosing Delta v = -eta grad C, with eta > 0 the learning rate, gives
Delta C ≈ -eta ||grad C||^2 <= 0, and the update rule

    v -> v' = v - eta grad C

is gradient descent.  Within the limits of the approximation C always
decreases; when eta is too large it breaks down and Delta C > 0, which
``minimize`` reports.  Variants:

* the learning rate varied over time: ``schedule(k)`` gives eta for step k;
* the fixed step length: ||Delta v|| = epsilon, for which the move that
  decreases C most is Delta v = -eta grad C with eta = epsilon / ||grad C||;
* one variable (the chapter's exercise): v and grad C = C'(v) are numbers, and
  each step moves v downhill along the line by eta |C'(v)|, a distance
  proportional to the slope.

    from fastgd.descent import minimize
    from fastgd.valley import narrow_valley
    result = minimize(narrow_valley.C, narrow_valley.grad_C, [-1.0, 0.4], eta=0.03)
    result.v, result.costs  # near the minimum (0, 0); C along the path

When C and grad_C are both numba-jitted functions (``numba.njit``), the whole
loop runs in one jitted function that calls them, with the same results as the
Python loop; see ``minimize``.
"""

import math
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray
from numba.core.registry import CPUDispatcher

from ._validation import check_int, check_positive_float

ON_INCREASE = ("warn", "raise", "ignore")

# Why the loop stopped (the loop itself returns these codes; jitted code cannot raise
# errors that carry numbers).
_STEPS, _CONVERGED, _STATIONARY, _INCREASE, _BAD_C, _BAD_GRAD, _BAD_V, _BAD_SHAPE = range(8)
_REASONS = {_STEPS: "steps", _CONVERGED: "converged", _STATIONARY: "stationary",
            _INCREASE: "increase"}


class CostIncreaseError(RuntimeError):
    """A step gave Delta C > 0 with ``on_increase="raise"``; ``result`` is the descent
    up to and including that step."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


class CostIncreaseWarning(RuntimeWarning):
    """A step gave Delta C > 0: eta (or epsilon) is too large for this C there."""


class NonFiniteError(FloatingPointError):
    """v, C(v) or grad C(v) became NaN or infinite; ``result`` is the descent up to
    the last finite point."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, eq=False)
class Descent:
    """The ball's path down the valley.

    path:        v_0, v_1, ..., one row per point, shape (steps_taken + 1, n); n = 1 for
                 a function of one variable
    costs:       C(v_k) along the path, shape (steps_taken + 1,)
    v:           the final point v_{steps_taken} (a float for one variable)
    steps_taken: the number of steps made (fewer than asked when stopped early)
    increases:   the steps k (v_k -> v_{k+1}) where Delta C = C(v_{k+1}) - C(v_k) > 0
    converged:   ||grad C(v)|| < tol at the final v; None when no tol was given
    etas:        the eta used for each step, shape (steps_taken,); with epsilon,
                 eta_k = epsilon / ||grad C(v_k)||
    epsilon:     the fixed step length, or None
    reason:      why it stopped: "steps", "converged" (tol), "stationary" (grad C = 0
                 with epsilon) or "increase" (on_increase="raise")
    backend:     "numba" or "python": where the loop ran
    """

    path: np.ndarray
    costs: np.ndarray
    v: object
    steps_taken: int
    increases: np.ndarray
    converged: object
    etas: np.ndarray
    epsilon: object
    reason: str
    backend: str

    @property
    def C(self):
        """C at the final point."""
        return float(self.costs[-1])

    @property
    def delta_C(self):
        """Delta C of each step: C(v_{k+1}) - C(v_k), shape (steps_taken,)."""
        return np.diff(self.costs)

    @property
    def n(self):
        """The number of variables."""
        return self.path.shape[1]


# -- the loop: one source, run by Python or compiled by numba ---------------------------

def _make_loop(call_C, call_grad_C):
    """The descent loop, with C and grad_C called through call_C(C, v) and
    call_grad_C(grad_C, v) (v always a 1-D array; the callers adapt one variable).

    Fills path[k] and costs[k] and etas_used[k]; returns (k, status, count) where k is the
    last index filled (or the step where something went wrong) and count the number of
    entries written to increases.  epsilon <= 0 means "use etas"; tol <= 0 means no tol.
    """

    def loop(C, grad_C, path, costs, etas, epsilon, tol, stop_on_increase, increases,
             etas_used):
        n = path.shape[1]
        steps = etas.shape[0]
        count = 0
        v = path[0].copy()
        for k in range(steps + 1):
            path[k] = v
            c = call_C(C, v)
            costs[k] = c
            if not math.isfinite(c):
                return k, _BAD_C, count
            if k > 0 and costs[k] > costs[k - 1]:
                increases[count] = k - 1
                count += 1
                if stop_on_increase:
                    return k, _INCREASE, count
            if k == steps and tol <= 0.0:
                break
            g = call_grad_C(grad_C, v)
            if g.shape[0] != n:
                return k, _BAD_SHAPE, count
            norm2 = 0.0
            for i in range(n):
                if not math.isfinite(g[i]):
                    return k, _BAD_GRAD, count
                norm2 += g[i] * g[i]
            norm = math.sqrt(norm2)
            if tol > 0.0 and norm < tol:
                return k, _CONVERGED, count
            if k == steps:
                break
            if epsilon > 0.0:
                if norm == 0.0:
                    return k, _STATIONARY, count
                eta = epsilon / norm
            else:
                eta = etas[k]
            etas_used[k] = eta
            v = v - eta * g
            for i in range(n):
                if not math.isfinite(v[i]):
                    path[k + 1] = v
                    return k + 1, _BAD_V, count
        return steps, _STEPS, count

    return loop


def _py_C_vector(C, v):
    return float(C(v))


def _py_C_scalar(C, v):
    return float(C(float(v[0])))


_WRONG_SHAPE = np.empty(0)  # what the Python loop sees when grad_C returns a wrong shape


def _py_grad_vector(grad_C, v):
    g = np.asarray(grad_C(v), dtype=np.float64)
    return g if g.shape == v.shape else _WRONG_SHAPE


def _py_grad_scalar(grad_C, v):
    g = np.asarray(grad_C(float(v[0])), dtype=np.float64)
    return g.reshape(1) if g.ndim == 0 else _WRONG_SHAPE


@numba.njit
def _nb_C_vector(C, v):
    return C(v)


@numba.njit
def _nb_C_scalar(C, v):
    return C(v[0])


@numba.njit
def _nb_grad_vector(grad_C, v):
    return grad_C(v)


@numba.njit
def _nb_grad_scalar(grad_C, v):
    g = np.empty(1)
    g[0] = grad_C(v[0])
    return g


_LOOPS = {
    ("python", False): _make_loop(_py_C_vector, _py_grad_vector),
    ("python", True): _make_loop(_py_C_scalar, _py_grad_scalar),
    ("numba", False): numba.njit(_make_loop(_nb_C_vector, _nb_grad_vector)),
    ("numba", True): numba.njit(_make_loop(_nb_C_scalar, _nb_grad_scalar)),
}


# -- checks ------------------------------------------------------------------------------

def _is_jitted(f):
    return isinstance(f, CPUDispatcher)


def _check_start(v0) -> tuple[np.ndarray, bool]:
    """v0 as a float64 1-D array, and whether it was a number (one variable)."""
    if isinstance(v0, bool) or isinstance(v0, (str, bytes)):
        raise TypeError(f"v0 must be a number or a 1-D array of numbers, got {v0!r}")
    try:
        array = np.asarray(v0)
    except Exception:
        raise TypeError(f"v0 must be a number or a 1-D array of numbers, got {v0!r}") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"v0 must hold real numbers, got {v0!r} (dtype {array.dtype})")
    if array.ndim > 1:
        raise ValueError(f"v0 must be a number or a 1-D array (one entry per variable), "
                         f"got shape {array.shape}")
    if array.size == 0:
        raise ValueError("v0 must have at least one variable, got an empty array")
    scalar = array.ndim == 0
    array = np.array(array, dtype=np.float64, ndmin=1)
    if not np.isfinite(array).all():
        raise ValueError(f"v0 must be finite, got {v0!r}")
    return array, scalar


def _check_functions(C, grad_C, v0, scalar):
    """Call C and grad_C once at v0 and check what they return."""
    for f, name in ((C, "C"), (grad_C, "grad_C")):
        if not callable(f):
            raise TypeError(f"{name} must be a function of v, got {f!r}")
    v = float(v0[0]) if scalar else v0.copy()
    c = C(v)
    if (isinstance(c, bool) or np.ndim(c) != 0
            or not isinstance(np.asarray(c).item(), numbers.Real)):
        raise TypeError(f"C must return a real number C(v), got {c!r}")
    if not math.isfinite(c):
        raise ValueError(f"C must be finite at the starting point v0, got C(v0) = {c}")
    g = np.asarray(grad_C(v))
    if scalar:
        if g.ndim != 0:
            raise ValueError(f"grad_C must return a number C'(v) for a function of one "
                             f"variable (v0 is a number), got shape {g.shape}")
    elif g.shape != v0.shape:
        raise ValueError(f"grad_C must return an array of shape {v0.shape} (one partial "
                         f"derivative per variable of v0), got shape {g.shape}")
    if g.dtype == bool or not (np.issubdtype(g.dtype, np.integer)
                               or np.issubdtype(g.dtype, np.floating)):
        raise TypeError(f"grad_C must return real numbers, got dtype {g.dtype}")


def _schedule_etas(schedule, steps):
    """eta_k = schedule(k) for k = 0..steps-1, each a finite number > 0."""
    if not callable(schedule):
        raise TypeError(f"schedule must be a function of the step k returning eta, "
                        f"got {schedule!r}")
    etas = np.empty(steps)
    for k in range(steps):
        eta = schedule(k)
        if isinstance(eta, bool) or not isinstance(eta, numbers.Real):
            raise TypeError(f"schedule({k}) must return a number eta, got {eta!r}")
        if not (math.isfinite(eta) and eta > 0):
            raise ValueError(f"schedule({k}) must return a finite eta > 0, got {eta!r}")
        etas[k] = eta
    return etas


# -- the public function -------------------------------------------------------------------

def minimize(C: Callable[[NDArray], float], grad_C: Callable[[NDArray], ArrayLike],
             v0: ArrayLike, eta: float | None = None, steps: int = 100, *,
             epsilon: float | None = None, schedule: Callable[[int], float] | None = None,
             tol: float | None = None, on_increase: str = "warn") -> Descent:
    """Gradient descent: starting at v0, repeat v -> v - eta grad C(v) for ``steps`` steps.

    C:          the function to minimize, C(v) -> a real number
    grad_C:     its gradient, grad_C(v) -> the array (dC/dv_1, ..., dC/dv_m) of v's shape
    v0:         the starting point: a 1-D array of m numbers, or a number for a function
                of one variable (then C, grad_C take and return numbers: v -> v - eta C'(v))
    eta:        the learning rate, > 0 (default 0.1); not with schedule or epsilon
    steps:      the number of steps, an integer >= 0
    epsilon:    the fixed step length: Delta v = -epsilon grad C / ||grad C||, so that
                ||Delta v|| = epsilon (eta = epsilon / ||grad C|| at each step); stops
                early where grad C = 0, as there is no direction to go
    schedule:   a learning-rate schedule, step k -> eta_k (k = 0..steps-1), called once
                per step before the descent starts; each eta_k must be finite and > 0
    tol:        stop once ||grad C(v)|| < tol, and report ``converged``
    on_increase: what to do when a step gives Delta C > 0 (the approximation
                Delta C ≈ grad C · Delta v breaks down): "warn" (default) emits one
                CostIncreaseWarning, a RuntimeWarning, at the first such step; "raise"
                stops there with CostIncreaseError; "ignore" only records it.  Every such
                step is listed in ``Descent.increases``.  Delta C > 0 is taken literally:
                any increase, even by rounding, counts.

    Returns a ``Descent``.  A NaN or infinity in v, C(v) or grad C(v) stops the descent
    with NonFiniteError (a FloatingPointError) naming the step; its ``result`` holds the
    path up to there.

    When C and grad_C are both numba-jitted (``numba.njit``), the loop runs in one
    jitted function that calls them (compiled once per pair of functions), with the
    same results as the Python loop.  Otherwise, even when only one of them is
    jitted, the loop runs in Python.  The loop computes ||grad C|| with a plain sum
    in both, so that both give the same numbers to the last bit.
    """
    v0, scalar = _check_start(v0)
    steps = check_int(steps, "steps", minimum=0)
    if on_increase not in ON_INCREASE:
        raise ValueError(f"on_increase must be 'warn', 'raise' or 'ignore', got {on_increase!r}")
    if tol is not None:
        tol = check_positive_float(tol, "tol")
    if epsilon is not None:
        epsilon = check_positive_float(epsilon, "epsilon")
        if eta is not None or schedule is not None:
            raise TypeError("epsilon fixes the step length ||Delta v|| = epsilon, so eta = "
                            "epsilon / ||grad C|| at each step: give epsilon or eta/schedule, "
                            "not both")
        etas = np.zeros(steps)
    elif schedule is not None:
        if eta is not None:
            raise TypeError("schedule gives eta for each step: give eta or schedule, not both")
        etas = _schedule_etas(schedule, steps)
    else:
        eta = 0.1 if eta is None else check_positive_float(eta, "eta")
        etas = np.full(steps, eta)
    _check_functions(C, grad_C, v0, scalar)

    backend = "numba" if _is_jitted(C) and _is_jitted(grad_C) else "python"
    n = v0.shape[0]
    path = np.empty((steps + 1, n))
    path[0] = v0
    costs = np.empty(steps + 1)
    increases = np.empty(steps, dtype=np.int64)
    etas_used = np.empty(steps)
    loop = _LOOPS[backend, scalar]
    # Overflow to inf and NaN are caught below and reported with the step; numpy's own
    # warnings about them, from inside C or grad_C, would only come first and say less.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        k, status, count = loop(C, grad_C, path, costs, etas,
                                0.0 if epsilon is None else epsilon,
                                0.0 if tol is None else tol,
                                on_increase == "raise", increases, etas_used)

    # The last point kept: a non-finite C(v_k) or v_k is left out.  C(v0) was checked,
    # so at least v0 is kept.
    steps_taken = k - 1 if status in (_BAD_C, _BAD_V) else k
    converged = None if tol is None else status == _CONVERGED
    result = Descent(
        path=path[:steps_taken + 1].copy(), costs=costs[:steps_taken + 1].copy(),
        v=float(path[steps_taken, 0]) if scalar else path[steps_taken].copy(),
        steps_taken=steps_taken, increases=increases[:count].copy(), converged=converged,
        etas=etas_used[:steps_taken].copy(), epsilon=epsilon,
        reason=_REASONS.get(status, "error"), backend=backend)

    at = _describe(path[k], scalar)
    if status == _BAD_C:
        raise NonFiniteError(f"C(v) is {costs[k]} at step {k} ({at}): "
                             f"{_diverged(k, etas_used, epsilon)}", result)
    if status == _BAD_GRAD:
        raise NonFiniteError(f"grad C(v) is not finite at step {k} ({at}): "
                             f"{_diverged(k, etas_used, epsilon)}", result)
    if status == _BAD_V:
        raise NonFiniteError(f"v is not finite at step {k} ({at}): "
                             f"{_diverged(k, etas_used, epsilon)}", result)
    if status == _BAD_SHAPE:
        raise ValueError(f"grad_C must return an array of shape {v0.shape} at every v, "
                         f"but at step {k} ({at}) it did not")
    if count and on_increase != "ignore":
        message = _increase_message(result, int(increases[0]))
        if on_increase == "raise":
            raise CostIncreaseError(message, result)
        if count > 1:
            message += (f" ({count} steps in all gave Delta C > 0; they are listed in "
                        f"Descent.increases)")
        warnings.warn(message, CostIncreaseWarning, stacklevel=2)
    return result


def _describe(v, scalar):
    if scalar:
        return f"v = {float(v[0]):.6g}"
    return "v = (" + ", ".join(f"{x:.6g}" for x in v) + ")"


def _diverged(k, etas_used, epsilon):
    if k == 0:
        return "C or grad_C is not finite at the starting point v0"
    if epsilon is not None:
        return f"gradient descent diverged (fixed step length epsilon = {epsilon:g})"
    return f"gradient descent diverged; eta = {etas_used[k - 1]:g} is too large for this C"


def _increase_message(result, k):
    before, after = result.costs[k], result.costs[k + 1]
    change = f"C went from {before:.6g} to {after:.6g}"
    if result.epsilon is not None:
        return (f"Delta C > 0 at step {k} (v_{k} -> v_{k + 1}): the fixed step length "
                f"epsilon = {result.epsilon:g} is too large this close to the minimum of C "
                f"(||grad C|| = {result.epsilon / result.etas[k]:.3g}); the approximation "
                f"Delta C ≈ grad C · Delta v breaks down ({change})")
    return (f"Delta C > 0 at step {k} (v_{k} -> v_{k + 1}): eta = {result.etas[k]:g} is too "
            f"large for this C; the approximation Delta C ≈ grad C · Delta v breaks down "
            f"({change})")
