"""A new user's first program, in one fresh process: import, load MNIST, build a
[784, 30, 10] float32 network, train one epoch at m = 10, eta = 3.0, and classify
the test set.  benchmarks/test_start.py starts it once per implementation and
round, with empty or filled caches, and times the whole process from outside.

    python benchmarks/new_user.py fastgd|numpy|jax|torch [--train-size N] [--test-size N]

Every implementation loads the data with fastgd.load_mnist() and starts from
fastgd.Network([784, 30, 10], seed=1)'s weights, so loading and the start are
the same for all; fastgd trains as the book's program does (net.SGD with
test_data, printing its epoch line), the others with benchmarks/baselines.py's
code in a fixed shuffled order.  The last line on stdout is ``result`` and a
JSON object: when each step ended (seconds since this script began), the
epoch's own time, the accuracy, and for fastgd which kernels trained.
"""

import time

STARTED = time.perf_counter()  # before any import: importing is part of a cold start

import argparse  # noqa: E402  (the imports are timed)
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

SIZES = [784, 30, 10]
SEED = 1
MINI_BATCH_SIZE = 10
ETA = 3.0
IMPLS = ("fastgd", "numpy", "jax", "torch")


def since_start():
    return time.perf_counter() - STARTED


def import_framework(impl):
    """Import what the implementation computes with (fastgd itself is imported by
    every implementation, for load_mnist, in load())."""
    if impl == "jax":
        import jax
        import jax.numpy  # noqa: F401  (what a JAX program imports first)
        return {"jax": jax.__version__, "jax_backend": jax.default_backend(),
                # no persistent compilation cache: every JAX process compiles afresh
                "jax_compilation_cache_dir": jax.config.jax_compilation_cache_dir}
    if impl == "torch":
        import torch
        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    import numpy
    return {"numpy": numpy.__version__}


def load(train_size, test_size):
    """fastgd.load_mnist()'s training and test data, cut to the sizes asked for."""
    import fastgd
    (X, y), _, (X_test, y_test) = fastgd.load_mnist()
    return (X[:train_size], y[:train_size]), (X_test[:test_size], y_test[:test_size])


def fastgd_run(train, test, marks):
    """net.SGD as the book calls it; returns what ran and how well it did.

    The Trainer that SGD makes (fastgd.training.sgd.Trainer) is replaced by a
    subclass that only keeps the instance net.SGD makes, so that the kernels
    that trained can be read from it afterwards: History.info names the kernel
    (serial or parallel) but not whether it was the generic build or the one
    specialised for this shape."""
    import fastgd
    import fastgd.training.sgd
    made = []

    class KeptTrainer(fastgd.training.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
            marks["trainer_ready"] = since_start()
            self.started_on = kernel_build(self)

    fastgd.training.sgd.Trainer = KeptTrainer
    net = fastgd.Network(SIZES, seed=SEED, dtype="float32")
    marks["built"] = since_start()
    history = net.SGD(train, 1, MINI_BATCH_SIZE, ETA, test_data=test)
    marks["evaluated"] = since_start()
    trainer = made[0]
    job = trainer.specialized  # None: never started, or finished and switched to
    return {"epoch_s": history[0]["seconds"], "correct": history[0]["correct"],
            "total": history[0]["total"], "specialize": fastgd.config.SPECIALIZE,
            "kernel": history.info.get("kernel"),
            "kernel_in_use": history.info.get("kernel_in_use"),
            "kernel_module": trainer.current.fn.__module__,
            "started_on": trainer.started_on, "ended_on": kernel_build(trainer),
            "background_compile": ("none" if trainer.started_on == "specialised" or
                                   fastgd.config.SPECIALIZE != "background" else
                                   "switched to" if job is None else
                                   "finished, not switched to" if job.done() else
                                   "still compiling at exit"),
            "numba_threads": trainer.threads,
            # still compiling when this process exits: test_start.py waits for it,
            # so that it does not slow the next process it times
            "compiler_pid": (job.compiler.pid if job is not None and job.compiler is not None
                             else None)}


def kernel_build(trainer):
    """'starter', 'generic' or 'specialised': which build of the kernels the
    trainer runs now."""
    return trainer.build


def baseline_run(impl, train, test, marks):
    """benchmarks/baselines.py's NumpyMatrix, JaxScan or TorchSGD from fastgd's
    initial weights, over one fixed permutation of the training data."""
    import numpy as np

    import fastgd
    from baselines import JaxScan, NumpyMatrix, TorchSGD
    start = fastgd.Network(SIZES, seed=SEED, dtype="float32")
    (X, y), (X_test, y_test) = train, test
    order = np.random.default_rng(SEED).permutation(len(y))
    if impl == "jax":
        net = JaxScan(start.weights, start.biases)
        data = net.prepare(X, y, order, MINI_BATCH_SIZE)
        step = lambda: net.epoch(data, ETA)  # noqa: E731  (jit compiles in the first call)
    elif impl == "torch":
        net = TorchSGD(start.weights, start.biases)
        data = net.prepare(X, y, order)
        step = lambda: net.epoch(*data, MINI_BATCH_SIZE, ETA)  # noqa: E731
    else:
        net = NumpyMatrix(start.weights, start.biases)
        step = lambda: net.epoch(X, y, order, MINI_BATCH_SIZE, ETA)  # noqa: E731
    marks["built"] = since_start()
    step()
    marks["trained"] = since_start()
    correct = net.correct(X_test, y_test)
    marks["evaluated"] = since_start()
    return {"epoch_s": marks["trained"] - marks["built"], "correct": correct,
            "total": len(y_test)}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("impl", choices=IMPLS)
    parser.add_argument("--train-size", type=int, default=50_000, metavar="N")
    parser.add_argument("--test-size", type=int, default=10_000, metavar="N")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    marks = {}
    result = {"impl": args.impl, **import_framework(args.impl)}
    marks["imported"] = since_start()
    train, test = load(args.train_size, args.test_size)
    marks["loaded"] = since_start()
    if args.impl == "fastgd":
        result.update(fastgd_run(train, test, marks))
    else:
        result.update(baseline_run(args.impl, train, test, marks))
    numba = sys.modules.get("numba")  # its version, without importing it when nothing did
    result.update(marks=marks, in_script_s=since_start(), examples=len(train[1]),
                  accuracy=result["correct"] / result["total"],
                  numba=getattr(numba, "__version__", None),
                  cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count(),
                  env={name: os.environ.get(name) for name in (
                      "NUMBA_NUM_THREADS", "XLA_FLAGS", "FASTGD_SPECIALIZE",
                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "FASTGD_BENCH_REMOVED_ENV")})
    print("result " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
