"""Tests for fastgd.noise: gradient noise against a direct NumPy computation from the
book's backprop (fastgd.reference), streaming, the 1/sqrt(m) law, errors, and the CLI hook."""

import argparse
import json
import importlib.util
import math
import sys

import numpy as np
import pytest

import fastgd
from fastgd import noise, plots
from fastgd.cli import main
from fastgd.cli import noise as noise_cli
from fastgd.noise import gradient_noise, iter_gradients, sample_batches

from helpers import book_weights, random_data
from fastgd.reference import backprop

SIZES = [6, 5, 3]


@pytest.fixture(scope="module")
def small():
    net = fastgd.Network(SIZES, seed=1, dtype="float64")
    X, y = random_data(SIZES, 40, seed=2)
    return net, X, y


def reference_gradients(net, X, y):
    """Per-example gradients of C_x from the book's backprop, flattened (real parameters only)."""
    weights, biases = book_weights(net)
    rows = []
    for x, label in zip(X, y):
        nabla_b, nabla_w = backprop(weights, biases, x, label)
        rows.append(np.concatenate([b.ravel() for b in nabla_b] + [w.ravel() for w in nabla_w]))
    return np.array(rows)


def test_full_gradient_trace_and_noise_scale_match_numpy(small):
    net, X, y = small
    g = reference_gradients(net, X, y)
    G = g.mean(axis=0)
    trace = np.mean(np.sum((g - G) ** 2, axis=1))           # population version
    r = gradient_noise(net, X, y, batch_sizes=(1, 5), n_batches=3, seed=0)
    assert r.n == 40 and r.batch_sizes == (1, 5) and r.n_batches == 3
    assert r.gradient_norm == pytest.approx(np.linalg.norm(G), rel=1e-10)
    assert r.trace_sigma == pytest.approx(trace, rel=1e-10)
    assert r.noise_scale == pytest.approx(trace / (G @ G), rel=1e-10)
    assert r.notes == ()                                    # one block: not streamed


def test_mini_batch_errors_and_cosines_match_numpy_for_the_sampled_batches(small):
    net, X, y = small
    g = reference_gradients(net, X, y)
    G = g.mean(axis=0)
    batch_sizes, n_batches = (1, 3, 7, 40), 6
    r = gradient_noise(net, X, y, batch_sizes=batch_sizes, n_batches=n_batches, seed=5)
    for i, (m, batches) in enumerate(zip(batch_sizes,
                                         sample_batches(40, batch_sizes, n_batches, seed=5))):
        assert batches.shape == (n_batches, m)
        assert all(len(set(b)) == m for b in batches)        # without replacement
        g_m = g[batches].mean(axis=1)
        errors = np.linalg.norm(g_m - G, axis=1) / np.linalg.norm(G)
        cosines = g_m @ G / (np.linalg.norm(g_m, axis=1) * np.linalg.norm(G))
        np.testing.assert_allclose(r.errors[i], errors, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.cosines[i], cosines, rtol=1e-9)
        assert r.mean_error[i] == pytest.approx(errors.mean(), rel=1e-9, abs=1e-12)
        assert r.std_error[i] == pytest.approx(errors.std(), rel=1e-8, abs=1e-12)
        assert r.rms_error[i] == pytest.approx(math.sqrt(np.mean(errors ** 2)), rel=1e-9,
                                               abs=1e-12)
        assert r.mean_cosine[i] == pytest.approx(cosines.mean(), rel=1e-9)
        fpc = (40 - m) / 39
        assert r.predicted_error[i] == pytest.approx(math.sqrt(r.noise_scale / m * fpc))
    assert r.mean_error[-1] < 1e-12 and r.predicted_error[-1] == 0   # m = n is G itself


def test_streaming_in_tiny_blocks_gives_the_same_numbers(small):
    net, X, y = small
    args = dict(batch_sizes=(1, 3, 7, 40), n_batches=5, seed=3)
    whole = gradient_noise(net, X, y, **args)
    for max_bytes in (1, 7 * noise.bytes_per_example(net)):    # blocks of 1 and of 7
        streamed = gradient_noise(net, X, y, max_bytes=max_bytes, **args)
        assert streamed.n_blocks > 1 and streamed.notes[0].startswith("streamed:")
        for name in ("gradient_norm", "trace_sigma", "noise_scale"):
            assert getattr(streamed, name) == pytest.approx(getattr(whole, name), rel=1e-12)
        for a, b in zip(streamed.errors + streamed.cosines, whole.errors + whole.cosines):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_iter_gradients_streams_the_kernels_rows_in_float64(small):
    net, X, y = small
    block = noise.block_size(net, 3 * noise.bytes_per_example(net))
    assert block == 3
    parts = list(iter_gradients(net, X, y, max_bytes=3 * noise.bytes_per_example(net)))
    assert [(a, b) for a, b, _ in parts] == [(s, min(40, s + 3)) for s in range(0, 40, 3)]
    assert all(rows.dtype == np.float64 for _, _, rows in parts)
    np.testing.assert_array_equal(np.concatenate([rows for _, _, rows in parts]),
                                  net.gradients(X, y))
    chosen = np.array([5, 1, 5, 39])
    rows = np.concatenate([r for _, _, r in iter_gradients(net, X, y, indices=chosen,
                                                           max_bytes=1)])
    np.testing.assert_array_equal(rows, net.gradients(X[chosen], y[chosen]))


