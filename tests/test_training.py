"""The epoch driver: history, printing, kernel choice, threads, divergence."""

import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest

import fastgd
from fastgd import kernels
from fastgd.training import DIVERGENCE_PATIENCE, History, choose_kernel, diagnose
from fastgd.training.kernel_choice import parallel_thread_counts

from helpers import random_data, two_threads


@pytest.fixture
def data():
    return random_data([8, 6, 3], 40, seed=1)


def test_history_records_each_epoch(data):
    net = fastgd.Network([8, 6, 3], seed=0)
    history = net.SGD(data, 3, 5, 1.0, test_data=data, monitor_training_cost=True, verbose=False)
    assert isinstance(history, History) and len(history) == 3
    assert [r["epoch"] for r in history] == [0, 1, 2]
    for record in history:
        assert record["total"] == 40 and 0 <= record["correct"] <= 40
        assert record["accuracy"] == record["correct"] / 40
        assert record["seconds"] > 0 and math.isfinite(record["cost"])
        assert (record["training_cost"] == pytest.approx(net.cost(*data))
                or record is not history[-1])
    assert history[-1]["training_cost"] == pytest.approx(net.cost(*data), rel=1e-6)
    assert history[-1]["correct"] == net.evaluate(*data)
    assert history.column("correct").shape == (3,)
    assert history.diverged is None
    assert history.info["kernel"] in ("serial", "auto") and history.info["mini_batch_size"] == 5
    assert history.info["kernel_in_use"] in ("serial", "parallel")


def test_prints_the_books_epoch_lines(data, capsys):
    fastgd.Network([8, 6, 3], seed=0).SGD(data, 2, 5, 1.0, test_data=data)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 0: ") and " / 40" in lines[0] and lines[0].endswith(" s)")
    fastgd.Network([8, 6, 3], seed=0).SGD(data, 1, 5, 1.0)
    assert capsys.readouterr().out.startswith("Epoch 0 complete")
    fastgd.Network([8, 6, 3], seed=0).SGD(data, 1, 5, 1.0, verbose=False)
    assert capsys.readouterr().out == ""


def test_zero_epochs_changes_nothing(data):
    net = fastgd.Network([8, 6, 3], seed=0)
    before = net.params.copy()
    assert net.SGD(data, 0, 5, 1.0) == []
    np.testing.assert_array_equal(net.params, before)


def test_full_batch_is_one_step_per_epoch(data):
    """mini_batch_size None and n are the same full-batch gradient descent."""
    a, b = fastgd.Network([8, 6, 3], seed=0), fastgd.Network([8, 6, 3], seed=0)
    a.SGD(data, 2, None, 1.0, verbose=False)
    b.SGD(data, 2, 40, 1.0, verbose=False)
    np.testing.assert_array_equal(a.params, b.params)


def test_summed_update_is_the_mean_update_with_eta_times_m(data):
    a, b = (fastgd.Network([8, 6, 3], seed=0, dtype="float64") for _ in range(2))
    a.SGD(data, 1, 8, 2.0, reduction="mean", verbose=False, shuffle=False)
    b.SGD(data, 1, 8, 0.25, reduction="sum", verbose=False, shuffle=False)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)


def test_shuffle_false_keeps_the_order_and_shuffle_true_does_not(data):
    nets = [fastgd.Network([8, 6, 3], seed=0) for _ in range(3)]
    nets[0].SGD(data, 1, 5, 1.0, shuffle=False, verbose=False)
    nets[1].SGD(data, 1, 5, 1.0, shuffle=False, verbose=False)
    nets[2].SGD(data, 1, 5, 1.0, shuffle=True, verbose=False)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    assert not np.array_equal(nets[0].params, nets[2].params)


def test_kernel_choice():
    assert choose_kernel(10, 1) == ("serial", "1 thread")
    assert choose_kernel(1, 4)[0] == "auto"  # timed at run time, not decided by a constant
    assert choose_kernel(1000, 4, "serial") == ("serial", "asked for")
    assert choose_kernel(1, 1, "parallel") == ("parallel", "asked for")
    with pytest.raises(ValueError, match="kernel must be"):
        choose_kernel(10, 2, "fast")


