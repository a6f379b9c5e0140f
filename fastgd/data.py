"""Loading the MNIST data (and anything else in the same IDX format).

The four canonical MNIST files ship with the package, gzip-compressed, in
``fastgd/mnist/``.  :func:`load_mnist` returns them split the way
"Neural Networks and Deep Learning" (Nielsen) splits ``mnist.pkl.gz``:

* training data   = the first 50,000 of the 60,000 training images,
* validation data = the last 10,000 training images,
* test data       = the 10,000 test images,

with each image flattened to a row of ``H*W`` pixels scaled as ``pixel/256``
(so the values lie in ``[0, 255/256]``, exactly the book's numbers).

A directory of Fashion-MNIST (same file names, same format) loads the same way
with ``load_mnist(path=...)``.

:func:`read_digit_image` turns a picture of one handwritten digit (PNG, JPEG)
into a row like MNIST's, so that a trained network can read it; it needs
Pillow (``pip install fastgd[image]``).

The IDX format: a big-endian int32 magic number (``0x00 0x00``, a type byte,
``0x08`` for unsigned bytes, then the number of dimensions), one big-endian
int32 per dimension, then the data, row-major.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import DTypeLike

from ._files import StrPath, as_path, read_regular_file, special_kind
from ._validation import check_bool, check_dtype

if TYPE_CHECKING:  # fastgd.dataset imports numba, which reading the files does not need
    from .dataset import Data

__all__ = [
    "IDXError",
    "MNIST_DIR",
    "MNIST_FILES",
    "MNIST_SHA256",
    "mnist_dir",
    "read_idx",
    "load_idx_dataset",
    "load_mnist",
    "read_digit_image",
]

#: The directory holding the bundled copy of MNIST.
MNIST_DIR = Path(__file__).resolve().parent / "mnist"

#: The canonical file names (without ``.gz``), in the order
#: training images, training labels, test images, test labels.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: SHA-256 of the *uncompressed* IDX bytes of the canonical MNIST files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_GZIP_MAGIC = b"\x1f\x8b"
# Trailing bytes after a gzip'd IDX file's data are counted up to this many (the
# count goes into the error message); past it the stream is not inflated further.
_MAX_TRAILING = 64 << 20
_IDX_TYPES = {  # type byte -> name; only 0x08 is supported
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short (int16)",
    0x0C: "int (int32)",
    0x0D: "float (float32)",
    0x0E: "double (float64)",
}


class IDXError(ValueError):
    """An IDX file is corrupt, malformed, unsupported or fails its checksum."""


def mnist_dir() -> Path:
    """Return the directory holding the bundled MNIST files."""
    return MNIST_DIR


def _idx_bytes(path) -> bytes:
    """Return the IDX bytes of ``path``, decompressed if it is gzip
    (recognised by its magic bytes, not its name).

    Only a regular file is read (a pipe or device could block or never end), and
    a gzip stream is decompressed no further than its IDX header says the data
    go, plus one byte to tell trailing data: a small file cannot unpack into
    gigabytes.
    """
    try:
        raw = read_regular_file(path, "IDX file")
    except ValueError as e:
        raise IDXError(str(e)) from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    whole = _one_gzip_member(raw)
    if whole is not None:
        return whole
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            head = stream.read(4)
            ndim = head[3] if len(head) == 4 else 0
            head += stream.read(4 * ndim)
            if len(head) < 4 + 4 * ndim:
                return head  # too short: _parse_idx says what is missing
            expected = 1
            for size in struct.unpack(f">{ndim}i", head[4:]):
                expected *= max(size, 0)
            data = head + stream.read(expected)
            trailing = 0  # counted, not kept: memory stays bounded
            while trailing <= _MAX_TRAILING and (chunk := stream.read(1 << 20)):
                trailing += len(chunk)
            return data + bytes(min(trailing, _MAX_TRAILING + 1))
    except (EOFError, zlib.error, OSError) as e:  # gzip.BadGzipFile is an OSError
        raise IDXError(f"{path}: corrupt gzip stream ({type(e).__name__}: {e})") from e


def _one_gzip_member(raw: bytes) -> bytes | None:
    """The IDX bytes of ``raw`` if it is exactly one gzip member holding exactly
    what its IDX header calls for (as the MNIST files are), else None: the
    caller's GzipFile reading then finds what is wrong, or what else is there.

    One call of zlib per step, which releases the GIL for the whole stream
    (GzipFile takes it back every 128 KiB), so that a thread can decompress
    while another works (``fastgd train``); zlib checks the stream's CRC-32 and
    length at its end, and the output is bounded by the header's size plus one
    byte."""
    try:
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, 4 + 4 * 255)
        ndim = head[3] if len(head) >= 4 else 0
        if ndim == 0 or len(head) < 4 + 4 * ndim:
            return None
        expected = 1
        for size in struct.unpack(f">{ndim}i", head[4:4 + 4 * ndim]):
            expected *= max(size, 0)
        total = 4 + 4 * ndim + expected
        stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = stream.decompress(raw, total + 1)
    except (zlib.error, OverflowError, ValueError):  # corrupt, or a header past any size
        return None
    if len(data) != total or not stream.eof or stream.unused_data:
        return None
    return data


def _parse_idx(data: bytes, path) -> np.ndarray:
    """Check the IDX header of ``data`` and return its array (read-only view)."""
    if len(data) < 4:
        raise IDXError(f"{path}: {len(data)} bytes is too short for an IDX magic "
                       f"number (expected at least 4 bytes)")
    zero0, zero1, kind, ndim = data[:4]
    if zero0 or zero1 or kind not in _IDX_TYPES:
        raise IDXError(f"{path}: bad magic number 0x{data[:4].hex()}, expected "
                       f"0x0000 then a type byte (0x08 for unsigned bytes) then "
                       f"the number of dimensions; not an IDX file?")
    if kind != 0x08:
        raise IDXError(f"{path}: unsupported IDX data type 0x{kind:02x} "
                       f"({_IDX_TYPES[kind]}), only 0x08 (unsigned byte) is supported")
    if ndim == 0:
        raise IDXError(f"{path}: the magic number gives 0 dimensions, expected at least 1")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need "
                       f"{start} header bytes, the file has {len(data)}")
    shape = struct.unpack(f">{ndim}i", data[4:start])
    for axis, size in enumerate(shape):
        if size <= 0:
            raise IDXError(f"{path}: dimension {axis} has size {size}, expected a "
                           f"positive size (header shape {shape})")
    expected = 1
    for size in shape:
        expected *= size  # Python ints: no overflow
    found = len(data) - start
    if found < expected:
        raise IDXError(f"{path}: truncated data: shape {shape} needs {expected} "
                       f"bytes after the header, found only {found}")
    if found > expected:
        extra = found - expected
        shown = f"more than {_MAX_TRAILING}" if extra > _MAX_TRAILING else str(extra)
        raise IDXError(f"{path}: {shown} trailing bytes after the "
                       f"{expected} bytes of data that shape {shape} calls for")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)


def _check_sha256(data: bytes, path, expected: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected.lower():
        raise IDXError(f"{path}: SHA-256 of the uncompressed IDX bytes is {digest}, "
                       f"expected {expected}: the file is corrupt or not the canonical "
                       f"one (for another data set with the same file names, such as "
                       f"Fashion-MNIST, load it with verify=False)")


def read_idx(path: StrPath, *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, into a new uint8 array.

    The header is checked (magic number, unsigned-byte type, number and
    size of the dimensions) and the data must fill the shape exactly.  If
    ``sha256`` is given, it must match the SHA-256 of the uncompressed bytes.

    Raises :class:`IDXError` (a ``ValueError``) naming ``path`` and the problem,
    or ``FileNotFoundError`` if there is no such file.
    """
    if sha256 is not None and not isinstance(sha256, str):
        raise TypeError(f"sha256 must be a hex digest (str) or None, got {sha256!r}"[:200])
    return _read(path, sha256).copy()


