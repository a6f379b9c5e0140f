"""kernel="hogwild": the one kernel that is not deterministic.  On one thread it must
give the serial kernel's bits; on two, train about as well as the serial kernel."""

import numba
import numpy as np
import pytest

import fastgd
from fastgd import kernels
from fastgd.training import DETERMINISTIC_KERNELS, KERNELS, Buffers, Trainer, choose_kernel

from helpers import random_data, two_threads

SIZES = [20, 12, 5]
# one worker of pytest -n compiles the hogwild kernel for the whole file (conftest.py)
pytestmark = pytest.mark.compiles("hogwild")


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


def test_the_reason_says_the_first_epoch_runs_on_one_thread():
    assert choose_kernel(10, 1, "hogwild") == ("hogwild", "asked for")
    name, reason = choose_kernel(10, 3, "hogwild")
    assert name == "hogwild"
    assert "first epoch on 1 thread, then 3 threads on replicas" in reason


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


def test_a_merge_adds_what_the_thread_changed_to_what_others_added():
    params = np.array([1.0, 2.0, 3.0, 4.0])
    local, snapshot = kernels.workqueue.hogwild_replica(params)
    kernels.workqueue.pull_replica(params, local, snapshot)
    np.testing.assert_array_equal(local, params)
    np.testing.assert_array_equal(snapshot, params)
    local += [0.5, 0.0, -1.0, 0.0]   # this thread's steps
    params += [0.25, 0.0, 0.0, 8.0]  # another thread's merge meanwhile
    kernels.workqueue.merge_replica(params, local, snapshot)
    np.testing.assert_array_equal(params, [1.75, 2.0, 2.0, 12.0])
    np.testing.assert_array_equal(local, params)  # taken afresh
    np.testing.assert_array_equal(snapshot, params)


