"""The pictures: time to accuracy, gradient noise, sweeps, the valley, learning curves.

Each function draws on a new ``matplotlib.figure.Figure`` and returns it; no
pyplot, no backend is chosen or changed for whoever imports fastgd.  ``save``
writes a figure to a file, refusing to replace one unless asked::

    from fastgd import plots
    plots.save(plots.learning_curves(history), "curves.png")
    plots.save(plots.noise(fastgd.gradient_noise(net, training_data)), "noise.png")

matplotlib is optional (``pip install 'fastgd[plot]'``) and imported only when a
picture is drawn; without it each function raises ImportError with
``PLOT_HINT``.

The pictures lie above the experiments they draw: ``fastgd.noise``, ``fastgd.compare``,
``fastgd.sweeps`` and ``fastgd.descent`` return results and never import this package.

    figure.py       matplotlib's Figure class, ``check_path`` and ``save``
    learning.py     learning curves of a History, the overfitting picture
    experiments.py  time to accuracy, gradient noise, a sweep over eta
    descent.py      the ball rolling down the valley C(v)
"""

from .descent import valley
from .experiments import noise, sweep, time_to_accuracy
from .figure import PLOT_HINT, check_path, figure_class, save
from .learning import learning_curves, overfitting

__all__ = ["PLOT_HINT", "check_path", "figure_class", "save", "learning_curves", "overfitting",
           "time_to_accuracy", "noise", "sweep", "valley"]