def test_float32_networks_are_accumulated_in_float64(small):
    _, X, y = small
    net64 = fastgd.Network(SIZES, seed=1, dtype="float64")
    net32 = fastgd.Network(SIZES, seed=1, dtype="float32")
    r64 = gradient_noise(net64, X, y, batch_sizes=(1, 10), n_batches=4, seed=0)
    r32 = gradient_noise(net32, X, y, batch_sizes=(1, 10), n_batches=4, seed=0)
    assert r32.noise_scale == pytest.approx(r64.noise_scale, rel=1e-4)
    np.testing.assert_allclose(r32.mean_error, r64.mean_error, rtol=1e-4)


def test_the_mean_relative_error_follows_the_one_over_sqrt_m_law():
    sizes = [20, 10, 4]
    X, y = random_data(sizes, 3000, seed=3)
    net = fastgd.Network(sizes, seed=2, dtype="float64")
    r = gradient_noise(net, X, y, batch_sizes=(1, 4, 16, 64), n_batches=400, seed=0)
    ratio_rms = r.rms_error / r.predicted_error
    ratio_mean = r.mean_error / r.predicted_error
    # The law is exact for the mean square (up to sampling noise over 400 batches) ...
    assert np.all(abs(ratio_rms - 1) < 0.08), ratio_rms
    # ... and the mean lies a little below it (Jensen), within a few per cent here.
    assert np.all((ratio_mean > 0.85) & (ratio_mean < 1.05)), ratio_mean
    # Quadrupling m halves the error.
    assert np.all(abs(r.mean_error[1:] / r.mean_error[:-1] - 0.5) < 0.08)
    assert np.all(np.diff(r.mean_cosine) > 0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_sizes=(0, 10)), ValueError, "batch_sizes must be >= 1"),
    (dict(batch_sizes=(41,)), ValueError, "batch_sizes must be <= 40"),
    (dict(batch_sizes=(2.5,)), TypeError, "batch_sizes must be an integer"),
    (dict(batch_sizes=(True,)), TypeError, "batch_sizes must be an integer"),
    (dict(batch_sizes=()), ValueError, "batch_sizes must hold at least one"),
    (dict(batch_sizes=5), TypeError, "batch_sizes must be a list"),
    (dict(batch_sizes=(4, 4)), ValueError, "batch_sizes must not repeat"),
    (dict(batch_sizes=(1,), n_batches=0), ValueError, "n_batches must be >= 1"),
    (dict(batch_sizes=(1,), n_batches=1.0), TypeError, "n_batches must be an integer"),
    (dict(batch_sizes=(1,), seed=-1), ValueError, "seed must be >= 0"),
    (dict(batch_sizes=(1,), max_bytes=0), ValueError, "max_bytes must be >= 1"),
])
def test_bad_arguments_are_named(small, kwargs, error, match):
    net, X, y = small
    with pytest.raises(error, match=match):
        gradient_noise(net, X, y, **kwargs)


def test_bad_data_and_weights_are_refused(small):
    net, X, y = small
    with pytest.raises(ValueError, match=r"data\[0\] \(X\) must have shape"):
        gradient_noise(net, X[:, :4], y)
    with pytest.raises(ValueError, match=r"data\[1\] \(y\) labels must be in 0..2"):
        gradient_noise(net, X, y + 3)
    with pytest.raises(ValueError, match="data must hold at least one example"):
        gradient_noise(net, X[:0], y[:0])
    broken = fastgd.Network(SIZES, seed=1, dtype="float64")
    broken.params[0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        gradient_noise(broken, X, y)


def test_result_as_json_and_table(small):
    net, X, y = small
    r = gradient_noise(net, X, y, batch_sizes=(1, 10), n_batches=4, seed=0, label="start")
    d = json.loads(json.dumps(r.to_dict()))
    assert d["label"] == "start" and [b["m"] for b in d["batches"]] == [1, 10]
    assert d["noise_scale"] == pytest.approx(r.noise_scale)
    assert d["batches"][1]["fpc"] == pytest.approx(30 / 39)
    lines = r.table()
    assert lines[0].startswith("start: 40 examples, |G| = ")
    assert "B_simple" in lines[0] and lines[2].split()[0] == "1" and lines[3].split()[0] == "10"


def test_plot_refuses_to_overwrite_and_needs_matplotlib(small, tmp_path, monkeypatch):
    net, X, y = small
    r = gradient_noise(net, X, y, batch_sizes=(1, 10), n_batches=4, seed=0)
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"keep")
    if importlib.util.find_spec("matplotlib") is not None:
        with pytest.raises(FileExistsError, match="overwrite=True"):
            plots.save(plots.noise(r), existing)
    assert existing.read_bytes() == b"keep"
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # as if it were not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'fastgd\[plot\]'"):
        plots.noise(r)


