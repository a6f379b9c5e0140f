"""fastgd.distributed: the emulation in one process against plain SGD, and real MPI
jobs (mpiexec, 2 and 3 ranks, as subprocesses) against the emulation.

The MPI tests skip only where mpi4py or mpiexec is missing (pip install
'fastgd[mpi]' brings both); each job is a [784, 10, 10] network on 3,000 MNIST
images for 2 epochs, a few seconds.  Every rank runs one numba thread: the
ranks of a small CI machine share its cores.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastgd
import fastgd.training.trainer as trainer_module

SIZES = [784, 10, 10]
N = 3000
EPOCHS = 2
ETA = 3.0
HERE = os.path.dirname(os.path.abspath(__file__))
# the fastgd these tests import (the tree, or site-packages in CI), for the subprocesses
IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastgd.__file__)))


@pytest.fixture(scope="module")
def data(mnist):
    (X, y), _, (Xt, yt) = mnist
    return (X[:N], y[:N]), (Xt[:1000], yt[:1000])


def train(data, m, seed=1, **options):
    net = fastgd.Network(SIZES, seed=seed)
    history = net.SGD(data[0], EPOCHS, m, ETA, data[1], verbose=False, **options)
    return net, history


def records(history):
    """The History's records without the seconds (which no two runs share)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


# -- the emulation, in this process ------------------------------------------------------

@pytest.mark.parametrize("m", [1000, None], ids=["m=1000", "full batch"])
def test_one_shard_is_plain_sgd_bit_for_bit(data, m):
    """P = 1: the gradient-sum kernel sums a mini-batch exactly as _train does."""
    plain, plain_history = train(data, m, threads=1, kernel="serial")
    one, history = train(data, m, shards=1, threads=1)
    assert np.array_equal(one.params, plain.params)
    assert [r["correct"] for r in history] == [r["correct"] for r in plain_history]
    assert history.info["distributed"]["ranks"] == 1


@pytest.mark.parametrize("shards", [2, 3])
def test_shards_agree_with_plain_sgd_within_rounding(data, shards):
    plain, _ = train(data, 1000, threads=1, kernel="serial")
    serial, history = train(data, 1000, shards=shards, threads=1)
    parallel, _ = train(data, 1000, shards=shards, threads=2, kernel="parallel")
    # the thread count never changes the bits; the P partial sums change the rounding
    assert np.array_equal(serial.params, parallel.params)
    assert not np.array_equal(serial.params, plain.params)
    np.testing.assert_allclose(serial.params, plain.params, rtol=0, atol=1e-5)
    assert history.info["distributed"] == {"ranks": shards, "reduce": "ordered",
                                           "emulated": True, "threads_per_rank": 1}


def test_auto_keeps_the_faster_kernel(data):
    _, history = train(data, 1000, shards=2, threads=2)
    facts = history.info["distributed"]
    timings = facts["kernel_s_per_example"]
    assert set(timings) == {"serial", "parallel"}
    assert facts["kernel"] == min(timings, key=timings.get) == history.info["kernel_in_use"]


def test_auto_times_the_parallel_kernel_on_a_chunk_after_waking_its_threads(data, monkeypatch):
    """As auto's calibration without ranks: a parallel candidate sums at least its
    chunk (here a rank's 500 examples: TRIAL_EXAMPLES is cut to 100), each time
    right after an empty call that wakes its threads."""
    monkeypatch.setattr(trainer_module, "TRIAL_EXAMPLES", 100)
    calls = []
    summed = trainer_module.Trainer.gradient_sum

    def recorded(self, candidate, order, start, stop):
        calls.append((candidate.label, stop - start))
        return summed(self, candidate, order, start, stop)

    monkeypatch.setattr(trainer_module.Trainer, "gradient_sum", recorded)
    _, history = train(data, 1000, shards=2, threads=2)
    timed = [(i, call) for i, call in enumerate(calls) if call[1] > 0][:4]  # then training
    assert [call for _, call in timed] == [("serial", 100), ("parallel", 500)] * 2
    assert all(calls[i - 1] == ("parallel", 0) for i, call in timed if call[0] == "parallel")
    assert history.info["distributed"]["kernel_s_per_example"].keys() == {"serial", "parallel"}