@pytest.mark.parametrize("threads, counts", [(1, [1]), (2, [2]), (3, [3]), (4, [4, 2]),
                                             (6, [6, 3]), (16, [16, 8, 4, 2])])
def test_auto_times_the_parallel_kernel_on_halves_of_the_threads(threads, counts):
    assert parallel_thread_counts(threads) == counts
    if threads > 1:
        assert " or ".join(map(str, counts)) + " threads" in choose_kernel(10, threads)[1]


# Run with numba allowed 4 threads (on any machine: 4 threads time-share fewer
# cores): auto at 4 threads has three candidates.  `slow` names candidates whose
# every trial sleeps first, so that the others win.
FOUR_THREADS = """
import json, sys, time
import numpy as np
import fastgd
from fastgd.training import Trainer
fastgd.training.trainer.TRIAL_EXAMPLES = 80
slow = json.loads(sys.argv[1])
run = Trainer.run_candidate
threads_used = set()
def slowed(self, candidate, order, start, stop, params=None, buffers=None):
    if stop > start:
        if candidate.label in slow:
            time.sleep(0.05)
        elif self.calibration:  # the epochs after the first calibration
            threads_used.add(candidate.threads)
    return run(self, candidate, order, start, stop, params, buffers)
Trainer.run_candidate = slowed
rng = np.random.default_rng(5)
X = rng.random((3000, 8)); X[rng.random(X.shape) < 0.5] = 0.0
y = rng.integers(0, 3, 3000)
net, ref = fastgd.Network([8, 6, 3], seed=0), fastgd.Network([8, 6, 3], seed=0)
history = net.SGD((X, y), 2, 10, 1.0, threads=4, verbose=False)
ref.SGD((X, y), 2, 10, 1.0, kernel="serial", verbose=False)
first = history.info["calibration"][0]
print(json.dumps(dict(timed=sorted(first["s_per_example"]), chose=first["chose"],
                      in_use=[history.info["kernel_in_use"], history.info["threads_in_use"]],
                      threads_used=sorted(threads_used),
                      same=bool(np.array_equal(net.params, ref.params)))))
"""


@pytest.mark.parametrize("slow, chose, in_use", [
    (["serial", "parallel"], "parallel on 2 threads", ["parallel", 2]),
    (["serial", "parallel on 2 threads"], "parallel", ["parallel", 4]),
])
def test_auto_on_four_threads_can_choose_the_parallel_kernel_on_two(slow, chose, in_use):
    env = dict(os.environ, NUMBA_NUM_THREADS="4")
    result = subprocess.run([sys.executable, "-c", FOUR_THREADS, json.dumps(slow)],
                            cwd=Path(__file__).parent.parent, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["timed"] == ["parallel", "parallel on 2 threads", "serial"]
    assert out["chose"] == chose and out["in_use"] == in_use
    assert out["threads_used"] == [in_use[1]]  # what it chose is what trained
    assert out["same"]  # the serial kernel's bits


@two_threads
def test_auto_times_both_kernels_and_records_the_choice(monkeypatch):
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 40)
    data = random_data([8, 6, 3], 600, seed=5)
    net = fastgd.Network([8, 6, 3], seed=0)
    history = net.SGD(data, 2, 10, 1.0, threads=2, verbose=False)
    assert history.info["kernel"] == "auto"
    first = history.info["calibration"][0]
    assert first["epoch"] == 0 and first["timed_on"] == "training"
    assert set(first["s_per_example"]) == {"serial", "parallel"}
    assert all(s > 0 for s in first["s_per_example"].values())
    assert first["chose"] == min(first["s_per_example"], key=first["s_per_example"].get)
    assert history.info["kernel_in_use"] == history.info["calibration"][-1]["chose"]


