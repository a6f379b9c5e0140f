"""The starter kernel (one small function, compiled in seconds) trains and evaluates
with the generic kernels' bits, and a first run on a cold cache starts on it."""

import numpy as np
import pytest

import fastgd
import fastgd.training.trainer
from fastgd import config, kernels
from fastgd.training import Trainer

from helpers import random_data

# Odd widths exercise the tails of the two-chain sums and of the four-lane backward
# sums (and an odd count of nonzero inputs, the first chain's last term); a middle
# layer lies between two hidden ones.  Both shapes are the generic module's, which
# every shape shares, so nothing specialised compiles here.
SHAPES = [[7, 9, 4], [5, 4, 3, 2]]


def _same_bits(a, b):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def _trainers(sizes, m, dtype, cost, reduction="mean", n=61):
    """Two Trainers on the same network, data and settings: one on the generic
    kernels, one on the starter kernel."""
    X, y = random_data(sizes, n, seed=4, zeros=0.5)
    pair = []
    for _ in range(2):
        net = fastgd.Network(sizes, seed=9, dtype=dtype, cost=cost)
        pair.append(Trainer(net, (X, y), m, 0.9, reduction=reduction, kernel="serial",
                            specialize="never"))
    starter = kernels.starter.kernels(cost)
    pair[1]._use([pair[1].candidate(starter, pair[1].plans[0])])
    assert (pair[0].build, pair[1].build) == ("generic", "starter")
    return pair


@pytest.mark.parametrize("sizes", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cost", ["quadratic", "cross-entropy"])
@pytest.mark.parametrize("m, reduction", [(1, "mean"), (10, "mean"), (7, "sum")], ids=str)
def test_the_starter_trains_the_generic_bits(sizes, dtype, cost, m, reduction):
    generic, starter = _trainers(sizes, m, dtype, cost, reduction)
    order = np.random.default_rng(2).permutation(generic.n)  # a short last mini-batch
    for _ in range(2):
        assert generic.run_epoch(order) == starter.run_epoch(order)  # the sums of C_x
        _same_bits(generic.net.params, starter.net.params)


@pytest.mark.parametrize("sizes", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_starter_feedforward_gives_the_generic_outputs(sizes, dtype):
    X, _ = random_data(sizes, 37, seed=6, zeros=0.5)
    net = fastgd.Network(sizes, seed=3, dtype=dtype)
    X = X.astype(dtype)
    for block in (1, 5, 64):
        generic = np.zeros((len(X), sizes[-1]), dtype)
        starter = np.full((len(X), sizes[-1]), np.nan, dtype)
        for module, out in ((kernels.generic_kernels(sizes), generic),
                            (kernels.starter.kernels("quadratic"), starter)):
            kernels.call(module.feedforward_serial, X, net.params, net.layout.arrays, out, block)
        _same_bits(generic, starter)
    empty = np.zeros((0, sizes[-1]), dtype)
    kernels.call(kernels.starter.kernels("quadratic").feedforward_serial, X[:0], net.params,
                 net.layout.arrays, empty, 64)


def test_the_starter_refuses_what_it_does_not_do():
    sizes = [7, 9, 4]
    _, starter = _trainers(sizes, 10, "float64", "quadratic")
    with pytest.raises(ValueError, match="does not regularize"):
        kernels.call(starter.current.fn, starter.examples, np.arange(10), 0, 10, 10, 0.5, True,
                     starter.net.params, starter.net.layout.arrays, starter.buffers.scratch,
                     kernels.Plan(starter.current.splits, starter.current.spans,
                                  starter.buffers.direct_max, starter.buffers.group,
                                  starter.current.chunk, starter.current.example_block, 1),
                     0.99, 0.0)
    eligible = kernels.starter.eligible
    assert eligible("quadratic", False, 10, 256, False, "serial")
    assert eligible("cross-entropy", False, 256, 256, False, "serial")
    assert not eligible("quadratic", True, 10, 256, False, "serial")  # dense inputs
    assert not eligible("quadratic", False, 257, 256, False, "serial")  # grouped mini-batches
    assert not eligible("quadratic", False, 10, 256, True, "serial")  # regularized
    assert not eligible("quadratic", False, 10, 256, False, "parallel")
    assert not eligible("quadratic", False, 10, 256, False, "hogwild")


class NotCompiling:
    """A background compile of the specialised kernels that never finishes."""

    def __init__(self, trainer):
        pass

    def done(self):
        return False

    def cancel(self):
        pass


@pytest.mark.parametrize("m, lmbda, build", [(10, 0.0, "starter"), (5, 0.5, "generic")],
                         ids=str)
def test_a_cold_first_run_starts_on_the_starter_where_it_can(m, lmbda, build, monkeypatch):
    """On a cold cache (as `ready` says) a background-mode run trains on the starter
    kernel, evaluates on it and records so; a run the starter cannot do
    (regularized) starts on the generic kernels; the weights are the same as
    a run on the generic kernels alone."""
    sizes = [7, 9, 4]
    X, y = random_data(sizes, 50, seed=8, zeros=0.5)
    runs = []
    for mode in ("background", "never"):
        net = fastgd.Network(sizes, seed=1)
        monkeypatch.setattr(config, "SPECIALIZE", mode)
        monkeypatch.setattr(fastgd.training.trainer, "Specialization", NotCompiling)
        if mode == "background":
            monkeypatch.setattr(kernels, "ready", lambda *args: False)  # as on a cold cache
        history = net.SGD((X, y), 2, m, 0.8, test_data=(X[:20], y[:20]), lmbda=lmbda,
                          kernel="serial", verbose=False)
        monkeypatch.undo()
        runs.append((net.params.copy(), history))
    (started, history), (generic, plain) = runs
    assert history.info["kernels"] == build and plain.info["kernels"] == "generic"
    _same_bits(started, generic)
    for a, b in zip(history, plain):
        assert (a["cost"], a["correct"], a["test_cost"]) == (b["cost"], b["correct"],
                                                             b["test_cost"])


def test_evaluation_uses_the_starter_while_the_generic_feedforward_is_not_compiled(
        monkeypatch):
    sizes = [7, 9, 4]
    net = fastgd.Network(sizes, seed=2, dtype="float64")
    starter = kernels.starter.kernels(net.cost_function)
    X, _ = random_data(sizes, 3, seed=1)
    kernels.call(starter.feedforward_serial, X, net.params, net.layout.arrays,
                 np.zeros((3, 4)), 8)  # the starter compiled (or loaded) for float64
    generic = kernels.generic_kernels(sizes)
    monkeypatch.setattr(config, "SPECIALIZE", "background")
    for compiled, used in ((starter, starter.feedforward_serial),  # the generic one is not
                           (generic, generic.feedforward_serial)):
        def ready(module, names, dtype, compiled=compiled):
            return module is compiled  # the specialised module never, whatever is on disk
        monkeypatch.setattr(kernels, "ready", ready)
        monkeypatch.setattr(kernels.loader, "ready", ready)  # usable_kernels' own name
        assert net._kernel("feedforward_serial") is used
        assert net._kernel("feedforward_parallel") is used
