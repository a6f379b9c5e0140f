"""Tests for the command line (fastgd.cli), run in-process on small subsets of MNIST."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import fastgd
import fastgd.cli
import fastgd.data
from fastgd.cli import main

from helpers import two_threads

# A tiny network on a small subset: each run takes well under a second once the
# kernels are compiled.
QUICK = ["train", "--sizes", "784,10,10", "--train-size", "500", "--epochs", "2"]


def epoch_counts(out):
    """The number classified correctly on each 'Epoch k: c / 10000' line."""
    return [int(c) for c in re.findall(r"^Epoch \d+: (\d+) / 10000", out, re.M)]


def test_train_prints_the_run_the_epochs_and_the_result(capsys):
    assert main(QUICK + ["--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Network \[784, 10, 10\], float32; 500 training inputs, "
                     r"mini-batch size 10, eta 3\.0, 2 epochs; .*seed 1; kernel \w+ ", out, re.M)
    assert re.search(r"^Epoch 0: \d+ / 10000", out, re.M)
    assert re.search(r"^Epoch 1: \d+ / 10000", out, re.M)
    assert "pass --seed" not in out  # the seed was given, not drawn
    last = epoch_counts(out)[-1]
    assert re.search(rf"^Final: epoch 1, {last} / 10000 test inputs classified correctly",
                     out, re.M)


@two_threads
def test_train_says_what_auto_chose(capsys):
    assert main(QUICK + ["--seed", "1", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^kernel auto: (serial|parallel) \((serial|parallel) [\d.]+ vs "
                     r"(serial|parallel) [\d.]+ us per example\)", out, re.M)


def test_a_drawn_seed_is_printed_and_repeats_the_run(capsys):
    assert main(QUICK + ["--mode", "full-batch"]) == 0
    out = capsys.readouterr().out
    seed = re.search(r"^seed (\d+) \(pass --seed \1 to repeat this run\)$", out, re.M).group(1)
    assert "full batch (mini-batch size 500)" in out
    # --full-batch is short for --mode full-batch; the same seed gives the same run.
    assert main(QUICK + ["--full-batch", "--seed", seed]) == 0
    again = capsys.readouterr().out
    assert "pass --seed" not in again
    assert epoch_counts(again) == epoch_counts(out)
    assert len(epoch_counts(out)) == 2


def test_online_mode(capsys):
    assert main(["train", "--sizes", "784,10,10", "--train-size", "100", "--epochs", "1",
                 "--mode", "online", "--seed", "2", "--eta", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "online learning (mini-batch size 1)" in out
    assert len(epoch_counts(out)) == 1


def test_save_history_and_evaluate_round_trip(tmp_path, capsys):
    model, history = tmp_path / "net.npz", tmp_path / "history.json"
    assert main(QUICK + ["--seed", "3", "--save", str(model), "--history", str(history),
                         "--monitor-training-cost", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Epoch" not in out  # --quiet
    assert f"saved to {model}" in out
    last = int(re.search(r"^Final: epoch 1, (\d+) / 10000", out, re.M).group(1))

    report = json.loads(history.read_text())
    assert [record["epoch"] for record in report["epochs"]] == [0, 1]
    assert report["epochs"][-1]["correct"] == last
    assert "training_cost" in report["epochs"][0]
    assert report["diverged"] is None
    assert report["seed"] == 3 and report["sizes"] == [784, 10, 10]
    assert report["info"]["mini_batch_size"] == 10 and report["info"]["dtype"] == "float32"

    assert main(["evaluate", str(model)]) == 0
    out = capsys.readouterr().out
    assert re.match(rf"{last} / 10000 test inputs classified correctly \(\d+\.\d\d%\); "
                    r"quadratic cost C = ", out)
    assert main(["evaluate", str(model), "--on", "validation", "--dtype", "float64"]) == 0
    assert re.match(r"\d+ / 10000 validation inputs", capsys.readouterr().out)


def test_train_gives_the_weights_of_the_library_on_plain_arrays(tmp_path, capsys):
    """fastgd train prepares its data as Datasets in a thread (the first
    --train-size examples a slice) and loads its kernels beside them: the
    weights are those of SGD on the same examples given as plain arrays."""
    model = tmp_path / "net.npz"
    assert main(QUICK + ["--seed", "4", "--quiet", "--save", str(model)]) == 0
    (X, y), _, test = fastgd.load_mnist()
    net = fastgd.Network([784, 10, 10], seed=4)
    net.SGD((X[:500], y[:500]), 2, 10, 3.0, test_data=test, verbose=False)
    saved = fastgd.Network.load(model)
    assert all(np.array_equal(a, b) for a, b in zip(saved.weights + saved.biases,
                                                     net.weights + net.biases))


@pytest.mark.parametrize("argv, reads", [
    (["train"], True), (["profile", "--epochs", "1"], True), (["evaluate", "net.npz"], True),
    (["train", "--data", "dir"], False), (["train", "--data=dir"], False),
    (["evaluate", "net.npz", "--dat", "dir"], False), (["predict", "x.png"], False),
    (["train", "--dtype", "float64"], True), ([], False),
])
def test_the_bundled_mnist_is_read_beside_numba_only_for_commands_that_read_it(
        monkeypatch, argv, reads):
    started = []
    monkeypatch.setattr(fastgd.data, "start_reading_bundled", lambda: started.append(1))
    fastgd.cli._start_reading_mnist(argv)
    assert started == ([1] if reads else [])


@pytest.mark.parametrize("option", ["--save", "--history"])
def test_existing_output_fails_before_training(tmp_path, capsys, option):
    path = tmp_path / "exists"
    path.write_text("keep me")
    assert main(QUICK + ["--seed", "1", option, str(path)]) == 2
    captured = capsys.readouterr()
    assert "Epoch" not in captured.out
    assert f"fastgd train: error: {option} {path} exists; pass --overwrite" in captured.err
    assert path.read_text() == "keep me"


@pytest.mark.parametrize("args, message", [
    (["--sizes", "784"], "argument --sizes: needs at least two layers"),
    (["--sizes", "784,x,10"], "argument --sizes: expected comma-separated"),
    (["--sizes", "100,10"], "--sizes 100,10 has 100 input neurons, but the images have 784"),
    (["--sizes", "784,30,5"], "--sizes 784,30,5 has 5 output neurons"),
    (["--eta", "-1"], "argument --eta: must be a finite number > 0"),
    (["--eta", "inf"], "argument --eta: must be a finite number > 0"),
    (["--epochs", "-1"], "argument --epochs: must be >= 0"),
    (["--epochs", "2.5"], "argument --epochs: expected an integer"),
    (["--mini-batch-size", "0"], "argument --mini-batch-size: must be >= 1"),
    (["--train-size", "100", "--mini-batch-size", "101"],
     "mini-batch size 101 (--mini-batch-size)"),
    (["--mode", "online", "--mini-batch-size", "5"],
     "--mini-batch-size cannot be used with --mode online"),
    (["--full-batch", "--mini-batch-size", "5"],
     "--mini-batch-size cannot be used with --mode full-batch"),
    (["--full-batch", "--mode", "online"],
     "argument --mode: not allowed with argument --full-batch"),
    (["--threads", "0"], "argument --threads: must be >= 1"),
    (["--threads", "100000"], "argument --threads: must be <="),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--data", "/nonexistent"], "argument --data: /nonexistent is not a directory"),
    (["--train-size", "0"], "argument --train-size: must be >= 1"),
    (["--train-size", "50001"], "--train-size 50001 is more than the 50000 training inputs"),
    (["--save", "/nonexistent/net.npz"], "--save /nonexistent/net.npz: no such directory"),
])
def test_bad_train_arguments(capsys, args, message):
    assert main(["train", "--epochs", "1"] + args) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert "Epoch" not in captured.out


def test_data_directory_without_idx_files(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgd train: error: no train-images-idx3-ubyte in ")


def test_bad_evaluate_arguments(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a network")
    assert main(["evaluate", str(junk)]) == 2
    assert capsys.readouterr().err.startswith(f"fastgd evaluate: error: {junk} is not")
    assert main(["evaluate", str(junk), "--on", "everything"]) == 2
    assert "argument --on: invalid choice" in capsys.readouterr().err


def test_divergence_error_and_interrupt_exit_codes(monkeypatch, capsys):
    def diverge(*args, **kwargs):
        raise fastgd.DivergenceError("training diverged in epoch 0: the cost is nan")

    monkeypatch.setattr(fastgd.Network, "SGD", diverge)
    assert main(QUICK + ["--seed", "1", "--on-divergence", "raise"]) == 1
    assert "fastgd train: error: training diverged in epoch 0" in capsys.readouterr().err

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastgd.Network, "SGD", interrupt)
    assert main(QUICK + ["--seed", "1"]) == 130
    assert capsys.readouterr().err.strip() == "fastgd train: interrupted"


def test_top_level(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fastgd {fastgd.__version__}"
    assert main(["train", "--help"]) == 0
    assert "the learning rate eta" in capsys.readouterr().out


def test_python_dash_m_help():
    result = subprocess.run([sys.executable, "-m", "fastgd", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "train" in result.stdout and "evaluate" in result.stdout


def test_profile_reports_each_part_of_an_epoch(capsys, monkeypatch):
    import fastgd.profile
    monkeypatch.setattr(fastgd.profile, "measured_peak", lambda dtype: 123.0)  # keep it short
    args = ["profile", "--sizes", "784,10,10", "--train-size", "500", "--epochs", "2",
            "--seed", "3"]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["epochs"] == 2 and report["training_inputs"] == 500
    for part in ("shuffle", "training", "evaluation", "total"):
        s = report["epoch_s"][part]
        assert 0 <= s["min"] <= s["median"] <= s["max"]
    assert report["examples_per_s"] == pytest.approx(500 / report["epoch_s"]["training"]["median"])
    sizes = [784, 10, 10]
    dense = 6 * (784 * 10 + 10 * 10) - 2 * 784 * 10
    assert report["gflops_dense_equivalent"] == pytest.approx(
        report["examples_per_s"] * dense / 1e9)
    assert report["gflops_performed"] < report["gflops_dense_equivalent"]  # zeros skipped
    assert report["input_path"] == "sparse"  # MNIST: 19% of the pixels are nonzero
    assert report["kernel"] in ("serial", "auto") and report["kernel_reason"]
    assert report["kernel_in_use"] in ("serial", "parallel")
    # layer 0: 2 x nonzero x (index + value) + 3 x nonzero x a 16-float row, ...
    assert report["bytes_per_example"] > 3 * 16 * 4 * report["nonzero_input_fraction"] * 784
    assert len(report["correct"]) == 2 and report["jit"]["first_training_call_s"] > 0
    assert sizes == report["sizes"]
    # the serial kernel is a Python driver around a numba one: profile looks behind it
    assert main(args + ["--kernel", "serial", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kernel_in_use"] == "serial"
    assert report["jit"]["training_kernel_loaded_from_cache"] in (True, False)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "per epoch over 2 epochs" in text and "GFLOP/s" in text and "kernel:" in text
    assert "of inputs nonzero, sparse input path)" in text


def test_bytes_per_example_of_the_dense_path_read_every_input_and_no_index():
    from fastgd.profile import bytes_per_example
    sizes, stride = [784, 30, 10], [32, 16]
    sparse = bytes_per_example(sizes, stride, 4, 150)
    dense = bytes_per_example(sizes, stride, 4, 150, dense=True)
    later = 4 * 30 * 16 * 4 + 4 * 48 * 4
    assert sparse == 2 * 150 * 8 + 3 * 150 * 32 * 4 + later
    assert dense == 2 * 784 * 4 + 3 * 784 * 32 * 4 + later


def test_the_chapter_commands_are_wired_in(capsys, tmp_path):
    """valley, noise and compare reach their modules through fastgd's own parser."""
    assert main(["valley", "--function", "bowl", "--steps", "5", "--out",
                 str(tmp_path / "v.png")]) in (0, 2)  # 2: matplotlib is not installed
    assert "C = " in capsys.readouterr().out
    for command in ("noise", "compare"):
        assert main([command, "--help"]) == 0
        assert f"usage: fastgd {command}" in capsys.readouterr().out
    assert main(["valley", "--eta", "-1"]) == 2
    assert "--eta" in capsys.readouterr().err