def _read(path, sha256: str | None) -> np.ndarray:
    """Like :func:`read_idx` but returns a read-only array (no copy)."""
    data = _idx_bytes(path)
    array = _parse_idx(data, path)
    if sha256 is not None:
        _check_sha256(data, path, sha256)
    return array


def _find(directory: Path, name: str) -> list[Path]:
    """``directory/name`` and ``directory/name.gz``, those that exist (at least one)."""
    candidates = [directory / name, directory / (name + ".gz")]
    found = [c for c in candidates if os.path.lexists(c)]
    for candidate in found:
        kind = special_kind(candidate)
        if kind is not None:
            raise IDXError(f"{candidate} is {kind}, expected a regular IDX file")
    if not found:
        raise FileNotFoundError(f"no {name} in {directory}: looked for "
                                + " and ".join(str(c) for c in candidates))
    return found


def _read_one(paths: list[Path], sha256: str | None) -> tuple[np.ndarray, Path]:
    """Read the raw and/or ``.gz`` copy of one IDX file; two copies must agree."""
    arrays = [_read(p, sha256) for p in paths]
    if len(arrays) == 2 and not (arrays[0].shape == arrays[1].shape
                                 and np.array_equal(arrays[0], arrays[1])):
        raise IDXError(f"{paths[0]} and {paths[1]} are two copies of the same IDX file "
                       f"that disagree (shapes {arrays[0].shape} and {arrays[1].shape}): "
                       f"remove the wrong one")
    return arrays[0], paths[0]


