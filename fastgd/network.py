"""The network of sigmoid neurons, its cost (quadratic, or cross-entropy) and backpropagation.

Names follow Nielsen's ``network.py``: ``sizes``, ``weights``, ``biases``,
``feedforward``, ``backprop``, ``evaluate`` (``SGD`` is added by the public
``fastgd.Network``, in ``fastgd.trainable``: the model knows nothing of
training; its file format is ``fastgd.network_file``).  Data sets are pairs
``(X, y)`` of NumPy arrays: X of shape (n, sizes[0]), one input per row, and y
the integer labels; the desired output y(x) is the one-hot vector of the label.
"""

import contextlib
import functools
import math
import os
import threading
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numba
import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import config, kernels
from ._files import StrPath
from .dataset import Dataset, check_data, data_pair
from .evaluation import PINNED, Evaluation
from .layout import MAX_PARAMS, Layout  # noqa: F401 (fastgd.network.MAX_PARAMS: where it was)
from .network_file import COSTS, DEFAULTS, INITS, read_network, write_network
from ._validation import (check_bool, check_dtype, check_inputs, check_int,
                          check_labels, check_sizes)

REGULARIZATIONS = ("L2", "L1")
# Taken only to start training a network, so that two threads cannot both start.
_START_TRAINING = threading.Lock()


