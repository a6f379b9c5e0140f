"""The evaluation kernels: how long the first call of each takes from empty caches,
what a call costs, and a hash of their outputs (to compare two commits' bits).

    python benchmarks/evaluation_kernels.py [--generic] [--calls 2000]

(a) First calls: a fresh process with NUMBA_CACHE_DIR and FASTGD_CACHE_DIR in a
new temporary folder calls ``feedforward_serial``, ``feedforward_parallel``,
``gradients_serial``, ``gradients_parallel`` and ``backprop`` of the
[784, 30, 10] float32 module (specialised, or with --generic the generic one)
once each, in that order, through ``kernels.call`` as fastgd does (so with the
SLP vectoriser on), on 300 random sparse inputs, and prints the seconds of
each: the compile of what that kernel needs and was not compiled before it.
Then the SHA-256 of the four outputs, first 16 hex digits.

(b) Call costs, in this process on its own cache folders (filled by a first
call): the best of 5 rounds of --calls calls through ``kernels.call``, in us,
of the parallel and serial feedforward on no rows and on 200 rows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r'''
import hashlib, json, sys, time
import numpy as np
import fastgd
from fastgd import config, kernels

generic = sys.argv[1] == "generic"
sizes = [784, 30, 10]
net = fastgd.Network(sizes, seed=0)
module = kernels.generic_kernels(sizes) if generic else kernels.kernels(sizes, np.float32)
rng = np.random.default_rng(0)
X = (rng.random((300, 784)) > 0.8).astype(np.float32)
y = rng.integers(0, 10, 300)
layout = net.layout.arrays
n_biases, n_weights, _ = net.layout.book
outputs, seconds = [], {}
for name in ("feedforward_serial", "feedforward_parallel", "gradients_serial",
             "gradients_parallel", "backprop"):
    kernel = getattr(module, name)
    began = time.perf_counter()
    if name.startswith("feedforward"):
        out = np.empty((300, 10), np.float32)
        kernels.call(kernel, X, net.params, layout, out, config.EVAL_BLOCK)
        outputs.append(out)
    elif name.startswith("gradients"):
        out = np.empty((300, net.layout.n_params), np.float32)
        kernels.call(kernel, X, y, net.params, layout, out)
        outputs.append(out)
    else:
        kernels.call(kernel, X[:1], y[:1].astype(np.int64), net.params, layout,
                     np.empty(n_biases, np.float32), np.empty(n_weights, np.float32))
    seconds[name] = time.perf_counter() - began
digest = hashlib.sha256(b"".join(o.tobytes() for o in outputs)).hexdigest()[:16]
print(json.dumps({"seconds": seconds, "bits": digest}))
'''


def first_calls(generic):
    """(a): {kernel: seconds}, and the outputs' hash, from a process with empty caches."""
    with tempfile.TemporaryDirectory(prefix="fastgd-eval-") as folder:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "numba"),
                   FASTGD_CACHE_DIR=os.path.join(folder, "fastgd"))
        # in the empty folder: `python -c` puts the working directory first on sys.path
        done = subprocess.run([sys.executable, "-c", CHILD, "generic" if generic else "now"],
                              env=env, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"evaluation_kernels.py: the first-call process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def call_costs(generic, calls):
    """(b): {(rows, kernel): best us per call}."""
    import numpy as np

    import fastgd
    from fastgd import config, kernels

    net = fastgd.Network([784, 30, 10], seed=1)
    module = (kernels.generic_kernels(net.sizes) if generic
              else kernels.kernels(net.sizes, net.dtype))
    costs = {}
    for rows in (0, 200):
        X = np.zeros((rows, 784), np.float32)
        out = np.zeros((rows, 10), np.float32)
        args = (X, net.params, net.layout.arrays, out, config.EVAL_BLOCK)
        for name in ("feedforward_parallel", "feedforward_serial"):
            kernel = getattr(module, name)
            kernels.call(kernel, *args)
            best = float("inf")
            for _ in range(5):
                began = time.perf_counter()
                for _ in range(calls):
                    kernels.call(kernel, *args)
                best = min(best, (time.perf_counter() - began) / calls)
            costs[rows, name] = best * 1e6
    return costs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generic", action="store_true", help="the generic module")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed round")
    args = parser.parse_args()
    result = first_calls(args.generic)
    print("| kernel | first call, empty caches |\n| --- | --: |")
    for name, seconds in result["seconds"].items():
        print(f"| `{name}` | {seconds:.2f} s |")
    print(f"\noutputs' SHA-256: {result['bits']}\n")
    print("| rows | kernel | best us per call |\n| --: | --- | --: |")
    for (rows, name), us in call_costs(args.generic, args.calls).items():
        print(f"| {rows} | `{name}` | {us:.1f} |")


if __name__ == "__main__":
    main()
