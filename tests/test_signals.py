"""Signals at chosen moments of ``fastgd train`` and ``fastgd sweep``, and writes that
fail part-way through a run: the outputs are written, or one line says exactly
which were not; the exit status is 128 + N; never a traceback or a crash.

The moments are found by reading the process's output (a fixed delay would land
elsewhere on a busy machine): the header line (before training, or as it starts),
the first epoch's line, and the "Trained" line (training over, the outputs not
yet written).
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import fastgd
from test_distributed import mpiexec, needs_mpi
from test_faults import ROOT, fastgd_process, tiny_data, wait_for_line

# Small and quick: the generic kernels (the suite's FASTGD_SPECIALIZE=never), one thread.
RUN = ["train", "--sizes", "784,10,10", "--train-size", "2000", "--epochs", "3", "--seed", "1",
       "--kernel", "serial", "--threads", "1"]
OUTPUTS = ["--save", "net.npz", "--history", "history.json"]


def stop_at(tmp_path, pattern, signum, args=()):
    """Run fastgd train, send ``signum`` once stdout shows ``pattern``; returns
    (status, stdout, stderr)."""
    process = fastgd_process(RUN + OUTPUTS + list(args), tmp_path)
    out = wait_for_line(process, pattern)
    process.send_signal(signum)
    rest, err = process.communicate(timeout=120)
    return process.returncode, out + rest, err


def assert_written_or_said(tmp_path, err):
    """Either both outputs are written and load, or stderr names each one missing."""
    missing = [name for name in ("net.npz", "history.json") if not (tmp_path / name).exists()]
    if missing:
        assert ("not written: --save net.npz, --history history.json" in err
                or "before it started; nothing was written" in err), err
        assert len(missing) == 2, "one output written and one not"
        return False
    fastgd.Network.load(tmp_path / "net.npz")
    json.loads((tmp_path / "history.json").read_text())
    return True


def test_a_signal_right_after_training_still_writes_every_output(tmp_path):
    """SIGHUP as "Trained ..." is printed: the model, the history and the plot
    are written first (the plot's matplotlib import makes that window seconds
    long), then the run ends with 129 and says why."""
    pytest.importorskip("matplotlib")
    status, out, err = stop_at(tmp_path, "Trained", signal.SIGHUP, ["--plot", "curves.png"])
    assert status == 129, err
    assert "Traceback" not in err
    assert assert_written_or_said(tmp_path, err)
    assert (tmp_path / "curves.png").exists()
    assert "stopped by SIGHUP" in err


@pytest.mark.slow  # nine processes
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("moment", ["Network [", "Epoch 0:", "Trained"])
def test_a_signal_at_any_moment_ends_the_run_cleanly(tmp_path, signum, moment):
    """After "Trained" (no plot) the outputs take milliseconds to write, so on a
    loaded machine the signal can land once the run is over: after the process
    exited, or in the interpreter's final clean-up, where fastgd ignores it.
    Then the status is 0 and every output is written; never a process killed by
    the signal."""
    status, out, err = stop_at(tmp_path, moment, signum)
    assert "Traceback" not in err and "Fatal Python error" not in err, (status, err[-3000:])
    if status == 0 and moment == "Trained":  # the run had finished
        assert "saved to net.npz" in out and "stopped" not in err, (out, err)
        assert assert_written_or_said(tmp_path, err)
        return
    assert status == 128 + signum, (status, out[-2000:], err[-2000:])
    written = assert_written_or_said(tmp_path, err)
    if moment != "Network [":  # training had started: the outputs must be there
        assert written


def wait_until_caught(pid, signum, timeout=60):
    """Wait until process pid handles signum itself (Linux: its SigCgt mask), that
    is, until fastgd's code runs: a signal in the interpreter's own start-up gets
    Python's default, and that start-up takes longer on a loaded machine.  (fastgd
    catches SIGINT, SIGTERM and SIGHUP at once; Python catches SIGINT from its
    start, so ask about SIGTERM.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            caught = next(line for line in f if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) >> (signum - 1) & 1:
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never caught signal {signum}")


@pytest.mark.slow  # four processes
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.7, 1.2])
def test_a_signal_before_training_says_what_was_not_written(tmp_path, delay):
    """Before the header line (the parser being built, the data being read), a
    signal said only "fastgd: stopped by SIGTERM" or "fastgd train: stopped by
    SIGTERM": now it names the outputs not written, or says nothing was.  The
    delays count from fastgd's first handler; on a fast machine with the kernels
    cached the later ones may find the run finished (status 0, all written), never
    a process killed by the signal."""
    process = fastgd_process(RUN + OUTPUTS, tmp_path)
    wait_until_caught(process.pid, signal.SIGTERM)
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert "Traceback" not in err
    if process.returncode == 0:  # it had finished
        assert "saved to net.npz" in out and assert_written_or_said(tmp_path, err)
        return
    assert process.returncode == 143, (process.returncode, err)
    assert_written_or_said(tmp_path, err)


