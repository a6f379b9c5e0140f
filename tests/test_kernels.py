"""Every kernel against the plain NumPy transcription of the book (fastgd.reference), float64."""

import numba
import numpy as np
import pytest

import fastgd
import fastgd.training
from fastgd import config, kernels

from fastgd import reference as naive
from helpers import book_weights, random_data

@pytest.fixture(autouse=True, params=[pytest.param("now", marks=pytest.mark.specialised),
                                      "never"])
def specialize(request, monkeypatch):
    """Every test here runs the specialised kernels ("now": slow, see conftest.py)
    and the generic ones ("never", the rest of the suite's default); the tests
    over many shapes run the specialised ones on SPECIALISED shapes (``builds``)."""
    monkeypatch.setattr(config, "SPECIALIZE", request.param)
    return request.param


# Odd widths exercise the tails of the two-chain sums, [10, 70, 3] a wide hidden
# layer.
SHAPES = [[2, 3], [3, 1], [5, 4, 3, 2], [7, 9, 4], [784, 30, 10], [20, 17, 33, 9, 5],
          [10, 70, 3]]
# The shapes whose specialised kernels are tested: each costs a module per dtype and
# input path (a minute or more of a core each), where the generic kernels serve every
# shape.  Between them: a single layer of one output, a middle layer between two
# hidden ones, every width mod 4 (the four lanes of the backward sums) and mod 2 (the
# chains), and the book's network.  The tests below name their shapes in `sizes` and
# use these, so that no other shape is compiled.  A layer wider than a panel (16 to 64
# float64 outputs: panel_width) is [7, 9, 4] with panels of 8 outputs
# (test_panel_width_changes_no_bit): the code of any wide layer, for a fraction of
# the compile of a shape that is wide on every machine.
SPECIALISED = [[3, 1], [5, 4, 3, 2], [7, 9, 4], [784, 30, 10]]


def builds(cases):
    """(specialize, *case) for every case (sizes first, or sizes alone) on the
    generic kernels, and on the specialised ones where its shape is SPECIALISED."""
    params = []
    for case in cases:
        case = case if isinstance(case, tuple) else (case,)
        if case[0] in SPECIALISED:
            params.append(pytest.param("now", *case, marks=pytest.mark.specialised))
        params.append(pytest.param("never", *case))
    return params


@pytest.mark.parametrize("specialize, sizes", builds(SHAPES), indirect=["specialize"], ids=str)
def test_backprop_matches_naive(sizes):
    net = fastgd.Network(sizes, seed=3, dtype="float64")
    weights, biases = book_weights(net)
    X, y = random_data(sizes, 5, seed=1)
    for x, label in zip(X, y):
        nabla_b, nabla_w = net.backprop(x, label)
        ref_b, ref_w = naive.backprop(weights, biases, x, label)
        for got, want in zip(nabla_b + nabla_w, ref_b + ref_w):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("specialize, sizes", builds(SHAPES), indirect=["specialize"], ids=str)
def test_feedforward_evaluate_and_cost_match_naive(sizes):
    net = fastgd.Network(sizes, seed=4, dtype="float64")
    weights, biases = book_weights(net)
    X, y = random_data(sizes, 70, seed=2)  # more than one evaluation block
    out = net.feedforward(X)
    want = np.array([naive.feedforward(weights, biases, x) for x in X])
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_allclose(net.feedforward(X[3]), want[3], rtol=1e-12)
    assert net.evaluate(X, y) == int(np.sum(np.argmax(want, axis=1) == y))
    np.testing.assert_allclose(net.cost(X, y), naive.cost(weights, biases, X, y), rtol=1e-12)