@two_threads
def test_auto_times_huge_mini_batches_on_a_copy_of_the_weights(monkeypatch):
    """Full batch: one step per epoch, so the candidates are timed on a throwaway copy."""
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 100)
    data = random_data([8, 6, 3], 300, seed=5)
    net, reference = fastgd.Network([8, 6, 3], seed=0), fastgd.Network([8, 6, 3], seed=0)
    history = net.SGD(data, 2, None, 1.0, threads=2, verbose=False)
    reference.SGD(data, 2, None, 1.0, kernel="serial", verbose=False)
    assert history.info["calibration"][0]["timed_on"] == "a copy of the weights"
    np.testing.assert_array_equal(net.params, reference.params)


def first_calibration_with_delays(monkeypatch, delay):
    """SGD on a small problem whose calibration's trials are slowed down: TRIAL_EXAMPLES
    400 and m = 10 (scouting trials of 50 examples, full ones of 400), each trial
    preceded by delay(name, earlier) seconds of sleep, where earlier lists the sizes
    of that candidate's earlier trials.  Returns (history, each candidate's trials)."""
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 400)
    trials = {"serial": [], "parallel": []}
    run = fastgd.training.Trainer.run_candidate

    def slowed(self, candidate, order, start, stop, params=None):
        if stop > start:
            time.sleep(delay(candidate.name, trials[candidate.name]))
            trials[candidate.name].append(stop - start)
        return run(self, candidate, order, start, stop, params)

    monkeypatch.setattr(fastgd.training.Trainer, "run_candidate", slowed)
    data = random_data([8, 6, 3], 3000, seed=5)
    net = fastgd.Network([8, 6, 3], seed=0)
    return net.SGD(data, 1, 10, 1.0, threads=2, verbose=False), trials


@two_threads
def test_a_kernel_far_slower_in_its_first_trial_is_not_timed_again(monkeypatch):
    """On a busy machine the parallel kernel can be a hundred times slower: the
    calibration then costs it two short trials, not two full ones."""
    # 0.2 s: far more than the serial kernel's whole trial
    history, trials = first_calibration_with_delays(
        monkeypatch, lambda name, earlier: 0.2 if name == "parallel" else 0.0)
    first = history.info["calibration"][0]
    assert first["chose"] == "serial" and history.info["kernel_in_use"] == "serial"
    # two scouting trials: an eighth of 400, in whole mini-batches
    assert trials["parallel"] == [50, 50]
    assert trials["serial"][:4] == [50, 50, 400, 400]
    assert first["s_per_example"]["parallel"] > 2 * first["s_per_example"]["serial"]
    assert len(first["trials"]["parallel"]) == 2 and len(first["trials"]["serial"]) == 4


@two_threads
@pytest.mark.parametrize("slow", [0, 1])
def test_one_slow_scouting_trial_does_not_drop_a_kernel(monkeypatch, slow):
    """A kernel's first run on a new Trainer can pay once what no epoch does (the
    parallel kernel's first slice on a 16-core Xeon: 24 times its later speed),
    and on all the cores of a machine other work stalls a parallel kernel now
    and then: a kernel slow in one of its two scouting trials (the first or the
    second) is timed in full like the others, at its speed."""
    # every trial sleeps alike (far longer than the kernels take, even on a loaded
    # machine), but the parallel kernel's slow scouting trial six times as long
    def delay(name, earlier):
        return 0.3 if name == "parallel" and len(earlier) == slow else 0.05

    history, trials = first_calibration_with_delays(monkeypatch, delay)
    first = history.info["calibration"][0]
    # its four trials; then the kernel chosen (either: their full trials sleep
    # alike) trains the epoch's last 1200 examples, which the spy records too
    assert trials["parallel"][:4] == [50, 50, 400, 400]
    assert trials[first["chose"]][4:] == [1200]
    assert first["s_per_example"]["parallel"] < 0.3 / 50 / 4
    assert first["trials"]["parallel"][slow] > 0.3 / 50


