"""The generic operations: forward_pass, backward_pass and update_rows for any
layer widths, as loops over the widths read from the arrays instead of code
written out per width (``generator.layer_code``).

They compile in a fraction of the time (one module serves every network with
the same cost and input path, whatever its widths) and run more slowly: fastgd trains
on them while the specialised module compiles in the background
(``training.Trainer``).  Each number is computed with the same operations in
the same order as in layer_code's version (the chains of z_j, the four lanes
of the backward sums, the update's order over examples and inputs), so the
weights are bit-identical whichever trained them; tests/test_generic.py checks
it.  The book's equations are labelled in the generated code as in layer_code's.
"""

from .generator import NJIT_OPTIONS, COSTS, example_loop_head, check_chains


def _generic_forward_code(dense=False):
    """forward_pass for any widths: layer_code's forward_pass with each layer's
    z_j summed in A[l][t, :] (the first chain) and a row `second` (the second),
    instead of in named variables."""
    column = "p - p0" if dense else "indices[p]"
    column2 = "p + one - p0" if dense else "indices[p + one]"
    last_column = "p1 - one - p0" if dense else "indices[p1 - one]"
    lines = ["def forward_pass(t0, t1, rows, indptr, indices, values, splits, spans, weights,",
             "                 biases, A, zero):",
             "    one = np.uint64(1)",
             "    widest = 0",
             "    for i in range(len(weights)):",
             "        widest = max(widest, weights[i].shape[1])",
             "    second = np.empty(widest, A[0].dtype)"]
    lines += example_loop_head()
    lines += ["        # feedforward, each layer: z = w a + b, a = sigma(z)",
              "        for i in range(len(weights)):",
             "            W, B = weights[i], biases[i]",
             "            z = A[i][t]",
             "            y = second[:W.shape[1]]",
             "            for j in range(W.shape[1]):",
             "                z[j] = B[j]",
             "                y[j] = zero"]
    chains = check_chains()
    if chains == 1:
        lines += ["            if i == 0:",
                  "                for p in range(p0, p1):",
                  f"                    k, ak = {column}, values[p]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "            else:",
                  "                previous = A[i - 1][t]",
                  "                for k in range(W.shape[0]):",
                  "                    ak = previous[k]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]"]
    else:
        lines += ["            if i == 0:",
                  "                for q in range(pairs):",
                  "                    p = p0 + q + q",
                  f"                    k, ak = {column}, values[p]",
                  f"                    k2, ak2 = {column2}, values[p + one]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "                    for j in range(W.shape[1]):",
                  "                        y[j] += ak2 * W[k2, j]",
                  "                if p0 + pairs + pairs < p1:",
                  f"                    k, ak = {last_column}, values[p1 - one]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "            else:",
                  "                previous = A[i - 1][t]",
                  "                n_in = W.shape[0]",
                  "                for k in range(0, n_in - 1, 2):",
                  "                    ak, ak2 = previous[k], previous[k + 1]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[k, j]",
                  "                    for j in range(W.shape[1]):",
                  "                        y[j] += ak2 * W[k + 1, j]",
                  "                if n_in % 2:",
                  "                    ak = previous[n_in - 1]",
                  "                    for j in range(W.shape[1]):",
                  "                        z[j] += ak * W[n_in - 1, j]",
                  "            for j in range(W.shape[1]):",
                  "                z[j] = z[j] + y[j]"]
    lines += ["            for j in range(W.shape[1]):",
              "                z[j] = sigmoid(z[j])"]
    return lines


