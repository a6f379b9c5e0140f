"""``fastgd train``, ``fastgd profile`` and ``fastgd evaluate``.

    fastgd train                          # the book's run: [784, 30, 10], 30 epochs, m 10, eta 3.0
    fastgd train --epochs 5 --save net.npz --history net.json
    fastgd evaluate net.npz --on validation

Errors print one ``fastgd COMMAND: error: ...`` line; ``fastgd.cli.main`` gives
the exit statuses.
"""

import argparse
import json
import os
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numba

import fastgd
from fastgd.cli import startup_done
from fastgd.cli._arguments import check_fits, check_outputs, draw_seed, require_matplotlib
from fastgd.cli.train_arguments import (BOOK_MINI_BATCH_SIZE, add_evaluate, add_profile,
                                        add_train)
from fastgd.cli.train_output import plural, result_line, summary, write_outputs
from fastgd.training import choose_kernel


def add_parsers(commands):
    """Add train, profile and evaluate to the subcommands."""
    train = add_train(commands)
    # these two call startup_done once their data and kernels are loaded
    train.set_defaults(func=train_command, parser=train, ends_startup=True)
    add_profile(commands).set_defaults(func=profile_command, ends_startup=True)
    add_evaluate(commands).set_defaults(func=evaluate_command)


def _load_data(directory, dtype, validation_size, wanted, as_dataset=False):
    """The training, validation and test sets; `wanted` must not be empty."""
    try:
        training, validation, test = fastgd.load_mnist(directory, dtype=dtype,
                                                       validation_size=validation_size,
                                                       as_dataset=as_dataset)
    except ValueError as e:
        raise ValueError(str(e).replace("validation_size", "--validation-size")) from None
    data = {"training": training, "validation": validation, "test": test}
    if len(data[wanted]) == 0 if as_dataset else len(data[wanted][1]) == 0:
        raise ValueError(f"there are no {wanted} inputs (--validation-size is 0)")
    return data


def _load_data_beside_numba(args):
    """The training data (the first --train-size examples) and the evaluation
    data, as Datasets, loaded in a thread while this one loads numba's machinery
    (``kernels.load_numba``): decompressing, checking and converting MNIST
    mostly release the GIL, so on two cores the two take the time of the longer.
    Then the thread builds the training data's index while this one loads the
    training kernels from numba's disk cache, if it holds them: both would
    otherwise wait until training starts.  Last, the thread loads the
    evaluation kernels while training starts here: they are needed only when
    the first epoch ends (a call that needs them first waits for numba's
    compiler lock, so never finds them half loaded, and Python waits for the
    thread before it exits)."""
    numba_loaded, loaded = threading.Event(), threading.Event()
    training = []  # the training Dataset, once loaded

    def load():
        try:
            data = _load_data(args.data, args.dtype, args.validation_size, args.evaluate_on,
                              as_dataset=True)
            if args.train_size is not None and args.train_size > len(data["training"]):
                raise ValueError(f"--train-size {args.train_size} is more than the "
                                 f"{len(data['training'])} training inputs")
            training.append(data["training"][:args.train_size])
        finally:
            loaded.set()
        numba_loaded.wait()
        return training[0].build_index(args.threads), data[args.evaluate_on]

    pool = ThreadPoolExecutor(1, thread_name_prefix="fastgd-load")
    try:
        loading = pool.submit(load)
        try:
            fastgd.kernels.load_numba(args.dtype)
        finally:
            numba_loaded.set()
        loaded.wait()
        net = _load_compiled_kernels(args, training[0]) if training else None
        data = loading.result()
        if net is not None:
            # the evaluation kernels, needed once the first epoch ends, load beside it
            pool.submit(net.warm_up)
        return data
    finally:
        pool.shutdown(wait=False)  # Python waits for the thread's work before it exits


def _load_compiled_kernels(args, training):
    """The network's training kernels loaded from numba's disk cache if it
    holds all its kernels (``fastgd.precompile.load_compiled_kernels``), for
    data that fit the network (else _prepare says why not); returns a network
    whose ``warm_up`` loads the evaluation kernels then, else None."""
    from fastgd.precompile import load_compiled_kernels
    try:
        check_fits(args.sizes, training, "--sizes")
    except ValueError:
        return None
    if not load_compiled_kernels(args.sizes, args.dtype, args.cost,
                                 inputs="dense" if training.dense else "sparse",
                                 evaluation=False):
        return None
    return fastgd.Network(args.sizes, seed=0, dtype=args.dtype, cost=args.cost)


