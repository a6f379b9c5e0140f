"""kernel="hogwild": the one kernel that is not deterministic.  On one thread it must
give the serial kernel's bits; on two, train about as well as the serial kernel."""

import numpy as np
import pytest

import fastgd
from fastgd import kernels
from fastgd.training import DETERMINISTIC_KERNELS, KERNELS, Buffers, Trainer, choose_kernel

from helpers import random_data, two_threads

SIZES = [20, 12, 5]


@pytest.mark.slow  # the hogwild kernel is a compile of its own (about 15 s)
@pytest.mark.parametrize("regularization", ["L2", "L1"])
@pytest.mark.parametrize("m", [1, 10, 300])  # 300: summed in groups (chunk_size is 256 here)
def test_one_thread_gives_the_serial_bits(m, regularization):
    X, y = random_data(SIZES, 700, seed=3)
    params = {}
    for kernel in ("serial", "hogwild"):
        net = fastgd.Network(SIZES, seed=1)
        history = net.SGD((X, y), 2, m, 0.5, kernel=kernel, threads=1, verbose=False,
                          lmbda=0.1, regularization=regularization,
                          monitor_training_cost=True)
        params[kernel] = net.params.copy()
        assert history.info["kernel"] == kernel
        assert history.info["deterministic"] is (kernel != "hogwild")
    assert np.isfinite(params["serial"]).all()
    np.testing.assert_array_equal(params["hogwild"], params["serial"])


@two_threads
@pytest.mark.slow  # the hogwild kernel to compile, and epochs of MNIST
@pytest.mark.parametrize("m", [1, 10])
def test_two_threads_train_mnist_about_as_well_as_serial(mnist, m):
    (X, y), _, (X_test, y_test) = mnist
    accuracy = {}
    for kernel in ("serial", "hogwild"):
        net = fastgd.Network([784, 30, 10], seed=2)
        history = net.SGD((X[:10000], y[:10000]), 2, m, 3.0 if m == 10 else 0.5,
                          kernel=kernel, threads=2 if kernel == "hogwild" else 1,
                          verbose=False)
        assert np.isfinite(net.params).all()
        accuracy[kernel] = net.evaluate(X_test, y_test) / len(y_test)
    assert history.info["threads"] == 2 and history.info["kernel_in_use"] == "hogwild"
    # lost updates cost a little accuracy, never the training: a loose bound
    assert accuracy["serial"] > 0.85
    assert accuracy["hogwild"] > accuracy["serial"] - 0.03, accuracy


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_auto_never_picks_hogwild(threads):
    assert choose_kernel(1, threads, "auto")[0] in ("serial", "auto")
    assert "hogwild" in KERNELS and "hogwild" not in DETERMINISTIC_KERNELS


@two_threads
def test_auto_candidates_are_the_deterministic_kernels():
    X, y = random_data(SIZES, 50)
    trainer = Trainer(fastgd.Network(SIZES, seed=1), (X, y), 1, 0.5, kernel="auto", threads=2)
    assert {c.name for c in trainer.candidates} == {"serial", "parallel"}
    assert trainer.info()["deterministic"] is True


def test_an_unknown_kernel_names_the_choices():
    X, y = random_data(SIZES, 50)
    with pytest.raises(ValueError, match="kernel must be .*'hogwild', got 'wild'"):
        fastgd.Network(SIZES, seed=1).SGD((X, y), 1, 1, 0.5, kernel="wild", verbose=False)


@pytest.mark.parametrize("m", [10, 600])
def test_each_threads_scratch_starts_on_a_cache_line_of_its_own(m):
    net = fastgd.Network(SIZES, seed=1)
    buffers = Buffers(net, m, m, 256, threads=3)
    for name in ("A", "D", "costs", "nabla", "groups"):
        array = getattr(buffers, name)
        assert array.shape[0] == 3
        for w in range(3):
            if array[w].size:
                assert array[w].ctypes.data % kernels.CACHE_LINE == 0, (name, w)
    assert buffers.groups.shape[1] == (3 if m == 600 else 0)
    for row in buffers.groups.reshape(-1, buffers.groups.shape[-1]):
        assert row.ctypes.data % kernels.CACHE_LINE == 0
