"""What a user would otherwise write: the same algorithm as fastgd, in NumPy,
PyTorch or JAX.

Each baseline trains one epoch from given weights over the examples in a given
order, so that it can be timed beside fastgd on identical work.  They are not
part of the library.  Weights are the book's (out, in) matrices, biases (out,).
"""

import functools

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def one_hot(y, n_out, dtype):
    Y = np.zeros((len(y), n_out), dtype=dtype)
    Y[np.arange(len(y)), y] = 1
    return Y


class NetworkPy:
    """A per-example transcription of Nielsen's network.py (column vectors, one
    backprop per example, gradients summed over the mini-batch)."""

    def __init__(self, weights, biases):
        self.weights = [w.copy() for w in weights]
        self.biases = [b.reshape(-1, 1).copy() for b in biases]

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape, b.dtype) for b in self.biases]
        nabla_w = [np.zeros(w.shape, w.dtype) for w in self.weights]
        activation = x
        activations = [x]
        for b, w in zip(self.biases, self.weights):
            activation = sigmoid(np.dot(w, activation) + b)
            activations.append(activation)
        a = activations[-1]
        delta = (a - y) * a * (1 - a)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].T)
        for l in range(2, len(self.weights) + 1):
            a = activations[-l]
            delta = np.dot(self.weights[-l + 1].T, delta) * a * (1 - a)
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].T)
        return nabla_b, nabla_w

    def update_mini_batch(self, X, Y, eta):
        nabla_b = [np.zeros(b.shape, b.dtype) for b in self.biases]
        nabla_w = [np.zeros(w.shape, w.dtype) for w in self.weights]
        for x, y in zip(X, Y):
            delta_nabla_b, delta_nabla_w = self.backprop(x.reshape(-1, 1), y.reshape(-1, 1))
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        scale = eta / len(X)
        self.weights = [w - scale * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - scale * nb for b, nb in zip(self.biases, nabla_b)]

    def epoch(self, X, y, order, mini_batch_size, eta):
        Y = one_hot(y, self.weights[-1].shape[0], X.dtype)
        for start in range(0, len(order), mini_batch_size):
            batch = order[start:start + mini_batch_size]
            self.update_mini_batch(X[batch], Y[batch], eta)


class NumpyMatrix:
    """Mini-batch gradient descent with the whole mini-batch as one matrix (BLAS)."""

    def __init__(self, weights, biases):
        self.weights = [w.copy() for w in weights]
        self.biases = [b.copy() for b in biases]

    def update_mini_batch(self, X, Y, eta):
        activations = [X]
        for w, b in zip(self.weights, self.biases):
            activations.append(sigmoid(activations[-1] @ w.T + b))
        a = activations[-1]
        delta = (a - Y) * a * (1 - a)
        scale = eta / len(X)
        for l in range(len(self.weights) - 1, -1, -1):
            nabla_w = delta.T @ activations[l]
            nabla_b = delta.sum(axis=0)
            if l:
                a = activations[l]
                delta = (delta @ self.weights[l]) * a * (1 - a)
            self.weights[l] -= scale * nabla_w
            self.biases[l] -= scale * nabla_b

    def correct(self, X, y):
        """How many of X the network classifies as y (the largest output wins)."""
        a = X
        for w, b in zip(self.weights, self.biases):
            a = sigmoid(a @ w.T + b)
        return int((a.argmax(axis=1) == y).sum())

    def epoch(self, X, y, order, mini_batch_size, eta):
        # one gather per epoch, then contiguous slices: cheaper than X[batch] per step
        X = X[order]
        Y = one_hot(y[order], self.weights[-1].shape[0], X.dtype)
        for start in range(0, len(order), mini_batch_size):
            self.update_mini_batch(X[start:start + mini_batch_size],
                                   Y[start:start + mini_batch_size], eta)


