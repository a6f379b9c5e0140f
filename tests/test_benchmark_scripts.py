"""The benchmark scripts that time copies or floors of the kernels' loops: a copy must
train exactly as the kernels do (benchmarks/stages.py), and a floor must do the
work it stands for (benchmarks/passes.py), and two drivers compared must train
alike (benchmarks/descend_pointer.py), or their timings describe something else."""

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


def model_inputs(**direct):
    """Inputs for benchmarks/threads_model.py with no sharing and no waits: only
    its counting of pieces shapes the times."""
    d = {"f_serial": 1.0, "f": 1.0, "u": 0.5, "o": 0.0, "s2_forward": 0.0,
         "s2_update": 0.0, "w2": 0.0}
    d.update(direct)
    return {"examples": 51_200, "n_params": 25_616, "direct_max": 256, "direct": d,
            "groups": {"per_example": 1.0, "add_per_number": 0.0, "apply_per_number": 0.0,
                       "s2": 0.0, "w2": 0.0},
            "hogwild": {"10": {"t_ex": 1.0, "t_merge": 0.0, "merge_every": 100, "c_x": 10.0}}}


def test_the_threads_model_counts_the_pieces_a_step_can_be_shared_in(monkeypatch):
    model = load_script("threads_model", monkeypatch)
    inputs = model_inputs()
    n = inputs["examples"]

    # m = 100: seven blocks of examples (six of 16, one of 4), so more than 7
    # threads add nothing to the forward and backward passes, while the update's
    # row blocks go on sharing
    times = {P: model.direct_epoch(inputs, n, 100, P) for P in (1, 2, 7, 8, 64)}
    steps = n // 100
    assert times[1] == n * 1.5
    assert times[2] == pytest.approx(steps * (52 + 100 * 0.5 / 2))  # blocks 0, 2, 4, 6
    assert times[7] == pytest.approx(steps * (16 + 100 * 0.5 / 7))
    assert times[64] == pytest.approx(steps * (16 + 100 * 0.5 / 64))

    # m = 1000: four groups of 256 per step, so beyond 4 threads the groups stop
    # sharing out; a full batch's chunks grow with the threads, 2 P groups each
    m1000 = {P: model.group_epoch(inputs, n, 1000, P, 25_616) for P in (1, 2, 4, 8, 64)}
    assert m1000[1] == pytest.approx(n)
    assert m1000[4] == pytest.approx(n / 4 * 1024 / 1000, rel=0.03)
    assert m1000[64] == m1000[8] == m1000[4]
    full = {P: model.group_epoch(inputs, n, n, P, 25_616) for P in (1, 8, 64)}
    assert full[8] == pytest.approx(n / 8)
    # 64 threads: chunks of 128 groups, then the 72 left: two rounds of groups each
    assert full[64] == pytest.approx(4 * 256)

    # Hogwild!: the threads share out the examples until the merges' fetches,
    # one at a time, take the whole epoch; a merge every STALE_EXAMPLES / P
    # examples where that is sooner than every 100 (160 / 2 = 80 on 2 threads, so
    # 640 merges of 10 s; 20 on 8; one mini-batch of 10 on 64)
    assert model.STALE_EXAMPLES == 160
    hogwild = {P: model.hogwild_epoch(inputs, n, 10, P) for P in (1, 2, 8, 64)}
    assert hogwild[1] == n
    assert hogwild[2] == pytest.approx(n / 2 + 640 / 2 * 10)
    assert hogwild[8] == pytest.approx(n / 20 * 10)
    assert hogwild[64] == pytest.approx(n / 10 * 10)


def test_the_threads_model_grows_waits_and_sharing_with_the_threads(monkeypatch):
    model = load_script("threads_model", monkeypatch)
    assert model.sharing(0.2, 1) == 0 and model.sharing(0.2, 2) == pytest.approx(0.2)
    assert model.sharing(0.2, 64) == pytest.approx(0.2 * 2 * 63 / 64)
    assert model.wait(1e-6, 1) == 0 and model.wait(1e-6, 2) == 1e-6
    assert model.wait(1e-6, 64) == pytest.approx(6e-6)
    slow = model_inputs(s2_update=0.5, w2=2.0)
    fast = model_inputs()
    n = fast["examples"]
    assert model.direct_epoch(slow, n, 100, 1) == model.direct_epoch(fast, n, 100, 1)
    assert model.direct_epoch(slow, n, 100, 4) > model.direct_epoch(fast, n, 100, 4)


@two_threads
@pytest.mark.slow  # a parallel driver of its own to compile (about 10 s)
def test_the_linked_copy_trains_as_the_pointer_driver_does():
    descend_pointer = load_script("descend_pointer")
    X, y = random_data(SIZES, 203, seed=5)
    net, trainer, args = descend_pointer.setup((X, y), 20, 2, specialize=config.SPECIALIZE,
                                               sizes=SIZES)
    start = net.params.copy()
    drivers = {"pointer": trainer.module.train_parallel,
               "linked": descend_pointer.linked_driver(trainer.module)}
    seconds, weights = descend_pointer.epochs(drivers, net, args, 2, rounds=1)
    np.testing.assert_array_equal(weights["pointer"], weights["linked"])
    assert not np.array_equal(weights["pointer"], start)
    assert all(len(times) == 1 and times[0] > 0 for times in seconds.values())
    assert all(cost > 0 for cost in descend_pointer.call_cost(drivers, args, 2, calls=3,
                                                              rounds=1).values())


def test_hogwild_script_runs_each_thread_count_once(monkeypatch):
    hogwild = load_script("hogwild", monkeypatch)
    assert hogwild.speed_cases([2]) == [("serial", 1), ("hogwild", 1), ("hogwild", 2)]
    assert hogwild.speed_cases([16, 2, 1, 2]) == [("serial", 1), ("hogwild", 1),
                                                  ("hogwild", 2), ("hogwild", 16)]
    assert hogwild.accuracy_cases([4, 2]) == [("serial", 1), ("hogwild", 2), ("hogwild", 4)]


def test_many_cores_script_is_valid_bash():
    """benchmarks/many_cores.sh runs only where a machine with many cores is lent:
    at least its syntax is checked here."""
    import subprocess
    script = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "many_cores.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@two_threads
def test_every_count_of_row_blocks_gives_the_serial_bits():
    """benchmarks/row_blocks.py compares the counts' speeds: each must train the
    same weights, or the comparison is of different work."""
    row_blocks = load_script("row_blocks")
    X, y = random_data(SIZES, 120, seed=8)
    net = fastgd.Network(SIZES, dtype="float32", seed=3)
    made = row_blocks.trainers(net, (X, y), 4, specialize=config.SPECIALIZE)
    assert [plan[2] for name, t in made.items() if name != "serial"
            for plan in t.plans] == [2, 4, 8]  # row blocks of each plan, on 2 threads
    order = np.random.default_rng(4).permutation(len(y)).astype(np.int64)
    _, weights = row_blocks.take_turns(net, made, order, 1)
    assert not np.array_equal(weights["serial"], net.params)
    for count in row_blocks.COUNTS:
        np.testing.assert_array_equal(weights[count], weights["serial"])
