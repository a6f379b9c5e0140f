"""Reading and writing files safely.

Writes (``atomic_write``): a failed or killed write never costs the previous file,
and nothing but a regular file is ever replaced (not a device node, a named pipe
or a socket).  Reads: only regular files are opened (``read_regular_file``), so
that a named pipe or a device given as a file cannot block a run forever or feed
it endless data, and the members of an ``.npz`` archive are read so that a
crafted file cannot make fastgd allocate more than it describes (``read_member``).
"""

import os
import stat
import tempfile
from typing import TypeAlias

import numpy as np
from numpy.lib import format as npy_format

# A file's path, as every function that reads or writes one takes it.
StrPath: TypeAlias = str | os.PathLike[str]

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def as_path(path, what="path"):
    """``path`` (a str, bytes or os.PathLike) as os.fspath gives it; TypeError
    naming ``what`` for anything else, ValueError for an empty one.  Checked
    before any os call: an int would be taken as an open file descriptor."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a file path (str or os.PathLike), got "
                        f"{type(path).__name__} {path!r}"[:200])
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{what} is an empty path, expected a file name")
    return path


def special_kind(path):
    """What ``path`` is when it exists and is not a regular file ("a named pipe
    (FIFO)", "a character device", ...), following symbolic links; else None."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def check_regular_file(path, what):
    """Raise unless ``path`` is an existing regular file (symbolic links followed):
    FileNotFoundError if it is missing, IsADirectoryError for a directory,
    ValueError for a pipe, device or socket, naming ``what`` and the path."""
    path = as_path(path, what)
    kind = special_kind(path)
    if kind == "a directory":
        raise IsADirectoryError(f"{what} {path} is a directory, expected a file")
    if kind is not None:
        raise ValueError(f"{what} {path} is {kind}, expected a regular file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path}: no such file")


def read_regular_file(path, what):
    """The bytes of ``path``, which must be a regular file (see check_regular_file).

    The file is opened without blocking and checked again once open, so that a
    pipe put in its place between the check and the open cannot hang the read.
    """
    check_regular_file(path, what)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{what} {path} is no longer a regular file")
        return f.read()


def atomic_write(path, write, *, overwrite=False, binary=True):
    """Call ``write(f)`` on a new file beside ``path``, flush and fsync it, then
    rename it over ``path``.

    The rename is atomic, so ``path`` holds either its old contents or the new
    ones, never a partial file.  On any failure (a full disk, a file-size limit,
    an exception in ``write``) the new file is removed and the error raised.  A
    process killed mid-write cannot remove it: the hidden ``.<name>.<pid>.*.tmp``
    it leaves is removed by the next write to ``path`` once that pid is gone.
    """
    path = as_path(path)
    if os.path.islink(path):  # write the file the link points at, keeping the link
        path = os.path.realpath(path)
    kind = special_kind(path)
    if kind is not None:
        raise ValueError(f"{path} is {kind}: fastgd replaces only regular files")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists (asked not to overwrite it)")
    folder, name = os.path.split(os.path.abspath(path))
    _remove_orphans(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o7777  # keep the target's permissions
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(folder)


def _remove_orphans(folder, name):
    """Remove the temporary files of earlier writes to name whose process is gone
    (killed while writing)."""
    prefix = f".{name}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, entry))
        except OSError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours
        return True
    return True


def _fsync_directory(folder):
    """Make the rename itself durable (POSIX); some systems cannot open a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path, what):
    """Fail now, not after hours of training, if ``path`` could not be written:
    its folder must exist and be writable, and the path must not be a folder."""
    path = as_path(path, what)
    kind = special_kind(path)
    if kind == "a directory":
        raise IsADirectoryError(f"{what} {path} is a directory, expected a file name")
    if kind is not None:
        raise ValueError(f"{what} {path} is {kind}: fastgd writes only regular files")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what} {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: the directory {folder} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        # the rename would succeed, but the user marked the file read-only
        raise PermissionError(f"{what} {path} is not writable")


class BadFile(Exception):
    """What is wrong with a file, found by checking it (not by a reader failing)."""


def read_member(archive, info, kind, shape, max_bytes):
    """One ``.npy`` member: its header is checked (dtype kind, and the shape, or
    at most max_bytes of data) before its data are read."""
    name = info.filename[:-4]
    with archive.open(info) as f:
        version = npy_format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise BadFile(f"{name}: unsupported .npy version {version}")
        read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                       else npy_format.read_array_header_2_0)
        found_shape, fortran, dtype = read_header(f)
        if dtype.kind != kind or dtype.hasobject or (kind == "f" and dtype.itemsize not in (4, 8)):
            raise BadFile(f"{name}: unexpected dtype {dtype}")
        if shape is not None and tuple(found_shape) != shape:
            raise BadFile(f"{name} has shape {tuple(found_shape)}, expected {shape} "
                           "for the sizes in the file")
        count = int(np.prod(found_shape, dtype=object))
        nbytes = count * dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise BadFile(f"{name}: {nbytes:,} bytes, more than {max_bytes:,} expected")
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise BadFile(f"{name}: truncated ({len(data)} of {nbytes} bytes)")
    array = np.frombuffer(data, dtype).reshape(found_shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="))
