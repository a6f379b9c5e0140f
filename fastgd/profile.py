"""Where an epoch's time goes: JIT compile, shuffle, training kernel, evaluation.

``profile_training`` runs a short training run the way ``SGD`` does, timing each
part separately, and reports the achieved arithmetic rate against the FLOP
count of the network and against a quick measured peak of this machine, the
bytes the kernel's loops move per example, and which kernel ``auto`` chose
with the timings it chose by.  With ``busy=True`` a busy-loop process runs
beside the training, and the serial kernel is timed under the same load.
"""

import subprocess
import sys
import time
from contextlib import contextmanager

import numba
import numpy as np

from . import kernels
from .training import Trainer, measuring_mode, numba_threads, threading_layer


def flops_per_example(sizes, nonzero_fraction=1.0):
    """Floating-point operations for one example's backprop and update.

    With W_l = sizes[l] * sizes[l+1] weights in layer l, a multiply-add counted
    as 2: the forward pass 2 sum_l W_l, the errors delta 2 sum_{l>=1} W_l (none
    for the input layer), the gradient added to the weights 2 sum_l W_l; that
    is 6 W - 2 W_0 in all (biases and sigmoids, O(neurons), left out).  The
    input layer's forward and update terms scale with the fraction of nonzero
    inputs, which the kernels skip: nonzero_fraction=1 gives the dense count
    (what a BLAS implementation performs).
    """
    W = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 4 * W[0] * nonzero_fraction + 6 * sum(W[1:])


def bytes_per_example(sizes, stride, itemsize, nonzero_inputs, dense=False):
    """Bytes the training loops read and write per example (from whichever cache
    level holds them), counted from the network's shape: layer 0 reads each
    nonzero input (its index and value; on the dense path every input, its value
    only) and its weight row in the forward pass, and reads and writes that row
    in the update; a later layer reads all its weights forward and backward and
    reads and writes them in the update; activations and errors are read and
    written once per layer."""
    index = 0 if dense else 4
    inputs = sizes[0] if dense else nonzero_inputs
    total = 2 * inputs * (index + itemsize) + 3 * inputs * stride[0] * itemsize
    for n_in, s in zip(sizes[1:-1], stride[1:]):
        total += 4 * n_in * s * itemsize
    total += 4 * sum(stride) * itemsize
    return total


def measured_peak(dtype, seconds=0.5):
    """GFLOP/s of a NumPy (BLAS) matrix product, all BLAS threads: a rough ceiling."""
    a = np.random.default_rng(0).random((1024, 1024)).astype(dtype)
    a @ a
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        runs += 1
    return 2 * 1024 ** 3 * runs / (time.perf_counter() - start) / 1e9


def import_seconds():
    """Seconds for a fresh Python process to import fastgd (numba included)."""
    code = "import time; t = time.perf_counter(); import fastgd; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _loaded_from_cache(kernel):
    stats = kernels.dispatcher(kernel).stats
    return sum(stats.cache_hits.values()) > 0 and not sum(stats.cache_misses.values())