@pytest.mark.slow  # a process
def test_a_hangup_ignored_by_the_caller_stays_ignored(tmp_path):
    """Under nohup (SIGHUP ignored when fastgd starts), a hangup at any moment
    changes nothing: the run goes on to its end."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        [sys.executable, "-m", "fastgd", *RUN, *OUTPUTS], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for_line(process, "Network [")
    process.send_signal(signal.SIGHUP)
    wait_for_line(process, "Epoch 0:")
    process.send_signal(signal.SIGHUP)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "saved to net.npz" in out
    fastgd.Network.load(tmp_path / "net.npz")


# A command that has finished, and a signal while the interpreter shuts down
# (which, after a sweep's cluster, takes seconds): a hook that a library registered
# during the command, run at exit, stands in for it.
AFTER_THE_COMMAND = """
import atexit, os, signal, sys, time
import fastgd.cli

def command():
    print("done", flush=True)
    atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(30)))
    return 0

fastgd.cli.main = command
raise SystemExit(fastgd.cli.entry())
"""


# The same signal in the interpreter's last clean-up (a module's object deleted
# slowly), where no Python handler runs any more.
AT_THE_VERY_END = """
import os, subprocess, time
import fastgd.cli

class SlowToDelete:
    def __del__(self):
        time.sleep(3)

kept_until_the_end = SlowToDelete()
fastgd.cli.main = lambda: print("done", flush=True) or 0
subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -TERM {os.getpid()}"])
raise SystemExit(fastgd.cli.entry())
"""


@pytest.mark.parametrize("code, status", [(AFTER_THE_COMMAND, 128 + signal.SIGTERM),
                                          (AT_THE_VERY_END, 0)], ids=["clean-up", "very end"])
def test_a_signal_after_the_command_has_finished_is_never_a_crash(tmp_path, code, status):
    """Everything is written.  While Python code still runs, the process exits
    128 + N at once; in the interpreter's last clean-up, where Python has given
    every handler back, the signal is ignored and the status is the command's.
    Both were a process killed by the signal (-15) before ``entry``."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == status, (done.returncode, done.stderr)
    assert done.stdout == "done\n" and "Traceback" not in done.stderr


def test_numba_failing_at_import_is_one_line(tmp_path):
    env = dict(os.environ, NUMBA_NUM_THREADS="0",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "fastgd", *RUN], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("fastgd: error: numba cannot start")
    assert "NUMBA_NUM_THREADS=0" in result.stderr


# -- writes that fail mid-run ------------------------------------------------------------

def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_that_cannot_be_written_does_not_stop_training(tmp_path, monkeypatch):
    """A full disk under the checkpoint: training goes on, with a warning and the
    failure in History.info; the weights are those of a run without checkpoints."""
    from fastgd.training import sgd
    data, test = tiny_data(600), tiny_data(60, seed=1)
    whole = fastgd.Network([8, 6, 3], seed=5)
    expected = whole.SGD(data, 3, 10, 2.0, test_data=test, verbose=False, kernel="serial")
    monkeypatch.setattr(sgd, "write_checkpoint", no_space)
    monkeypatch.setattr(sgd, "write_network", no_space)
    net = fastgd.Network([8, 6, 3], seed=5)
    with pytest.warns(RuntimeWarning, match="could not be written") as caught:
        history = net.SGD(data, 3, 10, 2.0, test_data=test, verbose=False, kernel="serial",
                          checkpoint=tmp_path / "run.ckpt", save_best=tmp_path / "best.npz")
    assert len(caught) == 2  # once each, not once an epoch
    assert len(history) == 3 and history.checkpoint is None and history.best_saved is None
    errors = history.info["write_errors"]
    assert set(errors) == {"checkpoint", "save_best"}
    assert errors["checkpoint"]["epoch"] == 3 and "No space left" in errors["checkpoint"]["error"]
    assert net.params.tobytes() == whole.params.tobytes()
    assert [r["correct"] for r in history] == [r["correct"] for r in expected]


