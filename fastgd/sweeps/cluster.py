"""The Dask cluster of a sweep: a local one started by spawning, or one to connect to, and
the points sent to it."""

import logging
import os
import uuid
from contextlib import contextmanager

from ..training.kernel_choice import available_cores
from .points import failed, run_point

DASK_HINT = "Dask is needed for sweeps: pip install 'fastgd[dask]'"


@contextmanager
def local_cluster(n_workers=None):
    """A ``distributed.Client`` of a new ``LocalCluster``: ``n_workers`` worker
    processes (default one per core), each with one thread and one numba thread,
    started by spawning (never forking: a fork after a parallel kernel has run
    hangs under GNU OpenMP).  Both are closed on leaving the block."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(DASK_HINT) from None
    n_workers = available_cores() if n_workers is None else n_workers
    # NUMBA_NUM_THREADS must be in a worker's environment before numba is imported
    # there, so the nanny sets it before spawning.  The nanny runs in this process
    # and sets it (and the rest of pre-spawn-environ) in os.environ, where numba would
    # read it again at its next compilation here and fail ("Cannot set
    # NUMBA_NUM_THREADS ... once the threads have been launched"): those variables
    # are put back after the start, and again at the end (a nanny restarting a
    # worker sets them again).
    settings = {"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": "1",
                "distributed.worker.multiprocessing-method": "spawn"}
    with dask.config.set(settings):
        names = [*dask.config.get("distributed.nanny.pre-spawn-environ"), "PYTHONHASHSEED"]
        before = {name: os.environ.get(name) for name in names}
        try:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                   processes=True,
                                   dashboard_address=":0")  # any free port: never a clash
        finally:
            _put_back(before)
    try:
        with Client(cluster) as client:
            # Closing on an interrupt cancels the runs in progress, of which each
            # worker would warn; the interrupt has already said so.
            client.run(_quiet_cancellations)
            yield client
    except BaseException:
        # Interrupted: the workers are in the middle of training, which cannot be
        # stopped, so the nanny kills them after a few seconds.  That is expected
        # here, not worth a warning.
        with _quiet("distributed"):
            cluster.close()
        raise
    else:
        cluster.close()
    finally:
        _put_back(before)


def _quiet_cancellations():
    """In each worker: no warning for each run cancelled, and no traceback when
    a heartbeat finds the scheduler gone (it closes first when the sweep is
    interrupted, while the workers are still training)."""
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
    worker = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _SchedulerGone) for f in worker.filters):
        worker.addFilter(_SchedulerGone())


class _SchedulerGone(logging.Filter):
    """Drops distributed's "Failed to communicate with scheduler during
    heartbeat" (an OSError, logged with its traceback): the worker is closed
    with the cluster a moment later.  Every other record passes."""

    def filter(self, record):
        return not str(record.msg).startswith("Failed to communicate with scheduler "
                                              "during heartbeat")


@contextmanager
def _quiet(name):
    """Only errors from the logger ``name`` while in the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _put_back(environment):
    """Set (or unset, for None) these environment variables as they were."""
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def connected(client, n_workers):
    """A Client: a new local cluster's, one connected to the address ``client``, or
    ``client`` itself."""
    if client is None:
        with local_cluster(n_workers) as new:
            yield new
        return
    if isinstance(client, str):
        from distributed import Client
        try:
            connected = Client(client, timeout="10s")
        except OSError as e:
            raise OSError(f"cannot reach the Dask scheduler at {client}: {e}") from None
        with connected:
            yield connected
        return
    yield client


def run_points(client, distributed, points, data, on_divergence, progress, own_cluster):
    """Send the points to the cluster and collect their rows in grid order."""
    # The data go to every worker once, not with each point.
    [data] = client.scatter([data], broadcast=True)
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(run_point, point, data, on_divergence,
                             key=f"fastgd-sweep-{token}-{i}", pure=False)
               for i, point in enumerate(points)]
    where = {future.key: i for i, future in enumerate(futures)}
    rows = [None] * len(points)
    try:
        if progress is not None:
            progress(0, len(points), None)
        for done, future in enumerate(distributed.as_completed(futures), 1):
            i = where[future.key]
            try:
                rows[i] = future.result()
            except Exception as e:  # a worker that died, a lost future
                rows[i] = failed(points[i], e)
            rows[i]["point"] = i
            if progress is not None:
                progress(done, len(points), rows[i])
    except BaseException as e:
        # interrupted: the rows finished so far go with the interrupt (sweep keeps them)
        e.rows = rows
        if not own_cluster:  # someone else's cluster goes on: free it of the sweep
            client.cancel(futures + [data])
        raise
    client.cancel([data])
    return rows
