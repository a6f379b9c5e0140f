"""Chapter 3's options (cross-entropy, L2/L1, scaled weights, an eta schedule)
against the NumPy transcription of network2.py (fastgd.reference), float64."""

import json
import re
import warnings
import zipfile

import numpy as np
import pytest

import fastgd
import fastgd.training

from fastgd import reference as naive
from helpers import book_weights, random_data, two_threads

# (sizes, n, mini_batch_size, cost, lmbda, regularization): online, mini-batch
# with a short last one, full batch, the quadratic cost with L2, and mini-batches
# of 300 > 256 examples on [784, 30, 10], which sum their gradient in groups.
EPOCHS = [
    ([5, 4, 3, 2], 23, 1, "cross-entropy", 2.0, "L2"),
    ([5, 4, 3, 2], 23, 5, "cross-entropy", 2.0, "L1"),
    ([7, 9, 4], 30, None, "cross-entropy", 5.0, "L2"),
    ([7, 9, 4], 30, 10, "quadratic", 5.0, "L2"),
    ([7, 9, 4], 30, 10, "cross-entropy", 0.0, "L2"),
    ([784, 30, 10], 700, 300, "cross-entropy", 5.0, "L2"),
    ([784, 30, 10], 700, 300, "cross-entropy", 5.0, "L1"),
]


# The parallel kernels of each cost are a compile of their own (about 15 s each): the
# quick tier (-m "not slow") checks the serial ones, CI both.
@pytest.mark.parametrize("kernel", ["serial", pytest.param("parallel", marks=pytest.mark.slow)])
@pytest.mark.parametrize("sizes, n, m, cost, lmbda, regularization", EPOCHS, ids=str)
def test_two_epochs_match_network2(sizes, n, m, cost, lmbda, regularization, kernel):
    net = fastgd.Network(sizes, seed=5, dtype="float64", cost=cost, init="scaled")
    weights, biases = book_weights(net)
    X, y = random_data(sizes, n, seed=6, zeros=0.8 if sizes[0] == 784 else 0.5)
    net.SGD((X, y), 2, m, 0.5, shuffle=False, kernel=kernel, verbose=False, lmbda=lmbda,
            regularization=regularization)
    for _ in range(2):
        weights, biases = naive.train_epoch2(weights, biases, X, y, np.arange(n), m or n, 0.5,
                                             lmbda, cost, regularization)
    for got, want in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # the decay did something, and the padding is still zero
    if lmbda:
        plain = fastgd.Network(sizes, seed=5, dtype="float64", cost=cost, init="scaled")
        plain.SGD((X, y), 2, m, 0.5, shuffle=False, kernel=kernel, verbose=False)
        assert not np.allclose(plain.weights[0], net.weights[0], rtol=1e-6, atol=0)
        np.testing.assert_array_equal(plain.biases[-1] != 0, net.biases[-1] != 0)
    real = np.zeros(net.layout.n_params, bool)
    for view in net.layout.unpack(real)[0] + net.layout.unpack(real)[1]:
        view[...] = True
    assert not net.params[~real].any()


def test_scaled_weights_are_the_same_draws_divided_by_sqrt_n_in():
    sizes = [7, 9, 4]
    large = fastgd.Network(sizes, seed=3, dtype="float64")
    scaled = fastgd.Network(sizes, seed=3, dtype="float64", init="scaled")
    for w_large, w_scaled, n_in in zip(large.weights, scaled.weights, sizes):
        np.testing.assert_allclose(w_scaled, w_large / np.sqrt(n_in), rtol=1e-15)
    for b_large, b_scaled in zip(large.biases, scaled.biases):
        np.testing.assert_array_equal(b_large, b_scaled)
    want_w, want_b = naive.scaled_weights(np.random.default_rng(3), sizes)
    for got, want in zip(scaled.weights + scaled.biases, want_w + want_b):
        np.testing.assert_allclose(got, want, rtol=1e-15)
    assert scaled.init == "scaled" and large.init == "large"