def test_plot_writes_a_png(small, tmp_path):
    pytest.importorskip("matplotlib")
    net, X, y = small
    first = gradient_noise(net, X, y, batch_sizes=(1, 4, 10), n_batches=4, seed=0, label="a")
    net.SGD((X, y), 1, 5, 3.0, verbose=False)
    second = gradient_noise(net, X, y, batch_sizes=(1, 4, 10), n_batches=4, seed=0, label="b")
    path = tmp_path / "noise.png"
    assert plots.save(plots.noise([first, second]), path) == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plots.save(plots.noise(first), path, overwrite=True)


# -- the CLI hook ---------------------------------------------------------------------------

def parser():
    p = argparse.ArgumentParser(prog="fastgd")
    noise_cli.add_parsers(p.add_subparsers(dest="command"))
    return p


QUICK = ["noise", "--sizes", "784,10,10", "--examples", "2000", "--train-epochs", "1",
         "--batches", "20", "--batch-sizes", "1,10,100", "--seed", "1"]


def test_cli_prints_both_stages_and_writes_the_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "noise.png"
    args = parser().parse_args(QUICK + ["--out", str(out)])
    assert args.func is noise_cli.noise_command
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "at initialisation: 2000 examples, |G| = " in text
    assert "after 1 epoch: 2000 examples" in text
    assert text.count("B_simple = tr(Sigma)/|G|^2 = ") == 2
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["1"], ["10"],
                                                                              ["100"])]
    assert len(rows) == 6 and all(len(row) == 7 for row in rows)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    args = parser().parse_args(QUICK + ["--out", str(out), "--train-epochs", "0"])
    with pytest.raises(FileExistsError, match="--overwrite"):
        args.func(args)


def test_cli_json_without_a_plot(capsys):
    args = parser().parse_args(QUICK + ["--json", "--no-plot", "--train-epochs", "0",
                                        "--dtype", "float64"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["seed"] == 1 and report["sizes"] == [784, 10, 10]
    [result] = report["results"]
    assert result["label"] == "at initialisation" and result["n"] == 2000
    assert [b["m"] for b in result["batches"]] == [1, 10, 100]
    assert result["noise_scale"] > 0


def test_cli_errors_name_the_option(capsys, monkeypatch, tmp_path):
    for bad in (["--batch-sizes", "1,x"], ["--batch-sizes", "0,10"], ["--batches", "0"],
                ["--sizes", "784"], ["--batch-sizes", "10,10"]):
        with pytest.raises(SystemExit):
            parser().parse_args(["noise"] + bad)
        assert f"argument {bad[0]}" in capsys.readouterr().err
    args = parser().parse_args(["noise", "--examples", "50", "--batch-sizes", "1,100",
                                "--no-plot"])
    with pytest.raises(ValueError, match="--batch-sizes 100 is more than the 50"):
        args.func(args)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["noise", "--out", str(tmp_path / "x.png")]) == 2
    assert "pip install 'fastgd[plot]' (or pass --no-plot)" in capsys.readouterr().err


def test_progress_reports_each_block_of_each_stage(small):
    net, X, y = small
    events = []
    gradient_noise(net, X, y, batch_sizes=(1, 3), n_batches=5, seed=0,
                   max_bytes=7 * noise.bytes_per_example(net), progress=events.append)
    full = [e for e in events if e["stage"] == "full gradient"]
    assert [e["examples"] for e in full] == [7, 14, 21, 28, 35, 40]
    assert all(e["m"] is None and e["of"] == 40 for e in full)
    for m in (1, 3):
        mine = [e for e in events if e["m"] == m]
        assert all(e["stage"] == "mini-batches" and e["of"] == 5 * m for e in mine)
        assert mine[-1]["examples"] == 5 * m
    assert all(b["seconds"] >= a["seconds"] for a, b in zip(events, events[1:]))


def test_cli_progress_goes_to_stderr(capsys):
    args = parser().parse_args(QUICK + ["--json", "--no-plot", "--train-epochs", "1"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)                       # stdout holds the JSON only
    assert "noise at initialisation: the full gradient, 2000 / 2000 examples" in captured.err
    assert "noise after 1 epoch: 20 mini-batches of m = 100, 2000 / 2000 examples" \
        in captured.err
    assert "training 1 epoch (m 10, eta 3.0)" in captured.err
