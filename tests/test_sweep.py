"""fastgd.sweep and ``fastgd sweep`` on a local Dask cluster: one row per point in grid
order, each bit for bit the plain in-process run of that point, a failed point reported
while the others finish, the outputs written and never replaced unasked, and no worker
process left behind."""

import csv
import json
import logging
import multiprocessing
import os

import numba
import pytest

import fastgd
from fastgd import sweeps
from fastgd.cli import main

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow  # worker processes start (a few seconds each cluster)

SIZES = [784, 10, 10]  # compiled by the other tests already
EPOCHS = 2


@pytest.fixture(scope="module")
def data(mnist):
    (X, y), (Xv, yv), _ = mnist
    return (X[:2000], y[:2000]), (Xv[:1000], yv[:1000])


# The tests that check that their own cluster leaves no process behind come
# before the first test that takes this one: a test worker of pytest-xdist runs its
# tests in the file's order, so none of them runs beside this cluster's workers.
@pytest.fixture(scope="module")
def cluster():
    """A cluster as sweep starts one (two workers), shared by the tests that take it."""
    with sweeps.local_cluster(2) as client:
        yield client
    assert children() == set()


THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS")


def children():
    """This process's live child processes, as a set: ``active_children()``
    lists them in a set's order, which can change when another child comes
    and goes (a cluster fixture's workers stay alive beside a test's own)."""
    return {process.pid for process in multiprocessing.active_children()}


def launch_numba_threads():
    """Run a parallel kernel: from then on numba refuses to compile after a change
    of NUMBA_NUM_THREADS."""
    @numba.njit(parallel=True)
    def total(n):
        s = 0
        for i in numba.prange(n):
            s += i
        return s
    assert total(10) == 45


def plain_run(point, data):
    """The same point trained in this process, as a user would train it."""
    training, evaluation = data
    net = fastgd.Network(point["sizes"], seed=point["seed"], dtype=point["dtype"])
    return net.SGD(training, point["epochs"], point["mini_batch_size"], point["eta"],
                   test_data=evaluation, verbose=False, threads=1)


def test_sweep_rows_in_grid_order_equal_plain_runs_and_a_failed_point_is_reported(data):
    launch_numba_threads()
    environment = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    before = children()
    grid = {"sizes": [SIZES, [5, 10, 10]], "eta": [1.0, 3.0], "seed": [1, 2]}
    calls = []
    table = fastgd.sweep(grid, *data, epochs=EPOCHS, n_workers=2,
                         progress=lambda done, total, row: calls.append((done, total, row)))

    assert isinstance(table, fastgd.SweepTable) and len(table.rows) == 8
    order = [(row["sizes"], row["eta"], row["seed"]) for row in table.rows]
    assert order == [(s, e, seed) for s in grid["sizes"] for e in grid["eta"]
                     for seed in grid["seed"]]
    assert [row["point"] for row in table.rows] == list(range(8))
    for row in table.rows[:4]:
        assert row["error"] is None and row["epochs_run"] == EPOCHS
        history = plain_run(row, data)
        correct = [r["correct"] for r in history]
        # bit-identical training: the same counts, the same costs to the last bit
        assert row["final_correct"] == correct[-1] and row["best_correct"] == max(correct)
        assert row["final_cost"] == history[-1]["cost"]
        assert row["eval_cost"] == history[-1]["test_cost"]
        assert row["total"] == 1000 and row["final_accuracy"] == correct[-1] / 1000
    for row in table.rows[4:]:
        assert row["best_accuracy"] is None
        assert row["error"].startswith("ValueError: training_data[0] (X) must have shape (n, 5)")

    assert calls[0] == (0, 8, None)
    assert [c[0] for c in calls[1:]] == list(range(1, 9)) and {c[1] for c in calls} == {8}
    assert sorted(c[2]["point"] for c in calls[1:]) == list(range(8))
    assert table.info["workers"] == 2 and table.info["fixed"]["epochs"] == EPOCHS
    # the nanny sets the workers' NUMBA_NUM_THREADS in this process's environment,
    # where numba would read it at its next compilation and fail: it is put back
    assert {name: os.environ.get(name) for name in THREAD_VARIABLES} == environment
    assert numba.njit(lambda x: x + 1)(1) == 2
    assert children() == before


def test_a_failing_progress_callback_still_closes_the_cluster(data):
    before = children()

    def progress(done, total, row):
        if done:
            raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        fastgd.sweep({"eta": [3.0], "hidden": [10]}, *data, epochs=1, n_workers=1,
                     progress=progress)
    assert children() == before


def test_workers_run_one_numba_thread(cluster):
    threads = cluster.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS)
    assert list(threads.values()) == [1, 1]


def test_hidden_sizes_and_the_existing_cluster(data, cluster):
    table = fastgd.sweep({"hidden": [10], "mini_batch_size": [10, 2001]}, *data,
                         epochs=1, eta=3.0, client=cluster)
    assert [row["sizes"] for row in table.rows] == [SIZES, SIZES]
    assert table.rows[0]["error"] is None
    assert table.rows[1]["error"] == ("ValueError: mini_batch_size must be <= 2000, "
                                      "got 2001")
    assert not cluster.has_what() or not any(cluster.has_what().values())  # nothing left


