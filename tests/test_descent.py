"""Tests for gradient descent on C(v) (fastgd.descent), its picture (fastgd.plots.valley,
the example valleys (fastgd.valley) and its command (fastgd.cli.valley)."""

import argparse
import sys
import warnings

import numpy as np
import pytest

from fastgd import plots
from fastgd.cli.valley import add_parsers
from fastgd.descent import CostIncreaseError, Descent, NonFiniteError, minimize
from fastgd.plots import PLOT_HINT
from fastgd.valley import bowl, narrow_valley, one_variable


def run(example, v0=None, **options):
    return minimize(example.C, example.grad_C, example.start if v0 is None else v0,
                    **options)


@pytest.mark.parametrize("example, eta, steps", [(bowl, 0.1, 200), (narrow_valley, 0.03, 600)])
def test_small_eta_converges_to_the_minimum_with_C_never_increasing(example, eta, steps):
    result = run(example, eta=eta, steps=steps)
    assert isinstance(result, Descent)
    assert result.path.shape == (steps + 1, 2) and result.costs.shape == (steps + 1,)
    np.testing.assert_allclose(result.v, example.minimum, atol=1e-8)
    assert np.all(result.delta_C <= 0)
    assert result.increases.size == 0 and result.converged is None
    np.testing.assert_array_equal(result.path[0], example.start)
    assert result.costs[0] == example.C(example.start)


def test_tol_stops_once_the_gradient_is_small():
    result = run(bowl, eta=0.1, steps=1000, tol=1e-6)
    assert result.converged and result.reason == "converged"
    assert result.steps_taken < 1000 and len(result.path) == result.steps_taken + 1
    assert np.linalg.norm(bowl.grad_C(result.v)) < 1e-6
    assert run(bowl, eta=0.1, steps=3, tol=1e-6).converged is False


def test_too_large_eta_on_the_narrow_valley_warns_that_C_increased():
    with pytest.warns(RuntimeWarning, match=r"Delta C > 0 at step 0 .*eta = 0.045 is too "
                                            r"large.*Delta C ≈ grad C · Delta v breaks down"):
        result = run(narrow_valley, eta=0.045, steps=20)
    assert list(result.increases) == list(np.flatnonzero(result.delta_C > 0))
    assert len(result.increases) == 20


def test_on_increase_raise_and_ignore():
    with pytest.raises(CostIncreaseError, match="Delta C > 0 at step 0") as info:
        run(narrow_valley, eta=0.045, steps=20, on_increase="raise")
    assert info.value.result.steps_taken == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(run(narrow_valley, eta=0.045, steps=5, on_increase="ignore").increases) == 5


def test_fixed_step_length_moves_epsilon_each_step_until_near_the_minimum():
    epsilon = 0.07
    result = run(narrow_valley, epsilon=epsilon, steps=200, on_increase="ignore")
    lengths = np.linalg.norm(np.diff(result.path, axis=0), axis=1)
    far = np.linalg.norm(result.path[:-1], axis=1) > epsilon
    assert far[:10].all()
    np.testing.assert_allclose(lengths, epsilon, rtol=0, atol=1e-12)
    # eta = epsilon / ||grad C|| at each step, and each step goes straight down the gradient
    grads = np.array([narrow_valley.grad_C(v) for v in result.path[:-1]])
    np.testing.assert_allclose(result.etas, epsilon / np.linalg.norm(grads, axis=1))
    # At the bottom the fixed step overshoots: C goes up, which is reported
    assert result.increases.size > 0


def test_fixed_step_length_stops_where_the_gradient_is_zero():
    # Steps of 0.125 from (0.5, 0) land exactly on the bottom, where grad C = 0
    result = run(bowl, v0=[0.5, 0.0], epsilon=0.125, steps=50)
    assert result.reason == "stationary" and result.steps_taken == 4
    np.testing.assert_array_equal(result.v, [0.0, 0.0])
    assert result.increases.size == 0


def test_schedule_gives_eta_for_each_step():
    seen = []

    def schedule(k):
        seen.append(k)
        return 0.1 / (k + 1)

    result = run(bowl, v0=[1.0, -2.0], schedule=schedule, steps=2)
    # v1 = v0 - 0.1 * 2 v0 = 0.8 v0; v2 = v1 - 0.05 * 2 v1 = 0.9 v1
    np.testing.assert_allclose(result.path, [[1, -2], [0.8, -1.6], [0.72, -1.44]],
                               rtol=1e-15)
    assert seen == [0, 1] and list(result.etas) == [0.1, 0.05]
    with pytest.raises(ValueError, match=r"schedule\(1\) must return a finite eta > 0"):
        run(bowl, schedule=lambda k: 0.1 - k, steps=3)
    with pytest.raises(TypeError, match=r"schedule\(0\) must return a number"):
        run(bowl, schedule=lambda k: "fast", steps=3)
    with pytest.raises(TypeError, match="eta or schedule, not both"):
        run(bowl, eta=0.1, schedule=lambda k: 0.1)


def test_divergence_to_infinity_stops_with_an_error_naming_the_step():
    with pytest.raises(FloatingPointError, match=r"C\(v\) is inf at step \d+ .*eta = 1 is "
                                                 r"too large") as info:
        run(narrow_valley, v0=[1.0, 1.0], eta=1.0, steps=1000, on_increase="ignore")
    partial = info.value.result
    assert isinstance(info.value, NonFiniteError)
    assert np.isfinite(partial.path).all() and np.isfinite(partial.costs).all()

    def nan_grad(v):
        return np.array([np.nan, 0.0]) if v[0] < 0.5 else 2 * v
    with pytest.raises(FloatingPointError, match=r"grad C\(v\) is not finite at step 4"):
        minimize(bowl.C, nan_grad, [1.0, 0.0], eta=0.1, steps=10)


def test_one_variable_moves_downhill_by_eta_times_the_slope():
    result = run(one_variable, eta=0.1, steps=60)
    assert isinstance(result.v, float) and result.path.shape == (61, 1)
    assert abs(result.v - one_variable.minimum) < 1e-5
    v = result.path[:, 0]
    np.testing.assert_allclose(np.diff(v), -0.1 * one_variable.grad_C(v[:-1]),
                               rtol=1e-12, atol=1e-15)
    assert np.all(result.delta_C <= 0)


@pytest.mark.slow  # numba compiles C and grad C anew in every process
def test_numba_jitted_C_and_grad_C_give_the_same_path_as_python():
    pytest.importorskip("numba")
    jitted = narrow_valley.jit()
    for options in ({"eta": 0.045, "steps": 30, "on_increase": "ignore"},
                    {"epsilon": 0.05, "steps": 60, "on_increase": "ignore"},
                    {"eta": 0.03, "steps": 500, "tol": 1e-6}):
        python = run(narrow_valley, **options)
        fast = run(jitted, **options)
        assert (python.backend, fast.backend) == ("python", "numba")
        np.testing.assert_array_equal(fast.path, python.path)
        np.testing.assert_array_equal(fast.costs, python.costs)
        np.testing.assert_array_equal(fast.increases, python.increases)
        assert (fast.steps_taken, fast.converged, fast.reason) == (
            python.steps_taken, python.converged, python.reason)
    one = one_variable.jit()
    np.testing.assert_array_equal(run(one, v0=3, steps=20).path,
                                  run(one_variable, v0=3, steps=20).path)
    with pytest.raises(FloatingPointError, match=r"C\(v\) is inf at step \d+"):
        run(jitted, v0=[1.0, 1.0], eta=1.0, steps=1000, on_increase="ignore")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"C": 3}, TypeError, "C must be a function"),
    ({"grad_C": None}, TypeError, "grad_C must be a function"),
    ({"grad_C": lambda v: np.zeros(3)}, ValueError, r"grad_C must return an array of shape \(2,\)"),
    ({"C": lambda v: v}, TypeError, "C must return a real number"),
    ({"v0": [0.0, np.nan]}, ValueError, "v0 must be finite"),
    ({"v0": [[1.0, 2.0]]}, ValueError, "v0 must be a number or a 1-D array"),
    ({"v0": []}, ValueError, "v0 must have at least one variable"),
    ({"v0": "1,2"}, TypeError, "v0 must be a number"),
    ({"eta": 0}, ValueError, "eta must be a finite number > 0"),
    ({"eta": -0.1}, ValueError, "eta must be a finite number > 0"),
    ({"steps": -1}, ValueError, "steps must be >= 0"),
    ({"steps": 2.5}, TypeError, "steps must be an integer"),
    ({"epsilon": 0.0}, ValueError, "epsilon must be a finite number > 0"),
    ({"epsilon": 0.1, "eta": 0.1}, TypeError, "give epsilon or eta/schedule, not both"),
    ({"tol": -1}, ValueError, "tol must be a finite number > 0"),
    ({"schedule": 0.1}, TypeError, "schedule must be a function"),
    ({"on_increase": "stop"}, ValueError, "on_increase must be 'warn', 'raise' or 'ignore'"),
])
def test_bad_inputs_raise_naming_the_argument(kwargs, error, match):
    arguments = {"C": bowl.C, "grad_C": bowl.grad_C, "v0": [1.0, 1.0], **kwargs}
    with pytest.raises(error, match=match):
        minimize(**arguments)


def test_grad_C_of_one_variable_must_be_a_number():
    with pytest.raises(ValueError, match="grad_C must return a number"):
        minimize(one_variable.C, lambda v: np.array([1.0, 2.0]), 0.5)


# -- fastgd valley ------------------------------------------------------------------------

def valley(argv):
    parser = argparse.ArgumentParser(prog="fastgd")
    add_parsers(parser.add_subparsers())
    args = parser.parse_args(["valley", *argv])
    return args.func(args)


def test_valley_subcommand_prints_the_steps_and_writes_the_picture(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "narrow.png"
    assert valley(["--function", "narrow", "--eta", "0.045", "--steps", "12",
                   "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "C(v) = v1^2 + 25 v2^2" in printed.out and "eta 0.045" in printed.out
    assert "Delta C" in printed.out and "<- Delta C > 0" in printed.out
    assert "Final: v = (" in printed.out and f"picture written to {out}" in printed.out
    assert "fastgd valley: warning: Delta C > 0 at step 0" in printed.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        valley(["--out", str(out)])
    assert out.read_bytes() == before
    assert valley(["--function", "one-variable", "--start", "3", "--out", str(out),
                   "--overwrite"]) == 0
    assert out.read_bytes() != before


def test_valley_subcommand_rejects_bad_options(tmp_path, capsys):
    with pytest.raises(ValueError, match="--start needs two numbers v1,v2 for --function bowl"):
        valley(["--start", "1", "--out", str(tmp_path / "v.png")])
    with pytest.raises(ValueError, match="--out must be a file name ending in .png"):
        valley(["--out", str(tmp_path / "v.pdf")])
    for bad in (["--eta", "-1"], ["--eta", "0.1", "--epsilon", "0.1"], ["--steps", "x"]):
        with pytest.raises(SystemExit):
            valley(bad)
    capsys.readouterr()


def test_valley_without_matplotlib_prints_the_numbers_then_fails(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "v.png"
    assert valley(["--steps", "3", "--out", str(out)]) == 2
    printed = capsys.readouterr()
    assert "Final: v = (" in printed.out
    assert PLOT_HINT in printed.err
    assert not out.exists()
    with pytest.raises(ImportError, match=r"pip install 'fastgd\[plot\]'"):
        plots.valley(run(bowl, steps=2), bowl.C)
