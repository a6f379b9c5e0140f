"""The figure and the file: matplotlib's Figure, imported only when a picture is drawn,
and ``save``, which writes a figure without replacing a file unless asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import os

from .._files import StrPath, as_path, atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_HINT = "matplotlib is needed for plots: pip install 'fastgd[plot]'"


def figure_class():
    """matplotlib's Figure class, or ImportError saying how to install matplotlib."""
    try:
        import matplotlib  # noqa: F401  (a blocked matplotlib fails here even when
        from matplotlib.figure import Figure  # matplotlib.figure was imported before)
    except ImportError:
        raise ImportError(PLOT_HINT) from None
    return Figure


def check_path(path, overwrite=False, name="path", suffix=None):
    """A file name that may be written: not a directory, in a directory that exists,
    ending in ``suffix`` if given, and not an existing file unless ``overwrite``."""
    path = as_path(path, name)
    if suffix is not None and not str(path).lower().endswith(suffix):
        raise ValueError(f"{name} must be a file name ending in {suffix}, got {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name} {path} is a directory, expected a file name")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{name} {path} exists; pass overwrite=True to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{name} {path}: no such directory {parent}")
    return path


def save(fig: Figure, path: StrPath, *, overwrite: bool = False, dpi: int = 110) -> StrPath:
    """Write ``fig`` to ``path`` (the format from its suffix, e.g. .png); an existing
    file is refused unless ``overwrite=True``, and nothing is left behind when drawing
    fails.  Returns ``path``."""
    path = check_path(path, overwrite)
    fmt = os.path.splitext(path)[1][1:].lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), overwrite=overwrite)
    return path