def _load_dir(directory, verify: bool):
    """Read and check the four IDX files in ``directory`` (read-only arrays)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    found = [_read_one(_find(directory, name), MNIST_SHA256[name] if verify else None)
             for name in MNIST_FILES]
    arrays = [array for array, _ in found]
    paths = [path for _, path in found]
    train_images, train_labels, test_images, test_labels = arrays
    parts = []
    for images, labels, image_path, label_path in (
        (train_images, train_labels, paths[0], paths[1]),
        (test_images, test_labels, paths[2], paths[3]),
    ):
        if images.ndim != 3:
            raise IDXError(f"{image_path}: images have {images.ndim} dimensions "
                           f"{images.shape}, expected 3 (count, height, width)")
        if labels.ndim != 1:
            raise IDXError(f"{label_path}: labels have {labels.ndim} dimensions "
                           f"{labels.shape}, expected 1 (count)")
        if len(images) != len(labels):
            raise IDXError(f"{image_path} holds {len(images)} images but "
                           f"{label_path} holds {len(labels)} labels, expected "
                           f"the same count")
        bad = np.flatnonzero(labels > 9)
        if bad.size:
            i = int(bad[0])
            raise IDXError(f"{label_path}: label {int(labels[i])} at index {i} is "
                           f"out of range, expected digits 0..9 "
                           f"({bad.size} bad labels in all)")
        parts.append((images, labels))
    if train_images.shape[1:] != test_images.shape[1:]:
        raise IDXError(f"{paths[0]} has images of {train_images.shape[1:]} pixels but "
                       f"{paths[2]} has {test_images.shape[1:]}, expected the same size")
    return tuple(parts)


_bundled_cache: dict = {}
# one reading at a time: a thread that asks while another reads waits for its arrays
_bundled_lock = threading.Lock()


def _load_bundled(verify: bool):
    """Read the bundled set once per process; a verified copy serves both cases."""
    with _bundled_lock:
        if True in _bundled_cache:
            return _bundled_cache[True]
        if verify not in _bundled_cache:
            _bundled_cache[verify] = _load_dir(MNIST_DIR, verify)
        if verify:
            _bundled_cache.pop(False, None)
        return _bundled_cache[verify]


def start_reading_bundled() -> None:
    """Start reading (decompressing and verifying) the bundled MNIST in a daemon
    thread, for a caller that will load it after other work, such as importing
    numba: ``load_mnist()`` then takes the arrays read, or waits for them."""
    threading.Thread(target=_read_bundled_quietly, name="fastgd-mnist", daemon=True).start()


def _read_bundled_quietly():
    try:
        _load_bundled(True)
    except Exception:  # noqa: BLE001 (the caller's own load_mnist() reports it)
        pass


def load_idx_dataset(path=None, *, verify: bool | None = None):
    """Read an MNIST-style data set: ``((train_images, train_labels), (test_images, test_labels))``.

    ``path`` is a directory holding ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each raw or with ``.gz``; ``None`` means the
    bundled MNIST.  Images are ``uint8`` arrays ``(n, H, W)``, labels ``uint8``
    arrays ``(n,)`` of digits 0..9.  The arrays are read-only (the bundled set
    is cached): copy them before modifying.

    ``verify`` checks each file against :data:`MNIST_SHA256`; it defaults to
    True for the bundled copy and False for a user directory, whose files may
    be another data set with the same names (such as Fashion-MNIST).
    """
    verify = None if verify is None else check_bool(verify, "verify")
    if path is None:
        return _load_bundled(True if verify is None else verify)
    return _load_dir(path, bool(verify))


def load_mnist(path: StrPath | None = None, *, dtype: DTypeLike = "float32",
               validation_size: int = 10000, verify: bool | None = None,
               as_dataset: bool = False) -> tuple[Data, Data, Data]:
    """Return ``(training_data, validation_data, test_data)`` as in the book.

    Each is a tuple ``(X, y)``: ``X`` a fresh, writable ``dtype`` array of shape
    ``(n, H*W)`` holding ``pixel/256`` (values in ``[0, 255/256]``, as in the
    book's ``mnist.pkl.gz``), ``y`` an ``int64`` array ``(n,)`` of labels 0..9.
    The last ``validation_size`` training images form the validation data
    (the book: 50,000 training, 10,000 validation); ``validation_size=0``
    gives an empty validation set.  The test data are the t10k files.

    ``path`` and ``verify`` are as in :func:`load_idx_dataset`: the bundled
    MNIST by default, or a directory of files with the MNIST names (e.g.
    Fashion-MNIST).

    ``as_dataset=True`` gives each as a :class:`fastgd.Dataset` instead: the
    same arrays, checked and kept read-only once, so that training calls do
    not prepare them again.
    """
    dtype = check_dtype(dtype)
    as_dataset = check_bool(as_dataset, "as_dataset")
    if isinstance(validation_size, bool) or not isinstance(validation_size, (int, np.integer)):
        raise ValueError(f"validation_size must be an int, got {validation_size!r}")
    if validation_size < 0:
        raise ValueError(f"validation_size must be >= 0, got {validation_size}")
    (train_images, train_labels), (test_images, test_labels) = load_idx_dataset(
        path, verify=verify)
    n = len(train_images)
    if validation_size >= n:
        raise ValueError(f"validation_size must be less than the {n} training "
                         f"images, got {validation_size}")
    split = n - int(validation_size)

    def pair(images, labels):
        pixels = images.reshape(len(images), images.shape[1] * images.shape[2])
        if as_dataset:
            from .dataset import Dataset
            return Dataset._of_pixels(pixels, labels.astype(np.int64), dtype)
        # a new array, in one pass; 1/256 is a power of two: exact
        return np.multiply(pixels, dtype(1 / 256), dtype=dtype), labels.astype(np.int64)

    return (pair(train_images[:split], train_labels[:split]),
            pair(train_images[split:], train_labels[split:]),
            pair(test_images, test_labels))


# How MNIST's digits were made (LeCun, Cortes and Burges): each NIST digit was
# scaled, keeping its aspect ratio, to fit a 20x20 box (the anti-aliasing gives
# the grey levels), then placed in a 28x28 field with its centre of mass at the
# centre.  The bundled images put it at pixel (14, 14), to within half a pixel.
_FIELD = 28
_BOX = 20
_CENTRE = 14.0


def _border(image):
    """The pixels along the edge of a 2-D image."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


def _paper(grey):
    """(level, sigma): the paper's level at each pixel and the standard deviation
    of its noise, from the border of the picture.

    The level is a plane a + b row + c column (light falling across a photo),
    fitted to the border pixels within three standard deviations of their
    median, so the few where the digit touches the edge are left out.
    """
    h, w = grey.shape
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    edge = _border(grey)
    fit = np.column_stack([np.ones(edge.size), _border(np.broadcast_to(rows, (h, w))),
                           _border(np.broadcast_to(cols, (h, w)))])
    residual = edge - np.median(edge)
    for _ in range(2):
        sigma = 1.4826 * np.median(np.abs(residual))  # robust: half may be ink
        paper = np.abs(residual) <= 3 * sigma
        coefficients = np.linalg.lstsq(fit[paper], edge[paper], rcond=None)[0]
        residual = edge - fit @ coefficients
    sigma = 1.4826 * np.median(np.abs(residual[paper]))
    a, b, c = coefficients
    return a + b * rows + c * cols, sigma


def _pillow():
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install fastgd[image] "
                          "(or pip install pillow)") from None
    return Image, ImageOps, UnidentifiedImageError