@pytest.mark.parametrize("sizes", [[7, 9, 4]], ids=str)
def test_gradients_rows_unpack_to_backprop(sizes):
    net = fastgd.Network(sizes, seed=0, dtype="float64")
    X, y = random_data(sizes, 4)
    G = net.gradients(X, y)
    assert G.shape == (4, net.layout.n_params)
    for row, x, label in zip(G, X, y):
        nabla_b, nabla_w = net.layout.unpack(row)
        ref_b, ref_w = net.backprop(x, label)
        for got, want in zip(nabla_b + nabla_w, ref_b + ref_w):
            np.testing.assert_array_equal(got, want)


# (sizes, n, mini_batch_size, reduction): online, mini-batch with a short last
# mini-batch, mini-batch dividing n, full batch (None), and the summed update.
EPOCHS = [
    ([5, 4, 3, 2], 23, 1, "mean"),
    ([5, 4, 3, 2], 23, 5, "mean"),
    ([7, 9, 4], 30, 10, "mean"),
    ([7, 9, 4], 30, None, "mean"),
    ([20, 17, 33, 9, 5], 40, 7, "sum"),
    ([784, 30, 10], 50, 10, "mean"),
    ([10, 70, 3], 40, 8, "mean"),
]


@pytest.mark.parametrize("kernel", ["serial", "parallel"])
@pytest.mark.parametrize("specialize, sizes, n, m, reduction", builds(EPOCHS),
                         indirect=["specialize"], ids=str)
def test_one_epoch_matches_naive(sizes, n, m, reduction, kernel):
    net = fastgd.Network(sizes, seed=5, dtype="float64")
    weights, biases = book_weights(net)
    X, y = random_data(sizes, n, seed=6)
    net.SGD((X, y), 1, m, 0.5, shuffle=False, reduction=reduction, kernel=kernel, verbose=False)
    ref_w, ref_b = naive.train_epoch(weights, biases, X, y, np.arange(n), m or n, 0.5, reduction)
    for got, want in zip(net.weights + net.biases, ref_w + ref_b):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


# Dense inputs (few zeros) take the dense input path: every input read in order.
DENSE_EPOCHS = [EPOCHS[1], EPOCHS[3], EPOCHS[4]]


@pytest.mark.parametrize("specialize, sizes, n, m, reduction", builds(DENSE_EPOCHS),
                         indirect=["specialize"], ids=str)
def test_the_dense_input_path_matches_naive_and_is_the_same_on_any_thread_count(
        sizes, n, m, reduction):
    X, y = random_data(sizes, n, seed=6, zeros=0.05)
    results = []
    for kernel, threads in (("serial", 1), ("parallel", 1), ("parallel", 2)):
        net = fastgd.Network(sizes, seed=5, dtype="float64")
        weights, biases = book_weights(net)
        history = net.SGD((X, y), 1, m, 0.5, shuffle=False, reduction=reduction,
                          kernel=kernel, threads=min(threads, numba.config.NUMBA_NUM_THREADS),
                          verbose=False)
        assert history.info["inputs"] == "dense"
        assert history.info["nonzero_input_fraction"] == np.count_nonzero(X) / X.size
        results.append(net.params.copy())
    ref_w, ref_b = naive.train_epoch(weights, biases, X, y, np.arange(n), m or n, 0.5, reduction)
    for got, want in zip(net.weights + net.biases, ref_w + ref_b):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    for params in results[1:]:
        np.testing.assert_array_equal(params, results[0])


@pytest.mark.parametrize("sizes", [[7, 9, 4]], ids=str)
@pytest.mark.parametrize("m", [3, 300])  # a direct update, and the grouped sums
def test_without_zeros_the_dense_and_sparse_paths_give_the_same_bits(monkeypatch, m, sizes):
    """Both walk the inputs in the same order then, pairing the same terms."""
    X, y = random_data(sizes, 600, seed=3, zeros=0.0)

    def train():
        # float64: the modules of [7, 9, 4] that the tests above compile
        net = fastgd.Network(sizes, seed=5, dtype="float64")
        history = net.SGD((X, y), 2, m, 0.5, kernel="serial", verbose=False)
        return history.info["inputs"], net.params

    dense = train()
    monkeypatch.setattr(config, "DENSE_FROM", 2.0)  # never dense
    sparse = train()
    assert (dense[0], sparse[0]) == ("dense", "sparse")
    np.testing.assert_array_equal(dense[1], sparse[1])


