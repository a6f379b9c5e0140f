"""How fastgd's parallel kernel and Hogwild! would scale to 8-64 cores: a model whose
inputs are measured on this machine.

    python benchmarks/threads_model.py [--rounds 7] [--out threads_model.json]
                                       [--markdown threads_model.md] [--inputs FILE]

The parallel kernel shares each step out in pieces (``kernels.drivers.drive_descend``),
so a step can use at most as many threads as its stage with the fewest pieces has.
The model counts the pieces exactly, from the functions the Trainer plans with, and
times them with costs measured here, for [784, 30, 10] float32 on the 50,000
training images:

- a mini-batch of at most ``chunk_size`` examples (m = 100): its forward and
  backward passes in ceil(m / EXAMPLE_BLOCK) blocks of examples, then its update
  in ROW_BLOCKS_PER_THREAD * P blocks of layer 0's rows (and one for layer 1).
  Measured with ``benchmarks/stages.py``'s timed loop: f, the forward and
  backward work per example (the P-thread plan on one thread); u, the update's
  work per example with one block of rows, and o, what each further block adds
  per example; at two threads, the share s2 by which each stage's work grows
  when the threads share the weight rows, and w2, a stage's wait.
- a larger one (m = 1000, full batch), per chunk of ``chunk(...)`` examples:
  groups of GROUP examples (forward, backward, update into the group's buffer),
  then the groups added into nabla in ceil(n_params / PARAM_BLOCK) blocks, and
  per step the update in as many blocks.  Measured: the serial kernel's
  full-batch epoch, ``add_groups`` and ``apply_nabla`` timed alone, and, fitted
  at two threads, the growth s2 of the work.
- Hogwild!: each thread steps on its own replica and merges it into the shared
  weights every ``merge_interval`` mini-batches (shorter on more threads, to
  keep at most STALE_EXAMPLES examples in flight).  Measured: the serial epoch
  (t_ex per example), one merge on one thread (t_merge), and the two-thread
  Hogwild! epoch, from which the time a merge loses to fetching the shared
  lines from another core (c_x) is fitted.

What is assumed, not measured: the sharing grows as (P - 1) / P (a line was last
written by one of the P - 1 other cores), so s(P) = s2 * 2 (P - 1) / P; a
stage's wait grows as log2 P (the stage's end reaches the polling threads as a
broadcast; the imbalance of the pieces is counted apart);
Hogwild!'s merges queue for the shared lines, one merge's fetch at a time.
Beyond two cores nothing here is measured: ``benchmarks/many_cores.sh OUT_DIR``
measures what the model predicts where a machine with more cores is lent
(BENCHMARKS.md has one 16-core Xeon's run).
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
from numba import njit

import fastgd
from fastgd import config, kernels
from fastgd.kernels.maths import add_groups, apply_nabla
from fastgd.kernels.workqueue import STALE_EXAMPLES, merge_interval, merge_replica
from fastgd.training.kernel_choice import GROUP, chunk, chunk_size
from fastgd.training.trainer import Trainer

import stages
from _measure import median

THREADS = [1, 2, 4, 8, 16, 32, 64]
SIZES = [784, 30, 10]


# -- the model ------------------------------------------------------------------------------

def sharing(s2, P):
    """The share by which the work grows on P threads, from s2 measured at two."""
    return 0.0 if P == 1 else s2 * 2 * (P - 1) / P


def wait(w2, P):
    """A stage's wait on P threads, from w2 measured at two: the end of a stage
    reaches the threads that poll its counter as a broadcast, one more level
    for each doubling of P (the imbalance of the pieces is counted apart)."""
    return 0.0 if P == 1 else w2 * math.log2(P)


def direct_epoch(inputs, n, m, P):
    """Seconds per epoch of direct mini-batches of m examples on P threads."""
    d = inputs["direct"]
    total = 0.0
    for first in range(0, n, m):
        mb = min(m, n - first)
        if P == 1:  # the serial plan: one block of examples, one of rows
            total += mb * (d["f_serial"] + d["u"])
            continue
        # the blocks of examples dealt round: the first thread gets the most
        blocks = [min(config.EXAMPLE_BLOCK, mb - b) for b in range(0, mb, config.EXAMPLE_BLOCK)]
        forward = sum(blocks[::P]) * d["f"]
        row_blocks = config.ROW_BLOCKS_PER_THREAD * P
        update = mb * (d["u"] + (row_blocks - 1) * d["o"]) / P
        total += (forward * (1 + sharing(d["s2_forward"], P))
                  + update * (1 + sharing(d["s2_update"], P)) + 2 * wait(d["w2"], P))
    return total


def group_epoch(inputs, n, m, P, n_params):
    """Seconds per epoch of mini-batches larger than chunk_size on P threads."""
    g = inputs["groups"]
    direct_max = inputs["direct_max"]
    most = direct_max if P == 1 else max(direct_max, config.PARALLEL_CHUNK, 2 * GROUP * P)
    size = chunk(m, most, GROUP)
    param_blocks = math.ceil(n_params / config.PARAM_BLOCK)
    per_block = min(config.PARAM_BLOCK, n_params)
    total = 0.0
    for first in range(0, n, m):
        mb = min(m, n - first)
        for start in range(first, first + mb, size):
            count = min(size, first + mb - start)
            groups = math.ceil(count / GROUP)
            total += math.ceil(groups / P) * min(GROUP, count) * g["per_example"]
            total += math.ceil(param_blocks / P) * groups * per_block * g["add_per_number"]
            total += 2 * wait(g["w2"], P)
        total += math.ceil(param_blocks / P) * per_block * g["apply_per_number"] + wait(
            g["w2"], P)
    return total * (1 + sharing(g["s2"], P))


def hogwild_epoch(inputs, n, m, P):
    """Seconds per epoch of Hogwild! at mini-batch size m on P threads (after the
    first epoch, which runs on one thread)."""
    h = inputs["hogwild"][str(m)]
    if P == 1:
        return n * h["t_ex"]
    # merge_interval's bound on the examples in flight shortens the interval measured
    # at two threads once P * interval passes STALE_EXAMPLES
    every = min(h["merge_every"], max(1, math.ceil(STALE_EXAMPLES / P / m)) * m)
    merges = n / every  # all threads' merges in an epoch
    per_thread = n * h["t_ex"] / P + merges / P * (h["t_merge"] + h["c_x"])
    return max(per_thread, merges * h["c_x"])  # one merge's fetch at a time


def predictions(inputs):
    """{mode: [seconds per epoch at each of THREADS]}."""
    n, n_params = inputs["examples"], inputs["n_params"]
    rows = {"m = 100 (auto: parallel)": [direct_epoch(inputs, n, 100, P) for P in THREADS],
            "m = 1000": [group_epoch(inputs, n, 1000, P, n_params) for P in THREADS],
            "full batch": [group_epoch(inputs, n, n, P, n_params) for P in THREADS]}
    for m in inputs["hogwild"]:
        rows[f"Hogwild!, m = {m}"] = [hogwild_epoch(inputs, n, int(m), P) for P in THREADS]
    return rows


# -- measuring --------------------------------------------------------------------------------

def measure_direct(data, m, rounds, rate):
    """The direct mini-batch inputs, from stages.py's timed loop: ms per epoch
    turned into seconds per example."""
    n = len(data)
    ser = stages.summarise(stages.measure(data, m, 1, rounds, rate, plan_of=1))
    one = stages.summarise(stages.measure(data, m, 1, rounds, rate, plan_of=2))
    two = stages.summarise(stages.measure(data, m, 2, rounds, rate, plan_of=2))
    steps = math.ceil(n / m)
    fb, up = "forward + backward", "update"
    extra_blocks = 2 * config.ROW_BLOCKS_PER_THREAD - 1
    return {
        "m": m,
        "f_serial": ser[1][fb][0] / n, "f": one[1][fb][0] / n, "u": ser[1][up][0] / n,
        "o": max(0.0, one[1][up][0] - ser[1][up][0]) / extra_blocks / n,
        "s2_forward": two[1][fb][0] / one[1][fb][0] - 1,
        "s2_update": two[1][up][0] / one[1][up][0] - 1,
        # the thread that waited least, per stage (two a step): the one that
        # finished last waits only for the stage's end to reach it
        "w2": (two[1][fb][1] + two[1][up][1]) / (2 * steps),
        "measured_s": {"1 thread": ser[0], "2-thread plan on 1 thread": one[0],
                       "2 threads": two[0]},
    }


def epoch_seconds(trainer, order, rounds, hogwild_threads=None):
    """Median seconds of `rounds` epochs of the trainer's kernel from the same weights."""
    start = trainer.net.params.copy()
    if hogwild_threads:
        trainer._trained = trainer.n  # past the first epoch, which runs on one thread
    seconds = []
    for r in range(rounds + 1):  # the first loads and warms up
        trainer.net.params[:] = start
        began = time.perf_counter()
        trainer.run_candidate(trainer.current, order, 0, len(order))
        if r:
            seconds.append(time.perf_counter() - began)
    trainer.net.params[:] = start
    return median(seconds)


