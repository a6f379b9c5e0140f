"""Hogwild! against the serial kernel: examples per second, and the accuracy it reaches.

    python benchmarks/hogwild.py [--out hogwild.json] [--epochs 30] [--seeds 1 2 3]
                                 [--speed-epochs 5] [--generic] [--hogwild-threads 2 4]

(a) Speed: [784, 30, 10] float32 on MNIST's 50,000 training images, at m = 1 and
m = 10, for the serial kernel on 1 thread and the hogwild kernel on 1 thread and
on each of --hogwild-threads (default 2): each configuration in a process of its
own (the 1-thread ones pinned to one core where the OS allows), one multi-epoch
call (``Trainer.epochs``), and examples per second from the median of its
epochs' training seconds (the first epoch and the shuffles left out), and over
all its epochs (the first included: hogwild trains it on one thread).

(b) Accuracy: the book's run (30 epochs, m = 10, eta = 3.0, the test images after
each epoch) for the serial kernel and for hogwild on each of --hogwild-threads,
seeds --seeds, each run in a process of its own: the best test accuracy of each
run, and the median over the seeds.

Writes every measurement to --out as JSON (after each process, so that a run
stopped early keeps what it measured) and prints a markdown table.  The
hogwild kernel is not deterministic on 2 threads (its weights change from run
to run), so its accuracy is a sample: compare medians over several seeds, on a
quiet machine.  --generic trains on the generic kernels (no compile of the
specialised ones: for a quick check that the script works, not for timings).
"""

import argparse
import json
import os
import subprocess
import sys

from _measure import allowed_cores, cores, median, pin_to

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [784, 30, 10]
SPEED_BATCHES = (1, 10)
ETA = {1: 0.5, 10: 3.0}  # the book's eta for m = 10; a stable one for online learning


def speed_cases(hogwild_threads):
    """(kernel, threads) of the speed runs: serial, then hogwild on 1 thread and more."""
    return [("serial", 1), ("hogwild", 1)] + [("hogwild", t) for t in sorted(set(hogwild_threads))
                                             if t != 1]


def accuracy_cases(hogwild_threads):
    """(kernel, threads) of the accuracy runs."""
    return [("serial", 1)] + [("hogwild", t) for t in sorted(set(hogwild_threads))]


def child(args):
    """One configuration, in this process: prints one JSON line."""
    from fastgd import config
    config.SPECIALIZE = "never" if args.generic else "now"
    import fastgd
    from fastgd.data import load_mnist
    from fastgd.training import Trainer

    training, _, test = load_mnist()
    X, y = training
    if args.train_size:
        X, y = X[:args.train_size], y[:args.train_size]
    net = fastgd.Network(SIZES, seed=args.seed)
    if args.child == "speed":
        trainer = Trainer(net, (X, y), args.m, ETA[args.m], threads=args.threads,
                          kernel=args.kernel)
        seconds = [step.seconds - step.shuffle_seconds
                   for step in trainer.epochs(args.epochs) if step.done]
        steady = seconds[1:] or seconds  # the first epoch may still warm caches
        result = dict(examples_per_second=len(y) / median(steady), epoch_seconds=seconds,
                      build=trainer.build)
    else:
        history = net.SGD((X, y), args.epochs, args.m, ETA[args.m], test_data=test,
                          threads=args.threads, kernel=args.kernel, verbose=False)
        accuracy = [row["accuracy"] for row in history]
        result = dict(best_accuracy=max(accuracy), accuracy=accuracy,
                      deterministic=history.info["deterministic"],
                      build=history.info["kernels"])
    result.update(kind=args.child, kernel=args.kernel, threads=args.threads, m=args.m,
                  seed=args.seed, epochs=args.epochs, examples=len(y),
                  cores=allowed_cores())
    print(json.dumps(result))


