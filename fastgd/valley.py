"""The valleys the ball rolls down: small costs C(v) with known minima (Nielsen, chapter 1).

Each ``Example`` holds a cost C and its gradient, where C is smallest, and a start, eta
and number of steps that show it well; ``fastgd valley`` descends them and draws the
picture (``fastgd.plots.valley``)::

    from fastgd.descent import minimize
    from fastgd.valley import narrow_valley
    result = minimize(narrow_valley.C, narrow_valley.grad_C, narrow_valley.start, eta=0.03)
"""

from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class Example:
    """A cost C with its gradient, where it is smallest, and a start and eta that show it.

    C, grad_C are plain Python written so that numba can compile them: ``jit()`` returns
    the example with both ``numba.njit``-ed, which makes ``minimize`` run in numba.
    """

    name: str
    formula: str
    C: object
    grad_C: object
    minimum: object
    start: object
    eta: float
    steps: int

    def jit(self):
        return Example(self.name, self.formula, numba.njit(self.C), numba.njit(self.grad_C),
                       self.minimum, self.start, self.eta, self.steps)


def _bowl_C(v):
    return v[0] * v[0] + v[1] * v[1]


def _bowl_grad_C(v):
    return np.array([2.0 * v[0], 2.0 * v[1]])


def _narrow_C(v):
    return v[0] * v[0] + 25.0 * v[1] * v[1]


def _narrow_grad_C(v):
    return np.array([2.0 * v[0], 50.0 * v[1]])


def _one_variable_C(v):
    d = v - 1.0
    return d * d


def _one_variable_grad_C(v):
    return 2.0 * (v - 1.0)


#: The smooth bowl of the chapter's valley picture: C(v) = v1^2 + v2^2, smallest at 0.
#: grad C = 2v points straight away from the bottom, so the ball rolls straight down.
bowl = Example("bowl", "C(v) = v1^2 + v2^2", _bowl_C, _bowl_grad_C,
               np.zeros(2), np.array([0.8, -0.6]), 0.1, 30)

#: A long narrow valley: C(v) = v1^2 + 25 v2^2, smallest at 0, 25 times steeper across
#: (v2) than along (v1).  A step multiplies v1 by 1 - 2 eta and v2 by 1 - 50 eta: for
#: eta > 0.02 the ball overshoots across the valley and zig-zags, and for eta > 0.04 it
#: climbs the other side higher each time: Delta C > 0 and divergence.
narrow_valley = Example("narrow valley", "C(v) = v1^2 + 25 v2^2", _narrow_C, _narrow_grad_C,
                        np.zeros(2), np.array([-1.8, 0.5]), 0.03, 50)

#: One variable, the chapter's exercise: C(v) = (v - 1)^2, smallest at v = 1.  Each step
#: moves v by -eta C'(v): downhill along the line, by a distance proportional to the slope,
#: so the steps shrink as the curve flattens towards the bottom.
one_variable = Example("one variable", "C(v) = (v - 1)^2", _one_variable_C,
                       _one_variable_grad_C, 1.0, -1.5, 0.1, 25)

EXAMPLES = {"bowl": bowl, "narrow": narrow_valley, "one-variable": one_variable}