def trainer(data, m, threads, kernel):
    net = fastgd.Network(SIZES, dtype="float32", seed=1)
    return Trainer(net, data, m, 3.0, threads=threads, kernel=kernel, specialize="now")


@njit(nogil=True)
def _repeat(kind, reps, a, b, c, n):
    """add_groups (kind 0), apply_nabla (1) or merge_replica (2) on n numbers,
    reps times in a row, called from here so that no dispatch is timed."""
    for _ in range(reps):
        if kind == 0:
            add_groups(a, b.reshape(1, n), 1, 0, n)
        elif kind == 1:
            apply_nabla(a, b, a.dtype.type(-1e-3), 0, n)
        else:
            merge_replica(a, b, c)


def timed(kind, n, reps=1000):
    """Median seconds of one of _repeat's operations on n float32 numbers (in
    cache), over 7 runs of `reps`."""
    a, b, c = (kernels.aligned_zeros(n, np.float32) for _ in range(3))
    _repeat(kind, 1, a, b, c, n)
    seconds = []
    for _ in range(7):
        began = time.perf_counter()
        _repeat(kind, reps, a, b, c, n)
        seconds.append((time.perf_counter() - began) / reps)
    return statistics.median(seconds)


def measure_groups(data, order, rounds, direct, inputs_n_params):
    """The large mini-batch inputs: the serial kernel's full-batch epoch, less
    its group additions and update, per example; add_groups and apply_nabla per
    number; s2 fitted to the parallel kernel's full-batch epoch on two threads."""
    n = len(data)
    serial = epoch_seconds(trainer(data, None, 1, "serial"), order, rounds)
    add = timed(0, inputs_n_params) / inputs_n_params
    apply = timed(1, inputs_n_params) / inputs_n_params
    serial_chunks = math.ceil(n / direct["direct_max"])
    per_example = (serial - serial_chunks * inputs_n_params * add - inputs_n_params * apply) / n
    g = {"per_example": per_example, "add_per_number": add, "apply_per_number": apply,
         "s2": 0.0, "w2": direct["w2"]}
    two = {label: epoch_seconds(trainer(data, m, 2, "parallel"), order, rounds)
           for label, m in (("full batch", None), ("m = 1000", 1000))}
    fake = {"groups": g, "direct_max": direct["direct_max"]}
    modelled = group_epoch(fake, n, n, 2, inputs_n_params)
    g["s2"] = max(0.0, two["full batch"] / modelled - 1)
    g["measured_s"] = {"1 thread, full batch": serial, **{f"2 threads, {k}": v
                                                          for k, v in two.items()}}
    return g