@pytest.mark.parametrize("regularization", ["L2", "L1"])
def test_cost_and_backprop_match_network2_and_finite_differences(regularization):
    """grad of C + regularization term = mean grad C_x + (lmbda/n) w (L2) or
    (lmbda/n) sgn(w) (L1), checked against central differences of net.cost."""
    sizes, lmbda = [5, 4, 3, 2], 3.0
    net = fastgd.Network(sizes, seed=1, dtype="float64", cost="cross-entropy")
    X, y = random_data(sizes, 8, seed=2)
    weights, biases = book_weights(net)
    cost = net.cost(X, y, lmbda=lmbda, regularization=regularization)
    assert cost == pytest.approx(
        naive.cross_entropy_cost(weights, biases, X, y, lmbda, regularization), rel=1e-12)
    assert net.cost(X, y) == pytest.approx(naive.cross_entropy_cost(weights, biases, X, y),
                                           rel=1e-12)
    for x, label in zip(X[:3], y[:3]):
        got_b, got_w = net.backprop(x, label)
        want_b, want_w = naive.backprop2(weights, biases, x, label)
        for got, want in zip(got_b + got_w, want_b + want_w):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
    nabla_b, nabla_w = net.layout.unpack(net.gradients(X, y).mean(axis=0))
    n, h = len(y), 1e-6
    for views, nablas, regularized in ((net.biases, nabla_b, False),
                                       (net.weights, nabla_w, True)):
        for view, nabla in zip(views, nablas):
            for index in np.ndindex(view.shape):
                original = view[index]
                view[index] = original + h
                plus = net.cost(X, y, lmbda, regularization)
                view[index] = original - h
                minus = net.cost(X, y, lmbda, regularization)
                view[index] = original
                analytic = nabla[index]
                if regularized:
                    analytic += lmbda / n * (original if regularization == "L2"
                                             else np.sign(original))
                assert analytic == pytest.approx((plus - minus) / (2 * h), rel=1e-5,
                                                 abs=1e-9), index


def test_cross_entropy_of_saturated_outputs_is_finite_and_never_nan():
    """Outputs rounded to exactly 0 or 1: right ones cost 0 (0 ln 0 is 0, as
    network2.py's nan_to_num has it), wrong ones a large finite cost."""
    sizes = [3, 2]
    net = fastgd.Network(sizes, [np.zeros((2, 3))], [np.array([-800.0, 800.0])],
                         dtype="float64", cost="cross-entropy")
    X = np.zeros((2, 3))
    assert np.array_equal(net.feedforward(X), [[0.0, 1.0], [0.0, 1.0]])
    assert net.cost(X[:1], [1]) == 0.0
    wrong = net.cost(X[:1], [0])
    assert np.isfinite(wrong) and wrong > 700
    history = net.SGD((X, np.array([1, 1])), 1, 1, 0.1, verbose=False)
    assert history[0]["cost"] == 0.0 and history.diverged is None


def test_options_are_checked():
    net = fastgd.Network([5, 4, 3, 2], seed=0)
    data = random_data(net.sizes, 10)
    with pytest.raises(ValueError, match="cost must be one of"):
        fastgd.Network([5, 4, 3, 2], cost="entropy")
    with pytest.raises(ValueError, match="init must be one of"):
        fastgd.Network([5, 4, 3, 2], init="small")
    with pytest.raises(ValueError, match="lmbda must be a finite number >= 0"):
        net.SGD(data, 1, 2, 1.0, lmbda=-1.0, verbose=False)
    with pytest.raises(ValueError, match="regularization must be 'L2' or 'L1'"):
        net.SGD(data, 1, 2, 1.0, lmbda=1.0, regularization="l2", verbose=False)
    with pytest.raises(ValueError, match="eta_schedule must be None or 'halve-on-plateau'"):
        net.SGD(data, 1, 2, 1.0, eta_schedule="halve", test_data=data, verbose=False)
    with pytest.raises(ValueError, match="eta_schedule needs test_data"):
        net.SGD(data, 1, 2, 1.0, eta_schedule="halve-on-plateau", verbose=False)
    with pytest.raises(ValueError, match="min_eta_factor must be less than 1"):
        net.SGD(data, 1, 2, 1.0, eta_schedule="halve-on-plateau", test_data=data,
                min_eta_factor=2, verbose=False)
    with pytest.raises(ValueError, match="patience"):
        net.SGD(data, 1, 2, 1.0, eta_schedule="halve-on-plateau", test_data=data,
                patience=0, verbose=False)


