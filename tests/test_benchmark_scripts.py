"""The benchmark scripts that time copies or floors of the kernels' loops: a copy must
train exactly as the kernels do (benchmarks/stages.py), and a floor must do the
work it stands for (benchmarks/passes.py), or their timings describe something else."""

import importlib.util
import pathlib

import numpy as np
import pytest

import fastgd
from fastgd import config

from helpers import random_data, two_threads

SIZES = [20, 12, 5]


def load_script(name, monkeypatch=None):
    folder = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    if monkeypatch is not None:  # the script imports _measure beside it
        monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stages():
    return load_script("stages")


@two_threads
@pytest.mark.slow  # a parallel driver of its own to compile (about 10 s)
@pytest.mark.parametrize("threads, plan_of", [(1, 1), (2, 2), (1, 2)])
def test_the_timed_loop_trains_as_the_kernel_does(stages, threads, plan_of):
    X, y = random_data(SIZES, 203, seed=5)  # 203: the last mini-batch is short
    m = 20
    order = np.random.default_rng(2).permutation(len(y)).astype(np.int64)
    net, trainer, plan = stages.setup((X, y), SIZES, m, threads, plan_of,
                                      specialize=config.SPECIALIZE)
    timing = stages.epoch(stages.make_driver(trainer.module), trainer, plan, order)
    timed = net.params.copy()

    net, trainer, _ = stages.setup((X, y), SIZES, m, plan_of, specialize=config.SPECIALIZE)
    trainer.run_candidate(trainer.current, order, 0, len(order))
    np.testing.assert_array_equal(timed, net.params)
    assert not np.array_equal(timed, stages.fastgd.Network(SIZES, dtype="float32",
                                                            seed=1).params)

    # every piece of every stage was run once, by some worker
    steps = -(-len(y) // m)
    block = plan.example_block
    blocks = sum(-(-min(m, len(y) - first) // block) for first in range(0, len(y), m))
    row_blocks = max(1, plan.splits.shape[1] - 1)
    assert timing[:, stages.FB_PIECES].sum() == blocks
    assert timing[:, stages.UP_PIECES].sum() == steps * (row_blocks + len(SIZES) - 2)
    assert (timing[:, [stages.FB_WORK, stages.UP_WORK]].sum(axis=0) > 0).all()
    assert (timing[:, :4] >= 0).all()


def test_the_summary_takes_medians_over_rounds(stages):
    rows = np.array([[4.0, 1.0, 2.0, 0.5], [2.0, 3.0, 1.0, 0.25]])
    pieces = np.array([[3, 5], [4, 4]])
    results = [(0.5, rows, pieces), (0.7, rows * 2, pieces), (0.6, rows * 3, pieces)]
    wall, stage_rows, counted = stages.summarise(results)
    assert wall == 0.6
    # the second round's: work summed over the workers, the least and most wait
    assert stage_rows["forward + backward"] == (12.0, 2.0, 6.0)
    assert stage_rows["update"] == (6.0, 0.5, 1.0)
    assert counted.tolist() == [7, 9]


def test_the_floor_loops_do_the_work_they_stand_for(monkeypatch):
    passes = load_script("passes", monkeypatch)
    rng = np.random.default_rng(4)
    width = 5
    X = rng.random((9, 7)).astype(np.float32)
    X[rng.random(X.shape) < 0.5] = 0
    X[3] = 0  # an example with no nonzero input
    indptr, indices, values = fastgd.kernels.nonzero_columns(X)
    W0 = rng.standard_normal((7, width)).astype(np.float32)
    d = rng.standard_normal(width).astype(np.float32)
    order = np.array([4, 0, 3, 8, 4], np.int64)  # example 4 twice
    floor_pass = passes.make_floor_pass(width)
    out = np.full(9, np.nan, np.float32)

    floor_pass(0, order, indptr, indices, values, W0, out, d)
    expected = X @ np.arange(7)
    np.testing.assert_allclose(out[order], expected[order], rtol=1e-6)
    assert np.isnan(out[[1, 2, 5, 6, 7]]).all()  # untouched: not in the order

    floor_pass(1, order, indptr, indices, values, W0, out, d)
    np.testing.assert_allclose(out[order], (X @ W0).sum(axis=1)[order], rtol=1e-5,
                               atol=1e-6)

    updated = W0.copy()
    floor_pass(2, order, indptr, indices, values, updated, out, d)
    counts = np.bincount(order, minlength=9).astype(np.float32)
    np.testing.assert_allclose(updated, W0 + np.outer(counts @ X, d), rtol=1e-5, atol=1e-6)
