"""Faults injected into runs: processes killed while saving or training, file-size
limits, signals, resumed runs, crafted model files, NaN, threads.

Each test asserts what the user is left with: the file loads, the weights are
equal, the message says what happened.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import warnings
import zipfile

import numpy as np
import pytest

import fastgd
from fastgd.network_file import FILE_FORMAT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A quick CLI run: [784, 10, 10] is compiled by the other tests too.
RUN = ["train", "--sizes", "784,10,10", "--train-size", "20000", "--seed", "1",
       "--kernel", "serial", "--threads", "1"]


def fastgd_process(args, cwd, env=None, **kwargs):
    """`python -m fastgd ARGS` as a process with default signal handling."""
    def child():
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "fastgd", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=child, **kwargs)


def wait_for_line(process, pattern, timeout=120):
    """Read stdout until a line contains pattern; returns what was read."""
    read, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        read.append(line)
        if pattern in line:
            return "".join(read)
    raise AssertionError(f"no {pattern!r} in {''.join(read)!r}")


def tiny_data(n=300, seed=0):
    """n inputs of 8 numbers in [0, 1), labelled by which of the first 3 is largest
    (learnable, so that no run here stalls)."""
    X = np.random.default_rng(seed).random((n, 8))
    return X, np.argmax(X[:, :3], axis=1)


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


# -- saves ------------------------------------------------------------------------------

def test_a_save_over_the_file_size_limit_keeps_the_old_file(tmp_path):
    path = tmp_path / "net.npz"
    old = fastgd.Network([784, 30, 10], seed=1)
    old.save(path)
    code = (f"import fastgd\nnet = fastgd.Network([784, 30, 10], seed=2)\n"
            f"net.save({str(path)!r}, overwrite=True)\n")

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, preexec_fn=limited)
    assert result.returncode != 0 and "File too large" in result.stderr
    np.testing.assert_array_equal(fastgd.Network.load(path).params, old.params)
    assert os.listdir(tmp_path) == ["net.npz"]  # no partial file left


@pytest.mark.slow  # subprocesses
def test_a_save_killed_midway_keeps_the_old_file(tmp_path):
    path = tmp_path / "net.npz"
    old = fastgd.Network([784, 300, 10], seed=1)
    old.save(path)
    code = ("import fastgd, sys\nnet = fastgd.Network([784, 300, 10], seed=2)\n"
            "print('ready', flush=True)\n"
            f"while True:\n    net.save({str(path)!r}, overwrite=True)\n")
    seen = set()
    for delay in (0.0, 0.01, 0.03, 0.05, 0.08):
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline() == "ready\n"
        time.sleep(delay)
        process.kill()
        process.wait()
        loaded = fastgd.Network.load(path)  # whole: the old network or a new one
        seen.add(loaded.params.tobytes() == old.params.tobytes())
    assert False in seen  # some saves completed, and still every file was whole
    fastgd.Network([3, 2], seed=0).save(tmp_path / "other.npz")
    fastgd.Network.load(path).save(path, overwrite=True)  # clears what killed saves left
    assert sorted(os.listdir(tmp_path)) == ["net.npz", "other.npz"]


def test_saves_keep_the_permissions_of_the_file_they_replace(tmp_path):
    path = tmp_path / "net.npz"
    fastgd.Network([3, 2], seed=0).save(path)
    os.chmod(path, 0o640)
    fastgd.Network([3, 2], seed=1).save(path, overwrite=True)
    assert os.stat(path).st_mode & 0o777 == 0o640


# -- untrusted model files -----------------------------------------------------------

def npz(path, **members):
    """An .npz file with these members, each raw bytes or an array."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            if isinstance(value, bytes):
                archive.writestr(f"{name}.npy", value)
            else:
                with archive.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
    return path


def header_only(shape, dtype="<f4"):
    """A .npy header announcing shape, with no data after it."""
    import io
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue()


