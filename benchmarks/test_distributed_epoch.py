"""Seconds per full-batch epoch shared out over MPI ranks: 1 rank x 2 threads
against 2 ranks x 1 thread on the same cores, and 1 rank x 1 thread for reference
(fastgd.distributed, reduce="ordered"; the parallel kernel whenever a rank has
two threads).

Each case is one MPI job (benchmarks/mpi_epoch.py under mpiexec, in a subprocess)
that stays up for all its rounds: the job loads MNIST, compiles and prepares
once, then trains an epoch each time this process asks, from the same initial
weights in the same order (the fixed permutation of test_epoch.py's SEED).  The
time measured is from asking to hearing back (a few ms of pipe and launcher on
top of the epoch); the ranks' own time for the epoch, the slowest rank's, is
recorded beside it as ``epoch_s_median``.  Two ranks are pinned one core each
(MPICH's -bind-to core:N, Open MPI's --map-by slot:PE=N --bind-to core); one
rank runs on every core.

    pytest benchmarks/test_distributed_epoch.py --benchmark-json=mpi.json

Skips where mpi4py or mpiexec is not installed (pip install 'fastgd[mpi]').
"""

import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import pytest

import fastgd

from suite import ROUNDS, SMOKE, record

HERE = os.path.dirname(os.path.abspath(__file__))
IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastgd.__file__)))
# 1 rank x 1 thread: the reference the other two are a speed-up over
CASES = [pytest.param(1, 1, id="1 rank x 1 thread"),
         pytest.param(1, 2, id="1 rank x 2 threads"),
         pytest.param(2, 1, id="2 ranks x 1 thread")]


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def mpi_flavour(launcher):
    """"mpich", "openmpi" or None, from the launcher's --version."""
    try:
        text = subprocess.run([launcher, "--version"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if "HYDRA" in text or "MPICH" in text:
        return "mpich"
    if "Open MPI" in text or "OpenRTE" in text:
        return "openmpi"
    return None


def binding(launcher, ranks, threads):
    """Launcher flags that pin each rank to `threads` cores of its own (none for one
    rank: it runs on every core it may use)."""
    if ranks == 1:
        return []
    flavour = mpi_flavour(launcher)
    if flavour == "mpich":
        return ["-bind-to", f"core:{threads}"]
    if flavour == "openmpi":
        return ["--map-by", f"slot:PE={threads}", "--bind-to", "core"]
    return []


class EpochJob:
    """benchmarks/mpi_epoch.py under mpiexec, trained one epoch at a time."""

    def __init__(self, ranks, threads, reduce="ordered"):
        launcher = mpiexec()
        self.command = [launcher, "-n", str(ranks), *binding(launcher, ranks, threads),
                        sys.executable, os.path.join(HERE, "mpi_epoch.py"),
                        "--threads", str(threads), "--reduce", reduce]
        env = dict(os.environ, PYTHONPATH=IMPORT_ROOT + os.pathsep
                   + os.environ.get("PYTHONPATH", ""),
                   OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.close()
            raise RuntimeError(f"{' '.join(self.command)} did not start (said {line!r})")
        self.facts = json.loads(line[len("ready "):])
        self.epoch_seconds = []

    def send(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def reset(self):
        self.send("reset")

    def epoch(self):
        self.send("epoch")
        answer = self.process.stdout.readline().split()
        if not answer or answer[0] != "done":
            raise RuntimeError(f"the MPI job stopped mid-epoch (said {answer!r})")
        self.epoch_seconds.append(float(answer[1]))

    def close(self):
        try:
            self.send("quit")
            self.process.wait(timeout=60)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


@pytest.fixture
def epoch_job(request):
    jobs = []

    def start(*args, **kwargs):
        jobs.append(EpochJob(*args, **kwargs))
        return jobs[-1]
    yield start
    for job in jobs:
        job.close()


@pytest.mark.bench("fastgd", threads="all")
@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or mpiexec() is None,
                    reason="mpi4py or mpiexec is not installed (pip install 'fastgd[mpi]')")
@pytest.mark.parametrize("ranks, threads", CASES)
def test_full_batch_epoch_mpi(benchmark, machine, epoch_job, ranks, threads):
    began = time.perf_counter()
    job = epoch_job(ranks, threads)
    started = time.perf_counter() - began
    benchmark.group = "full batch float32 784x30x10, MPI ranks x threads"

    def reset():
        job.reset()
        return (), {}
    benchmark.pedantic(job.epoch, setup=reset, rounds=ROUNDS, warmup_rounds=1)
    # the warm-up round first (the only round when benchmarks are disabled, as in CI)
    timed = job.epoch_seconds[1:] or job.epoch_seconds
    record(benchmark, machine, impl=f"fastgd MPI {ranks} rank{'s' if ranks > 1 else ''} x "
                                    f"{threads} thread{'s' if threads > 1 else ''}",
           mode="full batch", mini_batch_size=None, threads=ranks * threads, ranks=ranks,
           threads_per_rank=threads, dtype="float32", sizes=[784, 30, 10],
           examples=job.facts["examples"], epoch_s_median=statistics.median(timed),
           epoch_s=timed, job_start_s=started, launch=" ".join(job.command), smoke=SMOKE,
           mpi_job=job.facts)
