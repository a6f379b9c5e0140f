"""Input checks shared by the public API: each error names the argument and what was expected."""

import collections.abc
import math
import numbers
import os
import sys
import warnings
import weakref

import numpy as np

DTYPES: dict[str, type[np.floating]] = {"float32": np.float32, "float64": np.float64}


class InputScaleWarning(UserWarning):
    """Inputs larger than 1: the book's pixels are scaled to [0, 1) as pixel/256."""


def stacklevel_outside_package():
    """The warnings.warn stacklevel of the first caller outside fastgd, so that a
    warning points at the user's line whichever fastgd function they called."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def check_dtype(dtype) -> type[np.floating]:
    """Return np.float32 or np.float64 for a name or numpy dtype; nothing else is accepted."""
    try:
        name = None if dtype is None else np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return DTYPES[name]


def check_bool(value, name):
    """``value`` as a bool: True, False (or NumPy's), nothing else; a string such
    as "False" is refused rather than read as true."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_int(value, name, minimum=None, maximum=None) -> int:
    """An integer (not a bool, not a float) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_positive_float(value, name) -> float:
    """A finite real number > 0 (the learning rate eta, for instance)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_sizes(sizes) -> list[int]:
    """The number of neurons in each layer: at least two layers, each a positive integer."""
    if isinstance(sizes, (str, bytes, collections.abc.Mapping, collections.abc.Set)):
        # a string is its characters, a dict its keys, a set in no set order
        raise TypeError(f"sizes must be a list of layer sizes such as [784, 30, 10], "
                        f"got {type(sizes).__name__} {sizes!r}"[:200])
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a list of layer sizes such as [784, 30, 10], "
                        f"got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least two layers (input and output), got {sizes}")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"sizes must be positive integers, got {sizes}")
    return [int(size) for size in sizes]


def check_inputs(X, n_inputs, dtype, name="X", *, warn=True) -> np.ndarray:
    """A 2-D array of finite numbers with one row per example of n_inputs values
    (any number of values if n_inputs is None).

    Returns a C-contiguous array of the network's dtype (a copy only if needed).
    With ``warn``, inputs larger than 1 give an ``InputScaleWarning``.
    """
    X = np.asarray(X)
    if not X.flags.writeable:  # a Dataset's X: its private array (see writeable_twin)
        X = writeable_twin(X)
    if n_inputs is None and X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, one row of inputs per example, "
                         f"got shape {X.shape}")
    if X.ndim != 2 or (n_inputs is not None and X.shape[1] != n_inputs):
        raise ValueError(f"{name} must have shape (n, {n_inputs}) for this network "
                         f"(one row per example), got shape {X.shape}")
    # the kinds f, i, u are floating and integer dtypes: a quick yes for the usual
    # ones (issubdtype costs about a microsecond, felt by a call on one input)
    if X.dtype.kind not in "fiu" and not (np.issubdtype(X.dtype, np.floating)
                                          or np.issubdtype(X.dtype, np.integer)):
        what = "real numbers (not complex)" if X.dtype.kind == "c" else "numbers"
        raise TypeError(f"{name} must hold {what}, got dtype {X.dtype}")
    given = X
    with np.errstate(over="ignore", invalid="ignore"):  # a number too large: said below
        X = np.ascontiguousarray(X, dtype=dtype)
    if not X.size:
        return X
    # max and min propagate NaN, so both are finite exactly when every entry is:
    # two passes over X and no temporary array, where isfinite(X).all() needs one
    # of booleans (and max is needed anyway, for the warning below); math.isfinite,
    # since np.isfinite of one number costs a microsecond
    high = X.max()
    if not (math.isfinite(high) and math.isfinite(X.min())):
        bad = np.argwhere(~np.isfinite(X))[0]
        value = given[bad[0], bad[1]]
        if np.isfinite(value):  # finite as given, too large for the network's dtype
            raise ValueError(f"{name} must be finite in {X.dtype}, but {name}[{bad[0]}, "
                             f"{bad[1]}] is {value:g}, outside {X.dtype}'s range "
                             f"(+-{np.finfo(X.dtype).max:g})")
        raise ValueError(f"{name} must be finite, but {name}[{bad[0]}, {bad[1]}] "
                         f"is {X[bad[0], bad[1]]}")
    if warn:
        warn_input_scale(name, high)
    return X


def warn_input_scale(name, largest):
    """InputScaleWarning if the largest input is above 1 (pixels not scaled)."""
    if largest > 1:
        warnings.warn(f"{name} has values up to {largest:g}, but the network expects inputs "
                      "in [0, 1]: the book scales each pixel as pixel/256 (fastgd.load_mnist "
                      "does); unscaled inputs saturate the sigmoids and train to a worse "
                      "result", InputScaleWarning, stacklevel=stacklevel_outside_package())


def check_labels(y, n, n_classes, name="y") -> np.ndarray:
    """n integer class labels in 0..n_classes-1 (the digit each input shows);
    with n_classes None, any class numbers >= 0."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels (one per row of X), "
                         f"got shape {y.shape}")
    # kinds i and u are integer dtypes: a quick yes, as in check_inputs
    if n and y.dtype.kind not in "iu" and not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)):
            raise TypeError(f"{name} must hold integer labels, got dtype {y.dtype}")
    # checked before the cast to int64, which would wrap 1e20 to a negative number;
    # by the smallest and largest label, the first one outside found only if there is one
    if n and (y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
        outside = (y < 0) if n_classes is None else (y < 0) | (y >= n_classes)
        if outside.any():
            bad = int(np.flatnonzero(outside)[0])
            expected = ("class numbers >= 0" if n_classes is None else
                        f"in 0..{n_classes - 1} (one per output neuron)")
            raise ValueError(f"{name} labels must be {expected}, but {name}[{bad}] is "
                             f"{y[bad].item()!r}")
    if n and n_classes is None and y.max() > np.iinfo(np.int64).max:
        bad = int(np.argmax(y))
        raise ValueError(f"{name} labels must be class numbers that fit in int64, but "
                         f"{name}[{bad}] is {y[bad].item()!r}")
    return np.ascontiguousarray(y, dtype=np.int64)


def read_only(array):
    """A view of ``array`` that cannot be written, nor made writable again (its
    memory is reached through a read-only buffer)."""
    view = np.frombuffer(memoryview(array).toreadonly(), dtype=array.dtype)
    view = view.reshape(array.shape)
    _TWINS[id(view)] = (weakref.ref(view, _forget_twin), array)
    return view


# Each Dataset's read-only X, by id, with the private array it shows: given
# to the kernels in its place, since numba compiles its kernels again for
# read-only arrays (a distinct type).
_TWINS: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _forget_twin(ref):
    for key, (view_ref, _) in list(_TWINS.items()):
        if view_ref is ref:
            del _TWINS[key]


def writeable_twin(X):
    """The private array of a Dataset's read-only X (``net.predict(data.X)``),
    or X itself."""
    entry = _TWINS.get(id(X))
    if entry is not None and entry[0]() is X:
        return entry[1]
    return X
