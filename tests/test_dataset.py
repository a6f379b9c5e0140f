"""fastgd.Dataset and the cache of plain arrays: data checked and indexed once,
never served stale."""

import json
import warnings
import zipfile

import numpy as np
import pytest

import fastgd
from fastgd import config, dataset, kernels
from fastgd.training import data_fingerprint, read_checkpoint
from fastgd.training.kernel_choice import available_cores

from helpers import random_data

SIZES = [8, 6, 3]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (4, 4), (9, 13), (40, 7)], ids=str)
def test_nonzero_columns_index_exactly_the_nonzero_entries(shape, dtype, monkeypatch):
    """The CSR index of X, from Python (copied by 1 to 5 threads) and from inside
    the kernels: row x's nonzero columns in increasing order with their values, and
    the same arrays from all.  (4, 4) has every entry zero; (9, 13) has empty and
    full rows; (40, 7) has runs of empty rows and rows ending in zeros where the
    threads' blocks meet."""
    rng = np.random.default_rng(3)
    X = np.where(rng.random(shape) < 0.4, rng.random(shape), 0).astype(dtype)
    if shape == (4, 4):
        X[:] = 0
    if shape == (9, 13):
        X[2] = 0
        X[5] = 1.5
    if shape == (40, 7):
        X[10:14] = 0
        X[25:31] = 0
        X[:, -2:] = 0
    rows, columns = np.nonzero(X)
    counts = np.bincount(rows, minlength=shape[0])
    monkeypatch.setattr(config, "INDEX_ENTRIES_PER_THREAD", 1)  # threads even for a few
    for index in [kernels.nonzero_columns(X, threads) for threads in range(1, 6)] + [
            kernels.inputs.nonzero_columns_in_kernel(X)]:
        indptr, indices, values = index
        assert (indptr.dtype, indices.dtype, values.dtype) == (np.uint64, np.uint32, dtype)
        np.testing.assert_array_equal(indptr, np.concatenate([[0], np.cumsum(counts)]))
        np.testing.assert_array_equal(indices, columns)
        np.testing.assert_array_equal(values, X[rows, columns])


def test_a_block_of_rows_writes_nothing_past_its_own_entries():
    """Blocks copied last to first, so that a write past a block's end would
    overwrite the next block's entries: blocks ending in rows that end in zeros,
    in empty rows, and in a run of empty rows."""
    X = np.zeros((12, 6))
    X[[0, 1, 3, 6, 7, 9, 11], 1] = [1, 2, 3, 4, 5, 6, 7]  # rows 4, 5, 8, 10 empty
    X[[1, 6, 11], 0] = [8, 9, 10]
    indptr = np.zeros(13, np.uint64)
    kernels.inputs.index_nonzero_columns(X, indptr, np.empty(0, np.uint32), np.empty(0), 0, 12)
    for bounds in ([0, 2, 6, 9, 12], [0, 4, 5, 8, 12], [0, 1, 11, 12]):
        indices = np.full(int(indptr[-1]), 99, np.uint32)
        values = np.full(int(indptr[-1]), -1.0)
        for x0, x1 in reversed(list(zip(bounds[:-1], bounds[1:]))):
            kernels.inputs.index_nonzero_columns(X, indptr, indices, values, x0, x1)
        rows, columns = np.nonzero(X)
        np.testing.assert_array_equal(indices, columns)
        np.testing.assert_array_equal(values, X[rows, columns])


@pytest.mark.parametrize("length, chunk", [(0, 4), (3, 4), (8, 4), (23, 4), (23, 1 << 18)])
def test_column_counts_is_bincount(length, chunk):
    """Counting a chunk at a time gives np.bincount's counts, at chunk edges too."""
    indices = np.random.default_rng(length).integers(0, 7, length).astype(np.uint32)
    counts = kernels.inputs.column_counts(indices, 7, chunk)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, np.bincount(indices, minlength=7))


