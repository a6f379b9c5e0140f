#!/usr/bin/env bash
# The benchmark suite on a machine with more cores than two, in a few minutes:
# how fastgd's kernels and Hogwild! scale with threads, measured, beside what
# benchmarks/threads_model.py predicts from the one- and two-thread runs.
#
#     benchmarks/many_cores.sh OUT_DIR
#
# Run it from a checkout (fastgd need not be installed: the checkout goes first on
# PYTHONPATH) with numpy, numba, pytest and pytest-benchmark installed; PyTorch and
# JAX are measured where installed, on the CPU only. Every step writes its own file
# in OUT_DIR as it ends, and has a time limit, so a run that is stopped keeps what
# it measured:
#
#     log.txt         the machine (lscpu, affinity, CPU quota), versions, every
#                     step's output and the cold compile of the book's kernels
#     fastgd.json     benchmarks/run.py: fastgd's auto, serial and parallel kernels,
#                     [784, 30, 10] float32, every m, at 1, 2, 4, ... threads
#     hogwild.json    benchmarks/hogwild.py: speed at those threads, accuracy of the
#                     book's 30 epochs over three seeds
#     stages.md       benchmarks/stages.py: per-stage work and waits at m = 100
#     calibration.md  benchmarks/calibration.py: what auto's calibration timed, beside
#                     the kernels' own speed, at the thread counts above two
#     model.json/md   benchmarks/threads_model.py: the prediction from 1 and 2 threads
#     baselines.json  benchmarks/run.py: NumPy, PyTorch and JAX at 1 and every thread
#
# Then, on any machine, one report of both (from benchmarks/):
#
#     python -c "import json, run; json.dump(run.merge(['OUT_DIR/fastgd.json',
#                'OUT_DIR/baselines.json']), open('all.json', 'w'))"
#     python report.py all.json --markdown report.md --out plots/
#
# Tested on the 2-core EPYC VM with PyTorch 2.13 (CPU) and JAX 0.10: 3 min 5 s; on a
# lent 16-core Xeon (BENCHMARKS.md), before the calibration step was added: 3 min 46 s;
# in run 9 there, every step before Hogwild! took 3 min 37 s, and Hogwild! (30 epochs,
# three seeds, five thread counts) had not finished 80 s later: allow 8 minutes or more.
set -uo pipefail
out=${1:?usage: benchmarks/many_cores.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export JAX_PLATFORMS=cpu      # the CPU is what is compared, also where JAX sees a GPU
export CUDA_VISIBLE_DEVICES=""
NUMBA_CACHE_DIR=$(mktemp -d)  # empty: the compile below is a cold one
export NUMBA_CACHE_DIR
unset PYTHONDONTWRITEBYTECODE
exec > >(tee -a "$out/log.txt") 2>&1

cores=$("$py" -c "import os; print(len(os.sched_getaffinity(0)))")
threads="1"
for t in 2 4 8 16 32 64 128; do
    [ "$t" -lt "$cores" ] && threads="$threads $t"
done
[ "$cores" -gt 1 ] && threads="$threads $cores"
more=${threads#1 }  # the thread counts above one

step() {  # step SECONDS NAME COMMAND...: time-limited, timed, its status said
    local limit=$1 name=$2 start status
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit} s): $*"
    start=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@"
    status=$?
    echo "=== $name: exit status $status after $(( ($(date +%s%N) - start) / 1000000 )) ms"
}

echo "=== machine"
date -u
lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core|Socket|NUMA node|L2|L3|MHz|Flags" \
    | cut -c1-200
echo "affinity: $cores cores; thread counts: $threads"
cat /sys/fs/cgroup/cpu.max 2>/dev/null | sed 's/^/cgroup cpu.max: /'
uptime
"$py" - <<'EOF'
import sys, numpy, numba, llvmlite
print("python", sys.version.split()[0], "numpy", numpy.__version__, "numba",
      numba.__version__, "llvmlite", llvmlite.__version__, "numba threads",
      numba.config.NUMBA_NUM_THREADS)
for name in ("torch", "jax", "pytest", "pytest_benchmark", "threadpoolctl"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except ImportError:
        print(name, "not installed")
EOF

step 240 "cold compile of the book's kernels" "$py" -m fastgd compile --sizes 784,30,10
# shellcheck disable=SC2086  # the thread counts are words
step 300 "fastgd, every m, threads $threads" "$py" benchmarks/run.py --out "$out/fastgd.json" \
    --impl fastgd --threads $threads --rounds 3 --skip-start \
    --keyword "float32 and not 784x100x10 and not busy and not import"
step 300 "NumPy, PyTorch and JAX at 1 and $cores threads" "$py" benchmarks/run.py \
    --out "$out/baselines.json" --impl numpy torch jax --threads 1 "$cores" --rounds 3 \
    --skip-start --keyword "float32 and not 784x100x10"
# shellcheck disable=SC2086
step 120 "stages at m = 100" sh -c "'$py' benchmarks/stages.py --threads $threads \
    --rounds 3 > '$out/stages.md'"
# shellcheck disable=SC2086
step 90 "auto's calibration" sh -c "'$py' benchmarks/calibration.py --threads $more \
    --modes 10 100 1000 full --repeats 3 > '$out/calibration.md'"
step 120 "the model from 1 and 2 threads" "$py" benchmarks/threads_model.py --rounds 5 \
    --out "$out/model.json" --markdown "$out/model.md"
# shellcheck disable=SC2086
step 240 "Hogwild!, threads 1 $more" "$py" benchmarks/hogwild.py --out "$out/hogwild.json" \
    --speed-epochs 4 --hogwild-threads $more
echo "=== done $(date -u +%H:%M:%S)"
rm -rf "$NUMBA_CACHE_DIR"
