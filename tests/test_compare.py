"""fastgd.compare: time to accuracy of online, mini-batch and full-batch training, and
its command, fastgd.cli.compare."""

import argparse
import json
import sys
import time

import numpy as np
import pytest

import fastgd
from fastgd import compare, plots
from fastgd.cli import compare as compare_cli
from fastgd.cli.compare import format_report
from fastgd.compare import _checkpoints, sweep_eta, time_to_accuracy, train_curve


@pytest.fixture(scope="module")
def small():
    """2,000 training, 500 validation and 500 test inputs of MNIST."""
    training, validation, test = fastgd.load_mnist()
    cut = lambda d, k: (d[0][:k], d[1][:k])  # noqa: E731
    return cut(training, 2000), cut(validation, 500), cut(test, 500)


@pytest.fixture
def compiled(mnist):
    """The kernels time_to_accuracy trains and evaluates MNIST with, compiled (or
    loaded) before a test that times a wall-clock bound: the bound cannot cut a
    compile short, and a cold one is not what such a test checks."""
    training, _, test = mnist
    net = fastgd.Network([784, 30, 10], seed=0)
    net.SGD((training[0][:100], training[1][:100]), 1, 10, 3.0, verbose=False)
    net.evaluate(*test)


def test_time_to_target_is_first_recorded_point_reaching_it(small):
    training, _, test = small
    result = time_to_accuracy(training, test, modes=(1, 10, None), etas=(1.0, 3.0, 30.0),
                              max_seconds=None, max_epochs=3, targets=(0.5, 0.8, 0.999),
                              evaluations_per_epoch=4)
    assert result["targets"] == [0.5, 0.8, 0.999]
    reached_any = False
    for run in result["runs"]:
        curve = run["curve"]
        assert curve[0]["seconds"] == 0 and curve[0]["epochs"] == 0
        assert all(b["seconds"] >= a["seconds"] for a, b in zip(curve, curve[1:]))
        assert curve[-1]["epochs"] == pytest.approx(3.0)
        for entry in run["reached"]:
            hits = [p for p in curve if p["accuracy"] >= entry["target"]]
            if hits:
                reached_any = True
                assert entry["seconds"] == hits[0]["seconds"]
                assert entry["epochs"] == hits[0]["epochs"]
                before = curve[:curve.index(hits[0])]
                assert all(p["accuracy"] < entry["target"] for p in before)
            else:
                assert entry["seconds"] is None and entry["epochs"] is None
        assert run["best_accuracy"] == max(p["accuracy"] for p in curve)
        assert run["reached"][-1]["seconds"] is None      # 99.9% on 2,000 inputs: no
    assert reached_any
    # The table prints what the curve says.
    lines = format_report(result)
    online = next(line for line in lines if line.startswith("m=1 (online)"))
    first = result["runs"][0]["reached"][0]
    assert f"{first['seconds']:.2f}" in online
    assert "not reached" in online


def test_not_reached_when_budget_too_small(small):
    training, _, test = small
    result = time_to_accuracy(training, test, modes=(10,), etas=(3.0,), max_seconds=None,
                              max_epochs=1, evaluations_per_epoch=1, targets=(0.9, 0.95))
    run = result["runs"][0]
    assert len(run["curve"]) == 2 and run["stopped"] == "max_epochs"
    assert run["curve"][-1]["accuracy"] < 0.9  # 1 epoch over 2,000 inputs
    assert [e["seconds"] for e in run["reached"]] == [None, None]
    row = next(line for line in format_report(result) if line.startswith("m=10"))
    assert row.count("not reached") == 4


def test_seconds_budget_stops_and_excludes_evaluation(small, monkeypatch):
    training, _, test = small
    real = fastgd.Network.evaluation
    calls = []

    def slow(self, X, y, **kwargs):
        calls.append(1)
        time.sleep(0.02)
        return real(self, X, y, **kwargs)
    monkeypatch.setattr(fastgd.Network, "evaluation", slow)
    tic = time.perf_counter()
    run = train_curve(fastgd.Network([784, 30, 10], seed=0), training, test, 10, 3.0,
                      max_seconds=0.05, evaluations_per_epoch=20)
    wall = time.perf_counter() - tic
    assert run["stopped"] == "max_seconds"
    curve = run["curve"]
    assert curve[-1]["seconds"] >= 0.05
    assert all(p["seconds"] < 0.05 for p in curve[:-1])
    # the 20 ms per evaluation is not on the training clock
    assert wall - curve[-1]["seconds"] >= 0.02 * (len(curve) - 1)


