"""Fixtures shared by the tests, and the scheduling of the tests that compile the
specialised kernels; plain helpers are in helpers.py."""

import json
import os
import shutil
import signal
import tempfile

# The suite trains on the generic kernels (the specialised kernels' bits, compiled
# once for every network shape), so that it compiles a few modules instead of one per
# shape; the tests of the kernels themselves (test_kernels.py, test_generic.py,
# test_boundscheck.py) run the specialised ones too.  Set before fastgd is imported:
# config reads it then, and subprocesses inherit it.
os.environ.setdefault("FASTGD_SPECIALIZE", "never")

# A suite started with a stop signal ignored (a background job of a script without job
# control ignores SIGINT, nohup ignores SIGHUP) would pass that on to every process it
# starts, and fastgd rightly keeps an ignored signal ignored: the tests that stop a run
# by a signal could then never stop it.  The tests need the usual handling.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
for _name in ("SIGTERM", "SIGHUP"):
    if hasattr(signal, _name) and signal.getsignal(getattr(signal, _name)) is signal.SIG_IGN:
        signal.signal(getattr(signal, _name), signal.SIG_DFL)

import pytest  # noqa: E402

import fastgd  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    return fastgd.load_mnist()


# -- the tests marked `specialised` -------------------------------------------------------
#
# Compiling the kernels specialised for one network shape takes a minute or more of a
# core per dtype and input path, where the generic kernels are compiled once for every
# shape: such a test is slow (`pytest -m "not slow"` runs on the generic kernels
# only), and under pytest-xdist (`pytest -n auto`) the tests of one shape run in one
# worker process, which compiles the shape once.  xdist's default deals the tests out
# one at a time, so that every worker compiled nearly every shape for itself; its
# "loadgroup" would keep them together, but does not group under pytest 9.  So the
# workers write down each test's shape while collecting, and the controller
# schedules with it (the other tests still one at a time, the largest groups first).
# Tests marked ``compiles(NAME)`` share a kernel that the rest of the suite does not
# compile (the hogwild kernel): they are kept together likewise.

GROUPS = pytest.StashKey[str]()  # the controller's folder for the workers' groups


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        shared = item.get_closest_marker("compiles")
        if shared is not None:  # a kernel no other test file needs: compiled in one worker
            groups[item.nodeid] = f"compiles {shared.args[0]}"
        if item.get_closest_marker("specialised") is None:
            continue
        item.add_marker(pytest.mark.slow)
        params = getattr(item, "callspec", None)
        sizes = params.params.get("sizes") if params is not None else None
        if sizes is not None:
            groups[item.nodeid] = f"specialised {list(sizes)}"
    folder = getattr(config, "workerinput", {}).get("fastgd_groups")
    if folder:
        name = os.path.join(folder, config.workerinput["workerid"] + ".json")
        with open(name + ".tmp", "w") as f:
            json.dump(groups, f)
        os.replace(name + ".tmp", name)


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "load" and not hasattr(config, "workerinput"):
        config.stash[GROUPS] = tempfile.mkdtemp(prefix="fastgd-test-groups-")


def pytest_unconfigure(config):
    if GROUPS in config.stash:
        shutil.rmtree(config.stash[GROUPS], ignore_errors=True)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hooks: xdist need not be installed
def pytest_configure_node(node):
    if GROUPS in node.config.stash:
        node.workerinput["fastgd_groups"] = node.config.stash[GROUPS]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if GROUPS not in config.stash:
        return None  # another --dist than the default: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    folder = config.stash[GROUPS]

    class ByShape(LoadScopeScheduling):
        """xdist's loadscope with a test's shape as its scope where it has one, else
        the test itself."""

        groups = None

        def _split_scope(self, nodeid):
            if self.groups is None:  # every worker collected the same tests
                self.groups = {}
                for name in os.listdir(folder):
                    if name.endswith(".json"):
                        with open(os.path.join(folder, name)) as f:
                            self.groups.update(json.load(f))
            return self.groups.get(nodeid, nodeid)

    return ByShape(config, log)