def _not_while_training(method):
    """Refuse ``method`` (RuntimeError) while another thread trains the network:
    it would read (or write) weights that the training kernels are changing.

    The call registers itself in ``_readers`` before it looks at ``_trainer``,
    and training sets ``_trainer`` before it looks at ``_readers`` (see
    ``Network._training``): whichever starts second sees the other and is
    refused.  A list's append and pop are atomic, so readers need no lock and
    any number of them may run at once."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        readers = self._readers
        readers.append(None)
        try:
            trainer = self._trainer
            if trainer is not None and trainer != threading.get_ident():
                raise RuntimeError(f"{method.__name__}: this network is being trained in "
                                   "another thread; wait for its SGD to return (or copy "
                                   "the network with copy.deepcopy before training it)")
            return method(self, *args, **kwargs)
        finally:
            readers.pop()
    return guarded

# Network.load gives back the class it is called on (fastgd.Network, with SGD).
_N = TypeVar("_N", bound="Network")


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
        next) and ``biases[l]`` is (sizes[l+1],).  Drawn when not given
        (both or neither), as ``init`` says.
    seed : int or None
        Seeds the generator that draws the initial weights and shuffles the
        training data each epoch.  The same seed gives the same initial
        weights in float32 and float64 (drawn in float64, then rounded).
    dtype : "float32" (default) or "float64"
    cost : "quadratic" (default) or "cross-entropy"
        The cost C_x training minimises: ||y(x) - a^L||^2 / 2 (chapter 1), or
        -sum_j [y_j ln a^L_j + (1 - y_j) ln(1 - a^L_j)] (chapter 3), whose
        output error delta^L = a^L - y has no sigma'(z^L) factor, so that
        saturated wrong outputs still learn fast.  ``cost_function`` holds it.
    init : "large" (default) or "scaled"
        How drawn weights are drawn: N(0, 1) (chapter 1), or N(0, 1/n_in) for
        a neuron with n_in inputs (chapter 3: z then has a standard deviation
        about 1, not sqrt(n_in), so hidden neurons do not start saturated).
        Biases are N(0, 1) either way.  The draws are the same numbers, the
        scaled weights divided by sqrt(n_in), as network2.py does.

    Threads
    -------
    ``feedforward``, ``predict``, ``evaluate``, ``evaluation``, ``cost``,
    ``backprop``, ``gradients`` and ``save`` may run in several threads at once
    on one network: each reads the parameters and writes only arrays of its
    own.  Training (``SGD``, ``resume``) changes the parameters in place, so
    it is exclusive: while one thread trains a network, an ``SGD`` call on it
    from any thread, and any of the calls above (or assigning ``weights`` or
    ``biases``) from another thread, raise RuntimeError; an ``SGD`` call
    started while another thread is inside one of those calls is refused the
    same way.  Different networks train in parallel freely (copy one with
    ``copy.deepcopy`` to train the copy).
    """

    def __init__(self, sizes: Sequence[int], weights: Iterable[ArrayLike] | None = None,
                 biases: Iterable[ArrayLike] | None = None, *, seed: int | None = None,
                 dtype: DTypeLike = "float32", cost: str = "quadratic",
                 init: str = "large") -> None:
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(map(repr, COSTS))}, "
                             f"got {cost!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, "
                             f"got {init!r}")
        self.cost_function, self.init = cost, init
        self.sizes = check_sizes(sizes)
        self.num_layers = len(self.sizes)
        self.dtype = np.dtype(check_dtype(dtype))
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.layout = Layout.of(self.sizes)
        self._modules: dict = {}  # the compiled kernels by what picks them: see _kernel
        # the thread training the network, if any (see _training)
        self._trainer: int | None = None
        self._readers: list = []  # one entry per call in progress that reads the parameters
        needed = self.layout.n_params * self.dtype.itemsize
        if needed > _physical_memory():
            raise ValueError(f"sizes {self.sizes}: a network of {self.layout.n_params:,} "
                             f"parameters needs {needed / 2**30:.1f} GiB, more than this "
                             f"machine's {_physical_memory() / 2**30:.1f} GiB of memory")
        try:
            self.params = kernels.aligned_zeros(self.layout.n_params, self.dtype)
        except MemoryError:
            raise ValueError(f"sizes {self.sizes}: not enough memory for a network of "
                             f"{self.layout.n_params:,} parameters ({needed / 2**30:.1f} "
                             "GiB)") from None
        self.source: str | None = None  # the file it was loaded from, if any
        if (weights is None) != (biases is None):
            raise ValueError("give both weights and biases, or neither (to draw them from N(0, 1))")
        if weights is None or biases is None:
            # The book's order: all biases, then all weights.
            biases = [self.rng.standard_normal(y) for y in self.sizes[1:]]
            drawn = [self.rng.standard_normal((y, x))
                     for x, y in zip(self.sizes[:-1], self.sizes[1:])]
            if init == "scaled":
                drawn = [w / np.sqrt(w.shape[1]) for w in drawn]
            weights = drawn
        self.biases = biases
        self.weights = weights

    # -- parameters: views into the flat array the kernels update -----------------

    @property
    def weights(self) -> tuple[NDArray[np.floating], ...]:
        """Tuple of weight matrices, weights[l] of shape (sizes[l+1], sizes[l]).

        Each is a view of the network's parameters: writing into it
        (``net.weights[0][:] = w``) changes the network; assigning a new list
        (``net.weights = [...]``) checks the shapes and copies the values in.
        """
        return tuple(self.layout.unpack(self.params)[1])

    @weights.setter
    @_not_while_training
    def weights(self, values: Iterable[ArrayLike]) -> None:
        shapes = [(y, x) for x, y in zip(self.sizes[:-1], self.sizes[1:])]
        for view, value in zip(self.weights,
                               self._check_arrays(values, shapes, "weights", self.dtype)):
            view[...] = value

    @property
    def biases(self) -> tuple[NDArray[np.floating], ...]:
        """Tuple of bias vectors, biases[l] of shape (sizes[l+1],); views, as weights."""
        return tuple(self.layout.unpack(self.params)[0])

    @biases.setter
    @_not_while_training
    def biases(self, values: Iterable[ArrayLike]) -> None:
        shapes = [(y,) for y in self.sizes[1:]]
        for view, value in zip(self.biases,
                               self._check_arrays(values, shapes, "biases", self.dtype)):
            view[...] = value

    @staticmethod
    def _check_arrays(values, shapes, name, dtype):
        values = list(values)
        if len(values) != len(shapes):
            raise ValueError(f"{name} must hold {len(shapes)} arrays (one per layer after "
                             f"the input), got {len(values)}")
        checked = []
        for l, (value, shape) in enumerate(zip(values, shapes)):
            value = np.asarray(value)
            # complex values would lose their imaginary part in the cast below,
            # strings would be parsed as numbers: both are refused
            if value.dtype.kind not in "fiuO":
                what = "real numbers (not complex)" if value.dtype.kind == "c" else "numbers"
                raise TypeError(f"{name}[{l}] must hold {what}, got dtype {value.dtype}")
            try:
                value = value.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"{name}[{l}] must hold real numbers") from None
            if value.shape == shape + (1,):   # the book's column vectors
                value = value[..., 0]
            if value.shape != shape:
                raise ValueError(f"{name}[{l}] must have shape {shape}, got {value.shape}")
            # checked after the cast: 1e39 is finite in float64, inf in float32
            with np.errstate(over="ignore"):
                value = value.astype(dtype)
            if not np.isfinite(value).all():
                raise ValueError(f"{name}[{l}] must be finite in {np.dtype(dtype).name}")
            checked.append(value)
        return checked

    def __getstate__(self):
        # the generated kernels are modules, which pickle cannot carry: a copy
        # looks them up again
        state = self.__dict__.copy()
        state["_modules"] = {}
        # a copy is not being trained, nor read, whatever the original is doing
        state["_trainer"], state["_readers"] = None, []
        return state

    @contextlib.contextmanager
    def _training(self):
        """Hold the network for training in this thread: RuntimeError if it is
        being trained already (by another thread, or by a call of this one that
        has not returned) or another thread is reading it (see the class
        docstring, Threads).  Never waits."""
        with _START_TRAINING:
            if self._trainer is not None:
                raise RuntimeError("this network is being trained already (by another "
                                   "thread, or by an SGD call that has not returned); one "
                                   "network trains in one SGD call at a time (copy it with "
                                   "copy.deepcopy to train a copy)")
            self._trainer = threading.get_ident()
        try:
            if self._readers:
                raise RuntimeError("this network is in use by another thread (predict, "
                                   "evaluate, ...); it cannot be trained until that call "
                                   "returns")
            yield
        finally:
            self._trainer = None

    def __repr__(self) -> str:
        options = "".join(f", {name}={value!r}" for name, value in
                          (("cost", self.cost_function), ("init", self.init))
                          if value != DEFAULTS[name])
        if self.source is not None:
            return (f"Network({self.sizes}, dtype={self.dtype.name!r}{options}, "
                    f"loaded from {self.source!r})")
        return f"Network({self.sizes}, dtype={self.dtype.name!r}{options}, seed={self.seed})"

    # -- the maths -------------------------------------------------------------------

    @_not_while_training
    def feedforward(self, X: ArrayLike) -> NDArray[np.floating]:
        """The output a^L of the network for each input: a^l = sigmoid(w^l a^(l-1) + b^l).

        X is one input of shape (sizes[0],) or a batch of shape (n, sizes[0]);
        returns (sizes[-1],) or (n, sizes[-1]) accordingly.
        """
        X = np.asarray(X)  # once: np.ndim and np.atleast_2d would each convert X again
        single = X.ndim == 1
        X = check_inputs(X[np.newaxis] if single else X, self.sizes[0], self.dtype)
        out = self._feedforward(X)
        return out[0] if single else out

    def _feedforward(self, X):
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        # threads only for more than one block; asked in that order because
        # numba.get_num_threads() costs a microsecond, felt on one example
        parallel = X.shape[0] > config.EVAL_BLOCK and numba.get_num_threads() > 1
        kernel = self._kernel("feedforward_parallel" if parallel else "feedforward_serial",
                              self.cost_function)
        kernels.call(kernel, X, self.params, self.layout.arrays, out, config.EVAL_BLOCK)
        return out

    @_not_while_training
    def evaluate(self, X: ArrayLike | Dataset, y: ArrayLike | None = None) -> int:
        """The number of inputs for which the network's output neuron with the
        highest activation is the label.  ``X`` may be a ``Dataset`` (then no y).

        ValueError if any output is NaN or infinite (the weights have
        diverged): such an output has no highest neuron to count.
        """
        result = self.evaluation(X, y, name="test_data")
        result.check_finite()
        return result.correct

    @_not_while_training
    def predict(self, X: ArrayLike | Dataset) -> int | NDArray[np.int64]:
        """The network's answer for each input: the output neuron with the highest
        activation, argmax_j a^L_j (the digit, for MNIST).

        X is one input of shape (sizes[0],), for which an int is returned, or a
        batch of shape (n, sizes[0]) (or a ``Dataset``, whose labels are not
        used), for which an int64 array of shape (n,) is.
        Raises ValueError if any output is not finite (weights that diverged):
        argmax would read NaN as the answer 0.
        """
        if isinstance(X, Dataset):
            X = X.X
        X = np.asarray(X)  # once: np.ndim and np.atleast_2d would each convert X again
        single = X.ndim == 1
        X = check_inputs(X[np.newaxis] if single else X, self.sizes[0], self.dtype)
        if X.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        out = self._feedforward(X)
        # a sum is finite only if every term is: one reduction, where counting
        # the rows takes four (microseconds on one example); counted when needed
        bad = 0 if math.isfinite(out.sum()) else np.count_nonzero(~np.isfinite(out).all(axis=1))
        if bad:
            raise ValueError(f"{bad} of {X.shape[0]} examples have non-finite outputs, "
                             f"so they have no answer (are the network's weights finite? "
                             f"training may have diverged)")
        labels = out.argmax(axis=1).astype(np.int64)
        return int(labels[0]) if single else labels

    @_not_while_training
    def cost(self, X: ArrayLike | Dataset, y: ArrayLike | None = None, lmbda: float = 0.0,
             regularization: str = "L2") -> float:
        """The network's cost over the inputs X with labels y (y(x) the one-hot
        vector of the label): quadratic, C = 1/(2n) sum_x ||y(x) - a||^2, or
        cross-entropy, C = -(1/n) sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)].
        ``X`` may be a ``Dataset`` (then no y).

        With ``lmbda`` > 0, the regularization term training with that lmbda
        adds, n being the number of inputs here: (lmbda/2n) sum_w w^2 for "L2",
        (lmbda/n) sum_w |w| for "L1" (weights only, not biases)."""
        check_regularization(lmbda, regularization)
        result = self.evaluation(X, y)
        if lmbda == 0.0 or not np.isfinite(result.cost):
            return result.cost
        return result.cost + regularization_term(self.weights, lmbda, regularization,
                                                 result.total)

    @_not_while_training
    def evaluation(self, X: ArrayLike | Dataset, y: ArrayLike | None = None, *,
                   name: str = "data") -> Evaluation:
        """Everything one forward pass over (X, y) tells: an ``Evaluation`` with the
        number correct, the network's cost, the inputs whose outputs are not finite,
        and the output neurons pinned at 0 or 1 whatever the input (saturated).

        The cross-entropy terms are -ln a_j where y_j = 1 and -ln(1 - a_j) where
        y_j = 0 (the other term is 0 ln 0, taken as 0, which is what
        network2.py's np.nan_to_num does); an output rounded to exactly 0 or 1
        against its desired value counts as -ln of the smallest float64
        (about 708) instead of infinity, so that a saturated output does not
        read as a diverged network.  ``X`` may be a ``Dataset`` (then no y)."""
        X, y = check_data(data_pair(X, y), self.sizes[0], self.sizes[-1], self.dtype, name)
        return self._evaluation(X, y)

    def _evaluation(self, X, y):
        """evaluation() of data already checked and in the network's dtype (the
        training loop checks its data once, not after every epoch)."""
        if X.shape[0] == 0:
            return Evaluation(0, 0, float("nan"), 0, 0, self.cost_function)
        out = self._feedforward(X).astype(np.float64)
        finite = np.isfinite(out).all(axis=1)
        correct = int(np.count_nonzero((np.argmax(out, axis=1) == y) & finite))
        low = np.mean(out < PINNED, axis=0) >= 1 - PINNED
        high = np.mean(out > 1 - PINNED, axis=0) >= 1 - PINNED
        pinned = int(np.count_nonzero(low | high))
        if self.cost_function == "cross-entropy":
            # the probability of each desired output: a_j where y_j = 1, 1 - a_j where 0
            rows = np.arange(len(y))
            out = 1.0 - out
            out[rows, y] = 1.0 - out[rows, y]
            with np.errstate(invalid="ignore"):
                terms = -np.log(np.maximum(out, np.finfo(np.float64).tiny))
            cost = float(np.sum(terms) / len(y))
        else:
            out[np.arange(len(y)), y] -= 1.0
            cost = float(np.sum(out * out) / (2 * len(y)))
        return Evaluation(correct, len(y), cost, int(np.count_nonzero(~finite)), pinned,
                          self.cost_function)

    def _kernel(self, name, cost="quadratic"):
        """The compiled kernel `name` of this network's generated kernels for `cost`
        (``kernels.usable_kernels``: the specialised ones, or the generic ones
        while those are not compiled; the generic feedforward and gradients are
        their serial ones, which compile in a fraction of the parallel ones' time
        and give the same bits; ``warm_up`` compiles the feedforward; until it is
        compiled, the starter kernel's feedforward if that one is), found once
        per network: finding it anew (the
        sizes and panel width hashed, the module table read under its lock) takes
        microseconds, as long as the arithmetic of a call on one example.  Kept by
        what picks the module besides the sizes, so that a change of any of it finds
        the right one: the dtype, the cost, the panel width (``config.PANEL``,
        read at every call) and the settings the generated code is written from
        (``kernels.settings``: config.CHAINS, which changes the bits, and others).
        A generic kernel is not kept: the specialised one takes over once it is
        compiled.  Holds no parameters: the kernels are
        given ``params`` afresh at every call."""
        key = (self.dtype, cost, kernels.panel_width(self.dtype.itemsize), kernels.settings(),
               name)
        kernel = self._modules.get(key)
        if kernel is None:
            module = kernels.usable_kernels(self.sizes, self.dtype, cost, [name])
            if module.generic:
                name = name.replace("_parallel", "_serial")
                if name == "feedforward_serial" and not kernels.ready(module, [name], self.dtype):
                    # a first run trains on the starter kernel: evaluate on it too
                    # rather than compile the generic feedforward for seconds
                    starter = kernels.starter.kernels(cost)
                    if kernels.ready(starter, [name], self.dtype):
                        return starter.feedforward_serial
                return getattr(module, name)
            kernel = self._modules[key] = getattr(module, name)
        return kernel

    def warm_up(self, generic: bool = False) -> None:
        """Compile (or load from numba's disk cache) the evaluation kernels now,
        so that no later timing counts it; with generic, the generic kernels'
        serial one instead (``kernels.generic_kernels``)."""
        if check_bool(generic, "generic"):
            module = kernels.generic_kernels(self.sizes, self.cost_function)
            compiled: tuple = (module.feedforward_serial,)
        else:
            module = kernels.kernels(self.sizes, self.dtype, self.cost_function)
            compiled = (module.feedforward_serial, module.feedforward_parallel)
        for kernel in compiled:
            kernels.call(kernel, np.zeros((0, self.sizes[0]), self.dtype), self.params,
                          self.layout.arrays, np.zeros((0, self.sizes[-1]), self.dtype),
                          config.EVAL_BLOCK)

    @_not_while_training
    def backprop(self, x: ArrayLike, y: int
                 ) -> tuple[list[NDArray[np.floating]], list[NDArray[np.floating]]]:
        """(nabla_b, nabla_w): the gradient of C_x (||y(x) - a^L||^2 / 2, or the
        cross-entropy) for one input x with label y, layer by layer, shaped like
        biases and weights: new arrays at every call (views of one new buffer for
        the nabla_b and one for the nabla_w)."""
        x = np.asarray(x)  # once, as in feedforward
        x = check_inputs(x[np.newaxis] if x.ndim == 1 else x, self.sizes[0], self.dtype,
                         name="x")
        if x.shape[0] != 1:
            raise ValueError(f"x must be one input of shape ({self.sizes[0]},), "
                             f"got shape {np.shape(x)}")
        label = np.asarray(y)  # once: np.ndim and np.reshape would each convert y again
        if label.ndim != 0:
            raise ValueError(f"y must be one integer label, got {y!r}")
        label = check_labels(label.reshape(1), 1, self.sizes[-1], name="y")
        n_biases, n_weights, _ = self.layout.book
        nabla_b, nabla_w = np.empty(n_biases, self.dtype), np.empty(n_weights, self.dtype)
        kernels.call(self._kernel("backprop", self.cost_function), x, label, self.params,
                      self.layout.arrays, nabla_b, nabla_w)
        return self.layout.unpack_book(nabla_b, nabla_w)

    @_not_while_training
    def gradients(self, X: ArrayLike, y: ArrayLike) -> NDArray[np.floating]:
        """Per-example gradients of C_x, one flat row per example, laid out as
        ``params`` (``layout.unpack(row)`` gives its nabla_b, nabla_w).

        Memory is n * n_params numbers; checks inputs like ``evaluate``.
        """
        X, y = check_data((X, y), self.sizes[0], self.sizes[-1], self.dtype, "data")
        nabla = np.empty((X.shape[0], self.layout.n_params), dtype=self.dtype)
        kernel = self._kernel("gradients_parallel" if X.shape[0] > 1
                              and numba.get_num_threads() > 1 else "gradients_serial",
                              self.cost_function)
        kernels.call(kernel, X, y, self.params, self.layout.arrays, nabla)
        return nabla

    # -- save and load -------------------------------------------------------------

    @_not_while_training
    def save(self, path: StrPath, *, overwrite: bool = False) -> None:
        """Write sizes, weights and biases to an ``.npz`` file (no pickle inside).

        The file is written beside ``path`` and renamed over it once complete, so a
        failed or interrupted save never leaves a damaged file at ``path``.
        """
        write_network(path, self, overwrite=check_bool(overwrite, "overwrite"))

    @classmethod
    def load(cls: type[_N], path: StrPath) -> _N:
        """Read a network written by ``save``, checking its format, shapes and values.

        Safe on untrusted files: each member's header is checked against ``sizes``
        before any data is read, so a crafted file cannot make it allocate more
        than the network it describes; every problem is one ValueError.
        """
        net, _ = read_network(path, cls)
        return net


