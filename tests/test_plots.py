"""fastgd.plots: learning curves from a training History, save, and the one install hint."""

import sys

import numpy as np
import pytest

import fastgd
from fastgd import plots
from fastgd.training import History

from helpers import random_data

PNG = b"\x89PNG\r\n\x1a\n"


def history(evaluated=True, monitored=True):
    rows = []
    for epoch in range(4):
        row = {"epoch": epoch, "seconds": 0.1, "cost": 0.3 / (epoch + 1)}
        if evaluated:
            row.update(correct=70 + 5 * epoch, total=100, accuracy=(70 + 5 * epoch) / 100,
                       test_cost=0.25 / (epoch + 1))
        if monitored:
            row["training_cost"] = 0.2 / (epoch + 1)
        rows.append(row)
    return History(rows)


def test_learning_curves_draw_each_measured_column(tmp_path):
    pytest.importorskip("matplotlib")
    fig = plots.learning_curves(history())
    acc, cost = fig.axes
    [line] = [ln for ln in acc.get_lines() if len(ln.get_xdata()) == 4]
    np.testing.assert_allclose(line.get_ydata(), [70, 75, 80, 85])        # per cent
    labels = [ln.get_label() for ln in cost.get_lines()]
    assert len(labels) == 3 and any("running" in label for label in labels)
    np.testing.assert_allclose(cost.get_lines()[1].get_ydata(), history().column("training_cost"))
    path = plots.save(fig, tmp_path / "curves.png")
    assert path == str(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    with pytest.raises(FileExistsError, match="overwrite=True"):
        plots.save(fig, tmp_path / "curves.png")
    plots.save(fig, tmp_path / "curves.png", overwrite=True)


def test_learning_curves_of_a_real_run_without_test_data(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = random_data([6, 5, 3], 40, seed=2)     # the shape test_noise.py compiles
    h = fastgd.Network([6, 5, 3], seed=1, dtype="float64").SGD((X, y), 3, 5, 3.0,
                                                                verbose=False)
    fig = plots.learning_curves(h)
    acc, cost = fig.axes
    assert "not evaluated" in acc.texts[0].get_text()
    [line] = cost.get_lines()
    np.testing.assert_allclose(line.get_ydata(), h.column("cost"))
    plots.save(fig, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG


def test_learning_curves_refuse_what_is_not_a_history():
    with pytest.raises(ValueError, match="at least one epoch"):
        plots.learning_curves(History())
    with pytest.raises(TypeError, match="History"):
        plots.learning_curves([1, 2])


def test_one_hint_when_matplotlib_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError) as raised:
        plots.learning_curves(history())
    assert str(raised.value) == plots.PLOT_HINT == \
        "matplotlib is needed for plots: pip install 'fastgd[plot]'"


def test_save_leaves_nothing_behind_when_drawing_fails(tmp_path):
    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("cannot draw")
    with pytest.raises(RuntimeError, match="cannot draw"):
        plots.save(Broken(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(FileNotFoundError, match="no such directory"):
        plots.save(Broken(), tmp_path / "missing" / "x.png")


def test_overfitting_draws_training_cost_and_test_accuracy_per_run(tmp_path):
    pytest.importorskip("matplotlib")
    runs = {"no regularization": history(), "L2": history()[:2]}
    fig = plots.overfitting(runs, title="t")
    cost, acc = fig.axes
    assert [ln.get_label() for ln in cost.get_lines()] == list(runs)
    np.testing.assert_allclose(cost.get_lines()[0].get_ydata(), history().column("training_cost"))
    np.testing.assert_allclose(acc.get_lines()[0].get_ydata(), [70, 75, 80, 85])
    assert plots.save(fig, tmp_path / "o.png") and (tmp_path / "o.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="must have 'training_cost' and 'accuracy'"):
        plots.overfitting({"bare": history(monitored=False)})


def test_learning_curves_name_the_networks_cost():
    pytest.importorskip("matplotlib")
    curves = History(history(), cost="cross-entropy")
    assert plots.learning_curves(curves).axes[1].get_ylabel() == "cross-entropy cost C"
    assert plots.learning_curves(history()).axes[1].get_ylabel() == "quadratic cost C"
