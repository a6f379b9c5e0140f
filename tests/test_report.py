"""benchmarks/report.py on a small fake pytest-benchmark JSON (no benchmark is run)."""

import importlib.util
import json
import pathlib
import sys

import pytest

REPORT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_report():
    spec = importlib.util.spec_from_file_location("benchmark_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = load_report()

MACHINE = {"cpu": "Fake CPU 9000", "cores": 2, "numba": "0.60.0", "numpy": "2.0.0",
           "threading_layer": "omp", "numba_max_threads": 2, "smoke": False,
           "command": "python benchmarks/run.py --out bench.json"}
MODE_M = {"online": 1, "m=10": 10, "m=100": 100, "m=1000": 1000, "full batch": None}
GROUP = {"fastgd auto": "fastgd", "fastgd serial": "fastgd", "fastgd": "fastgd",
         "numpy matrix": "numpy", "network.py": "network.py", "pytorch": "torch", "jax": "jax"}
BOOK, WIDER = (784, 30, 10), (784, 100, 10)

# (impl, mode, threads, examples, median seconds[, dtype, sizes]); float32 784x30x10 unless
# given.  Missing on purpose: pytorch at 2 threads, everything online at 2 threads, JAX and
# PyTorch online, numpy matrix at m=1000, and at 2 threads in full batch.
ENTRIES = [
    ("fastgd auto", "m=10", 1, 50_000, 0.5),
    ("fastgd serial", "m=10", 1, 50_000, 0.55),
    ("numpy matrix", "m=10", 1, 50_000, 2.0),
    ("network.py", "m=10", 1, 2_000, 0.5),         # 12.5 s per epoch
    ("pytorch", "m=10", 1, 20_000, 1.0),           # 2.5 s per epoch
    ("jax", "m=10", 1, 50_000, 0.9),               # the fastest rival: 1.8x, short of 2x
    ("fastgd auto", "m=10", 2, 50_000, 0.4),
    ("numpy matrix", "m=10", 2, 50_000, 1.0),
    ("jax", "m=10", 2, 50_000, 0.5),               # 1.25x: a miss of (a)
    ("fastgd auto", "online", 1, 50_000, 1.0),
    ("fastgd serial", "online", 1, 50_000, 0.98),
    ("numpy matrix", "online", 1, 5_000, 0.5),     # 5 s per epoch
    ("fastgd auto", "m=1000", 1, 50_000, 0.3),
    ("fastgd auto", "m=1000", 2, 50_000, 0.15),    # 2x from 1 thread to 2
    ("fastgd auto", "full batch", 1, 50_000, 0.2),
    ("fastgd auto", "full batch", 2, 50_000, 0.125),  # 1.6x: a miss of (c)
    ("fastgd serial", "full batch", 1, 50_000, 0.21),
    ("numpy matrix", "full batch", 1, 50_000, 0.25),
    ("fastgd auto", "m=10", 1, 50_000, 0.6, "float64"),
    ("numpy matrix", "m=10", 1, 50_000, 1.2, "float64"),
    ("fastgd auto", "m=100", 1, 50_000, 1.0, "float32", WIDER),
    ("jax", "m=100", 1, 50_000, 0.8, "float32", WIDER),
]
# Under load: (impl, mode, threads, median seconds of a 50,000-example epoch).
BUSY = [
    ("fastgd auto", "m=100", 2, 0.3),
    ("fastgd serial", "m=100", 1, 0.3),            # 1.0x: met
    ("fastgd auto", "m=1000", 2, 0.5),
    ("fastgd serial", "m=1000", 1, 0.4),           # 1.25x: a miss of (d)
]


# test_start.py's whole-process runs: {caches: {implementation: [(wall s, epoch s), ...]}}.
START = {
    "cold": {"fastgd": [(30.0, 5.0), (25.0, 6.0), (28.0, 5.5)],      # median 28
             "fastgd now": [(50.0, 1.0), (52.0, 1.1), (48.0, 0.9)],  # median 50
             "jax": [(10.0, 2.0), (11.0, 2.2), (9.0, 1.8)],          # median 10
             "numpy": [(4.0, 2.5), (4.0, 2.5), (4.0, 2.5)]},
    "warm": {"fastgd": [(3.0, 0.5), (3.5, 0.6), (2.5, 0.4)],         # median 3
             "jax": [(10.0, 2.0), (12.0, 2.0), (11.0, 2.0)],         # median 11
             "numpy": [(4.0, 2.5), (5.0, 2.5), (4.0, 2.5)]},         # median 4
}
# how fastgd's cold default rounds went (test_start.py reads it from the Trainer)
COLD_COMPILES = ["still compiling at exit", "switched to", "still compiling at exit"]
# test_start.py's CLI runs: {caches: (median seconds to the first epoch line, the line)}
CLI = {"cold": (40.0, "Epoch 0: 9000 / 10000  (6.00 s)"),
       "warm": (3.5, "Epoch 0: 9000 / 10000  (0.50 s)")}


def start_result(key, cache, wall, epoch, round_):
    """One process's result as benchmarks/new_user.py prints it (wall_s added by
    test_start.py): the script ends 1 s before the process; fastgd's kernels are
    ready (the others' epoch done) halfway between building and the end."""
    fastgd = key.startswith("fastgd")
    marks = {"imported": 0.5, "loaded": 1.5, "built": 2.0, "evaluated": wall - 1.0}
    marks["trainer_ready" if fastgd else "trained"] = (2.0 + wall - 1.0) / 2
    result = {"impl": key.split()[0], "wall_s": wall, "in_script_s": wall - 1.0,
              "epoch_s": epoch, "marks": marks, "accuracy": 0.9 if fastgd else 0.9123,
              "correct": 9000, "total": 10_000}
    if fastgd:
        cold_default = cache == "cold" and key == "fastgd"
        result.update(kernel_in_use="serial",
                      started_on="generic" if cold_default else "specialised",
                      background_compile=COLD_COMPILES[round_] if cold_default else "none")
    return result


def start_entries():
    """test_start.py's four benchmarks: whole process and CLI, cold and warm."""
    entries = []
    for cache, impls in START.items():
        runs = {key: {"wall_s": [w for w, _ in rounds], "epoch_s": [e for _, e in rounds],
                      "results": [start_result(key, cache, w, e, i)
                                  for i, (w, e) in enumerate(rounds)]}
                for key, rounds in impls.items()}
        entries.append({"name": f"test_whole_process[{cache}]", "group": "cold and warm start",
                        "stats": {"median": 60.0, "rounds": 3},
                        "extra_info": dict(MACHINE, process="cold and warm start",
                                           impl="every implementation in turn",
                                           start="whole process", caches=cache,
                                           mini_batch_size=10, eta=3.0, train_examples=50_000,
                                           test_examples=10_000, start_rounds=3, runs=runs)})
    for cache, (median, line) in CLI.items():
        entries.append({"name": f"test_cli_first_epoch[{cache}]", "group": "cold and warm start",
                        "stats": {"median": median, "rounds": 3},
                        "extra_info": dict(MACHINE, process="cold and warm start",
                                           impl="fastgd train (CLI)", start="first epoch line",
                                           caches=cache, epoch_lines=[line, line, line],
                                           cli_command="python -m fastgd train --epochs 1",
                                           train_examples=50_000,
                                           floor_s=[] if cache == "cold" else [1.0, 0.5, 2.0])})
    return entries


def seconds(impl, mode, threads, dtype="float32", sizes=BOOK):
    """s per 50,000-example epoch of one entry."""
    for i, m, t, examples, median, *rest in ENTRIES:
        if (i, m, t, *(rest or ["float32", BOOK])) == (impl, mode, threads, dtype, sizes):
            return median * 50_000 / examples
    raise KeyError((impl, mode, threads, dtype, sizes))


def process_facts(impl, threads):
    """What benchmarks/run.py's process for impl at `threads` threads records."""
    info = dict(MACHINE, process=f"{GROUP[impl]}, {threads} thread"
                + ("s" if threads > 1 else ""), affinity=[0] if threads == 1 else [0, 1])
    if impl in ("numpy matrix", "network.py"):
        info["blas"] = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.27",
                         "architecture": "SkylakeX", "num_threads": threads,
                         "library": "libscipy_openblas64_.so", "folder": "numpy.libs"},
                        {"user_api": "openmp", "internal_api": "openmp", "version": None,
                         "architecture": None, "num_threads": 2, "library": "libgomp.so"}]
        if threads == 1:
            info.update(openblas_env={"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None},
                        removed_env=["OPENBLAS_CORETYPE"])
        else:
            info.update(openblas_env={"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": None},
                        removed_env=[])
    return info


def entry(impl, mode, threads, examples, median, dtype="float32", sizes=BOOK, **extra):
    info = dict(process_facts(impl, threads), impl=impl, mode=mode,
                mini_batch_size=MODE_M[mode], threads=threads, dtype=dtype, sizes=list(sizes),
                examples=examples, **extra)
    if impl.startswith("fastgd"):
        info.update(kernel="serial" if threads == 1 else "parallel", kernel_reason="test")
    return {"name": f"test_{impl}_{mode}_{threads}", "group": mode,
            "stats": {"median": median, "mean": median, "rounds": 3}, "extra_info": info}


def fake_json(entries=ENTRIES, busy=BUSY, start=True):
    benchmarks = [entry(*e) for e in entries]
    if start:
        benchmarks += start_entries()
    benchmarks += [entry(impl, mode, threads, 50_000, median, busy=True)
                   for impl, mode, threads, median in busy]
    benchmarks.append({
        "name": "test_import_and_compile[cold]", "group": "import and JIT compile",
        "stats": {"median": 4.25, "rounds": 1},
        "extra_info": dict(process_facts("fastgd", 2), impl="fastgd import+compile (cold cache)",
                           cache="cold", import_s=0.5, first_serial_s=2.5,
                           first_parallel_s=1.25)})
    return {"machine_info": {"python_version": "3.12.0", "python_implementation": "CPython",
                             "system": "Linux", "release": "6.0"},
            "commit_info": {"id": "abc123", "branch": "main", "dirty": False},
            "datetime": "2025-01-02T03:04:05.000000+00:00", "version": "4.0.0",
            "benchmarks": benchmarks}


@pytest.fixture
def bench_json(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(fake_json()))
    return path


def run_report(bench_json, tmp_path, *extra):
    md = tmp_path / "report.md"
    assert report.main([str(bench_json), "--out", str(tmp_path / "plots"),
                        "--markdown", str(md), *extra]) == 0
    return md.read_text()


def target_line(text, name):
    lines = [line for line in text.splitlines() if line.startswith(f"| {name}")]
    assert len(lines) == 1, (name, lines)
    return lines[0]


def cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_line(text, mode, impl, threads, dtype="float32", network="784x30x10"):
    start = f"| {mode} | {dtype} | {network} | {impl} | {threads} |"
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, lines)
    return cells(lines[0])