# -- the subcommands --------------------------------------------------------------------

def _prepare(args):
    """Check the options against the data; returns (net, training data, evaluation
    data, m, seed), the data as Datasets."""
    if args.mode != "mini-batch" and args.mini_batch_size is not None:
        raise ValueError(f"--mini-batch-size cannot be used with --mode {args.mode} "
                         f"(online means m = 1, full-batch means m = all the training inputs)")

    training, eval_data = _load_data_beside_numba(args)
    sizes_option = "--sizes " + ",".join(map(str, args.sizes))
    check_fits(args.sizes, training, sizes_option)
    check_fits(args.sizes, eval_data, sizes_option)
    n = len(training)
    m = {"online": 1, "full-batch": None,
         "mini-batch": args.mini_batch_size or BOOK_MINI_BATCH_SIZE}[args.mode]
    if m is not None and m > n:
        raise ValueError(f"mini-batch size {m} (--mini-batch-size) is more than the {n} "
                         "training inputs")

    seed = draw_seed(args.seed, to_stderr=getattr(args, "json", False))

    net = fastgd.Network(args.sizes, seed=seed, dtype=args.dtype, cost=args.cost,
                         init=args.init)
    startup_done()
    return net, training, eval_data, m, seed


def _chapter3_options(args):
    """The non-default chapter-3 options, as words for the header line."""
    words = []
    if args.cost != "quadratic":
        words.append(f"{args.cost} cost")
    if args.init != "large":
        words.append(f"{args.init} initial weights")
    if args.lmbda:
        words.append(f"{args.regularization} regularization, lambda {args.lmbda:g}")
    if args.eta_schedule != "none":
        words.append(f"eta halved after {plural(args.patience, 'epoch')} without a better "
                     f"accuracy, down to {args.min_eta_factor:g} of its start")
    return "".join(f", {w}" for w in words)


# Options --resume takes from the checkpoint (the run's definition and its data);
# the others may be given again.  No output path is ever taken from a checkpoint
# (a file from elsewhere must not choose where fastgd writes): --save-best is
# given again to go on keeping the best network.
_FROM_CHECKPOINT = ("sizes", "dtype", "data", "validation_size", "evaluate_on", "train_size",
                    "mode", "mini_batch_size", "eta", "reduction", "seed",
                    "monitor_training_cost", "on_divergence", "checkpoint_every", "early_stop",
                    "cost", "init", "lmbda", "regularization", "eta_schedule",
                    "patience", "min_eta_factor")


