"""Where a network's weights, biases and per-example values live in the flat
arrays the kernels take (``Layout``): the model's memory, apart from its maths
(``fastgd.network``) and its file format (``fastgd.network_file``)."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import kernels

# A network this large (parameters) is refused before anything is allocated:
# 2**36 float32 numbers are 256 GiB.
MAX_PARAMS = 2**36


@dataclass(frozen=True)
class Layout:
    """Where each layer's weights, biases and per-example values live in the flat arrays.

    The rules (padding, offsets) are the kernels' contract: see ``kernels``'s
    "Parameter layout" and ``kernels.LayoutArrays``; the arrays are int64.
    """
    sizes: np.ndarray
    stride: np.ndarray
    w_off: np.ndarray
    b_off: np.ndarray
    a_off: np.ndarray
    n_params: int

    @classmethod
    def of(cls, sizes):
        """The layout of a network of these sizes; ValueError if it is too large
        to hold (checked in Python integers, before anything is allocated)."""
        stride = [kernels.padded(n_out) for n_out in sizes[1:]]
        w_off, b_off, a_off = [], [], [0]
        n = 0
        for n_in, s in zip(sizes[:-1], stride):
            w_off.append(n)
            b_off.append(n + n_in * s)
            n += n_in * s + s
            a_off.append(a_off[-1] + s)
        if n > MAX_PARAMS or a_off[-1] > MAX_PARAMS:
            raise ValueError(f"sizes {list(sizes)} make a network of {n:,} parameters, more "
                             f"than fastgd supports ({MAX_PARAMS:,})")
        as_int64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
        return cls(as_int64(sizes), as_int64(stride), as_int64(w_off), as_int64(b_off),
                   as_int64(a_off), n)

    @cached_property
    def arrays(self):
        """The layout as the kernels take it (``kernels.LayoutArrays``), made once:
        every kernel call passes it, and a layout never changes."""
        return kernels.LayoutArrays(self.sizes, self.stride, self.w_off, self.b_off,
                                     self.a_off)

    @cached_property
    def book(self):
        """Where the book's nabla_b and nabla_w lie in the two flat vectors that
        ``kernels.drivers.drive_backprop`` fills, each layer's in turn, weights (n_out, n_in)
        row-major: (length of the biases' vector, of the weights', and for each
        layer (its biases' slice, its weights' slice, its weights' shape))."""
        sizes = self.sizes.tolist()
        layers, b0, w0 = [], 0, 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers.append((slice(b0, b0 + n_out), slice(w0, w0 + n_out * n_in), (n_out, n_in)))
            b0, w0 = b0 + n_out, w0 + n_out * n_in
        return b0, w0, layers

    def unpack_book(self, nabla_b, nabla_w):
        """(biases, weights): lists of views, shaped as the book's, of the two flat
        vectors that ``kernels.drivers.drive_backprop`` fills (see ``book``)."""
        layers = self.book[2]
        return ([nabla_b[b] for b, _, _ in layers],
                [nabla_w[w].reshape(shape) for _, w, shape in layers])

    def unpack(self, flat):
        """(biases, weights) of a flat parameter vector, as views shaped like the book's."""
        sizes = self.sizes.tolist()
        biases = [flat[self.b_off[i]:self.b_off[i] + n_out] for i, n_out in enumerate(sizes[1:])]
        weights = [flat[self.w_off[i]:self.b_off[i]].reshape(n_in, s)[:, :n_out].T
                   for i, (n_in, n_out, s) in enumerate(zip(sizes[:-1], sizes[1:],
                                                            self.stride.tolist()))]
        return biases, weights