def _generic_backward_code(cost="quadratic"):
    """backward_pass for any widths (n_out outputs): layer_code's
    backward_pass with loops over the widths; each input's sum of w_jk delta_j
    is formed in the same four lanes over j mod 4, in the same order."""
    lines = ["def backward_pass(t0, t1, rows, labels, weights, A, D, costs, n_out):",
             "    tiny = np.finfo(D[0].dtype).tiny / np.finfo(D[0].dtype).eps",
             "    L = len(weights) - 1",
             "    for t in range(t0, t1):",
             "        label = labels[rows[t]]",
             "        AL, DL = A[L], D[L]",
             "        # BP1: delta^L = nabla_a C (.) sigma'(z^L), with sigma'(z) = a (1 - a)"]
    if cost == "quadratic":
        lines += ["        cost = 0.0",
                  "        for j in range(n_out):",
                  "            a = AL[t, j]",
                  "            y = 1.0 if label == j else 0.0",
                  "            cost += 0.5 * (a - y) * (a - y)",
                  "            DL[t, j] = flush_tiny(quadratic_output_error(a, y), tiny)",
                  "        costs[t] = cost"]
    elif cost == "cross-entropy":
        lines += ["        p = 1.0",
                  "        for j in range(n_out):",
                  "            a = AL[t, j]",
                  "            y = 1.0 if label == j else 0.0",
                  "            p *= np.float64(a) if label == j else 1.0 - np.float64(a)",
                  "            DL[t, j] = flush_tiny(cross_entropy_output_error(a, y), tiny)",
                  "        costs[t] = -np.log(max(p, CE_SMALLEST))"]
    else:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    lines += ["        # BP2: delta^l = ((w^(l+1))^T delta^(l+1)) (.) sigma'(z^l)",
              "        for i in range(L - 1, -1, -1):",
              "            W, Ai, Di, d = weights[i + 1], A[i], D[i], D[i + 1][t]",
              "            for k in range(W.shape[0]):",
              "                w = W[k]",
              "                s0, s1, s2, s3 = w[0] * d[0], w[1] * d[1], w[2] * d[2], w[3] * d[3]",
              "                for j in range(4, W.shape[1], 4):",
              "                    s0 += w[j] * d[j]",
              "                    s1 += w[j + 1] * d[j + 1]",
              "                    s2 += w[j + 2] * d[j + 2]",
              "                    s3 += w[j + 3] * d[j + 3]",
              "                s = (s0 + s1) + (s2 + s3)",
              "                ak = Ai[t, k]",
              "                Di[t, k] = flush_tiny(s * ak * (1.0 - ak), tiny)"]
    return lines


def _generic_update_code(dense=False):
    """update_rows for any widths: layer_code's update_rows with loops over the
    widths; each weight adds its terms in the same order (examples t, then
    inputs p)."""
    lines = ["def update_rows(piece, n_row_blocks, t0, t1, rows, indptr, indices, values, spans,",
             "                coef, target_w, target_b, A, D):",
             "    # BP3 dC/db_j = delta_j and BP4 dC/dw_jk = a_k delta_j, each times coef:",
             "    # the update w -> w - (eta/m) sum_x dC_x/dw when coef = -eta/m",
             "    if piece < n_row_blocks:",
             "        W, B, D0 = target_w[0], target_b[0], D[0]",
             "        for t in range(t0, t1):",
             "            row = indptr[rows[t]]",
             "            if n_row_blocks == 1:",
             "                p0, p1 = row, indptr[rows[t] + 1]",
             "            else:",
             "                p0, p1 = spans[t, piece], spans[t, piece + 1]",
             "            d = D0[t]",
             "            for p in range(p0, p1):",
             "                k = " + ("p - row" if dense else "indices[p]"),
             "                c = coef * values[p]",
             "                for j in range(W.shape[1]):",
             "                    W[k, j] += c * d[j]",
             "            if piece == n_row_blocks - 1:",
             "                for j in range(W.shape[1]):",
             "                    B[j] += coef * d[j]",
             "        return",
             "    i = piece - n_row_blocks + 1",
             "    W, B, Di, previous = target_w[i], target_b[i], D[i], A[i - 1]",
             "    for t in range(t0, t1):",
             "        d = Di[t]",
             "        for k in range(W.shape[0]):",
             "            c = coef * previous[t, k]",
             "            for j in range(W.shape[1]):",
             "                W[k, j] += c * d[j]",
             "        for j in range(W.shape[1]):",
             "            B[j] += coef * d[j]"]
    return lines


def generic_layer_code(cost="quadratic", dense=False):
    """Source of the generic forward_pass, backward_pass and update_rows: any
    widths, trained on `cost`, inputs as for layer_code."""
    parts = [_generic_forward_code(dense), _generic_backward_code(cost),
             _generic_update_code(dense)]
    return "\n\n\n".join(f"@njit({NJIT_OPTIONS})\n" + "\n".join(p) for p in parts)

