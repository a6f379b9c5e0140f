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
           "threading_layer": "omp", "numba_max_threads": 2, "smoke": False}
MODE_M = {"online": 1, "m=10": 10, "m=100": 100, "m=1000": 1000, "full batch": None}

# (impl, mode, threads, examples, median seconds); float32, 784x30x10.
# Missing on purpose: pytorch online, numpy matrix full batch at 2 threads.
ENTRIES = [
    ("fastgd auto", "m=10", 1, 50_000, 0.5),
    ("fastgd serial", "m=10", 1, 50_000, 0.55),
    ("numpy matrix", "m=10", 1, 50_000, 2.0),
    ("network.py", "m=10", 1, 2_000, 0.5),
    ("pytorch", "m=10", 1, 20_000, 1.0),
    ("fastgd auto", "online", 1, 50_000, 1.0),
    ("fastgd serial", "online", 1, 50_000, 0.98),
    ("numpy matrix", "online", 1, 5_000, 0.5),
    ("fastgd auto", "full batch", 1, 50_000, 0.2),
    ("fastgd auto", "full batch", 2, 50_000, 0.125),
    ("fastgd serial", "full batch", 1, 50_000, 0.21),
    ("numpy matrix", "full batch", 1, 50_000, 0.25),
]


def rate(impl, mode, threads):
    for i, m, t, examples, median in ENTRIES:
        if (i, m, t) == (impl, mode, threads):
            return examples / median
    raise KeyError((impl, mode, threads))


def entry(impl, mode, threads, examples, median):
    info = dict(MACHINE, impl=impl, mode=mode, mini_batch_size=MODE_M[mode], threads=threads,
                dtype="float32", sizes=[784, 30, 10], examples=examples)
    if impl.startswith("fastgd"):
        info.update(kernel="serial" if threads == 1 else "parallel", kernel_reason="test")
    return {"name": f"test_{impl}_{mode}_{threads}", "group": mode,
            "stats": {"median": median, "mean": median, "rounds": 3}, "extra_info": info}


def fake_json(entries=ENTRIES):
    benchmarks = [entry(*e) for e in entries]
    benchmarks.append({
        "name": "test_import_and_compile[cold]", "group": "import and JIT compile",
        "stats": {"median": 4.25, "rounds": 1},
        "extra_info": dict(MACHINE, impl="fastgd import+compile (cold cache)", cache="cold",
                           import_s=0.5, first_serial_s=2.5, first_parallel_s=1.25)})
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


