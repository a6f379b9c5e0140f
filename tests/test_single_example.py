"""Calls on one example (feedforward(x), predict(x), backprop(x, y)): the bits of
the batched calls, the kernels each network finds once, and the same checks.

Their speed beside NumPy's is measured in benchmarks/test_latency.py."""

import copy
import pickle
import warnings

import numba
import numpy as np
import pytest

import fastgd
from fastgd import kernels

from fastgd import reference as naive
from helpers import book_weights, random_data

SIZES = [7, 9, 4]  # a shape the other tests compile too
DTYPES = ["float32", "float64"]


def bits(array):
    """The bytes of an array: equal only if every number has the same bits
    (assert_array_equal takes -0.0 for 0.0)."""
    return np.ascontiguousarray(array).tobytes()


@pytest.fixture(params=DTYPES)
def net_and_data(request):
    net = fastgd.Network(SIZES, seed=2, dtype=request.param)
    X, y = random_data(SIZES, 70, seed=5)  # more than one evaluation block
    return net, X.astype(request.param), y


def test_one_example_gives_the_bits_of_the_batch(net_and_data):
    net, X, y = net_and_data
    batch = net.feedforward(X)
    answers = net.predict(X)
    rows = net.gradients(X, y)
    for i in (0, 1, 69):
        one = net.feedforward(X[i])
        assert one.shape == (4,) and one.dtype == net.dtype
        assert bits(one) == bits(batch[i]) == bits(net.feedforward(X[i:i + 1])[0])
        assert net.predict(X[i]) == answers[i] and type(net.predict(X[i])) is int
        assert bits(net.predict(X[i:i + 1])) == bits(answers[i:i + 1])
        nabla_b, nabla_w = net.backprop(X[i], y[i])
        want_b, want_w = net.layout.unpack(rows[i])
        for got, want in zip(nabla_b + nabla_w, want_b + want_w):
            assert got.flags.c_contiguous and got.dtype == net.dtype
            assert got.shape == want.shape and bits(got) == bits(want)


def test_diverged_weights_give_backprop_the_nans_of_gradients(net_and_data):
    """Which of two NaNs multiplied a product is depends on how the loop compiles:
    backprop's must still be gradients()' (and so the batch's), bit for bit."""
    net, X, y = net_and_data
    net.params[:] = np.nan
    rows = net.gradients(X[:3], y[:3])
    for row, x, label in zip(rows, X, y):
        want_b, want_w = net.layout.unpack(row)
        got_b, got_w = net.backprop(x, label)
        assert np.isnan(got_w[-1]).all()
        for got, want in zip(got_b + got_w, want_b + want_w):
            assert bits(got) == bits(want)


def test_cross_entropy_backprop_gives_the_bits_of_gradients():
    sizes = [5, 4, 3, 2]  # test_chapter3.py's shape
    net = fastgd.Network(sizes, seed=1, dtype="float64", cost="cross-entropy")
    X, y = random_data(sizes, 4, seed=2)
    for row, x, label in zip(net.gradients(X, y), X, y):
        want_b, want_w = net.layout.unpack(row)
        got_b, got_w = net.backprop(x, label)
        for got, want in zip(got_b + got_w, want_b + want_w):
            assert got.shape == want.shape and bits(got) == bits(want)


def test_one_example_matches_the_book(net_and_data):
    net, X, y = net_and_data
    weights, biases = book_weights(net)
    rtol = 1e-12 if net.dtype == np.float64 else 1e-5
    for x, label in zip(X[:5], y[:5]):
        want = naive.feedforward(weights, biases, x.astype(np.float64))
        np.testing.assert_allclose(net.feedforward(x), want, rtol=rtol)
        assert net.predict(x) == np.argmax(want)
        got_b, got_w = net.backprop(x, label)
        want_b, want_w = naive.backprop(weights, biases, x.astype(np.float64), label)
        for got, want in zip(got_b + got_w, want_b + want_w):
            np.testing.assert_allclose(got, want, rtol=rtol * 10, atol=rtol * 1e-3)


def test_new_weights_biases_and_params_are_used_at_once(net_and_data):
    """The kernels a network keeps hold no parameters: assigning weights or
    biases, or replacing params, shows in the very next call."""
    net, X, y = net_and_data
    x = X[0]
    before = net.feedforward(x).copy()
    other = fastgd.Network(SIZES, seed=9, dtype=net.dtype.name)
    net.weights = other.weights
    net.biases = other.biases
    assert bits(net.feedforward(x)) == bits(other.feedforward(x)) != bits(before)
    assert net.predict(x) == other.predict(x)
    for got, want in zip(sum(net.backprop(x, y[0]), []), sum(other.backprop(x, y[0]), [])):
        assert bits(got) == bits(want)
    net.params = kernels.aligned_copy(fastgd.Network(SIZES, seed=2, dtype=net.dtype.name).params)
    assert bits(net.feedforward(x)) == bits(before)


