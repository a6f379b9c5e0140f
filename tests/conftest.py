"""Fixtures shared by the tests; plain helpers are in helpers.py."""

import os

# The suite trains on the generic kernels (the specialised kernels' bits, compiled
# once for every network shape), so that it compiles a few modules instead of one per
# shape; the tests of the kernels themselves (test_kernels.py, test_generic.py,
# test_boundscheck.py) run the specialised ones too.  Set before fastgd is imported:
# config reads it then, and subprocesses inherit it.
os.environ.setdefault("FASTGD_SPECIALIZE", "never")

import pytest  # noqa: E402

import fastgd  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    return fastgd.load_mnist()
