"""Run under mpiexec by tests/test_distributed.py: train a [784, 10, 10] network on the
first N MNIST training images with fastgd.distributed and write each rank's
weights and History to OUT/rank<r>.npz.

    mpiexec -n 2 python tests/mpi_train.py OUT [--reduce R] [--m M] [--n N]
                                               [--epochs E] [--short-rank R]
"""

import argparse
import json
import os

import numpy as np
from mpi4py import MPI

import fastgd

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--reduce", default="ordered")
parser.add_argument("--m", type=int)
parser.add_argument("--n", type=int, default=3000)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--short-rank", type=int, help="this rank drops one training example")
args = parser.parse_args()

comm = MPI.COMM_WORLD
(X, y), _, (Xt, yt) = fastgd.load_mnist()
n = args.n - (comm.rank == args.short_rank)
# every rank draws its own initial weights: SGD must take rank 0's
net = fastgd.Network([784, 10, 10], seed=1 if comm.rank == 0 else 100 + comm.rank)
history = net.SGD((X[:n], y[:n]), args.epochs, args.m, 3.0, (Xt[:1000], yt[:1000]),
                  comm=comm, reduce=args.reduce, threads=1)
np.savez(os.path.join(args.out, f"rank{comm.rank}.npz"), params=net.params,
         history=json.dumps({"records": list(history), "info": history.info}, default=str))
