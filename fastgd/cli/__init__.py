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
import atexit
import gc
import os
import signal
import sys
import threading

from fastgd._signals import catch_signals, restore_signals


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


class _Terminated(BaseException):
    """SIGTERM or SIGHUP where the command raises it (``fastgd sweep``, which
    keeps the runs finished so far).  A BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` on the way (numba's, a library's) swallows it."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signal = signum


class Signals:
    """What SIGINT, SIGTERM and SIGHUP do while a command runs (the training loop
    handles them itself while it trains: ``fastgd.training.StopRequests``).

    Before a command has anything to keep, a signal ends the process at once
    (``os._exit``), after one line on stderr: unwinding through numba while it
    imports, compiles or loads kernels, or exiting while a background compile
    runs, is what crashed the process.  Once training has started, a signal is
    held until the outputs are written (``pending``), and the command then exits
    with 128 + N; ``raise_signals()`` makes it raise instead (KeyboardInterrupt
    or _Terminated), for commands that keep what finished themselves.

    A signal that was ignored when the process started (``nohup``, a background
    job of a shell) stays ignored, as the caller asked."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self):
        self.command = "fastgd"
        self.unwritten = []  # the outputs not written yet, as "--save net.npz"
        self.pending = None  # a signal held while outputs are written
        self.report_held = True  # say so once it is over (not on MPI ranks other than 0)
        self.raising = self.stopping = False
        self.hold_after_training = False  # set by a command that writes what it trained
        self.previous = {}
        self.runs_before = _training_runs()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = catch_signals(self.NAMES, self._handle)
        return self

    def __exit__(self, *exc):
        restore_signals(self.previous)
        self.previous = {}
        return False

    def raise_signals(self):
        self.raising = True

    def _handle(self, signum, frame):
        if self.raising:
            # once: the command then keeps what finished, which must not be cut short
            self.raising, self.stopping = False, True
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise _Terminated(signum)
        if self.stopping:
            return
        if self.pending is None and self.hold_after_training and (
                _training_runs() > self.runs_before):
            self.pending = signum  # the outputs are written first
            return
        if self.pending is not None:
            return  # already stopping: the outputs are being written
        print("\r" + self.stopped_line(signum), file=sys.stderr, flush=True)
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        _abort_mpi_job(128 + signum)
        os._exit(128 + signum)

    def stopped_line(self, signum):
        """``fastgd train: stopped by SIGTERM; not written: --save net.npz``."""
        what = ("interrupted" if signum == signal.SIGINT
                else f"stopped by {signal.Signals(signum).name}")
        unwritten = ""
        if self.command == "fastgd":  # its arguments not even read yet
            unwritten = " before it started; nothing was written"
        elif self.unwritten:
            before = "" if _training_runs() > self.runs_before else " (before training began)"
            unwritten = f"{before}; not written: {', '.join(self.unwritten)}"
        return f"{self.command}: {what}{unwritten}"


# What MPI launchers put in each rank's environment (MPICH's hydra, Open MPI, PMIx).
_MPI_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def _abort_mpi_job(status):
    """A rank of ``fastgd train --distributed`` that stops before training would
    leave the others waiting for it forever: abort the MPI job instead.  MPICH's
    mpiexec does not notice a rank that exits before MPI_Init, so MPI is
    initialised here first if it was not yet (the other ranks reach MPI_Init
    too); an alarm ends this process should that ever wait."""
    if "--distributed" not in sys.argv[1:] or not any(
            name in os.environ for name in _MPI_RANK_VARIABLES):
        return
    try:
        if hasattr(signal, "alarm"):
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(20)
        from mpi4py import MPI
        MPI.COMM_WORLD.Abort(status)
    except Exception:  # no mpi4py, no MPI: nothing waits for this rank
        pass


def _training_runs():
    """How many training runs have handled signals in this process so far (once
    one has started, there is a model to write); looked up, never imported here."""
    module = sys.modules.get("fastgd.training.stop_requests")
    return 0 if module is None else module.StopRequests.runs


def _import_numba():
    """Import numba here, where a failure is one line: numba raises at import for
    settings it cannot use (NUMBA_NUM_THREADS=0, a bad threading layer)."""
    try:
        import numba  # noqa: F401
    except Exception as e:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                             if k.startswith("NUMBA_"))
        raise ImportError(f"numba cannot start ({type(e).__name__}: {e})"
                          + (f"; check {settings}" if settings else "")) from None