@two_threads
def test_trials_on_a_copy_of_the_weights_have_their_own_lengths(monkeypatch):
    """Full batch: scouting and full trials alike are one mini-batch long, so they
    run on part of it, on a copy of the weights: an eighth of TRIAL_EXAMPLES for
    each scouting trial, TRIAL_EXAMPLES for each full one (a full trial cut to
    the scouting length would time the parallel kernel on one group, which one
    thread runs), and the parallel kernel's at least one chunk (here 256
    examples: on 16 threads, 2048 examples timed the parallel kernel on 8
    groups, and auto chose 8 threads where 16 were three times as fast)."""
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 400)
    monkeypatch.setattr(fastgd.training.trainer, "PARALLEL_CHUNK", 32)
    monkeypatch.setattr(fastgd.training.trainer, "GROUP", 32)
    lengths = {"serial": [], "parallel": []}
    run = fastgd.training.Trainer.run_candidate

    def recorded(self, candidate, order, start, stop, params=None):
        if params is not None:
            lengths[candidate.name].append(stop - start)
        return run(self, candidate, order, start, stop, params)

    monkeypatch.setattr(fastgd.training.Trainer, "run_candidate", recorded)
    net = fastgd.Network([8, 6, 3], seed=0)
    history = net.SGD(random_data([8, 6, 3], 600, seed=5), 1, None, 1.0, threads=2,
                      verbose=False)
    assert history.info["calibration"][0]["timed_on"] == "a copy of the weights"
    assert lengths["serial"] in ([50, 50, 400, 400], [50, 50]), lengths
    assert lengths["parallel"] in ([256, 256, 400, 400], [256, 256]), lengths
    assert len(lengths["serial"]) == 4 or len(lengths["parallel"]) == 4


@two_threads
def test_each_trial_of_the_parallel_kernel_follows_a_call_that_wakes_its_threads(monkeypatch):
    """Threads asleep since the parallel kernel's last call take a while to wake
    (on a 16-core VM the 16-thread candidate's short trials ran four times
    slower than its epochs): an empty call, untimed, comes right before each of
    its trials; the serial kernel's have none."""
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 400)
    calls = []
    run = fastgd.training.Trainer.run_candidate

    def recorded(self, candidate, order, start, stop, params=None, buffers=None):
        calls.append((candidate.label, stop - start))
        return run(self, candidate, order, start, stop, params, buffers)

    monkeypatch.setattr(fastgd.training.Trainer, "run_candidate", recorded)
    trainer = fastgd.training.Trainer(fastgd.Network([8, 6, 3], seed=0),
                                      random_data([8, 6, 3], 3000, seed=5), 10, 1.0, threads=2)
    calls.clear()  # the empty runs that compile or load the kernels
    trainer.run_epoch(np.arange(3000))
    first = trainer.calibration[0]
    trials = [i for i, (_, n) in enumerate(calls) if n > 0]
    parallel = [i for i in trials if calls[i][0] == "parallel"][:len(first["trials"]["parallel"])]
    serial = [i for i in trials if calls[i][0] == "serial"][:len(first["trials"]["serial"])]
    assert parallel and serial
    assert all(calls[i - 1] == ("parallel", 0) for i in parallel)
    assert all(calls[i - 1][1] > 0 for i in serial if i > 0)


@two_threads
def test_a_kernel_dropped_after_scouting_is_not_chosen(monkeypatch):
    """A candidate dropped after scouting (more than TRIAL_CUTOFF times slower) is
    out, even when the survivor's slower full trial is slower still than the
    dropped one's scouting (on a busy 2-core machine at full batch, that chose
    the parallel kernel, and its epochs took twice the serial kernel's)."""
    def delay(name, earlier):
        if name == "parallel":
            return 0.05  # 1 ms per example in both scouting trials
        return 0.8 if len(earlier) == 3 else 0.0  # the second full trial: 2 ms per example

    history, trials = first_calibration_with_delays(monkeypatch, delay)
    first = history.info["calibration"][0]
    assert trials["parallel"] == [50, 50] and trials["serial"][:4] == [50, 50, 400, 400]
    assert first["s_per_example"]["serial"] > first["s_per_example"]["parallel"]
    assert first["chose"] == "serial"