def test_same_initial_weights_for_every_mode(small):
    training, _, test = small
    result = time_to_accuracy(training, test, modes=(1, 100, None), etas=(1, 10, 30),
                              seed=7, max_seconds=None, max_epochs=1, evaluations_per_epoch=1)
    expected = compare._fingerprint(fastgd.Network([784, 30, 10], seed=7))
    assert {run["initial_params_sha256"] for run in result["runs"]} == {expected}
    assert len({run["curve"][0]["correct"] for run in result["runs"]}) == 1
    assert [run["mini_batch_size"] for run in result["runs"]] == [1, 100, 2000]


def test_pieces_are_whole_mini_batches_and_match_sgd(small):
    training, _, test = small
    marks = _checkpoints(100, 7, 10)
    assert len(marks) == 10 and marks[-1] == 100 and marks == sorted(set(marks))
    assert all(c % 7 == 0 for c in marks[:-1])
    assert all(abs(c - 10 * (i + 1)) <= 7 for i, c in enumerate(marks))
    assert _checkpoints(100, 100, 10) == [100]
    net = fastgd.Network([784, 30, 10], seed=3)
    run = train_curve(net, training, test, 30, 3.0, max_epochs=2, evaluations_per_epoch=7)
    assert all(p["examples"] % 2000 % 30 == 0 for p in run["curve"])  # whole mini-batches
    book = fastgd.Network([784, 30, 10], seed=3)
    book.SGD(training, 2, 30, 3.0, verbose=False)
    np.testing.assert_array_equal(net.params, book.params)


def test_sweep_picks_best_validation_accuracy(small, monkeypatch):
    training, validation, test = small
    scores = {0.3: 0.5, 1.0: 0.7, 3.0: 0.9, 10.0: 0.9, 30.0: 0.2}
    seen = []

    def fake(net, training_data, eval_data, m, eta, **kw):
        seen.append(eval_data)
        return {"curve": [{"accuracy": scores[eta], "correct": 0, "total": 1,
                           "seconds": 1.0, "epochs": 1.0}], "stopped": "max_seconds",
                "wall_seconds": 1.0}
    monkeypatch.setattr(compare, "train_curve", fake)
    sweep = sweep_eta(training, validation, 10, list(scores))
    assert sweep["chosen_eta"] == 3.0                   # tie with 10: the smaller eta
    assert [t["eta"] for t in sweep["trials"]] == sorted(scores)
    assert all(d is validation for d in seen)          # scored on validation, not test


def test_real_sweep_is_part_of_the_result(small):
    training, validation, test = small
    result = time_to_accuracy(training, test, modes=(10, None), validation_data=validation,
                              eta_grid=(1, 3, 100), sweep_seconds=None, sweep_epochs=1,
                              max_seconds=None, max_epochs=1, evaluations_per_epoch=1)
    for s, run in zip(result["sweep"], result["runs"]):
        best = max(t["accuracy"] for t in s["trials"])
        chosen = min(t["eta"] for t in s["trials"] if t["accuracy"] == best)
        assert s["chosen_eta"] == chosen == run["eta"]
        assert all(t["total"] == 500 and t["epochs"] == 1 for t in s["trials"])
    assert "eta sweep" in format_report(result)[0]
    json.dumps(result)  # serializable


@pytest.mark.parametrize("kwargs, name", [
    (dict(modes=(0,)), "modes"),
    (dict(modes=(5000,)), "modes"),
    (dict(modes=(1, 1)), "modes"),
    (dict(modes="1,10"), "modes"),
    (dict(modes=(1.5,)), "modes"),
    (dict(etas=(1.0, 2.0)), "etas"),
    (dict(etas=(-1.0,)), "etas"),
    (dict(targets=(1.5,)), "targets"),
    (dict(max_seconds=-1.0), "max_seconds"),
    (dict(max_seconds=None, max_epochs=None), "max_seconds"),
    (dict(max_epochs=0), "max_epochs"),
    (dict(evaluations_per_epoch=0), "evaluations_per_epoch"),
    (dict(seed=-1), "seed"),
    (dict(etas=None), "validation_data"),
])
def test_bad_inputs_name_the_argument(small, kwargs, name):
    training, _, test = small
    args = dict(modes=(10,), etas=(3.0,), max_epochs=1)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=name):
        time_to_accuracy(training, test, **args)


