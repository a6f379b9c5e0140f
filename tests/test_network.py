"""The Network's construction, parameters, input checks, and save/load."""

import zipfile

import numpy as np
import pytest

import fastgd

from helpers import random_data


def test_weights_and_biases_are_drawn_from_N01_with_the_books_shapes():
    net = fastgd.Network([784, 30, 10], seed=0)
    assert [w.shape for w in net.weights] == [(30, 784), (10, 30)]
    assert [b.shape for b in net.biases] == [(30,), (10,)]
    assert net.params.dtype == np.float32 and net.num_layers == 3
    w = np.asarray(net.weights[0], np.float64)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02


def test_same_seed_same_network_and_float32_is_float64_rounded():
    a = fastgd.Network([5, 4, 3], seed=42)
    b = fastgd.Network([5, 4, 3], seed=42)
    c = fastgd.Network([5, 4, 3], seed=42, dtype="float64")
    d = fastgd.Network([5, 4, 3], seed=43)
    np.testing.assert_array_equal(a.params, b.params)
    for w32, w64 in zip(a.weights, c.weights):
        np.testing.assert_array_equal(w32, w64.astype(np.float32))
    assert not np.array_equal(a.params, d.params)


def test_given_weights_are_used_and_views_write_through():
    weights = [np.arange(12.0).reshape(3, 4), np.ones((2, 3))]
    biases = [np.zeros(3), np.array([[1.0], [2.0]])]  # the book's column vectors too
    net = fastgd.Network([4, 3, 2], weights, biases, dtype="float64")
    np.testing.assert_array_equal(net.weights[0], weights[0])
    np.testing.assert_array_equal(net.biases[1], [1.0, 2.0])
    net.weights[1][0, 2] = 7.0
    assert net.weights[1][0, 2] == 7.0
    net.biases = [np.full(3, 0.5), np.zeros(2)]
    np.testing.assert_array_equal(net.biases[0], 0.5)
    with pytest.raises(TypeError):
        net.weights[0] = np.zeros((3, 4))  # a tuple: replace the list, not an item


