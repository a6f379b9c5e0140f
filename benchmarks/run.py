"""Run the benchmark suite one process per implementation and thread count.

    python benchmarks/run.py --out bench.json [--threads 1 2] [--impl fastgd jax]
                             [--rounds K] [--smoke] [--skip-start] [--keyword EXPR]
    python benchmarks/report.py bench.json --markdown report.md --out plots/

Why not one pytest process: BLAS (OpenBLAS, MKL) and XLA size their thread pools
when they load, so one process cannot measure them at 1 thread and at all
threads; a 1-thread result should come from a process pinned to one core, so
that the OS does not move it around or lend it a second core for its helper
threads; and the OpenBLAS variables that pick a kernel must be gone before
NumPy loads.  Each child is `python -m pytest benchmarks/test_epoch.py --impl
NAME --bench-threads N` with its own environment:

- 1 thread: pinned to one core (sched_setaffinity, where the OS has it), and
  OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1 and XLA_FLAGS for a single-threaded XLA;
- NumPy and network.py: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed (when
  set, they can force an older, slower kernel on a current OpenBLAS);
- --rounds K as FASTGD_BENCH_ROUNDS, --smoke as FASTGD_BENCH_SMOKE=1.

The children's JSON files are merged into one pytest-benchmark JSON (their
"benchmarks" lists concatenated, the first one's machine and commit info), which
benchmarks/report.py reads.  The busy-machine and import+compile benchmarks run
in fastgd's process at every thread (the one that uses every core).

The cold and warm start benchmarks (benchmarks/test_start.py) run last, once,
in a process of their own that is not pinned (they start a fresh process per
implementation and round, with each framework's default threads): fastgd with
the implementations of --impl beside it, JAX's, PyTorch's and NumPy's.  They
take minutes (every cold round compiles fastgd's kernels twice: by default,
and with FASTGD_SPECIALIZE=now); --skip-start leaves them out.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

from _measure import can_pin, cores, pin_to

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMPLS = ["fastgd", "numpy", "network.py", "torch", "jax"]  # suite.IMPLS, in run order
ONE_THREAD_ONLY = {"network.py"}  # a per-example loop: BLAS threads cannot help it
BLAS_USERS = {"numpy", "network.py"}
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
NO_TESTS = 5  # pytest's exit status when every test was deselected
# --impl's names -> test_start.py's implementations (FASTGD_BENCH_START)
START_IMPLS = {"fastgd": ["fastgd", "fastgd now"], "jax": ["jax"], "torch": ["pytorch"],
               "numpy": ["numpy"]}
START_PROCESS = "cold and warm start"


def child_env(impl, threads, args, command):
    """The environment of the process that measures impl at `threads` threads."""
    env = dict(os.environ, FASTGD_BENCH_COMMAND=command)
    env.pop("FASTGD_BENCH_REMOVED_ENV", None)
    if args.smoke:
        env["FASTGD_BENCH_SMOKE"] = "1"
    if args.rounds is not None:
        env["FASTGD_BENCH_ROUNDS"] = str(args.rounds)
    if threads == 1:
        env.update({name: "1" for name in THREAD_VARIABLES})
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_ONE_THREAD}".strip()
    if impl in BLAS_USERS:
        removed = [name for name in OPENBLAS_VARIABLES if env.pop(name, None) is not None]
        if removed:  # so that the JSON says what the runner took away
            env["FASTGD_BENCH_REMOVED_ENV"] = ",".join(removed)
    return env


def run_child(impl, threads, json_path, args, command):
    """One pytest process; returns its exit status."""
    cmd = [sys.executable, "-m", "pytest", os.path.join(HERE, "test_epoch.py"),
           "--impl", impl, "--bench-threads", str(threads), f"--benchmark-json={json_path}",
           "-q", "-p", "no:cacheprovider", "--benchmark-columns=min,median,max,rounds"]
    if args.keyword:
        cmd += ["-k", args.keyword]
    pin = threads == 1 and can_pin()
    where = f"pinned to CPU {cores()[0]}" if pin else "not pinned"
    print(f"run.py: {impl}, {threads} thread{'s' if threads > 1 else ''} ({where}): "
          f"{shlex.join(cmd)}", file=sys.stderr, flush=True)
    # the children's tables go to stderr: stdout is left for the report command
    return subprocess.run(cmd, cwd=ROOT, env=child_env(impl, threads, args, command),
                          stdout=sys.stderr, preexec_fn=pin_to(cores()[0]) if pin else None
                          ).returncode


def run_start(json_path, args, command):
    """test_start.py's process: not pinned, its implementations from --impl;
    returns its exit status."""
    cmd = [sys.executable, "-m", "pytest", os.path.join(HERE, "test_start.py"),
           f"--benchmark-json={json_path}", "-q", "-p", "no:cacheprovider",
           "--benchmark-columns=min,median,max,rounds"]
    env = dict(os.environ, FASTGD_BENCH_COMMAND=command, FASTGD_BENCH_PROCESS=START_PROCESS,
               FASTGD_BENCH_START=",".join(key for impl in args.impl
                                           for key in START_IMPLS.get(impl, [])))
    env.pop("FASTGD_BENCH_REMOVED_ENV", None)
    if args.smoke:
        env["FASTGD_BENCH_SMOKE"] = "1"
    if args.rounds is not None:
        env["FASTGD_BENCH_ROUNDS"] = str(args.rounds)
    print(f"run.py: {START_PROCESS} (not pinned): {shlex.join(cmd)}", file=sys.stderr,
          flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, stdout=sys.stderr).returncode


def merge(paths):
    """One pytest-benchmark JSON from several: the first's header, all benchmarks."""
    merged = None
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        if merged is None:
            merged = data
        else:
            merged["benchmarks"].extend(data.get("benchmarks", []))
    return merged


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Run benchmarks/test_epoch.py one process per implementation and thread "
                    "count, and merge the results into one pytest-benchmark JSON.")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="the merged JSON, for benchmarks/report.py")
    parser.add_argument("--threads", type=int, nargs="+", metavar="N",
                        help=f"thread counts (default: 1 and {len(cores())}, every core)")
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=IMPLS,
                        help="implementations (default: all; those not installed skip)")
    parser.add_argument("--rounds", type=int, metavar="K",
                        help="timed rounds per benchmark (default 5, 1 with --smoke)")
    parser.add_argument("--skip-start", action="store_true",
                        help="leave out the cold and warm start benchmarks (test_start.py: "
                             "minutes of compiling; they run only when --impl has fastgd)")
    parser.add_argument("--keyword", metavar="EXPR",
                        help="only the epoch benchmarks pytest -k EXPR selects, e.g. "
                             "'float32 and not 784x100x10' (a process that selects none "
                             "is not a failure)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few hundred examples: checks that everything runs, "
                             "measures nothing")
    args = parser.parse_args(argv)
    most = len(cores())
    args.threads = sorted(set(args.threads or [1, most]))
    if not all(1 <= t <= most for t in args.threads):
        parser.error(f"--threads must be 1 to {most} (the cores this process may use)")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv=None):
    """Command line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    if max(args.threads) < len(cores()) and "fastgd" in args.impl:
        print(f"run.py: the busy-machine and import+compile benchmarks need every core: "
              f"they run only with --threads {len(cores())}", file=sys.stderr)
    failed, parts = [], []
    with tempfile.TemporaryDirectory(prefix="fastgd-bench-") as tmp:
        for threads in args.threads:
            for impl in args.impl:
                if threads > 1 and impl in ONE_THREAD_ONLY:
                    continue
                path = os.path.join(tmp, f"{impl}-{threads}t.json")
                status = run_child(impl, threads, path, args, command)
                if status not in (0, NO_TESTS):
                    failed.append(f"{impl} at {threads} thread(s) (pytest exit status {status})")
                if os.path.exists(path):
                    parts.append(path)
        if "fastgd" in args.impl and not args.skip_start:
            path = os.path.join(tmp, "start.json")
            status = run_start(path, args, command)
            if status not in (0, NO_TESTS):
                failed.append(f"{START_PROCESS} (pytest exit status {status})")
            if os.path.exists(path):
                parts.append(path)
        if not parts:
            print("run.py: no process wrote results", file=sys.stderr)
            return 1
        merged = merge(parts)
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(merged, f, indent=4)
    print(f"run.py: wrote {args.out} ({len(merged['benchmarks'])} benchmarks from "
          f"{len(parts)} processes)", file=sys.stderr)
    for failure in failed:
        print(f"run.py: FAILED: {failure}", file=sys.stderr)
    print(f"python benchmarks/report.py {shlex.quote(args.out)} "
          "--markdown report.md --out plots/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
