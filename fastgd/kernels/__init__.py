"""The numba loops that do all of fastgd's arithmetic.

Plain functions over arrays: no validation and no Python objects here (the
callers in ``network.py`` and ``training.py`` check every input first).  The
same maths, written plainly in NumPy beside the book's network.py and
network2.py, is ``fastgd.reference``: read it first, then find each piece here.

Module map
----------
Where the book's equations live (chapter 2; the costs and the weight decay of
chapter 3), for a mini-batch of m examples x:

=====================================================  ==================================
feedforward  a^l = sigma(w^l a^(l-1) + b^l)            ``generator._forward_code``
                                                       (``forward_pass``), ``maths.sigmoid``
BP1  delta^L = nabla_a C (.) sigma'(z^L)               ``generator._backward_code``
                                                       (``backward_pass``),
                                                       ``maths.quadratic_output_error``,
                                                       ``maths.cross_entropy_output_error``
BP2  delta^l = ((w^(l+1))^T delta^(l+1)) (.) sigma'(z^l)  ``generator._backward_code``
BP3  dC/db^l_j = delta^l_j                             ``generator._update_code``
                                                       (``update_rows``)
BP4  dC/dw^l_jk = a^(l-1)_k delta^l_j                  ``generator._update_code``
update  w -> w - (eta/m) sum_x dC_x/dw (b likewise)    ``update_rows`` with coef = -eta/m,
                                                       or ``maths.add_groups`` then
                                                       ``maths.apply_nabla``
decay (ch. 3)  w -> (1 - eta lmbda/n) w (L2),          ``maths.decay_rows``,
               w -> w - (eta lmbda/n) sgn(w) (L1)      ``workqueue.decay_stage``
=====================================================  ==================================

``generic`` writes the same operations as loops over any widths, with the same
additions in the same order (the same bits).  The generated code labels each
equation with a comment line.

The modules, one job each:

* ``buffers``: the parameter and scratch layout (``PAD``, ``padded``, the
  namedtuples the kernels take), cache-line-aligned allocation;
* ``maths``: exp and sigmoid, the output errors, the flush of tiny errors, the
  decay and the update on runs of parameters;
* ``intrinsics``: LLVM intrinsics (a float's bits, prefetch hints, atomics);
* ``workqueue``: the shared counters that let one parallel region run an epoch;
* ``inputs``: the examples as the kernels read them (CSR rows or the dense path);
* ``generator`` and ``generic``: the code generator, specialised to a network's
  widths or generic;
* ``starter``: one small kernel for any widths, compiled in seconds, that a
  first run trains and evaluates on while the generated ones compile;
* ``drivers``: the loops around the generated operations (``drive_train``,
  ``drive_gradient_sum``, ``drive_descend``, ``drive_feedforward``, ``drive_gradients``,
  ``drive_backprop``), copied into every generated module;
* ``source``: a generated module's whole text, and ``CallByPointer``, which
  hands each parallel driver the function its threads run (drive_descend, or
  a ``_rows`` loop) as a function pointer;
* ``loader``: modules generated, cached and imported (``kernels``,
  ``generic_kernels``), whether they are compiled (``ready``), and ``call``;
* ``cache``: the folder of generated modules, their names and clean-up;
* ``numba_cache``: numba's disk cache for fastgd's kernels, with a checksum on
  every file (a damaged entry is compiled again, never run).

Parameter layout
----------------
All weights and biases live in one flat array ``params``; layer ``i`` keeps its
weights transposed, as an ``(n_in, stride)`` block, so that the forward pass
adds ``a_k * w[k, :]`` for each input ``a_k`` and the update adds
``a_k * delta`` to the same row.  Inputs that are zero (most of MNIST's pixels)
are skipped (``inputs.nonzero_columns``).  See ``buffers``.

Determinism
-----------
A mini-batch is processed in chunks of ``chunk`` examples whose forward and
backward passes all use the weights of the step's start.  Work is split across
threads only where no two threads write the same number: blocks of examples in
the forward/backward pass (each writes its own scratch rows) and blocks of
weight rows in the update (each row adds its examples in the order t = 0, 1,
...).  The split changes which thread computes a number, never how: results are
bit-identical for any thread count and for the serial variant (the same
function compiled without ``parallel``).  What does change the bits is the
network, the dtype, the cost, the input path (``config.DENSE_FROM`` chooses it
from the data) and ``config.CHAINS``; see ``fastgd.config``.

Other details that keep the loops fast (what each is worth is measured in
BENCHMARKS.md): inner loops index with unsigned or constant indices only (numba
inserts a wrap-around check for any index it cannot prove non-negative, which
stops vectorisation); the next examples' nonzero inputs are prefetched, into L2
well ahead and into L1 a few examples ahead (examples come shuffled, from
anywhere in memory); errors delta smaller than tiny/eps of the dtype are
flushed to zero (``maths.flush_tiny``), so that neither they nor their products in
the update are denormal numbers, ~100 times slower on x86.
"""

from .buffers import (CACHE_LINE, PAD, Examples, LayoutArrays, Plan, Scratch, aligned_copy,
                      aligned_rows, aligned_zeros, padded)
from .cache import cache_dir
from .generator import COSTS, panel_width, settings
from .inputs import (balanced_bounds, dense_columns, input_columns, load_numba, nonzero_columns,
                     row_splits, uses_dense_path)
from .loader import (THREAD_SAFE_LAYERS, call, compiling, dispatcher, generic_kernels, kernels,
                     on_disk, ready, specialisable, unrolled_outputs, usable_kernels)
from .source import module_source
from . import starter  # noqa: E402  (after loader: the package's names first)

__all__ = ["CACHE_LINE", "COSTS", "PAD", "THREAD_SAFE_LAYERS", "Examples", "LayoutArrays",
           "Plan", "Scratch", "aligned_copy", "aligned_rows", "aligned_zeros", "balanced_bounds",
           "cache_dir", "call", "compiling", "dense_columns", "dispatcher", "generic_kernels",
           "input_columns", "kernels", "load_numba", "module_source", "nonzero_columns",
           "on_disk", "padded", "panel_width", "ready", "row_splits", "settings", "specialisable",
           "starter", "unrolled_outputs", "usable_kernels", "uses_dense_path"]
