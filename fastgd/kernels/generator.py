"""The code generator: forward_pass, backward_pass and update_rows written out
for one network's layer widths (``layer_code``).

Written out with the widths ``sizes[1:]`` as literal numbers, a layer's z_j
are local variables: they stay in vector registers while the inputs stream
past, and numba's SLP vectoriser (switched on only while fastgd's kernels
compile, ``loader._slp_on``) packs them into vector instructions.  A loop over
a runtime width keeps z in memory instead, with a load and a store per input.
Layers wider than the vector registers hold are done in panels
(``panel_width``), so the registers never run out; panels only group columns,
so they change no result.  ``generic`` writes the same three operations as
loops over any widths, with the same additions in the same order.

The book's equations (chapter 2, and the costs of chapter 3), as labelled in
the generated code:

* feedforward: z^l = w^l a^(l-1) + b^l, a^l = sigma(z^l)        (forward_pass)
* BP1: delta^L = nabla_a C (.) sigma'(z^L)                       (backward_pass)
* BP2: delta^l = ((w^(l+1))^T delta^(l+1)) (.) sigma'(z^l)       (backward_pass)
* BP3: dC/db^l_j = delta^l_j                                     (update_rows)
* BP4: dC/dw^l_jk = a^(l-1)_k delta^l_j                          (update_rows)
* the update: w -> w - (eta/m) sum_x dC_x/dw, b likewise         (update_rows
  with coef = -eta/m, or the drivers' ``apply_nabla``)

The settings of ``fastgd.config`` the generated code depends on are read each
time a module is generated (``SETTINGS``); ``CHAINS`` changes the order of
the additions, and so the bits.
"""

import functools

import numba
from llvmlite import binding as ll

from .. import config
from .buffers import PAD, padded

# Every generated kernel's numba options.  error_model="numpy": a float division
# by zero gives inf or NaN instead of raising, so that numba inserts no check
# (which would stop the sigmoid loop from vectorising).
NJIT_OPTIONS = 'cache=True, nogil=True, error_model="numpy"'

# The settings of fastgd.config that the generated source is written from (the
# generator's and the drivers'): part of the loader's key, and written into
# each module's header, so that a change at run time gives another module.
SETTINGS = ("CHAINS", "PREFETCH_AHEAD", "PREFETCH_OUTER", "TRANSPOSE_FROM", "PARAM_BLOCK",
            "DECAY_ROWS", "SPINS_BEFORE_YIELD")
# The ones among them that decide the order of the additions (and so the bits).
BIT_SETTINGS = ("CHAINS",)


def settings():
    """The current values of ``SETTINGS``, in order (written out rather than
    looped over: a call of the network on one example reads them)."""
    return (config.CHAINS, config.PREFETCH_AHEAD, config.PREFETCH_OUTER, config.TRANSPOSE_FROM,
            config.PARAM_BLOCK, config.DECAY_ROWS, config.SPINS_BEFORE_YIELD)


def check_chains():
    """config.CHAINS, which must be 1 or 2 (the chains each z_j is summed in)."""
    if config.CHAINS not in (1, 2):
        raise ValueError(f"config.CHAINS must be 1 or 2, got {config.CHAINS!r}")
    return config.CHAINS


def _panels(width, panel):
    """(first, last) output columns of each panel of at most `panel` columns."""
    return [(j0, min(width, j0 + panel)) for j0 in range(0, width, panel)]


@functools.cache
def _host_cpu_features():
    """This CPU's features as LLVM names them ("+avx2,+fma,..."), asked once per
    process: llvmlite takes about 0.2 ms to ask, which a call of the network on one
    example would otherwise pay every time, and the answer cannot change."""
    return ll.get_host_cpu_features().flatten()


def panel_width(itemsize):
    """Outputs per panel for numbers of `itemsize` bytes on this machine: the
    forward pass's two chains of accumulators fill half its vector registers
    (32 of 64 bytes with AVX-512, 16 of 32 bytes with AVX2, else 16 of 16
    bytes).  Panels group columns only: they do not change any result.

    config.PANEL and numba's CPU_FEATURES are read at every call, so that a
    change to either takes effect; the rest is worked out once per answer."""
    if config.PANEL is not None:
        return config.PANEL
    return _register_panel(numba.config.CPU_FEATURES or _host_cpu_features(), itemsize)


