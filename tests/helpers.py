"""Plain helpers the tests import (`from helpers import ...`); fixtures live in conftest.py."""

import numba
import numpy as np
import pytest


def random_data(sizes, n, seed=0, zeros=0.5):
    """n inputs in [0, 1) with about `zeros` of the entries exactly zero (MNIST-like),
    and integer labels for the sizes[-1] output neurons."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, sizes[0]))
    X[rng.random(X.shape) < zeros] = 0.0
    y = rng.integers(0, sizes[-1], n)
    return X, y


def book_weights(net):
    """The network's weights and biases as float64 arrays, shaped as the book's."""
    return ([np.array(w, np.float64) for w in net.weights],
            [np.array(b, np.float64) for b in net.biases])


two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="needs numba to allow 2 threads")