def read_digit_image(path: StrPath, *, dtype: DTypeLike = "float32") -> np.ndarray:
    """Read a picture of one handwritten digit as MNIST's digits were made: a row of 784 pixels.

    The image (PNG, JPEG, or anything else Pillow reads) is made greyscale
    (transparent parts count as white paper); inverted when its border is
    light, since MNIST is white ink on black; the paper (its level, which
    may vary across a photo, and its noise, both from the border) is
    subtracted and the ink stretched so its darkest pixel is full intensity;
    cropped to the ink's bounding box; scaled, keeping the aspect ratio and
    anti-aliased, to fit a 20x20 box; and placed in a 28x28 field with the
    ink's centre of mass at pixel (14, 14) (as near as the field allows,
    without cutting any ink off).  Pixels are rounded to bytes and scaled as
    ``pixel/256``, as :func:`load_mnist` does, so the values lie in
    ``[0, 255/256]``.  A clean picture of an MNIST digit reads back close to
    the digit.

    Returns a ``dtype`` array of shape (784,).  Raises ``FileNotFoundError``
    for a missing file, ``ValueError`` naming ``path`` for a file that is not
    an image or shows no ink (all background), and ``ImportError`` when
    Pillow is not installed.
    """
    dtype = check_dtype(dtype)
    Image, ImageOps, UnidentifiedImageError = _pillow()
    path = Path(as_path(path, "image"))
    data = read_regular_file(path, "image")  # never a pipe: Pillow would wait on it
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = ImageOps.exif_transpose(image)  # photos taken sideways
            if image.mode.startswith("I"):  # 16-bit greyscale: convert("L") clips it
                grey = np.asarray(image, dtype=np.float64) * (255 / 65535)
            else:
                if "A" in image.getbands() or "transparency" in image.info:
                    paper = Image.new("RGBA", image.size, "white")
                    image = Image.alpha_composite(paper, image.convert("RGBA"))
                grey = np.asarray(image.convert("L"), dtype=np.float64)
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file Pillow can read "
                         f"(expected a PNG or JPEG of a digit)") from None
    except (OSError, SyntaxError) as e:  # a truncated or damaged image
        raise ValueError(f"{path}: cannot read the image ({e})") from None
    return _as_mnist_digit(grey, path).astype(dtype) * dtype(1 / 256)