def train_command(args):
    signals = getattr(args, "signals", None)  # fastgd.cli.Signals, from main()
    if signals is not None:  # what a signal from now on leaves unwritten
        signals.unwritten = [f"{option} {path}" for option, path in (
            ("--save", args.save), ("--history", args.history), ("--plot", args.plot))
            if path is not None]
    comm = _communicator(args)  # None without --distributed
    rank0 = comm is None or comm.Get_rank() == 0
    if args.resume:
        _options_from_checkpoint(args)
    with _on_every_rank(comm):
        outputs = _check_outputs(args)
        try:
            net, training, eval_data, m, seed = _prepare(args)
        except (ValueError, OSError) as e:
            if not args.resume:
                raise
            # the data and options came from the checkpoint: say so
            raise type(e)(f"{e} (with the options --resume {args.resume} records)") from None
    if signals is not None:
        # once training has started, a signal waits until the outputs are written
        signals.hold_after_training = True
    n = len(training)
    if not args.quiet and rank0:
        threads = args.threads or numba.get_num_threads()
        kernel, reason = choose_kernel(n if m is None else m, threads, args.kernel)
        if comm is not None:
            reason = f"on each of {comm.Get_size()} MPI ranks, {args.reduce} sum"
        steps = {"online": "online learning (mini-batch size 1)",
                 "full-batch": f"full batch (mini-batch size {n})",
                 "mini-batch": f"mini-batch size {m}"}[args.mode]
        reduction = ", summed gradients" if args.reduction == "sum" else ""
        print(f"Network {net.sizes}, {args.dtype}{_chapter3_options(args)}; {n} training "
              f"inputs, {steps}, eta {args.eta}{reduction}, {plural(args.epochs, 'epoch')}; "
              "evaluated on the "
              f"{len(eval_data)} {args.evaluate_on} inputs; seed {seed}; "
              f"kernel {kernel} ({reason}), {plural(threads, 'thread')}",
              flush=True)
        if args.resume:
            print(f"Resuming {args.resume} from epoch {args._resume_epoch}", flush=True)

    status, interruption = 0, None
    with warnings.catch_warnings():
        # Reported below from history.diverged and history.info["write_errors"],
        # once and without a source line.
        warnings.simplefilter("ignore", fastgd.DivergenceWarning)
        warnings.filterwarnings("ignore", r"(checkpoint|save_best) .* could not be written",
                                RuntimeWarning)
        try:
            if args.resume:
                net, history = fastgd.resume(
                    args.resume, training, eval_data, epochs=args.epochs, threads=args.threads,
                    kernel=args.kernel, verbose=not args.quiet, checkpoint=outputs.get(
                        "--checkpoint"), overwrite=args.overwrite)
            elif comm is not None:
                history = _distributed_sgd(comm, net, training, m, eval_data, args)
            else:
                history = net.SGD(
                    training, args.epochs, m, args.eta, test_data=eval_data,
                    reduction=args.reduction, threads=args.threads, kernel=args.kernel,
                    verbose=not args.quiet, monitor_training_cost=args.monitor_training_cost,
                    on_divergence=args.on_divergence, checkpoint=args.checkpoint,
                    checkpoint_every=args.checkpoint_every, save_best=args.save_best,
                    early_stop=args.early_stop, overwrite=args.overwrite,
                    lmbda=args.lmbda, regularization=args.regularization,
                    eta_schedule=None if args.eta_schedule == "none" else args.eta_schedule,
                    patience=args.patience, min_eta_factor=args.min_eta_factor,
                    info={"cli": {key: getattr(args, key) for key in _FROM_CHECKPOINT}})
        except fastgd.TrainingInterrupted as e:
            history, interruption = e.history, e
            status = 128 + e.signal
            if e.network is not None:  # resume's network, not the one _prepare made
                net = e.network
        except fastgd.DivergenceError as e:
            if e.history is None:
                raise
            history, status = e.history, 1
            if e.network is not None:
                net = e.network

    if comm is None:
        return _report_and_write(args, net, history, eval_data, seed, n, interruption, status)
    # Rank 0 reports and writes the files; every rank stays until it has, so that a
    # signal to any rank (or to mpiexec, which passes it on) is held until then as
    # in one process: a rank that ended early or died of it would make mpiexec kill
    # rank 0 mid-write.
    try:
        if rank0:
            status = _report_and_write(args, net, history, eval_data, seed, n,
                                       interruption, status)
        else:
            status = status or (1 if history.diverged else 0)
    finally:
        held = _finish_together(comm, signals)
    if signals is not None and held is not None:
        signals.pending = held
        signals.report_held = rank0  # one line, from rank 0
    return status


def _finish_together(comm, signals):
    """Wait until every rank is here (rank 0 once its outputs are written), polling
    so that this rank's Python signal handler runs (and holds) meanwhile; returns
    the signal some rank holds (the first rank's), else None."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.02)
    held = comm.allgather(None if signals is None else signals.pending)
    return next((signum for signum in held if signum is not None), None)


def _report_and_write(args, net, history, eval_data, seed, n, interruption, status):
    """The summary lines and the outputs (on rank 0 only under MPI); the exit status."""
    for line in summary(history, net, eval_data, args, interruption):
        print(line, flush=True)
    if history.diverged:
        # a failed run must not look like one that worked, to people or to scripts
        print(f"fastgd train: error: {history.diverged}", file=sys.stderr)
        status = status or 1
    for option, failure in history.info.get("write_errors", {}).items():
        print(f"fastgd train: error: --{option.replace('_', '-')} {failure['path']} could not "
              f"be written (last tried after {plural(failure['epoch'], 'epoch')}): "
              f"{failure['error']}", file=sys.stderr)
        status = status or 2
    if not write_outputs(args, net, history, seed, n):
        status = status or 2
    return status


# Options of a run on one process only: a distributed run has no checkpoints,
# regularization or eta schedule yet.
_NOT_DISTRIBUTED = ("checkpoint", "resume", "save_best", "early_stop", "checkpoint_every",
                    "lmbda", "regularization", "eta_schedule", "patience", "min_eta_factor")


def _communicator(args):
    """MPI.COMM_WORLD for --distributed (None without it), after checking the
    options that go with it; the seed and the threads per rank are settled here,
    collectively: rank 0's seed, and the cores each rank may use."""
    if not args.distributed:
        if args.reduce is not None:
            raise ValueError("--reduce needs --distributed")
        return None
    for key in _NOT_DISTRIBUTED:
        if getattr(args, key) != args.parser.get_default(key):
            option = "--" + key.replace("_", "-")
            raise ValueError(f"{option} cannot be used with --distributed")
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"--distributed needs mpi4py and an MPI library ({e}); install "
                          "them with: pip install 'fastgd[mpi]'") from None
    from fastgd.distributed import default_threads
    comm = MPI.COMM_WORLD
    args.reduce = args.reduce or "ordered"
    if args.seed is None:
        args.seed = comm.bcast(draw_seed(None) if comm.Get_rank() == 0 else None, root=0)
    if args.threads is None:
        args.threads = default_threads(comm)
    return comm