def test_the_cli_saves_the_model_when_its_checkpoint_fails(tmp_path, capsys, monkeypatch):
    from fastgd.cli import main
    from fastgd.training import sgd
    monkeypatch.setattr(sgd, "write_checkpoint", no_space)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported as a line, not as a warning
        status = main(RUN + ["--quiet", "--save", str(tmp_path / "net.npz"),
                             "--checkpoint", str(tmp_path / "run.ckpt")])
    captured = capsys.readouterr()
    assert status == 2
    assert "saved to" in captured.out
    assert f"--checkpoint {tmp_path / 'run.ckpt'} could not be written" in captured.err
    assert "No space left" in captured.err and "Traceback" not in captured.err
    assert np.isfinite(fastgd.Network.load(tmp_path / "net.npz").params).all()
    assert not (tmp_path / "run.ckpt").exists()


# -- sweeps ----------------------------------------------------------------------------

@pytest.mark.slow  # a Dask cluster
def test_an_interrupted_sweep_writes_the_runs_finished(tmp_path):
    pytest.importorskip("distributed")
    process = subprocess.Popen(
        [sys.executable, "-m", "fastgd", "sweep", "--train-size", "2000", "--eta", "1,3",
         "--epochs", "1,300", "--workers", "2", "--out", "out", "--no-plot"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep
                               + os.environ.get("PYTHONPATH", "")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    for line in process.stderr:
        seen += line
        if line.startswith("[1/4]"):
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=180)
    err = seen + err
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert "INCOMPLETE" in out and "not finished" in out
    saved = fastgd.SweepTable.read_json(tmp_path / "out" / "sweep.json")
    assert saved.info["incomplete"].startswith("interrupted:")
    finished = [row for row in saved.rows if row["error"] is None]
    assert finished and all(row["epochs"] == 1 for row in finished)
    assert len(saved.rows) == 4
    assert (tmp_path / "out" / "sweep.csv").read_text().count("not finished") == \
        4 - len(finished)


# -- MPI ---------------------------------------------------------------------------------

def _rank_pid(job, rank):
    """The pid of MPI rank ``rank`` of the mpiexec process ``job`` (its PMI_RANK)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in environ and b"fastgd" in command and \
                str(job.pid).encode() in _ancestors(int(entry)):
            return int(entry)
    raise AssertionError(f"no rank {rank} under mpiexec {job.pid}")


def _ancestors(pid):
    found = b""
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        found += f" {pid} ".encode()
    return found


@needs_mpi
@pytest.mark.slow  # an MPI job
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("target", ["mpiexec", "rank 1"])
def test_a_signal_after_distributed_training_waits_for_the_outputs(tmp_path, target):
    """Ctrl-C to mpiexec (passed on to every rank), or SIGINT to rank 1 alone, as
    "Trained" is printed: every rank holds it until rank 0 has written the model,
    the history and the plot (a rank ending at once made mpiexec kill rank 0
    mid-write), then the job ends with 130 and one line says so."""
    pytest.importorskip("matplotlib")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    job = subprocess.Popen(
        [mpiexec(), "-n", "2", sys.executable, "-m", "fastgd", *RUN[:-4], "--distributed",
         "--mini-batch-size", "100", *OUTPUTS, "--plot", "curves.png"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out = wait_for_line(job, "Trained")
        os.kill(job.pid if target == "mpiexec" else _rank_pid(job, 1), signal.SIGINT)
        rest, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 130, out + rest + err
    assert "Traceback" not in err
    assert all((tmp_path / name).exists() for name in ("net.npz", "history.json", "curves.png"))
    assert (out + rest + err).count("stopped by SIGINT after training; the outputs were "
                                    "written first") == 1


@needs_mpi
@pytest.mark.slow  # MPI jobs
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("delay", [0.5, 1.2])
def test_a_rank_stopped_before_training_ends_the_whole_job(tmp_path, delay):
    """SIGINT to rank 0 in its first second of fastgd's code (its arguments being
    read, before MPI_Init): it left at once, MPICH's mpiexec did not notice, and
    rank 1 waited in MPI_Init forever.  The rank now aborts the job."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    job = subprocess.Popen(
        [mpiexec(), "-n", "2", sys.executable, "-m", "fastgd", *RUN[:-4], "--distributed",
         *OUTPUTS], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                pid = _rank_pid(job, 0)
                break
            except AssertionError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        wait_until_caught(pid, signal.SIGTERM)  # fastgd's handlers, not Python's start-up
        time.sleep(delay)
        os.kill(pid, signal.SIGINT)
        out, err = job.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the job still ran 30 s after SIGINT to rank 0 ({delay} s in)")
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.communicate()
    assert job.returncode != 0
    assert "Traceback" not in err
    assert "interrupted" in err