# -- the eta schedule ---------------------------------------------------------------------

def test_scheduled_eta_halves_after_patience_epochs_without_a_better_accuracy():
    records = [{"correct": c} for c in (5, 7, 7, 6, 8, 8, 8, 8)]
    etas = [fastgd.training.scheduled_eta(records[:k], 1.0, 2) for k in range(1, 9)]
    # best 5, 7, 7 (1), 6 (2: halve), 8, 8 (1), 8 (2: halve), 8 (1)
    assert etas == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_halve_on_plateau_records_eta_and_stops_when_it_has_fallen_far_enough():
    sizes = [5, 4, 3, 2]
    data = random_data(sizes, 40, seed=1)
    net = fastgd.Network(sizes, seed=2, cost="cross-entropy")
    history = net.SGD(data, 200, 5, 0.5, test_data=data, eta_schedule="halve-on-plateau",
                      patience=2, min_eta_factor=1 / 8, verbose=False)
    etas = history.column("eta")
    assert etas[0] == 0.5 and set(etas) == {0.5, 0.25, 0.125}
    assert np.all(np.diff(etas) <= 0)
    assert len(history) < 200 and "eta fell to 0.0625, 0.125 of its start 0.5" in history.stopped
    # without a schedule, no eta per epoch
    plain = fastgd.Network(sizes, seed=2).SGD(data, 2, 5, 0.5, test_data=data, verbose=False)
    assert "eta" not in plain[0]


def test_a_resumed_run_with_every_option_gives_the_same_bits(tmp_path):
    sizes = [5, 4, 3, 2]
    data = random_data(sizes, 40, seed=1)
    options = dict(test_data=data, eta_schedule="halve-on-plateau", patience=1, lmbda=2.0,
                   regularization="L1", min_eta_factor=1 / 1024, verbose=False)
    whole = fastgd.Network(sizes, seed=2, cost="cross-entropy", init="scaled")
    history = whole.SGD(data, 8, 5, 0.5, **options)
    assert history.column("eta")[-1] < 0.5  # the schedule acted
    part = fastgd.Network(sizes, seed=2, cost="cross-entropy", init="scaled")
    part.SGD(data, 4, 5, 0.5, checkpoint=tmp_path / "run.npz", **options)
    net, resumed = fastgd.resume(tmp_path / "run.npz", data, data, epochs=8, verbose=False)
    assert net.cost_function == "cross-entropy" and net.init == "scaled"
    np.testing.assert_array_equal(net.params, whole.params)
    np.testing.assert_array_equal(resumed.column("eta"), history.column("eta"))


# -- files ---------------------------------------------------------------------------------

def test_save_and_load_keep_cost_and_init(tmp_path):
    net = fastgd.Network([5, 4, 3, 2], seed=1, cost="cross-entropy", init="scaled")
    net.save(tmp_path / "net.npz")
    loaded = fastgd.Network.load(tmp_path / "net.npz")
    assert (loaded.cost_function, loaded.init) == ("cross-entropy", "scaled")
    np.testing.assert_array_equal(loaded.params, net.params)
    assert "cost='cross-entropy'" in repr(loaded)


def test_a_default_network_is_written_as_before_and_old_files_load(tmp_path):
    """A chapter-1 network's file has only the members it always had, so older
    fastgd reads it; a file without cost and init is a quadratic, large one."""
    net = fastgd.Network([5, 4, 3, 2], seed=1)
    net.save(tmp_path / "net.npz")
    with zipfile.ZipFile(tmp_path / "net.npz") as archive:
        names = sorted(archive.namelist())
    assert names == sorted(["format.npy", "sizes.npy"] + [f"{kind}_{l}.npy" for l in range(3)
                                                        for kind in ("weights", "biases")])
    old = {"format": np.array("fastgd-network-1"), "sizes": np.array([3, 2])}
    old.update(weights_0=np.ones((2, 3), np.float32), biases_0=np.zeros(2, np.float32))
    np.savez(tmp_path / "old.npz", **old)
    loaded = fastgd.Network.load(tmp_path / "old.npz")
    assert (loaded.cost_function, loaded.init) == ("quadratic", "large")