class _on_every_rank:
    """With a communicator: an error on any rank is raised on every rank (each rank
    waits for the others here), so that none waits forever for one that stopped."""

    def __init__(self, comm):
        self.comm = comm

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if self.comm is None or (kind is not None and not issubclass(kind, Exception)):
            return False
        failed = self.comm.allgather(None if error is None else str(error))
        if error is not None:
            return False
        for rank, message in enumerate(failed):
            if message is not None:
                raise ValueError(f"rank {rank} stopped: {message}")
        return False


def _distributed_sgd(comm, net, training_data, m, eval_data, args):
    """fastgd.distributed.SGD with the command line's options.  An error that only
    this rank meets (the library's own errors are raised on every rank) aborts
    the whole job: the other ranks would wait for this one forever."""
    from fastgd.distributed import SGD
    try:
        return SGD(net, training_data, args.epochs, m, args.eta, eval_data, comm=comm,
                   reduce=args.reduce, reduction=args.reduction, threads=args.threads,
                   kernel=args.kernel,
                   verbose=not args.quiet, monitor_training_cost=args.monitor_training_cost,
                   on_divergence=args.on_divergence,
                   info={"cli": {key: getattr(args, key) for key in _FROM_CHECKPOINT}})
    except Exception as e:
        if getattr(e, "every_rank", False) or comm.Get_size() == 1:
            raise
        print(f"fastgd train: error: rank {comm.Get_rank()}: {type(e).__name__}: {e}; "
              "aborting the MPI job", file=sys.stderr, flush=True)
        comm.Abort(1)


def _options_from_checkpoint(args):
    """Set the run's options from the checkpoint given to --resume, refusing any
    that the command line sets to something else."""
    from fastgd.training import read_checkpoint
    net, state = read_checkpoint(args.resume)
    saved = state["history"]["info"].get("cli")
    if saved is None:
        raise ValueError(f"--resume {args.resume}: this checkpoint was not written by "
                         "fastgd train; continue it with fastgd.resume() from Python")
    # the options recorded must describe the network stored beside them
    if not isinstance(saved, dict) or [saved.get(key, args.parser.get_default(key))
                                       for key in ("sizes", "dtype", "cost")] != [
            net.sizes, net.dtype.name, net.cost_function]:
        raise ValueError(f"--resume {args.resume} is damaged: the options it records do not "
                         f"match its network ({net.sizes}, {net.dtype.name}, "
                         f"{net.cost_function})")
    for key in _FROM_CHECKPOINT:
        given, default = getattr(args, key), args.parser.get_default(key)
        # a checkpoint from before an option existed ran with its default
        value = saved.get(key, default)
        _check_recorded(args, key, value, default)
        if given != default and given != value:
            option = "--" + key.replace("_", "-")
            raise ValueError(f"{option} cannot be changed when resuming (--resume "
                             f"{args.resume} has {option} {value}); leave it out")
        setattr(args, key, value)
    _check_agrees(args, state["definition"])
    if args.epochs == args.parser.get_default("epochs"):
        args.epochs = state["definition"]["epochs"]
    if args.epochs < state["epoch"]:
        raise ValueError(f"--epochs {args.epochs} is less than the {state['epoch']} epochs "
                         f"--resume {args.resume} has already done")
    if args.checkpoint is None:
        args.checkpoint = args.resume
    args._resume_epoch = (f"{state['epoch']}" + (f" (+ {state['position']} examples)"
                                                  if state["position"] else ""))
    args._resume_state = state