def test_a_slice_of_a_dataset_is_a_dataset_of_those_examples_sharing_the_arrays():
    X, y = random_data(SIZES, 12, seed=2)
    data = fastgd.Dataset(X, y)
    part = data[3:9:2]  # a copy: the kernels read contiguous rows
    assert isinstance(part, fastgd.Dataset) and len(part) == 3
    np.testing.assert_array_equal(part.X, X[3:9:2].astype(np.float32))
    np.testing.assert_array_equal(part.y, y[3:9:2])
    assert np.shares_memory(data[3:9].X, data.X) and not data[3:9].X.flags.writeable
    assert len(data[:100]) == 12 and len(data[5:2]) == 0
    with pytest.raises(TypeError, match=r"indexed by a slice of its examples .* got int"):
        data[0]
    # and trains as the same examples given as arrays would
    nets = [fastgd.Network(SIZES, seed=1) for _ in range(2)]
    nets[0].SGD(part, 2, 2, 0.5, verbose=False)
    nets[1].SGD((X[3:9:2], y[3:9:2]), 2, 2, 0.5, verbose=False)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)


def test_build_index_builds_what_training_reads_and_dense_tells_the_path():
    X, y = random_data(SIZES, 10, seed=3)
    data = fastgd.Dataset(np.where(X > 0.5, X, 0), y)
    assert data.build_index() is data and not data.dense
    examples = data._prepared.index.examples
    assert examples is not None
    np.testing.assert_array_equal(examples.indices, np.nonzero(data.X)[1])
    assert fastgd.Dataset(X + 1, y, dtype="float64").dense


def test_build_index_on_several_threads_splits_the_rows_as_a_parallel_trainer_would(
        monkeypatch):
    from fastgd import config
    from fastgd.training import Trainer
    X, y = random_data(SIZES, 40, seed=4)
    X = np.where(X > 0.4, X, 0)
    one, two = (fastgd.Dataset(X, y, dtype="float32") for _ in range(2))  # the network's
    assert one.build_index(threads=1)._prepared.index.splits == {}
    blocks = config.ROW_BLOCKS_PER_THREAD * 2
    splits = two.build_index(threads=2)._prepared.index.splits
    assert list(splits) == [blocks]
    built = splits[blocks]
    fresh = fastgd.Dataset(X, y, dtype="float32")
    np.testing.assert_array_equal(fresh.build_index(threads=1)._prepared.row_splits(blocks),
                                  built)
    # the trainer finds them built
    monkeypatch.setattr(fastgd.kernels, "row_splits", None)  # nothing may split again
    trainer = Trainer(fastgd.Network(SIZES, seed=1), two, 5, 0.5, threads=2,
                      kernel="parallel")
    assert trainer.current.splits is built
    # the dense path has no rows to split
    assert fastgd.Dataset(X + 1, y).build_index(threads=2)._prepared.index.splits == {}


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def error(call, *args, **kwargs):
    """The (type, message) call(*args, **kwargs) raises."""
    with pytest.raises((ValueError, TypeError)) as info:
        call(*args, **kwargs)
    return type(info.value), str(info.value)