def run_child(kind, kernel, threads, m, seed, epochs, args):
    """One configuration in a process of its own; its JSON result."""
    command = [sys.executable, os.path.abspath(__file__), "--child", kind, "--kernel", kernel,
               "--threads", str(threads), "--m", str(m), "--seed", str(seed),
               "--epochs", str(epochs)]
    if args.generic:
        command.append("--generic")
    if args.train_size:
        command += ["--train-size", str(args.train_size)]
    pin = threads == 1 and kind == "speed"
    out = subprocess.run(command, capture_output=True, text=True, cwd=HERE,
                         preexec_fn=pin_to(cores()[0]) if pin else None)
    if out.returncode != 0:
        sys.exit(f"hogwild.py: {kind} run of {kernel} on {threads} thread(s) failed "
                 f"(exit status {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results, hogwild_threads=(2,)):
    """The markdown table of the measurements."""
    lines = ["| m | kernel | threads | examples/s | vs serial | all epochs, examples/s "
             "| vs serial |", "| --- | --- | --- | --- | --- | --- | --- |"]
    speed = [r for r in results if r["kind"] == "speed"]
    for m in SPEED_BATCHES:
        runs = [r for r in speed if r["m"] == m]
        base = next((r for r in runs if r["kernel"] == "serial"), None)
        for r in runs:
            # the first epoch too: hogwild runs it on one thread
            whole = r["examples"] * len(r["epoch_seconds"]) / sum(r["epoch_seconds"])
            if base is None:
                ratio = ratio_whole = "-"
            else:
                base_whole = (base["examples"] * len(base["epoch_seconds"])
                              / sum(base["epoch_seconds"]))
                ratio = f"{r['examples_per_second'] / base['examples_per_second']:.2f}x"
                ratio_whole = f"{whole / base_whole:.2f}x"
            lines.append(f"| {m} | {r['kernel']} | {r['threads']} | "
                         f"{r['examples_per_second']:,.0f} | {ratio} | {whole:,.0f} | "
                         f"{ratio_whole} |")
    lines += ["", "| kernel | threads | best test accuracy per seed | median |",
              "| --- | --- | --- | --- |"]
    for kernel, threads in accuracy_cases(hogwild_threads):
        runs = [r for r in results if r["kind"] == "accuracy" and r["kernel"] == kernel
                and r["threads"] == threads]
        if runs:
            best = [r["best_accuracy"] for r in runs]
            per_seed = ", ".join(f"{r['seed']}: {r['best_accuracy']:.2%}" for r in runs)
            lines.append(f"| {kernel} | {threads} | {per_seed} | {median(best):.2%} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="hogwild.json")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of each accuracy run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--speed-epochs", type=int, default=5,
                        help="epochs of each speed run (the first is left out of the median)")
    parser.add_argument("--generic", action="store_true",
                        help="the generic kernels: a quick check, not a timing")
    parser.add_argument("--train-size", type=int, help="the first N training images only")
    parser.add_argument("--hogwild-threads", type=int, nargs="+", default=[2], metavar="N",
                        help="thread counts of hogwild beside its 1-thread run (default 2)")
    parser.add_argument("--child", choices=["speed", "accuracy"], help=argparse.SUPPRESS)
    parser.add_argument("--kernel", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--m", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if any(t < 1 for t in args.hogwild_threads):
        parser.error("--hogwild-threads must be at least 1")
    if max(args.hogwild_threads) > len(cores()):
        parser.error(f"--hogwild-threads: this process may use {len(cores())} CPU(s), "
                     "and numba starts no more threads than that")
    results = []

    def save(result):
        results.append(result)
        with open(args.out, "w") as f:
            json.dump(dict(sizes=SIZES, dtype="float32", results=results), f, indent=1)
    for m in SPEED_BATCHES:
        for kernel, threads in speed_cases(args.hogwild_threads):
            save(run_child("speed", kernel, threads, m, 1, args.speed_epochs, args))
            print(f"speed m={m} {kernel} {threads}t: "
                  f"{results[-1]['examples_per_second']:,.0f} examples/s", file=sys.stderr)
    for seed in args.seeds:
        for kernel, threads in accuracy_cases(args.hogwild_threads):
            save(run_child("accuracy", kernel, threads, 10, seed, args.epochs, args))
            print(f"accuracy seed {seed} {kernel} {threads}t: "
                  f"{results[-1]['best_accuracy']:.2%}", file=sys.stderr)
    print(table(results, args.hogwild_threads))


if __name__ == "__main__":
    main()
