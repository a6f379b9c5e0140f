"""The book's chapter-3 numbers, reproduced with fastgd's options.

    python docs/chapter3.py table [--seeds 1 2 3] [--out DIR]
    python docs/chapter3.py overfitting [--epochs 400] [--out DIR] [--plot docs/overfitting.png]

``table`` trains each configuration of the book's chapter 3 (and chapter 1's
run, for reference) for 30 epochs, mini-batches of 10, on the 50,000 training
images, evaluated on the 10,000 test images as the book's runs are, once per
seed, and prints a Markdown table: the median over the seeds of the best and
of the final test accuracy, beside the book's number.  ``overfitting`` trains
[784, 30, 10] with the cross-entropy cost on the first 1,000 training images,
without and with L2 regularization (lmbda 0.1), and draws the training cost
and the test accuracy per epoch (the book's figures).  Each run's History is
written as JSON to DIR (default /tmp/ch3), and a run whose file is there is
read, not trained again.  Runs use one thread and the serial kernel, so that
they give the same bits on any machine with the same numba.
"""

import argparse
import json
import os
import statistics
import sys
import time

import fastgd
from fastgd import plots

# (name, sizes, options of Network, eta, lmbda, the book's accuracy and where it says so)
TABLE = [
    ("chapter 1: quadratic cost", [784, 30, 10], {}, 3.0, 0.0,
     "95.42% (peak, chapter 1)"),
    ("cross-entropy", [784, 30, 10], {"cost": "cross-entropy"}, 0.5, 0.0, "95.49%"),
    ("cross-entropy", [784, 100, 10], {"cost": "cross-entropy"}, 0.5, 0.0, "96.82%"),
    ("cross-entropy, L2 lmbda 5.0", [784, 100, 10], {"cost": "cross-entropy"}, 0.5, 5.0,
     "97.92%"),
    ("cross-entropy, L2 lmbda 5.0, scaled weights", [784, 100, 10],
     {"cost": "cross-entropy", "init": "scaled"}, 0.5, 5.0, "about 98%"),
]


def _run(path, sizes, net_options, eta, lmbda, seed, training_data, test_data, epochs,
         monitor_training_cost=False):
    """The History records of one run (read from `path` if it was run before)."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["epochs"]
    net = fastgd.Network(sizes, seed=seed, **net_options)
    began = time.perf_counter()
    history = net.SGD(training_data, epochs, 10, eta, test_data=test_data, lmbda=lmbda,
                      threads=1, kernel="serial", verbose=False,
                      monitor_training_cost=monitor_training_cost)
    report = {"sizes": sizes, "network": net_options, "eta": eta, "lmbda": lmbda,
              "seed": seed, "epochs": list(history), "diverged": history.diverged,
              "seconds": time.perf_counter() - began}
    with open(path + ".tmp", "w") as f:
        json.dump(report, f)
    os.replace(path + ".tmp", path)
    return report["epochs"]


def table(seeds, out):
    training_data, _, test_data = fastgd.load_mnist()
    rows = ["| network | configuration | eta | fastgd best (median) | fastgd final (median) "
            "| per seed, best | the book |",
            "|---|---|---|---|---|---|---|"]
    for name, sizes, net_options, eta, lmbda, book in TABLE:
        best, final = [], []
        for seed in seeds:
            tag = f"{'-'.join(map(str, sizes))}-{name.replace(' ', '').replace(',', '_')}"
            records = _run(os.path.join(out, f"{tag}-seed{seed}.json"), sizes, net_options,
                           eta, lmbda, seed, training_data, test_data, 30)
            best.append(max(r["accuracy"] for r in records))
            final.append(records[-1]["accuracy"])
            print(f"{sizes} {name} seed {seed}: best {best[-1]:.2%}, final {final[-1]:.2%}",
                  file=sys.stderr, flush=True)
        rows.append(f"| {sizes} | {name} | {eta:g} | {statistics.median(best):.2%} "
                    f"| {statistics.median(final):.2%} "
                    f"| {', '.join(f'{b:.2%}' for b in best)} | {book} |")
    print("\n".join(rows))


def overfitting(epochs, out, plot):
    training_data, _, test_data = fastgd.load_mnist()
    X, y = training_data
    runs = {}
    for lmbda in (0.0, 0.1):
        path = os.path.join(out, f"overfitting-lmbda{lmbda:g}-epochs{epochs}.json")
        runs[lmbda] = _run(path, [784, 30, 10], {"cost": "cross-entropy"}, 0.5, lmbda, 1,
                           (X[:1000], y[:1000]), test_data, epochs,
                           monitor_training_cost=True)
        last = runs[lmbda][-1]
        best = max(r["accuracy"] for r in runs[lmbda])
        print(f"lmbda {lmbda:g}: training cost {last['training_cost']:.4f}, test accuracy "
              f"{last['accuracy']:.2%} after {epochs} epochs (best {best:.2%})")
    figure = plots.overfitting({"no regularization": runs[0.0],
                                "L2, lmbda 0.1": runs[0.1]},
                               title="[784, 30, 10], cross-entropy, eta 0.5, m 10, "
                                     "trained on the first 1,000 images")
    plots.save(figure, plot, overwrite=True)
    print(f"drawn to {plot}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["table", "overfitting"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--out", default="/tmp/ch3")
    parser.add_argument("--plot", default="docs/overfitting.png")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.what == "table":
        table(args.seeds, args.out)
    else:
        overfitting(args.epochs, args.out, args.plot)


if __name__ == "__main__":
    main()
