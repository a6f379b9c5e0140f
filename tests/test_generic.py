"""The generic kernels (any widths, compiled once) give the specialised kernels' bits,
and a Trainer that starts on them and switches at any point trains the same weights."""

import numpy as np
import pytest

import fastgd
from fastgd import config, kernels
from fastgd.training import Trainer

from helpers import random_data

# Odd widths exercise the tails of the two-chain sums and of the four-lane
# backward sums, and a middle layer lies between two hidden ones; [784, 30, 10] is
# the book's network on MNIST-like inputs.  Both are among the shapes whose
# specialised kernels test_kernels.py compiles.
SHAPES = [[784, 30, 10], [5, 4, 3, 2]]
# (mini_batch_size, lmbda, regularization): online, a direct mini-batch, a
# grouped one (larger than chunk_size), full batch; with and without decay.
RUNS = [(1, 0.0, "L2"), (10, 2.0, "L2"), (300, 2.0, "L1"), (None, 0.0, "L2")]


def _train(sizes, mode, m, lmbda, regularization, *, dtype="float64", cost="quadratic",
           dense=False, epochs=2, kernel="serial", monkeypatch=None):
    """Weights and per-epoch costs of a short run with config.SPECIALIZE = mode."""
    X, y = random_data(sizes, 400, seed=7, zeros=0.0 if dense else 0.6)
    net = fastgd.Network(sizes, seed=11, dtype=dtype, cost=cost)
    monkeypatch.setattr(config, "SPECIALIZE", mode)
    history = net.SGD((X, y), epochs, m, 0.7, test_data=(X[:50], y[:50]), lmbda=lmbda,
                      regularization=regularization, kernel=kernel, verbose=False)
    return net.params.copy(), history


def _same_bits(a, b):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.specialised
@pytest.mark.parametrize("sizes", SHAPES, ids=str)
@pytest.mark.parametrize("m, lmbda, regularization", RUNS, ids=str)
def test_generic_kernels_give_the_specialised_bits(sizes, m, lmbda, regularization,
                                                   monkeypatch):
    generic, h_generic = _train(sizes, "never", m, lmbda, regularization,
                                monkeypatch=monkeypatch)
    special, h_special = _train(sizes, "now", m, lmbda, regularization,
                                monkeypatch=monkeypatch)
    assert h_generic.info["kernel_in_use"] == h_special.info["kernel_in_use"] == "serial"
    _same_bits(generic, special)
    for a, b in zip(h_generic, h_special):
        assert (a["cost"], a["correct"], a["test_cost"]) == (b["cost"], b["correct"],
                                                             b["test_cost"])


# float32, the cross-entropy cost and the dense input path at once: each other
# combination is another pair of modules to compile (the float64 quadratic sparse
# one is above); on [7, 9, 4], whose odd widths have every tail of the sums, and whose
# modules compile in about half of [784, 30, 10]'s time
@pytest.mark.specialised
@pytest.mark.parametrize("dtype, cost, dense", [("float32", "cross-entropy", True)], ids=str)
def test_generic_bits_across_dtypes_costs_and_input_paths(dtype, cost, dense, monkeypatch):
    sizes = [7, 9, 4]
    for m in (10, 300):
        generic, _ = _train(sizes, "never", m, 1.0, "L2", dtype=dtype, cost=cost, dense=dense,
                            monkeypatch=monkeypatch)
        special, _ = _train(sizes, "now", m, 1.0, "L2", dtype=dtype, cost=cost, dense=dense,
                            monkeypatch=monkeypatch)
        _same_bits(generic, special)


def test_generic_module_serves_every_shape():
    a = kernels.generic_kernels([784, 30, 10])
    assert a is kernels.generic_kernels([5, 4, 3, 2]) and a.generic
    assert not kernels.kernels([784, 30, 10], "float32").generic
    assert kernels.generic_kernels([784, 30, 10], dense=True) is not a