def test_mostly_zero_inputs_take_the_sparse_path():
    X, _ = random_data([784, 30, 10], 10, zeros=0.8)
    assert kernels.uses_dense_path(X) == (False, np.count_nonzero(X) / X.size)
    assert kernels.uses_dense_path(np.ones((3, 4)))[0]
    indptr, indices, values = kernels.dense_columns(np.arange(6.0).reshape(2, 3))
    assert indptr.tolist() == [0, 3, 6] and indices.size == 0 and values.tolist() == list(range(6))


@pytest.mark.parametrize("sizes", [[7, 9, 4]], ids=str)
@pytest.mark.parametrize("kernel", ["serial", "parallel"])
def test_large_mini_batches_summed_chunk_by_chunk_match_naive(monkeypatch, kernel, sizes):
    """Mini-batches larger than a chunk take the buffered path: same result."""
    monkeypatch.setattr(fastgd.training.trainer, "chunk_size", lambda layout: 4)
    n = 27
    for m in (9, None):
        net = fastgd.Network(sizes, seed=7, dtype="float64")
        weights, biases = book_weights(net)
        X, y = random_data(sizes, n, seed=8)
        net.SGD((X, y), 2, m, 2.0, shuffle=False, kernel=kernel, verbose=False)
        for _ in range(2):
            weights, biases = naive.train_epoch(weights, biases, X, y, np.arange(n), m or n, 2.0)
        for got, want in zip(net.weights + net.biases, weights + biases):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sizes", [[7, 9, 4]], ids=str)
