"""The scale-out model of BENCHMARKS.md ("Beyond one machine"): its measured inputs
and its table of predictions.

    python benchmarks/scaleout.py --out benchmarks/results/scaleout.json \\
                                  --markdown benchmarks/results/scaleout.md

Measured here:

- t_ex, the seconds per example of one rank's gradient sum on one thread: a
  full-batch epoch of [784, 30, 10] float32 over the book's 50,000 training
  images through ``fastgd.distributed.Run`` (1 rank, the serial kernel), median
  of --rounds epochs, divided by 50,000.  The same for m = 1000, whose 50 steps
  add 50 updates of the weights.
- the combine, under mpiexec -n 2 (this script again, with --comm): Allreduce
  (MPI's sum) and Allgather + sum in rank order (fastgd's reduce="ordered") of
  float32 vectors of 1 K to 4 M numbers, fastgd's 25,616 among them; median of
  --repeats after a barrier, the slower rank's; then a line
  t = alpha + bytes / beta for each, fitted by least squares on relative errors.

The model, per epoch of n examples with `steps` steps (1 for full batch, n/m):

    T(P) = n t_ex / P + steps c(P)
    Allreduce:  c(P) = alpha ceil(log2 P) + 2 (P - 1)/P bytes / beta
    Allgather:  c(P) = alpha ceil(log2 P) + (P - 1) bytes / beta

(a tree's log2 P latencies; a ring Allreduce moves each byte twice, an
Allgather brings every other rank's whole vector), and the efficiency
E(P) = T(1) / (P T(P)), T(1) = n t_ex.  Two sets of (alpha, beta): the ones
measured here (two ranks on one node: shared memory, the best case), and a
network between nodes given by --latency and --bandwidth (default: 50 us and
1.25 GB/s, a 10 Gb Ethernet link under TCP, an assumption, not a measurement).
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

import _measure as measure

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [784, 30, 10]
SEED = 1
ETA = 3.0
RANKS = [1, 2, 4, 8, 16, 32, 64]
DATASETS = {"MNIST, 60,000": 60_000, "100x MNIST, 6,000,000": 6_000_000}
MODES = {"full batch": None, "m = 1000": 1000}
VECTOR_SIZES = [1024, 4096, 25_616, 65_536, 262_144, 1_048_576, 4_194_304]


# -- measuring ------------------------------------------------------------------------------

def measure_compute(rounds):
    """Seconds per example of the serial gradient sum (1 rank, 1 thread), from
    epochs of full batch and of m = 1000."""
    import fastgd
    from fastgd.distributed import Run
    (X, y), _, _ = fastgd.load_mnist()
    order = np.random.default_rng(SEED).permutation(len(y))
    result = {"examples": len(y), "n_params": None}
    for mode, m in MODES.items():
        net = fastgd.Network(SIZES, seed=SEED)
        run = Run(net, verbose=False)
        run.prepare((X, y), 0, m, ETA, None, "mean", False, 1, False, "stop", 10, None)
        start = net.params.copy()
        seconds = []
        for _ in range(rounds + 1):  # the first is a warm-up
            net.params[...] = start
            seconds.append(measure.seconds(run.run_epoch, order))
        result[mode] = {"epoch_s": seconds[1:], "epoch_s_median": measure.median(seconds[1:]),
                        "s_per_example": measure.median(seconds[1:]) / len(y)}
        result["n_params"] = int(net.layout.n_params)
    return result


def comm_child(repeats):
    """Run under mpiexec: time both combines for each vector size; rank 0 prints JSON."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    P = comm.Get_size()
    timings = {"allreduce": {}, "allgather+sum": {}}
    for n in VECTOR_SIZES:
        mine = np.ones(n, np.float32)
        total = np.empty(n, np.float32)
        gathered = np.empty((P, n), np.float32)

        def allreduce(mine=mine, total=total):
            comm.Allreduce(mine, total, op=MPI.SUM)

        def ordered(mine=mine, total=total, gathered=gathered):
            comm.Allgather(mine, gathered)
            total[:] = gathered[0]
            for r in range(1, P):
                total += gathered[r]

        for name, combine in (("allreduce", allreduce), ("allgather+sum", ordered)):
            seconds = []
            for _ in range(repeats + 3):
                comm.Barrier()
                seconds.append(measure.seconds(combine))
            median = measure.median(seconds[3:])
            timings[name][n] = comm.allreduce(median, op=MPI.MAX)
    if comm.Get_rank() == 0:
        print(json.dumps({"ranks": P, "mpi": MPI.Get_library_version().splitlines()[0].strip(),
                          "timings": timings}))


def mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def measure_comm(ranks, repeats):
    command = [mpiexec(), "-n", str(ranks), sys.executable, os.path.abspath(__file__),
               "--comm", "--repeats", str(repeats)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env,
                         timeout=600).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["command"] = " ".join(command)
    for name, by_size in result["timings"].items():
        sizes = np.array([int(k) for k in by_size], float) * 4  # bytes
        seconds = np.array(list(by_size.values()))
        # least squares on relative errors: the small messages, which fix alpha, count
        # as much as the large ones, which fix beta
        A = np.stack([np.ones_like(sizes), sizes], axis=1) / seconds[:, None]
        (alpha, per_byte), *_ = np.linalg.lstsq(A, np.ones_like(seconds), rcond=None)
        result.setdefault("fit", {})[name] = {"alpha_s": max(float(alpha), 0.0),
                                              "beta_bytes_per_s": 1.0 / float(per_byte)}
    return result


# -- the model ------------------------------------------------------------------------------

