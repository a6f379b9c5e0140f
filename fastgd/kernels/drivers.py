"""The drivers: the loops around the three generated operations, whose source
is copied into every generated module (``source.module_source``).

In the generated module ``forward_pass``, ``backward_pass`` and
``update_rows`` are the operations written out for the network's widths
(``generator``, or ``generic``), and the tunables ``PARAM_BLOCK``,
``DECAY_ROWS`` and ``SPINS_BEFORE_YIELD`` are replaced by the numbers
``fastgd.config`` holds when the module is generated.  Those six names are
defined only there: ruff's undefined-name rule is off for this file alone
(pyproject.toml), and everything else the drivers call is imported below, so
that the rule still catches a misspelt helper.

Where the book's equations are, per example x of a mini-batch of m:

* feedforward, a^l = sigma(w^l a^(l-1) + b^l): ``forward_pass``;
* BP1 and BP2, the errors delta^L and delta^l: ``backward_pass``;
* BP3 and BP4, dC_x/db = delta and dC_x/dw = a_in delta_out, added over the
  mini-batch: ``update_rows`` (straight into params for a small mini-batch,
  into a group's row of ``groups`` for a large one, then ``add_groups``);
* the update w -> w - (eta/m) sum_x dC_x/dw (and the decay of chapter 3 first:
  ``decay_stage``): ``update_rows`` with coef = -eta/m, or ``apply_nabla``.
"""

import numpy as np
from numba import prange

from .buffers import Scratch, layer_views, scratch_views
from .inputs import nonzero_columns_in_kernel
from .maths import add_groups, apply_nabla
from .workqueue import (decay_stage, finish_and_take, hogwild_queues, hogwild_replica,
                        merge_interval, merge_replica, pull_replica, take_piece, wait_for,
                        work_queue)


def drive_train(descend, examples, idx, start, stop, mini_batch_size, eta, mean, params, layout,
                scratch, plan, decay=1.0, shrink=0.0):
    """Gradient descent over the examples idx[start:stop], one mini-batch at a time
    (``fastgd.reference.train_epoch``).

    examples, layout, scratch and plan are the namedtuples ``Examples``,
    ``LayoutArrays``, ``Scratch`` and ``Plan`` (see their fields there).

    For each mini-batch X_1..X_m: w -> w - (eta/m) sum_j dC_Xj/dw (likewise b),
    or w -> w - eta sum_j dC_Xj/dw when mean is False.  The last, short
    mini-batch uses its own length m, as network.py does.  Regularisation is
    one factor or one sign term per step: each mini-batch's weights (not
    biases) become decay * w (L2, decay = 1 - eta lmbda / n) or
    w - shrink * sgn(w) (L1, shrink = eta lmbda / n) after its gradient is
    computed and before it is applied; decay 1.0 and shrink 0.0 skip it.

    n_workers loops (one per thread) share the work in one parallel region
    (``drive_descend``, given as ``descend``: see ``callee_arguments``);
    returns the sum of C_x over the examples, each evaluated with the weights
    in force when its mini-batch started (the running training cost).
    """
    counter, total = work_queue()
    for p in range(scratch.nabla.shape[0]):
        scratch.nabla[p] = 0
    # np.bool_(True), a value rather than the constant True, and likewise in the other
    # drivers: numba compiles a callee anew for each constant argument (a Literal
    # type), and drive_train_serial passes drive_descend a plain bool from Python.
    for _worker in prange(plan.n_workers):
        descend(examples, idx, start, stop, mini_batch_size, eta, mean, np.bool_(True), params,
                layout, scratch, plan, plan.direct_max, decay, shrink, counter, total)
    return total[0]


def drive_train_serial(examples, idx, start, stop, mini_batch_size, eta, mean, params, layout,
                       scratch, plan, decay=1.0, shrink=0.0):
    """``drive_train`` on one worker, called from Python: the same call of
    ``drive_descend``, so the same steps and the same bits.  Not compiled
    itself: a compiled wrapper would make numba optimise and generate all of
    drive_descend's machine code once more, seconds of a cold first epoch.
    For the same reason the work queue is made by NumPy here, the arrays
    ``work_queue`` makes: loading that function's compiled code at its first
    call from Python took 10-15 ms of every process's first step."""
    counter, total = np.zeros(2, np.int64), np.zeros(1)
    scratch.nabla[:] = 0
    drive_descend(examples, idx, start, stop, mini_batch_size, eta, mean, True, params, layout,
                  scratch, plan, plan.direct_max, decay, shrink, counter, total)
    return total[0]