def _one_slow_parallel_trial(name, earlier):
    """Sleeps far longer than the kernels take, even on a loaded machine: both
    kernels' scouting trials alike (neither is dropped), the serial kernel's full
    trials a steady 250 us per example, the parallel kernel's first full trial
    none (the fastest trial of all) and its second 1 ms per example."""
    if len(earlier) < 2:
        return 0.05
    if name == "serial":
        return 0.1
    return 0.4 if len(earlier) == 3 else 0.0


@two_threads
def test_one_slow_trial_out_of_two_is_enough_to_lose(monkeypatch):
    """On a busy machine the parallel kernel's speed swings with where the OS runs
    the other work: a candidate counts as fast as its slower full trial, so one
    lucky trial does not choose it."""
    history, trials = first_calibration_with_delays(monkeypatch, _one_slow_parallel_trial)
    first = history.info["calibration"][0]
    assert trials["parallel"] == [50, 50, 400, 400]
    assert first["chose"] == "serial"
    assert first["s_per_example"]["parallel"] > 0.4 / 400  # the slow trial is the one recorded


@two_threads
def test_only_a_drift_that_can_change_the_choice_times_the_kernels_again():
    """A load that comes slows the parallel kernel most: the parallel kernel is
    timed again when it slows down, the serial one when it speeds up (the load
    went away), and neither the other way round (under load, timing a serial
    kernel that slowed would cost a slower parallel trial on every segment)."""
    data = random_data([8, 6, 3], 600, seed=5)
    trainer = fastgd.training.Trainer(fastgd.Network([8, 6, 3], seed=0), data, 10, 1.0,
                                      threads=2)
    trainer._calibrate(np.arange(600), 0, 0, 600)  # chooses, and sets the next recheck
    long = fastgd.training.trainer.TRIAL_EXAMPLES
    for name, slower, faster in (("serial", False, True), ("parallel", True, False)):
        trainer.current = next(c for c in trainer.candidates if c.name == name)
        trainer._reference = 1e-6
        trainer._trained = 0
        for s_per_example, expected in ((2e-6, slower), (1e-6, False), (0.5e-6, faster)):
            trainer._watch(s_per_example, long)
            assert trainer._recheck is expected, (name, s_per_example)
        trainer._watch(0.5e-6, long - 1)  # too short a segment to judge
        assert trainer._recheck is False


@two_threads
def test_a_drift_in_speed_times_the_kernels_again(monkeypatch):
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 20)
    monkeypatch.setattr(fastgd.training.trainer, "SEGMENT", 100)
    monkeypatch.setattr(fastgd.training.trainer, "DRIFT", -10.0)  # every segment counts as drifted
    data = random_data([8, 6, 3], 600, seed=5)
    net = fastgd.Network([8, 6, 3], seed=0)
    history = net.SGD(data, 2, 10, 1.0, threads=2, verbose=False)
    assert len(history.info["calibration"]) > 2


@two_threads
def test_threads_are_set_for_the_call_and_restored(data):
    before = numba.get_num_threads()
    net = fastgd.Network([8, 6, 3], seed=0)
    history = net.SGD(data, 1, 20, 1.0, threads=1, kernel="parallel", verbose=False)
    assert history.info["threads"] == 1
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError):
        net.SGD(data, 1, 20, 1.0, threads=0)
    assert numba.get_num_threads() == before


