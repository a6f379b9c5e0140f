"""Files from elsewhere are untrusted, flags are bools, one network trains in one
thread at a time: crafted model files and checkpoints (generated here) give one
ValueError each and never choose where fastgd writes; string flags and complex
numbers are refused; concurrent training is refused."""

import json
import threading
import warnings
import zipfile

import numpy as np
import pytest

import fastgd
from fastgd.training import checkpoint as checkpoint_module
from fastgd.training.options import TrainingOptions

SIZES = [8, 6, 3]


def tiny_data(n=300, seed=0):
    """n inputs of 8 numbers in [0, 1), labelled by which of the first 3 is largest."""
    X = np.random.default_rng(seed).random((n, 8))
    return X, np.argmax(X[:, :3], axis=1)


DATA, TEST = tiny_data(), tiny_data(60, seed=1)


# -- model files: zip members the reader must refuse as ValueError ------------------------

def _rewrite(source, target, compression):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info))


def _patch_central_directory(path, offset, value):
    """Set the byte at ``offset`` of every central directory entry (flags at 8,
    compression method at 10) with ``value(old)``."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start != -1:
        data[start + offset] = value(data[start + offset])
        start = data.find(b"PK\x01\x02", start + 1)
    path.write_bytes(bytes(data))


def _corrupt_deflate(path):
    """Damage the compressed data of the largest member (a weights array)."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    data = bytearray(path.read_bytes())
    name_length = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28],
                                 "little")
    extra_length = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30],
                                  "little")
    begin = info.header_offset + 30 + name_length + extra_length
    data[begin:begin + info.compress_size] = b"\xff" * info.compress_size
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["bzip2", "lzma", "unknown method", "encrypted",
                                    "corrupt deflate", "truncated deflate"])
def test_model_files_with_other_compressions_or_damaged_streams_are_one_value_error(
        tmp_path, damage):
    good, path = tmp_path / "good.npz", tmp_path / "crafted.npz"
    fastgd.Network([20, 30, 10], seed=0).save(good)
    if damage in ("bzip2", "lzma"):
        _rewrite(good, path, zipfile.ZIP_BZIP2 if damage == "bzip2" else zipfile.ZIP_LZMA)
    else:
        _rewrite(good, path, zipfile.ZIP_DEFLATED)
    if damage == "unknown method":
        _patch_central_directory(path, 10, lambda old: 99)
    elif damage == "encrypted":
        _patch_central_directory(path, 8, lambda old: old | 1)
    elif damage == "corrupt deflate":
        _corrupt_deflate(path)
    elif damage == "truncated deflate":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2] + data[len(data) // 2 + 200:])
    with pytest.raises(ValueError, match="crafted.npz"):
        fastgd.Network.load(path)


def test_deflated_model_files_load(tmp_path):
    """np.savez_compressed's archives (deflate) are what the reader must keep reading."""
    net, path = fastgd.Network([20, 30, 10], seed=0), tmp_path / "deflated.npz"
    net.save(tmp_path / "stored.npz")
    _rewrite(tmp_path / "stored.npz", path, zipfile.ZIP_DEFLATED)
    assert fastgd.Network.load(path).params.tobytes() == net.params.tobytes()


def test_a_header_that_disagrees_with_the_weights_is_refused(tmp_path):
    net, path = fastgd.Network([8, 6, 3], seed=0), tmp_path / "crafted.npz"
    arrays = {"format": np.array("fastgd-network-1"), "sizes": np.array([8, 100, 3])}
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"weights_{l}"], arrays[f"biases_{l}"] = w, b
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="expected"):
        fastgd.Network.load(path)


def test_a_named_pipe_is_refused_at_once(tmp_path):
    import os
    fifo = tmp_path / "fifo.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="named pipe"):
        fastgd.resume(fifo, DATA)


# -- checkpoints: every field checked before any is used -------------------------------------

