"""Checkpoints: the network, the generator's state, the History and the options
that define a run, in one file written atomically (the network file's format
under the name ``CHECKPOINT_FORMAT``, with the state as a JSON text member),
and the fingerprints that tie a checkpoint to its data."""

import hashlib
import json
import math
import numbers
import os

import numpy as np

from .._validation import check_int, check_positive_float
from ..dataset import FINGERPRINT_ALGORITHM
from ..network import Network
from ..network_file import read_network, write_network
from .options import RUN_OPTION_DEFAULTS, RUN_OPTIONS, TrainingOptions

CHECKPOINT_FORMAT = "fastgd-checkpoint-1"


def write_checkpoint(path, net, state):
    """Write ``net`` and ``state`` (a dict of JSON values and NumPy scalars) to
    ``path``, atomically, replacing what is there."""
    write_network(path, net, overwrite=True, file_format=CHECKPOINT_FORMAT,
                  extra={"state": np.array(json.dumps(state, default=json_default))})


def read_checkpoint(path, network_class=Network):
    """(network, state) of a checkpoint, the network made by ``network_class``:
    ``state`` holds the epoch, the position in the next one, the run's options
    (``definition``), the History (``history``) and the data's fingerprints.

    A checkpoint is untrusted: every field of the state is checked (type, range,
    consistency with the weights and with the other fields) before any is used;
    ValueError (and only ValueError, FileNotFoundError or PermissionError aside)
    if the file is not a valid checkpoint.  The paths it records (the run's
    ``save_best``) are information only: nothing is ever written to a path read
    from a checkpoint."""
    net, texts = read_network(path, network_class, file_format=CHECKPOINT_FORMAT,
                              extra=("state",), what="fastgd checkpoint")
    if "state" not in texts:
        raise ValueError(f"{path} is not a valid fastgd checkpoint (no 'state' entry)")
    try:
        state = json.loads(texts["state"])
        _check_state(state, net)
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as e:
        raise ValueError(f"{path} is not a valid fastgd checkpoint (its state is "
                         f"damaged: {str(e)[:300]})") from None
    state["path"] = os.fspath(path)
    return net, state


