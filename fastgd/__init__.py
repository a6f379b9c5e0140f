"""fastgd: learning with gradient descent (Nielsen, "Neural Networks and Deep Learning",
chapter 1) as numba-parallel CPU kernels.

    >>> import fastgd
    >>> training_data, validation_data, test_data = fastgd.load_mnist()
    >>> net = fastgd.Network([784, 30, 10], seed=1)
    >>> history = net.SGD(training_data, epochs=30, mini_batch_size=10, eta=3.0,
    ...                   test_data=test_data)
"""

from .compare import time_to_accuracy
from .data import IDXError, load_mnist, read_idx
from .descent import Descent, minimize
from .network import Network
from .noise import gradient_noise
from .training import SGD, DivergenceError, DivergenceWarning, History, Trainer

__version__ = "0.1.0"
__all__ = ["Network", "SGD", "Trainer", "History", "DivergenceError", "DivergenceWarning",
           "load_mnist", "read_idx", "IDXError", "minimize", "Descent", "gradient_noise",
           "time_to_accuracy"]