@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """A checkpoint after 2 of 4 epochs, with test data, and its arrays."""
    folder = tmp_path_factory.mktemp("honest")
    path = folder / "run.ckpt"
    fastgd.Network(SIZES, seed=5).SGD(DATA, 2, 10, 2.0, test_data=TEST, verbose=False,
                                      kernel="serial", checkpoint=path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = dict(archive)
    return path, arrays


def _crafted(honest, tmp_path, change):
    """A copy of the honest checkpoint with its state changed by ``change(state)``."""
    _, arrays = honest
    state = json.loads(str(arrays["state"]))
    changed = change(state)
    text = changed if isinstance(changed, str) else json.dumps(state)
    path = tmp_path / "crafted.ckpt"
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to the name
        np.savez(f, **dict(arrays, state=np.array(text)))
    return path


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(state):
        target = state
        for key in keys[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return change


_DELETE = object()


@pytest.mark.parametrize("change", [
    _set("epoch", -3), _set("epoch", 10**30), _set("epoch", "2"), _set("epoch", True),
    _set("epoch", 1.5), _set("epoch", 3),
    _set("position", -1), _set("position", 10**18), _set("position", "0"),
    _set("position", 7), _set("position", 10**6 * 10),
    _set("partial_cost", "x"), _set("partial_cost", -1.0), _set("partial_cost", 2.0),
    _set("definition", "epochs", -1), _set("definition", "epochs", "4"),
    _set("definition", "epochs", 1),
    _set("definition", "mini_batch_size", "10"), _set("definition", "mini_batch_size", 0),
    _set("definition", "mini_batch_size", 10**9),
    _set("definition", "eta", -2.0), _set("definition", "eta", "2"),
    _set("definition", "shuffle", "False"), _set("definition", "reduction", "avg"),
    _set("definition", "monitor_training_cost", 1), _set("definition", "checkpoint_every", 0),
    _set("definition", "save_best", 3), _set("definition", "lmbda", -1),
    _set("definition", "shuffle", _DELETE),
    _set("seed", -1), _set("seed", "5"), _set("dtype", "float64"),
    _set("rng", "x"), _set("rng", {"bit_generator": "MT19937"}), _set("rng", _DELETE),
    # numbers numpy's generator takes as an OverflowError
    _set("rng", "state", "state", -1), _set("rng", "state", "inc", 2**300),
    _set("fingerprint", None), _set("fingerprint", "training_data", 3),
    _set("history", "records", 3), _set("history", "records", []),
    _set("history", "info", []), _set("history", "info", "dtype", "float64"),
    _set("history", "diverged", 3), _set("history", "best_saved", {"epoch": -1, "path": 3}),
    _set("history", _DELETE),
    lambda state: state["history"]["records"].reverse(),
    lambda state: state["history"]["records"][0].update(epoch=-3),
    lambda state: state["history"]["records"][1].update(cost="0.1"),
    lambda state: state["history"]["records"][1].pop("correct"),
    lambda state: state["history"]["records"][1].update(correct=10**9),  # of 60 inputs
    lambda state: "[1, 2]", lambda state: "{not json", lambda state: "[" * 100000,
])
def test_a_crafted_checkpoint_is_one_value_error(honest, tmp_path, change):
    path = _crafted(honest, tmp_path, change)
    with pytest.raises(ValueError, match="crafted.ckpt"):  # every message names the file
        fastgd.resume(path, DATA, TEST, epochs=4, verbose=False, kernel="serial")


def test_a_checkpoint_never_chooses_where_resume_writes(honest, tmp_path):
    victim = tmp_path / "victim.npz"
    victim.write_bytes(b"the user's file")
    path = _crafted(honest, tmp_path, _set("definition", "save_best", str(victim)))
    for overwrite in (False, True):
        net, history = fastgd.resume(path, DATA, TEST, epochs=4, verbose=False,
                                     kernel="serial", overwrite=overwrite)
        assert victim.read_bytes() == b"the user's file"
        assert history.best_saved is None or history.best_saved["path"] != str(victim)


def test_resume_keeps_the_save_best_its_caller_gives_again(tmp_path):
    path, best = tmp_path / "run.ckpt", tmp_path / "best.npz"
    fastgd.Network(SIZES, seed=5).SGD(DATA, 2, 10, 2.0, test_data=TEST, verbose=False,
                                      kernel="serial", checkpoint=path, save_best=best)
    # the run's own save_best, given again: replaced without overwrite
    _, history = fastgd.resume(path, DATA, TEST, epochs=4, verbose=False, kernel="serial",
                               save_best=best)
    assert history.best_saved["path"] == str(best)
    # another existing file is not
    other = tmp_path / "other.npz"
    other.write_bytes(b"x")
    with pytest.raises(FileExistsError, match="save_best"):
        fastgd.resume(path, DATA, TEST, epochs=6, verbose=False, save_best=other)


def test_an_honest_checkpoint_with_a_long_history_resumes(honest, tmp_path):
    """A checkpoint fastgd wrote after 26,000 epochs holds about 18 MB of History;
    it must resume (written here by fastgd's own writer, from a real state)."""
    source, _ = honest
    net, state = checkpoint_module.read_checkpoint(source)
    epochs = 26_000
    records = state["history"]["records"]
    state["history"]["records"] = [dict(records[i % 2], epoch=i, seconds=0.123456789012345,
                                        cost=0.1234567890123456 + i * 1e-9)
                                   for i in range(epochs)]
    state["epoch"], state["definition"]["epochs"] = epochs, epochs
    del state["path"]
    path = tmp_path / "long.ckpt"
    checkpoint_module.write_checkpoint(path, net, state)
    assert len(json.dumps(state)) > 2**24 // 4  # more than the limit this file once met
    with warnings.catch_warnings():  # its made-up costs read as a stalled run
        warnings.simplefilter("ignore", fastgd.DivergenceWarning)
        resumed, history = fastgd.resume(path, DATA, TEST, epochs=epochs + 1, verbose=False,
                                         kernel="serial")
    assert len(history) == epochs + 1 and history[-1]["epoch"] == epochs


def test_sgd_names_a_directory_given_as_checkpoint(tmp_path):
    with pytest.raises(IsADirectoryError, match="checkpoint"):
        fastgd.Network(SIZES, seed=0).SGD(DATA, 1, 10, 2.0, verbose=False, checkpoint=tmp_path)


# -- booleans are booleans, numbers are real ---------------------------------------------------

@pytest.mark.parametrize("flag", ["shuffle", "verbose", "monitor_training_cost", "overwrite",
                                  "handle_signals"])
@pytest.mark.parametrize("value", ["False", "True", 0, 1, None, np.array([True])])
def test_flags_take_bools_only(flag, value):
    with pytest.raises(TypeError, match=f"{flag} must be True or False"):
        TrainingOptions(**{flag: value})


def test_string_flags_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_bytes(b"an existing checkpoint")
    net = fastgd.Network(SIZES, seed=0)
    with pytest.raises(TypeError, match="overwrite"):
        net.SGD(DATA, 1, 10, 2.0, verbose=False, checkpoint=path, overwrite="False")
    with pytest.raises(TypeError, match="shuffle"):
        net.SGD(DATA, 1, 10, 2.0, verbose=False, shuffle="False")
    with pytest.raises(TypeError, match="overwrite"):
        net.save(path, overwrite="False")
    with pytest.raises(TypeError, match="verbose"):
        fastgd.resume(path, DATA, verbose="no")
    assert path.read_bytes() == b"an existing checkpoint"


def test_errors_about_info_name_info():
    net = fastgd.Network(SIZES, seed=0)
    with pytest.raises(TypeError, match="info must be a dict"):
        net.SGD(DATA, 1, 10, 2.0, verbose=False, info=3)
    with pytest.raises(ValueError, match=r"info must not hold \['dtype'\]"):
        net.SGD(DATA, 1, 10, 2.0, verbose=False, info={"dtype": 1})


@pytest.mark.parametrize("sizes", ["8,6,3", {8: 1, 3: 2}, {8, 3}, b"\x08\x03"])
def test_sizes_in_no_order_or_as_text_are_refused(sizes):
    """A dict gave its keys and a set its own order: a network of other sizes."""
    with pytest.raises(TypeError, match="sizes must be a list of layer sizes"):
        fastgd.Network(sizes)


def test_complex_numbers_are_refused():
    net = fastgd.Network(SIZES, seed=0)
    X, y = DATA
    with pytest.raises(TypeError, match="complex"):
        net.predict(X + 1j)
    with pytest.raises(TypeError, match="complex"):
        net.SGD((X.astype(complex), y), 1, 10, 2.0, verbose=False)
    with pytest.raises(TypeError, match=r"weights\[0\] must hold real numbers"):
        fastgd.Network(SIZES, [w + 1j for w in net.weights], net.biases)
    with pytest.raises(TypeError, match=r"biases\[0\] must hold"):
        fastgd.Network(SIZES, net.weights, [b.astype(str) for b in net.biases])


def test_comm_must_be_a_communicator():
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        fastgd.Network(SIZES, seed=0).SGD(DATA, 1, 10, 2.0, verbose=False, comm="x")


# -- one network, one training at a time ---------------------------------------------------------

def test_a_network_being_trained_refuses_other_threads(monkeypatch):
    net, other = fastgd.Network(SIZES, seed=0), fastgd.Network(SIZES, seed=1)
    training, checked = threading.Event(), threading.Event()
    from fastgd.training import sgd
    diagnose = sgd.diagnose

    def paused(*args):  # after the first epoch: hold the training until checked
        training.set()
        assert checked.wait(60)
        return diagnose(*args)
    monkeypatch.setattr(sgd, "diagnose", paused)
    results = {}
    thread = threading.Thread(target=lambda: results.update(
        history=net.SGD(DATA, 2, 10, 2.0, verbose=False, kernel="serial")))
    thread.start()
    try:
        assert training.wait(120)
        with pytest.raises(RuntimeError, match="being trained already"):
            net.SGD(DATA, 1, 10, 2.0, verbose=False, kernel="serial")
        with pytest.raises(RuntimeError, match="being trained in another thread"):
            net.predict(DATA[0])
        with pytest.raises(RuntimeError, match="being trained in another thread"):
            net.weights = net.weights
        other.predict(DATA[0])  # other networks are free
    finally:
        checked.set()
        thread.join(120)
    assert len(results["history"]) == 2
    net.predict(DATA[0])  # free again once SGD has returned


def test_a_network_being_read_by_another_thread_cannot_start_training():
    net = fastgd.Network(SIZES, seed=0)
    reading, release = threading.Event(), threading.Event()
    feedforward = net._feedforward

    def slow(X):
        reading.set()
        assert release.wait(60)
        return feedforward(X)
    net._feedforward = slow
    thread = threading.Thread(target=net.predict, args=(DATA[0],))
    thread.start()
    try:
        assert reading.wait(60)
        with pytest.raises(RuntimeError, match="in use by another thread"):
            net.SGD(DATA, 1, 10, 2.0, verbose=False, kernel="serial")
    finally:
        release.set()
        thread.join(60)
    del net._feedforward
    net.SGD(DATA, 1, 10, 2.0, verbose=False, kernel="serial")  # and can once it returns


def test_several_threads_may_predict_at_once():
    net = fastgd.Network(SIZES, seed=0)
    expected = net.predict(DATA[0])
    results = [None] * 4

    def work(i):
        results[i] = [net.predict(DATA[0]) for _ in range(20)]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all((r == expected).all() for rs in results for r in rs)


# -- the command line's options recorded in a checkpoint ------------------------------------

@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory):
    """A checkpoint written by ``fastgd train`` after 1 of 2 epochs, and its arrays."""
    from fastgd.cli import main

    path = tmp_path_factory.mktemp("cli") / "run.ckpt"
    assert main(["train", "--sizes", "784,8,10", "--epochs", "1", "--train-size", "200",
                 "--validation-size", "100", "--seed", "1", "--kernel", "serial",
                 "--checkpoint", str(path)]) == 0
    with np.load(path, allow_pickle=False) as archive:
        return path, dict(archive)


@pytest.mark.parametrize("key, value", [
    ("eta", "3.0"), ("eta", -1.0), ("eta", [3.0]), ("mini_batch_size", 0),
    ("mini_batch_size", "10"), ("seed", {"a": 1}), ("train_size", True),
    ("mode", "sideways"), ("cost", "hinge"), ("monitor_training_cost", "False"),
    ("data", 3), ("validation_size", 1.5), ("on_divergence", None),
    # options the run's definition holds too must agree with it: the run resumes
    # with the definition's, and the header would describe another
    ("eta", 9.0), ("mini_batch_size", 20), ("mode", "online"), ("lmbda", 1.0),
    ("eta_schedule", "halve-on-plateau"), ("on_divergence", "warn"),
])
def test_a_checkpoint_whose_recorded_options_the_command_line_could_not_take_is_refused(
        cli_checkpoint, tmp_path, capsys, key, value):
    from fastgd.cli import main

    path = _crafted(cli_checkpoint, tmp_path, _set("history", "info", "cli", key, value))
    assert main(["train", "--resume", str(path), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "crafted.ckpt is damaged" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("key, value", [("data", "/"), ("train_size", 10**9)])
def test_an_error_from_an_option_a_checkpoint_records_names_the_checkpoint(
        cli_checkpoint, tmp_path, capsys, key, value):
    """--data and --train-size are read from the checkpoint: an error about them
    must say where they came from (the user gave neither)."""
    from fastgd.cli import main

    path = _crafted(cli_checkpoint, tmp_path, _set("history", "info", "cli", key, value))
    assert main(["train", "--resume", str(path), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert f"(with the options --resume {path} records)" in err and "Traceback" not in err


def test_a_checkpoint_of_the_command_line_resumes_with_the_options_it_records(
        cli_checkpoint, tmp_path, capsys):
    from fastgd.cli import main

    path = _crafted(cli_checkpoint, tmp_path, lambda state: None)  # the same state
    assert main(["train", "--resume", str(path), "--epochs", "2"]) == 0
    assert "Epoch 1" in capsys.readouterr().out