# The options --resume reads from info["cli"] that the run's definition holds too
# (the run resumes with the definition's): the two must agree, or the header would
# describe a run other than the one resumed.
_DEFINED = ("eta", "reduction", "monitor_training_cost", "on_divergence", "checkpoint_every",
            "early_stop", "lmbda", "regularization", "patience", "min_eta_factor")


def _check_agrees(args, definition):
    recorded = {key: getattr(args, key) for key in _DEFINED}
    recorded["eta_schedule"] = None if args.eta_schedule == "none" else args.eta_schedule
    if args.mode != "full-batch":
        recorded["mini_batch_size"] = (1 if args.mode == "online"
                                       else args.mini_batch_size or BOOK_MINI_BATCH_SIZE)
    for key, value in recorded.items():
        if key in definition and definition[key] != value:
            option = "--" + key.replace("_", "-")
            raise ValueError(f"--resume {args.resume} is damaged: its options record {option} "
                             f"{value!r}, but the run it holds has {definition[key]!r}"[:300])


def _check_recorded(args, key, value, default):
    """The option value a checkpoint records (read from a file: untrusted) must be
    one the command line could have given: what its argument type makes of the
    value written out gives the value back, and it is among the choices."""
    action = next(a for a in args.parser._actions if a.dest == key)
    option = action.option_strings[-1]
    if value is None and default is None:
        return
    if action.nargs == 0:  # a flag
        valid = isinstance(value, bool)
    elif isinstance(value, (bool, dict)) or value is None:
        valid = False
    else:
        text = (",".join(str(v) for v in value) if isinstance(value, list) else str(value))
        try:
            valid = (action.type(text) if action.type else text) == value
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            valid = False
        valid = valid and (action.choices is None or value in action.choices)
    if not valid:
        raise ValueError(f"--resume {args.resume} is damaged: it records {option} "
                         f"{value!r}, which {option} does not take")


def _check_outputs(args):
    """Before training: every output path can be written, none is given twice, and
    none exists unless --overwrite (a resumed run goes on writing its own)."""
    outputs = {option: getattr(args, option[2:].replace("-", "_"))
               for option in ("--save", "--history", "--checkpoint", "--save-best", "--plot")}
    outputs = {option: path for option, path in outputs.items() if path is not None}
    own = set()
    if args.resume:
        resumed = os.path.realpath(args.resume)
        clash = [o for o, p in outputs.items() if o != "--checkpoint"
                 and os.path.realpath(p) == resumed]
        if clash:
            raise ValueError(f"{clash[0]} would overwrite the checkpoint given to "
                             f"--resume, {args.resume}")
        # the run's own --save-best, given again, may be replaced (never a path read
        # from the checkpoint)
        earlier = args._resume_state["definition"]["save_best"]
        own = {resumed} | ({os.path.realpath(args.save_best)} if args.save_best and earlier
                           and os.path.realpath(earlier) == os.path.realpath(args.save_best)
                           else set())
    check_outputs(outputs, args.overwrite, own)
    if args.plot:
        require_matplotlib()
    return outputs


def profile_command(args):
    from fastgd.profile import format_report, profile_training
    net, training_data, eval_data, m, _ = _prepare(args)
    report = profile_training(net, training_data, eval_data, args.epochs, m, args.eta,
                              reduction=args.reduction, threads=args.threads,
                              kernel=args.kernel, busy=args.busy, lmbda=args.lmbda,
                              regularization=args.regularization)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print("\n".join(format_report(report)))
    return 0


def evaluate_command(args):
    net = fastgd.Network.load(args.model)
    if args.dtype and args.dtype != net.dtype.name:
        net = fastgd.Network(net.sizes, net.weights, net.biases, dtype=args.dtype,
                             cost=net.cost_function, init=net.init)
    X, y = _load_data(args.data, net.dtype.name, args.validation_size, args.on)[args.on]
    check_fits(net.sizes, (X, y), f"the network in {args.model}")
    print(result_line(net.evaluate(X, y), len(y), args.on, net.cost(X, y), net.cost_function))
    return 0
