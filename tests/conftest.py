"""Fixtures shared by the tests; plain helpers are in helpers.py."""

import pytest

import fastgd


@pytest.fixture(scope="session")
def mnist():
    return fastgd.load_mnist()