@pytest.mark.parametrize("cost, message", [("hinge", "unknown cost 'hinge'"),
                                           ("x" * 1000, "more than 256")])
def test_a_file_with_a_bad_cost_is_refused(tmp_path, cost, message):
    arrays = {"format": np.array("fastgd-network-1"), "sizes": np.array([3, 2]),
              "weights_0": np.ones((2, 3)), "biases_0": np.zeros(2), "cost": np.array(cost)}
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        fastgd.Network.load(tmp_path / "bad.npz")


# -- thread counts -------------------------------------------------------------------------

MODES = {"online": 1, "mini-batch": 10, "large mini-batch": 300, "full batch": None}


@two_threads
@pytest.mark.slow  # the parallel kernels of both costs to compile
@pytest.mark.parametrize("regularization", ["L2", "L1"])
@pytest.mark.parametrize("mode", MODES)
def test_bit_identical_at_one_and_two_threads_with_every_option(mnist, mode, regularization):
    X, y = mnist[0]
    data = X[:2000], y[:2000]
    m = MODES[mode]

    def train(**options):
        net = fastgd.Network([784, 30, 10], seed=7, cost="cross-entropy", init="scaled")
        net.SGD(data, 2, m, 0.5 if m != 1 else 0.1, verbose=False, lmbda=5.0,
                regularization=regularization, **options)
        return net.params.copy()

    one = train(threads=1, kernel="parallel")
    two = train(threads=2, kernel="parallel")
    serial = train(kernel="serial")
    assert np.isfinite(one).all()
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, serial)


# -- real MNIST ----------------------------------------------------------------------------

@pytest.mark.slow  # a new shape to compile, three epochs
def test_the_books_chapter3_network_reaches_96_percent_in_three_epochs(mnist):
    """[784, 100, 10], cross-entropy, L2 with lmbda 5.0, eta 0.5, scaled weights,
    m 10 (the book: 98% after 30 epochs).  Seen here: 95.0% after one epoch,
    96.2% after two, 96.9% after five (seed 1)."""
    training_data, _, test_data = mnist
    net = fastgd.Network([784, 100, 10], seed=1, cost="cross-entropy", init="scaled")
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastgd.DivergenceWarning)
        history = net.SGD(training_data, 3, 10, 0.5, test_data=test_data, lmbda=5.0,
                          verbose=False)
    assert history.column("accuracy").max() >= 0.96
    assert history.diverged is None