def _check_state(state, net):
    """Every field of a checkpoint's state, checked against the others and the
    network ``net`` read from it; raises ValueError or TypeError saying which."""
    _require(isinstance(state, dict), "the state is not a JSON object")
    for key in ("definition", "dtype", "seed", "epoch", "position", "partial_cost", "rng",
                "fingerprint", "history"):
        _require(key in state, f"no {key!r}")
    _require(state["dtype"] == net.dtype.name,
             f"dtype {str(state['dtype'])[:20]!r} does not match the weights' {net.dtype.name}")
    if state["seed"] is not None:
        check_int(state["seed"], "seed", minimum=0)

    definition = state["definition"]
    _require(isinstance(definition, dict), "definition is not a JSON object")
    missing = [key for key in RUN_OPTIONS if key not in definition]
    _require(not missing, f"definition has no {missing}")
    epochs = check_int(definition["epochs"], "epochs", minimum=0)
    if definition["mini_batch_size"] is not None:
        check_int(definition["mini_batch_size"], "mini_batch_size", minimum=1)
    check_positive_float(definition["eta"], "eta")
    # the options as SGD checks them (bools bools, choices among the choices...)
    TrainingOptions(**{key: definition.get(key, default) for key, default in
                       dict(RUN_OPTION_DEFAULTS, reduction="mean", shuffle=True,
                            monitor_training_cost=False, on_divergence="stop",
                            checkpoint_every=1, early_stop=None).items()})
    _require(definition["save_best"] is None or isinstance(definition["save_best"], str),
             "save_best is not a path")

    epoch = check_int(state["epoch"], "epoch", minimum=0, maximum=epochs)
    position = check_int(state["position"], "position", minimum=0)
    m = definition["mini_batch_size"]
    if position:
        # a run stops mid-epoch only between mini-batches, in an epoch it was to run
        _require(epoch < epochs, f"position {position} in epoch {epoch}, past the "
                                 f"{epochs} epochs of the run")
        _require(m is not None and position % m == 0,
                 f"position {position} is not a whole number of mini-batches of {m}")
    cost = state["partial_cost"]
    _require(_is_real(cost) and math.isfinite(cost) and cost >= 0 and (position or not cost),
             f"partial_cost {str(cost)[:40]} is not the summed cost of {position} examples")

    rng = state["rng"]
    _require(isinstance(rng, dict), "rng is not a generator's state")
    # the generator's own checks, on a generator of the kind the network draws from
    type(net.rng.bit_generator)().state = rng

    fingerprint = state["fingerprint"]
    _require(isinstance(fingerprint, dict)
             and isinstance(fingerprint.get("training_data"), str)
             and (fingerprint.get("test_data") is None
                  or isinstance(fingerprint.get("test_data"), str)),
             "fingerprint is not the fingerprints of training_data and test_data")
    _require(isinstance(state.get("fingerprint_algorithm", "sha256"), str),
             "fingerprint_algorithm is not a name")

    history = state["history"]
    _require(isinstance(history, dict), "history is not a JSON object")
    for key in ("records", "info", "diverged"):
        _require(key in history, f"history has no {key!r}")
    records, info = history["records"], history["info"]
    _require(isinstance(records, list) and len(records) == epoch,
             f"history does not hold one record per epoch of the {epoch} done")
    tested = fingerprint["test_data"] is not None
    for i, record in enumerate(records):
        # one record per epoch, numbered from 0 (what History and the eta schedule
        # read), and only numbers in it
        _require(isinstance(record, dict) and record.get("epoch") == i
                 and not isinstance(record.get("epoch"), bool) and "cost" in record
                 and all(isinstance(k, str) and _is_real(v) for k, v in record.items())
                 and (not tested or (all(_is_count(record.get(k)) for k in ("correct", "total"))
                                     and record["correct"] <= record["total"])),
                 f"history record {i} is not the record of epoch {i}")
    _require(isinstance(info, dict), "history info is not a JSON object")
    for key, value in (("dtype", net.dtype.name), ("cost", net.cost_function)):
        _require(info.get(key, value) == value,
                 f"history info {key} {str(info.get(key))[:20]!r} does not match the "
                 f"network's {value}")
    for key in ("diverged", "stopped"):
        _require(history.get(key) is None or isinstance(history.get(key), str),
                 f"history {key} is not a text")
    best = history.get("best_saved")
    _require(best is None or (isinstance(best, dict) and _is_count(best.get("epoch"))
                              and best["epoch"] < max(epoch, 1)
                              and isinstance(best.get("path"), str)),
             "history best_saved is not an epoch and a path")


def _require(condition, message):
    if not condition:
        raise ValueError(message)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def data_fingerprint(X, y):
    """SHA-256 of a data set as the network sees it (inputs in its dtype, labels):
    the fingerprint of checkpoints written before ``FINGERPRINT_ALGORITHM``
    (0.1 s on MNIST), computed only to resume one of them."""
    digest = hashlib.sha256()
    digest.update(repr((X.shape, X.dtype.str)).encode())
    digest.update(np.ascontiguousarray(X).data)
    digest.update(np.ascontiguousarray(y, np.int64).data)
    return digest.hexdigest()


def check_same_data(state, data, fingerprints):
    """ValueError unless ``data`` ({"training_data": Dataset, "test_data":
    Dataset or None}) are the data the checkpoint ``state`` was written for;
    ``fingerprints()`` gives theirs by ``FINGERPRINT_ALGORITHM``."""
    # checkpoints written before the algorithm was tagged hold SHA-256 fingerprints
    algorithm = state.get("fingerprint_algorithm", "sha256")
    if algorithm == "sha256":
        fingerprint = {key: None if dataset is None else data_fingerprint(dataset.X, dataset.y)
                       for key, dataset in data.items()}
    elif algorithm == FINGERPRINT_ALGORITHM:
        fingerprint = fingerprints()
    else:
        raise ValueError(f"the checkpoint {state['path']} fingerprints its data with "
                         f"{str(algorithm)[:40]!r}, which this fastgd does not know "
                         "(written by a newer version?)")
    for key in ("training_data", "test_data"):
        if state["fingerprint"][key] != fingerprint[key]:
            what = "no" if fingerprint[key] is None else "different"
            raise ValueError(f"the checkpoint {state['path']} was written for other "
                             f"{key}: this call gives {what} {key} "
                             f"({key} must be the same to resume the run)")


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a checkpoint")
