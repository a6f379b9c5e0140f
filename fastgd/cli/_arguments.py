"""argparse types and output checks shared by the subcommands: each error says what was expected."""

import argparse
import math
import os


def int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def check_output(path, option, overwrite):
    """Fail before training, not after, if the results could not be written."""
    if path is None:
        return
    if os.path.isdir(path):
        raise IsADirectoryError(f"{option} {path} is a directory, expected a file name")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{option} {path} exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{option} {path}: no such directory {parent}")