def test_validation_size_lets_small_idx_sets_train(tmp_path, capsys):
    """An IDX set with fewer than 10,000 training images trains once --validation-size
    holds back fewer of them; the default names the option in its error."""
    from test_data import write_dataset
    write_dataset(tmp_path, n_train=60, n_test=20, hw=(4, 4))
    assert main(["train", "--data", str(tmp_path), "--sizes", "16,5,10", "--epochs", "1"]) == 2
    assert "--validation-size must be less than the 60 training images" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--sizes", "16,5,10", "--epochs", "2",
                 "--validation-size", "10", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "50 training inputs" in out
    assert len(re.findall(r"^Epoch \d+: \d+ / 20", out, re.M)) == 2
    assert main(["train", "--data", str(tmp_path), "--sizes", "16,5,10", "--epochs", "1",
                 "--validation-size", "0", "--evaluate-on", "validation"]) == 2
    assert "there are no validation inputs" in capsys.readouterr().err
    model = tmp_path / "net.npz"
    assert main(["train", "--data", str(tmp_path), "--sizes", "16,5,10", "--epochs", "1",
                 "--validation-size", "0", "--seed", "0", "--save", str(model)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), "--data", str(tmp_path), "--on", "training",
                 "--validation-size", "0"]) == 0
    assert re.match(r"\d+ / 60 training inputs", capsys.readouterr().out)


