"""The chapter's picture: the ball rolling down the valley C(v), written to a file.

``plot_valley`` draws a ``Descent`` (from ``fastgd.descent.minimize``) with
``fastgd.plots.valley`` and writes it as a PNG: for two variables, the contours of
C(v1, v2) with the ball's path v_0 -> v_1 -> ... as arrows; for one variable, the
curve C(v) with each step along it; beside it, C(v_k) against the step k, rising (in
red) where the step is too large.  The command is ``fastgd valley``
(``fastgd.cli.valley``).
"""

from .plots import PLOT_HINT as NO_MATPLOTLIB  # noqa: F401  (the name older code imports)


def plot_valley(result, C, path_png, *, name=None, minimum=None, overwrite=False,
                grid=161):
    """Draw the descent ``result`` on the valley of ``C`` and save it as a PNG.

    result:    a Descent of a function of one or two variables
    C:         the function it descended (called on a grid of points to draw it)
    path_png:  where to write the picture, a file name ending in .png; an existing file
               is refused unless overwrite=True
    name:      how to name C in the title, such as "C(v) = v1^2 + v2^2" (default: the
               function's __name__)
    minimum:   where C is smallest, marked with a star if given
    grid:      points per axis at which C is evaluated for the contours (or the curve)

    Returns path_png.  Raises ImportError when matplotlib is not installed.
    """
    from . import plots
    path_png = plots.check_path(path_png, overwrite, "path_png", suffix=".png")
    fig = plots.valley(result, C, name=name, minimum=minimum, grid=grid)
    return plots.save(fig, path_png, overwrite=overwrite)