def _physical_memory():
    """Bytes of memory in this machine (unbounded where the system cannot say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return float("inf")


def check_regularization(lmbda: float, regularization: str) -> float:
    """lmbda as a float >= 0; ValueError naming the argument otherwise."""
    if regularization not in REGULARIZATIONS:
        raise ValueError(f"regularization must be {' or '.join(map(repr, REGULARIZATIONS))}, "
                         f"got {regularization!r}")
    try:
        value = float(lmbda)
    except (TypeError, ValueError):
        raise ValueError(f"lmbda must be a number >= 0, got {lmbda!r}") from None
    if not (np.isfinite(value) and value >= 0.0) or isinstance(lmbda, bool):
        raise ValueError(f"lmbda must be a finite number >= 0, got {lmbda!r}")
    return value


def regularization_term(weights: Iterable[NDArray], lmbda: float, regularization: str,
                        n: int) -> float:
    """(lmbda/2n) sum w^2 (L2) or (lmbda/n) sum |w| (L1) over the weights, in float64."""
    if regularization == "L2":
        return 0.5 * lmbda / n * sum(float(np.sum(np.square(w, dtype=np.float64)))
                                     for w in weights)
    return lmbda / n * sum(float(np.sum(np.abs(w), dtype=np.float64)) for w in weights)