def test_nan_cost_stops_training_with_the_books_diagnosis(data, monkeypatch):
    """A NaN cost ends training after that epoch, whatever on_divergence says.

    (Sigmoid networks saturate rather than overflow, so a NaN is forced here.)"""
    import fastgd.kernels as kernels

    def poisoned(examples, idx, start, stop, m, eta, mean, params, *rest):
        params[:] = np.nan
        return float("nan")

    monkeypatch.setattr(fastgd.config, "SPECIALIZE", "now")
    monkeypatch.setattr(kernels.kernels([8, 6, 3], "float32"), "train_serial", poisoned)
    for on_divergence in ("stop", "warn"):
        net = fastgd.Network([8, 6, 3], seed=0)
        with pytest.warns(fastgd.DivergenceWarning, match="eta = 7 is too large"):
            history = net.SGD(data, 5, 5, 7.0, verbose=False, on_divergence=on_divergence,
                              kernel="serial")  # the poisoned one, and nothing to compile
        assert len(history) == 1 and "cost is nan" in history.diverged
    with pytest.raises(fastgd.DivergenceError, match="too large"):
        fastgd.Network([8, 6, 3], seed=0).SGD(data, 5, 5, 7.0, verbose=False,
                                            on_divergence="raise", kernel="serial")


def test_training_refuses_non_finite_weights(data):
    net = fastgd.Network([8, 6, 3], seed=0)
    net.weights[0][1, 2] = np.inf
    with pytest.raises(ValueError, match="not finite"):
        net.SGD(data, 1, 5, 1.0)


def history_of(costs, pinned=0, accuracy=None):
    history = History()
    for epoch, cost in enumerate(costs):
        record = {"epoch": epoch, "cost": cost, "pinned_outputs": pinned}
        if accuracy is not None:
            record["accuracy"] = accuracy
        history.append(record)
    return history


def test_diagnose_finds_a_cost_that_grows_well_above_its_best():
    best = 0.1
    rising = [0.3, 0.2, best, 0.13, 0.15, 0.2]  # each of the last 3 > 1.1 * best
    assert DIVERGENCE_PATIENCE == 3
    assert "diverging" in diagnose(history_of(rising), 5.0, 10)
    assert "best so far (0.1" in diagnose(history_of(rising), 5.0, 10)
    # one of the last three within the tolerance of the best: noise, not divergence
    assert diagnose(history_of([0.3, 0.2, best, 0.13, 0.105, 0.2]), 5.0, 10) is None
    assert diagnose(history_of([0.3, 0.2]), 5.0, 10) is None


def test_diagnose_ignores_a_healthy_wiggle():
    """The running cost of a healthy run falls, then wiggles by a few per cent: the
    old rule (3 rises in a row) stopped such runs; the tolerance must not."""
    rng = np.random.default_rng(0)
    costs = 0.02 + 0.05 * np.exp(-np.arange(200) / 5) + 0.0004 * rng.standard_normal(200)
    costs[150:154] = costs[149] * np.array([1.01, 1.02, 1.03, 1.04])  # 4 rises in a row
    for k in range(1, 201):
        assert diagnose(history_of(costs[:k]), 3.0, 10) is None, k


def test_diagnose_finds_saturated_outputs_and_stalls():
    saturated = history_of([0.5, 0.5], pinned=10, accuracy=0.097)
    verdict = diagnose(saturated, 100.0, 10)
    assert "saturated" in verdict and "10 of the 10 output neurons" in verdict
    assert "eta = 100 is probably too large" in verdict and "accuracy 9.7%" in verdict
    assert diagnose(history_of([0.5], pinned=10), 100.0, 10) is None  # one epoch is not enough
    assert diagnose(history_of([0.5, 0.4], pinned=4), 3.0, 10) is None  # a minority pinned
    stalled = history_of([0.45, 0.449, 0.4481, 0.448])
    assert "stalled" in diagnose(stalled, 30.0, 10) and "0.45" in diagnose(stalled, 30.0, 10)
    assert diagnose(history_of([0.45, 0.449, 0.4481, 0.44]), 30.0, 10) is None  # fell 2%


def _train_with_the_method(net, data):
    return net.SGD(data, 1, 5, 1.0, verbose=False)


def _train_with_the_function(net, data):
    return fastgd.SGD(net, data, 1, 5, 1.0, verbose=False)