def test_each_network_keeps_its_own_kernels(tmp_path, monkeypatch):
    """float32 and float64 networks of one shape, a loaded copy, a pickled or
    deep copy: each finds its own kernels and gives its own dtype's bits; a
    changed panel width (config.PANEL) finds the module of that width."""
    x = random_data(SIZES, 1, seed=3)[0][0]
    nets = {dtype: fastgd.Network(SIZES, seed=4, dtype=dtype) for dtype in DTYPES}
    outputs = {dtype: net.feedforward(x) for dtype, net in nets.items()}
    for dtype, out in outputs.items():
        assert out.dtype == np.dtype(dtype)
        assert bits(out) == bits(nets[dtype].feedforward(x.astype(dtype)[None])[0])
    assert not np.array_equal(outputs["float32"], outputs["float64"])  # float32 rounds
    net = nets["float64"]
    net.save(tmp_path / "net.npz")
    loaded = fastgd.Network.load(tmp_path / "net.npz")
    copies = [loaded, copy.deepcopy(net), pickle.loads(pickle.dumps(net))]
    net.weights[0][:] = 0.0  # changes net only
    for other in copies:
        assert bits(other.feedforward(x)) == bits(outputs["float64"])
    assert bits(net.feedforward(x)) != bits(outputs["float64"])
    # the module for a panel of 8 outputs (generated, not compiled: nothing is called)
    monkeypatch.setattr(fastgd.config, "SPECIALIZE", "now")  # the specialised module
    machine = net._kernel("feedforward_serial")
    assert machine is kernels.kernels(SIZES, "float64").feedforward_serial
    monkeypatch.setattr(fastgd.config, "PANEL", 8)
    narrow = net._kernel("feedforward_serial")
    assert narrow is kernels.kernels(SIZES, "float64").feedforward_serial
    assert narrow is not machine


@pytest.mark.parametrize("dtype", DTYPES)
def test_bad_single_inputs_are_rejected_with_the_same_messages(dtype):
    net = fastgd.Network(SIZES, seed=0, dtype=dtype)
    x = np.full(7, 0.5)
    with_value = lambda k, v: np.where(np.arange(7) == k, v, 0.5)  # noqa: E731
    bad = [
        (np.zeros(6), ValueError, r"must have shape \(n, 7\) for this network "
                                  r"\(one row per example\), got shape \(1, 6\)"),
        (np.zeros((1, 1, 7)), ValueError, r"got shape \(1, 1, 7\)"),
        (with_value(3, np.nan), ValueError, r"must be finite, but {0}\[0, 3\] is nan"),
        (with_value(2, np.inf), ValueError, r"must be finite, but {0}\[0, 2\] is inf"),
        (with_value(5, -np.inf), ValueError, r"must be finite, but {0}\[0, 5\] is -inf"),
        (np.full(7, "a"), TypeError, r"must hold numbers, got dtype <U1"),
        (np.ones(7, bool), TypeError, r"must hold numbers, got dtype bool"),
        (np.ones(7, complex), TypeError,
         r"must hold real numbers \(not complex\), got dtype complex128"),
    ]
    if dtype == "float32":  # finite in float64, too large for the network's dtype
        bad.append((np.full(7, 1e39), ValueError, r"must be finite in float32, but "
                    r"{0}\[0, 0\] is 1e\+39, outside float32's range"))
    for value, error, match in bad:
        for call, name in ((net.feedforward, "X"), (net.predict, "X"),
                           (lambda v: net.backprop(v, 1), "x")):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the error alone, no numpy warning before it
                with pytest.raises(error, match=match.format(name)):
                    call(value)
    with pytest.raises(ValueError, match=r"x must be one input of shape \(7,\), got shape "
                                         r"\(2, 7\)"):
        net.backprop(np.stack([x, x]), 1)
    labels = [(4, ValueError, r"y labels must be in 0..3 \(one per output neuron\), but y\[0\] "
                              r"is 4"),
              (-1, ValueError, r"but y\[0\] is -1"),
              (1e20, ValueError, r"but y\[0\] is 1e\+20"),
              (2.5, TypeError, r"y must hold integer labels, got dtype float64"),
              (float("nan"), TypeError, r"y must hold integer labels, got dtype float64"),
              ("a", TypeError, r"y must hold integer labels, got dtype <U1"),
              ([1], ValueError, r"y must be one integer label, got \[1\]")]
    for label, error, match in labels:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nan % 1
            with pytest.raises(error, match=match):
                net.backprop(x, label)
    for label in (2, 2.0, np.uint8(2), np.int64(2)):  # integral labels of any type
        assert bits(net.backprop(x, label)[0][-1]) == bits(net.backprop(x, 2)[0][-1])


def test_unscaled_single_inputs_warn_once_naming_the_argument():
    net = fastgd.Network(SIZES, seed=0)
    x = np.full(7, 0.5)
    x[4] = 3.0
    for call, name in ((net.feedforward, "X"), (net.predict, "X"),
                       (lambda v: net.backprop(v, 1), "x")):
        with pytest.warns(fastgd.InputScaleWarning) as caught:
            call(x)
        assert [str(w.message).split(",")[0] for w in caught] == [f"{name} has values up to 3"]


def test_kernel_calls_switch_slp_on_and_back(monkeypatch):
    """Every kernel compiles with numba's SLP vectoriser on (``kernels.call``);
    the setting is put back after the last call in flight, whatever happened."""
    monkeypatch.setattr(numba.config, "SLP_VECTORIZE", 0)
    seen = []

    def kernel(nested):
        seen.append(numba.config.SLP_VECTORIZE)
        if nested:
            kernels.call(kernel, False)
            seen.append(numba.config.SLP_VECTORIZE)
        return "done"

    assert kernels.call(kernel, True) == "done"
    assert seen == [1, 1, 1] and numba.config.SLP_VECTORIZE == 0

    def failing():
        raise RuntimeError("in the kernel")

    with pytest.raises(RuntimeError, match="in the kernel"):
        kernels.call(failing)
    assert numba.config.SLP_VECTORIZE == 0