def measure_hogwild(data, order, rounds, m, n_params):
    """Hogwild!'s inputs at mini-batch size m."""
    n = len(data)
    serial = trainer(data, m, 1, "serial")
    t_ex = epoch_seconds(serial, order, rounds) / n
    t_merge = timed(2, n_params)
    every = merge_interval(serial.examples.indptr, np.array(SIZES, np.int64), n_params,
                           m, 2) * m
    two = epoch_seconds(trainer(data, m, 2, "hogwild"), order, rounds, hogwild_threads=2)
    merges = n / every
    # two threads: two = n t_ex / 2 + merges / 2 (t_merge + c_x)
    c_x = max(0.0, (two - n * t_ex / 2) * 2 / merges - t_merge)
    return {"t_ex": t_ex, "t_merge": t_merge, "merge_every": every, "c_x": c_x,
            "measured_s": {"1 thread (serial)": n * t_ex, "2 threads": two}}


def measure(rounds):
    data = fastgd.load_mnist(as_dataset=True)[0]
    n = len(data)
    order = np.random.default_rng(1).permutation(n).astype(np.int64)
    net = fastgd.Network(SIZES, dtype="float32", seed=1)
    n_params = int(net.layout.n_params)
    rate = stages.ticks_per_second()
    direct = measure_direct(data, 100, rounds, rate)
    direct["direct_max"] = chunk_size(net.layout)
    inputs = {"examples": n, "n_params": n_params, "direct_max": direct["direct_max"],
              "direct": direct}
    inputs["groups"] = measure_groups(data, order, rounds, direct, n_params)
    inputs["hogwild"] = {str(m): measure_hogwild(data, order, rounds, m, n_params)
                         for m in (1, 10)}
    return inputs