def side_by_side_line(text, heading, m):
    """The row for m in the side-by-side table under `### heading`."""
    section = text.split(f"### {heading}\n\n")[1].split("\n\n")[0]
    lines = [line for line in section.splitlines() if line.startswith(f"| {m} |")]
    assert len(lines) == 1, (heading, m, section)
    return cells(lines[0])


def test_header_and_compile_table(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    assert "Fake CPU 9000, 2 cores" in text
    assert "threading layer omp" in text and "numba 0.60.0" in text
    assert "2025-01-02 03:04 UTC" in text
    assert "Benchmark command: `python benchmarks/run.py --out bench.json`" in text
    assert f"Produced by: `python benchmarks/report.py {bench_json}" in text
    assert "medians" in text
    assert "| cold | 0.500 | 2.50 | 1.25 | 4.25 |" in text


def test_blas_and_processes(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    blas = next(line for line in text.splitlines() if line.startswith("- BLAS"))
    library = "openblas 0.3.27 (SkylakeX kernel, numpy.libs/libscipy_openblas64_.so)"
    assert (f"numpy, 1 thread and network.py, 1 thread: {library} at 1 thread; "
            "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (benchmarks/run.py removed "
            "OPENBLAS_CORETYPE)") in blas
    assert f"numpy, 2 threads: {library} at 2 threads; set: OPENBLAS_CORETYPE=Haswell" in blas
    assert "libgomp" not in blas
    assert "fastgd" not in blas and "jax" not in blas  # they ran no NumPy baseline
    processes = next(line for line in text.splitlines() if line.startswith("- Processes"))
    assert "fastgd, 1 thread: pinned to CPU 0" in processes
    assert "fastgd, 2 threads: CPUs 0-1 (not pinned)" in processes
    assert "jax, 1 thread: pinned to CPU 0" in processes


def test_side_by_side(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    head = [line for line in text.splitlines() if line.startswith("| m | fastgd 1 thr")][0]
    assert cells(head) == ["m", "fastgd 1 thr", "NumPy 1", "PyTorch 1", "JAX 1", "fastgd vs best",
                           "fastgd 2 thr", "NumPy 2", "PyTorch 2", "JAX 2", "fastgd vs best"]

    row = side_by_side_line(text, "784x30x10, float32", "10")
    assert row == ["10", "0.500", "2.00", "2.50", "0.900", "1.8x (JAX)",
                   "0.400", "1.00", "not measured", "0.500", "1.2x (JAX)"]
    row = side_by_side_line(text, "784x30x10, float32", "1 (online)")
    assert row[1:6] == ["1.00", "5.00", "not measured", "not measured", "5.0x (NumPy)"]
    assert row[6:] == ["not measured"] * 5
    row = side_by_side_line(text, "784x30x10, float32", "full")
    assert row[5] == f"{seconds('numpy matrix', 'full batch', 1) / 0.2:.2g}x (NumPy)"
    assert row[6] == "0.125" and row[10] == "not measured"  # no rival at 2 threads

    row = side_by_side_line(text, "784x30x10, float64", "10")
    assert row[1:6] == ["0.600", "1.20", "not measured", "not measured", "2.0x (NumPy)"]
    row = side_by_side_line(text, "784x100x10, float32", "100")
    assert row[1:6] == ["1.00", "not measured", "not measured", "0.800", "0.80x (JAX)"]
    row = side_by_side_line(text, "784x100x10, float32", "10")
    assert row[1:] == ["not measured"] * 10


def test_main_table_ratios(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    auto = 50_000 / seconds("fastgd auto", "m=10", 1)
    row = table_line(text, "m=10", "fastgd auto", 1)
    assert row[6] == f"{auto:,.0f}"                                             # examples/s
    assert row[7] == "0.500"                                                    # s/epoch
    assert row[8] == f"{seconds('numpy matrix', 'm=10', 1) / 0.5:.1f}x"        # 4.0x
    assert row[9] == f"{seconds('network.py', 'm=10', 1) / 0.5:.0f}x"          # 25x (a slice)
    assert row[10] == f"{seconds('pytorch', 'm=10', 1) / 0.5:.1f}x"            # 5.0x
    assert row[11] == f"{seconds('jax', 'm=10', 1) / 0.5:.1f}x"                # 1.8x
    assert row[12] == "—"                                                       # itself

    row = table_line(text, "online", "fastgd auto", 1)
    assert row[9] == row[10] == row[11] == "—"            # no network.py, pytorch, jax online

    row = table_line(text, "full batch", "fastgd auto", 2)
    assert row[12] == f"{0.2 / 0.125:.1f}x"                                     # 1.6x
    assert row[8] == "—"                                                        # no numpy at 2t

    # the busy-machine runs are not mixed into the idle results
    assert not [line for line in text.split("## Busy")[0].splitlines()
                if line.startswith("| m=100 | float32 | 784x30x10 |")]

    modes = [line.split("|")[1].strip() for line in text.splitlines()
             if line.startswith("| ") and "float32" in line]
    order = ["online", "m=10", "full batch"]
    assert [m for m in modes if m in order] == sorted((m for m in modes if m in order),
                                                      key=order.index)


def test_busy_table(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    section = text.split("## Busy machine")[1].split("##")[0]
    assert "| 100 | 0.300 | 2 | parallel | 0.300 | 1.00x | not measured | not measured |" in section
    assert "| 1000 | 0.500 | 2 | parallel | 0.400 | 1.25x | 0.150 | not measured |" in section


def test_targets(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    a = ("(a) {}, {}, float32 784x30x10: fastgd auto's speed-up over the fastest of "
         "NumPy/PyTorch/JAX")
    line = target_line(text, a.format("m=10", "1 thread"))
    assert "1.80x (JAX 1t 0.900 s vs fastgd auto 1t 0.500 s per epoch)" in line
    assert line.endswith("| ≥ 1.5x | MET |")
    line = target_line(text, a.format("m=10", "2 threads"))
    assert "1.25x (JAX 2t 0.500 s vs fastgd auto 2t 0.400 s per epoch; PyTorch not measured)" \
        in line and line.endswith("| MISS |")
    line = target_line(text, a.format("online", "1 thread"))
    assert "5.00x (NumPy 1t" in line and "PyTorch, JAX not measured" in line
    assert line.endswith("| MET |")
    line = target_line(text, a.format("online", "2 threads"))
    assert "| not measured (NumPy/PyTorch/JAX 2t, fastgd auto 2t) |" in line
    assert line.endswith("| not measured |")
    line = target_line(text, a.format("m=1000", "2 threads"))
    assert "not measured (NumPy/PyTorch/JAX 2t)" in line and line.endswith("| not measured |")

    line = target_line(text, "(b) m=10, 1 thread")
    assert "1.80x (JAX 1t 0.900 s vs fastgd auto 1t 0.500 s per epoch)" in line
    assert line.endswith("| ≥ 2x | MISS |")

    line = target_line(text, "(c) m=1000, float32 784x30x10: fastgd auto's speed-up from 1 "
                             "thread to 2")
    assert "2.00x (fastgd auto 1t 0.300 s vs fastgd auto 2t 0.150 s" in line
    assert line.endswith("| ≥ 1.7x | MET |")
    line = target_line(text, "(c) full batch")
    assert "1.60x" in line and line.endswith("| MISS |")

    line = target_line(text, "(d) busy machine, m=100,")
    assert "1.00x (fastgd auto 2t 0.300 s vs fastgd serial 1t 0.300 s per epoch)" in line
    assert line.endswith("| ≤ 1.2x | MET |")
    line = target_line(text, "(d) busy machine, m=1000")
    assert "1.25x" in line and line.endswith("| ≤ 1.2x | MISS |")


def test_busy_target_not_measured(tmp_path):
    """Without a serial run under load, (d) cannot be judged; every m is listed
    even with no busy run at all."""
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(fake_json(busy=[("fastgd auto", "m=100", 2, 0.3)])))
    text = run_report(path, tmp_path)
    line = target_line(text, "(d) busy machine, m=100,")
    assert "not measured (fastgd serial 1t)" in line and line.endswith("| not measured |")
    line = target_line(text, "(d) busy machine, m=1000")
    assert "not measured (fastgd auto, fastgd serial 1t)" in line
    for mode in ("online", "m=10", "full batch"):
        assert "not measured" in target_line(text, f"(d) busy machine, {mode},")
    assert "| 100 | 0.300 | 2 | parallel | not measured | — |" in text


def test_nothing_measured(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": []}))
    text = run_report(path, tmp_path)
    checks = [line for line in text.split("## Targets")[1].splitlines()
              if line.startswith("| (")]
    assert len(checks) == 10 + 1 + 2 + 5  # (d): one per m
    assert all(line.endswith("| not measured |") for line in checks)
    assert "Import and compile: not measured." in text
    assert "Cold and warm start: not measured." in text
    assert "Busy machine: not measured." in text
    assert "- BLAS (NumPy and network.py): not measured" in text


def start_section(text):
    return text.split("## Cold and warm start\n")[1].split("\n## ")[0]


WHOLE, RATIOS, PHASES, CLI_TABLE = ("| Implementation | cold: process", "| Process time",
                                    "| Implementation | caches", "| caches |")


def row(section, table, first_cells):
    """The cells of the one row that starts with first_cells in the table of
    section whose header starts with `table`."""
    lines = section.split("\n" + table)[1].split("\n\n")[0].splitlines()[2:]
    start = "| " + " | ".join(first_cells) + " |"
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, (start, lines)
    return cells(found[0])


def test_start_whole_process_table(bench_json, tmp_path):
    section = start_section(run_report(bench_json, tmp_path))
    assert "one epoch of 50,000 examples at m = 10, eta = 3.0" in section
    assert "Medians of 3 rounds" in section
    assert "its warm processes are cold starts again" in section  # JAX has no disk cache
    assert row(section, WHOLE, ["fastgd (default)"]) == [
        "fastgd (default)", "28.0", "5.50", "3.00", "0.500", "90.00%",
        "cold: generic serial; specialised still compiling at exit (2 of 3 rounds); or "
        "generic, then specialised serial once compiled in the background (1 of 3 rounds); "
        "warm: specialised serial"]
    assert row(section, WHOLE, ["fastgd, FASTGD_SPECIALIZE=now"]) == [
        "fastgd, FASTGD_SPECIALIZE=now", "50.0", "1.00", "not measured", "not measured",
        "90.00%", "cold: specialised serial"]
    assert row(section, WHOLE, ["JAX"])[1:] == ["10.0", "2.00", "11.0", "2.00", "91.23%", "—"]
    # PyTorch was not installed: no row rather than one of "not measured"
    assert "| PyTorch |" not in section.split(RATIOS)[0]


def test_start_ratios_come_from_one_run(bench_json, tmp_path):
    """fastgd's median process time ÷ the other's, within the cold run and
    within the warm run; FASTGD_SPECIALIZE=now only cold (warm, it is the default)."""
    section = start_section(run_report(bench_json, tmp_path))
    assert row(section, RATIOS, ["JAX"]) == ["JAX", "2.80x", f"{3 / 11:.3f}x"]
    assert row(section, RATIOS, ["NumPy (compiles nothing)"])[1:] == ["7.00x", "0.750x"]
    assert row(section, RATIOS, ["PyTorch"]) == ["PyTorch", "not measured", "not measured"]
    assert row(section, RATIOS, ["fastgd, FASTGD_SPECIALIZE=now"])[1:] == ["0.560x", "—"]


def test_start_phases_and_cli(bench_json, tmp_path):
    section = start_section(run_report(bench_json, tmp_path))
    # start and exit 1 s, imports 0.5, MNIST 1.0, build 0.5; then the medians of
    # (wall - 3) / 2 twice for fastgd (kernels ready halfway), wall - 3 for JAX
    assert row(section, PHASES, ["fastgd (default)", "cold"]) == [
        "fastgd (default)", "cold", "1.00", "0.500", "1.00", "0.500", "12.5", "12.5", "28.0"]
    assert row(section, PHASES, ["JAX", "warm"]) == [
        "JAX", "warm", "1.00", "0.500", "1.00", "0.500", "—", "8.00", "11.0"]
    assert "`python -m fastgd train --epochs 1`: seconds from starting the process" in section
    assert row(section, CLI_TABLE, ["cold"]) == ["cold", "40.0", "—", "—", "3",
                                                 "Epoch 0: 9000 / 10000  (6.00 s)"]
    # numba's floor measured after each warm round: the median 1.0 s, the ratio from it
    assert row(section, CLI_TABLE, ["warm"])[:5] == ["warm", "3.50", "1.00", "3.50x", "3"]


def test_start_entries_stay_out_of_the_other_tables(bench_json, tmp_path):
    """The start benchmarks have no mode, no "cache" and no examples/s: they add
    nothing to the training tables or the import+compile table."""
    text = run_report(bench_json, tmp_path)
    with_start = text.split("## Cold and warm start")[0]
    path = tmp_path / "without.json"
    path.write_text(json.dumps(fake_json(start=False)))
    without = run_report(path, tmp_path, "--overwrite").split("## Cold and warm start")[0]
    strip = [line for line in with_start.splitlines() if not line.startswith(("- Processes",
                                                                             "- Produced"))]
    assert strip == [line for line in without.splitlines()
                     if not line.startswith(("- Processes", "- Produced"))]
    assert "cold and warm start: CPUs not recorded" in text


def test_start_only_warm(tmp_path):
    """A smoke run measures warm only: the cold columns read "not measured"."""
    data = fake_json(start=False)
    data["benchmarks"] += [e for e in start_entries() if e["extra_info"]["caches"] == "warm"]
    path = tmp_path / "warm.json"
    path.write_text(json.dumps(data))
    section = start_section(run_report(path, tmp_path))
    assert row(section, WHOLE, ["fastgd (default)"])[1:5] == ["not measured", "not measured",
                                                              "3.00", "0.500"]
    assert row(section, RATIOS, ["JAX"])[1:] == ["not measured", f"{3 / 11:.3f}x"]
    assert "\n| cold |" not in section.split(CLI_TABLE)[1]  # no cold CLI row


def test_refuses_to_overwrite_markdown(bench_json, tmp_path, capsys):
    md = tmp_path / "report.md"
    md.write_text("keep me")
    with pytest.raises(SystemExit) as excinfo:
        report.main([str(bench_json), "--out", str(tmp_path), "--markdown", str(md)])
    assert excinfo.value.code != 0
    assert md.read_text() == "keep me"
    assert "pass --overwrite" in capsys.readouterr().err


def test_overwrites_only_a_report_it_wrote(bench_json, tmp_path, capsys):
    """--overwrite replaces the generated latest.md, never a hand-written file."""
    md = tmp_path / "report.md"
    md.write_text("# Benchmarks\n\nWritten by hand.\n")
    with pytest.raises(SystemExit) as excinfo:
        report.main([str(bench_json), "--out", str(tmp_path), "--markdown", str(md),
                     "--overwrite"])
    assert excinfo.value.code != 0
    assert md.read_text() == "# Benchmarks\n\nWritten by hand.\n"
    assert "was not written by report.py" in capsys.readouterr().err
    md.unlink()
    first = run_report(bench_json, tmp_path)
    assert first.splitlines()[1] == report.GENERATED
    md.write_text(first.replace("Fake CPU 9000", "edited"))
    again = run_report(bench_json, tmp_path, "--overwrite")
    assert "Fake CPU 9000" in again and "edited" not in again


def test_prints_to_stdout_without_markdown(bench_json, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert report.main([str(bench_json), "--out", str(tmp_path / "plots")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# fastgd benchmark report")
    assert "matplotlib is not installed: plots skipped" in err
    assert "matplotlib is not installed: plots skipped" in out
    assert not (tmp_path / "plots").exists()


def test_plots(bench_json, tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")

    def refuse(*args, **kwargs):
        raise AssertionError("report.py chose a matplotlib backend for its importer")
    monkeypatch.setattr(matplotlib, "use", refuse)
    text = run_report(bench_json, tmp_path)
    for name in ("throughput_vs_batch.png", "scaling_vs_threads.png"):
        png = tmp_path / "plots" / name
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"](plots/{name})" in text


def test_number_formats():
    assert report.fmt_rate(1234567.8) == "1,234,568"
    assert report.fmt_sig(0.08904) == "0.0890" and report.fmt_sig(0.9996) == "1.00"
    assert report.fmt_ratio(2.43) == "2.4x" and report.fmt_ratio(None) == "—"
    # rounding must not carry a ratio across its target: 1.6977 is not "1.70x" against 1.7x
    assert report.fmt_close(1.6977, [1.7]) == "1.698x"
    assert report.fmt_close(2.4321, [2]) == "2.43x"
    # and for an upper bound: 1.2004 is over 1.2x
    assert report.fmt_close(1.2004, [1.2], at_most=True) == "1.2004x"
    assert report.cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