@pytest.mark.parametrize("m", [1, 5, 20, None])
def test_parallel_pieces_do_not_change_the_bits(monkeypatch, m, sizes):
    """Many small pieces (blocks of 2 examples, 16 blocks of weight rows per thread):
    the parallel kernel still gives the serial kernel's weights to the bit."""
    monkeypatch.setattr(fastgd.training.trainer, "EXAMPLE_BLOCK", 2)
    monkeypatch.setattr(fastgd.training.trainer, "ROW_BLOCKS_PER_THREAD", 16)
    monkeypatch.setattr(fastgd.training.trainer, "PARALLEL_CHUNK", 7)
    monkeypatch.setattr(fastgd.training.trainer, "chunk_size", lambda layout: 6)
    n = 60
    X, y = random_data(sizes, n, seed=9)
    nets = [fastgd.Network(sizes, seed=3, dtype="float64") for _ in range(2)]
    nets[0].SGD((X, y), 2, m, 1.0, kernel="serial", verbose=False)
    nets[1].SGD((X, y), 2, m, 1.0, kernel="parallel", verbose=False)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    weights, biases = book_weights(fastgd.Network(sizes, seed=3, dtype="float64"))
    rng = np.random.default_rng(3)
    [rng.standard_normal(s) for s in sizes[1:]]
    [rng.standard_normal((b, a)) for a, b in zip(sizes[:-1], sizes[1:])]
    for _ in range(2):
        weights, biases = naive.train_epoch(weights, biases, X, y, rng.permutation(n), m or n, 1.0)
    for got, want in zip(nets[1].weights + nets[1].biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sizes", [[7, 9, 4]], ids=str)
@pytest.mark.parametrize("m", [1, 4, 11, None])
@pytest.mark.parametrize("threads", [1, 2])
def test_more_workers_than_threads_finish_with_the_same_bits(monkeypatch, threads, m, sizes):
    """The parallel kernel's workers wait for each other between stages: with
    more workers than threads, some run only after others have finished, and
    must neither wait forever nor redo work.  Weights and the returned cost
    (summed by whichever worker takes a stage's first piece) are the serial
    kernel's to the bit."""
    monkeypatch.setattr(fastgd.training.trainer, "EXAMPLE_BLOCK", 2)
    monkeypatch.setattr(fastgd.training.trainer, "chunk_size", lambda layout: 6)
    n = 60
    X, y = random_data(sizes, n, seed=12)
    order = np.random.default_rng(5).permutation(n)
    serial = fastgd.Network(sizes, seed=4, dtype="float64")
    want = fastgd.training.Trainer(serial, (X, y), m, 2.0, kernel="serial").run_epoch(order)
    net = fastgd.Network(sizes, seed=4, dtype="float64")
    trainer = fastgd.training.Trainer(net, (X, y), m, 2.0, kernel="parallel", threads=threads)
    c = trainer.current
    plan = kernels.Plan(c.splits, c.spans, trainer.buffers.direct_max, trainer.buffers.group,
                         c.chunk, c.example_block, 5)
    with fastgd.training.numba_threads(threads):
        got = kernels.call(c.fn, trainer.examples, order, 0, n, m or n, 2.0, True, net.params,
                            net.layout.arrays, trainer.buffers.scratch, plan, 1.0, 0.0)
    np.testing.assert_array_equal(net.params, serial.params)
    assert got == want and want > 0


@pytest.mark.parametrize("sizes", [[7, 9, 4]], ids=str)  # 9 outputs: two panels of 8
def test_panel_width_changes_no_bit(monkeypatch, sizes):
    """Panels (outputs computed together) follow the machine's registers; a
    machine with other registers must still give the same numbers, from every
    kernel.  With panels of 8, the 9 outputs of [7, 9, 4]'s hidden layer take
    two panels, as any layer wider than a panel does; the other panel width is
    this machine's (one panel), whose kernels the tests above check against
    tests/naive.py."""
    n = 50
    X, y = random_data(sizes, n, seed=4)
    results = []
    for panel in (8, None):  # None: this machine's width (16 to 64 float64 outputs)
        monkeypatch.setattr(config, "PANEL", panel)
        net = fastgd.Network(sizes, seed=1, dtype="float64")
        for kernel, m in (("serial", 10), ("parallel", 3), ("serial", None)):
            net.SGD((X, y), 1, m, 1.0, kernel=kernel, shuffle=False, verbose=False)
        nabla_b, nabla_w = net.backprop(X[0], y[0])
        results.append([net.params.copy(), net.feedforward(X), net.gradients(X[:5], y[:5]),
                        *nabla_b, *nabla_w])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# Only the specialised kernels transpose (the "now" of the fixture, overridden): one
# shape per dtype, each compiled for the other tests here too.
@pytest.mark.parametrize("specialize", [pytest.param("now", marks=pytest.mark.specialised)])
@pytest.mark.parametrize("sizes, dtype", [([5, 4, 3, 2], "float64"),
                                          ([7, 9, 4], "float32")], ids=str)
def test_backward_pass_with_transposed_weights_gives_the_same_bits(sizes, dtype, specialize):
    """A call of the backward pass on TRANSPOSE_FROM examples or more first
    transposes the weights after layer 0; one on fewer uses them as stored.
    Each error delta must come out the same to the bit either way."""
    n = 2 * config.TRANSPOSE_FROM + 3
    net = fastgd.Network(sizes, seed=6, dtype=dtype)
    X, y = random_data(sizes, n, seed=8)
    module = kernels.kernels(sizes, dtype)
    layout = net.layout.arrays
    indptr, indices, values = kernels.nonzero_columns(X.astype(dtype))
    rows = np.random.default_rng(1).permutation(n)
    weights, biases = (tuple(part) for part in kernels.buffers.layer_views(net.params, layout))
    A = np.zeros(n * layout.a_off[-1], dtype)
    As = tuple(kernels.buffers.scratch_views(A, layout, n))
    no_splits = np.empty((0, 0), np.uint64)
    kernels.call(module.forward_pass, 0, n, rows, indptr, indices, values, no_splits,
                  no_splits, weights, biases, As, np.zeros(1, dtype)[0])
    deltas, costs = [], []
    for calls in ([(0, n)], [(t, t + 1) for t in range(n)]):
        D = np.zeros_like(A)
        cost = np.full(n, np.nan)
        for t0, t1 in calls:
            kernels.call(module.backward_pass, t0, t1, rows, y, weights, As,
                          tuple(kernels.buffers.scratch_views(D, layout, n)), cost, sizes[-1])
        deltas.append(D)
        costs.append(cost)
    assert np.count_nonzero(deltas[0]) > n  # errors were computed
    np.testing.assert_array_equal(deltas[0], deltas[1])
    np.testing.assert_array_equal(costs[0], costs[1])


def test_exp_is_within_an_ulp_of_numpy():
    """The kernels' own e^x (it vectorises; np.exp is a C call per number)."""
    from numba import njit
    from fastgd.kernels.maths import exp as _exp, sigmoid as _sigmoid

    @njit(error_model="numpy")
    def both(x):
        e, s = np.empty_like(x), np.empty_like(x)
        for i in range(x.shape[0]):
            e[i], s[i] = _exp(x[i]), _sigmoid(x[i])
        return e, s

    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, 1e-300, 709.78, 709.79, 710.0, -708.4, -745.1, -745.2, 1e300, -1e300]
    x = np.concatenate([rng.uniform(-750, 712, 200_000), rng.uniform(-2, 2, 50_000), edges])
    got, sig = both(x)
    with np.errstate(over="ignore"):
        want = np.exp(x)
    normal = np.isfinite(want) & (want >= np.finfo(float).tiny)
    ulps = np.abs(got[normal] - want[normal]) / np.spacing(want[normal])
    assert ulps.max() <= 1.0
    # inf and 0 exactly, subnormals within their last bit
    np.testing.assert_allclose(got[~normal], want[~normal], rtol=0, atol=5e-324)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(sig, 1 / (1 + np.exp(-x)), rtol=4e-16, atol=0)
    special = np.array([np.inf, -np.inf, np.nan])
    e, s = both(special)
    assert e[0] == np.inf and e[1] == 0 and np.isnan(e[2])
    assert s[0] == 1 and s[1] == 0 and np.isnan(s[2])


