"""The command line: ``fastgd train``, ``evaluate``, ``profile``, ``valley``, ``noise``, ``compare``.

    fastgd train                          # the book's run: [784, 30, 10], 30 epochs, m 10, eta 3.0
    fastgd train --epochs 5 --save net.npz --history net.json
    fastgd evaluate net.npz --on validation

This package is the only place that parses arguments and prints; each
subcommand module has ``add_parsers(commands)`` and the functions it runs.
Errors the user can cause print ``fastgd: error: ...`` and exit with status 2
(1 when training diverges with ``--on-divergence raise``, 130 on Ctrl-C).
"""

import argparse
import sys

import fastgd


def build_parser():
    from . import compare, noise, train, valley
    parser = argparse.ArgumentParser(
        prog="fastgd",
        description="Learning with gradient descent (Nielsen, \"Neural Networks and Deep "
                    "Learning\", chapter 1): a network of sigmoid neurons learns to recognize "
                    "handwritten digits by stochastic gradient descent on the quadratic cost.")
    parser.add_argument("--version", action="version", version=f"fastgd {fastgd.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train.add_parsers(commands)
    # Gradient descent beyond the network: any C(v), mini-batch noise, time to accuracy.
    valley.add_parsers(commands)
    noise.add_parsers(commands)
    compare.add_parsers(commands)
    return parser


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except fastgd.DivergenceError as e:
        print(f"fastgd: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError, ImportError) as e:  # IDXError is a ValueError
        print(f"fastgd: error: {e}", file=sys.stderr)
        return 2
