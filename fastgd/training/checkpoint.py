"""Checkpoints: the network, the generator's state, the History and the options
that define a run, in one file written atomically (the network file's format
under the name ``CHECKPOINT_FORMAT``, with the state as a JSON text member),
and the fingerprints that tie a checkpoint to its data."""

import hashlib
import json
import os

import numpy as np

from ..dataset import FINGERPRINT_ALGORITHM
from ..network import Network
from ..network_file import read_network, write_network
from .options import RUN_OPTIONS

CHECKPOINT_FORMAT = "fastgd-checkpoint-1"


def write_checkpoint(path, net, state):
    """Write ``net`` and ``state`` (a dict of JSON values and NumPy scalars) to
    ``path``, atomically, replacing what is there."""
    write_network(path, net, overwrite=True, file_format=CHECKPOINT_FORMAT,
                  extra={"state": np.array(json.dumps(state, default=_json_default))})


def read_checkpoint(path, network_class=Network):
    """(network, state) of a checkpoint, the network made by ``network_class``:
    ``state`` holds the epoch, the position in the next one, the run's options
    (``definition``), the History (``history``) and the data's fingerprints.
    ValueError if the file is not a valid checkpoint."""
    net, texts = read_network(path, network_class, file_format=CHECKPOINT_FORMAT,
                              extra=("state",), what="fastgd checkpoint")
    try:
        state = json.loads(texts["state"])
        definition = state["definition"]
        if state["dtype"] != net.dtype.name:
            raise ValueError("dtype does not match the weights")
        state["epoch"], state["position"] = int(state["epoch"]), int(state["position"])
        for key in RUN_OPTIONS:
            definition[key]
        state["history"]["records"], state["history"]["info"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a valid fastgd checkpoint (its state is "
                         f"damaged: {e!r})") from None
    state["path"] = os.fspath(path)
    return net, state


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


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a checkpoint")