def test_a_failed_run_says_so_and_exits_1(capsys):
    """eta 300 saturates every output neuron: the run stops, the summary and one
    error line say why, and the exit status is not 0."""
    assert main(["train", "--sizes", "784,10,10", "--train-size", "2000", "--epochs", "8",
                 "--seed", "1", "--eta", "300", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "Stopped after 2 of 8 epochs: training failed" in captured.out
    assert re.fullmatch(r"fastgd train: error: training has saturated: .*eta = 300 is "
                        r"probably too large.*\n", captured.err)


def test_early_stop_and_save_best(tmp_path, capsys):
    best = tmp_path / "best.npz"
    assert main(QUICK[:-1] + ["30", "--seed", "1", "--early-stop", "2", "--save-best",
                              str(best), "--quiet"]) == 0
    out = capsys.readouterr().out
    stopped = re.search(r"^Stopped after (\d+) of 30 epochs: no better accuracy for 2 epochs "
                        r"\(--early-stop\): the best was (\d+) / 10000 in epoch (\d+)$", out, re.M)
    assert stopped, out
    epochs, correct, epoch = map(int, stopped.groups())
    assert epochs == epoch + 3
    assert f"best network (epoch {epoch}) kept in {best}" in out
    X, y = fastgd.load_mnist()[2]
    assert fastgd.Network.load(best).evaluate(X, y) == correct


def test_train_draws_the_learning_curves(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    picture = tmp_path / "curves.png"
    assert main(QUICK + ["--seed", "1", "--plot", str(picture), "--quiet",
                         "--monitor-training-cost"]) == 0
    assert f"learning curves drawn to {picture}" in capsys.readouterr().out
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(QUICK + ["--seed", "1", "--plot", str(tmp_path / "curves.txt")]) == 2
    assert "--plot must be a file name ending in .png" in capsys.readouterr().err


def test_history_names_the_cost_after_the_evaluation_inputs(tmp_path, capsys):
    path = tmp_path / "h.json"
    assert main(QUICK + ["--seed", "1", "--evaluate-on", "validation", "--history", str(path),
                         "--quiet"]) == 0
    record = json.loads(path.read_text())["epochs"][0]
    assert "validation_cost" in record and "test_cost" not in record
    assert json.loads(path.read_text())["evaluate_on"] == "validation"


# The garbage collector walks every object numba's import and the kernels' loading
# make, again and again: a process of fastgd's own holds it off until the command's
# set-up is done, then freezes those objects and turns it back on.
COLLECTOR = """
import gc, sys
import fastgd.cli as cli
import fastgd.cli.train as train
seen = []
def prepare(args, _prepare=train._prepare):
    seen.append(("before", gc.isenabled()))
    result = _prepare(args)
    seen.append(("after", gc.isenabled(), gc.get_freeze_count() > 0))
    return result
train._prepare = prepare
sys.argv = ["fastgd"] + sys.argv[1:]
status = cli.entry()
print(seen, gc.isenabled())
sys.exit(status)
"""


@pytest.mark.parametrize("command", [["train", "--epochs", "1", "--train-size", "50"],
                                     ["cache"]])
def test_a_fastgd_process_holds_the_garbage_collector_off_until_its_set_up_is_done(
        command):
    result = subprocess.run([sys.executable, "-c", COLLECTOR, *command],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    if command[0] == "train":
        assert last == "[('before', False), ('after', True, True)] True"
    else:  # no set-up to wait for: on again before the command runs
        assert last == "[] True"


def test_main_called_in_a_program_leaves_its_garbage_collector_alone(capsys):
    import gc
    frozen = gc.get_freeze_count()
    assert main(["train", "--epochs", "1", "--train-size", "50", "--quiet"]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen
