"""``fastgd predict``: the digits a saved network reads in pictures of handwriting.

    fastgd train --save net.npz
    fastgd predict net.npz seven.png three.jpg
    fastgd predict net.npz seven.png --json

Each picture is made into a 28x28 image the way MNIST's digits were made
(``fastgd.data.read_digit_image``, which needs Pillow); the network's answer
is its output neuron with the highest activation.
"""

import json

import numpy as np

import fastgd
from fastgd.data import read_digit_image

PIXELS = 28 * 28


def add_parsers(commands):
    """Add predict to the subcommands."""
    predict = commands.add_parser(
        "predict", help="read handwritten digits in PNG or JPEG pictures with a saved network",
        description="Load a network saved by 'fastgd train --save' and print the digit it "
                    "reads in each picture, with the activations of its ten output neurons. "
                    "Each picture (one digit, dark on light or light on dark) is made into "
                    "a 28x28 image as MNIST's digits were: greyscale, light ink on black, "
                    "cropped to the ink, scaled to fit 20x20 and centred by its centre of "
                    "mass. Needs Pillow: pip install fastgd[image].")
    predict.add_argument("model", metavar="MODEL.npz",
                         help="a network saved by fastgd train --save (784 inputs)")
    predict.add_argument("images", metavar="IMAGE", nargs="+",
                         help="a picture of one handwritten digit (PNG, JPEG, ...)")
    predict.add_argument("--json", action="store_true",
                         help="print a JSON object instead: the model and, for each image, "
                              "its path, digit and output activations")
    predict.set_defaults(func=predict_command)


def predict_command(args):
    net = fastgd.Network.load(args.model)
    if net.sizes[0] != PIXELS:
        raise ValueError(f"the network in {args.model} has {net.sizes[0]} input neurons, "
                         f"but pictures are read as 28x28 = {PIXELS} pixels: the input "
                         f"layer needs one neuron per pixel")
    # Every picture is read before anything is printed: one bad file gives
    # one error, not a partial answer.
    X = np.stack([read_digit_image(path, dtype=net.dtype) for path in args.images])
    digits = net.predict(X)
    activations = net.feedforward(X).astype(np.float64)
    if args.json:
        print(json.dumps({"model": args.model, "sizes": net.sizes, "predictions": [
            {"image": path, "digit": int(digit), "activations": a.tolist()}
            for path, digit, a in zip(args.images, digits, activations)]}, indent=1))
    else:
        for path, digit, a in zip(args.images, digits, activations):
            # one line per picture, whatever its name holds (a newline, a tab)
            path = path if path.isprintable() else ascii(path)
            print(f"{path}: {digit}  (activations {' '.join(f'{v:.2f}' for v in a)})")
    return 0
