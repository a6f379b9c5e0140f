"""Files from elsewhere are untrusted, and outputs replace only regular files.

Pipes, devices and sockets given as inputs must fail at once (a read from a FIFO
blocks forever), inputs that disagree must not be silently picked between, and
no output may replace a device node, a named pipe or a socket.
"""

import gzip
import os
import socket
import struct

import numpy as np
import pytest

import fastgd
from fastgd._files import atomic_write, check_writable, read_regular_file
from fastgd.data import MNIST_FILES, IDXError, load_mnist, read_digit_image, read_idx

from test_data import idx_bytes, write_dataset

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@needs_fifo
def test_a_named_pipe_is_refused_as_an_idx_file_an_image_and_a_data_file(tmp_path, fifo):
    with pytest.raises(IDXError, match="pipe.*named pipe"):
        read_idx(fifo)
    pytest.importorskip("PIL")
    with pytest.raises(ValueError, match="image .*pipe.*named pipe"):
        read_digit_image(fifo)


@needs_fifo
def test_a_named_pipe_in_a_data_folder_is_named(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / MNIST_FILES[0]).unlink()
    os.mkfifo(tmp_path / MNIST_FILES[0])
    with pytest.raises(IDXError, match=f"{MNIST_FILES[0]} is a named pipe"):
        load_mnist(tmp_path, validation_size=2)


def test_raw_and_gzip_copies_that_disagree_are_an_error(tmp_path):
    arrays = write_dataset(tmp_path)
    other = arrays[MNIST_FILES[1]].copy()
    other[0] = (other[0] + 1) % 10
    (tmp_path / (MNIST_FILES[1] + ".gz")).write_bytes(gzip.compress(idx_bytes(other)))
    with pytest.raises(IDXError, match="disagree"):
        load_mnist(tmp_path, validation_size=2)
    # two copies that agree are fine
    (tmp_path / (MNIST_FILES[1] + ".gz")).write_bytes(
        gzip.compress(idx_bytes(arrays[MNIST_FILES[1]])))
    (X, y), _, _ = load_mnist(tmp_path, validation_size=2)
    assert np.array_equal(y, arrays[MNIST_FILES[1]][:4])


def test_a_gzip_bomb_is_not_unpacked_past_its_header(tmp_path):
    """A header that promises 4 bytes, followed by 80 MB of zeros that compress
    to almost nothing: rejected as trailing data without inflating it all."""
    header = bytes([0, 0, 8, 1]) + struct.pack(">i", 4)
    bomb = gzip.compress(header + bytes(4) + bytes(80 << 20), compresslevel=9)
    assert len(bomb) < 1 << 20
    path = tmp_path / "bomb.gz"
    path.write_bytes(bomb)
    with pytest.raises(IDXError, match="more than .* trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize("flag", ["verify", "as_dataset"])
@pytest.mark.parametrize("value", ["False", "True", 0, 1, None])
def test_flags_are_booleans(flag, value):
    if flag == "verify" and value is None:
        return  # verify=None means "the default for this folder"
    with pytest.raises(TypeError, match=f"{flag} must be True or False"):
        load_mnist(**{flag: value})


@needs_fifo
def test_outputs_never_replace_a_pipe(fifo):
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="named pipe.*only regular files"):
            atomic_write(fifo, lambda f: f.write(b"x"), overwrite=overwrite)
    with pytest.raises(ValueError, match="--save .*named pipe"):
        check_writable(fifo, "--save")
    assert os.path.exists(fifo) and not os.path.isfile(fifo)


def test_outputs_never_replace_a_device():
    if not os.path.exists(os.devnull) or os.path.isfile(os.devnull):
        pytest.skip("no device node for the null device here")
    with pytest.raises(ValueError, match="character device"):
        atomic_write(os.devnull, lambda f: f.write(b"x"), overwrite=True)
    with pytest.raises(ValueError, match="--history .*character device"):
        check_writable(os.devnull, "--history")
    net = fastgd.Network([4, 3, 2], seed=0)
    with pytest.raises(ValueError, match="character device"):
        net.save(os.devnull, overwrite=True)


def test_outputs_never_replace_a_socket(tmp_path):
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no Unix sockets here")
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(ValueError, match="socket"):
            atomic_write(path, lambda f: f.write(b"x"), overwrite=True)


def test_a_link_to_a_file_is_written_through(tmp_path):
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    atomic_write(link, lambda f: f.write(b"new"), overwrite=True)
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_reading_a_regular_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert read_regular_file(path, "file") == b"abc"
    with pytest.raises(IsADirectoryError, match="folder .* is a directory"):
        read_regular_file(tmp_path, "folder")
    with pytest.raises(FileNotFoundError, match="model .*nothing: no such file"):
        read_regular_file(tmp_path / "nothing", "model")


def test_a_path_must_be_a_path_never_a_file_descriptor(tmp_path, capsys):
    """An int is taken by os.stat and open as an open file descriptor: read_idx(5)
    read whatever fd 5 was.  Every entry point that takes a path refuses one with
    a TypeError naming the argument, and an empty path with a ValueError."""
    r, w = os.pipe()  # an open descriptor that a path check could be fooled by
    try:
        for call, name in ((lambda p: read_idx(p), "IDX file"),
                           (lambda p: fastgd.Network.load(p), "path"),
                           (lambda p: fastgd.Network([4, 2]).save(p), "path"),
                           (lambda p: fastgd.Dataset(np.zeros((2, 4)), [0, 1]).save(p), "path"),
                           (lambda p: fastgd.Dataset.load(p), "path"),
                           (lambda p: read_digit_image(p), "image"),
                           (lambda p: check_writable(p, "--save"), "--save")):
            with pytest.raises(TypeError, match=f"{name} must be a file path"):
                call(r)
            with pytest.raises(ValueError, match="empty path"):
                call("")
        X, y = np.random.default_rng(0).random((20, 4)), np.arange(20) % 2
        with pytest.raises(TypeError, match="checkpoint must be a file path"):
            fastgd.Network([4, 2]).SGD((X, y), 1, 10, 1.0, checkpoint=w, verbose=False)
    finally:
        os.close(r)
        os.close(w)
    # the command line: an empty output path is refused, not silently skipped
    from fastgd.cli import main
    assert main(["train", "--save", ""]) == 2
    assert "--save is an empty path" in capsys.readouterr().err


def test_a_directory_given_to_save_is_named_as_one(tmp_path):
    for save in (fastgd.Network([4, 2]).save,
                 fastgd.Dataset(np.zeros((2, 4)), [0, 1]).save):
        for overwrite in (False, True):
            with pytest.raises(IsADirectoryError, match="is a directory"):
                save(tmp_path, overwrite=overwrite)


def test_read_idx_checks_the_digest_it_is_given(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)))
    with pytest.raises(TypeError, match="sha256 must be a hex digest"):
        read_idx(path, sha256=5)
