"""Seconds per epoch of the book's run ([784, 30, 10], m 10, 50,000 images, serial
kernel, 1 thread) with and without chapter 3's options: the median of ROUNDS
epochs per variant, the variants alternating epoch by epoch in one process so
that a change in the machine's load falls on all of them alike.

    python benchmarks/chapter3_speed.py [ROUNDS]

Run it against an older fastgd (PYTHONPATH) to compare: variants the older
one lacks are left out.
"""

import inspect
import sys

import fastgd
from fastgd import config as fastgd_config
from fastgd.training import Trainer

import _measure as measure

# Steady-state timings: the kernels specialised for each shape from the first epoch
# (not the generic ones that a cold cache starts on).
fastgd_config.SPECIALIZE = "now"

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
training_data = fastgd.load_mnist()[0]
chapter3 = "cost" in inspect.signature(fastgd.Network).parameters
variants = {"default (quadratic)": ({}, {}, 3.0)}
if chapter3:
    variants.update({
        "cross-entropy": ({"cost": "cross-entropy"}, {}, 0.5),
        "L2 lmbda 5": ({}, {"lmbda": 5.0}, 3.0),
        "cross-entropy + L2 lmbda 5": ({"cost": "cross-entropy"}, {"lmbda": 5.0}, 0.5),
        "cross-entropy + L1 lmbda 5": ({"cost": "cross-entropy"},
                                       {"lmbda": 5.0, "regularization": "L1"}, 0.5),
    })
trainers = {}
for name, (net_options, options, eta) in variants.items():
    net = fastgd.Network([784, 30, 10], seed=1, **net_options)
    trainers[name] = Trainer(net, training_data, 10, eta, threads=1, kernel="serial", **options)
    trainers[name].run_epoch(net.rng.permutation(trainers[name].n))  # warm the caches
seconds = {name: [] for name in trainers}
for _ in range(rounds):
    for name, trainer in trainers.items():
        order = trainer.net.rng.permutation(trainer.n)
        seconds[name].append(measure.seconds(trainer.run_epoch, order))
print(f"fastgd at {fastgd.__file__}: median of {rounds} epochs (min-max)")
for name, times in seconds.items():
    print(f"  {name:28s} {measure.median(times) * 1000:7.1f} ms  "
          f"({min(times) * 1000:.1f}-{max(times) * 1000:.1f})")