def test_bad_data_names_the_argument(small):
    training, _, test = small
    with pytest.raises(ValueError, match="eval_data"):
        time_to_accuracy(training, (test[0][:, :100], test[1]), modes=(10,), etas=(3,))
    with pytest.raises((ValueError, TypeError), match="training_data"):
        time_to_accuracy((training[0], training[1][:5]), test, modes=(10,), etas=(3,))


def _parser():
    parser = argparse.ArgumentParser(prog="fastgd")
    compare_cli.add_parsers(parser.add_subparsers(dest="command"))
    return parser


def test_cli_hook_end_to_end(tmp_path, capsys):
    png, md = tmp_path / "tta.png", tmp_path / "tta.md"
    argv = ["compare", "--train-size", "500", "--modes", "1,full", "--eta-grid", "1,30",
            "--sweep-seconds", "0.02", "--max-epochs", "2", "--max-seconds", "5",
            "--evaluations-per-epoch", "2", "--markdown", str(md)]
    try:
        import matplotlib  # noqa: F401
        argv += ["--out", str(png)]
        plotting = True
    except ImportError:
        plotting = False
    args = _parser().parse_args(argv)
    assert args.modes == [1, None]
    assert compare_cli.compare_command(args) == 0
    out = capsys.readouterr().out
    assert "eta sweep" in out and "s to 90%" in out and "full batch (m=500)" in out
    assert "| m=1 (online) |" in md.read_text()
    if plotting:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # no overwrite without --overwrite, and it fails before training
        with pytest.raises(FileExistsError, match="--out"):
            compare_cli.compare_command(_parser().parse_args(argv))


