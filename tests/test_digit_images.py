"""Pictures of handwritten digits read as MNIST's digits were made, and ``fastgd predict``."""

import json
import re

import numpy as np
import pytest

import fastgd
from fastgd.cli import main
from fastgd.data import read_digit_image

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A [784, 10, 10] network trained briefly (about 80% on the test data), saved."""
    (X, y), _, test = fastgd.load_mnist()
    net = fastgd.Network([784, 10, 10], seed=1)
    net.SGD((X[:2000], y[:2000]), 10, 10, 3.0, verbose=False)
    path = tmp_path_factory.mktemp("model") / "net.npz"
    net.save(path)
    return net, path, test


def paper(x):
    """An MNIST row as a picture of dark ink on white paper, upscaled 3x to 84x84."""
    ink = np.rint(np.asarray(x, np.float64) * 256).reshape(28, 28)
    image = Image.fromarray((255 - ink).astype(np.uint8))
    return image.resize((84, 84), Image.Resampling.BILINEAR)


def centre_of_mass(x):
    image = np.asarray(x, np.float64).reshape(28, 28)
    rows, cols = np.mgrid[0:28, 0:28]
    return (image * rows).sum() / image.sum(), (image * cols).sum() / image.sum()


def test_a_picture_of_an_mnist_digit_reads_back_close_to_the_digit(tmp_path, mnist):
    X = mnist[2][0]
    for i in range(20):
        paper(X[i]).save(tmp_path / f"{i}.png")
        x = read_digit_image(tmp_path / f"{i}.png")
        assert x.shape == (784,) and x.dtype == np.float32
        assert x.min() == 0 and x.max() <= 255 / 256
        np.testing.assert_array_equal(x * 256, np.rint(x * 256))  # bytes / 256, as load_mnist
        # MNIST's centre of mass is pixel (14, 14) to within half a pixel.
        for c in centre_of_mass(x):
            assert abs(c - 14) <= 0.5 + 1e-9
        # Cropped to the ink and scaled to fit 20x20.
        ink = x.reshape(28, 28) > 0
        height, width = np.count_nonzero(ink.any(axis=1)), np.count_nonzero(ink.any(axis=0))
        assert max(height, width) in (19, 20, 21) and min(height, width) <= 21
        # The same digit: the pictures' round trip loses only a little (measured 0.96..0.99).
        assert np.corrcoef(x, X[i])[0, 1] > 0.93
    assert read_digit_image(tmp_path / "0.png", dtype="float64").dtype == np.float64


def test_light_on_dark_transparent_and_16_bit_pictures_read_the_same(tmp_path, mnist):
    image = paper(mnist[2][0][0])
    image.save(tmp_path / "paper.png")
    Image.eval(image, lambda v: 255 - v).save(tmp_path / "chalk.png")  # white ink on black
    alpha = Image.eval(image, lambda v: 255 - v)  # black ink drawn on nothing
    transparent = Image.new("RGBA", image.size, (0, 0, 0, 0))
    transparent.putalpha(alpha)
    transparent.save(tmp_path / "transparent.png")
    deep = np.asarray(image, np.uint16) * np.uint16(257)  # 16-bit greyscale, same picture
    Image.fromarray(deep).save(tmp_path / "deep.png")
    want = read_digit_image(tmp_path / "paper.png")
    np.testing.assert_array_equal(read_digit_image(tmp_path / "chalk.png"), want)
    np.testing.assert_array_equal(read_digit_image(tmp_path / "transparent.png"), want)
    np.testing.assert_array_equal(read_digit_image(tmp_path / "deep.png"), want)


def test_the_network_reads_pictures_of_digits_as_it_reads_the_digits(tmp_path, trained):
    net, _, (X, y) = trained
    n = 50
    pictures = []
    for i in range(n):
        path = tmp_path / (f"{i}.jpg" if i % 4 == 0 else f"{i}.png")  # JPEG adds noise
        paper(X[i]).save(path)
        pictures.append(read_digit_image(path))
    from_pictures, from_digits = net.predict(np.array(pictures)), net.predict(X[:n])
    # Measured: 46 of 50 agree (the network is right on 40 digits and 43 pictures).
    assert np.count_nonzero(from_pictures == from_digits) >= 44
    assert np.count_nonzero(from_pictures == y[:n]) >= 38


def test_a_photo_of_paper_reads_as_well_as_a_clean_picture(tmp_path, trained):
    """Grey paper, noise, light falling across it, a dark grey pencil, JPEG."""
    net, _, (X, _) = trained
    rng = np.random.default_rng(0)
    n = 50
    pictures = []
    for i in range(n):
        ink = np.zeros((140, 120))
        ink[30:114, 20:104] = 1 - np.asarray(paper(X[i]), np.float64) / 255
        photo = 190 - 120 * ink + rng.normal(0, 6, ink.shape) + np.linspace(-25, 25, 120)
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(tmp_path / "photo.jpg")
        pictures.append(read_digit_image(tmp_path / "photo.jpg"))
    # Measured: 46 of 50 agree, as for the clean pictures.
    agree = np.count_nonzero(net.predict(np.array(pictures)) == net.predict(X[:n]))
    assert agree >= 44


def test_bad_pictures_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.png: no such file"):
        read_digit_image(tmp_path / "missing.png")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_digit_image(tmp_path)
    (tmp_path / "notes.png").write_text("not a picture\n")
    with pytest.raises(ValueError, match=r"notes\.png is not an image file"):
        read_digit_image(tmp_path / "notes.png")
    Image.new("L", (40, 30), 255).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match=r"blank\.png: no digit found"):
        read_digit_image(tmp_path / "blank.png")
    Image.new("RGB", (40, 30), (20, 20, 20)).save(tmp_path / "dark.png")
    with pytest.raises(ValueError, match=r"dark\.png: no digit found"):
        read_digit_image(tmp_path / "dark.png")
    noise = np.random.default_rng(0).normal(200, 6, (30, 40))
    Image.fromarray(noise.astype(np.uint8)).save(tmp_path / "noise.png")
    with pytest.raises(ValueError, match=r"noise\.png: no digit found: nothing stands out"):
        read_digit_image(tmp_path / "noise.png")
    whole = tmp_path / "whole.png"
    Image.new("L", (40, 30), 255).save(whole)
    (tmp_path / "cut.png").write_bytes(whole.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"cut\.png: cannot read the image"):
        read_digit_image(tmp_path / "cut.png")
    with pytest.raises(ValueError, match="dtype must be"):
        read_digit_image(whole, dtype="int8")


# -- fastgd predict -------------------------------------------------------------------

LINE = re.compile(r"^(.+): (\d)  \(activations((?: \d\.\d\d){10})\)$")


def test_predict_prints_each_pictures_digit_and_activations(tmp_path, trained, capsys):
    net, model, (X, _) = trained
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"digit{i}.png"))
        paper(X[i]).save(paths[-1])
    assert main(["predict", str(model)] + paths) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    pictures = np.array([read_digit_image(p) for p in paths])
    for line, path, digit, a in zip(lines, paths, net.predict(pictures),
                                    net.feedforward(pictures)):
        match = LINE.match(line)
        assert match, line
        assert match.group(1) == path and int(match.group(2)) == digit
        np.testing.assert_allclose([float(v) for v in match.group(3).split()], a, atol=0.005)

    assert main(["predict", str(model), "--json"] + paths) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == str(model) and report["sizes"] == [784, 10, 10]
    assert [p["image"] for p in report["predictions"]] == paths
    assert [p["digit"] for p in report["predictions"]] == net.predict(pictures).tolist()
    np.testing.assert_allclose([p["activations"] for p in report["predictions"]],
                               net.feedforward(pictures), rtol=1e-6)


def test_predict_errors_are_one_line(tmp_path, trained, capsys):
    _, model, (X, _) = trained
    good = tmp_path / "good.png"
    paper(X[0]).save(good)
    Image.new("L", (40, 30), 255).save(tmp_path / "blank.png")
    (tmp_path / "notes.txt").write_text("not a picture\n")
    small = tmp_path / "small.npz"
    fastgd.Network([7, 9, 4], seed=0).save(small)
    cases = [
        ([str(model), str(good), str(tmp_path / "missing.png")], r"missing\.png: no such file"),
        ([str(model), str(good), str(tmp_path / "notes.txt")], r"notes\.txt is not an image"),
        ([str(model), str(tmp_path / "blank.png")], r"blank\.png: no digit found"),
        ([str(small), str(good)], r"has 7 input neurons, but pictures are read as 28x28"),
        ([str(tmp_path / "none.npz"), str(good)], r"none\.npz"),
    ]
    for args, match in cases:
        assert main(["predict"] + args) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # nothing printed for the good picture either
        assert re.fullmatch(rf"fastgd predict: error: [^\n]*{match}[^\n]*\n",
                            captured.err), captured.err
    assert main(["predict", str(model)]) == 2  # no pictures: a usage error
    assert "IMAGE" in capsys.readouterr().err