@pytest.mark.parametrize("sizes", [[7, 9, 4]], ids=str)
def test_shuffling_follows_the_seeded_generator(sizes):
    """Each epoch draws a fresh permutation from the generator that drew the weights."""
    n, seed = 20, 11
    net = fastgd.Network(sizes, seed=seed, dtype="float64")
    weights, biases = book_weights(net)
    X, y = random_data(sizes, n, seed=12)
    net.SGD((X, y), 2, 3, 1.0, verbose=False)
    rng = np.random.default_rng(seed)
    [rng.standard_normal(s) for s in sizes[1:]]                        # biases
    [rng.standard_normal((b, a)) for a, b in zip(sizes[:-1], sizes[1:])]  # weights
    for _ in range(2):
        weights, biases = naive.train_epoch(weights, biases, X, y, rng.permutation(n), 3, 1.0)
    for got, want in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sizes", [[5, 4, 3, 2]], ids=str)
def test_running_cost_is_the_mean_of_C_x_before_each_step(sizes):
    n = 6
    net = fastgd.Network(sizes, seed=1, dtype="float64")
    weights, biases = book_weights(net)
    X, y = random_data(sizes, n)
    history = net.SGD((X, y), 1, 3, 1.0, shuffle=False, verbose=False)
    first = naive.cost(weights, biases, X[:3], y[:3]) * 3
    weights, biases = naive.update_mini_batch(weights, biases, X[:3], y[:3], 1.0)
    second = naive.cost(weights, biases, X[3:], y[3:]) * 3
    np.testing.assert_allclose(history[0]["cost"], (first + second) / n, rtol=1e-12)