def test_the_merge_interval_counts_the_weight_updates_of_a_step():
    # 2 nonzero inputs per example: 2 * 4 + 4 weights and biases of layer 0, 4 * 3 + 3
    # of layer 1, so 27 updates per example; MERGE_WORK * 100 parameters of them
    indptr = np.array([0, 2, 4, 6], np.uint64)
    sizes = np.array([10, 4, 3], np.int64)
    examples = -(-kernels.workqueue.MERGE_WORK * 100 // 27)
    for m in (1, 7, 10_000):
        want = max(1, -(-examples // m))
        assert kernels.workqueue.merge_interval(indptr, sizes, 100, m, 1) == want


@pytest.mark.parametrize("n_threads", [1, 2, 4, 8, 16, 64, 1000])
@pytest.mark.parametrize("m", [1, 3, 10, 100])
def test_more_threads_merge_more_often_to_bound_the_examples_in_flight(n_threads, m):
    """A merge every min(the MERGE_WORK interval, STALE_EXAMPLES / n_threads)
    examples, in whole mini-batches (at least one): with many threads, at most
    STALE_EXAMPLES examples' steps in flight, where 8 threads at the MERGE_WORK
    interval diverged on the book's network."""
    workqueue = kernels.workqueue
    indptr = np.arange(0, 1001, 100, dtype=np.uint64)  # 100 nonzero inputs per example
    sizes = np.array([784, 30, 10], np.int64)
    n_params = 784 * 30 + 30 + 30 * 10 + 10
    touched = 100 * 30 + 30 + 30 * 10 + 10
    by_work = workqueue.MERGE_WORK * n_params / touched
    every = workqueue.merge_interval(indptr, sizes, n_params, m, n_threads)
    assert every == max(1, -(-min(by_work, workqueue.STALE_EXAMPLES / n_threads) // m))
    if every > 1:  # not at the floor of one mini-batch
        assert (every - 1) * m * n_threads < workqueue.STALE_EXAMPLES
    assert workqueue.merge_interval(indptr, sizes, n_params, m, n_threads) <= \
        workqueue.merge_interval(indptr, sizes, n_params, m, max(1, n_threads // 2))


@pytest.mark.slow  # the hogwild kernel is a compile of its own
@pytest.mark.parametrize("m", [1, 10, 300])
def test_two_workers_one_after_the_other_take_the_serial_steps(m):
    """Two Hogwild! workers on one numba thread run one after the other: worker 0
    steps through its half of the mini-batches on replicas, merged into the shared
    weights every merge_interval mini-batches, then worker 1 through the other half
    from there.  That is the serial kernel's run over the same order, but for the
    rounding of the merges: a merge that lost or doubled a step, or a replica taken
    at the wrong moment, is far off."""
    X, y = random_data(SIZES, 700, seed=3)
    serial = fastgd.Network(SIZES, seed=1, dtype="float64")
    serial.SGD((X, y), 1, m, 0.5, kernel="serial", threads=1, shuffle=False, verbose=False)
    net = fastgd.Network(SIZES, seed=1, dtype="float64")
    trainer = Trainer(net, (X, y), m, 0.5, kernel="hogwild", threads=2)
    hogwild = trainer.candidates[0]
    assert hogwild.threads == 2
    examples = trainer.examples
    assert kernels.workqueue.merge_interval(examples.indptr, net.layout.arrays.sizes,
                                            net.params.shape[0], m, 2) < -(-350 // m)
    plan = kernels.Plan(hogwild.splits, hogwild.spans, trainer.buffers.direct_max,
                        trainer.buffers.group, hogwild.chunk, hogwild.example_block, 2)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        kernels.call(hogwild.fn, examples, np.arange(700), 0, 700, m, 0.5, trainer.mean,
                     net.params, net.layout.arrays, trainer.buffers.scratch, plan,
                     *trainer.decay())
    finally:
        numba.set_num_threads(before)
    assert not np.array_equal(net.params, fastgd.Network(SIZES, seed=1,
                                                         dtype="float64").params)
    np.testing.assert_allclose(net.params, serial.params, rtol=1e-10, atol=1e-13)


@two_threads
@pytest.mark.slow  # the hogwild kernel to compile
@pytest.mark.parametrize("m", [1, 10])
def test_the_first_epoch_on_two_threads_takes_the_serial_steps(m):
    """The first epoch of a run stays on one thread: stale steps then, while the
    errors are large, can saturate an output neuron for good."""
    X, y = random_data(SIZES, 700, seed=5)
    params = {}
    for kernel, threads in (("serial", 1), ("hogwild", 2)):
        net = fastgd.Network(SIZES, seed=2)
        history = net.SGD((X, y), 1, m, 0.5, kernel=kernel, threads=threads, verbose=False)
        params[kernel] = net.params.copy()
    assert history.info["threads"] == 2 and history.info["kernel_in_use"] == "hogwild"
    np.testing.assert_array_equal(params["hogwild"], params["serial"])


def test_the_benchmark_table_counts_the_first_epoch_in_its_all_epochs_columns(monkeypatch):
    import importlib.util
    import pathlib
    folder = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))  # the script imports _measure beside it
    spec = importlib.util.spec_from_file_location("hogwild_benchmark", folder / "hogwild.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = [dict(kind="speed", kernel=kernel, threads=threads, m=m, examples=100,
                    examples_per_second=100 / seconds[1], epoch_seconds=seconds)
               for m in module.SPEED_BATCHES
               for kernel, threads, seconds in (("serial", 1, [1.0, 1.0]),
                                                ("hogwild", 2, [1.0, 0.5]))]
    rows = [line for line in module.table(results).splitlines() if "| hogwild | 2 |" in line]
    assert len(rows) == len(module.SPEED_BATCHES)
    for row in rows:
        # the median epoch: 2x; both epochs, the first on one thread: 200 / 1.5 s
        assert row.endswith("| 200 | 2.00x | 133 | 1.33x |"), row
