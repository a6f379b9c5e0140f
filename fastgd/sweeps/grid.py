"""The grid of a sweep: its points, one dict of POINT_COLUMNS each, in grid order."""

import itertools

import numpy as np

from .._validation import DTYPES

# What a grid may vary; "hidden" is a short way to give "sizes".
GRID_KEYS = ("sizes", "hidden", "eta", "mini_batch_size", "seed", "epochs", "dtype")

# The parameters of a point, in the tables' column order.
POINT_COLUMNS = ("sizes", "eta", "mini_batch_size", "seed", "epochs", "dtype")


def grid_points(grid, training_data, eval_data, *, epochs=30, eta=3.0, sizes=None,
                mini_batch_size=10, seed=0, dtype="float32"):
    """The points of ``grid`` (see ``sweep``), in grid order: one dict of
    POINT_COLUMNS each, ``hidden`` turned into ``sizes``, the other keywords
    filling in what the grid does not vary."""
    fixed = dict(epochs=epochs, eta=eta, sizes=sizes, mini_batch_size=mini_batch_size,
                 seed=seed, dtype=dtype)
    if not isinstance(grid, dict):
        raise TypeError(f"grid must be a dict of lists, such as {{'eta': [1, 3]}}, got "
                        f"{type(grid).__name__}")
    unknown = sorted(set(grid) - set(GRID_KEYS), key=str)
    if unknown:
        raise ValueError(f"grid keys must be among {', '.join(GRID_KEYS)}; got {unknown}")
    if "sizes" in grid and "hidden" in grid:
        raise ValueError("grid gives both sizes and hidden: give one (hidden sizes are "
                         "sizes without the input and output layers)")
    for key, values in grid.items():
        if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
            raise TypeError(f"grid[{key!r}] must be a list of values, got {values!r}")
        if len(list(values)) == 0:
            raise ValueError(f"grid[{key!r}] is empty: give at least one value")
    n_in = _shape(training_data, "training_data")[0]
    n_out = 1 + max(_max_label(training_data, "training_data"),
                    _max_label(eval_data, "eval_data"))
    if fixed.get("sizes") is None:
        fixed["sizes"] = [n_in, 30, n_out]
    keys = list(grid)
    points = []
    for values in itertools.product(*(list(grid[key]) for key in keys)):
        point = {**fixed, **dict(zip(keys, values))}
        if "hidden" in point:
            hidden = point.pop("hidden")
            hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
            point["sizes"] = [n_in, *hidden, n_out]
        point = plain({key: point[key] for key in POINT_COLUMNS})
        point["dtype"] = _dtype_name(point["dtype"])
        points.append(point)
    return points


def _shape(data, name):
    try:
        X, y = data
        return X.shape[1], len(y)
    except (TypeError, ValueError, AttributeError, IndexError):
        raise TypeError(f"{name} must be a pair (X, y) of arrays, X of shape (n, inputs)") \
            from None


def _max_label(data, name):
    _shape(data, name)
    y = data[1]
    return int(np.max(y)) if len(y) else 0


def _dtype_name(dtype):
    """"float32" for np.float32 too, so that the tables hold names; anything else
    is left for the point's run to refuse."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        return dtype
    return name if name in DTYPES else dtype


def plain(value):
    """numpy scalars as Python numbers, so that the table's JSON is plain."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value
