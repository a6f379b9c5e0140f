"""The scratch arrays a Trainer's kernels write, allocated once per training run."""

import numpy as np

from .. import kernels
from .kernel_choice import chunk_size


class Buffers:
    """Scratch arrays for the training kernel, allocated once per training run:
    activations and errors for `rows` examples, and for mini-batches larger
    than direct_max (or ``summing``: for the gradient-sum kernels), nabla and a
    buffer per group of the largest chunk.

    With ``threads`` (the hogwild kernel), each array has one more, leading
    axis: a set of buffers per thread, each row starting on a cache line of its
    own, so that no two threads write one line."""

    def __init__(self, net, m, rows, group, threads=None, summing=False, direct_max=None):
        layout = net.layout
        # the Trainer's own direct_max when it passes one (it decides the plans)
        self.direct_max = chunk_size(layout) if direct_max is None else direct_max
        self.group = group
        self.threads = threads
        per_example = int(layout.a_off[-1])
        large = summing or m > self.direct_max
        n_groups = -(-rows // group) if large else 0
        if threads is not None:
            self.A = kernels.aligned_rows(threads, rows * per_example, net.dtype)
            self.D = kernels.aligned_rows(threads, rows * per_example, net.dtype)
            self.costs = kernels.aligned_rows(threads, rows, np.float64)
            self.nabla = kernels.aligned_rows(threads, layout.n_params if large else 0,
                                              net.dtype)
            groups = kernels.aligned_rows(threads * n_groups, layout.n_params, net.dtype)
            self.groups = groups.reshape((threads, n_groups, groups.shape[1]))
            self.layout = layout
            return
        # on cache lines, as params is (kernels.aligned_zeros)
        self.A = kernels.aligned_zeros(rows * per_example, net.dtype)
        self.D = kernels.aligned_zeros(rows * per_example, net.dtype)  # padding stays zero
        self.costs = kernels.aligned_zeros(rows, np.float64)  # written by every thread
        self.nabla = kernels.aligned_zeros(layout.n_params if large else 0, net.dtype)
        # zero between uses: the kernel zeroes each buffer as it adds it to nabla
        self.groups = kernels.aligned_rows(n_groups, layout.n_params, net.dtype)
        self.layout = layout

    @property
    def scratch(self):
        return kernels.Scratch(self.nabla, self.groups, self.A, self.D, self.costs)