@pytest.mark.parametrize("sizes", [[784, 30, 10]], ids=str)
def test_float32_follows_float64(sizes):
    """float32 is the same algorithm: after an epoch it is within float32 rounding."""
    X, y = random_data(sizes, 200, seed=3, zeros=0.8)
    nets = [fastgd.Network(sizes, seed=2, dtype=d) for d in ("float32", "float64")]
    for net in nets:
        net.SGD((X, y), 1, 10, 3.0, shuffle=False, verbose=False)
    for w32, w64 in zip(nets[0].weights, nets[1].weights):
        np.testing.assert_allclose(w32, w64, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("sizes", [[784, 30, 10]], ids=str)
def test_padding_weights_stay_zero(sizes):
    """Rows are padded to a multiple of 8 outputs; training never touches the padding."""
    net = fastgd.Network(sizes, seed=0)
    X, y = random_data(net.sizes, 100, zeros=0.8)
    net.SGD((X, y), 2, 10, 3.0, verbose=False)
    real = np.zeros(net.layout.n_params, bool)
    for view in net.layout.unpack(real)[0] + net.layout.unpack(real)[1]:
        view[...] = True
    assert net.params[~real].size > 0 and not net.params[~real].any()


def train_in_row_blocks(net, data, m, eta, kernel, blocks):
    """One epoch of SGD in order on 1 thread, with the update of layer 0's weights
    cut into blocks of rows: `blocks` of them balanced by nonzero inputs (an int),
    or rows bounds[r]:bounds[r + 1] (a list of bounds).  The serial kernel always
    updates whole rows, and the parallel one cuts ROW_BLOCKS_PER_THREAD blocks per
    thread, so the trainer's splits are swapped for these; the only place the
    tests reach into Trainer's candidates."""
    trainer = fastgd.training.Trainer(net, data, m, eta, kernel=kernel, threads=1)
    n_in = net.sizes[0]
    examples = trainer.examples
    bounds = (kernels.balanced_bounds(examples.indices, n_in, blocks)
              if isinstance(blocks, int) else np.array(blocks, np.int64))
    assert bounds[0] == 0 and bounds[-1] == n_in and np.all(np.diff(bounds) >= 0)
    candidate = trainer.current
    if len(bounds) == 2:  # one block: each example's whole row, no splits
        candidate.splits = np.zeros((0, 0), np.uint64)
    else:
        candidate.splits = kernels.row_splits(examples.indptr, examples.indices, bounds)
    candidate.spans = np.zeros((len(trainer.buffers.costs) if candidate.splits.size else 0,
                                candidate.splits.shape[1]), np.uint64)
    trainer.run_epoch(np.arange(trainer.n))
    return len(bounds) - 1


# Blocks of layer 0's weight rows, as functions of n_in: balanced (more blocks than
# rows leaves some empty), and uneven ones, with empty blocks among them.
ROW_BLOCKS = {
    "1": lambda n_in: [0, n_in],
    "2": lambda n_in: 2,
    "2 uneven": lambda n_in: [0, 1, n_in],
    "3": lambda n_in: 3,
    "3 uneven": lambda n_in: [0, n_in - 2, n_in - 1, n_in],
    "7": lambda n_in: 7,
    "7 uneven": lambda n_in: [0, 1, 2, 2, 3, n_in, n_in, n_in],
}


@pytest.mark.parametrize("kernel", ["serial", "parallel"])
@pytest.mark.parametrize("blocks", ROW_BLOCKS)
@pytest.mark.parametrize("sizes, n", [([5, 4, 3, 2], 23), ([7, 9, 4], 30)], ids=str)
def test_updates_cut_into_blocks_of_rows_match_naive(sizes, n, blocks, kernel):
    """Online, mini-batches with a short last one, and the full batch (all
    updating the weights directly), with the rows cut into 1, 2, 3 or 7 blocks:
    the weights of the uncut serial kernel to the bit, and the book's."""
    X, y = random_data(sizes, n, seed=10)
    for m in (1, 7, None):
        net = fastgd.Network(sizes, seed=11, dtype="float64")
        weights, biases = book_weights(net)
        uncut = fastgd.Network(sizes, seed=11, dtype="float64")
        uncut.SGD((X, y), 1, m, 2.0, shuffle=False, kernel="serial", verbose=False)
        n_blocks = train_in_row_blocks(net, (X, y), m, 2.0, kernel, ROW_BLOCKS[blocks](sizes[0]))
        assert n_blocks == int(blocks.split()[0])
        np.testing.assert_array_equal(net.params, uncut.params)
        assert not np.array_equal(net.weights[0], weights[0])
        ref_w, ref_b = naive.train_epoch(weights, biases, X, y, np.arange(n), m or n, 2.0)
        for got, want in zip(net.weights + net.biases, ref_w + ref_b):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_arrays_the_kernels_read_by_rows_start_on_cache_lines(tmp_path, dtype):
    """A row of weights that straddles cache lines costs a fifth of an epoch
    (BENCHMARKS.md): params, the scratch buffers and each group sum's row
    must start on a cache line, also for a network read back from a file."""
    line = kernels.CACHE_LINE
    sizes = [4, 3, 2]  # 72 parameters: in float32 not a whole number of lines
    net = fastgd.Network(sizes, seed=1, dtype=dtype)
    net.save(tmp_path / "net.npz")
    buffers = fastgd.training.Buffers(net, 600, 600, 256)  # what a Trainer allocates
    if dtype == "float32":  # group rows need padding to start on lines
        assert net.layout.n_params * 4 % line and buffers.groups.shape[1] > net.layout.n_params
    assert len(buffers.groups) >= 2 and buffers.groups.shape[1] >= net.layout.n_params
    arrays = [net.params, fastgd.Network.load(tmp_path / "net.npz").params, buffers.A,
              buffers.D, buffers.nabla, *buffers.groups, buffers.costs]
    assert [a.ctypes.data % line for a in arrays] == [0] * len(arrays)
    assert all(a.dtype == dtype for a in arrays[:-1]) and not buffers.groups.any()
    copy = kernels.aligned_copy(net.params[1:])
    assert copy.ctypes.data % line == 0 and np.array_equal(copy, net.params[1:])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs numba to allow 2 threads")
@pytest.mark.parametrize("specialize", ["never"], indirect=True)
def test_the_parallel_evaluation_kernels_give_the_serial_bits_on_unaligned_inputs_too():
    """feedforward and gradients on more rows than a block take the parallel
    kernels, which call the serial kernels' rows loops through a pointer
    (``source.CallByPointer``), past numba's dispatcher.  Its key of the
    argument types leaves out alignment, as numba.typeof does: an unaligned X
    (np.ascontiguousarray passes one on) must still give the same bits."""
    sizes = [7, 9, 4]
    net = fastgd.Network(sizes, seed=0, dtype="float64")
    X, y = random_data(sizes, 3 * config.EVAL_BLOCK + 5, seed=6)
    raw = np.zeros(X.nbytes + 1, np.uint8)
    unaligned = raw[1:].view(np.float64).reshape(X.shape)
    unaligned[:] = X
    assert not unaligned.flags.aligned and unaligned.flags.c_contiguous
    before = numba.get_num_threads()
    try:
        results = {}
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for name, inputs in (("aligned", X), ("unaligned", unaligned)):
                results[threads, name] = (net.feedforward(inputs), net.gradients(inputs, y))
    finally:
        numba.set_num_threads(before)
    want = results[1, "aligned"]
    weights, biases = book_weights(net)
    np.testing.assert_allclose(want[0], [naive.feedforward(weights, biases, x) for x in X],
                               rtol=1e-12)
    for key, (out, nabla) in results.items():
        np.testing.assert_array_equal(out, want[0], err_msg=str(key))
        np.testing.assert_array_equal(nabla, want[1], err_msg=str(key))
