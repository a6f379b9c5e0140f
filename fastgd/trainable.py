"""``fastgd.Network``: the model (``fastgd.network.Network``) with the book's
``SGD`` method, which trains on this machine (``fastgd.training``) or, given
``comm`` or ``shards``, over ranks (``fastgd.distributed``); and ``resume``,
which gives this class back.  The model itself knows nothing of training, so
the layers below import no training code."""

from typing import Any

from . import distributed, network, training
from ._files import StrPath
from .dataset import Data
from .training import History


class Network(network.Network):
    __doc__ = network.Network.__doc__

    def SGD(self, training_data: Data, epochs: int, mini_batch_size: int | None, eta: float,
            test_data: Data | None = None, *, comm: Any = None, **options: Any) -> History:
        """Train by mini-batch stochastic gradient descent; see ``fastgd.training.SGD``.

        ``mini_batch_size=1`` is online learning, ``None`` (or n) full-batch
        gradient descent.  Returns the per-epoch ``History``.  With ``comm`` (an
        mpi4py communicator) or ``shards``, each step's gradient is shared out
        over the ranks: see ``fastgd.distributed.SGD``.
        """
        if comm is not None or options.get("shards") is not None:
            return distributed.SGD(self, training_data, epochs, mini_batch_size, eta,
                                   test_data, comm=comm, **options)
        return training.SGD(self, training_data, epochs, mini_batch_size, eta, test_data,
                            **options)


def resume(path: StrPath, training_data: Data, test_data: Data | None = None,
           **options: Any) -> tuple[Network, History]:
    """Continue the run whose checkpoint is at ``path``; returns (network, History),
    the network a ``fastgd.Network``.  See ``fastgd.training.resume``."""
    return training.resume(path, training_data, test_data, network_class=Network, **options)