def table_line(text, mode, impl, threads):
    start = f"| {mode} | float32 | 784x30x10 | {impl} | {threads} |"
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, lines)
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def test_header_and_compile_table(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    assert "Fake CPU 9000, 2 cores" in text
    assert "threading layer omp" in text and "numba 0.60.0" in text
    assert "2025-01-02 03:04 UTC" in text
    assert f"Produced by: `python benchmarks/report.py {bench_json}" in text
    assert "medians" in text
    assert "| cold | 0.500 | 2.50 | 1.25 | 4.25 |" in text


def test_main_table_ratios(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    auto = rate("fastgd auto", "m=10", 1)
    cells = table_line(text, "m=10", "fastgd auto", 1)
    assert cells[6] == f"{auto:,.0f}"                                    # examples/s
    assert cells[7] == f"{50_000 / auto:.3f}"                            # s/epoch, 0.500
    assert cells[8] == f"{auto / rate('numpy matrix', 'm=10', 1):.1f}x"  # 4.0x
    assert cells[9] == f"{auto / rate('network.py', 'm=10', 1):.0f}x"    # 25x (a 2,000 slice)
    assert cells[10] == f"{auto / rate('pytorch', 'm=10', 1):.1f}x"      # 5.0x
    assert cells[11] == "—"                                              # itself

    cells = table_line(text, "online", "fastgd auto", 1)
    assert cells[10] == "—"                                              # no pytorch online
    assert cells[9] == "—"                                               # no network.py online

    cells = table_line(text, "full batch", "fastgd auto", 2)
    expected = rate("fastgd auto", "full batch", 2) / rate("fastgd auto", "full batch", 1)
    assert cells[11] == f"{expected:.1f}x"                               # 1.6x
    assert cells[8] == "—"                                               # no numpy at 2 threads

    modes = [line.split("|")[1].strip() for line in text.splitlines()
             if line.startswith("| ") and "float32" in line]
    order = ["online", "m=10", "full batch"]
    assert [m for m in modes if m in order] == sorted((m for m in modes if m in order),
                                                      key=order.index)


def test_targets(bench_json, tmp_path):
    text = run_report(bench_json, tmp_path)
    auto = rate("fastgd auto", "m=10", 1)
    line = target_line(text, "(a) m=10, 1 thread, float32: fastgd auto ÷ numpy matrix")
    assert f"{auto / rate('numpy matrix', 'm=10', 1):.2f}x" in line and line.endswith("| PASS |")
    line = target_line(text, "(a) m=10, 1 thread, float32: fastgd auto ÷ network.py")
    assert f"{auto / rate('network.py', 'm=10', 1):.1f}x" in line and line.endswith("| PASS |")
    line = target_line(text, "(a) m=10, 1 thread, float32: fastgd auto ÷ pytorch")
    assert f"{auto / rate('pytorch', 'm=10', 1):.2f}x" in line and line.endswith("| MISS |")

    online = rate("fastgd auto", "online", 1)
    line = target_line(text, "(b) online, 1 thread, float32: fastgd auto ÷ numpy matrix")
    assert f"{online / rate('numpy matrix', 'online', 1):.2f}x" in line
    assert line.endswith("| MISS |")
    line = target_line(text, "(b) online, 1 thread, float32: fastgd auto ÷ pytorch")
    assert line.endswith("| not measured |") and "not measured (pytorch 1t)" in line

    line = target_line(text, "(c) full batch, float32: fastgd auto 2 threads ÷ 1 thread")
    scaling = rate("fastgd auto", "full batch", 2) / rate("fastgd auto", "full batch", 1)
    assert f"{scaling:.2f}x" in line and line.endswith("| MISS |")
    line = target_line(text, "(c) full batch, float32, 1 thread: fastgd auto ÷ numpy matrix")
    ratio = rate("fastgd auto", "full batch", 1) / rate("numpy matrix", "full batch", 1)
    assert f"{ratio:.2f}x" in line and line.endswith("| PASS |")
    line = target_line(text, "(c) full batch, float32, 2 threads: fastgd auto ÷ numpy matrix")
    assert line.endswith("| not measured |")

    # Only auto's parallel choices decide (d): full batch at 2 threads here.
    decisive = rate("fastgd auto", "full batch", 2) / rate("fastgd serial", "full batch", 1)
    line = target_line(text, "(d)")
    assert f"{decisive:.2f}x at full batch, float32, 2t" in line and line.endswith("| PASS |")
    noise = rate("fastgd auto", "online", 1) / rate("fastgd serial", "online", 1)  # 0.98
    assert f"- {noise:.3f}x at online, float32, 1t, 784x30x10, auto chose serial" in text


@pytest.mark.parametrize("serial_seconds, result", [(0.1, "| MISS |"),
                                                    (0.122, "within noise")])
def test_auto_slower_than_serial(tmp_path, serial_seconds, result):
    """Auto's parallel choice at 2 threads (0.125 s) against serial: a miss beyond 5%."""
    entries = [e if e[:3] != ("fastgd serial", "full batch", 1) else
               ("fastgd serial", "full batch", 1, 50_000, serial_seconds) for e in ENTRIES]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(fake_json(entries)))
    text = run_report(path, tmp_path)
    line = target_line(text, "(d)")
    assert f"{serial_seconds / 0.125:.3f}x at full batch, float32, 2t" in line
    assert result in line


def test_nothing_measured(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"benchmarks": []}))
    text = run_report(path, tmp_path)
    for line in text.split("## Targets")[1].splitlines():
        if line.startswith("| ("):
            assert line.endswith("| not measured |")
    assert "Import and compile: not measured." in text


def test_refuses_to_overwrite_markdown(bench_json, tmp_path):
    md = tmp_path / "report.md"
    md.write_text("keep me")
    with pytest.raises(SystemExit) as excinfo:
        report.main([str(bench_json), "--out", str(tmp_path), "--markdown", str(md)])
    assert excinfo.value.code != 0
    assert md.read_text() == "keep me"
    assert "## Targets" in run_report(bench_json, tmp_path, "--overwrite")


def test_prints_to_stdout_without_markdown(bench_json, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert report.main([str(bench_json), "--out", str(tmp_path / "plots")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# fastgd benchmark report")
    assert "matplotlib is not installed: plots skipped" in err
    assert "matplotlib is not installed: plots skipped" in out
    assert not (tmp_path / "plots").exists()


def test_plots(bench_json, tmp_path):
    pytest.importorskip("matplotlib")
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
