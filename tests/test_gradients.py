"""Backpropagation against central finite differences of the quadratic cost (float64)."""

import numpy as np
import pytest

import fastgd

from helpers import random_data


def finite_difference(net, X, y, view, index, h=1e-6):
    """dC/dv for one weight or bias v, by (C(v + h) - C(v - h)) / 2h."""
    original = view[index]
    view[index] = original + h
    plus = net.cost(X, y)
    view[index] = original - h
    minus = net.cost(X, y)
    view[index] = original
    return (plus - minus) / (2 * h)


@pytest.mark.parametrize("sizes", [[2, 3], [3, 1], [5, 4, 3, 2], [784, 30, 10]], ids=str)
def test_gradient_of_C_matches_finite_differences(sizes):
    """grad C = (1/n) sum_x grad C_x, checked weight by weight (a sample for big nets)."""
    rng = np.random.default_rng(0)
    net = fastgd.Network(sizes, seed=1, dtype="float64")
    X, y = random_data(sizes, 8, seed=2, zeros=0.5)
    mean_gradient = net.gradients(X, y).mean(axis=0)
    nabla_b, nabla_w = net.layout.unpack(mean_gradient)
    checked = 0
    for views, nablas in ((net.biases, nabla_b), (net.weights, nabla_w)):
        for view, nabla in zip(views, nablas):
            indices = list(np.ndindex(view.shape))
            if len(indices) > 25:
                # big layers: a random sample, and always the weights of nonzero inputs
                picks = rng.choice(len(indices), 25, replace=False)
                indices = [indices[i] for i in picks]
                if view.ndim == 2 and view.shape[1] == sizes[0]:
                    k = int(np.flatnonzero(X[0])[0])
                    indices.append((0, k))
            for index in indices:
                numeric = finite_difference(net, X, y, view, index)
                assert nabla[index] == pytest.approx(numeric, rel=1e-5, abs=1e-9), index
                checked += 1
    n_params = sum(v.size for v in net.weights + net.biases)
    assert checked >= min(n_params, 25)


def test_gradient_of_one_example_matches_finite_differences():
    sizes = [6, 4, 3]
    net = fastgd.Network(sizes, seed=3, dtype="float64")
    X, y = random_data(sizes, 1, seed=4, zeros=0.0)
    nabla_b, nabla_w = net.backprop(X[0], y[0])
    for view, nabla in zip(net.weights + net.biases, nabla_w + nabla_b):
        for index in np.ndindex(view.shape):
            numeric = finite_difference(net, X, y, view, index)
            assert nabla[index] == pytest.approx(numeric, rel=1e-5, abs=1e-10)