def combine_seconds(kind, P, n_bytes, alpha, beta):
    if P == 1:
        return 0.0
    hops = math.ceil(math.log2(P))
    if kind == "allreduce":
        return alpha * hops + 2 * (P - 1) / P * n_bytes / beta
    return alpha * hops + (P - 1) * n_bytes / beta


def predict(t_ex, n_bytes, networks):
    """Rows: dataset, mode, network, kind, P, T(P), compute, communication, efficiency."""
    rows = []
    for dataset, n in DATASETS.items():
        for mode, m in MODES.items():
            steps = 1 if m is None else n // m
            for network, fits in networks.items():
                for kind, (alpha, beta) in fits.items():
                    for P in RANKS:
                        compute = n * t_ex / P
                        comm = steps * combine_seconds(kind, P, n_bytes, alpha, beta)
                        total = compute + comm
                        rows.append(dict(dataset=dataset, n=n, mode=mode, steps=steps,
                                         network=network, combine=kind, ranks=P, epoch_s=total,
                                         compute_s=compute, communication_s=comm,
                                         efficiency=n * t_ex / (P * total)))
    return rows


def dominates_at(rows, dataset, mode, network, kind):
    """The fewest ranks at which communication takes longer than computing, or None."""
    for r in rows:
        if ((r["dataset"], r["mode"], r["network"], r["combine"]) == (dataset, mode, network, kind)
                and r["communication_s"] >= r["compute_s"]):
            return r["ranks"]
    return None


def fmt_s(s):
    if s >= 100:
        return f"{s:.0f}"
    if s >= 1:
        return f"{s:.3g}"
    return f"{s * 1e3:.3g} ms"


def markdown(inputs, rows):
    t_ex = inputs["t_ex"]
    lines = [f"Measured on {inputs['machine']}: t_ex = {t_ex * 1e6:.3f} us per example "
             f"(1 thread, full batch; m = 1000: "
             f"{inputs['compute']['m = 1000']['s_per_example'] * 1e6:.3f} us), "
             f"{inputs['n_params']:,} float32 parameters ({inputs['bytes']:,} bytes)."]
    comm = inputs["comm"]
    for kind, fit in comm["fit"].items():
        at = comm["timings"][kind][str(inputs["n_params"])]
        lines.append(f"- {kind}, {comm['ranks']} ranks on this node ({comm['mpi']}): "
                     f"{at * 1e6:.0f} us for fastgd's {inputs['bytes']:,} bytes; fit alpha = "
                     f"{fit['alpha_s'] * 1e6:.1f} us, beta = "
                     f"{fit['beta_bytes_per_s'] / 1e9:.2f} GB/s")
    net = inputs["between_nodes"]
    lines.append(f"- between nodes (assumed, not measured): alpha = {net['alpha_s'] * 1e6:.0f} "
                 f"us, beta = {net['beta_bytes_per_s'] / 1e9:.2f} GB/s")
    lines.append("")
    for network in ("this node (measured)", "between nodes (assumed)"):
        for kind in ("allreduce", "allgather+sum"):
            lines.append(f"**{network}, {kind}**: seconds per epoch T(P) (efficiency E(P))")
            lines.append("")
            lines.append("| data set | mode | " + " | ".join(f"P = {P}" for P in RANKS)
                         + " | comm. dominates from |")
            lines.append("| --- | --- | " + " | ".join("---" for _ in RANKS) + " | --- |")
            for dataset in DATASETS:
                for mode in MODES:
                    cells = [f"{fmt_s(r['epoch_s'])} ({r['efficiency']:.0%})" for r in rows
                             if (r["dataset"], r["mode"], r["network"], r["combine"])
                             == (dataset, mode, network, kind)]
                    at = dominates_at(rows, dataset, mode, network, kind)
                    lines.append(f"| {dataset} | {mode} | " + " | ".join(cells)
                                 + f" | {'P = ' + str(at) if at else 'beyond 64'} |")
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/scaleout.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", metavar="PATH.json", help="write the inputs and the table")
    parser.add_argument("--markdown", metavar="PATH.md", help="write the tables as Markdown")
    parser.add_argument("--rounds", type=int, default=5, help="epochs timed (default 5)")
    parser.add_argument("--repeats", type=int, default=50,
                        help="combines timed per vector size (default 50)")
    parser.add_argument("--latency", type=float, default=50e-6, metavar="SECONDS",
                        help="alpha between nodes (default 50e-6)")
    parser.add_argument("--bandwidth", type=float, default=1.25e9, metavar="BYTES_PER_S",
                        help="beta between nodes (default 1.25e9: 10 Gb Ethernet)")
    parser.add_argument("--comm", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.comm:
        comm_child(args.repeats)
        return 0
    sys.path.insert(0, HERE)
    from suite import cpu_model
    compute = measure_compute(args.rounds)
    comm = measure_comm(2, args.repeats)
    t_ex = compute["full batch"]["s_per_example"]
    n_bytes = compute["n_params"] * 4
    inputs = {"machine": f"{cpu_model()}, {os.cpu_count()} cores",
              "load_average": os.getloadavg(), "t_ex": t_ex, "n_params": compute["n_params"],
              "bytes": n_bytes, "compute": compute, "comm": comm,
              "between_nodes": {"alpha_s": args.latency, "beta_bytes_per_s": args.bandwidth}}
    networks = {
        "this node (measured)": {k: (f["alpha_s"], f["beta_bytes_per_s"])
                                 for k, f in comm["fit"].items()},
        "between nodes (assumed)": {k: (args.latency, args.bandwidth)
                                    for k in ("allreduce", "allgather+sum")}}
    rows = predict(t_ex, n_bytes, networks)
    text = markdown(inputs, rows)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"inputs": inputs, "predictions": rows}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"<!-- written by benchmarks/scaleout.py; load average "
                    f"{inputs['load_average'][0]:.1f} -->\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
