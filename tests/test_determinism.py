"""Same seed, same weights, to the bit: whatever the thread count or kernel variant."""

import numpy as np
import pytest

import fastgd
import fastgd.training

from helpers import two_threads

MODES = {"online": 1, "mini-batch": 10, "large mini-batch": 100, "full batch": None}


def train(data, m, dtype, **options):
    net = fastgd.Network([784, 30, 10], seed=7, dtype=dtype)
    net.SGD(data, 2, m, 3.0 if m != 1 else 0.5, verbose=False, **options)
    return net.params.copy()


@pytest.fixture(scope="module")
def data(mnist):
    X, y = mnist[0]
    return X[:2000], y[:2000]


@two_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_bit_identical_at_one_and_two_threads(data, mode, dtype):
    m = MODES[mode]
    one = train(data, m, dtype, threads=1, kernel="parallel")
    two = train(data, m, dtype, threads=2, kernel="parallel")
    serial = train(data, m, dtype, kernel="serial")
    assert np.isfinite(one).all()
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, serial)


@two_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_auto_gives_the_serial_bits_while_it_switches_kernels(data, mode, dtype, monkeypatch):
    """auto times both kernels on real training and switches between them (here
    after every segment): a choice made at run time never changes the weights."""
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 50)
    monkeypatch.setattr(fastgd.training.trainer, "SEGMENT", 300)
    monkeypatch.setattr(fastgd.training.trainer, "DRIFT", -10.0)  # every segment counts as drifted
    m = MODES[mode]
    serial = train(data, m, dtype, kernel="serial")
    net = fastgd.Network([784, 30, 10], seed=7, dtype=dtype)
    history = net.SGD(data, 2, m, 3.0 if m != 1 else 0.5, verbose=False, threads=2)
    assert len(history.info["calibration"]) >= 2
    np.testing.assert_array_equal(net.params, serial)


@two_threads
def test_bit_identical_when_mini_batches_are_summed_chunk_by_chunk(data, monkeypatch):
    monkeypatch.setattr(fastgd.training.trainer, "chunk_size", lambda layout: 64)
    one = train(data, 500, "float32", threads=1, kernel="parallel")
    two = train(data, 500, "float32", threads=2, kernel="parallel")
    np.testing.assert_array_equal(one, two)


def test_training_changes_the_weights(data):
    """(So that the comparisons above compare something.)"""
    net = fastgd.Network([784, 30, 10], seed=7)
    before = net.params.copy()
    assert not np.array_equal(train(data, 10, "float32"), before)
