"""Network.predict, and what reading pictures says when Pillow is missing
(the pictures themselves: test_digit_images.py)."""

import re
import sys

import numpy as np
import pytest

import fastgd
from fastgd.cli import main
from fastgd.data import read_digit_image

from fastgd import reference as naive
from helpers import book_weights, random_data


@pytest.mark.filterwarnings("ignore::fastgd._validation.InputScaleWarning")  # X > 1 on purpose
@pytest.mark.parametrize("sizes", [[7, 9, 4], [784, 30, 10]], ids=str)
def test_predict_is_the_argmax_of_the_books_feedforward(sizes):
    net = fastgd.Network(sizes, seed=4, dtype="float64")
    weights, biases = book_weights(net)
    X, _ = random_data(sizes, 70, seed=2)  # more than one evaluation block
    X = 8 * X - 4  # inputs spread enough that the answers differ
    want = np.array([np.argmax(naive.feedforward(weights, biases, x)) for x in X])
    got = net.predict(X)
    assert got.dtype == np.int64 and got.shape == (70,)
    np.testing.assert_array_equal(got, want)
    assert len(set(want)) > 1  # not a network that always gives the same answer
    one = net.predict(X[5])
    assert type(one) is int and one == want[5]
    assert net.predict(X[:0]).shape == (0,)


def test_predict_checks_its_inputs_like_feedforward():
    net = fastgd.Network([7, 9, 4], seed=0)
    with pytest.raises(ValueError, match=r"shape \(n, 7\)"):
        net.predict(np.zeros(6))
    with pytest.raises(ValueError, match=r"shape \(n, 7\)"):
        net.predict(np.zeros((2, 3, 7)))
    with pytest.raises(ValueError, match="finite"):
        net.predict(np.full(7, np.nan))
    with pytest.raises(TypeError, match="must hold numbers"):
        net.predict(np.full((2, 7), "a"))


def test_predict_refuses_non_finite_outputs_instead_of_answering_0(monkeypatch):
    net = fastgd.Network([7, 9, 4], seed=0)
    X, _ = random_data(net.sizes, 5, seed=1)
    net.params[:] = np.nan  # as training that diverged leaves them
    with pytest.raises(ValueError, match="5 of 5 examples have non-finite outputs"):
        net.predict(X)
    with pytest.raises(ValueError, match="1 of 1 examples"):
        net.predict(X[0])
    # Only some rows: the count is of examples, not of output values.
    outputs = np.full((5, 4), 0.25)
    outputs[1, 2] = np.nan
    outputs[3] = [np.inf, 0.0, np.nan, 1.0]
    monkeypatch.setattr(net, "_feedforward", lambda X: outputs)
    with pytest.raises(ValueError, match="2 of 5 examples have non-finite outputs"):
        net.predict(X)


def test_reading_pictures_without_pillow_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(ImportError, match=r"pip install fastgd\[image\]"):
        read_digit_image(tmp_path / "seven.png")
    fastgd.Network([784, 10, 10], seed=0).save(tmp_path / "net.npz")
    assert main(["predict", str(tmp_path / "net.npz"), str(tmp_path / "seven.png")]) == 2
    assert re.fullmatch(r"fastgd predict: error: reading images needs Pillow: pip install "
                        r"fastgd\[image\] \(or pip install pillow\)\n", capsys.readouterr().err)
