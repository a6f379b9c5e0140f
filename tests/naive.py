"""The book's algorithm in plain NumPy, float64: the reference every kernel is tested against.

A transcription of Nielsen's network.py (chapter 1): column vectors, one
backprop per example, nabla summed over the mini-batch, then
w -> w - (eta/len(mini_batch)) nabla_w.  Written for clarity, not speed.
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def one_hot(label, n_out):
    y = np.zeros((n_out, 1))
    y[label] = 1.0
    return y


def feedforward(weights, biases, x):
    """The output a^L for one input x of shape (n_in,)."""
    a = np.asarray(x, np.float64).reshape(-1, 1)
    for w, b in zip(weights, biases):
        a = sigmoid(np.dot(w, a) + b.reshape(-1, 1))
    return a[:, 0]


def backprop(weights, biases, x, label):
    """(nabla_b, nabla_w), the gradient of C_x = ||y - a^L||^2 / 2, as network.py."""
    biases = [b.reshape(-1, 1) for b in biases]
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    activation = np.asarray(x, np.float64).reshape(-1, 1)
    activations = [activation]
    zs = []
    for b, w in zip(biases, weights):
        z = np.dot(w, activation) + b
        zs.append(z)
        activation = sigmoid(z)
        activations.append(activation)
    y = one_hot(label, weights[-1].shape[0])
    sp = sigmoid(zs[-1]) * (1 - sigmoid(zs[-1]))
    delta = (activations[-1] - y) * sp
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].T)
    for l in range(2, len(weights) + 1):
        sp = sigmoid(zs[-l]) * (1 - sigmoid(zs[-l]))
        delta = np.dot(weights[-l + 1].T, delta) * sp
        nabla_b[-l] = delta
        nabla_w[-l] = np.dot(delta, activations[-l - 1].T)
    return [nb[:, 0] for nb in nabla_b], nabla_w


def cost(weights, biases, X, y):
    """C = 1/(2n) sum_x ||y(x) - a||^2."""
    total = 0.0
    for x, label in zip(X, y):
        a = feedforward(weights, biases, x)
        total += np.sum((one_hot(label, len(a))[:, 0] - a) ** 2)
    return total / (2 * len(X))


def update_mini_batch(weights, biases, X, y, eta, reduction="mean"):
    """One gradient-descent step on the mini-batch (X, y); returns new (weights, biases)."""
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    for x, label in zip(X, y):
        delta_nabla_b, delta_nabla_w = backprop(weights, biases, x, label)
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
    scale = eta / len(X) if reduction == "mean" else eta
    weights = [w - scale * nw for w, nw in zip(weights, nabla_w)]
    biases = [b - scale * nb for b, nb in zip(biases, nabla_b)]
    return weights, biases


def train_epoch(weights, biases, X, y, order, mini_batch_size, eta, reduction="mean"):
    """One epoch of mini-batch gradient descent over X[order]; the last mini-batch
    may be shorter and is scaled by its own length (as network.py)."""
    weights = [np.array(w, np.float64) for w in weights]
    biases = [np.array(b, np.float64) for b in biases]
    for start in range(0, len(order), mini_batch_size):
        batch = order[start:start + mini_batch_size]
        weights, biases = update_mini_batch(weights, biases, X[batch], y[batch], eta, reduction)
    return weights, biases