@contextmanager
def busy_loop(active=True):
    """Run a process that spins on one core for the duration of the block: the
    "busy machine" (a user's other work) that the kernels must stay fast beside."""
    if not active:
        yield None
        return
    process = subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"],
                               stdout=subprocess.PIPE)
    try:
        process.stdout.readline()  # spinning from here on
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def profile_training(net, training_data, test_data, epochs, mini_batch_size, eta, *,
                     reduction="mean", threads=None, kernel="auto", shuffle=True,
                     measure_import=True, busy=False, lmbda=0.0, regularization="L2"):
    """Train ``net`` for ``epochs`` epochs, timing every part; returns a dict of results.

    The network's cost and the regularization (lmbda, regularization) are
    trained as SGD trains them.

    busy: train beside a busy-loop process, and then time the serial kernel
    for as many epochs from the same start under the same load."""
    X, y = training_data
    report = {"sizes": net.sizes, "dtype": net.dtype.name, "training_inputs": len(y),
              "epochs": epochs}
    if measure_import:
        report["import_s"] = import_seconds()

    # JIT: the first calls compile the kernels or load them from numba's disk cache.
    m_first = len(y) if mini_batch_size is None else mini_batch_size
    warm_n = min(len(y), 2 * m_first)
    start = time.perf_counter()
    trainer = Trainer(net, (X[:warm_n], y[:warm_n]),
                      mini_batch_size and min(mini_batch_size, warm_n), eta,
                      reduction=reduction, threads=threads, kernel=kernel, lmbda=lmbda,
                      regularization=regularization, specialize=measuring_mode())
    saved = net.params.copy()
    trainer.run_epoch(np.arange(warm_n))
    first_train = time.perf_counter() - start
    start = time.perf_counter()
    trainer.run_epoch(np.arange(warm_n))
    second_train = time.perf_counter() - start
    net.params[:] = saved  # the warm-up must not train the network
    start = time.perf_counter()
    with numba_threads(threads):
        net.evaluation(*test_data) if test_data is not None else None
    first_eval = time.perf_counter() - start
    report["jit"] = {
        "first_training_call_s": first_train, "second_training_call_s": second_train,
        "first_evaluation_s": first_eval,
        "training_kernel_loaded_from_cache": _loaded_from_cache(trainer.kernel),
    }

    start_params, rng_state = net.params.copy(), net.rng.bit_generator.state
    shuffles, trainings, evaluations, correct = [], [], [], []
    with busy_loop(busy):
        trainer = Trainer(net, training_data, mini_batch_size, eta, reduction=reduction,
                          threads=threads, kernel=kernel, lmbda=lmbda,
                          regularization=regularization, specialize=measuring_mode())
        for step in trainer.epochs(epochs, shuffle=shuffle):
            tic = time.perf_counter()
            if test_data is not None:
                with numba_threads(threads):
                    correct.append(net.evaluation(*test_data).correct)
            shuffles.append(step.shuffle_seconds)
            trainings.append(step.seconds - step.shuffle_seconds)
            evaluations.append(time.perf_counter() - tic)
        if busy:
            report["busy_serial_training_s"] = _serial_epochs(
                net, start_params, rng_state, training_data, epochs, mini_batch_size, eta,
                reduction, shuffle, lmbda, regularization)
    report.update(trainer.info())
    report["build"] = trainer.build  # "specialised", or "generic" where SPECIALIZE is "never"
    report["busy"] = busy
    report["threading_layer"] = threading_layer()

    def summary(values):
        return ({"median": float(np.median(values)), "min": float(np.min(values)),
                 "max": float(np.max(values))} if values else None)

    report["epoch_s"] = {"shuffle": summary(shuffles), "training": summary(trainings),
                         "evaluation": summary(evaluations),
                         "total": summary([a + b + c for a, b, c in
                                           zip(shuffles, trainings, evaluations)])}
    report["correct"] = correct
    if trainings:
        per_second = trainer.n / np.median(trainings)
        nonzero = trainer.nonzero_fraction
        report["examples_per_s"] = per_second
        report["nonzero_input_fraction"] = nonzero
        report["gflops_dense_equivalent"] = per_second * flops_per_example(net.sizes) / 1e9
        report["input_path"] = "dense" if trainer.dense else "sparse"
        report["gflops_performed"] = per_second * flops_per_example(
            net.sizes, 1.0 if trainer.dense else nonzero) / 1e9
        report["peak_gflops_numpy_matmul"] = measured_peak(net.dtype)
        report["bytes_per_example"] = bytes_per_example(
            net.sizes, net.layout.stride.tolist(), net.dtype.itemsize,
            trainer.nonzero_fraction * net.sizes[0], dense=trainer.dense)
    report["numba_threads_available"] = numba.config.NUMBA_NUM_THREADS
    return report


