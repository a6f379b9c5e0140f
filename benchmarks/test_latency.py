"""Microseconds per call on one example: fastgd's feedforward(x), predict(X[:1]) and
backprop(x, y) beside what a user would write in NumPy for the same answer.

    pytest benchmarks/test_latency.py --benchmark-json=latency.json

The NumPy baselines: the chain a = sigmoid(w a + b) layer by layer (for
feedforward, and its argmax for predict), and network.py's backprop
(baselines.NetworkPy, column vectors).  Each pair is one pytest-benchmark group
("latency feedforward float32", ...): the targets are fastgd within 2x of NumPy
in each.  Everything runs on one thread (fastgd's single-example calls are
serial; BLAS is limited to one thread where threadpoolctl is installed).  The
first call, which compiles or loads fastgd's kernels, is a warm-up round.
"""

import numpy as np
import pytest

import fastgd

from baselines import NetworkPy, sigmoid
from suite import ROUNDS, SEED, SMOKE, blas_info, record

BOOK = [784, 30, 10]
# Calls per round: one call is microseconds, far below the timer's resolution
# and the noise of a shared machine; a smoke run only checks that it runs.
CALLS = 1 if SMOKE else 2000

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None


@pytest.fixture(scope="module")
def one_thread_blas():
    """BLAS on one thread for the module's benchmarks (the NumPy baselines' matrix
    products), if threadpoolctl can say so; its settings are recorded either way."""
    limits = threadpoolctl.threadpool_limits(1) if threadpoolctl is not None else None
    try:
        yield blas_info()
    finally:
        if limits is not None:
            limits.unregister()


@pytest.fixture(scope="module")
def example(mnist_training):
    """One MNIST training image and its label, in each dtype, and a network of the
    book's shape whose weights both sides use."""
    cases = {}
    for dtype, (X, y) in mnist_training.items():
        net = fastgd.Network(BOOK, seed=SEED, dtype=dtype)
        cases[dtype] = net, X[0], int(y[0])
    return cases


def run(benchmark, call):
    benchmark.pedantic(call, rounds=ROUNDS, iterations=CALLS, warmup_rounds=1)


def chain(weights, biases, x):
    """a^L = sigmoid(w a + b), layer by layer, for one input of shape (n_in,)."""
    a = x
    for w, b in zip(weights, biases):
        a = sigmoid(w @ a + b)
    return a


def book_arrays(net):
    """The network's weights and biases as contiguous arrays of its dtype, shaped as
    the book's (what a NumPy user would hold)."""
    return ([np.ascontiguousarray(w) for w in net.weights],
            [np.ascontiguousarray(b) for b in net.biases])


DTYPES = ["float32", "float64"]


@pytest.mark.bench("fastgd", threads=1)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", ["feedforward", "predict", "backprop"])
def test_fastgd(benchmark, machine, example, one_thread_blas, call, dtype):
    net, x, label = example[dtype]
    X1 = x[None]
    calls = {"feedforward": lambda: net.feedforward(x),
             "predict": lambda: net.predict(X1),
             "backprop": lambda: net.backprop(x, label)}
    benchmark.group = f"latency {call} {dtype}"
    run(benchmark, calls[call])
    record(benchmark, machine, impl="fastgd", call=call, dtype=dtype, sizes=BOOK, threads=1,
           calls_per_round=CALLS, **one_thread_blas)


@pytest.mark.bench("numpy", threads=1)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", ["feedforward", "predict"])
def test_numpy_chain(benchmark, machine, example, one_thread_blas, call, dtype):
    """sigmoid(w a + b) layer by layer on the vector x; its argmax for predict."""
    net, x, _ = example[dtype]
    weights, biases = book_arrays(net)
    calls = {"feedforward": lambda: chain(weights, biases, x),
             "predict": lambda: int(np.argmax(chain(weights, biases, x)))}
    benchmark.group = f"latency {call} {dtype}"
    run(benchmark, calls[call])
    record(benchmark, machine, impl="numpy chain", call=call, dtype=dtype, sizes=BOOK,
           threads=1, calls_per_round=CALLS, **one_thread_blas)


@pytest.mark.bench("network.py", threads=1)
@pytest.mark.parametrize("dtype", DTYPES)
def test_network_py_backprop(benchmark, machine, example, one_thread_blas, dtype):
    """network.py's backprop on the column vector x and the one-hot y, as its
    update_mini_batch calls it (float64 is the book's own precision)."""
    net, x, label = example[dtype]
    book = NetworkPy(*book_arrays(net))
    column = x.reshape(-1, 1)
    y = np.zeros((BOOK[-1], 1), dtype)
    y[label] = 1
    benchmark.group = f"latency backprop {dtype}"
    run(benchmark, lambda: book.backprop(column, y))
    record(benchmark, machine, impl="network.py", call="backprop", dtype=dtype, sizes=BOOK,
           threads=1, calls_per_round=CALLS, **one_thread_blas)
