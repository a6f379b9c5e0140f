"""benchmarks/run.py runs benchmarks/test_start.py once, in a process of its own
(no benchmark is run here: the pytest processes are replaced by fakes)."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

RUN = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def load_run():
    # run.py imports its sibling _measure, as it does when run as a script
    sys.path.insert(0, str(RUN.parent))
    spec = importlib.util.spec_from_file_location("benchmark_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load_run()


@pytest.fixture
def started(monkeypatch):
    """The pytest processes run.py would start: (kind, argument list, environment),
    each writing an empty benchmark JSON where run.py expects one."""
    calls = []

    def fake(cmd, cwd=None, env=None, stdout=None, preexec_fn=None):
        json_path = next(a.split("=", 1)[1] for a in cmd if a.startswith("--benchmark-json="))
        with open(json_path, "w") as f:
            json.dump({"benchmarks": [{"name": pathlib.Path(json_path).stem}]}, f)
        kind = "start" if any(a.endswith("test_start.py") for a in cmd) else "epoch"
        calls.append((kind, cmd, env))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(run.subprocess, "run", fake)
    monkeypatch.setattr(run, "cores", lambda: [0, 1])
    return calls


def test_start_runs_once_after_every_thread_count(started, tmp_path):
    out = tmp_path / "bench.json"
    assert run.main(["--out", str(out), "--threads", "1", "2", "--impl", "fastgd", "jax",
                     "--rounds", "2"]) == 0
    kinds = [kind for kind, _, _ in started]
    assert kinds == ["epoch"] * 4 + ["start"]
    _, cmd, env = started[-1]
    assert "--bench-threads" not in cmd and "--impl" not in cmd
    assert env["FASTGD_BENCH_START"] == "fastgd,fastgd now,jax"
    assert env["FASTGD_BENCH_PROCESS"] == "cold and warm start"
    assert env["FASTGD_BENCH_ROUNDS"] == "2"
    for name in run.THREAD_VARIABLES:  # every core: run.py limits no thread pool there
        assert env.get(name) == os.environ.get(name)
    names = [b["name"] for b in json.loads(out.read_text())["benchmarks"]]
    assert names[-1] == "start"


def test_start_maps_every_implementation(started, tmp_path):
    run.main(["--out", str(tmp_path / "b.json"), "--threads", "2", "--smoke"])
    _, _, env = started[-1]
    assert env["FASTGD_BENCH_START"] == "fastgd,fastgd now,numpy,pytorch,jax"
    assert env["FASTGD_BENCH_SMOKE"] == "1"


@pytest.mark.parametrize("argv", [["--skip-start"], ["--impl", "jax", "numpy"]])
def test_start_left_out(started, tmp_path, argv):
    """--skip-start, or no fastgd to start: no test_start.py process."""
    run.main(["--out", str(tmp_path / "b.json"), "--threads", "2", *argv])
    assert [kind for kind, _, _ in started] and "start" not in [k for k, _, _ in started]


def test_keyword_selects_in_every_epoch_process_only(started, tmp_path):
    """--keyword reaches each epoch process as pytest's -k; the start process keeps
    its own benchmarks."""
    run.main(["--out", str(tmp_path / "b.json"), "--threads", "1", "2", "--impl", "fastgd",
              "--keyword", "float32 and not busy"])
    epochs = [cmd for kind, cmd, _ in started if kind == "epoch"]
    assert len(epochs) == 2
    for cmd in epochs:
        assert cmd[cmd.index("-k") + 1] == "float32 and not busy"
    assert all("-k" not in cmd for kind, cmd, _ in started if kind == "start")