def test_short_last_mini_batch_within_rounding(data):
    """m = 700: the last mini-batch of 200 is small enough that plain SGD applies it
    example by example; the distributed run sums it first (the same within rounding)."""
    plain, _ = train(data, 700, threads=1, kernel="serial")
    one, _ = train(data, 700, shards=1, threads=1)
    np.testing.assert_allclose(one.params, plain.params, rtol=0, atol=1e-5)


def test_bad_arguments_are_refused(data):
    from fastgd.distributed import SGD
    net = fastgd.Network(SIZES, seed=1)
    with pytest.raises(ValueError, match="reduce must be 'ordered' or 'allreduce'"):
        SGD(net, data[0], 1, 1000, ETA, reduce="sum")
    with pytest.raises(ValueError, match="shards must be"):
        SGD(net, data[0], 1, 1000, ETA, shards=0)
    with pytest.raises(ValueError, match="give comm .* or shards"):
        SGD(net, data[0], 1, 1000, ETA, comm=object(), shards=2)
    with pytest.raises(ValueError, match="rank 0 of 2 refused its arguments: .*mini_batch_size"):
        SGD(net, data[0], 1, N + 1, ETA, shards=2)


# -- real MPI jobs -----------------------------------------------------------------------

def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or mpiexec() is None,
    reason="mpi4py or mpiexec is not installed (pip install 'fastgd[mpi]')")