def test_cli_json_and_etas(capsys):
    args = _parser().parse_args(["compare", "--train-size", "300", "--modes", "10,100",
                                 "--etas", "3,10", "--max-epochs", "1",
                                 "--evaluations-per-epoch", "1", "--json"])
    assert compare_cli.compare_command(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sweep"] is None
    assert [run["eta"] for run in result["runs"]] == [3.0, 10.0]
    assert result["eval_name"] == "test" and result["eval_size"] == 10000


def test_cli_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["compare", "--modes", "1,x"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["compare", "--etas", "1,-3"])
    with pytest.raises(ValueError, match="--etas"):
        compare_cli.compare_command(_parser().parse_args(["compare", "--modes", "1,10",
                                                      "--etas", "3"]))
    with pytest.raises(ValueError, match="--modes"):
        compare_cli.compare_command(_parser().parse_args(["compare", "--train-size", "50",
                                                      "--modes", "100", "--etas", "3"]))


def _tiny_result(small):
    training, _, test = small
    return time_to_accuracy((training[0][:300], training[1][:300]), test, modes=(1, None),
                            etas=(1, 30), max_seconds=None, max_epochs=2,
                            evaluations_per_epoch=2, targets=(0.5,))


def test_plot_refuses_to_overwrite(small, tmp_path):
    pytest.importorskip("matplotlib")
    result = _tiny_result(small)
    path = tmp_path / "plot.png"
    plots.save(plots.time_to_accuracy(result), path)
    assert path.stat().st_size > 0
    with pytest.raises(FileExistsError, match="overwrite"):
        plots.save(plots.time_to_accuracy(result), path)
    plots.save(plots.time_to_accuracy(result), path, overwrite=True)


def test_plot_without_matplotlib(small, tmp_path, monkeypatch):
    result = _tiny_result(small)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'fastgd\[plot\]'"):
        plots.time_to_accuracy(result)
    assert not (tmp_path / "plot.png").exists()


def test_progress_reports_every_piece_and_the_end_of_each_stage(small):
    training, validation, test = small
    events = []
    result = time_to_accuracy(training, test, modes=(10, None), validation_data=validation,
                              eta_grid=(1, 3), sweep_seconds=None, sweep_epochs=1,
                              max_seconds=None, max_epochs=2, evaluations_per_epoch=2,
                              progress=events.append)
    sweep = [e for e in events if e["stage"] == "sweep"]
    runs = [e for e in events if e["stage"] == "run"]
    assert [(e["mode"], e["eta"]) for e in sweep if e["done"]] == [(10, 1), (10, 3),
                                                                   (None, 1), (None, 3)]
    for run in result["runs"]:
        mine = [e for e in runs if e["mode"] == run["mode"]]
        assert [e["done"] for e in mine] == [False] * (len(mine) - 1) + [True]
        assert mine[-1]["stopped"] == run["stopped"] == "max_epochs"
        assert mine[-1]["epochs"] == pytest.approx(2.0)
        # every evaluated piece reports the accuracy the curve recorded
        assert [e["accuracy"] for e in mine] == [p["accuracy"] for p in run["curve"][1:]]
        assert all(b["wall_seconds"] >= a["wall_seconds"] for a, b in zip(mine, mine[1:]))
        assert all(e["wall_seconds"] >= e["seconds"] for e in mine)
    assert all(e["accuracy"] is None for e in sweep if not e["done"])


def test_max_total_seconds_bounds_the_whole_call(small, compiled):
    training, validation, test = small
    with pytest.raises(ValueError, match="max_total_seconds"):
        time_to_accuracy(training, test, modes=(10,), etas=(3,), max_total_seconds=0)
    tic = time.perf_counter()
    result = time_to_accuracy(training, test, modes=(1, 10), validation_data=validation,
                              eta_grid=(1, 3), sweep_seconds=None, sweep_epochs=1000,
                              max_seconds=None, max_epochs=1000, evaluations_per_epoch=4,
                              max_total_seconds=2.0)
    wall = time.perf_counter() - tic
    # Without the bound this would train for 1000 epochs per stage.  Each stage stops
    # at its first piece past its share; the slack allows for one piece, one
    # evaluation and a JIT compilation on a busy machine.
    assert all(t["stopped"] == "max_total_seconds" for s in result["sweep"]
               for t in s["trials"])
    assert all(run["stopped"] == "max_total_seconds" for run in result["runs"])
    assert result["max_total_seconds"] == 2.0
    assert result["wall_seconds"] <= wall < 2.0 + 10.0
    assert "all within 2 s of wall-clock time" in format_report(result)[-5]


def test_wall_clock_shares_the_time_left_by_weight(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(compare.time, "perf_counter", lambda: now[0])
    clock = compare._WallClock(10.0, [1, 1, 8])
    assert clock.deadline(1) == pytest.approx(101.0)     # 1/10 of the 10 s
    now[0] = 105.0                                       # 5 s later: 5 s left
    assert clock.deadline(1) == pytest.approx(105.0 + 5 / 9)
    now[0] = 111.0                                       # past the bound: no time left
    assert clock.deadline(8) == pytest.approx(111.0)
    assert compare._WallClock(None, [1]).deadline(1) is None


def test_cli_progress_goes_to_stderr_and_the_wall_clock_bound_is_kept(capsys, compiled):
    args = _parser().parse_args(["compare", "--train-size", "500", "--modes", "10,full",
                                 "--etas", "3,30", "--max-epochs", "100000",
                                 "--max-seconds", "1000", "--max-total-seconds", "2",
                                 "--evaluations-per-epoch", "1", "--json"])
    tic = time.perf_counter()
    assert compare_cli.compare_command(args) == 0
    wall = time.perf_counter() - tic
    captured = capsys.readouterr()
    result = json.loads(captured.out)               # stdout holds the JSON only
    assert [run["stopped"] for run in result["runs"]] == ["max_total_seconds"] * 2
    assert result["max_total_seconds"] == 2 and result["wall_seconds"] <= wall < 2 + 10
    assert "mode m=10, eta 3: epoch" in captured.err
    assert "stopped: max_total_seconds" in captured.err
    assert "mode full batch (m=500), eta 30: epoch" in captured.err
