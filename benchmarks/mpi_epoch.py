"""An MPI job that trains epochs on command, for benchmarks/test_distributed_epoch.py.

    mpiexec -n P python benchmarks/mpi_epoch.py --threads T [--reduce R] [--m M]

Every rank loads the book's 50,000 training images (300 with FASTGD_BENCH_SMOKE),
prepares a distributed run (``fastgd.distributed.prepare``) for a [784, 30, 10] float32 network and
waits.  Rank 0 reads commands from stdin (mpiexec forwards it there), one a line,
and every rank carries them out:

    reset   the weights back to the initial ones (the benchmark's setup)
    epoch   one epoch over a fixed permutation; rank 0 answers "done SECONDS"
            with the epoch's time as the ranks measured it (the slowest rank's)
    quit

"ready {json}" is printed when the job is prepared (the run's facts, the
machine's, and each rank's CPUs), "done ..." after each epoch, so the parent
times an epoch from the moment it asks to the moment it hears back.
"""

import argparse
import json
import os
import socket
import sys
import time
import warnings

import numpy as np
from mpi4py import MPI

import fastgd
from fastgd.distributed import prepare

SEED = 1
ETA = 3.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--reduce", default="ordered")
    parser.add_argument("--m", type=int, help="mini-batch size (default: full batch)")
    parser.add_argument("--sizes", default="784,30,10")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    (X, y), _, _ = fastgd.load_mnist()
    if os.environ.get("FASTGD_BENCH_SMOKE"):
        X, y = X[:300], y[:300]
    net = fastgd.Network([int(s) for s in args.sizes.split(",")], seed=SEED)
    start = net.params.copy()
    order = np.random.default_rng(SEED).permutation(len(y))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # several threads: the parallel kernel, whatever auto would pick on a busy machine
        run = prepare(net, (X, y), 0, args.m, ETA, comm=comm, reduce=args.reduce,
                      shuffle=False, threads=args.threads, verbose=False, handle_signals=False,
                      kernel="serial" if args.threads == 1 else "parallel")
    cpus = comm.gather(sorted(os.sched_getaffinity(0)), root=0)
    if comm.rank == 0:
        facts = dict(run.history.info["distributed"], cpus=cpus, host=socket.gethostname(),
                     mpi=MPI.Get_library_version().splitlines()[0].strip(),
                     mpi4py=__import__("mpi4py").__version__, kernel=run.trainer.current.name,
                     examples=len(y), warnings=[str(w.message) for w in caught])
        print("ready " + json.dumps(facts), flush=True)
    while True:
        command = sys.stdin.readline().strip() if comm.rank == 0 else None
        command = comm.bcast(command or "quit", root=0)
        if command == "reset":
            net.params[...] = start
        elif command == "epoch":
            comm.Barrier()
            began = time.perf_counter()
            run.trainer.run_epoch(order)
            seconds = comm.reduce(time.perf_counter() - began, op=MPI.MAX, root=0)
            if comm.rank == 0:
                print(f"done {seconds!r}", flush=True)
        else:
            break


if __name__ == "__main__":
    main()