@pytest.mark.slow  # thirty epochs on 50,000 images
def test_the_cross_entropy_run_of_the_book_is_not_flagged(mnist):
    """[784, 30, 10], cross-entropy, eta 0.5, 30 epochs on the 50,000 images (the
    book: 95.5%): no verdict; the chapter-1 saturation check must not mistake
    its outputs, near 0 for nine digits in ten, for pinned ones."""
    training_data, _, test_data = mnist
    net = fastgd.Network([784, 30, 10], seed=1, cost="cross-entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastgd.DivergenceWarning)
        history = net.SGD(training_data, 30, 10, 0.5, test_data=test_data, verbose=False)
    assert len(history) == 30 and history.diverged is None and history.stopped is None
    assert history.column("pinned_outputs").max() == 0
    assert history.column("accuracy").max() > 0.945


# -- the command line ----------------------------------------------------------------------

QUICK = ["train", "--sizes", "784,10,10", "--train-size", "500", "--seed", "1"]


def test_train_with_the_chapter3_options_says_so_and_saves_them(tmp_path, capsys):
    from fastgd.cli import main
    options = ["--cost", "cross-entropy", "--init", "scaled", "--lmbda", "0.5",
               "--regularization", "L1", "--eta", "0.5"]
    assert main(QUICK + ["--epochs", "2", "--save", str(tmp_path / "net.npz")] + options) == 0
    out = capsys.readouterr().out
    assert ("Network [784, 10, 10], float32, cross-entropy cost, scaled initial weights, "
            "L1 regularization, lambda 0.5; 500 training inputs") in out
    assert "test inputs classified correctly" in out and "cross-entropy cost C = " in out
    net = fastgd.Network.load(tmp_path / "net.npz")
    assert (net.cost_function, net.init) == ("cross-entropy", "scaled")
    assert main(["evaluate", str(tmp_path / "net.npz")]) == 0
    assert "; cross-entropy cost C = " in capsys.readouterr().out
    # the chapter-1 header is unchanged
    assert main(QUICK + ["--epochs", "0"]) == 0
    assert "Network [784, 10, 10], float32; 500 training inputs" in capsys.readouterr().out


def test_train_halves_eta_on_a_plateau_and_says_why_it_stopped(capsys):
    from fastgd.cli import main
    assert main(QUICK + ["--epochs", "60", "--cost", "cross-entropy", "--eta", "0.5",
                         "--eta-schedule", "halve-on-plateau", "--patience", "1",
                         "--min-eta-factor", "1/4", "--evaluate-on", "validation"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Epoch \d+: \d+ / 10000  eta 0.25  \(", out, re.M)
    assert re.search(r"^Stopped after \d+ of 60 epochs: eta fell to 0.125, 0.25 of its start "
                     r"0.5 \(--eta-schedule, ", out, re.M)


def test_a_resumed_run_keeps_its_chapter3_options(tmp_path, capsys):
    from fastgd.cli import main
    path = str(tmp_path / "run.npz")
    options = ["--cost", "cross-entropy", "--lmbda", "2", "--eta", "0.5"]
    assert main(QUICK + ["--epochs", "1", "--checkpoint", path] + options) == 0
    capsys.readouterr()
    assert main(["train", "--resume", path, "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "cross-entropy cost, L2 regularization, lambda 2;" in out
    assert main(["train", "--resume", path, "--epochs", "3", "--lmbda", "3"]) == 2
    assert "--lmbda cannot be changed when resuming" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--lmbda", "-1"], "argument --lmbda: must be a finite number >= 0"),
    (["--cost", "hinge"], "argument --cost: invalid choice: 'hinge'"),
    (["--min-eta-factor", "2"], "argument --min-eta-factor: must be between 0 and 1"),
    (["--min-eta-factor", "1/0"], "argument --min-eta-factor: expected a number such as"),
    (["--patience", "0"], "argument --patience: must be >= 1"),
])
def test_bad_chapter3_arguments(capsys, args, message):
    from fastgd.cli import main
    assert main(["train", "--epochs", "1"] + args) == 2
    assert message in capsys.readouterr().err


def test_saturation_verdict_names_the_cost():
    from fastgd.training import History, diagnose
    rows = [{"epoch": e, "cost": 600.0, "pinned_outputs": 10, "accuracy": 0.1} for e in range(2)]
    assert "sigma'(z) is about 0" in diagnose(History(rows), 100.0, 10)
    verdict = diagnose(History(rows, cost="cross-entropy"), 100.0, 10)
    assert "training has saturated" in verdict and "sigma'(z)" not in verdict
    assert "with the cross-entropy cost, a sign that the steps are far too large" in verdict


def test_a_checkpoint_from_before_the_options_resumes_as_chapter1(tmp_path):
    """A checkpoint whose options lack lmbda, eta_schedule, ... (written before
    they existed) resumes with their defaults."""
    sizes = [5, 4, 3, 2]
    data = random_data(sizes, 40, seed=1)
    fastgd.Network(sizes, seed=2).SGD(data, 1, 5, 0.5, test_data=data, verbose=False,
                                      checkpoint=tmp_path / "run.npz")
    with np.load(tmp_path / "run.npz") as f:
        arrays = dict(f)
    state = json.loads(str(arrays["state"]))
    for key in ("lmbda", "regularization", "eta_schedule", "patience", "min_eta_factor"):
        del state["definition"][key]
    arrays["state"] = np.array(json.dumps(state))
    np.savez(tmp_path / "old.npz", **arrays)
    net, history = fastgd.resume(tmp_path / "old.npz", data, data, epochs=2, verbose=False)
    whole = fastgd.Network(sizes, seed=2)
    whole.SGD(data, 2, 5, 0.5, test_data=data, verbose=False)
    np.testing.assert_array_equal(net.params, whole.params)
    assert len(history) == 2 and "eta" not in history[-1]