def _serial_epochs(net, start_params, rng_state, training_data, epochs, mini_batch_size, eta,
                   reduction, shuffle, lmbda, regularization):
    """Seconds per epoch of the serial kernel from the same start (a copy of the network)."""
    from .network import Network
    copy = Network(net.sizes, dtype=net.dtype.name, cost=net.cost_function)
    copy.params[:] = start_params
    copy.rng.bit_generator.state = rng_state
    trainer = Trainer(copy, training_data, mini_batch_size, eta, reduction=reduction,
                      kernel="serial", lmbda=lmbda, regularization=regularization,
                      specialize=measuring_mode())
    return [step.seconds - step.shuffle_seconds
            for step in trainer.epochs(epochs, shuffle=shuffle)]


def format_report(report):
    """The report as lines of text for a terminal."""
    ms = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731
    jit = report["jit"]
    cache = ("loaded from numba's disk cache" if jit["training_kernel_loaded_from_cache"]
             else "compiled in this process")
    lines = [f"Network {report['sizes']}, {report['dtype']}, {report['training_inputs']} "
             f"training inputs, mini-batch size {report['mini_batch_size']}, eta {report['eta']}"]
    if "import_s" in report:
        lines.append(f"import fastgd (fresh process): {report['import_s']:.2f} s")
    lines += [
        f"first training call: {jit['first_training_call_s']:.2f} s (kernel {cache}); "
        f"second: {ms(jit['second_training_call_s'])}",
        f"first evaluation: {jit['first_evaluation_s']:.2f} s",
        f"kernel: {report['kernel']} ({report['kernel_reason']}), "
        f"{report.get('build', 'specialised')} build; "
        f"{report['threads']} thread{'s' if report['threads'] != 1 else ''}, "
        f"numba threading layer {report['threading_layer']} "
        f"(up to {report['numba_threads_available']} threads)",
    ]
    for event in report.get("calibration", []):
        timings = ", ".join(f"{name} {s * 1e6:.2f} us/example"
                            for name, s in event["s_per_example"].items())
        lines.append(f"  auto, epoch {event['epoch']}: timed {timings} (on "
                     f"{event['timed_on']}); chose {event['chose']}")
    epoch = report["epoch_s"]
    if epoch["training"] is not None:
        lines.append(f"per epoch over {report['epochs']} epochs (median, min, max):")
        for part in ("shuffle", "training", "evaluation", "total"):
            s = epoch[part]
            lines.append(f"  {part:<10} {ms(s['median']):>10} {ms(s['min']):>10} "
                         f"{ms(s['max']):>10}")
        lines += [
            f"examples/s: {report['examples_per_s']:,.0f}",
            f"GFLOP/s: {report['gflops_performed']:.2f} performed "
            f"({report['nonzero_input_fraction']:.0%} of inputs nonzero, "
            f"{report['input_path']} input path"
            f"{': every input computed' if report['input_path'] == 'dense' else ''}), "
            f"{report['gflops_dense_equivalent']:.2f} dense-equivalent; "
            f"NumPy matmul peak here {report['peak_gflops_numpy_matmul']:.1f} "
            f"({report['gflops_performed'] / report['peak_gflops_numpy_matmul']:.0%} of it "
            "performed; flops per example = 6 W - 2 W_0 dense, W_l = weights in layer l)",
            f"bytes the loops read and write per example: {report['bytes_per_example']:,.0f} "
            f"({report['bytes_per_example'] * report['examples_per_s'] / 1e9:.1f} GB/s, "
            "from any cache level)",
        ]
        if report.get("busy"):
            auto_s = epoch["training"]["median"]
            serial_s = float(np.median(report["busy_serial_training_s"]))
            lines.append(f"beside a busy-loop process: {report['kernel']} kernel {ms(auto_s)} "
                         f"per epoch, serial kernel {ms(serial_s)} under the same load "
                         f"({auto_s / serial_s:.2f}x)")
    if report["correct"]:
        lines.append(f"test inputs classified correctly after each epoch: {report['correct']}")
    return lines