def test_divergence_warning_points_at_the_callers_line(data, monkeypatch):
    import fastgd.training.sgd as sgd
    monkeypatch.setattr(sgd, "diagnose", lambda history, eta, n: "made up diagnosis")
    for train in (_train_with_the_method, _train_with_the_function):
        with pytest.warns(fastgd.DivergenceWarning) as record:
            train(fastgd.Network([8, 6, 3], seed=0), data)
        assert (record[0].filename, record[0].lineno) == (__file__,
                                                          train.__code__.co_firstlineno + 1)


def test_on_divergence_warn_keeps_training_while_numbers_are_finite(data, monkeypatch):
    import fastgd.training.sgd as sgd
    monkeypatch.setattr(sgd, "diagnose", lambda history, eta, n: "made up diagnosis")
    net = fastgd.Network([8, 6, 3], seed=0)
    with pytest.warns(fastgd.DivergenceWarning, match="made up"):
        history = net.SGD(data, 3, 5, 1.0, verbose=False, on_divergence="warn")
    assert len(history) == 3 and history.diverged == "made up diagnosis"
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        history = fastgd.Network([8, 6, 3], seed=0).SGD(data, 3, 5, 1.0, verbose=False)
    assert len(history) == 1  # "stop" is the default


def test_the_kernel_is_compiled_before_the_first_epoch_is_timed(data):
    """Trainer compiles (or loads) its kernel with an empty run: no training happens."""
    net = fastgd.Network([8, 6, 3], seed=0)
    before = net.params.copy()
    trainer = fastgd.Trainer(net, data, 5, 1.0, kernel="serial")
    assert kernels.dispatcher(trainer.kernel).signatures  # compiled for these argument types
    np.testing.assert_array_equal(net.params, before)


class NotCompiling:
    """A background compile of the specialised kernels that never finishes."""

    def __init__(self, trainer):
        pass

    def done(self):
        return False

    def cancel(self):  # the run has ended
        pass


# [5, 4, 3, 2] in float64: a specialised module test_kernels.py compiles too (a shape of
# its own would cost a compile of a minute for this test alone)
@pytest.mark.parametrize("specialize, lmbda, says", [
    pytest.param("now", 0.0, "Compiling fastgd's kernels for a [5, 4, 3, 2] network",
                 marks=pytest.mark.specialised),
    ("never", 0.0, "Compiling fastgd's generic kernels (once for every network shape)"),
    ("background", 0.0, "Compiling fastgd's starter kernel (first run of fastgd only; the "
     "kernels specialised for a [5, 4, 3, 2] network follow in the background)"),
    # regularized: the starter does not do it
    ("background", 0.1, "Compiling fastgd's generic kernels (first run of fastgd only; the "
     "kernels specialised for a [5, 4, 3, 2] network follow in the background)")])
def test_verbose_training_says_when_it_compiles(capsys, monkeypatch, specialize, lmbda, says):
    import fastgd.kernels as kernels
    monkeypatch.setattr(fastgd.config, "SPECIALIZE", specialize)
    # what is said, not the background compile (a process per call, a minute or more
    # each; test_generic.py compiles in the background)
    monkeypatch.setattr(fastgd.training.trainer, "Specialization", NotCompiling)
    sizes = [5, 4, 3, 2]
    data = random_data(sizes, 40, seed=1)
    net = fastgd.Network(sizes, seed=0, dtype="float64")
    net.SGD(data, 1, 5, 1.0, lmbda=lmbda)  # compiles, unless an earlier test did
    module = (kernels.kernels(net.sizes, net.dtype) if specialize == "now"
              else kernels.starter.kernels("quadratic") if "starter" in says
              else kernels.generic_kernels(net.sizes))
    assert kernels.on_disk(module.train_serial) is True  # cached now
    capsys.readouterr()
    net.SGD(data, 1, 5, 1.0, lmbda=lmbda)
    assert "Compiling" not in capsys.readouterr().err
    monkeypatch.setattr(kernels, "ready", lambda *args: False)  # as on an empty cache
    net.SGD(data, 1, 5, 1.0, lmbda=lmbda)
    assert says in capsys.readouterr().err


