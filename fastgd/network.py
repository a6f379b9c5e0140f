"""The network of sigmoid neurons, its quadratic cost and backpropagation.

Names follow Nielsen's ``network.py``: ``sizes``, ``weights``, ``biases``,
``feedforward``, ``backprop``, ``evaluate``, ``SGD``.  Data sets are pairs
``(X, y)`` of NumPy arrays: X of shape (n, sizes[0]), one input per row, and y
the integer labels; the desired output y(x) is the one-hot vector of the label.
"""

import os
import zipfile
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels
from ._validation import (check_data, check_dtype, check_inputs, check_int,
                          check_labels, check_sizes)

FILE_FORMAT = "fastgd-network-1"

# Examples per parallel block when evaluating: enough work to hide the cost
# of a parallel region, small enough to balance the threads.
_EVAL_BLOCK = 64


@dataclass(frozen=True)
class Layout:
    """Where each layer's weights, biases and per-example values live in the flat arrays.

    See ``_kernels`` for the layout; the arrays are int64 for the kernels.
    """
    sizes: np.ndarray
    stride: np.ndarray
    w_off: np.ndarray
    b_off: np.ndarray
    a_off: np.ndarray
    n_params: int

    @classmethod
    def of(cls, sizes):
        stride = [-(-n_out // _kernels.PAD) * _kernels.PAD for n_out in sizes[1:]]
        w_off, b_off, a_off = [], [], [0]
        n = 0
        for n_in, s in zip(sizes[:-1], stride):
            w_off.append(n)
            b_off.append(n + n_in * s)
            n += n_in * s + s
            a_off.append(a_off[-1] + s)
        as_int64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
        return cls(as_int64(sizes), as_int64(stride), as_int64(w_off), as_int64(b_off),
                   as_int64(a_off), n)

    def kernel_args(self):
        return self.sizes, self.stride, self.w_off, self.b_off, self.a_off

    def unpack(self, flat):
        """(biases, weights) of a flat parameter vector, as views shaped like the book's."""
        sizes = self.sizes.tolist()
        biases = [flat[self.b_off[i]:self.b_off[i] + n_out] for i, n_out in enumerate(sizes[1:])]
        weights = [flat[self.w_off[i]:self.b_off[i]].reshape(n_in, s)[:, :n_out].T
                   for i, (n_in, n_out, s) in enumerate(zip(sizes[:-1], sizes[1:],
                                                            self.stride.tolist()))]
        return biases, weights


class Network:
    """A feedforward network of sigmoid neurons, a = sigmoid(w a' + b) layer by layer.

    Parameters
    ----------
    sizes : list of int
        Neurons in each layer, input first: ``[784, 30, 10]`` is the book's
        MNIST network.
    weights, biases : list of arrays, optional
        Initial values, shaped as in the book: ``weights[l]`` is (sizes[l+1],
        sizes[l]) (so w_jk joins neuron k of one layer to neuron j of the
        next) and ``biases[l]`` is (sizes[l+1],).  Drawn from N(0, 1) when
        not given (both or neither).
    seed : int or None
        Seeds the generator that draws the initial weights and shuffles the
        training data each epoch.  The same seed gives the same initial
        weights in float32 and float64 (drawn in float64, then rounded).
    dtype : "float32" (default) or "float64"
    """

    def __init__(self, sizes, weights=None, biases=None, *, seed=None, dtype="float32"):
        self.sizes = check_sizes(sizes)
        self.num_layers = len(self.sizes)
        self.dtype = np.dtype(check_dtype(dtype))
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.layout = Layout.of(self.sizes)
        self.params = np.zeros(self.layout.n_params, dtype=self.dtype)
        if (weights is None) != (biases is None):
            raise ValueError("give both weights and biases, or neither (to draw them from N(0, 1))")
        if weights is None:
            # The book's order: all biases, then all weights.
            biases = [self.rng.standard_normal(y) for y in self.sizes[1:]]
            weights = [self.rng.standard_normal((y, x))
                       for x, y in zip(self.sizes[:-1], self.sizes[1:])]
        self.biases = biases
        self.weights = weights

    # -- parameters: views into the flat array the kernels update -----------------

    @property
    def weights(self):
        """Tuple of weight matrices, weights[l] of shape (sizes[l+1], sizes[l]).

        Each is a view of the network's parameters: writing into it
        (``net.weights[0][:] = w``) changes the network; assigning a new list
        (``net.weights = [...]``) checks the shapes and copies the values in.
        """
        return tuple(self.layout.unpack(self.params)[1])

    @weights.setter
    def weights(self, values):
        shapes = [(y, x) for x, y in zip(self.sizes[:-1], self.sizes[1:])]
        for view, value in zip(self.weights, self._check_arrays(values, shapes, "weights")):
            view[...] = value

    @property
    def biases(self):
        """Tuple of bias vectors, biases[l] of shape (sizes[l+1],); views, as weights."""
        return tuple(self.layout.unpack(self.params)[0])

    @biases.setter
    def biases(self, values):
        shapes = [(y,) for y in self.sizes[1:]]
        for view, value in zip(self.biases, self._check_arrays(values, shapes, "biases")):
            view[...] = value

    @staticmethod
    def _check_arrays(values, shapes, name):
        values = list(values)
        if len(values) != len(shapes):
            raise ValueError(f"{name} must hold {len(shapes)} arrays (one per layer after "
                             f"the input), got {len(values)}")
        checked = []
        for l, (value, shape) in enumerate(zip(values, shapes)):
            value = np.asarray(value, dtype=np.float64)
            if value.shape == shape + (1,):   # the book's column vectors
                value = value[..., 0]
            if value.shape != shape:
                raise ValueError(f"{name}[{l}] must have shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{name}[{l}] must be finite")
            checked.append(value)
        return checked

    def __repr__(self):
        return f"Network({self.sizes}, dtype={self.dtype.name!r}, seed={self.seed})"

    # -- the maths -------------------------------------------------------------------

    def feedforward(self, X):
        """The output a^L of the network for each input: a^l = sigmoid(w^l a^(l-1) + b^l).

        X is one input of shape (sizes[0],) or a batch of shape (n, sizes[0]);
        returns (sizes[-1],) or (n, sizes[-1]) accordingly.
        """
        single = np.ndim(X) == 1
        X = check_inputs(np.atleast_2d(X) if single else X, self.sizes[0], self.dtype)
        out = self._feedforward(X)
        return out[0] if single else out

    def _feedforward(self, X):
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        parallel = numba.get_num_threads() > 1 and X.shape[0] > _EVAL_BLOCK
        module = _kernels.kernels(self.sizes, self.dtype)
        kernel = module.feedforward_parallel if parallel else module.feedforward_serial
        _kernels.call(kernel, X, self.params, *self.layout.kernel_args(), out, _EVAL_BLOCK)
        return out

    def evaluate(self, X, y):
        """The number of inputs for which the network's output neuron with the
        highest activation is the label."""
        X, y = check_data((X, y), self.sizes[0], self.sizes[-1], self.dtype, "test_data")
        return self._evaluate(X, y)[0]

    def predict(self, X):
        """The network's answer for each input: the output neuron with the highest
        activation, argmax_j a^L_j (the digit, for MNIST).

        X is one input of shape (sizes[0],), for which an int is returned, or a
        batch of shape (n, sizes[0]), for which an int64 array of shape (n,) is.
        Raises ValueError if any output is not finite (weights that diverged):
        argmax would read NaN as the answer 0.
        """
        single = np.ndim(X) == 1
        X = check_inputs(np.atleast_2d(X) if single else X, self.sizes[0], self.dtype)
        if X.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        out = self._feedforward(X)
        bad = np.count_nonzero(~np.isfinite(out).all(axis=1))
        if bad:
            raise ValueError(f"{bad} of {X.shape[0]} examples have non-finite outputs, "
                             f"so they have no answer (are the network's weights finite? "
                             f"training may have diverged)")
        labels = np.argmax(out, axis=1).astype(np.int64)
        return int(labels[0]) if single else labels

    def cost(self, X, y):
        """The quadratic cost C(w, b) = 1/(2n) sum_x ||y(x) - a||^2 over the inputs X
        with labels y (y(x) the one-hot vector of the label)."""
        X, y = check_data((X, y), self.sizes[0], self.sizes[-1], self.dtype, "data")
        return self._evaluate(X, y)[1]

    def _evaluate(self, X, y):
        """(number correct, quadratic cost) on validated data."""
        if X.shape[0] == 0:
            return 0, float("nan")
        out = self._feedforward(X).astype(np.float64)
        correct = int(np.count_nonzero(np.argmax(out, axis=1) == y))
        out[np.arange(len(y)), y] -= 1.0
        return correct, float(np.sum(out * out) / (2 * len(y)))

    def backprop(self, x, y):
        """(nabla_b, nabla_w): the gradient of C_x = ||y(x) - a^L||^2 / 2 for one input x
        with label y, layer by layer, shaped like biases and weights."""
        x = check_inputs(np.reshape(x, (1, -1)) if np.ndim(x) == 1 else x,
                         self.sizes[0], self.dtype, name="x")
        if x.shape[0] != 1:
            raise ValueError(f"x must be one input of shape ({self.sizes[0]},), "
                             f"got shape {np.shape(x)}")
        if np.ndim(y) != 0:
            raise ValueError(f"y must be one integer label, got {y!r}")
        label = check_labels(np.reshape(y, 1), 1, self.sizes[-1], name="y")
        nabla_b, nabla_w = self.layout.unpack(self.gradients(x, label)[0])
        return [b.copy() for b in nabla_b], [np.ascontiguousarray(w) for w in nabla_w]

    def gradients(self, X, y):
        """Per-example gradients of C_x, one flat row per example, laid out as
        ``params`` (``layout.unpack(row)`` gives its nabla_b, nabla_w).

        Memory is n * n_params numbers; checks inputs like ``evaluate``.
        """
        X, y = check_data((X, y), self.sizes[0], self.sizes[-1], self.dtype, "data")
        nabla = np.empty((X.shape[0], self.layout.n_params), dtype=self.dtype)
        module = _kernels.kernels(self.sizes, self.dtype)
        kernel = (module.gradients_parallel if X.shape[0] > 1 and numba.get_num_threads() > 1
                  else module.gradients_serial)
        _kernels.call(kernel, X, y, self.params, *self.layout.kernel_args(), nabla)
        return nabla

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None, **options):
        """Train by mini-batch stochastic gradient descent; see ``fastgd.training.SGD``.

        ``mini_batch_size=1`` is online learning, ``None`` (or n) full-batch
        gradient descent.  Returns the per-epoch ``History``.
        """
        from .training import SGD
        return SGD(self, training_data, epochs, mini_batch_size, eta, test_data, **options)

    # -- save and load -------------------------------------------------------------

    def save(self, path, *, overwrite=False):
        """Write sizes, weights and biases to an ``.npz`` file (no pickle inside)."""
        path = os.fspath(path)
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        if not np.isfinite(self.params).all():
            raise ValueError("the network's weights are not finite (training diverged?); "
                             "refusing to save them")
        arrays = {"format": np.array(FILE_FORMAT), "sizes": np.array(self.sizes, np.int64)}
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"weights_{l}"] = np.ascontiguousarray(w)
            arrays[f"biases_{l}"] = b
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read a network written by ``save``, checking its format, shapes and values."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise ValueError(f"{path} is not a fastgd network file (not an .npz archive)")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {key: f[key] for key in f.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
            raise ValueError(f"{path} is not a readable fastgd network file "
                             f"(damaged or truncated?): {e}") from None
        if not isinstance(arrays, dict) or str(arrays.get("format", "")) != FILE_FORMAT:
            raise ValueError(f"{path} is not a fastgd network file "
                             f"(expected format {FILE_FORMAT!r})")
        try:
            sizes = check_sizes(arrays["sizes"].tolist())
            n = len(sizes) - 1
            weights = [arrays[f"weights_{l}"] for l in range(n)]
            biases = [arrays[f"biases_{l}"] for l in range(n)]
            dtypes = {a.dtype for a in weights + biases}
            if len(dtypes) != 1:
                raise ValueError(f"weights and biases have mixed dtypes {sorted(map(str, dtypes))}")
            net = cls(sizes, weights, biases, dtype=dtypes.pop())
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{path} is not a valid fastgd network file: {e}") from None
        extra = set(arrays) - {"format", "sizes"} - {f"{k}_{l}" for k in ("weights", "biases")
                                                      for l in range(n)}
        if extra:
            raise ValueError(f"{path} has unexpected entries {sorted(extra)}")
        return net