class TorchSGD:
    """PyTorch on the CPU: nn.Linear layers, sigmoid, the quadratic cost, optim.SGD.

    Tensors are preloaded (and pre-shuffled) before timing; only the steps are timed.
    """

    def __init__(self, weights, biases):
        import torch
        self.torch = torch
        dtype = torch.float32 if weights[0].dtype == np.float32 else torch.float64
        layers = []
        for w, b in zip(weights, biases):
            linear = torch.nn.Linear(w.shape[1], w.shape[0], dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
            layers += [linear, torch.nn.Sigmoid()]
        self.model = torch.nn.Sequential(*layers)
        self.dtype = dtype

    def prepare(self, X, y, order):
        """Preload the shuffled data as tensors (not timed)."""
        torch = self.torch
        X = torch.from_numpy(np.ascontiguousarray(X[order]))
        Y = torch.from_numpy(one_hot(y[order], self.model[-2].out_features, X.numpy().dtype))
        return X, Y

    def epoch(self, X, Y, mini_batch_size, eta):
        optimizer = self.torch.optim.SGD(self.model.parameters(), lr=eta)
        for start in range(0, len(X), mini_batch_size):
            x, y = X[start:start + mini_batch_size], Y[start:start + mini_batch_size]
            optimizer.zero_grad()
            a = self.model(x)
            # mean over the mini-batch of C_x = ||y - a||^2 / 2: the book's (eta/m) sum
            loss = 0.5 * ((a - y) ** 2).sum() / len(x)
            loss.backward()
            optimizer.step()

    def correct(self, X, y):
        """How many of X (a NumPy array) the network classifies as y."""
        torch = self.torch
        with torch.no_grad():
            a = self.model(torch.from_numpy(np.ascontiguousarray(X)))
        return int((a.argmax(dim=1).numpy() == y).sum())


@functools.cache
def _jax_functions():
    """The jitted epoch (a lax.scan over the mini-batches) and the jitted single step.

    Built once per process: jax.jit caches compiled code per wrapper, so wrapping
    anew for every JaxScan would compile again in every timed round."""
    import jax

    def sigmoid(z):
        return 1.0 / (1.0 + jax.numpy.exp(-z))

    def step(params, X, Y, eta):
        """NumpyMatrix.update_mini_batch, returning new parameters instead of updating."""
        weights, biases = params
        activations = [X]
        for w, b in zip(weights, biases):
            activations.append(sigmoid(activations[-1] @ w.T + b))
        a = activations[-1]
        delta = (a - Y) * a * (1 - a)
        scale = eta / X.shape[0]  # m is static: each mini-batch size compiles its own step
        new_weights, new_biases = list(weights), list(biases)
        for l in range(len(weights) - 1, -1, -1):
            nabla_w = delta.T @ activations[l]
            nabla_b = delta.sum(axis=0)
            if l:
                a = activations[l]
                delta = (delta @ weights[l]) * a * (1 - a)
            new_weights[l] = weights[l] - scale * nabla_w
            new_biases[l] = biases[l] - scale * nabla_b
        return tuple(new_weights), tuple(new_biases)

    def epoch(params, XB, YB, eta):
        params, _ = jax.lax.scan(lambda p, batch: (step(p, *batch, eta), None), params, (XB, YB))
        return params

    return jax.jit(epoch), jax.jit(step)


@functools.cache
def _jax_outputs():
    """The jitted forward pass over a whole matrix of inputs (built once per process,
    as _jax_functions)."""
    import jax

    def outputs(params, X):
        a = X
        for w, b in zip(*params):
            a = 1.0 / (1.0 + jax.numpy.exp(-(a @ w.T + b)))
        return a

    return jax.jit(outputs)


class JaxScan:
    """NumpyMatrix's algorithm in JAX, the whole epoch one jitted lax.scan over the
    mini-batches: the fastest way JAX offers to run many small steps, since the
    Python loop and per-step dispatch disappear into one compiled program.

    prepare() shuffles, one-hots and reshapes the data to (n_batches, m, n_in)
    on the device (not timed); epoch() runs the scan, plus one jitted step with
    its own m for a trailing short mini-batch, and waits for the result.
    float64 turns on jax_enable_x64 for the whole process (JAX would otherwise
    make float32 arrays from float64 input), before any array is made.
    """

    def __init__(self, weights, biases):
        import jax
        self.jax = jax
        self.dtype = np.dtype(weights[0].dtype)
        if self.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.params = (tuple(jax.numpy.asarray(w) for w in weights),
                       tuple(jax.numpy.asarray(b) for b in biases))

    def prepare(self, X, y, order, mini_batch_size):
        """(full mini-batches, trailing short mini-batch or None) as device arrays."""
        jnp = self.jax.numpy
        X = np.ascontiguousarray(X[order], dtype=self.dtype)
        Y = one_hot(y[order], self.params[0][-1].shape[0], self.dtype)
        full = len(order) // mini_batch_size * mini_batch_size
        batches = (jnp.asarray(X[:full].reshape(-1, mini_batch_size, X.shape[1])),
                   jnp.asarray(Y[:full].reshape(-1, mini_batch_size, Y.shape[1])))
        tail = (jnp.asarray(X[full:]), jnp.asarray(Y[full:])) if full < len(order) else None
        return batches, tail

    def epoch(self, data, eta):
        """One epoch over prepared data; returns when the new parameters are computed."""
        epoch, step = _jax_functions()
        (XB, YB), tail = data
        eta = np.asarray(eta, self.dtype)
        params = self.params
        if len(XB):
            params = epoch(params, XB, YB, eta)
        if tail is not None:
            params = step(params, *tail, eta)
        self.params = self.jax.block_until_ready(params)

    def correct(self, X, y):
        """How many of X the network classifies as y (the forward pass jitted)."""
        a = _jax_outputs()(self.params, self.jax.numpy.asarray(X, self.dtype))
        return int((np.asarray(a).argmax(axis=1) == y).sum())

    @property
    def weights(self):
        return [np.asarray(w) for w in self.params[0]]

    @property
    def biases(self):
        return [np.asarray(b) for b in self.params[1]]