# -- checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("X, y, message", [
    (np.zeros(5), np.zeros(5, int), r"X must be a 2-D array"),
    (np.array([[0.5, np.nan]]), [0], r"X must be finite, but X\[0, 1\] is nan"),
    (np.array([["a", "b"]]), [0], r"X must hold numbers"),
    (np.zeros((2, 3)), [0], r"y must be a 1-D array of 2 labels"),
    (np.zeros((2, 3)), [0, -1], r"y labels must be class numbers >= 0, but y\[1\] is -1"),
    (np.zeros((2, 3)), [0.5, 1.0], r"y must hold integer labels"),
])
def test_a_dataset_refuses_bad_data_naming_the_argument(X, y, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fastgd.Dataset(X, y)
    with pytest.raises(ValueError, match="dtype must be"):
        fastgd.Dataset(np.zeros((1, 2)), [0], dtype="int8")


def test_what_depends_on_the_network_gives_check_datas_errors():
    X, y = random_data(SIZES, 20, seed=1)
    net = fastgd.Network(SIZES, seed=0)
    for bad_X, bad_y in ((X[:, :5], y), (X, np.where(y == 0, 7, y))):
        plain = error(net.SGD, (bad_X, bad_y), 1, 5, 1.0, verbose=False)
        assert plain[1].startswith("training_data[")
        assert error(net.SGD, fastgd.Dataset(bad_X, bad_y), 1, 5, 1.0, verbose=False) == plain
    with pytest.warns(fastgd.InputScaleWarning, match=r"test_data\[0\] \(X\) has values up to"):
        net.evaluate(fastgd.Dataset(X * 3, y))


def test_float64_inputs_too_large_for_a_float32_network_are_refused_by_name():
    data = fastgd.Dataset(np.full((2, 8), 1e39), [0, 1], dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning is not what the user sees
        with pytest.raises(ValueError, match=r"training_data\[0\] \(X\) must be finite in "
                           r"float32, but training_data\[0\] \(X\)\[0, 0\] is 1e\+39, "
                           r"outside float32's range"):
            fastgd.Network(SIZES, seed=0).SGD(data, 1, 1, 1.0, verbose=False)


def test_evaluation_entry_points_take_a_dataset_alone():
    X, y = random_data(SIZES, 30, seed=2)
    data, net = fastgd.Dataset(X, y), fastgd.Network(SIZES, seed=0)
    assert net.evaluate(data) == net.evaluate(X, y)
    assert net.evaluation(data) == net.evaluation(X, y)
    assert net.cost(data, lmbda=0.5) == net.cost(X, y, lmbda=0.5)
    np.testing.assert_array_equal(net.predict(data), net.predict(X))
    np.testing.assert_array_equal(net.predict(data.X), net.predict(X))
    with pytest.raises(TypeError, match="without y"):
        net.evaluate(data, y)
    with pytest.raises(TypeError, match="y .* is missing"):
        net.evaluate(X)
    with pytest.raises(TypeError, match="or a fastgd.Dataset"):
        net.SGD(X, 1, 5, 1.0)


# -- read-only, private ---------------------------------------------------------------

def test_the_arrays_are_private_and_read_only():
    X, y = random_data(SIZES, 10, seed=3)
    X32 = X.astype(np.float32)
    data = fastgd.Dataset(X32, y)
    assert data.X.dtype == np.float32 and data.y.dtype == np.int64 and len(data) == 10
    X32[0, 0], y[0] = 0.75, (y[0] + 1) % 3  # the caller's arrays: the Dataset keeps its copy
    assert data.X[0, 0] != 0.75 and data.y[0] != y[0]
    for array in data:
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 1
        with pytest.raises(ValueError):
            array.flags.writeable = True  # not even on purpose
    np.testing.assert_array_equal(fastgd.Dataset(X, y, dtype="float64").X, X)


# -- the same bits -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_dataset_and_plain_arrays_train_the_same_bits(dtype):
    """A float64 network converts a float32 Dataset as it converts float32 arrays."""
    X, y = random_data(SIZES, 60, seed=4)
    X = X.astype(np.float32)
    test = random_data(SIZES, 25, seed=5)
    plain, kept = (fastgd.Network(SIZES, seed=3, dtype=dtype) for _ in range(2))
    expected = plain.SGD((X, y), 3, 7, 2.0, test_data=test, verbose=False,
                         monitor_training_cost=True)
    history = kept.SGD(fastgd.Dataset(X, y), 3, 7, 2.0,
                       test_data=fastgd.Dataset(*test, dtype="float64"), verbose=False,
                       monitor_training_cost=True)
    assert kept.params.tobytes() == plain.params.tobytes()
    assert without_seconds(history) == without_seconds(expected)


# -- files ---------------------------------------------------------------------------

def test_save_and_load_give_the_same_dataset(tmp_path):
    X, y = random_data(SIZES, 15, seed=6)
    data = fastgd.Dataset(X, y, dtype="float64")
    path = tmp_path / "data.npz"
    data.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        data.save(path)
    data.save(path, overwrite=True)
    loaded = fastgd.Dataset.load(path)
    assert loaded.dtype == np.float64 and loaded.X.tobytes() == data.X.tobytes()
    np.testing.assert_array_equal(loaded.y, data.y)
    assert loaded.fingerprint() == data.fingerprint()


def write_members(path, **members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in members.items():
            with archive.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(array), allow_pickle=True)


GOOD = dict(format=np.array(dataset.FILE_FORMAT), X=np.zeros((2, 3)), y=np.array([0, 1]))


@pytest.mark.parametrize("change, message", [
    (dict(format=np.array("fastgd-network-1")), "format"),
    (dict(extra=np.zeros(1)), "unexpected member"),
    (dict(X=np.array([[0.5, np.inf, 0.0], [0, 0, 0]])), "must be finite"),
    (dict(X=np.zeros(6)), "X has shape"),
    (dict(X=np.zeros((2, 3), np.int64)), "unexpected dtype"),
    (dict(X=np.array([[None] * 3] * 2, dtype=object)), "unexpected dtype"),
    (dict(y=np.array([0, -4])), "class numbers >= 0"),
    (dict(y=np.array([0, 1, 2])), "more than"),
    (dict(y=np.array([0])), "y has shape"),
    (dict(y=np.array([0.0, 1.0])), "unexpected dtype"),
])
def test_a_crafted_file_is_refused_with_one_value_error(tmp_path, change, message):
    path = tmp_path / "bad.npz"
    members = dict(GOOD, **change)
    write_members(path, **members)
    with pytest.raises(ValueError, match=message):
        fastgd.Dataset.load(path)


def test_load_refuses_what_is_not_a_dataset_file(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not an .npz archive"):
        fastgd.Dataset.load(tmp_path / "text.npz")
    with pytest.raises(ValueError, match="not a regular file"):
        fastgd.Dataset.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        fastgd.Dataset.load(tmp_path / "missing.npz")
    fastgd.Network([3, 2], seed=0).save(tmp_path / "net.npz")
    with pytest.raises(ValueError, match="not a fastgd dataset file"):
        fastgd.Dataset.load(tmp_path / "net.npz")


# -- the cache of plain arrays --------------------------------------------------------

def test_plain_arrays_given_again_reuse_their_index_until_they_change():
    X, y = random_data(SIZES, 40, seed=7)
    first = dataset.prepare((X, y), 8, 3, np.float64, "training_data")
    assert dataset.prepare((X, y), 8, 3, np.float64, "training_data").index is first.index
    X[3, 2] = 0.25 if X[3, 2] != 0.25 else 0.5
    changed = dataset.prepare((X, y), 8, 3, np.float64, "training_data")
    assert changed.index is not first.index
    y[5] = (y[5] + 1) % 3
    assert dataset.prepare((X, y), 8, 3, np.float64, "training_data").index is not changed.index
    X[0, 0] = np.nan  # checked again, not served from the cache
    with pytest.raises(ValueError, match=r"training_data\[0\] \(X\) must be finite"):
        dataset.prepare((X, y), 8, 3, np.float64, "training_data")


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_the_comparison_of_plain_arrays_sees_a_change_in_any_block_of_rows(threads,
                                                                        monkeypatch):
    monkeypatch.setattr(config, "INDEX_ENTRIES_PER_THREAD", 1)  # a block per thread
    X, y = random_data(SIZES, 23, seed=11)
    X = X.astype(np.float32)
    examples = fastgd.kernels.Examples(*fastgd.kernels.nonzero_columns(X), y)
    assert dataset.same_inputs(X, examples, threads)
    for row in range(len(X)):  # first, middle and last rows of every block
        for change in ("nonzero", "zero"):
            changed = X.copy()
            columns = np.flatnonzero(X[row] != 0 if change == "nonzero" else X[row] == 0)
            if columns.size == 0:
                continue
            changed[row, columns[-1]] = 0.0 if change == "nonzero" else 0.75
            assert not dataset.same_inputs(changed, examples, threads), (row, change)


def mutations(X, y):
    """In-place changes a caller might make: a nonzero input, a zero made
    nonzero, a nonzero made zero, rows swapped, a label."""
    zero, nonzero = np.argwhere(X == 0)[0], np.argwhere(X != 0)[0]
    yield lambda: X.__setitem__(tuple(nonzero), X[tuple(nonzero)] / 2)
    yield lambda: X.__setitem__(tuple(zero), 0.5)
    yield lambda: X.__setitem__(tuple(np.argwhere(X != 0)[0]), 0.0)
    yield lambda: X.__setitem__([1, 2], X[[2, 1]])
    yield lambda: y.__setitem__(0, (y[0] + 1) % 3)


@pytest.mark.parametrize("threads", [None, 1], ids=["every thread", "1 thread"])
@pytest.mark.parametrize("zeros, sizes, dtype", [(0.5, SIZES, "float32"),
                                                 (0.05, [7, 9, 4], "float64")],
                         ids=["sparse", "dense"])
def test_training_again_after_an_in_place_change_uses_the_changed_data(zeros, sizes, dtype,
                                                                         threads):
    """Train, change the arrays in place, train again: the same bits as a network
    that trained on fresh copies of the data as it was at each call (on one
    thread, with a core free, X is compared with its index while training)."""
    X, y = random_data(sizes, 50, seed=8, zeros=zeros)
    X = X.astype(dtype)
    net, fresh = (fastgd.Network(sizes, seed=4, dtype=dtype) for _ in range(2))
    steps = [None, *mutations(X, y)]
    for change in steps:
        if change is not None:
            change()
        history = net.SGD((X, y), 1, 5, 2.0, verbose=False, threads=threads)
        expected = fresh.SGD((X.copy(), y.copy()), 1, 5, 2.0, verbose=False, threads=threads)
        assert history.info["inputs"] == ("dense" if zeros < 0.25 else "sparse")
        assert net.params.tobytes() == fresh.params.tobytes()
        assert without_seconds(history) == without_seconds(expected)


def spy_on_deferred_checks(monkeypatch):
    """[started, answers]: how many deferred comparisons ran in a thread of their
    own, and what each answered."""
    started, answers = [], []
    start, same = dataset.DeferredCheck.start, dataset.DeferredCheck.same

    def spied_start(self):
        started.append(1)
        return start(self)

    def spied_same(self, threads=1):
        answers.append(same(self, threads))
        return answers[-1]

    monkeypatch.setattr(dataset.DeferredCheck, "start", spied_start)
    monkeypatch.setattr(dataset.DeferredCheck, "same", spied_same)
    return started, answers


@pytest.mark.skipif(available_cores() < 2, reason="needs a core that training leaves free")
def test_a_comparison_on_a_free_core_undoes_what_trained_on_changed_data(monkeypatch):
    """One thread training plain arrays given again: X is compared with its index
    while the first epoch trains on it; when X has changed, the weights, the
    generator and the History go back to the start of the call and the call
    trains again on X as it is: the bits of a network trained on a fresh copy."""
    started, answers = spy_on_deferred_checks(monkeypatch)
    X, y = random_data(SIZES, 400, seed=8)
    X = X.astype(np.float32)
    test = random_data(SIZES, 50, seed=9)
    net, fresh = (fastgd.Network(SIZES, seed=4) for _ in range(2))
    for change in (None, lambda: X.__setitem__((3, np.flatnonzero(X[3] == 0)[0]), 0.5), None):
        if change is not None:
            change()
        history = net.SGD((X, y), 2, 5, 2.0, test, verbose=False, threads=1)
        expected = fresh.SGD((X.copy(), y.copy()), 2, 5, 2.0, test, verbose=False, threads=1)
        assert net.params.tobytes() == fresh.params.tobytes()
        assert net.rng.bit_generator.state == fresh.rng.bit_generator.state
        assert without_seconds(history) == without_seconds(expected)
    assert started == [1, 1] and answers == [False, True]


@pytest.mark.skipif(available_cores() < 2, reason="needs a core that training leaves free")
def test_data_that_became_dense_in_place_train_on_the_dense_path_after_the_comparison(
        monkeypatch):
    """X filled in place between calls: the deferred comparison says so, and the
    call trains again on a new Trainer, on the dense input path."""
    started, answers = spy_on_deferred_checks(monkeypatch)
    X, y = random_data(SIZES, 300, seed=8)
    X = X.astype(np.float32)
    net, fresh = (fastgd.Network(SIZES, seed=4) for _ in range(2))
    assert net.SGD((X, y), 1, 5, 2.0, verbose=False, threads=1).info["inputs"] == "sparse"
    fresh.SGD((X.copy(), y.copy()), 1, 5, 2.0, verbose=False, threads=1)
    X[X == 0] = 0.125
    history = net.SGD((X, y), 1, 5, 2.0, verbose=False, threads=1)
    expected = fresh.SGD((X.copy(), y.copy()), 1, 5, 2.0, verbose=False, threads=1)
    assert started == [1] and answers == [False]
    assert history.info["inputs"] == expected.info["inputs"] == "dense"
    assert net.params.tobytes() == fresh.params.tobytes()
    assert without_seconds(history) == without_seconds(expected)


def test_training_on_every_core_compares_before_it_trains(monkeypatch):
    """With no core left free (the parallel kernel on every core), the comparison
    runs before the first step, as before: a thread of its own would slow the
    training threads.  (auto on every core defers it when it keeps the serial
    kernel.)"""
    started, answers = spy_on_deferred_checks(monkeypatch)
    X, y = random_data(SIZES, 60, seed=8)
    X = X.astype(np.float32)  # the network's dtype: kept in the cache
    net = fastgd.Network(SIZES, seed=4)
    for _ in range(2):
        net.SGD((X, y), 1, 5, 2.0, verbose=False, threads=available_cores(), kernel="parallel")
    assert started == [] and answers == [True]


def test_a_change_found_before_training_on_every_core_trains_on_the_changed_data(
        monkeypatch):
    """The comparison before the first step finds X changed in place: the call
    trains on X as it is (the bits of a network trained on a fresh copy), not
    on the index of what X held before."""
    started, answers = spy_on_deferred_checks(monkeypatch)
    X, y = random_data(SIZES, 60, seed=8)
    X = X.astype(np.float32)
    net, fresh = (fastgd.Network(SIZES, seed=4) for _ in range(2))
    options = dict(verbose=False, threads=available_cores(), kernel="parallel")
    for change in (None, lambda: X.__setitem__((3, np.flatnonzero(X[3] == 0)[0]), 0.5)):
        if change is not None:
            change()
        history = net.SGD((X, y), 1, 5, 2.0, **options)
        expected = fresh.SGD((X.copy(), y.copy()), 1, 5, 2.0, **options)
        assert net.params.tobytes() == fresh.params.tobytes()
        assert without_seconds(history) == without_seconds(expected)
    assert started == [] and answers == [False]


def test_cache_entries_go_with_their_arrays():
    X, y = random_data(SIZES, 20, seed=9)
    dataset.prepare((X, y), 8, 3, np.float64, "training_data")
    key = id(X)
    assert key in dataset._entries
    del X
    assert key not in dataset._entries


# -- fingerprints and checkpoints -----------------------------------------------------

def test_the_fingerprint_is_the_same_for_a_dataset_and_plain_arrays_and_sees_changes():
    X, y = random_data(SIZES, 40, seed=10)
    data = fastgd.Dataset(X, y, dtype="float64")
    assert data.fingerprint() == dataset.prepare((X, y), 8, 3, np.float64, "x").fingerprint()
    for change in mutations(X, y):
        before = dataset.prepare((X, y), 8, 3, np.float64, "x").fingerprint()
        change()
        assert dataset.prepare((X, y), 8, 3, np.float64, "x").fingerprint() != before
    assert fastgd.Dataset(X, y).fingerprint() != fastgd.Dataset(X, y, dtype="float64").fingerprint()


def tiny_data(n=300, seed=0):
    X = np.random.default_rng(seed).random((n, 8))
    return X, np.argmax(X[:, :3], axis=1)


def rewrite_state(path, change):
    """The checkpoint at path with its state changed by change(state)."""
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    state = json.loads(str(members["state"]))
    change(state)
    members["state"] = np.array(json.dumps(state))
    with open(path, "wb") as f:
        np.savez(f, **members)


def test_checkpoints_resume_with_datasets_and_with_old_sha256_fingerprints(tmp_path):
    data, test = tiny_data(), tiny_data(60, seed=1)
    whole = fastgd.Network(SIZES, seed=5)
    expected = whole.SGD(data, 4, 7, 2.0, test_data=test, verbose=False, kernel="serial")
    path = tmp_path / "run.ckpt"
    fastgd.Network(SIZES, seed=5).SGD(fastgd.Dataset(*data), 2, 7, 2.0, verbose=False,
                                      test_data=fastgd.Dataset(*test), kernel="serial",
                                      checkpoint=path)
    assert read_checkpoint(path)[1]["fingerprint_algorithm"] == dataset.FINGERPRINT_ALGORITHM
    # resumed from plain arrays: the fingerprint is of the data, not of their container
    net, history = fastgd.resume(path, data, test, epochs=3, verbose=False, kernel="serial",
                                 checkpoint=tmp_path / "three.ckpt")
    with pytest.raises(ValueError, match="written for other training_data"):
        fastgd.resume(path, fastgd.Dataset(data[0][:-1], data[1][:-1]), test, verbose=False)

    # a checkpoint from before the algorithm was tagged: SHA-256 of X and y
    def as_old(state):
        del state["fingerprint_algorithm"]
        state["fingerprint"] = {
            "training_data": data_fingerprint(np.asarray(data[0], np.float32), data[1]),
            "test_data": data_fingerprint(np.asarray(test[0], np.float32), test[1])}
    rewrite_state(path, as_old)
    net, history = fastgd.resume(path, fastgd.Dataset(*data), fastgd.Dataset(*test), epochs=4,
                                 verbose=False, kernel="serial")
    assert net.params.tobytes() == whole.params.tobytes()
    assert without_seconds(history) == without_seconds(expected)
    # and it was written again with the new fingerprint
    assert read_checkpoint(path)[1]["fingerprint_algorithm"] == dataset.FINGERPRINT_ALGORITHM
    rewrite_state(path, as_old)
    with pytest.raises(ValueError, match="written for other test_data"):
        fastgd.resume(path, data, tiny_data(60, seed=2), verbose=False)
    rewrite_state(path, lambda state: state.update(fingerprint_algorithm="md5"))
    with pytest.raises(ValueError, match="'md5', which this fastgd does not know"):
        fastgd.resume(path, data, test, verbose=False)


def test_load_mnist_can_give_datasets(mnist):
    datasets = fastgd.load_mnist(as_dataset=True, validation_size=0)
    assert [type(d) for d in datasets] == [fastgd.Dataset] * 3
    (X, y), _, (test_X, test_y) = mnist
    assert len(datasets[0]) == 60_000 and len(datasets[1]) == 0
    np.testing.assert_array_equal(datasets[0].X[:50_000], X)
    np.testing.assert_array_equal(datasets[2].y, test_y)
    assert type(fastgd.load_mnist()[0]) is tuple  # the default is unchanged


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_mnists_datasets_know_what_their_own_arrays_say(dtype):
    """load_mnist counts a Dataset's index facts on the uint8 pixels, not on X:
    the same facts as from X (nonzero fraction, input path, largest input and label)."""
    datasets = fastgd.load_mnist(dtype=dtype, validation_size=0, as_dataset=True)
    for data in datasets:
        prepared = data._prepared
        X, y = data.X, data.y
        assert X.dtype == np.dtype(dtype) and y.dtype == np.int64
        facts = dataset._Index.of(X, y)
        assert (prepared.index.dense, prepared.index.nonzero_fraction,
                prepared.index.largest_input, prepared.index.largest_label) == \
            (facts.dense, facts.nonzero_fraction, facts.largest_input, facts.largest_label)


def test_a_dataset_pickles_as_its_arrays():
    """For other processes (dask, multiprocessing): checked and indexed again there."""
    import pickle
    X, y = random_data(SIZES, 12, seed=11)
    data = fastgd.Dataset(X, y)
    copy = pickle.loads(pickle.dumps(data))
    assert copy.X.tobytes() == data.X.tobytes() and copy.fingerprint() == data.fingerprint()
    assert not copy.X.flags.writeable


def test_distributed_training_takes_a_dataset(mnist):
    """fastgd.distributed (here its in-process shards) checks data with check_data."""
    (X, y), _, _ = mnist
    X, y = X[:1500], y[:1500]
    plain, kept = (fastgd.Network([784, 10, 10], seed=1) for _ in range(2))
    expected = plain.SGD((X, y), 1, 500, 3.0, shards=2, verbose=False, test_data=(X, y))
    history = kept.SGD(fastgd.Dataset(X, y), 1, 500, 3.0, shards=2, verbose=False,
                       test_data=fastgd.Dataset(X, y))
    assert kept.params.tobytes() == plain.params.tobytes()
    assert without_seconds(history) == without_seconds(expected)


def test_the_fingerprint_is_computed_only_for_a_checkpoint(tmp_path, monkeypatch):
    calls = []
    original = dataset.Prepared.fingerprint
    monkeypatch.setattr(dataset.Prepared, "fingerprint",
                        lambda self: calls.append(1) or original(self))
    monkeypatch.setattr(fastgd.training.checkpoint, "data_fingerprint",  # old checkpoints' only
                        lambda X, y: pytest.fail("SHA-256 of the data computed"))
    data, test = tiny_data(), tiny_data(60, seed=1)
    fastgd.Network(SIZES, seed=5).SGD(data, 2, 7, 2.0, test_data=test, verbose=False)
    assert calls == []
    fastgd.Network(SIZES, seed=5).SGD(data, 2, 7, 2.0, test_data=test, verbose=False,
                                      checkpoint=tmp_path / "run.ckpt")
    assert len(calls) == 2  # training and test data, once each for the run