@functools.cache
def _register_panel(features, itemsize):
    """panel_width on a CPU with these features (searching the long list of
    features takes a microsecond: too long to repeat on every call)."""
    if "+avx512f" in features:
        register_bytes = 32 * 64
    elif "+avx" in features:
        register_bytes = 16 * 32
    else:
        register_bytes = 16 * 16
    return max(PAD, register_bytes // 4 // itemsize // PAD * PAD)


def example_loop_head():
    """The head of forward_pass's loop over the examples t0 <= t < t1, the same in
    both builds: each example's nonzero inputs p0..p1-1 (``pairs`` pairs of
    them), its row splits copied to spans, and later examples' inputs
    prefetched (see _forward_code)."""
    ahead, outer = config.PREFETCH_AHEAD, config.PREFETCH_OUTER
    return [f"    for t in range(t0, min(t1, t0 + {ahead})):  # the first ones now",
            "        prefetch_row(rows[t], indptr, indices, values, splits)",
            "    for t in range(t0, t1):",
            "        x = rows[t]",
            f"        if t + {ahead} < rows.shape[0]:",
            f"            prefetch_row(rows[t + {ahead}], indptr, indices, values, "
            "splits)",
            f"        if t + {outer} < rows.shape[0]:",
            f"            prefetch_row_outer(rows[t + {outer}], indptr, indices, "
            "values)",
            "        for r in range(spans.shape[1]):",
            "            spans[t, r] = splits[x, r]",
            "        p0, p1 = indptr[x], indptr[x + 1]",
            "        pairs = (p1 - p0) >> one"]


def _forward_code(widths, panel, dense=False):
    """forward_pass: a^l = sigmoid(w^l a^(l-1) + b^l) for the examples t0 <= t < t1,
    layer by layer, into A[l][t]; example t's input is row rows[t] of the CSR arrays.
    Layer 0 walks the nonzero inputs (with dense, all of them: the column of
    values[p] is then p - p0, not indices[p]); later layers all their inputs; zero is 0
    in A's dtype (where the second chains start).  The inputs
    of rows[t + config.PREFETCH_AHEAD] are prefetched into L1, and those of
    rows[t + config.PREFETCH_OUTER] into L2, if rows goes on that far.
    splits[x] is copied to spans[t] for the update (see update_rows): the
    update then reads it in order instead of from anywhere in memory.

    With config.CHAINS = 2, each z_j is summed in two chains, the 1st, 3rd, 5th...
    inputs' terms (after b_j) and the 2nd, 4th, ... inputs' terms, added at
    the end: one chain waits for each addition to finish before the next.
    """
    n_layers = len(widths)
    chains = check_chains()

    def column(p):
        return f"{p} - p0" if dense else f"indices[{p}]"

    lines = ["def forward_pass(t0, t1, rows, indptr, indices, values, splits, spans, weights,",
             "                 biases, A, zero):",
             "    one = np.uint64(1)"]
    lines += [f"    W{i}, B{i}, A{i} = weights[{i}], biases[{i}], A[{i}]" for i in range(n_layers)]
    lines += example_loop_head()
    for i, n_out in enumerate(widths):
        lines += [f"        # feedforward, layer {i}: z = w a + b, a = sigma(z)"]
        # The padding columns are computed too, in whole vectors (their weights
        # and biases are zero; their activations sigmoid(0) are never read).
        for j0, j1 in _panels(padded(n_out), panel):
            cols = range(j0, j1)
            lines += [f"        # layer {i}, outputs {j0}..{j1 - 1}"]
            lines += [f"        z{j} = B{i}[{j}]" for j in cols]
            if chains == 1:
                if i == 0:
                    lines += ["        for p in range(p0, p1):",
                              f"            k, ak = {column('p')}, values[p]"]
                else:
                    lines += [f"        for k in range({widths[i - 1]}):",
                              f"            ak = A{i - 1}[t, k]"]
                lines += [f"            z{j} += ak * W{i}[k, {j}]" for j in cols]
                lines += [f"        A{i}[t, {j}] = z{j}" for j in cols]
                continue
            lines += [f"        y{j} = zero" for j in cols]
            if i == 0:
                lines += ["        for q in range(pairs):",
                          "            p = p0 + q + q",
                          f"            k, ak = {column('p')}, values[p]",
                          f"            k2, ak2 = {column('p + one')}, values[p + one]"]
            else:
                lines += [f"        for k in range(0, {widths[i - 1] - 1}, 2):",
                          f"            ak, ak2 = A{i - 1}[t, k], A{i - 1}[t, k + 1]",
                          "            k2 = k + 1"]
            lines += [f"            z{j} += ak * W{i}[k, {j}]" for j in cols]
            lines += [f"            y{j} += ak2 * W{i}[k2, {j}]" for j in cols]
            if i == 0:
                lines += ["        if p0 + pairs + pairs < p1:",
                          f"            k, ak = {column('p1 - one')}, values[p1 - one]"]
            elif widths[i - 1] % 2:
                last = widths[i - 1] - 1
                lines += ["        if True:",
                          f"            k, ak = {last}, A{i - 1}[t, {last}]"]
            if i == 0 or widths[i - 1] % 2:
                lines += [f"            z{j} += ak * W{i}[k, {j}]" for j in cols]
            lines += [f"        A{i}[t, {j}] = z{j} + y{j}" for j in cols]
        # a loop, not written out: the loop vectoriser packs the sigmoids' branches
        lines += [f"        for j in range(A{i}.shape[1]):",
                  f"            A{i}[t, j] = sigmoid(A{i}[t, j])"]
    return lines


def _dot_terms(width, term):
    """sum_j term_j for j < width, as four partial sums over j mod 4, then
    (s0 + s1) + (s2 + s3): a fixed order (the same bits every time), four
    independent chains.  term is the source of a product, with {j} for j."""
    sums = []
    for lane in range(4):
        terms = [term.format(j=j) for j in range(lane, width, 4)]
        sums.append(" + ".join(terms) if terms else "0.0")
    return f"(({sums[0]}) + ({sums[1]})) + (({sums[2]}) + ({sums[3]}))"


COSTS = ("quadratic", "cross-entropy")


def _backward_code(widths, cost="quadratic"):
    """backward_pass: the errors delta into D[l][t] for the examples t0 <= t < t1,
    whose activations are in A and desired outputs the one-hot labels[rows[t]]:
    delta^L = (a^L - y) * sigma'(z^L) for the quadratic cost, a^L - y for the
    cross-entropy cost; delta^l = ((w^(l+1))^T delta^(l+1)) * sigma'(z^l), with
    sigma'(z) = a (1 - a).  costs[t] = C_x: ||y - a^L||^2 / 2, or
    -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] (see CE_SMALLEST).
    D's padding columns must be zero on entry; they are left so.

    (w^(l+1))^T delta^(l+1) sums, for each input k, the k-th row of w^(l+1)'s
    stored block (one weight per output j) times delta^(l+1): a short dot
    product per k, which does not vectorise.  With config.TRANSPOSE_FROM examples or
    more, the call first copies each block transposed (T[j, k] = w_jk) so that
    the loop over k reads T's rows in order and computes several k at once;
    each k's sum has the same terms in the same order either way, so the bits
    do not depend on it."""
    L = len(widths) - 1
    lines = ["def backward_pass(t0, t1, rows, labels, weights, A, D, costs, n_out):",
             "    tiny = np.finfo(D[0].dtype).tiny / np.finfo(D[0].dtype).eps"]
    lines += [f"    W{i}, A{i}, D{i} = weights[{i}], A[{i}], D[{i}]" for i in range(L + 1)]
    lines += [f"    transposed = t1 - t0 >= {config.TRANSPOSE_FROM}"]
    for i in range(L - 1, -1, -1):
        stride = padded(widths[i + 1])
        # without the copy T is W itself, never read: nothing allocated per call
        # (an online epoch calls this once per example)
        lines += ["    if transposed:",
                  f"        T{i + 1} = np.empty(({stride}, {widths[i]}), W{i + 1}.dtype)",
                  f"        for k in range({widths[i]}):",
                  f"            for j in range({stride}):",
                  f"                T{i + 1}[j, k] = W{i + 1}[k, j]",
                  "    else:",
                  f"        T{i + 1} = W{i + 1}"]
    lines += ["    for t in range(t0, t1):",
              "        label = labels[rows[t]]",
              "        # BP1: delta^L = nabla_a C (.) sigma'(z^L), with sigma'(z) = a (1 - a)"]
    if cost == "quadratic":
        lines += ["        cost = 0.0"]
        for j in range(widths[L]):
            lines += [f"        a = A{L}[t, {j}]",
                      f"        y = 1.0 if label == {j} else 0.0",
                      "        cost += 0.5 * (a - y) * (a - y)",
                      f"        D{L}[t, {j}] = flush_tiny(quadratic_output_error(a, y), tiny)"]
        lines += ["        costs[t] = cost"]
    elif cost == "cross-entropy":
        # C_x = -ln(a_label * prod_{j != label} (1 - a_j)): the probability the
        # outputs give the desired output, one logarithm per example
        lines += ["        p = 1.0"]
        for j in range(widths[L]):
            lines += [f"        a = A{L}[t, {j}]",
                      f"        y = 1.0 if label == {j} else 0.0",
                      "        p *= np.float64(a) if label == " + str(j)
                      + " else 1.0 - np.float64(a)",
                      f"        D{L}[t, {j}] = flush_tiny(cross_entropy_output_error(a, y), tiny)"]
        lines += ["        costs[t] = -np.log(max(p, CE_SMALLEST))"]
    else:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    for i in range(L - 1, -1, -1):
        stride = padded(widths[i + 1])
        lines += [f"        # BP2, layer {i}: delta^l = ((w^(l+1))^T delta^(l+1)) (.) sigma'(z^l),",
                  f"        # back through the {widths[i + 1]} x {widths[i]} weights"]
        lines += [f"        d{j} = D{i + 1}[t, {j}]" for j in range(stride)]
        for path, term in (("if transposed", f"T{i + 1}[{{j}}, k] * d{{j}}"),
                           ("else", f"W{i + 1}[k, {{j}}] * d{{j}}")):
            lines += [f"        {path}:",
                      f"            for k in range({widths[i]}):",
                      f"                s = {_dot_terms(stride, term)}",
                      f"                ak = A{i}[t, k]",
                      f"                D{i}[t, k] = flush_tiny(s * ak * (1.0 - ak), tiny)"]
    return lines


def _update_code(widths, panel, dense=False):
    """update_rows: target_w[l] += coef * sum_t a^(l-1)_t (delta^l_t)^T and
    target_b[l] += coef * sum_t delta^l_t over the examples t = t0, t0 + 1, ..., t1 - 1
    in order, for one piece of the weights.  Pieces 0..n_row_blocks-1 are blocks
    of layer 0's rows: piece r takes the nonzero inputs spans[t, r]:spans[t, r + 1]
    of each example t (``row_splits``, copied by forward_pass), and the last one
    also adds layer 0's biases; piece n_row_blocks + i - 1 is the whole of layer i.
    With one block of rows, each example's nonzero inputs are all of its row.
    With dense, the column of values[p] is its position in the row.

    Example by example, delta_t stays in registers while the rows of its
    nonzero inputs are updated.  (Walking the rows instead, each row held in
    registers while all its terms are added, after sorting the terms by row in
    example order, gives the same bits but a slower epoch: the sort costs more
    than the row reads and writes it saves; BENCHMARKS.md.)
    """
    lines = ["def update_rows(piece, n_row_blocks, t0, t1, rows, indptr, indices, values, spans,",
             "                coef, target_w, target_b, A, D):"]
    lines += [f"    W{i}, B{i}, D{i} = target_w[{i}], target_b[{i}], D[{i}]"
              for i in range(len(widths))]
    lines += ["    # BP3 dC/db_j = delta_j and BP4 dC/dw_jk = a_k delta_j, each times coef:",
              "    # the update w -> w - (eta/m) sum_x dC_x/dw when coef = -eta/m"]
    for i, n_out in enumerate(widths):
        stride = padded(n_out)
        if i == 0:
            lines += ["    if piece < n_row_blocks:",
                      "        for t in range(t0, t1):",
                      "            row = indptr[rows[t]]",
                      "            if n_row_blocks == 1:",
                      "                p0, p1 = row, indptr[rows[t] + 1]",
                      "            else:",
                      "                p0, p1 = spans[t, piece], spans[t, piece + 1]"]
        else:
            lines += [f"    if piece == n_row_blocks + {i - 1}:",
                      f"        A{i - 1} = A[{i - 1}]",
                      "        for t in range(t0, t1):"]
        for j0, j1 in _panels(stride, panel):
            cols = range(j0, j1)
            lines += [f"            d{j} = D{i}[t, {j}]" for j in cols]
            if i == 0:
                lines += ["            for p in range(p0, p1):",
                          "                k = " + ("p - row" if dense else "indices[p]"),
                          "                c = coef * values[p]"]
            else:
                lines += [f"            for k in range({widths[i - 1]}):",
                          f"                c = coef * A{i - 1}[t, k]"]
            lines += [f"                W{i}[k, {j}] += c * d{j}" for j in cols]
            bias_guard = "piece == n_row_blocks - 1" if i == 0 else "True"
            lines += [f"            if {bias_guard}:"]
            lines += [f"                B{i}[{j}] += coef * d{j}" for j in cols]
    return lines


def layer_code(widths, panel, cost="quadratic", dense=False):
    """Source of forward_pass, backward_pass and update_rows for a network whose
    layers after the input have `widths` neurons (sizes[1:]), computing `panel`
    outputs at a time, trained on `cost` ("quadratic" or "cross-entropy"), on
    inputs from ``nonzero_columns`` or, with dense, ``dense_columns``."""
    parts = [_forward_code(widths, panel, dense), _backward_code(widths, cost),
             _update_code(widths, panel, dense)]
    return "\n\n\n".join(f"@njit({NJIT_OPTIONS})\n" + "\n".join(p) for p in parts)

