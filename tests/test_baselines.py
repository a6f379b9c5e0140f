"""The benchmark baselines in benchmarks/baselines.py run the book's algorithm.

A speed comparison means something only if every side does the same work: these
check that each baseline's epoch ends with NumpyMatrix's weights, from the same
start, in the same order.  JAX's test is skipped where JAX is not installed
(pip install 'fastgd[jax]').
"""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from baselines import JaxScan, NetworkPy, NumpyMatrix  # noqa: E402

SIZES = [20, 7, 3]
N = 200
ETA = 3.0


def start(dtype, seed=0):
    """Random weights and biases, MNIST-like inputs in [0, 1), labels and an order."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((n_out, n_in)).astype(dtype)
               for n_in, n_out in zip(SIZES[:-1], SIZES[1:])]
    biases = [rng.standard_normal(n_out).astype(dtype) for n_out in SIZES[1:]]
    X = rng.random((N, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], N)
    return weights, biases, X, y, rng.permutation(N)


def numpy_epoch(dtype, m):
    weights, biases, X, y, order = start(dtype)
    net = NumpyMatrix(weights, biases)
    net.epoch(X, y, order, m, ETA)
    return net, (weights, biases, X, y, order)


def assert_same(got, want, tolerance):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance)


def test_network_py_matches_numpy_matrix():
    """The per-example transcription sums the same gradients as the matrix form."""
    want, (weights, biases, X, y, order) = numpy_epoch(np.float64, 10)
    net = NetworkPy(weights, biases)
    net.epoch(X, y, order, 10, ETA)
    assert_same(net.weights, want.weights, 1e-12)
    assert_same([b.ravel() for b in net.biases], want.biases, 1e-12)


# m=30 leaves a trailing mini-batch of 20: JaxScan's extra step with its own m.
@pytest.mark.parametrize("m", [10, 30])
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_jax_matches_numpy_matrix(dtype, tolerance, m):
    pytest.importorskip("jax")
    want, (weights, biases, X, y, order) = numpy_epoch(dtype, m)
    net = JaxScan(weights, biases)
    net.epoch(net.prepare(X, y, order, m), ETA)
    assert_same(net.weights, want.weights, tolerance)
    assert_same(net.biases, want.biases, tolerance)
    # the epoch moved the weights: matching the start would also "match"
    assert not np.allclose(net.weights[0], weights[0], rtol=0, atol=100 * tolerance)


def test_numpy_matrix_correct_counts_the_largest_output():
    """correct() (benchmarks/test_start.py's accuracy) picks the largest output,
    example by example as the book's evaluate does."""
    weights, biases, X, y, _ = start(np.float64)
    net = NumpyMatrix(weights, biases)
    want = 0
    for x, label in zip(X, y):
        a = x
        for w, b in zip(weights, biases):
            a = 1.0 / (1.0 + np.exp(-(w @ a + b)))
        want += int(np.argmax(a) == label)
    assert net.correct(X, y) == want
    assert 0 < want < N  # random weights: some right, some wrong


def test_jax_correct_matches_numpy_matrix():
    pytest.importorskip("jax")
    trained, (weights, biases, X, y, order) = numpy_epoch(np.float32, 10)
    net = JaxScan(weights, biases)
    net.epoch(net.prepare(X, y, order, 10), ETA)
    assert net.correct(X, y) == trained.correct(X, y)