def test_kernels_loaded_from_the_cache_are_not_recorded_as_a_compile(data, tmp_path,
                                                                      monkeypatch):
    """The notice shows (as when another process had just written the kernels), but
    numba loads them from its cache: that is not this machine's compile time, and
    an estimate from it said "about 0 s" before a real compile."""
    import io

    import fastgd.kernels as kernels
    import fastgd.training.specialization as specialization
    net = fastgd.Network([8, 6, 3], seed=0)
    fastgd.Trainer(net, data, 5, 1.0, kernel="serial")  # compiled, or loaded, now
    records = tmp_path / "compile-seconds.json"
    monkeypatch.setattr(specialization, "_compile_record_path", lambda: str(records))
    monkeypatch.setattr(kernels, "ready", lambda *args: False)
    stream = io.StringIO()
    with specialization.compile_notice(net, stream=stream, generic=True):
        pass
    assert "Compiling fastgd's generic kernels" in stream.getvalue()
    assert not records.exists()
    # a block in which a kernel of the module missed numba's cache is recorded
    misses = iter([0, 1])
    monkeypatch.setattr(specialization, "_cache_misses", lambda module: next(misses))
    with specialization.compile_notice(net, stream=stream, generic=True):
        pass
    assert list(json.loads(records.read_text())) == ["generic"]


@two_threads
def test_a_networks_next_call_starts_from_its_last_calibration(monkeypatch):
    """auto times the kernels once for a series of 1-epoch calls, not once per call,
    and a network with other settings (or another network) is timed afresh."""
    monkeypatch.setattr(fastgd.training.trainer, "TRIAL_EXAMPLES", 40)
    monkeypatch.setattr(fastgd.training.trainer, "DRIFT", 1e9)  # timed again only when due
    data = random_data([8, 6, 3], 600, seed=5)
    net, serial = fastgd.Network([8, 6, 3], seed=0), fastgd.Network([8, 6, 3], seed=0)
    first = net.SGD(data, 1, 10, 1.0, threads=2, verbose=False)
    second = net.SGD(data, 1, 10, 1.0, threads=2, verbose=False)
    assert [c["timed_on"] for c in first.info["calibration"]] == ["training"]
    assert [c["timed_on"] for c in second.info["calibration"]] == ["an earlier call"]
    assert second.info["calibration"][0]["chose"] == first.info["calibration"][-1]["chose"]
    for _ in range(2):
        serial.SGD(data, 1, 10, 1.0, kernel="serial", verbose=False)
    assert net.params.tobytes() == serial.params.tobytes()
    other_m = net.SGD(data, 1, 20, 1.0, threads=2, verbose=False)
    assert other_m.info["calibration"][0]["timed_on"] == "training"
    # the recheck schedule goes on across calls: RECHECK_EPOCHS epochs after the first timing
    timings = [net.SGD(data, 1, 10, 1.0, threads=2, verbose=False).info["calibration"]
               for _ in range(fastgd.training.trainer.RECHECK_EPOCHS)]
    assert any(entry["timed_on"] == "training" for calls in timings for entry in calls)


@pytest.mark.parametrize("start, stop", [(-1, 5), (5, 4), (0, 41), (40, 41)])
def test_a_slice_outside_the_order_is_refused_before_a_kernel_reads_it(data, start, stop):
    """The kernels index order without bounds checks: a slice past its end would
    read whatever memory follows (this crashed a benchmark script)."""
    X, y = data
    net = fastgd.Network([8, 6, 3], seed=1)
    trainer = fastgd.training.Trainer(net, (X, y), 5, 0.5, kernel="serial",
                                      threads=1)
    before = net.params.copy()
    with pytest.raises(ValueError, match="start and stop must satisfy"):
        trainer.run_candidate(trainer.current, np.arange(40), start, stop)
    np.testing.assert_array_equal(net.params, before)
    trainer.run_candidate(trainer.current, np.arange(40), 35, 40)  # the last one
    assert not np.array_equal(net.params, before)
