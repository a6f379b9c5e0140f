"""Gradient combiners: how a Trainer given one (``Trainer(combiner=...)``) sums
each step's gradient over P ranks, and the emulation of P ranks in one process
(``Shards``).  ``fastgd.distributed`` adds the combiners over MPI.

Without a combiner the Trainer runs whole epochs inside the training kernel,
which updates the weights as it goes.  With one, the Trainer takes one step at
a time: the mini-batch X_1..X_m is cut into P contiguous slices
(``slices``), rank r sums the gradient of slice r with the gradient-sum kernel
(groups counted from the slice's start), the combiner adds the P sums
nabla_0..nabla_(P-1), and every rank applies the same update
w -> w - (eta/m) (nabla_0 + ... + nabla_(P-1)).

A combiner has ``size`` (P) and ``rank`` (this process's rank, 0..P-1), and:

* ``gradient(gradient_sum, nabla, first, mb)``: the mini-batch's summed
  gradient (an array the combiner owns), where ``gradient_sum(a, b)`` sums
  examples a..b-1 of the epoch's order into ``nabla`` and returns their sum of
  C_x; each rank's costs are kept apart until ``cost``.
* ``after_step(params)``: False once the weights are not finite (checked
  every ``check_every`` steps); the Trainer then ends the slice it trains.
* ``cost(params)``: the costs since the last call, summed per rank and then in
  rank order (the same on every rank), or NaN when the weights are not finite.
* ``agree(flag)``: the first rank's flag that is set (a stop request or its
  signal number), else None, so that every rank stops at the same step.
* ``share(value)``: rank 0's value on every rank (rank 0 alone evaluates).
* ``in_turn(compile)``: runs ``compile()`` (over MPI, one rank per node first,
  so the others load what it wrote to numba's cache).

Every method but ``gradient`` is collective over MPI: every rank calls it at the
same point, which the Trainer guarantees by taking the same steps on every rank.
"""

import math

import numpy as np

# Steps between two checks of the weights (finite, and over MPI the same on
# every rank), besides the one at each ``cost``.
CHECK_EVERY = 10


def slices(first, mb, size):
    """The bounds of the `size` contiguous slices of the mini-batch of `mb`
    examples that starts at `first`: slice r is bounds[r]..bounds[r + 1] - 1."""
    return [first + mb * r // size for r in range(size + 1)]


class Shards:
    """P ranks emulated in one process: the P slices' sums added in rank order,
    ((nabla_0 + nabla_1) + nabla_2) + ..., exactly as the ordered combiner over
    MPI adds them, so that the two give the same bits."""

    def __init__(self, size, check_every=CHECK_EVERY):
        self.size, self.rank, self.check_every = size, 0, check_every
        self.total = None
        self.steps = 0
        self.costs = [0.0] * size

    def gradient(self, gradient_sum, nabla, first, mb):
        if self.total is None:
            self.total = np.empty_like(nabla)
        bounds = slices(first, mb, self.size)
        for r in range(self.size):
            self.costs[r] += gradient_sum(bounds[r], bounds[r + 1])
            if r == 0:
                self.total[:] = nabla
            else:
                self.total += nabla
        return self.total

    def after_step(self, params):
        self.steps += 1
        return self.steps % self.check_every != 0 or self.same_and_finite(params)

    def same_and_finite(self, params):
        """Whether the weights are finite (one process: there is no other copy)."""
        return bool(np.isfinite(params).all())

    def cost(self, params):
        costs = self.gathered_costs()
        self.costs = [0.0] * len(self.costs)
        total = 0.0
        for c in costs:  # in rank order
            total += c
        return total if self.same_and_finite(params) else math.nan

    def gathered_costs(self):
        """Every rank's costs since the last ``cost``, in rank order."""
        return self.costs

    def agree(self, flag):
        return flag or None

    def share(self, value):
        return value

    def in_turn(self, compile):
        compile()
