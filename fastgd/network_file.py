"""A network's file format: an ``.npz`` archive (no pickle inside) of its sizes,
weights and biases, with its cost and init when they are not the defaults,
written atomically (``write_network``) and read safely (``read_network``:
every header is checked before any data are read).  A checkpoint is the same
archive under another format name, with extra text members."""

import lzma
import os
import stat
import zipfile
import zlib

import numpy as np

from . import kernels
from ._files import BadFile, as_path, atomic_write, read_member, special_kind
from ._validation import check_bool, check_sizes
from .layout import Layout

FILE_FORMAT = "fastgd-network-1"

# The costs and weight initialisations a network can have, by name.
COSTS = kernels.COSTS
INITS = ("large", "scaled")
# Files keep the cost and init as text members, written only when they are not
# the defaults: a chapter-1 network's file is what it always was, and a file
# without them loads as quadratic / large.
DEFAULTS = {"cost": "quadratic", "init": "large"}


def _arrays_of(net):
    arrays = {"format": np.array(FILE_FORMAT), "sizes": np.array(net.sizes, np.int64)}
    for name, default in DEFAULTS.items():
        value = net.cost_function if name == "cost" else net.init
        if value != default:
            arrays[name] = np.array(value)
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"weights_{l}"] = np.ascontiguousarray(w)
        arrays[f"biases_{l}"] = np.ascontiguousarray(b)
    return arrays


def write_network(path, net, *, overwrite=False, extra=None, file_format=FILE_FORMAT):
    """Write ``net`` (and the ``extra`` arrays) atomically as an ``.npz`` file."""
    path = as_path(path)
    overwrite = check_bool(overwrite, "overwrite")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, expected a file name")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not np.isfinite(net.params).all():
        raise ValueError("the network's weights are not finite (training diverged?); "
                         "refusing to save them")
    arrays = _arrays_of(net)
    arrays["format"] = np.array(file_format)
    arrays.update(extra or {})
    atomic_write(path, lambda f: np.savez(f, **arrays), overwrite=overwrite)


# Text members (the format name, a checkpoint's state) are bounded so that a
# crafted file cannot make fastgd allocate without limit: by _MAX_TEXT, or more
# when the file itself is that large (a stored member cannot hold more than the
# file; a compressed one is allowed _EXPANSION times the file, not a zip bomb).
# The bound is on the .npy data, 4 bytes a character: a checkpoint after tens of
# thousands of epochs holds tens of MB of History, and must resume.
_MAX_TEXT = 1 << 26
_EXPANSION = 64
# The only compressions np.savez and np.savez_compressed write: any other (bzip2,
# lzma, or a method zipfile does not know), and encrypted members, are refused
# before their data are read, so that each fails as a ValueError like any other
# damaged file.
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def read_network(path, network_class, *, file_format=FILE_FORMAT, extra=(),
                 what="fastgd network file"):
    """(network, {name: text} of the ``extra`` text members) from an ``.npz`` file,
    the network made by ``network_class`` (``fastgd.network.Network`` or a subclass).

    The order is what keeps it safe: the file must be a regular file (not a named
    pipe or a device, which could block or feed endless data); the zip directory
    is read and each member's compression checked; each member's ``.npy`` header
    (dtype, shape) is read and checked against ``sizes`` before its data; only
    then are the data read, each member no more than its expected size.

    Raises FileNotFoundError for a missing file, PermissionError for one that
    cannot be read, and ValueError for everything else: not a regular file, not
    an archive, damaged, truncated, crafted.
    """
    path = as_path(path)
    kind = special_kind(path)
    if kind is not None:
        raise ValueError(f"{path} is not a regular file but {kind} (expected a {what}, "
                         "an .npz archive)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        # without blocking: a pipe put in the file's place since the check
        # cannot hang the open; checked again once open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as raw:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BadFile("no longer a regular file")
            if raw.read(4) != b"PK\x03\x04":
                raise BadFile("not an .npz archive")
            raw.seek(0)
            with zipfile.ZipFile(raw) as archive:
                net, texts = _read_archive(archive, os.fstat(fd).st_size,
                                           file_format, extra, network_class)
        net.source = path
        return net, texts
    except BadFile as e:
        raise ValueError(f"{path} is not a {what} ({e})") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, KeyError, OverflowError,
            MemoryError, TypeError, zlib.error, lzma.LZMAError, NotImplementedError,
            RuntimeError, UnicodeError) as e:
        # RuntimeError: zipfile's for an encrypted member (refused before any is
        # read; kept as a second line), NotImplementedError for an unknown
        # compression, zlib.error for a corrupt deflate stream
        raise ValueError(f"{path} is not a readable {what} (damaged or truncated?): "
                         f"{type(e).__name__}: {e}") from None