@pytest.mark.parametrize("sizes, match", [
    ([784], "at least two layers"),
    ([], "at least two layers"),
    ([784, 0, 10], "positive integers"),
    ([784, -3, 10], "positive integers"),
    ([784, 30.5, 10], "positive integers"),
    ([784, True, 10], "positive integers"),
    (784, "list of layer sizes"),
])
def test_bad_sizes(sizes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fastgd.Network(sizes)


def test_bad_construction_arguments():
    with pytest.raises(ValueError, match="dtype"):
        fastgd.Network([3, 2], dtype="float16")
    with pytest.raises(ValueError, match="dtype"):
        fastgd.Network([3, 2], dtype="int32")
    with pytest.raises(ValueError, match="both weights and biases"):
        fastgd.Network([3, 2], weights=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"weights\[0\] must have shape \(2, 3\)"):
        fastgd.Network([3, 2], [np.zeros((3, 2))], [np.zeros(2)])
    with pytest.raises(ValueError, match="must hold 1 arrays"):
        fastgd.Network([3, 2], [np.zeros((2, 3))] * 2, [np.zeros(2)])
    with pytest.raises(ValueError, match=r"biases\[0\] must be finite"):
        fastgd.Network([3, 2], [np.zeros((2, 3))], [np.array([0, np.nan])])
    with pytest.raises(ValueError, match="seed"):
        fastgd.Network([3, 2], seed=-1)


@pytest.fixture
def net_and_data():
    net = fastgd.Network([6, 5, 3], seed=0)
    return net, random_data(net.sizes, 12)


def test_bad_data_is_rejected_before_any_kernel_runs(net_and_data):
    net, (X, y) = net_and_data
    before = net.params.copy()
    bad = [
        (dict(training_data=(X[:, :5], y)), r"shape \(n, 6\)"),
        (dict(training_data=(X, y[:-1])), r"12 labels"),
        (dict(training_data=(X, y + 3)), r"labels must be in 0..2"),
        (dict(training_data=(X, -y - 1)), r"labels must be in 0..2"),
        (dict(training_data=(X, y + 0.5)), r"integer labels"),
        (dict(training_data=(np.where(X > 0.5, np.nan, X), y)), r"must be finite"),
        (dict(training_data=(np.where(X > 0.5, np.inf, X), y)), r"must be finite"),
        (dict(training_data=X), r"pair \(X, y\)"),
        (dict(eta=0.0), "eta must be a finite number > 0"),
        (dict(eta=-1.0), "eta must be a finite number > 0"),
        (dict(eta=float("nan")), "eta must be a finite number > 0"),
        (dict(eta="3"), "eta must be a real number"),
        (dict(mini_batch_size=0), "mini_batch_size must be >= 1"),
        (dict(mini_batch_size=13), "mini_batch_size must be <= 12"),
        (dict(mini_batch_size=2.0), "mini_batch_size must be an integer"),
        (dict(epochs=-1), "epochs must be >= 0"),
        (dict(threads=0), "threads must be >= 1"),
        (dict(threads=10_000), "threads must be <= "),
        (dict(reduction="avg"), "reduction must be 'mean' or 'sum'"),
        (dict(kernel="gpu"), "kernel must be"),
        (dict(on_divergence="ignore"), "on_divergence must be"),
        (dict(test_data=(X, y[:3])), r"test_data\[1\] \(y\) must be a 1-D array of 12"),
    ]
    for change, match in bad:
        args = dict(training_data=(X, y), epochs=1, mini_batch_size=4, eta=1.0, verbose=False)
        args.update(change)
        with pytest.raises((ValueError, TypeError), match=match):
            net.SGD(**args)
    np.testing.assert_array_equal(net.params, before)
    with pytest.raises(ValueError, match="at least one example"):
        net.SGD((X[:0], y[:0]), 1, None, 1.0)


def test_bad_inputs_to_feedforward_backprop_evaluate(net_and_data):
    net, (X, y) = net_and_data
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        net.feedforward(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        net.feedforward(np.full(6, np.nan))
    with pytest.raises(ValueError, match="one integer label"):
        net.backprop(X[0], y[:2])
    with pytest.raises(ValueError, match=r"labels must be in 0..2"):
        net.backprop(X[0], 3)
    with pytest.raises(ValueError, match=r"one input of shape \(6,\)"):
        net.backprop(X[:2], 1)
    with pytest.raises(ValueError, match="12 labels"):
        net.evaluate(X, y[:4])
    with pytest.raises(TypeError, match="must hold numbers"):
        net.cost(np.full((2, 6), "a"), [0, 1])


def test_save_and_load_round_trip(tmp_path):
    for dtype in ("float32", "float64"):
        net = fastgd.Network([6, 5, 4, 3], seed=1, dtype=dtype)
        path = tmp_path / f"net-{dtype}.npz"
        net.save(path)
        loaded = fastgd.Network.load(path)
        assert loaded.sizes == net.sizes and loaded.dtype == net.dtype
        np.testing.assert_array_equal(loaded.params, net.params)
        with np.load(path, allow_pickle=False) as f:  # a plain npz, no pickled objects
            assert sorted(f.files)[:2] == ["biases_0", "biases_1"]


def test_save_does_not_overwrite_silently(tmp_path):
    net = fastgd.Network([3, 2], seed=1)
    path = tmp_path / "net.npz"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        net.save(path)
    assert path.read_bytes() == b"precious"
    net.save(path, overwrite=True)
    assert fastgd.Network.load(path).sizes == [3, 2]
    other = tmp_path / "no-extension"
    net.save(other)
    assert other.exists()  # the exact path given, no ".npz" appended


def test_save_refuses_non_finite_weights(tmp_path):
    net = fastgd.Network([3, 2], seed=1)
    net.weights[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        net.save(tmp_path / "net.npz")


def rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("damage, match", [
    (dict(weights_0=np.zeros((5, 6), np.float32)),
     r"weights_0 has shape \(5, 6\), expected \(4, 3\)"),
    (dict(biases_1=None), "biases_1"),
    (dict(sizes=np.array([3])), "at least two layers"),
    (dict(format=np.array("something-else")), "not a fastgd network file"),
    (dict(biases_0=np.array([0.0, np.inf, 0.0, 0.0], np.float32)), "finite"),
    (dict(biases_0=np.zeros(4, np.float64)), "mixed dtypes"),
    (dict(extra=np.zeros(1)), "unexpected entries"),
])
def test_load_rejects_tampered_files(tmp_path, damage, match):
    path = tmp_path / "net.npz"
    fastgd.Network([3, 4, 2], seed=0).save(path)
    rewrite(path, **damage)
    with pytest.raises(ValueError, match=match):
        fastgd.Network.load(path)


def test_load_rejects_truncated_and_corrupt_files(tmp_path):
    path = tmp_path / "net.npz"
    fastgd.Network([3, 4, 2], seed=0).save(path)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        fastgd.Network.load(tmp_path / "truncated.npz")
    corrupt = bytearray(data)
    start = data.index(b"weights_0.npy") + 200  # inside that member's data
    corrupt[start:start + 8] = b"\xff" * 8
    (tmp_path / "corrupt.npz").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="corrupt.npz"):
        fastgd.Network.load(tmp_path / "corrupt.npz")
    (tmp_path / "text.npz").write_text("not a network")
    with pytest.raises(ValueError, match="text.npz is not a fastgd network file .not an .npz"):
        fastgd.Network.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        fastgd.Network.load(tmp_path / "missing.npz")
    with zipfile.ZipFile(tmp_path / "pickled.npz", "w") as z:
        z.writestr("format.npy", np.lib.format.header_data_from_array_1_0(np.zeros(1)).__repr__())
    with pytest.raises(ValueError, match="pickled.npz"):
        fastgd.Network.load(tmp_path / "pickled.npz")
