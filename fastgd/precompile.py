"""Compiling ahead of time (``compile_kernels``): the kernels that training,
distributed training and evaluating a network of given sizes use, compiled into
(or loaded from) the on-disk cache, so that no later run compiles them."""

import functools
import time
from contextlib import contextmanager
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from . import config, kernels
from ._validation import check_bool, check_dtype, check_sizes
from .dataset import Dataset
from .distributed import SGD as distributed_SGD
from .network import Network
from .training import Trainer, compile_notice


INPUTS = ("sparse", "dense", "both")


@dataclass(frozen=True)
class CompiledKernel:
    """One step of ``compile_kernels``: ``kernel`` (the generated module's name
    for it, such as "train_serial"; "feedforward" is both evaluation kernels),
    ``inputs`` ("sparse", "dense", or None where the kernel has one path),
    ``cached`` (numba's disk cache held it before: loaded, not compiled; None
    if unknown) and ``seconds``."""
    kernel: str
    inputs: str | None
    cached: bool | None
    seconds: float


@dataclass(frozen=True)
class CompiledKernels:
    """What ``compile_kernels`` did: the network it compiled for (``sizes``,
    ``dtype``, ``cost``, ``inputs``), the cache ``folder``, each kernel
    (``kernels``, CompiledKernel) and the ``seconds`` it all took.
    ``generic``: the network is too wide for kernels specialised to its
    widths (``kernels.specialisable``), so they are the generic kernels."""
    sizes: list
    dtype: str
    cost: str
    inputs: str
    folder: str
    kernels: tuple
    seconds: float
    generic: bool = False

    @property
    def compiled(self):
        """The kernels compiled now (not loaded from numba's disk cache)."""
        return tuple(k for k in self.kernels if not k.cached)


def compile_kernels(sizes: Sequence[int], dtype: DTypeLike = "float32",
                    cost: str = "quadratic", *, inputs: str = "sparse",
                    distributed: bool = False, verbose: bool = False) -> CompiledKernels:
    """Compile ahead of time, into the on-disk cache (or load from it), the
    kernels that training and evaluating a network of these sizes use, so that
    no later run compiles them (a Docker image, each node of a cluster, CI).

    cost: "quadratic" or "cross-entropy", the cost it trains on.  inputs: the
    training input path, "sparse" (the default, and MNIST's: most inputs are
    zero and are skipped), "dense" (training data with at least
    config.DENSE_FROM of their inputs nonzero) or "both".  distributed: also the
    gradient sums that distributed (MPI) training runs.  verbose: say on stderr
    while compiling (``compile_notice``).  The evaluation kernels do not depend
    on cost or inputs.  A network too wide for specialised kernels
    (``kernels.specialisable``) gets the generic ones only.  Returns
    CompiledKernels.
    """
    sizes, dtype_name = _check_network(sizes, dtype, cost)
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {', '.join(map(repr, INPUTS))}, got {inputs!r}")
    distributed = check_bool(distributed, "distributed")
    verbose = check_bool(verbose, "verbose")
    net = Network(sizes, seed=0, dtype=dtype_name, cost=cost)
    began = time.perf_counter()
    steps = []
    with _specialize("now"):  # the specialised kernels, not the generic stopgap
        for dense in ((False, True) if inputs == "both" else (inputs == "dense",)):
            data = _one_example(net, dense)
            with compile_notice(net, verbose, dense=dense):
                steps += _compile_training(net, data, dense)
            if distributed:
                steps += _compile_distributed(net, data, dense)
        module = kernels.kernels(net.sizes, net.dtype, net.cost_function)
        steps.append(_compile_step("feedforward", None,
                                   [module.feedforward_serial, module.feedforward_parallel],
                                   net.warm_up, net.dtype))
    return CompiledKernels(sizes, dtype_name, cost, inputs,
                           kernels.cache.module_folder(create=False), tuple(steps),
                           time.perf_counter() - began, generic=not kernels.specialisable(sizes))


