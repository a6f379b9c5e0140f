"""Every kernel path once more, compiled with numba's bounds checks on
(NUMBA_BOUNDSCHECK=1): an index past an array's end raises IndexError instead of
reading or writing whatever lies there.  A subprocess, since numba reads the
variable at import, with empty caches, since cached kernels were compiled without
the checks.  LLVM's optimisations are off there (NUMBA_OPT=0): numba writes the
checks before LLVM sees the code, so they are all there either way, and the
compile takes about half as long."""

import os
import pathlib
import subprocess
import sys

import pytest

import fastgd

TESTS = pathlib.Path(__file__).resolve().parent

SCRIPT = r'''
import numba
import numpy as np

import fastgd
import fastgd.training

from fastgd import reference as naive
from helpers import book_weights, random_data

assert numba.config.BOUNDSCHECK


@numba.njit
def past_the_end(a):
    return a[a.shape[0]]


try:
    past_the_end(np.zeros(3))
except IndexError:
    pass
else:
    raise AssertionError("NUMBA_BOUNDSCHECK=1 did not check bounds")

# Mini-batches of more than 4 examples sum their gradient in groups; up to 4
# update the weights directly (the parallel kernel in blocks of rows).
fastgd.training.trainer.chunk_size = lambda layout: 4
sizes, n = [5, 4, 3, 2], 70  # more than one block of evaluation too
X, y = random_data(sizes, n, seed=12)
for kernel in ("serial", "parallel"):
    for m in (1, 3, 9, None):
        net = fastgd.Network(sizes, seed=13, dtype="float64")
        weights, biases = book_weights(net)
        net.SGD((X, y), 1, m, 2.0, shuffle=False, kernel=kernel, verbose=False)
        weights, biases = naive.train_epoch(weights, biases, X, y, np.arange(n), m or n, 2.0)
        for got, want in zip(net.weights + net.biases, weights + biases):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)

want = np.array([naive.feedforward(weights, biases, x) for x in X])
np.testing.assert_allclose(net.feedforward(X), want, rtol=1e-12)
assert net.evaluate(X, y) == int(np.sum(np.argmax(want, axis=1) == y))
for row, x, label in zip(net.gradients(X, y), X, y):
    nabla_b, nabla_w = net.layout.unpack(row)
    ref_b, ref_w = naive.backprop(weights, biases, x, label)
    for got, ref in zip(nabla_b + nabla_w, ref_b + ref_w):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)
for x, label in zip(X[:3], y[:3]):  # backprop's own driver, one example
    nabla_b, nabla_w = net.backprop(x, label)
    ref_b, ref_w = naive.backprop(weights, biases, x, label)
    for got, ref in zip(nabla_b + nabla_w, ref_b + ref_w):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)
print("checked")
'''


@pytest.mark.slow
@pytest.mark.parametrize("specialize", ["now", "never"])  # the specialised, the generic kernels
def test_every_kernel_path_within_bounds(tmp_path, specialize):
    root = pathlib.Path(fastgd.__file__).resolve().parents[1]
    path = os.pathsep.join([str(TESTS), str(root), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_OPT="0",
               NUMBA_CACHE_DIR=str(tmp_path / "numba"), FASTGD_CACHE_DIR=str(tmp_path / "fastgd"),
               PYTHONPATH=path, FASTGD_SPECIALIZE=specialize)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # The parallel drivers call drive_descend through a function pointer, and
    # numba reports an exception raised there as "Exception ignored" on stderr
    # instead of raising it: an index out of bounds there must fail here too.
    assert "Exception ignored" not in done.stderr and "IndexError" not in done.stderr, \
        done.stderr[-3000:]
    assert done.stdout.strip() == "checked"
    assert any((tmp_path / "fastgd").iterdir())  # the kernels compiled here, not cached ones