def _read_archive(archive, file_bytes, file_format, extra, network_class):
    members = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise BadFile(f"unexpected member {name!r}")
        if info.compress_type not in _COMPRESSIONS:
            raise BadFile(f"member {name!r} uses zip compression method "
                          f"{info.compress_type}; only stored (0) and deflate (8), which "
                          "NumPy writes, are read")
        if info.flag_bits & 0x1:
            raise BadFile(f"member {name!r} is encrypted")
        members[name[:-4]] = info
    for required in ("format", "sizes"):
        if required not in members:
            raise BadFile(f"no {required!r} entry")
    text = read_member(archive, members["format"], "U", None, 256)
    if str(text) != file_format:
        raise BadFile(f"format {str(text)[:40]!r}, expected {file_format!r}")
    sizes = read_member(archive, members["sizes"], "i", None, 64 * 8)
    if sizes.ndim != 1:
        raise BadFile("sizes must be a list of layer sizes")
    try:
        sizes = check_sizes(sizes.tolist())
        layout = Layout.of(sizes)
    except ValueError as e:
        raise BadFile(e) from None
    n = len(sizes) - 1
    shapes = {}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"weights_{l}"] = (n_out, n_in)
        shapes[f"biases_{l}"] = (n_out,)
    unexpected = set(members) - {"format", "sizes"} - set(DEFAULTS) - set(shapes) - set(extra)
    if unexpected:
        raise BadFile(f"unexpected entries {sorted(unexpected)}")
    missing = set(shapes) - set(members)
    if missing:
        raise BadFile(f"missing entries {sorted(missing)} for sizes {sizes}")
    # Bound the memory before reading: the data of a stored (uncompressed) archive
    # cannot be larger than the file; allow compression, but not a zip bomb.
    needed = layout.n_params * 8
    if needed > max(64 * file_bytes, 1 << 20):
        raise BadFile(f"sizes {sizes} need {needed:,} bytes of weights, but the file has "
                       f"{file_bytes:,} bytes")
    arrays = {name: read_member(archive, members[name], "f", shape, None)
              for name, shape in shapes.items()}
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) != 1:
        raise BadFile(f"weights and biases have mixed dtypes {sorted(map(str, dtypes))}")
    max_text = max(_MAX_TEXT, _EXPANSION * file_bytes)
    texts = {name: str(read_member(archive, members[name], "U", None, max_text))
             for name in extra if name in members}
    options = {name: str(read_member(archive, members[name], "U", None, 64 * 4))
               if name in members else default for name, default in DEFAULTS.items()}
    if options["cost"] not in COSTS:
        raise BadFile(f"unknown cost {options['cost'][:40]!r}")
    if options["init"] not in INITS:
        raise BadFile(f"unknown init {options['init'][:40]!r}")
    try:
        net = network_class(sizes, [arrays[f"weights_{l}"] for l in range(n)],
                      [arrays[f"biases_{l}"] for l in range(n)], dtype=dtypes.pop(),
                      **options)
    except ValueError as e:
        raise BadFile(e) from None
    return net, texts