def drive_train_hogwild(descend, examples, idx, start, stop, mini_batch_size, eta, mean, params,
                        layout, scratch, plan, decay=1.0, shrink=0.0):
    """Hogwild! (Recht, Re, Wright and Niu, 2011): ``drive_train``'s gradient descent
    over idx[start:stop], with the mini-batches dealt out in one contiguous
    block per thread, each thread stepping through its own block as the serial
    kernel does and adding its steps into the shared params without locks.

    With more than one thread, each thread steps on a replica of the weights
    and adds what it changed to the shared ones every ``merge_interval``
    mini-batches, then takes them afresh (as Hogwild++ does, Zhang, Hsieh and
    Akella, 2016): writing the shared weights at every step made the threads
    pass the same cache lines back and forth at every step.

    NOT DETERMINISTIC with more than one thread: a thread steps on weights that
    lack the other threads' latest steps, and two threads adding to the same
    weight at once can lose one of the two additions, so the bits (and,
    slightly, the accuracy) depend on how the threads happen to interleave.
    That is the method: Recht et al. prove that SGD converges like this when
    each step touches few of the weights, as MNIST's sparse inputs make layer
    0's updates do.  With one thread it is ``drive_train``'s serial run, bit for
    bit: the same ``drive_descend`` on one worker, over the same examples,
    straight into params.

    The arguments are ``drive_train``'s (descend too), except that every field of scratch has one
    more, leading axis: the threads' own buffers (scratch[w] for thread w, its
    rows on cache lines of their own, so that no two threads write one line),
    and that plan is the serial kernel's plan with n_workers the number of
    threads.  Returns the sum of C_x over the examples, each evaluated with
    the weights its thread stepped on, the threads' sums added in thread order.
    """
    n_threads = plan.n_workers
    n_batches = (stop - start + mini_batch_size - 1) // mini_batch_size
    counters, totals = hogwild_queues(n_threads)
    merge_every = merge_interval(examples.indptr, layout.sizes, params.shape[0],
                                 mini_batch_size, n_threads) * mini_batch_size
    for w in prange(n_threads):
        # thread w's mini-batches: first..last-1 of the n_batches, in order
        first = start + (w * n_batches // n_threads) * mini_batch_size
        last = min(stop, start + ((w + 1) * n_batches // n_threads) * mini_batch_size)
        own = Scratch(scratch.nabla[w], scratch.groups[w], scratch.A[w], scratch.D[w],
                      scratch.costs[w])
        for p in range(own.nabla.shape[0]):
            own.nabla[p] = 0
        if first < last and n_threads == 1:
            # one worker with its own work queue: the serial kernel's sequence of steps
            descend(examples, idx, first, last, mini_batch_size, eta, mean, np.bool_(True),
                    params, layout, own, plan, plan.direct_max, decay, shrink, counters[w],
                    totals[w])
        elif first < last:
            local, snapshot = hogwild_replica(params)
            pull_replica(params, local, snapshot)
            for part in range(first, last, merge_every):
                counters[w, 0] = 0  # a new run of the work queue
                counters[w, 1] = 0
                descend(examples, idx, part, min(last, part + merge_every), mini_batch_size,
                        eta, mean, np.bool_(True), local, layout, own, plan, plan.direct_max,
                        decay, shrink, counters[w], totals[w])
                merge_replica(params, local, snapshot)
    total = 0.0
    for w in range(n_threads):
        total += totals[w, 0]
    return total


def drive_gradient_sum(descend, examples, idx, start, stop, params, layout, scratch, plan):
    """nabla = sum_x dC_x/dw (likewise b) over the examples idx[start:stop], in
    params' layout; returns the sum of their C_x.  Nothing else is changed.

    The summing half of ``drive_train``'s step for a large mini-batch, for a
    mini-batch shared between processes (``fastgd.distributed``): groups are
    counted from ``start``, so that called on a whole mini-batch it gives the
    bits of the nabla that ``drive_train`` applies, whatever the chunk, the thread
    count or the variant.  Only nabla, groups, A, D and costs of the scratch,
    and group, chunk and n_workers of the plan, are used; descend is
    ``drive_descend``, as for ``drive_train``.
    """
    counter, total = work_queue()
    for p in range(scratch.nabla.shape[0]):
        scratch.nabla[p] = 0
    for _worker in prange(plan.n_workers):
        descend(examples, idx, start, stop, max(1, stop - start), 0.0, np.bool_(False),
                np.bool_(False), params, layout, scratch, plan, np.int64(0), 1.0, 0.0, counter,
                total)
    return total[0]


def drive_gradient_sum_serial(examples, idx, start, stop, params, layout, scratch, plan):
    """``drive_gradient_sum`` on one worker, called from Python (for the reasons
    ``drive_train_serial`` gives)."""
    counter, total = np.zeros(2, np.int64), np.zeros(1)
    scratch.nabla[:] = 0
    drive_descend(examples, idx, start, stop, max(1, stop - start), 0.0, False, False, params,
                  layout, scratch, plan, 0, 1.0, 0.0, counter, total)
    return total[0]


def callee_arguments(driver, args):
    """Arguments of the numba types that the parallel driver named `driver`
    ("train", "hogwild" or "gradient_sum": ``drive_train`` and so on, which
    call ``drive_descend``; "feedforward" or "gradients": ``drive_feedforward``
    and ``drive_gradients``, which call their ``_rows`` loop) passes the
    function it is given, when called with ``args`` (its own, after that
    function).  Not copied into the generated modules: Python, run once per
    signature.

    The parallel drivers get the function their threads run as an argument, a
    first-class function (``source.CallByPointer``), instead of calling it by
    name: a compiled function that calls another by name has numba optimise
    and generate the callee's whole machine code again inside it, seconds for
    each parallel driver.  A function passed as an argument has to be
    compiled for the exact types it is called with; these values have them."""
    if driver == "feedforward":
        X, params, layout, out, block = args
        return X, params, layout, out, block, np.int64(0), np.int64(0)
    if driver == "gradients":
        X, labels, params, layout, nabla = args
        return X, labels, params, layout, nabla, np.int64(0), np.int64(0)
    counter, total = work_queue.py_func()
    if driver == "gradient_sum":
        examples, idx, start, stop, params, layout, scratch, plan = args
        return (examples, idx, start, stop, max(1, stop - start), 0.0, np.bool_(False),
                np.bool_(False), params, layout, scratch, plan, np.int64(0), 1.0, 0.0, counter,
                total)
    examples, idx, start, stop, mini_batch_size, eta, mean, params, layout, scratch, plan, \
        decay, shrink = args
    if driver == "hogwild":  # each thread's own row of the buffers and of the queues
        scratch = Scratch(*(field[0] for field in scratch))
        counters, totals = hogwild_queues.py_func(1)
        counter, total = counters[0], totals[0]
    elif driver != "train":
        raise ValueError(f"no parallel driver {driver!r}")
    return (examples, idx, start, stop, mini_batch_size, eta, mean, np.bool_(True), params,
            layout, scratch, plan, plan.direct_max, decay, shrink, counter, total)


def drive_descend(examples, idx, start, stop, mini_batch_size, eta, mean, apply, params, layout,
             scratch, plan, direct_max, decay, shrink, counter, total):
    """One worker's share of ``drive_train`` (or, with apply False, of
    ``drive_gradient_sum``): every worker runs this same sequence of stages, and
    takes the pieces of each stage from the shared ``counter`` (``take_piece``)
    until they are all taken; a stage starts once the previous one is
    finished (``wait_for``).  So a call is one parallel region, and the end
    of a stage costs a wait on a counter instead of a join and a new fork.

    A mini-batch of at most direct_max examples is backpropagated in one go
    (all its examples see the same weights) and its update added straight to
    params, example by example; stages: forward and backward passes in blocks
    of example_block examples, the decay in blocks of DECAY_ROWS weight rows
    (``decay_stage``), the update in the blocks of weight rows that splits
    describes (``row_splits``; spans holds their bounds for the chunk's
    examples; neither has columns for a single block), each weight adding its
    examples' terms in the order t = 0, 1, ...

    A larger one is processed ``chunk`` examples at a time in groups of
    ``group`` examples, counted from the mini-batch's start; stages per chunk:
    each group's gradient summed in a buffer of its own (a row of ``groups``,
    zero on entry and left zero), so that each thread adds up the examples
    whose inputs it has just read; then the buffers added to nabla in group
    order, in blocks of PARAM_BLOCK parameters (``add_groups``).  Then the
    decay, and nabla applied (``apply_nabla``, which leaves it zero again).  With
    apply False, nabla (zero on entry) keeps the sum instead.  A and D hold
    the activations and errors of max(chunk, direct_max) examples (fewer if
    the mini-batches are smaller); D's padding must be zero on entry.

    What decides the order of the additions, and so the bits, depends only on
    the network: direct_max and group.  Nothing else does: not chunk (a
    multiple of group), nor the pieces the work is cut into, nor which worker
    takes which.  The first piece of the stage after a chunk's backward pass
    adds its costs C_x to total[0], in order.
    """
    indptr, indices, values, labels = examples
    nabla, groups, A, D, costs = scratch
    splits, spans, group, chunk, example_block = (plan.splits, plan.spans, plan.group,
                                                  plan.chunk, plan.example_block)
    sizes = layout.sizes
    n_out = sizes[sizes.shape[0] - 1]
    n_params = params.shape[0]
    rows_held = A.shape[0] // layout.a_off[-1]
    n_row_blocks = max(1, splits.shape[1] - 1)
    n_pieces = n_row_blocks + sizes.shape[0] - 2
    n_layer_pieces = sizes.shape[0] - 1  # one block of rows for layer 0, then the others
    n_param_blocks = (n_params + PARAM_BLOCK - 1) // PARAM_BLOCK
    no_splits = np.empty((0, 0), np.uint64)  # groups update whole rows: no spans to copy
    weights, biases = layer_views(params, layout)
    As, Ds = scratch_views(A, layout, rows_held), scratch_views(D, layout, rows_held)
    typed = np.ones(1, params.dtype)  # gives the coefficients params' dtype
    one = typed[0]
    zero = one - one
    decaying = apply and (decay != 1.0 or shrink != 0.0)
    typed[0] = decay
    scale = typed[0]
    typed[0] = shrink
    sign_term = typed[0]
    n_rows = 0  # weight rows, all layers: the decay's pieces are blocks of them
    for i in range(sizes.shape[0] - 1):
        n_rows += sizes[i]
    n_decay_pieces = (n_rows + DECAY_ROWS - 1) // DECAY_ROWS if decaying else 0
    patience = SPINS_BEFORE_YIELD  # turns of a wait before it yields the CPU
    # Integer arguments as int64 values, not constants: numba compiles a callee
    # anew for each constant argument (a Literal type), and the drivers below
    # call the passes with these where others pass variables.
    no_offset, one_block = np.int64(0), np.int64(1)
    piece = take_piece(counter)  # the piece this worker holds
    base = 0  # the current stage's first piece
    for mb_start in range(start, stop, mini_batch_size):
        mb = min(mini_batch_size, stop - mb_start)
        typed[0] = -eta / mb if mean else -eta
        step = typed[0]
        if mb <= direct_max:
            rows = idx[mb_start:stop]  # beyond mb: prefetched only
            n_blocks = (mb + example_block - 1) // example_block
            while piece < base + n_blocks:
                t0 = (piece - base) * example_block
                t1 = min(mb, t0 + example_block)
                # a^l = sigma(w^l a^(l-1) + b^l); then BP1 delta^L and BP2 delta^l
                forward_pass(t0, t1, rows, indptr, indices, values, splits, spans, weights,
                             biases, As, zero)
                backward_pass(t0, t1, rows, labels, weights, As, Ds, costs, n_out)
                piece = finish_and_take(counter)
            base = wait_for(counter, base + n_blocks, patience)
            # chapter 3's decay: w -> (1 - eta lmbda / n) w (L2) or w - (eta lmbda / n) sgn(w)
            piece, base = decay_stage(counter, piece, base, n_decay_pieces, DECAY_ROWS, weights,
                                       sizes, scale, sign_term, patience)
            while piece < base + n_pieces:
                if piece == base:
                    for t in range(mb):
                        total[0] += costs[t]
                # BP3, BP4 and the update, straight into params: b -> b - (eta/m) sum_x delta,
                # w -> w - (eta/m) sum_x a_in delta_out
                update_rows(piece - base, n_row_blocks, no_offset, mb, rows, indptr, indices,
                            values, spans, step, weights, biases, As, Ds)
                piece = finish_and_take(counter)
            base = wait_for(counter, base + n_pieces, patience)
            continue
        for first in range(mb_start, mb_start + mb, chunk):
            count = min(chunk, mb_start + mb - first)
            rows = idx[first:stop]
            n_groups = (count + group - 1) // group
            while piece < base + n_groups:
                g = piece - base
                t0 = g * group
                t1 = min(count, t0 + group)
                # a^l = sigma(w^l a^(l-1) + b^l); then BP1 delta^L and BP2 delta^l
                forward_pass(t0, t1, rows, indptr, indices, values, no_splits, no_splits,
                             weights, biases, As, zero)
                backward_pass(t0, t1, rows, labels, weights, As, Ds, costs, n_out)
                # BP3 dC_x/db = delta and BP4 dC_x/dw = a_in delta_out, summed over the
                # group's examples into its own row of groups
                group_w, group_b = layer_views(groups[g], layout)
                for layer_piece in range(n_layer_pieces):
                    update_rows(layer_piece, one_block, t0, t1, rows, indptr, indices, values,
                                no_splits, one, group_w, group_b, As, Ds)
                piece = finish_and_take(counter)
            base = wait_for(counter, base + n_groups, patience)
            while piece < base + n_param_blocks:
                blk = piece - base
                if blk == 0:
                    for t in range(count):
                        total[0] += costs[t]
                # nabla = sum_x dC_x/dw, the groups added in order
                add_groups(nabla, groups, n_groups, blk * PARAM_BLOCK,
                            min(n_params, (blk + 1) * PARAM_BLOCK))
                piece = finish_and_take(counter)
            base = wait_for(counter, base + n_param_blocks, patience)
        if not apply:
            continue
        # chapter 3's decay: w -> (1 - eta lmbda / n) w (L2) or w - (eta lmbda / n) sgn(w)
        piece, base = decay_stage(counter, piece, base, n_decay_pieces, DECAY_ROWS, weights,
                                   sizes, scale, sign_term, patience)
        while piece < base + n_param_blocks:
            blk = piece - base
            # the update: w -> w - (eta/m) nabla, b likewise (step = -eta/m)
            apply_nabla(params, nabla, step, blk * PARAM_BLOCK,
                        min(n_params, (blk + 1) * PARAM_BLOCK))
            piece = finish_and_take(counter)
        base = wait_for(counter, base + n_param_blocks, patience)


def drive_feedforward(rows, X, params, layout, out, block):
    """out[x] = a^L(x) for every row x of X (``fastgd.reference.feedforward``): the
    blocks of `block` examples shared among the threads, each block computed by
    ``drive_feedforward_rows``, given as ``rows`` (see ``callee_arguments``)."""
    n = X.shape[0]
    n_blocks = (n + block - 1) // block
    for bi in prange(n_blocks):
        rows(X, params, layout, out, block, np.int64(bi * block),
             np.int64(min(n, (bi + 1) * block)))


def drive_feedforward_serial(X, params, layout, out, block):
    """``drive_feedforward`` on one thread, called from Python (the reasons
    ``drive_train_serial`` gives): every row in one call of the rows loop."""
    drive_feedforward_rows(X, params, layout, out, block, 0, X.shape[0])


def drive_feedforward_rows(X, params, layout, out, block, first, stop):
    """out[x] = a^L(x) for the rows x = first..stop-1 of X, in blocks of `block`
    examples.  (The passes' integer arguments are int64 values, not constants,
    so that they reuse the training kernels' compiled passes.)"""
    sizes, a_off = layout.sizes, layout.a_off
    last = sizes.shape[0] - 2
    weights, biases = layer_views(params, layout)
    for bi in range((stop - first + block - 1) // block):
        x0 = first + bi * block
        x1 = min(stop, x0 + block)
        indptr, indices, values = nonzero_columns_in_kernel(X[x0:x1])
        As = scratch_views(np.zeros((x1 - x0) * a_off[-1], params.dtype), layout, x1 - x0)
        no_splits = np.empty((0, 0), np.uint64)
        forward_pass(np.int64(0), x1 - x0, np.arange(x1 - x0), indptr, indices, values,
                     no_splits, no_splits, weights, biases, As, np.zeros(1, params.dtype)[0])
        for t in range(x1 - x0):
            for j in range(sizes[last + 1]):
                out[x0 + t, j] = As[last][t, j]


def drive_gradients(rows, X, labels, params, layout, nabla):
    """nabla[x] = the gradient of C_x for each example x (row x of X), the
    examples shared among the threads, each computed by
    ``drive_gradients_rows``, given as ``rows`` (see ``callee_arguments``)."""
    for x in prange(X.shape[0]):
        rows(X, labels, params, layout, nabla, np.int64(x), np.int64(x + 1))


def drive_gradients_serial(X, labels, params, layout, nabla):
    """``drive_gradients`` on one thread, called from Python: every row in one
    call of the rows loop."""
    drive_gradients_rows(X, labels, params, layout, nabla, 0, X.shape[0])


def drive_gradients_rows(X, labels, params, layout, nabla, first, stop):
    """nabla[x] = the gradient of C_x for each example x = first..stop-1 (row x
    of X), in params' layout (``fastgd.reference.backprop``): dC_x/db^l =
    delta^l and dC_x/dw^l_jk = a^(l-1)_k delta^l_j; padding entries are zero."""
    sizes, a_off = layout.sizes, layout.a_off
    n_layers = sizes.shape[0] - 1
    weights, biases = layer_views(params, layout)
    for x in range(first, stop):
        indptr, indices, values = nonzero_columns_in_kernel(X[x:x + 1])
        As = scratch_views(np.zeros(a_off[-1], params.dtype), layout, 1)
        Ds = scratch_views(np.zeros(a_off[-1], params.dtype), layout, 1)
        cost = np.empty(1)
        first_row = np.zeros(1, np.int64)
        no_splits = np.empty((0, 0), np.uint64)
        forward_pass(np.int64(0), np.int64(1), first_row, indptr, indices, values, no_splits,
                     no_splits, weights, biases, As, np.zeros(1, params.dtype)[0])
        backward_pass(np.int64(0), np.int64(1), first_row, labels[x:x + 1], weights, As, Ds,
                      cost, sizes[n_layers])
        g = nabla[x]
        g[:] = 0
        nabla_w, nabla_b = layer_views(g, layout)
        for i in range(n_layers):
            # each layer's arrays taken from the lists once, and the inner loop on
            # an unsigned bound: indexing the lists inside it kept it from
            # vectorising, five times slower on one MNIST example
            delta, nb, nw = Ds[i][0], nabla_b[i], nabla_w[i]
            n_out = np.uint64(sizes[i + 1])
            for j in range(n_out):
                nb[j] = delta[j]
            for k in range(sizes[i]):
                ak = X[x, k] if i == 0 else As[i - 1][0, k]
                row = nw[k]
                for j in range(n_out):
                    row[j] = ak * delta[j]


def drive_backprop(X, labels, params, layout, nabla_b, nabla_w):
    """The gradient of C_x for the one example x = X[0] with label labels[0],
    shaped as the book's (``fastgd.reference.backprop``): nabla_b holds dC_x/db^l = delta^l for
    each layer after the input in turn, nabla_w the matrices dC_x/dw^l_jk =
    a^(l-1)_k delta^l_j, (sizes[l], sizes[l-1]) each, row-major, one after the other.

    ``drive_gradients_rows`` on one row, storing the same products in the book's
    orientation: its rows are params' transposed blocks, which backprop would
    otherwise copy transposed (half of its time on the book's network)."""
    sizes, a_off = layout.sizes, layout.a_off
    weights, biases = layer_views(params, layout)
    indptr, indices, values = nonzero_columns_in_kernel(X[0:1])
    As = scratch_views(np.zeros(a_off[-1], params.dtype), layout, 1)
    Ds = scratch_views(np.zeros(a_off[-1], params.dtype), layout, 1)
    cost = np.empty(1)
    first_row = np.zeros(1, np.int64)
    no_splits = np.empty((0, 0), np.uint64)
    forward_pass(np.int64(0), np.int64(1), first_row, indptr, indices, values, no_splits,
                 no_splits, weights, biases, As, np.zeros(1, params.dtype)[0])
    backward_pass(np.int64(0), np.int64(1), first_row, labels[0:1], weights, As, Ds, cost,
                  sizes[sizes.shape[0] - 1])
    b0 = 0
    w0 = 0
    for i in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[i], sizes[i + 1]
        delta = Ds[i][0]
        for j in range(n_out):
            nabla_b[b0 + j] = delta[j]
        # The loops and products of drive_gradients_rows, only stored elsewhere: of two NaNs
        # multiplied, which one the product is depends on how the loop compiles (a
        # loop over k for each delta_j, faster, gave the other one), and a network
        # whose weights diverged must get the same NaNs from either.
        block = nabla_w[w0:w0 + n_out * n_in].reshape((n_out, n_in))
        for k in range(n_in):
            ak = X[0, k] if i == 0 else As[i - 1][0, k]
            for j in range(np.uint64(n_out)):
                block[j, k] = ak * delta[j]
        b0 += n_out
        w0 += n_in * n_out