def _as_mnist_digit(grey, path) -> np.ndarray:
    """A greyscale image (values 0..255, any size) as MNIST's 784 bytes, float64."""
    Image, _, _ = _pillow()
    if np.median(_border(grey)) > 127.5:  # dark ink on light paper
        grey = 255.0 - grey
    paper, sigma = _paper(grey)
    # What is within three standard deviations of the paper is paper.
    ink = grey - (paper + 3 * sigma)
    peak = ink.max()
    if not peak > 0:
        raise ValueError(f"{path}: no digit found: the image is all background "
                         f"(one colour, or only noise)")
    ink = np.clip(ink, 0.0, None)
    # The digit's bounding box leaves out specks of noise: in a clean picture
    # (sigma 0) it holds every pixel of ink, in a noisy one every pixel six
    # standard deviations above the paper.
    strokes = ink > 3 * sigma
    if not strokes.any():
        raise ValueError(f"{path}: no digit found: nothing stands out from the "
                         f"noise of the background")
    rows = np.flatnonzero(strokes.any(axis=1))
    cols = np.flatnonzero(strokes.any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] * (255.0 / peak)
    h, w = ink.shape
    scale = _BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL: (width, height)
    # LANCZOS averages over the source pixels each target pixel covers when
    # shrinking (anti-aliasing) and interpolates smoothly when enlarging; its
    # small over- and undershoots are clipped away.
    box = np.asarray(Image.fromarray(ink.astype(np.float32))
                     .resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    box = np.clip(box, 0.0, 255.0)
    if not box.sum() > 0:
        raise ValueError(f"{path}: no digit found: the ink vanishes when scaled to "
                         f"{_BOX}x{_BOX}")
    field = np.zeros((_FIELD, _FIELD))
    offsets = []
    for axis, extent in enumerate(box.shape):
        weights = box.sum(axis=1 - axis)
        centre = np.dot(np.arange(extent), weights) / weights.sum()
        offsets.append(min(max(round(_CENTRE - centre), 0), _FIELD - extent))
    top, left = offsets
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return np.rint(field).reshape(_FIELD * _FIELD)