def test_grid_errors_before_anything_runs(data):
    with pytest.raises(ValueError, match="grid keys must be among"):
        sweeps.grid_points({"learning_rate": [1]}, *data)
    with pytest.raises(ValueError, match="both sizes and hidden"):
        sweeps.grid_points({"sizes": [SIZES], "hidden": [30]}, *data)
    with pytest.raises(ValueError, match=r"grid\['eta'\] is empty"):
        sweeps.grid_points({"eta": []}, *data)
    with pytest.raises(TypeError, match=r"grid\['eta'\] must be a list"):
        sweeps.grid_points({"eta": 3.0}, *data)
    assert sweeps.grid_points({}, *data)[0]["sizes"] == [784, 30, 10]  # the book's


@pytest.mark.parametrize("kwargs, error, message", [
    # n_workers=0 waited 40 s for a worker, then raised Dask's TimeoutError
    (dict(n_workers=0), ValueError, "n_workers must be >= 1, got 0"),
    (dict(n_workers="2"), TypeError, "n_workers must be an integer"),
    (dict(client=5), TypeError, "client must be None, a scheduler address or a "
                                "distributed.Client, got int 5"),
    (dict(progress=5), TypeError, "progress must be a function"),
])
def test_sweep_arguments_are_checked_before_any_cluster_starts(data, kwargs, error, message,
                                                              monkeypatch):
    monkeypatch.setattr(sweeps, "warm", None)  # nothing may compile or start
    with pytest.raises(error, match=message):
        fastgd.sweep({"eta": [1.0]}, *data, epochs=1, sizes=SIZES, **kwargs)


def test_table_json_has_no_nan_and_reads_back(tmp_path):
    row = {"point": 0, "sizes": SIZES, "eta": 100.0, "mini_batch_size": 10, "seed": 1,
           "epochs": 1, "dtype": "float32", "final_cost": float("nan"), "epochs_run": 1,
           "diverged": "training diverged in epoch 0: ..."}
    table = sweeps.SweepTable([row])
    table.to_json(tmp_path / "t.json")
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["rows"][0]["final_cost"] is None
    assert sweeps.SweepTable.read_json(tmp_path / "t.json").rows[0]["eta"] == 100.0
    with pytest.raises(FileExistsError):
        table.to_json(tmp_path / "t.json")


def test_cli_writes_the_outputs_and_refuses_to_replace_them(cluster, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["sweep", "--sizes", "784,10,10;5,10,10", "--eta", "3,300", "--seed", "1,2",
            "--epochs", "2", "--train-size", "2000", "--scheduler",
            cluster.scheduler.address, "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "8 runs on 2000 training inputs, scored on 10000 validation inputs" in captured.err
    assert captured.err.count("] 784-10-10, m 10, eta") == 4
    assert captured.err.count("] 5-10-10, m 10, eta") == 4
    assert "error: ValueError" in captured.err
    assert "best of 784-10-10, m 10, eta 3, seed" in captured.out
    assert sorted(os.listdir(out)) == ["sweep.csv", "sweep.json", "sweep.md", "sweep.png"]
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["sizes"], r["eta"], r["seed"]) for r in rows[:4]] == [
        ("784-10-10", "3", "1"), ("784-10-10", "3", "2"), ("784-10-10", "300", "1"),
        ("784-10-10", "300", "2")]
    assert rows[0]["error"] == "" and rows[4]["error"].startswith("ValueError")
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["info"]["eval_name"] == "validation" and len(saved["rows"]) == 8
    assert "| 784-10-10 | 3 | 1 |" in (out / "sweep.md").read_text()
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert main(argv) == 2
    assert "exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_cli_usage_errors(capsys):
    assert main(["sweep", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--workers sizes the local cluster" in capsys.readouterr().err
    assert main(["sweep", "--sizes", "784,30,10;784"]) == 2
    assert "needs at least two layers" in capsys.readouterr().err


def test_workers_drop_only_the_heartbeat_error_of_a_scheduler_gone():
    """An interrupted sweep closes its scheduler while the workers train: their
    next heartbeat's OSError (logged with a traceback) is dropped, nothing else."""
    from fastgd.sweeps import cluster
    worker = logging.getLogger("distributed.worker")
    before = list(worker.filters)
    try:
        cluster._quiet_cancellations()
        cluster._quiet_cancellations()  # once per worker, however often it runs
        added = [f for f in worker.filters if f not in before]
        assert len(added) == 1

        def passes(message):
            record = logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1,
                                       message, (), None)
            return added[0].filter(record)

        assert not passes("Failed to communicate with scheduler during heartbeat.")
        assert passes("Unexpected exception during heartbeat. Closing worker.")
        assert passes("Compute Failed")
    finally:
        worker.filters[:] = before