def test_a_crafted_file_cannot_make_load_allocate_what_it_announces(tmp_path):
    """sizes announce a network of 3.3 GB; the file has a few hundred bytes.  Load
    must refuse before reading, in a process whose memory is measured."""
    path = npz(tmp_path / "bomb.npz", format=np.array(FILE_FORMAT),
               sizes=np.array([784, 2**20, 10]), weights_0=header_only((2**20, 784)),
               biases_0=header_only((2**20,)), weights_1=header_only((10, 2**20)),
               biases_1=header_only((10,)))
    code = ("import resource, fastgd\nbefore = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"try:\n    fastgd.Network.load({str(path)!r})\nexcept ValueError as e:\n"
            "    print(e)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert "bomb.npz is not a fastgd network file" in out[0] and "bytes of weights" in out[0]
    assert int(out[1]) < 50_000  # kB: no more than 50 MB grown while refusing


@pytest.mark.parametrize("members, message", [
    (dict(format=np.array(FILE_FORMAT), sizes=header_only((10**9,), "<i8")), "bytes"),
    (dict(format=header_only((10**8,), "<U16"), sizes=np.array([3, 2])), "bytes"),
    (dict(format=np.array(FILE_FORMAT), sizes=np.array([3, 2]),
          weights_0=header_only((2, 3), "|O"), biases_0=np.zeros(2, np.float32)), "dtype"),
    (dict(format=np.array(FILE_FORMAT), sizes=np.array([3, 2]),
          weights_0=header_only((2, 3)), biases_0=np.zeros(2, np.float32)), "truncated"),
    (dict(format=np.array(FILE_FORMAT), sizes=np.array([3, 2]),
          weights_0=np.zeros((3, 2), np.float32), biases_0=np.zeros(2, np.float32)),
     r"shape \(3, 2\), expected \(2, 3\)"),
    (dict(format=np.array(FILE_FORMAT), sizes=np.array([[3, 2]])), "list of layer sizes"),
    (dict(format=np.array(FILE_FORMAT), sizes=np.array([3, -2])), "positive integers"),
    (dict(format=np.array(FILE_FORMAT), sizes=np.array([2**62, 2])), "more than fastgd"),
    (dict(format=b"\x93NUMPY\x09\x00junk", sizes=np.array([3, 2])), "version"),
])
def test_crafted_members_give_one_clear_error(tmp_path, members, message):
    path = npz(tmp_path / "crafted.npz", **members)
    with pytest.raises(ValueError, match=message) as error:
        fastgd.Network.load(path)
    assert "crafted.npz" in str(error.value)


def test_load_accepts_regular_files_only_and_closes_what_it_opens(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        fastgd.Network.load(fifo)  # returns at once: a FIFO is never opened
    with pytest.raises(ValueError, match="not a regular file"):
        fastgd.Network.load(tmp_path)
    good = tmp_path / "good.npz"
    fastgd.Network([3, 2], seed=0).save(good)
    broken = tmp_path / "broken.npz"
    data = bytearray(good.read_bytes())
    data[-30:] = b"\x00" * 30  # the zip directory's end
    broken.write_bytes(bytes(data))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(ValueError):
            fastgd.Network.load(broken)
    assert len(os.listdir("/proc/self/fd")) == before


# -- numerics ------------------------------------------------------------------------

def test_nan_outputs_are_reported_not_counted_as_class_0():
    net = fastgd.Network([8, 6, 3], seed=0)
    X, y = tiny_data(20)
    net.params[:] = np.nan
    with pytest.raises(ValueError, match="20 of the 20 inputs give NaN"):
        net.evaluate(X, np.zeros(20, int))
    result = net.evaluation(X, y)
    assert result.nonfinite == 20 and result.correct == 0 and np.isnan(result.cost)
    with pytest.raises(ValueError, match="non-finite outputs"):
        net.predict(X)


def test_a_nan_error_stays_nan_through_backprop():
    """The denormal flush in the kernels must not turn a NaN delta into 0."""
    net = fastgd.Network([8, 6, 3], seed=0)
    net.params[net.layout.b_off[1]:net.layout.b_off[1] + 3] = np.nan  # output biases
    nabla_b, nabla_w = net.backprop(tiny_data(1)[0][0], 1)
    assert np.isnan(nabla_b[-1]).all() and np.isnan(nabla_w[-1]).all()


def test_weights_are_checked_for_finiteness_in_the_networks_dtype():
    net = fastgd.Network([3, 2], seed=0)
    with pytest.raises(ValueError, match="weights.0. must be finite in float32"):
        net.weights = [np.full((2, 3), 1e39)]
    fastgd.Network([3, 2], seed=0, dtype="float64").weights = [np.full((2, 3), 1e39)]


def test_unscaled_inputs_warn_and_labels_are_reported_as_given():
    net = fastgd.Network([8, 6, 3], seed=0)
    X, y = tiny_data(50)
    with pytest.warns(fastgd.InputScaleWarning, match="pixel/256"):
        net.SGD(((X * 255).astype(np.uint8), y), 1, 10, 1.0, verbose=False)
    with pytest.raises(ValueError, match=r"\[3\] is 1e\+20"):
        net.evaluate(X[:5], np.array([0, 1, 2, 1e20, 0]))


@pytest.mark.slow  # subprocesses
def test_threads_can_train_at_once_under_the_workqueue_layer():
    """Two Python threads running parallel kernels at once abort the process under
    workqueue, unless fastgd takes turns; the weights must equal a serial run's."""
    code = """
import threading, numpy as np, fastgd, numba
rng = np.random.default_rng(0)
X = rng.random((2000, 8)); y = rng.integers(0, 3, 2000)
def work(seed, out):
    net = fastgd.Network([8, 6, 3], seed=seed)
    for _ in range(3):
        net.SGD((X, y), 1, 500, 1.0, verbose=False, kernel="parallel", threads=2)
        net.evaluate(X, y)
    out[seed] = net.params.copy()
out, ref = {}, {}
threads = [threading.Thread(target=work, args=(s, out)) for s in range(3)]
[t.start() for t in threads]; [t.join() for t in threads]
for s in range(3): work(s, ref)
print(numba.threading_layer(), all(np.array_equal(out[s], ref[s]) for s in range(3)))
"""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["workqueue", "True"]


# -- checkpoints and resume ----------------------------------------------------------

def test_a_run_resumed_from_its_checkpoint_equals_one_that_was_not_stopped(tmp_path):
    data, test = tiny_data(), tiny_data(60, seed=1)
    whole = fastgd.Network([8, 6, 3], seed=5)
    expected = whole.SGD(data, 6, 7, 2.0, test_data=test, verbose=False, kernel="serial")
    path = tmp_path / "run.ckpt"
    first = fastgd.Network([8, 6, 3], seed=5)
    first.SGD(data, 3, 7, 2.0, test_data=test, verbose=False, kernel="serial", checkpoint=path)
    net, history = fastgd.resume(path, data, test, epochs=6, verbose=False, kernel="serial")
    assert net.params.tobytes() == whole.params.tobytes()
    assert without_seconds(history) == without_seconds(expected)
    assert history.checkpoint == {"epoch": 6, "position": 0, "path": str(path)}
    # and the checkpoint now holds the 6 epochs
    _, state = fastgd.training.read_checkpoint(path)
    assert state["epoch"] == 6 and len(state["history"]["records"]) == 6


def test_a_checkpoint_is_refused_for_other_data_or_sizes(tmp_path):
    data, test = tiny_data(), tiny_data(60, seed=1)
    path = tmp_path / "run.ckpt"
    fastgd.Network([8, 6, 3], seed=5).SGD(data, 1, 7, 2.0, test_data=test, verbose=False,
                                          checkpoint=path)
    X, y = data
    with pytest.raises(ValueError, match="written for other training_data"):
        fastgd.resume(path, (X[:-1], y[:-1]), test)
    with pytest.raises(ValueError, match="written for other test_data: this call gives no"):
        fastgd.resume(path, data)
    with pytest.raises(ValueError, match="must have shape"):
        fastgd.resume(path, (np.zeros((10, 5)), np.zeros(10, int)), test)
    with pytest.raises(ValueError, match="not a fastgd checkpoint"):
        fastgd.Network([3, 2]).save(tmp_path / "net.npz")
        fastgd.resume(tmp_path / "net.npz", data)
    with pytest.raises(ValueError, match="not a fastgd network file"):
        fastgd.Network.load(path)  # a checkpoint is not a model file


def test_sgd_interrupted_by_a_signal_gives_back_its_history_and_a_checkpoint(tmp_path):
    data, test = tiny_data(3000), tiny_data(60, seed=1)
    path = tmp_path / "run.ckpt"
    net = fastgd.Network([8, 6, 3], seed=5)
    net.SGD(data, 1, 10, 2.0, verbose=False, kernel="serial")  # compiled before the clock
    net = fastgd.Network([8, 6, 3], seed=5)
    done = threading.Event()

    def interrupt():
        """Ctrl-C once SGD handles it and has written a checkpoint (an epoch is done):
        a fixed delay could come too early on a busy machine."""
        while not done.is_set():
            if signal.getsignal(signal.SIGINT) is not signal.default_int_handler and \
                    path.exists():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        with pytest.raises(fastgd.TrainingInterrupted) as stopped:
            net.SGD(data, 100_000, 10, 2.0, test_data=test, verbose=False, kernel="serial",
                    checkpoint=path)
    finally:
        done.set()
        sender.join()
    e = stopped.value
    assert e.signal == signal.SIGINT and e.checkpoint == str(path) and e.network is net
    assert len(e.history) == e.epoch > 0 and e.history.stopped == "interrupted by SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    # resuming to one epoch past the stop equals an uninterrupted run of that length
    resumed, history = fastgd.resume(path, data, test, epochs=e.epoch + 1, verbose=False,
                                     kernel="serial")
    whole = fastgd.Network([8, 6, 3], seed=5)
    expected = whole.SGD(data, e.epoch + 1, 10, 2.0, test_data=test, verbose=False,
                         kernel="serial")
    assert resumed.params.tobytes() == whole.params.tobytes()
    assert without_seconds(history) == without_seconds(expected)


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                            (signal.SIGHUP, 129)])
def test_a_signal_stops_the_cli_which_writes_everything_and_can_resume(tmp_path, signum,
                                                                       status):
    files = ["--save", "net.npz", "--history", "history.json", "--checkpoint", "run.ckpt"]
    process = fastgd_process(RUN + ["--epochs", "300"] + files, tmp_path)
    wait_for_line(process, "Epoch 1:")
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in out and "of 300" in out
    assert "saved to net.npz" in out and "history written to history.json" in out
    assert "checkpoint written to run.ckpt" in out and "--resume run.ckpt" in out
    fastgd.Network.load(tmp_path / "net.npz")
    report = json.loads((tmp_path / "history.json").read_text())
    assert report["stopped"] == f"interrupted by {name}" and report["epochs"]
    if signum != signal.SIGINT:
        return
    # Ctrl-C, then resume to 6 epochs: the weights of an uninterrupted 6-epoch run
    _, state = fastgd.training.read_checkpoint(tmp_path / "run.ckpt")
    assert state["epoch"] < 6, "training ran too fast to be stopped early; raise --train-size"
    resumed = fastgd_process(["train", "--resume", "run.ckpt", "--epochs", "6", "--save",
                              "resumed.npz", "--quiet"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    training, _, test = fastgd.load_mnist()
    X, y = training
    whole = fastgd.Network([784, 10, 10], seed=1)
    whole.SGD((X[:20000], y[:20000]), 6, 10, 3.0, test_data=test, verbose=False,
              kernel="serial", threads=1)
    assert fastgd.Network.load(tmp_path / "resumed.npz").params.tobytes() == \
        whole.params.tobytes()


@pytest.mark.slow  # subprocesses
def test_a_resumed_run_interrupted_saves_the_network_it_trained(tmp_path):
    """--save after Ctrl-C in a --resume run is the network resumed and trained
    (the one the checkpoint holds now), not a freshly initialised one."""
    first = fastgd_process(RUN + ["--epochs", "300", "--checkpoint", "run.ckpt"], tmp_path)
    wait_for_line(first, "Epoch 1:")
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    resumed = fastgd_process(["train", "--resume", "run.ckpt", "--save", "net.npz"], tmp_path)
    wait_for_line(resumed, "Epoch")
    resumed.send_signal(signal.SIGINT)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 130 and "saved to net.npz" in out, err
    held, _ = fastgd.training.read_checkpoint(tmp_path / "run.ckpt")
    assert fastgd.Network.load(tmp_path / "net.npz").params.tobytes() == \
        held.params.tobytes()


@pytest.mark.slow  # subprocesses
def test_a_second_ctrl_c_aborts_at_once(tmp_path):
    process = fastgd_process(RUN + ["--epochs", "1000", "--checkpoint", "run.ckpt"], tmp_path)
    wait_for_line(process, "Epoch 1:")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err
    fastgd.training.read_checkpoint(tmp_path / "run.ckpt")  # whatever was written is whole


def test_ctrl_c_while_compiling_is_one_line(tmp_path):
    """An empty kernel cache: the kernels compile (about 15 s), and Ctrl-C then
    must give one line, no traceback, status 130."""
    env = dict(os.environ, FASTGD_CACHE_DIR=str(tmp_path / "cache"),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    process = fastgd_process(RUN + ["--epochs", "1", "--sizes", "784,11,10"], tmp_path, env=env)
    line = process.stderr.readline()
    assert line.startswith("Compiling fastgd's"), line
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.replace("\r", "\n").split() [-3:] == ["fastgd", "train:", "interrupted"]
    assert "Epoch" not in out


@pytest.mark.slow  # subprocesses
def test_a_broken_pipe_ends_the_cli_quietly(tmp_path):
    process = fastgd_process(RUN + ["--epochs", "50"], tmp_path)
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read()
    process.wait(timeout=120)
    assert process.returncode == 141
    assert err == ""


# -- the CLI's outputs ------------------------------------------------------------------

def test_outputs_are_checked_before_training(tmp_path, capsys):
    from fastgd.cli import main
    quick = RUN + ["--epochs", "1", "--train-size", "100"]
    assert main(quick + ["--save", str(tmp_path / "a"), "--history", str(tmp_path / "a")]) == 2
    assert "--save and --history are the same file" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert main(quick + ["--save", str(locked / "net.npz")]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        os.chmod(locked, 0o700)


def test_a_failed_history_write_still_saves_the_model_first(tmp_path, capsys, monkeypatch):
    from fastgd.cli import main
    from fastgd.cli import train_output

    def failing(path, write, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_output, "atomic_write", failing)
    quick = RUN + ["--epochs", "1", "--train-size", "100", "--quiet"]
    assert main(quick + ["--save", str(tmp_path / "net.npz"), "--history",
                         str(tmp_path / "h.json")]) == 2
    captured = capsys.readouterr()
    assert "saved to" in captured.out and "No space left" in captured.err
    fastgd.Network.load(tmp_path / "net.npz")
    # no --save: the network is written to a fallback file, and the user told where
    monkeypatch.chdir(tmp_path)
    assert main(quick + ["--history", str(tmp_path / "h.json")]) == 2
    err = capsys.readouterr().err
    rescued = err.split("written to ")[-1].split(" instead")[0]
    assert os.path.basename(rescued).startswith("fastgd-rescued-")
    fastgd.Network.load(rescued)


def test_huge_sizes_are_one_line_errors(capsys):
    from fastgd.cli import main
    for sizes in ("784,100000000,10", "784,10000000,10"):
        assert main(["train", "--sizes", sizes, "--epochs", "1", "--seed", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fastgd train: error: sizes [784,") and err.count("\n") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="more than fastgd supports"):
            fastgd.Network([2**62, 2])
