"""The book's maths in plain NumPy, float64: Nielsen's network.py and network2.py,
transcribed.

Read this module beside the book, and beside ``fastgd.kernels``: it is the same
maths, readable; the kernels are the same maths, fast, and the test suite
checks every kernel against the functions here.  Column vectors, one
``backprop`` per example, nabla summed over the mini-batch, then the update.
Chapter 2's four equations of backpropagation, for a cost C_x of one example x:

* BP1: delta^L = nabla_a C_x (.) sigma'(z^L)  (the output error; the
  cross-entropy cost's sigma'(z) cancels: delta^L = a^L - y)
* BP2: delta^l = ((w^(l+1))^T delta^(l+1)) (.) sigma'(z^l)
* BP3: dC_x/db^l_j = delta^l_j
* BP4: dC_x/dw^l_jk = a^(l-1)_k delta^l_j

and the update of a mini-batch of m examples (``update_mini_batch``):
w -> w - (eta/m) sum_x dC_x/dw, b -> b - (eta/m) sum_x dC_x/db; with
chapter 3's regularization (``update_mini_batch2``), w first becomes
(1 - eta lmbda/n) w (L2) or w - (eta lmbda/n) sgn(w) (L1).  Then the parts of
network2.py that fastgd offers as options: the cross-entropy cost, L2 (and the
chapter's L1) regularization, and the scaled initial weights.

Arguments are the book's shapes: ``weights[l]`` is (sizes[l+1], sizes[l]),
``biases[l]`` is (sizes[l+1],), an input x is (sizes[0],) and a label an int.
Written for clarity, not speed: a network's ``book()`` gives its weights and
biases in these shapes.
"""

import numpy as np


def sigmoid(z):
    """sigma(z) = 1 / (1 + e^-z)."""
    return 1.0 / (1.0 + np.exp(-z))


def one_hot(label, n_out):
    """The desired output y(x) of a digit `label`: a column with 1.0 at label."""
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
    delta = (activations[-1] - y) * sp  # BP1
    nabla_b[-1] = delta  # BP3
    nabla_w[-1] = np.dot(delta, activations[-2].T)  # BP4
    for l in range(2, len(weights) + 1):
        sp = sigmoid(zs[-l]) * (1 - sigmoid(zs[-l]))
        delta = np.dot(weights[-l + 1].T, delta) * sp  # BP2
        nabla_b[-l] = delta  # BP3
        nabla_w[-l] = np.dot(delta, activations[-l - 1].T)  # BP4
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
    # the update: w -> w - (eta/m) nabla_w (with reduction "sum", w - eta nabla_w)
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


# -- chapter 3: the book's network2.py ----------------------------------------------------

def scaled_weights(rng, sizes):
    """network2.py's default_weight_initializer: biases N(0, 1), weights N(0, 1/n_in)
    (fastgd draws biases then weights from one generator, as for N(0, 1))."""
    biases = [rng.standard_normal(y) for y in sizes[1:]]
    weights = [rng.standard_normal((y, x)) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:])]
    return weights, biases


def backprop2(weights, biases, x, label, cost="cross-entropy"):
    """network2.py's backprop: as backprop, with the output error of `cost`:
    CrossEntropyCost.delta is a - y (no sigma'(z))."""
    if cost == "quadratic":
        return backprop(weights, biases, x, label)
    biases = [b.reshape(-1, 1) for b in biases]
    activation = np.asarray(x, np.float64).reshape(-1, 1)
    activations = [activation]
    zs = []
    for b, w in zip(biases, weights):
        z = np.dot(w, activation) + b
        zs.append(z)
        activation = sigmoid(z)
        activations.append(activation)
    delta = activations[-1] - one_hot(label, weights[-1].shape[0])  # BP1, cross-entropy
    nabla_b = [None] * len(weights)
    nabla_w = [None] * len(weights)
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].T)
    for l in range(2, len(weights) + 1):
        sp = sigmoid(zs[-l]) * (1 - sigmoid(zs[-l]))
        delta = np.dot(weights[-l + 1].T, delta) * sp
        nabla_b[-l] = delta
        nabla_w[-l] = np.dot(delta, activations[-l - 1].T)
    return [nb[:, 0] for nb in nabla_b], nabla_w


def cross_entropy_cost(weights, biases, X, y, lmbda=0.0, regularization="L2"):
    """network2.py's total_cost: C = -(1/n) sum_x sum_j [y ln a + (1-y) ln(1-a)]
    (np.nan_to_num for 0 ln 0), plus (lmbda/2n) sum w^2 (L2) or (lmbda/n) sum |w| (L1)."""
    total = 0.0
    for x, label in zip(X, y):
        a = feedforward(weights, biases, x)
        t = one_hot(label, len(a))[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            total += np.sum(np.nan_to_num(-t * np.log(a) - (1 - t) * np.log(1 - a)))
    total /= len(X)
    if regularization == "L2":
        total += 0.5 * (lmbda / len(X)) * sum(np.linalg.norm(w) ** 2 for w in weights)
    else:
        total += (lmbda / len(X)) * sum(np.sum(np.abs(w)) for w in weights)
    return total


def update_mini_batch2(weights, biases, X, y, eta, lmbda, n, cost="cross-entropy",
                       regularization="L2"):
    """network2.py's update_mini_batch: w -> (1 - eta lmbda/n) w - (eta/m) nabla_w
    (L2), or w -> w - (eta lmbda/n) sgn(w) - (eta/m) nabla_w (L1); biases are
    not regularized."""
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    for x, label in zip(X, y):
        delta_nabla_b, delta_nabla_w = backprop2(weights, biases, x, label, cost)
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
    m = len(X)
    if regularization == "L2":
        weights = [(1 - eta * (lmbda / n)) * w - (eta / m) * nw
                   for w, nw in zip(weights, nabla_w)]
    else:
        weights = [w - eta * (lmbda / n) * np.sign(w) - (eta / m) * nw
                   for w, nw in zip(weights, nabla_w)]
    biases = [b - (eta / m) * nb for b, nb in zip(biases, nabla_b)]
    return weights, biases


def train_epoch2(weights, biases, X, y, order, mini_batch_size, eta, lmbda=0.0,
                 cost="cross-entropy", regularization="L2"):
    """One epoch of network2.py's SGD over X[order], n = len(order)."""
    weights = [np.array(w, np.float64) for w in weights]
    biases = [np.array(b, np.float64) for b in biases]
    for start in range(0, len(order), mini_batch_size):
        batch = order[start:start + mini_batch_size]
        weights, biases = update_mini_batch2(weights, biases, X[batch], y[batch], eta, lmbda,
                                             len(order), cost, regularization)
    return weights, biases
