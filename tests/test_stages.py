"""benchmarks/stages.py times a copy of the training loop's direct mini-batches: the
copy must train exactly as the kernels do, or its timings describe something else."""

import importlib.util
import pathlib

import numpy as np
import pytest

from fastgd import config

from helpers import random_data, two_threads

SIZES = [20, 12, 5]


@pytest.fixture(scope="module")
def stages():
    folder = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location("stages_benchmark", folder / "stages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