# -- the report --------------------------------------------------------------------------------

def fmt(seconds):
    return f"{seconds * 1e3:.1f}"


def markdown(inputs, machine):
    d, g = inputs["direct"], inputs["groups"]
    lines = [f"Measured on {machine}; [784, 30, 10] float32, {inputs['examples']:,} "
             "examples; ms per epoch (speed-up over one thread). The P = 2 column is "
             "the model at two threads; the measured two-thread epochs are below.", ""]
    lines.append("| mode | " + " | ".join(f"P = {P}" for P in THREADS) + " |")
    lines.append("| --- |" + " --: |" * len(THREADS))
    for mode, seconds in predictions(inputs).items():
        lines.append(f"| {mode} | " + " | ".join(
            f"{fmt(s)} ({seconds[0] / s:.1f}x)" for s in seconds) + " |")
    lines += ["", "Inputs (us per example unless said):", "",
              f"- m = 100: forward and backward f = {d['f'] * 1e6:.3f} (serial plan "
              f"{d['f_serial'] * 1e6:.3f}), update u = {d['u'] * 1e6:.3f}, each further "
              f"block of rows o = {d['o'] * 1e6:.4f}; at two threads the work grows "
              f"{d['s2_forward']:.0%} (forward and backward) and {d['s2_update']:.0%} "
              f"(update), a stage's wait w2 = {d['w2'] * 1e6:.2f} us; measured epochs "
              + ", ".join(f"{k} {fmt(v)} ms" for k, v in d["measured_s"].items()) + ".",
              f"- groups: {g['per_example'] * 1e6:.3f} per example, add_groups "
              f"{g['add_per_number'] * 1e9:.3f} ns and apply_nabla "
              f"{g['apply_per_number'] * 1e9:.3f} ns per number; fitted growth at two "
              f"threads s2 = {g['s2']:.0%}; measured epochs "
              + ", ".join(f"{k} {fmt(v)} ms" for k, v in g["measured_s"].items()) + "."]
    for m, h in inputs["hogwild"].items():
        lines.append(
            f"- Hogwild!, m = {m}: t_ex = {h['t_ex'] * 1e6:.3f}, a merge every "
            f"{h['merge_every']} examples, t_merge = {h['t_merge'] * 1e6:.1f} us on one "
            f"thread, fitted fetch c_x = {h['c_x'] * 1e6:.1f} us per merge; measured "
            "epochs " + ", ".join(f"{k} {fmt(v)} ms" for k, v in h["measured_s"].items())
            + ".")
    return "\n".join(lines) + "\n"


def machine_name():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="epochs per median (default 7)")
    parser.add_argument("--out", help="write the measured inputs as JSON here")
    parser.add_argument("--markdown", help="write the table here (else print it)")
    parser.add_argument("--inputs", help="model from this JSON of inputs; measure nothing")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds takes an integer >= 1")
    if args.inputs:
        with open(args.inputs) as f:
            saved = json.load(f)
        inputs, machine = saved["inputs"], saved["machine"]
    else:
        print("Measuring (a few minutes)...", file=sys.stderr, flush=True)
        inputs, machine = measure(args.rounds), machine_name()
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"machine": machine, "inputs": inputs}, f, indent=1)
    text = markdown(inputs, machine)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
