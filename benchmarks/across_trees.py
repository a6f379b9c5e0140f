"""The same run on two source trees of fastgd, side by side: the steady-state epoch
time of [784, 30, 10] float32 on MNIST with the serial kernel on one thread, and a
hash of the weights after the run (a change that keeps the maths keeps the bits).

    git worktree add /tmp/before <commit>
    python benchmarks/across_trees.py /tmp/before . --rounds 3

Each run is a process of its own (pinned to one core where the OS allows),
importing fastgd from its tree, with a numba cache of its own per tree
(compiled by a first, untimed run); the trees take turns, round by round, so that
a change in the machine's load falls on both.  Prints one line per run and the
medians per tree and mini-batch size.  The kernels specialised to the shape are
used (FASTGD_SPECIALIZE=now).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from _measure import can_pin

# One process's run: median epoch seconds of `epochs` epochs after a first, untimed one.
RUN = """
import hashlib, json, sys
import numpy as np
import fastgd
m = None if sys.argv[1] == "full" else int(sys.argv[1])
epochs = int(sys.argv[2])
training_data, _, _ = fastgd.load_mnist()
net = fastgd.Network([784, 30, 10], seed=1)
history = net.SGD(training_data, 1 + epochs, m, 3.0, verbose=False, kernel="serial")
seconds = [record["seconds"] for record in list(history)[1:]]
print(json.dumps({"seconds": float(np.median(seconds)) if seconds else None,
                  "weights": hashlib.sha256(net.params.tobytes()).hexdigest()[:16],
                  "fastgd": fastgd.__file__}))
"""


def run(tree, cache, m, epochs):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), FASTGD_SPECIALIZE="now",
               NUMBA_NUM_THREADS="1", NUMBA_CACHE_DIR=os.path.join(cache, "numba"),
               FASTGD_CACHE_DIR=os.path.join(cache, "fastgd"))
    command = [sys.executable, "-c", RUN, str(m), str(epochs)]
    if can_pin():
        command = ["taskset", "-c", str(sorted(os.sched_getaffinity(0))[-1])] + command
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs=2, help="two source trees (repository roots)")
    parser.add_argument("--batch-sizes", default="10,100,full",
                        help="mini-batch sizes, 'full' for full batch (default 10,100,full)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each tree (default 3)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs timed per run (default 5)")
    args = parser.parse_args()
    sizes = args.batch_sizes.split(",")
    with tempfile.TemporaryDirectory(prefix="fastgd-across-") as folder:
        caches = [os.path.join(folder, str(i)) for i in range(2)]
        for tree, cache in zip(args.trees, caches):  # compile, untimed
            for m in sizes:
                run(tree, cache, m, 0)
        results = {}
        for turn in range(args.rounds):
            for m in sizes:
                for tree, cache in zip(args.trees, caches):
                    result = run(tree, cache, m, args.epochs)
                    results.setdefault((tree, m), []).append(result)
                    print(f"round {turn + 1}  {tree}  m={m}: {1000 * result['seconds']:.1f} ms "
                          f"per epoch, weights {result['weights']}", flush=True)
    print("\nmedians (ms per epoch), second tree / first tree, weights the same:")
    for m in sizes:
        first, second = (results[tree, m] for tree in args.trees)
        a = float(np.median([r["seconds"] for r in first]))
        b = float(np.median([r["seconds"] for r in second]))
        same = {r["weights"] for r in first} == {r["weights"] for r in second}
        print(f"  m={m}: {1000 * a:.1f}  {1000 * b:.1f}  {b / a:.2f}x  {same}")


if __name__ == "__main__":
    main()
