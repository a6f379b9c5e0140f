"""The command line: ``fastgd train``, ``evaluate``, ``profile``, ``predict``, ``valley``,
``noise``, ``compare``, ``sweep``, ``compile``, ``cache``.

    fastgd train                          # the book's run: [784, 30, 10], 30 epochs, m 10, eta 3.0
    fastgd train --epochs 5 --save net.npz --history net.json
    fastgd evaluate net.npz --on validation

This package is the only place that parses arguments and prints; each
subcommand module has ``add_parsers(commands)`` and the functions it runs.
Errors the user can cause print ``fastgd COMMAND: error: ...`` and exit with
status 2 (1 when training fails with ``--on-divergence raise``, 128 + N on
signal N: 130 on Ctrl-C, 143 on SIGTERM, 129 on SIGHUP).
"""

import argparse
import os
import signal
import sys
import threading


def build_parser():
    import fastgd

    from . import cache, compare, noise, predict, sweep, train, valley
    parser = argparse.ArgumentParser(
        prog="fastgd",
        description="Learning with gradient descent (Nielsen, \"Neural Networks and Deep "
                    "Learning\", chapter 1): a network of sigmoid neurons learns to recognize "
                    "handwritten digits by stochastic gradient descent on the quadratic cost.")
    parser.add_argument("--version", action="version", version=f"fastgd {fastgd.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train.add_parsers(commands)
    predict.add_parsers(commands)
    # Gradient descent beyond the network: any C(v), mini-batch noise, time to accuracy.
    valley.add_parsers(commands)
    noise.add_parsers(commands)
    compare.add_parsers(commands)
    sweep.add_parsers(commands)
    # The kernel cache: filled ahead of time, shown, cleared.
    cache.add_parsers(commands)
    return parser


class _Terminated(Exception):
    """SIGTERM or SIGHUP outside training (which handles them itself)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signal = signum


def _terminate(signum, frame):
    raise _Terminated(signum)


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every failure is one line ``fastgd COMMAND: error: ...`` on stderr: status 2 for
    what the user can fix, 1 for a failed training run (``--on-divergence raise``)
    or an internal error; 128 + N on signal N (130 for Ctrl-C).  Set
    FASTGD_DEBUG=1 to see the traceback of an unexpected error.
    """
    command = "fastgd"
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name) and threading.current_thread() is threading.main_thread():
            number = getattr(signal, name)
            previous[number] = signal.signal(number, _terminate)
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help, --version, or a usage error already printed
            return e.code
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        command = f"fastgd {args.command}"
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except _Terminated as e:
        print(f"{command}: stopped by {signal.Signals(e.signal).name}", file=sys.stderr)
        return 128 + e.signal
    except BrokenPipeError:
        # the reader went away (fastgd train | head): stop quietly, as other tools do
        _silence_stdout()
        return 141
    except Exception as e:
        import fastgd
        if isinstance(e, fastgd.DivergenceError):
            status = 1
        elif isinstance(e, (ValueError, TypeError, OSError, ImportError, MemoryError)):
            status = 2
        else:
            status = 1
            if os.environ.get("FASTGD_DEBUG"):
                raise
        message = str(e) or type(e).__name__
        if isinstance(e, MemoryError):
            message = "not enough memory" + (f": {e}" if str(e) else "")
        elif status == 1 and not isinstance(e, fastgd.DivergenceError):
            message = f"internal error ({type(e).__name__}: {e}); FASTGD_DEBUG=1 shows where"
        print(f"{command}: error: {message}", file=sys.stderr)
        return status
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _silence_stdout():
    """Point stdout at /dev/null so that Python's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
