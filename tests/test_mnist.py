"""The book's run on real MNIST: [784, 30, 10], eta 3.0, mini-batches of 10."""

import warnings

import numpy as np
import pytest

import fastgd


@pytest.mark.slow  # ten epochs of the book's run, three times
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_books_network_learns_mnist(mnist, seed):
    training_data, _, test_data = mnist
    net = fastgd.Network([784, 30, 10], seed=seed)
    history = net.SGD(training_data, 10, 10, 3.0, test_data=test_data, verbose=False)
    accuracy = history.column("accuracy")
    # Seen here (seeds 0-5): 89.4-90.7% after one epoch, 93.5-94.0% after five,
    # a best of 94.2-94.8% within ten.  94% within five epochs, as first asked
    # for, is rare for the book's algorithm: over seeds 0-29 only seeds 15 and
    # 24 got there, and seven seeds were at 81-83% after one epoch.  (The kernels match
    # the NumPy transcription of network.py to 1e-9 per epoch: test_kernels.py.)
    assert accuracy[0] > 0.85
    assert accuracy[:5].max() >= 0.93
    assert accuracy.max() >= 0.94
    assert history.diverged is None
    assert net.evaluate(*test_data) == history[-1]["correct"]


@pytest.mark.parametrize("eta", [30.0, 100.0, 300.0])
def test_too_large_an_eta_is_flagged_within_five_epochs(mnist, eta):
    """Far too large a step saturates the sigmoids: the cost sits near 0.45-0.5 and
    accuracy near chance, without ever becoming NaN.  It must be called a failure."""
    training_data, _, test_data = mnist
    net = fastgd.Network([784, 30, 10], seed=1)
    with pytest.warns(fastgd.DivergenceWarning, match=f"eta = {eta:g} is probably too large"):
        history = net.SGD(training_data, 8, 10, eta, test_data=test_data, verbose=False)
    assert len(history) <= 5
    assert history.diverged and history.stopped == history.diverged
    assert history.column("accuracy").max() < 0.25


@pytest.mark.slow  # 30 epochs
def test_the_books_run_is_not_flagged(mnist, seed=3):
    """A shorter stand-in for the 12 seeds x 100 epochs of BENCHMARKS.md's check:
    the book's run on 10,000 inputs for 30 epochs is never called a failure."""
    training_data, validation_data, _ = mnist
    X, y = training_data
    net = fastgd.Network([784, 30, 10], seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastgd.DivergenceWarning)
        history = net.SGD((X[:10_000], y[:10_000]), 30, 10, 3.0, test_data=validation_data,
                          verbose=False)
    assert len(history) == 30 and history.diverged is None and history.stopped is None
    assert history.column("accuracy").max() > 0.9


def test_full_batch_and_online_learning_on_mnist(mnist):
    training_data, _, test_data = mnist
    X, y = training_data
    online = fastgd.Network([784, 30, 10], seed=0)
    history = online.SGD((X[:20000], y[:20000]), 1, 1, 1.0, test_data=test_data, verbose=False)
    assert history[-1]["accuracy"] > 0.8  # seen: 85-89% after 20,000 single-example steps
    full = fastgd.Network([784, 30, 10], seed=0)
    history = full.SGD(training_data, 5, None, 3.0, test_data=test_data, verbose=False)
    costs = history.column("cost")
    assert np.all(np.diff(costs) < 0)  # small steps on the true gradient: C goes down
