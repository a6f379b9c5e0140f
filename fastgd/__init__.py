"""fastgd: learning with gradient descent (Nielsen, "Neural Networks and Deep Learning",
chapter 1) as numba-parallel CPU kernels.

    >>> import fastgd
    >>> training_data, validation_data, test_data = fastgd.load_mnist()
    >>> net = fastgd.Network([784, 30, 10], seed=1)
    >>> history = net.SGD(training_data, epochs=30, mini_batch_size=10, eta=3.0,
    ...                   test_data=test_data)
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Names are imported on first use, so that ``import fastgd.cli`` is quick and a
# Ctrl-C while numba loads reaches the command line's handler, not a traceback.
_HOMES = {
    "Network": "trainable", "Evaluation": "evaluation", "Dataset": "dataset",
    "SGD": "training", "resume": "trainable", "Trainer": "training", "History": "training",
    "TrainingOptions": "training",
    "DivergenceError": "training", "DivergenceWarning": "training",
    "TrainingInterrupted": "training",
    "InputScaleWarning": "_validation",
    "load_mnist": "data", "read_idx": "data", "read_digit_image": "data", "IDXError": "data",
    "minimize": "descent", "Descent": "descent",
    "gradient_noise": "noise",
    "time_to_accuracy": "compare",
    "sweep": "sweeps", "SweepTable": "sweeps",
    "compile_kernels": "precompile", "cache_info": "kernels.cache", "clear_cache": "kernels.cache",
}
__all__ = list(_HOMES)

if TYPE_CHECKING:  # what the names are, for type checkers and doc generators
    from ._validation import InputScaleWarning  # noqa: F401
    from .compare import time_to_accuracy  # noqa: F401
    from .data import IDXError, load_mnist, read_digit_image, read_idx  # noqa: F401
    from .dataset import Dataset  # noqa: F401
    from .descent import Descent, minimize  # noqa: F401
    from .kernels.cache import cache_info, clear_cache  # noqa: F401
    from .evaluation import Evaluation  # noqa: F401
    from .noise import gradient_noise  # noqa: F401
    from .precompile import compile_kernels  # noqa: F401
    from .sweeps import SweepTable, sweep  # noqa: F401
    from .trainable import Network, resume  # noqa: F401
    from .training import (SGD, DivergenceError, DivergenceWarning, History,  # noqa: F401
                           Trainer, TrainingInterrupted, TrainingOptions)


def __getattr__(name):
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastgd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
