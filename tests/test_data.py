"""Tests for fastgd.data: the bundled MNIST and IDX files made here."""

import gzip
import struct

import numpy as np
import pytest

import fastgd.data
from fastgd.data import (
    IDXError,
    MNIST_FILES,
    MNIST_SHA256,
    _one_gzip_member,
    load_idx_dataset,
    load_mnist,
    mnist_dir,
    read_idx,
)


def idx_bytes(array, *, type_byte=0x08, shape=None, extra=b"", cut=0):
    """IDX bytes for ``array`` (uint8), optionally with a forged header/length."""
    array = np.asarray(array, dtype=np.uint8)
    shape = array.shape if shape is None else shape
    header = bytes([0, 0, type_byte, len(shape)]) + struct.pack(f">{len(shape)}i", *shape)
    data = header + array.tobytes() + extra
    return data[:len(data) - cut]


def write(path, data, *, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_dataset(directory, *, n_train=6, n_test=4, hw=(3, 2), gz=False, labels=None):
    """A tiny MNIST-style data set with the canonical names; returns the arrays."""
    rng = np.random.default_rng(0)
    arrays = {
        MNIST_FILES[0]: rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        MNIST_FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        MNIST_FILES[2]: rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        MNIST_FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays.update(labels or {})
    for name, array in arrays.items():
        write(directory / (name + (".gz" if gz else "")), idx_bytes(array), gz=gz)
    return arrays


# --- the bundled MNIST ---------------------------------------------------------

@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_bundled_shapes_and_dtypes(mnist):
    (X, y), (Xv, yv), (Xt, yt) = mnist
    assert X.shape == (50000, 784) and y.shape == (50000,)
    assert Xv.shape == (10000, 784) and yv.shape == (10000,)
    assert Xt.shape == (10000, 784) and yt.shape == (10000,)
    for X_, y_ in mnist:
        assert X_.dtype == np.float32 and y_.dtype == np.int64
        assert X_.flags.writeable and X_.flags.c_contiguous


def test_bundled_values_are_pixels_over_256(mnist):
    for X, y in mnist:
        assert X.min() == 0.0 and X.max() == np.float32(255 / 256)
        pixels = X * 256
        assert np.array_equal(pixels, np.round(pixels))
        assert y.min() == 0 and y.max() == 9


def test_bundled_labels(mnist):
    (_, y), _, (_, yt) = mnist
    assert y[0] == 5 and yt[0] == 7
    counts = np.bincount(yt, minlength=10)
    assert counts.sum() == 10000 and ((800 <= counts) & (counts <= 1200)).all()


def test_bundled_checksums():
    directory = mnist_dir()
    for name, digest in MNIST_SHA256.items():
        assert len(digest) == 64
        assert (directory / (name + ".gz")).is_file()
    (images, labels), (test_images, test_labels) = load_idx_dataset(verify=True)
    assert images.shape == (60000, 28, 28) and test_images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8 and not images.flags.writeable
    # The labels file is small: verify it by hand through read_idx as well.
    path = directory / "t10k-labels-idx1-ubyte.gz"
    assert np.array_equal(read_idx(path, sha256=MNIST_SHA256["t10k-labels-idx1-ubyte"]),
                          test_labels)
    with pytest.raises(IDXError, match="t10k-labels-idx1-ubyte.gz.*SHA-256"):
        read_idx(path, sha256="0" * 64)


def test_each_call_returns_fresh_arrays(mnist):
    (X, y), _, _ = load_mnist()
    X[0] = 1.0
    y[0] = 3
    (X2, y2), _, _ = load_mnist()
    assert X2[0].max() < 1.0 and y2[0] == 5
    assert np.array_equal(X2, mnist[0][0]) and np.array_equal(y2, mnist[0][1])


def test_reading_the_bundled_set_in_a_thread_gives_the_same_arrays(monkeypatch):
    """start_reading_bundled reads in a thread, and a load while it reads waits
    for its arrays (read once) rather than reading again."""
    expected = load_idx_dataset()
    monkeypatch.setattr(fastgd.data, "_bundled_cache", {})
    reads = []
    real = fastgd.data._load_dir
    monkeypatch.setattr(fastgd.data, "_load_dir",
                        lambda *args: reads.append(args) or real(*args))
    fastgd.data.start_reading_bundled()
    got = load_idx_dataset()
    assert len(reads) == 1
    for (images, labels), (images2, labels2) in zip(got, expected):
        assert np.array_equal(images, images2) and np.array_equal(labels, labels2)


def test_float64_and_validation_size(mnist):
    (X, y), (Xv, yv), (Xt, _) = load_mnist(dtype=np.float64, validation_size=0)
    assert X.dtype == Xv.dtype == Xt.dtype == np.float64
    assert X.shape == (60000, 784) and Xv.shape == (0, 784) and yv.shape == (0,)
    assert np.array_equal(X[:50000], mnist[0][0]) and np.array_equal(X[50000:], mnist[1][0])


@pytest.mark.parametrize("bad", [-1, 60000, 70000, 1.5, "10", True, None])
def test_bad_validation_size(bad):
    with pytest.raises(ValueError, match="validation_size"):
        load_mnist(validation_size=bad)


@pytest.mark.parametrize("bad", ["float16", "int32", np.int64, None, "complex64", "words"])
def test_bad_dtype(bad):
    with pytest.raises(ValueError, match="dtype"):
        load_mnist(dtype=bad)


@pytest.mark.parametrize("alias, dtype", [(float, np.float64), ("f", np.float32),
                                          (np.dtype("float32"), np.float32)])
def test_numpy_dtype_aliases(alias, dtype):
    assert load_mnist(dtype=alias, validation_size=0)[2][0].dtype == dtype


# --- IDX files made here ------------------------------------------------------

def test_raw_and_gzip_read_back_equal(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = write(tmp_path / "a.idx", idx_bytes(array))
    # gzip is detected by its magic bytes, not the name
    zipped = write(tmp_path / "b.idx", idx_bytes(array), gz=True)
    for path in (raw, zipped):
        out = read_idx(path)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        assert np.array_equal(out, array) and out.flags.writeable


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00\x08\x01" + struct.pack(">i", 1) + b"\x00", "bad magic"),
    (b"\x00\x00\x07\x01" + struct.pack(">i", 1) + b"\x00", "bad magic"),
    (b"\x00\x00", "too short"),
    (idx_bytes([1, 2, 3], type_byte=0x0D), "unsupported.*0x0d"),
    (idx_bytes([1, 2, 3], cut=1), "truncated data.*2"),
    (idx_bytes(np.zeros((2, 2)))[:8], "truncated header"),
    (idx_bytes([1, 2, 3], extra=b"\x00\x00"), "2 trailing bytes"),
    (idx_bytes([], shape=(0,)), "dimension 0 has size 0"),
    (idx_bytes([1], shape=(1, -4)), "dimension 1 has size -4"),
    (bytes([0, 0, 8, 0]), "0 dimensions"),
], ids=["nonzero-magic", "unknown-type", "short", "float-type", "truncated", "short-header",
        "trailing", "zero-dim", "negative-dim", "no-dims"])
@pytest.mark.parametrize("gz", [False, True])
def test_malformed_idx(tmp_path, data, message, gz):
    path = write(tmp_path / "broken-idx", data, gz=gz)
    with pytest.raises(IDXError, match=f"broken-idx.*{message}"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    zipped = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    truncated = write(tmp_path / "truncated.gz", zipped[:len(zipped) // 2])
    with pytest.raises(IDXError, match="truncated.gz.*gzip"):
        read_idx(truncated)
    bad_crc = bytearray(zipped)
    bad_crc[-8] ^= 0xFF  # the CRC-32 in the gzip trailer
    bad_crc = write(tmp_path / "badcrc.gz", bytes(bad_crc))
    with pytest.raises(IDXError, match="badcrc.gz.*gzip"):
        read_idx(bad_crc)


def test_one_gzip_member_is_read_in_one_go_and_anything_else_by_gzipfile(tmp_path):
    """The fast reading (one zlib call, ``_one_gzip_member``) takes exactly one
    member holding exactly the header's data, and gives GzipFile's bytes; a
    second member, trailing bytes, a bad CRC or a short stream are left to
    GzipFile, which reads or refuses them as before."""
    data = idx_bytes(np.arange(200, dtype=np.uint8).reshape(20, 10))
    one = gzip.compress(data)
    assert _one_gzip_member(one) == data
    bad_crc = bytearray(one)
    bad_crc[-8] ^= 0xFF
    for other in (gzip.compress(data[:50]) + gzip.compress(data[50:]),  # two members
                  one + b"\0\0\0\0",  # zero padding after the member
                  one + b"junk",
                  gzip.compress(data + b"x"),  # a byte past the header's data
                  gzip.compress(data[:-1]),  # a byte short
                  bytes(bad_crc), one[:len(one) // 2]):
        assert _one_gzip_member(other) is None
    # what GzipFile makes of two members and of zero padding: the same IDX array
    for i, other in enumerate((gzip.compress(data[:50]) + gzip.compress(data[50:]),
                               one + b"\0\0\0\0")):
        path = write(tmp_path / f"other{i}.gz", other)
        np.testing.assert_array_equal(read_idx(path), np.arange(200).reshape(20, 10))
    # a header no size can hold: declined, not an OverflowError
    huge = gzip.compress(b"\0\0\x08\x04" + struct.pack(">4i", *[2**31 - 1] * 4))
    assert _one_gzip_member(huge) is None


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")
    write_dataset(tmp_path)
    (tmp_path / MNIST_FILES[3]).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{MNIST_FILES[3]}\.gz"):
        load_mnist(tmp_path, validation_size=2)


@pytest.mark.parametrize("gz", [False, True])
def test_user_directory(tmp_path, gz):
    arrays = write_dataset(tmp_path, gz=gz)
    (X, y), (Xv, yv), (Xt, yt) = load_mnist(tmp_path, validation_size=2, dtype="float64")
    images, labels = arrays[MNIST_FILES[0]], arrays[MNIST_FILES[1]]
    assert X.shape == (4, 6) and Xv.shape == (2, 6) and Xt.shape == (4, 6)
    assert np.array_equal(X * 256, images[:4].reshape(4, 6))
    assert np.array_equal(Xv * 256, images[4:].reshape(2, 6))
    assert np.array_equal(y, labels[:4]) and np.array_equal(yv, labels[4:])
    assert y.dtype == np.int64 and np.array_equal(yt, arrays[MNIST_FILES[3]])


@pytest.mark.parametrize("bad", [10, 255])
def test_labels_out_of_range(tmp_path, bad):
    labels = np.array([0, 1, 2, bad], dtype=np.uint8)
    write_dataset(tmp_path, labels={MNIST_FILES[3]: labels})
    with pytest.raises(IDXError, match=rf"{MNIST_FILES[3]}.*label {bad} at index 3"):
        load_mnist(tmp_path, validation_size=2)


def test_count_mismatch(tmp_path):
    write_dataset(tmp_path, labels={MNIST_FILES[1]: np.zeros(5, dtype=np.uint8)})
    with pytest.raises(IDXError, match=f"{MNIST_FILES[0]}.*6 images.*{MNIST_FILES[1]}.*5 labels"):
        load_mnist(tmp_path, validation_size=2)


def test_wrong_dimensions_and_sizes(tmp_path):
    write_dataset(tmp_path, labels={MNIST_FILES[1]: np.zeros((6, 1), dtype=np.uint8)})
    with pytest.raises(IDXError, match=f"{MNIST_FILES[1]}.*expected 1"):
        load_mnist(tmp_path, validation_size=2)
    write_dataset(tmp_path, labels={MNIST_FILES[2]: np.zeros((4, 2, 3), dtype=np.uint8)})
    with pytest.raises(IDXError, match=f"{MNIST_FILES[0]}.*{MNIST_FILES[2]}.*same size"):
        load_mnist(tmp_path, validation_size=2)
    write_dataset(tmp_path, labels={MNIST_FILES[2]: np.zeros((4, 6), dtype=np.uint8)})
    with pytest.raises(IDXError, match=f"{MNIST_FILES[2]}.*expected 3"):
        load_mnist(tmp_path, validation_size=2)


def test_checksum_only_when_asked_for_a_user_directory(tmp_path):
    # Canonical names, other content: what a Fashion-MNIST directory looks like.
    write_dataset(tmp_path, gz=True)
    expected = f"{MNIST_FILES[0]}.gz.*SHA-256.*{MNIST_SHA256[MNIST_FILES[0]]}"
    with pytest.raises(IDXError, match=expected):
        load_mnist(tmp_path, validation_size=2, verify=True)
    (X, _), _, _ = load_mnist(tmp_path, validation_size=2)
    assert X.shape == (4, 6)