def entry():
    """The ``fastgd`` script and ``python -m fastgd``: ``main()`` as a process of its own.

    Once main has returned, every output is written.  A signal while the
    interpreter then shuts down (seconds, after a sweep's cluster) ends the
    process at once with status 128 + N, as during the command, rather than
    killing it by the signal, which a caller takes for a crash: the handler is
    installed before main, whose own handlers put it back when they are done.
    Python gives the default back to every handler it installed once no more
    Python code runs, so the last exit hook ignores these signals instead, for
    the interpreter's final clean-up (a signal then has nothing left to stop)."""
    atexit.register(_ignore_stop_signals)  # the first registered runs last
    catch_signals(Signals.NAMES, _exit_outside_main)
    gc.disable()  # until the command's set-up is done: startup_done
    _starting.append(True)
    status = main()
    _main_returned.append(status)
    return status


_main_returned: list = []
_starting: list = []  # non-empty while entry() holds the garbage collector off


def startup_done():
    """The command's set-up is over (its data and kernels loaded).  In a process
    started by ``entry()``, which holds Python's cyclic garbage collector off
    until now, the collector runs again, and the objects that exist now are
    frozen (``gc.freeze``), so that it no longer walks them.  numba's import
    and kernel loading create hundreds of thousands of objects, kept for the
    process's life, and each walk over them took milliseconds, tens of ms
    before a warm run's first epoch.  Calls of ``main()`` inside another
    program leave its collector alone."""
    if _starting:
        _starting.clear()
        gc.freeze()
        gc.enable()


def _exit_outside_main(signum, frame):
    if not _main_returned:  # in the moment before main's own handlers
        print(Signals().stopped_line(signum), file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(128 + signum)


def _ignore_stop_signals():
    for name in Signals.NAMES:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is _exit_outside_main:
            signal.signal(number, signal.SIG_IGN)


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every failure is one line ``fastgd COMMAND: error: ...`` on stderr: status 2 for
    what the user can fix, 1 for a failed training run (``--on-divergence raise``)
    or an internal error; 128 + N on signal N (130 for Ctrl-C).  Set
    FASTGD_DEBUG=1 to see the traceback of an unexpected error.
    """
    with Signals() as signals:
        status = _run(argv, signals)
        if signals.pending is not None and signals.report_held:  # held while writing
            print(f"{signals.command}: stopped by {signal.Signals(signals.pending).name} "
                  "after training; the outputs were written first", file=sys.stderr)
        if signals.pending is not None:
            status = 128 + signals.pending
        return status


# The commands that read the bundled MNIST unless --data names other files.
_READ_MNIST = ("train", "profile", "evaluate")


def _start_reading_mnist(argv):
    """Decompressing and checking the bundled MNIST (about as long as importing
    numba) starts beside numba's import when the command line looks like one
    that reads it: its first word a command of _READ_MNIST, no word starting
    "--da" (--data, --data=DIR, or argparse's abbreviations of it).  A guess from the words
    alone, made before the parser, which needs numba: a wrong guess costs a
    thread's work, since the command loads its data as usual either way
    (``fastgd.data.start_reading_bundled``)."""
    if argv and argv[0] in _READ_MNIST and not any(w.startswith("--da") for w in argv):
        from fastgd.data import start_reading_bundled
        start_reading_bundled()


def _run(argv, signals):
    try:
        _start_reading_mnist(sys.argv[1:] if argv is None else argv)
        _import_numba()
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help, --version, or a usage error already printed
            return e.code
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        signals.command = f"fastgd {args.command}"
        args.signals = signals
        if not getattr(args, "ends_startup", False):
            startup_done()
        return args.func(args)
    except KeyboardInterrupt as e:
        print(signals.stopped_line(getattr(e, "signal", signal.SIGINT)), file=sys.stderr)
        return 128 + getattr(e, "signal", signal.SIGINT)
    except _Terminated as e:
        print(signals.stopped_line(e.signal), file=sys.stderr)
        return 128 + e.signal
    except BrokenPipeError:
        # the reader went away (fastgd train | head): stop quietly, as other tools do
        _silence_stdout()
        return 141
    except Exception as e:
        # fastgd.training may be what failed to import: look it up, never import it here
        history = sys.modules.get("fastgd.training.history")
        diverged = history is not None and isinstance(e, history.DivergenceError)
        if diverged:
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
        elif status == 1 and not diverged:
            message = f"internal error ({type(e).__name__}: {e}); FASTGD_DEBUG=1 shows where"
        print(f"{signals.command}: error: {message}", file=sys.stderr)
        return status


def _silence_stdout():
    """Point stdout at /dev/null so that Python's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