def launch(ranks, args, cwd, timeout=180):
    """mpiexec -n ranks python ARGS...; a job that hangs fails instead of blocking."""
    env = dict(os.environ, PYTHONPATH=IMPORT_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               # Open MPI's refusals (root, more ranks than cores); MPICH ignores them
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    return subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def mpi_train(ranks, tmp_path, *options):
    result = launch(ranks, [os.path.join(HERE, "mpi_train.py"), str(tmp_path), *options],
                    tmp_path)
    return result, [np.load(tmp_path / f"rank{r}.npz") for r in range(ranks)
                    if (tmp_path / f"rank{r}.npz").exists()]


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("ranks, m", [(2, 1000), (3, None)], ids=["2 ranks, m=1000",
                                                                   "3 ranks, full batch"])
def test_ordered_mpi_equals_the_emulation_bit_for_bit(data, tmp_path, ranks, m):
    """3 ranks on a 2-core machine: oversubscribed, and still the same bits."""
    options = [] if m is None else ["--m", str(m)]
    result, outputs = mpi_train(ranks, tmp_path, *options)
    assert result.returncode == 0, result.stderr
    assert len(outputs) == ranks
    emulated, history = train(data, m, shards=ranks, threads=1)
    for out in outputs:  # every rank: rank 0's initial weights, trained identically
        assert np.array_equal(out["params"], emulated.params)
        assert records(json.loads(str(out["history"]))["records"]) == records(history)
    info = json.loads(str(outputs[0]["history"]))["info"]["distributed"]
    assert info["ranks"] == ranks and info["emulated"] is False
    assert info["combine_s"] > 0 and info["s_per_example"] > 0
    # only rank 0 prints: one line per epoch
    assert result.stdout.count("Epoch 0:") == 1 and result.stdout.count("Epoch 1:") == 1


@needs_mpi
@pytest.mark.slow
def test_allreduce_ranks_agree_and_match_within_rounding(data, tmp_path):
    result, outputs = mpi_train(2, tmp_path, "--m", "1000", "--reduce", "allreduce")
    assert result.returncode == 0, result.stderr
    assert np.array_equal(outputs[0]["params"], outputs[1]["params"])
    emulated, _ = train(data, 1000, shards=2, threads=1)
    np.testing.assert_allclose(outputs[0]["params"], emulated.params, rtol=0, atol=1e-5)


@needs_mpi
@pytest.mark.slow
def test_ranks_that_disagree_are_refused(tmp_path):
    """Rank 1 holds one example fewer: every rank refuses (none waits forever)."""
    result, outputs = mpi_train(2, tmp_path, "--short-rank", "1")
    assert result.returncode != 0
    assert outputs == []
    message = "the ranks disagree on the training examples: rank 1 has 2999, rank 0 3000"
    assert result.stderr.count(message) == 2  # raised on both ranks


@needs_mpi
@pytest.mark.slow
def test_cli_distributed(mnist, tmp_path):
    """mpiexec -n 2 fastgd train --distributed: rank 0 alone prints and saves, and
    its network is the emulation's."""
    saved = tmp_path / "net.npz"
    result = launch(2, ["-m", "fastgd", "train", "--distributed", "--sizes", "784,10,10",
                        "--train-size", "2000", "--full-batch", "--epochs", "2", "--seed", "3",
                        "--save", str(saved), "--history", str(tmp_path / "h.json")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Epoch 1:") == 1 and result.stdout.count("saved to") == 1
    assert "kernel serial (on each of 2 MPI ranks, ordered sum), 1 thread" in result.stdout
    (X, y), _, test = mnist
    net = fastgd.Network(SIZES, seed=3)
    net.SGD((X[:2000], y[:2000]), 2, None, ETA, verbose=False, shards=2, threads=1)
    assert np.array_equal(fastgd.Network.load(saved).params, net.params)
    report = json.loads((tmp_path / "h.json").read_text())
    assert report["info"]["distributed"]["ranks"] == 2

    refused = launch(2, ["-m", "fastgd", "train", "--distributed", "--checkpoint",
                         str(tmp_path / "c.npz")], tmp_path)
    assert refused.returncode == 2
    assert "--checkpoint cannot be used with --distributed" in refused.stderr


@needs_mpi
@pytest.mark.slow
def test_an_error_on_one_rank_reaches_every_rank(tmp_path):
    """The command line's preparation (outputs, data): rank 1 failing alone must not
    leave rank 0 waiting in the first collective."""
    code = ("from mpi4py import MPI\n"
            "from fastgd.cli.train import _on_every_rank\n"
            "comm = MPI.COMM_WORLD\n"
            "try:\n"
            "    with _on_every_rank(comm):\n"
            "        if comm.rank == 1:\n"
            "            raise OSError('no such directory')\n"
            "except Exception as e:\n"
            "    with open(f'rank{comm.rank}.txt', 'w') as f:\n"  # one file each: no interleaving
            "        print(type(e).__name__, e, file=f)\n")
    result = launch(2, ["-c", code], tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rank0.txt").read_text() == "ValueError rank 1 stopped: no such directory\n"
    assert (tmp_path / "rank1.txt").read_text() == "OSError no such directory\n"


# Trains for minutes unless stopped; each rank writes its pid once it has started.
STOPPING = """\
import os, sys
from mpi4py import MPI
import fastgd
comm = MPI.COMM_WORLD
open(f"rank{comm.rank}.pid", "w").write(str(os.getpid()))
(X, y), _, _ = fastgd.load_mnist()
net = fastgd.Network([784, 10, 10], seed=1)
try:
    # eta small enough not to diverge, and epochs enough to outlast the test: training
    # must still be running when the signal comes
    net.SGD((X[:3000], y[:3000]), 100_000, 10, 0.5, comm=comm, threads=1, verbose=False)
except fastgd.TrainingInterrupted as e:
    print(f"rank {comm.rank}: {e.history.stopped}", flush=True)
    sys.exit(130)
"""


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_a_rank_interrupted_or_killed_stops_every_rank(tmp_path, signal_name):
    """One rank interrupted (SIGINT: every rank stops at the same step) or killed
    (SIGKILL: the launcher ends the job): never a rank waiting forever."""
    import signal
    import time
    env = dict(os.environ, PYTHONPATH=IMPORT_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    job = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-c", STOPPING], cwd=tmp_path,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 120  # imports and the kernels' compile
        while not all((tmp_path / f"rank{r}.pid").exists() for r in range(2)):
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.2)
        time.sleep(8)  # into training (the kernels come from numba's cache)
        assert job.poll() is None, job.communicate()
        os.kill(int((tmp_path / "rank1.pid").read_text()), getattr(signal, signal_name))
        out, err = job.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        pytest.fail(f"the job still ran 20 s after {signal_name} to rank 1")
    assert job.returncode != 0
    if signal_name == "SIGINT":
        assert "rank 0: interrupted by SIGINT" in out and "rank 1: interrupted by SIGINT" in out