def _switch_run(monkeypatch, switch_at, m):
    """Weights after 3 epochs of a Trainer that starts on the starter or generic
    kernels and switches to the specialised ones before segment `switch_at` (counted over the
    whole run; "late": the first of the last epoch; None: never), with segments
    of about 50 examples."""
    sizes = [784, 30, 10]
    X, y = random_data(sizes, 400, seed=3, zeros=0.6)
    net = fastgd.Network(sizes, seed=5, dtype="float32")
    monkeypatch.setattr(config, "SPECIALIZE", "background")
    monkeypatch.setattr(kernels, "ready", lambda *args: False)  # as on a cold cache
    trainer = Trainer(net, (X, y), m, 0.5, kernel="serial")
    monkeypatch.undo()
    trainer.segment = max(1, 50 // m) * m
    if switch_at == "late":
        switch_at = 2 * -(-len(y) // trainer.segment)
    # the starter kernel where it can (m <= chunk_size: 256 here), else the generic ones
    assert trainer.specialized is not None
    assert trainer.build == ("starter" if m <= trainer.buffers.direct_max else "generic")
    trainer.specialized.thread.join()  # compiled: only switch_at decides the switch now
    segments = [0]
    held = trainer.specialized
    original = trainer._maybe_specialize

    def maybe_specialize():
        if switch_at is not None and segments[0] >= switch_at:
            trainer.specialized = held
            original()
        segments[0] += 1

    trainer.specialized = None
    trainer._maybe_specialize = maybe_specialize
    for _ in trainer.epochs(3):
        pass
    specialised = trainer.current.fn is trainer.module.train_serial
    return net.params.copy(), specialised


@pytest.mark.specialised
@pytest.mark.parametrize("m", [1, 10, 300])
def test_switching_to_the_specialised_kernels_at_any_point_keeps_the_bits(m, monkeypatch):
    reference, switched = _switch_run(monkeypatch, 0, m)  # before the first segment
    assert switched
    for switch_at in (1, "late", None):  # early in epoch 0, in the last epoch, never
        params, switched = _switch_run(monkeypatch, switch_at, m)
        assert switched == (switch_at is not None)
        _same_bits(params, reference)


@pytest.mark.specialised
def test_background_compile_finishes_and_switches(monkeypatch):
    sizes = [7, 9, 4]
    X, y = random_data(sizes, 60, seed=1)
    net = fastgd.Network(sizes, seed=2)
    monkeypatch.setattr(config, "SPECIALIZE", "background")
    monkeypatch.setattr(kernels, "ready", lambda *args: False)
    trainer = Trainer(net, (X, y), 5, 0.5)
    monkeypatch.undo()
    assert trainer.wait_for_specialized()
    assert trainer.specialized is None
    assert not trainer.current.fn.__module__.startswith("fastgd_kernels_generic")


def test_specialize_setting_is_checked(monkeypatch):
    sizes = [7, 9, 4]
    X, y = random_data(sizes, 10)
    monkeypatch.setattr(config, "SPECIALIZE", "sometimes")
    with pytest.raises(ValueError, match="config.SPECIALIZE must be 'background', 'now' or"):
        fastgd.Network(sizes).SGD((X, y), 1, 5, 0.5, verbose=False)


@pytest.mark.parametrize("kernel", ["serial", "parallel", "hogwild"])
def test_the_build_names_the_generic_kernels_of_every_kind(monkeypatch, kernel):
    """History.info["kernels"] says "generic" for each kind of generic kernel: the
    parallel ones are called through ``source.CallByPointer``, which must
    carry the generated module's name as a kernel does."""
    sizes = [5, 4, 3, 2]
    X, y = random_data(sizes, 40, seed=3)
    monkeypatch.setattr(config, "SPECIALIZE", "never")
    trainer = Trainer(fastgd.Network(sizes, seed=5), (X, y), 10, 0.5, kernel=kernel,
                      threads=2)
    assert trainer.current.fn.__module__.startswith("fastgd_kernels_generic")
    assert trainer.build == "generic"
