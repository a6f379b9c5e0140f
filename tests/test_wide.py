"""Networks too wide for kernels specialised to their widths
(config.SPECIALIZE_MAX_OUTPUTS): they train on the generic kernels at once,
say so, and nothing is generated or compiled for their widths."""

import glob
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import fastgd
from fastgd import config, kernels
from fastgd.cli import main
from fastgd.training import Trainer, compile_estimate, compile_notice

WIDE = [784, 10000, 10]


def test_the_bound_counts_outputs_written_out():
    assert kernels.unrolled_outputs([784, 30, 10]) == 32 + 16
    assert kernels.specialisable([784, 30, 10]) and kernels.specialisable([784, 100, 10])
    assert not kernels.specialisable([784, 1000, 10]) and not kernels.specialisable(WIDE)


def test_a_wide_network_gets_the_generic_module_without_generating_its_own():
    module = kernels.kernels(WIDE, "float32")
    assert module is kernels.generic_kernels(WIDE)
    assert module.generic


def test_a_wide_network_trains_on_the_generic_kernels_with_nothing_in_the_background(
        monkeypatch):
    monkeypatch.setattr(config, "SPECIALIZE", "background")
    net = fastgd.Network([784, 1000, 10], seed=0)
    X = np.random.default_rng(0).random((20, 784), np.float32)
    trainer = Trainer(net, (X, np.arange(20) % 10), 10, 1.0)
    assert trainer.specialized is None and trainer.build == "generic"
    history = net.SGD((X, np.arange(20) % 10), 1, 10, 1.0)
    assert history.info["kernels"] == "generic"


def test_the_compile_notice_says_so_and_estimates_the_generic_compile(monkeypatch):
    net = fastgd.Network(WIDE, seed=0)
    stream = io.StringIO()
    with compile_notice(net, stream=stream):
        pass
    said = stream.getvalue()
    assert said.count("generic kernels only") == 1
    assert "SPECIALIZE_MAX_OUTPUTS" in said
    small = fastgd.Network([4, 3, 2], seed=0)
    assert compile_estimate(net) == compile_estimate(small, "generic")


@pytest.mark.slow  # compiles the generic kernels in float32 unless another test has
def test_the_compile_command_compiles_the_generic_kernels_only(capsys):
    assert main(["compile", "--sizes", "784,10000,10"]) == 0
    assert capsys.readouterr().out.startswith("Generic kernels only")


# Trains [784, 1000, 10] in a process with empty caches, then [784, 10000, 10]
# (the generic kernels are then on disk); prints the CPU seconds and peak memory.
PROGRAM = """
import resource, sys
import numpy as np
import fastgd
sizes = [int(w) for w in sys.argv[1].split(",")]
X = np.random.default_rng(0).random((300, 784), np.float32)
y = np.arange(300) % 10
history = fastgd.Network(sizes, seed=0).SGD((X, y), 1, 10, 1.0)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(history.info["kernels"], usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
"""


@pytest.mark.slow  # two processes, each training a wide network
def test_wide_networks_train_soon_in_bounded_memory(tmp_path):
    # The suite's own caches: the generic kernels serve every shape, so a new wide
    # shape finds them compiled (as on any machine after its first run of fastgd);
    # what must not happen is a compile for the shape itself.
    from fastgd.kernels import cache
    folder = cache.module_folder()
    env = dict(os.environ, FASTGD_SPECIALIZE="background")
    for sizes, most_seconds in (("784,1000,10", 60), ("784,10000,10", 60)):
        # a wall-clock limit loose enough for a busy machine; the bound is on CPU time
        done = subprocess.run([sys.executable, "-c", PROGRAM, sizes], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        build, seconds, kilobytes = done.stdout.splitlines()[-1].split()
        assert build == "generic"
        assert float(seconds) < most_seconds, (sizes, seconds)
        # Compiling the generic kernels cold peaked at about 2.3 GB (numba and LLVM);
        # the specialised ones grew without bound (9.3 GB for 784,10000,10 after 4 min).
        assert int(kilobytes) < 4_000_000, (sizes, kilobytes)  # weights: 31 MB at the most
    # nothing was generated for the wide widths: the generic modules only
    assert not glob.glob(os.path.join(folder, "fastgd_kernels_1000_*"))
    assert not glob.glob(os.path.join(folder, "fastgd_kernels_10000_*"))
    assert glob.glob(os.path.join(folder, "fastgd_kernels_generic*"))
