"""What auto's calibration times, beside what the kernels do once running.

For each thread count and mini-batch size: a fresh auto Trainer's first
calibration (the seconds per example it recorded for each candidate and its
choice), then, on that trainer, the candidates run in turn on slices of
TRIAL_EXAMPLES examples (serial, parallel, serial, ...: the order calibration
uses) and each on its own several times in a row; and a fresh Trainer of each
kernel alone, its first slices of calibration's scouting size.  A candidate whose first
slices, or whose slices right after the other's, are much slower than its runs
in a row has a cost that calibration charges to it and the epoch does not.

    python benchmarks/calibration.py --threads 8 16 --modes 100 1000 full
    python benchmarks/calibration.py --threads 2 --modes full --calibrations 6

Prints a Markdown table (microseconds per example, each slice apart); with
--calibrations N, the first calibration of N fresh auto Trainers instead.
"""

import argparse
import os
import threading
import time

import numba
import numpy as np

import fastgd
from fastgd import config
from fastgd.training.trainer import Trainer

SEED = 12345


def per_example(trainer, candidate, order, start, size):
    """Microseconds per example of one slice order[start:start + size]."""
    began = time.perf_counter()
    trainer.run_candidate(candidate, order, start, start + size)
    return 1e6 * (time.perf_counter() - began) / size


def measure(X, y, threads, m, repeats):
    """One row: the first calibration and the candidates' slices."""
    net = fastgd.Network([784, 30, 10], seed=SEED)
    n = len(y)
    order = np.random.default_rng(SEED).permutation(n)
    trainer = Trainer(net, (X, y), m, 3.0, threads=threads, kernel="auto")
    trainer.wait_for_specialized()
    first_epoch = time.perf_counter()
    trainer.run_epoch(order)
    first_epoch = time.perf_counter() - first_epoch
    calibration = trainer.calibration[0] if trainer.calibration else {}
    chose = {k: 1e6 * v for k, v in calibration.get("s_per_example", {}).items()}
    size = max(1, -(-config.TRIAL_EXAMPLES // trainer.mini_batch_size)) * trainer.mini_batch_size
    size = min(size, n)
    by_name = {c.label: c for c in trainer.candidates}
    alternating = {name: [] for name in by_name}
    start = 0
    for _ in range(repeats):
        for name, candidate in by_name.items():
            if start + size > n:
                start = 0
            alternating[name].append(per_example(trainer, candidate, order, start, size))
            start += size
    in_a_row = {name: [] for name in by_name}
    for name, candidate in by_name.items():
        for _ in range(repeats):
            if start + size > n:
                start = 0
            in_a_row[name].append(per_example(trainer, candidate, order, start, size))
            start += size
    epoch = time.perf_counter()
    trainer.run_epoch(order)
    epoch = time.perf_counter() - epoch
    # a fresh Trainer of each kernel alone: its first slices, of calibration's scouting size
    scout = max(1, -(-config.TRIAL_EXAMPLES // (4 * trainer.mini_batch_size)))
    scout = min(n, scout * trainer.mini_batch_size)
    fresh = {}
    for name in ("serial", "parallel"):
        alone = Trainer(fastgd.Network([784, 30, 10], seed=SEED), (X, y), m, 3.0,
                        threads=threads if name == "parallel" else 1, kernel=name)
        fresh[name] = [per_example(alone, alone.current, order,
                                   i * scout if (i + 1) * scout <= n else 0, scout)
                       for i in range(repeats)]
    return dict(fresh=fresh, threads=threads, m=m or "full", chose=calibration.get("chose"),
                calibrated=chose,
                alternating=alternating, in_a_row=in_a_row, first_epoch=first_epoch,
                epoch=epoch, in_use=trainer.current.label,
                python_threads=sorted(t.name for t in threading.enumerate()
                                      if t is not threading.main_thread()))


def first_calibrations(X, y, threads, m, count):
    """The first calibration of `count` fresh auto Trainers: (choice, each
    candidate's trials in us per example) for each."""
    order = np.random.default_rng(SEED).permutation(len(y))
    out = []
    for _ in range(count):
        trainer = Trainer(fastgd.Network([784, 30, 10], seed=SEED), (X, y), m, 3.0,
                          threads=threads, kernel="auto")
        trainer.wait_for_specialized()
        trainer.run_epoch(order)
        first = trainer.calibration[0]
        out.append((first["chose"], {name: [1e6 * t for t in times]
                                     for name, times in first["trials"].items()}))
    return out


def fmt(times):
    return "/".join(f"{t:.2f}" for t in times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+",
                        default=[numba.config.NUMBA_NUM_THREADS])
    parser.add_argument("--modes", nargs="+", default=["100", "1000", "full"])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--calibrations", type=int, default=0, metavar="N",
                        help="instead of the table: the first calibration of N fresh "
                             "auto Trainers at each thread count and m, one line each")
    args = parser.parse_args(argv)
    (X, y), _, _ = fastgd.load_mnist()
    if args.calibrations:
        for threads in args.threads:
            for mode in args.modes:
                m = None if mode == "full" else int(mode)
                for chose, trials in first_calibrations(X, y, threads, m, args.calibrations):
                    print(f"{threads} threads, m = {mode}: chose {chose}; trials, us per "
                          "example: " + "; ".join(f"{name} {fmt(t)}"
                                                  for name, t in trials.items()), flush=True)
        return
    print(f"{os.cpu_count()} CPUs, affinity {len(os.sched_getaffinity(0))}, numba "
          f"{numba.__version__}, TRIAL_EXAMPLES {config.TRIAL_EXAMPLES}; us per example "
          "(slices of about TRIAL_EXAMPLES examples)\n")
    print("| threads | m | calibration, each candidate | chose | alternating: serial | "
          "alternating: parallel | in a row: serial | in a row: parallel | first epoch s | "
          "next epoch s | in use | fresh trainer: serial | fresh trainer: parallel | "
          "other Python threads |")
    print("| --: | --: | --- | --- | --- | --- | --- | --- | --: | --: | --- | --- | --- | --- |")
    for threads in args.threads:
        for mode in args.modes:
            m = None if mode == "full" else int(mode)
            r = measure(X, y, threads, m, args.repeats)
            cal = r["calibrated"]
            timed = ", ".join(f"{label} {t:.2f}" for label, t in cal.items())
            print(f"| {threads} | {r['m']} | {timed} | {r['chose']} | "
                  f"{fmt(r['alternating'].get('serial', []))} | "
                  f"{fmt(r['alternating'].get('parallel', []))} | "
                  f"{fmt(r['in_a_row'].get('serial', []))} | "
                  f"{fmt(r['in_a_row'].get('parallel', []))} | {r['first_epoch']:.3f} | "
                  f"{r['epoch']:.3f} | {r['in_use']} | {fmt(r['fresh'].get('serial', []))} | "
                  f"{fmt(r['fresh'].get('parallel', []))} | "
                  f"{', '.join(r['python_threads']) or '-'} |",
                  flush=True)


if __name__ == "__main__":
    main()