def load_compiled_kernels(sizes: Sequence[int], dtype: DTypeLike = "float32",
                          cost: str = "quadratic", *, inputs: str = "sparse",
                          evaluation: bool = True) -> bool:
    """Load, from numba's disk cache, the kernels that training (serial and
    parallel) and evaluating a network of these sizes use, if the cache holds
    every one of them, and return True; else do nothing and return False.  It
    never compiles: for a caller with time to spare before its training starts
    (``fastgd train``, while a thread indexes the data), which would otherwise
    load them then.  The arguments are those of ``compile_kernels`` (inputs
    "sparse" or "dense").  With evaluation False the evaluation kernels are
    only checked, not loaded: a caller may load them beside the training
    (``Network.warm_up``), which needs them only once an epoch ends."""
    sizes, dtype = _check_network(sizes, dtype, cost)
    check_bool(evaluation, "evaluation")
    if inputs not in INPUTS[:2]:
        raise ValueError(f"inputs must be 'sparse' or 'dense', got {inputs!r}")
    dense = inputs == "dense"
    training = kernels.kernels(sizes, dtype, cost, dense)
    evaluating = kernels.kernels(sizes, dtype, cost)
    if not (kernels.ready(training, ["train_serial", "train_parallel"], dtype)
            and kernels.ready(evaluating, ["feedforward_serial", "feedforward_parallel"],
                              dtype)):
        return False
    net = Network(sizes, seed=0, dtype=dtype, cost=cost)
    with _specialize("now"):  # what is ready: the specialised kernels
        _compile_training(net, _one_example(net, dense), dense)
    if evaluation:
        net.warm_up()
    return True


def _check_network(sizes, dtype, cost) -> tuple[list, str]:
    """(sizes, dtype's name), checked, and cost checked."""
    sizes = check_sizes(sizes)
    dtype_name = np.dtype(check_dtype(dtype)).name
    if cost not in kernels.COSTS:
        raise ValueError(f"cost must be one of {', '.join(map(repr, kernels.COSTS))}, "
                         f"got {cost!r}")
    return sizes, dtype_name


def _one_example(net, dense):
    """A training set of one example whose inputs take the dense or the sparse
    path: a Dataset, checked and indexed once for the several trainers that use
    it (plain arrays given again would be compared with their index, by one
    more kernel to load)."""
    X = np.full((1, net.sizes[0]), 1 if dense else 0, net.dtype)
    if kernels.uses_dense_path(X)[0] != dense:
        raise ValueError(f"inputs={'dense' if dense else 'sparse'!r}: training never takes "
                         "that path with this fastgd.config.DENSE_FROM")
    return Dataset(X, np.zeros(1, np.int64), dtype=net.dtype)


def _compile_step(kernel, inputs, fns, run, dtype):
    """CompiledKernel of ``run()``, which compiles (or loads) the numba kernels fns
    for networks of dtype."""
    known = [kernels.on_disk(fn, dtype) for fn in fns]
    cached = None if None in known else all(known)
    began = time.perf_counter()
    run()
    return CompiledKernel(kernel, inputs, cached, time.perf_counter() - began)


def _compile_training(net, data, dense):
    """Compile the serial and the parallel training kernel as a Trainer does
    (an empty run), so that they have exactly the argument types of training."""
    module = kernels.kernels(net.sizes, net.dtype, net.cost_function, dense)
    return [_compile_step(f"train_{kind}", "dense" if dense else "sparse",
                          [getattr(module, f"train_{kind}")],
                          functools.partial(Trainer, net, data, 1, 1.0, kernel=kind),
                          net.dtype)
            for kind in ("serial", "parallel")]


def _compile_distributed(net, data, dense):
    """Compile the serial and the parallel gradient sum as distributed training
    does (one emulated rank, no epochs)."""
    def prepare(kind):
        distributed_SGD(net, data, 0, 1, 1.0, shards=1, kernel=kind, verbose=False)

    module = kernels.kernels(net.sizes, net.dtype, net.cost_function, dense)
    return [_compile_step(f"gradient_sum_{kind}", "dense" if dense else "sparse",
                          [getattr(module, f"gradient_sum_{kind}")],
                          functools.partial(prepare, kind), net.dtype)
            for kind in ("serial", "parallel")]


@contextmanager
def _specialize(mode):
    """config.SPECIALIZE set to mode while the block runs."""
    before, config.SPECIALIZE = config.SPECIALIZE, mode
    try:
        yield
    finally:
        config.SPECIALIZE = before

