"""SGD: one training run, the book's ``SGD(training_data, epochs,
mini_batch_size, eta, test_data)``: the options checked (``TrainingOptions``),
the Trainer made, and its epoch loop with evaluation, failure verdicts, the
best network, early stop, the eta schedule, checkpoints and stop requests
(``Run``); ``resume`` continues a run from its checkpoint."""

import contextlib
import json
import math
import os
import warnings
from typing import TypeVar

import numpy as np

from .._files import StrPath, as_path, check_writable
from .._validation import check_bool, check_int, stacklevel_outside_package
from ..dataset import FINGERPRINT_ALGORITHM, Data, prepare
from ..network import Network
from ..network_file import write_network
from .checkpoint import check_same_data, json_default, read_checkpoint, write_checkpoint
from .diagnose import diagnose
from .history import DivergenceError, DivergenceWarning, History, TrainingInterrupted, epoch_record
from .kernel_choice import available_cores, threading_layer
from .options import RUN_OPTION_DEFAULTS, TrainingOptions
from .progress import ProgressLine, epoch_line
from .stop_requests import StopRequests, signal_name
from .trainer import Trainer

# resume gives back a network of the class it is given (fastgd.Network, with SGD).
_N = TypeVar("_N", bound=Network)


def SGD(net: Network, training_data: Data, epochs: int, mini_batch_size: int | None,
        eta: float, test_data: Data | None = None, *, reduction: str = "mean",
        shuffle: bool = True, threads: int | None = None, kernel: str = "auto",
        verbose: bool = True, monitor_training_cost: bool = False, on_divergence: str = "stop",
        checkpoint: StrPath | None = None, checkpoint_every: int = 1,
        save_best: StrPath | None = None, early_stop: int | None = None, overwrite: bool = False,
        handle_signals: bool = True, info: dict | None = None, lmbda: float = 0.0,
        regularization: str = "L2", eta_schedule: str | None = None, patience: int = 10,
        min_eta_factor: float = 1 / 128) -> History:
    """Train ``net`` by stochastic gradient descent; returns a ``History``.

    The cost minimised is the network's own (``Network(cost=...)``).

    Parameters
    ----------
    training_data : (X, y) or Dataset
        X of shape (n, sizes[0]), y integer labels of shape (n,).  Checked and
        indexed for the kernels once: a ``fastgd.Dataset`` keeps that work, and
        plain arrays given again unchanged (compared in one pass) reuse it.
    epochs : int >= 0
    mini_batch_size : int in 1..n, or None
        m examples per step: 1 is online learning, None (or n) full batch.
        When m does not divide n, the last mini-batch of each epoch is
        shorter and its step uses its own length (as network.py does).
    eta : float > 0
        The learning rate.
    test_data : (X, y) or Dataset, optional
        Evaluated after each epoch: ``Epoch 0: 9129 / 10000`` is printed.
    reduction : "mean" (default) or "sum"
        "mean": w -> w - (eta/m) sum_j dC_Xj/dw, the book's rule; "sum"
        drops the 1/m (the step is eta times the summed gradient).
    shuffle : bool
        Reshuffle the training data each epoch from ``net.rng`` (an index
        permutation: the data are never copied); False keeps the order given.
    threads : int, optional
        numba threads for this call (numba's setting is restored afterwards).
    kernel : "auto", "serial", "parallel" or "hogwild"
        "auto" times the serial kernel (1 thread) against the parallel one
        (all threads, and halves of them down to 2) during the first epoch and
        keeps the fastest, timing them again when the speed drifts
        (``History.info["calibration"]``, ``["threads_in_use"]``).  These
        three give bit-identical weights.  "hogwild" (Hogwild!, Recht et al.
        2011, for online learning and small mini-batches; never chosen by
        "auto") deals the mini-batches out to the threads, which train replicas
        of the weights and add their changes to the shared weights every few
        mini-batches (more often on more threads, so that at most about 160
        examples' steps are unmerged), without locks, after a first epoch on
        one thread (where
        stale steps can saturate a neuron): it is NOT deterministic on more
        than one thread (``History.info["deterministic"]`` is False); on one
        thread it gives the serial kernel's bits.
    verbose : bool
        Print one line per epoch, and progress during epochs longer than a
        couple of seconds.
    monitor_training_cost : bool
        Also compute C on the whole training set after each epoch.
    on_divergence : "stop" (default), "warn" or "raise"
        What to do when training fails (see ``diagnose``): the cost becomes
        NaN/inf, grows well above its best, stops falling, or the output
        neurons saturate.  A NaN cost always ends training.
    checkpoint : path, optional
        After every ``checkpoint_every`` epochs (and when training stops for
        any reason), write the network, the epoch, the generator's state, the
        History and the run's options there, atomically; ``resume`` continues
        the run from it.  A write that fails (a full disk) does not stop
        training: a RuntimeWarning, and ``History.info["write_errors"]``
        (likewise for ``save_best``).
    save_best : path, optional
        Keep the network with the best accuracy on ``test_data`` there.
    early_stop : int, optional
        Stop after this many epochs without a better accuracy on ``test_data``.
    overwrite : bool
        Allow ``checkpoint`` and ``save_best`` to replace files that exist.
    handle_signals : bool
        In the main thread, SIGINT (Ctrl-C), SIGTERM and SIGHUP stop training at
        the next segment boundary (a fraction of a second): the checkpoint is
        written and ``TrainingInterrupted`` raised, carrying the partial
        History.  A second signal aborts at once.
    info : dict, optional
        Entries added to ``History.info`` (and so kept in checkpoints): what a
        caller needs to know to resume the run, such as where its data came from.
    lmbda : float >= 0
        The regularization parameter lambda (0, the default, is none).  With
        n the number of training inputs, each step adds the gradient of
        (lmbda/2n) sum_w w^2 ("L2": w -> (1 - eta lmbda/n) w - (eta/m) sum_j
        dC_Xj/dw) or of (lmbda/n) sum_w |w| ("L1": w -> w - (eta lmbda/n)
        sgn(w) - ...).  Biases are not regularized.  The running cost in the
        History leaves the regularization term out; ``net.cost(X, y, lmbda)``
        includes it.
    regularization : "L2" (default) or "L1"
    eta_schedule : None (default) or "halve-on-plateau"
        "halve-on-plateau": halve eta whenever the accuracy on ``test_data``
        (use validation data) has not improved for ``patience`` epochs, and
        stop once eta has fallen to ``min_eta_factor`` times its start.  Each
        epoch's record holds the ``eta`` it was trained with.
    patience : int >= 1
    min_eta_factor : float in (0, 1)
    """
    return Run(net, training_data, epochs, mini_batch_size, eta, test_data, TrainingOptions(
        reduction=reduction, shuffle=shuffle, threads=threads, kernel=kernel, verbose=verbose,
        monitor_training_cost=monitor_training_cost, on_divergence=on_divergence,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every, save_best=save_best,
        early_stop=early_stop, overwrite=overwrite, handle_signals=handle_signals,
        info=info, lmbda=lmbda, regularization=regularization, eta_schedule=eta_schedule,
        patience=patience, min_eta_factor=min_eta_factor)).train()



def scheduled_eta(history, eta, patience):
    """The eta of the next epoch under "halve-on-plateau", replayed from the
    History (so that a resumed run needs no other state): eta is halved each
    time the accuracy has gone `patience` epochs without beating its best,
    and the count starts again after each halving."""
    best, since = None, 0
    for record in history:
        if best is None or record["correct"] > best:
            best, since = record["correct"], 0
        else:
            since += 1
            if since >= patience:
                eta, since = eta / 2, 0
    return eta



class Run:
    """One call of SGD: the Trainer made, and the epoch loop with its
    evaluation, verdicts, checkpoints and stop requests.  ``options`` is a
    TrainingOptions; what depends on the call's other arguments (test_data,
    the files) is checked here.  With a ``combiner`` (``Trainer``), rank 0
    alone evaluates and warns, and its epoch records are shared with the others."""

    def __init__(self, net, training_data, epochs, mini_batch_size, eta, test_data, options,
                 resume_state=None, combiner=None):
        o = self.options = options  # a TrainingOptions: checked already
        self.net, self.epochs = net, check_int(epochs, "epochs", minimum=0)
        self.checkpoint_every, self.early_stop = o.checkpoint_every, o.early_stop
        if test_data is None and (self.early_stop is not None or o.save_best is not None):
            raise ValueError("early_stop and save_best need test_data (the accuracy they "
                             "watch is measured on it)")
        if o.eta_schedule is not None and test_data is None:
            raise ValueError("eta_schedule needs test_data (the accuracy it watches is "
                             "measured on it)")
        self.patience, self.min_eta_factor = o.patience, o.min_eta_factor
        paths = {name: as_path(getattr(o, name), name) for name in ("checkpoint", "save_best")
                 if getattr(o, name) is not None}
        if len({os.path.realpath(p) for p in paths.values()}) < len(paths):
            raise ValueError("checkpoint and save_best must be different files")
        # A resumed run goes on writing the files it wrote before: its checkpoint
        # (the file the caller resumed from), and the save_best the caller gives
        # again if the run had that one.  Paths come from the caller only; the
        # checkpoint's own record of its save_best only lets the caller's same
        # path be replaced without overwrite.
        own = set()
        if resume_state is not None:
            own.add(os.path.realpath(resume_state["path"]))
            earlier = resume_state["definition"]["save_best"]
            if earlier and "save_best" in paths and (
                    os.path.realpath(earlier) == os.path.realpath(paths["save_best"])):
                own.add(os.path.realpath(paths["save_best"]))
        for name, path in paths.items():
            check_writable(path, name)
            if (os.path.exists(path) and not o.overwrite
                    and os.path.realpath(path) not in own):
                raise FileExistsError(f"{name} {path} exists; pass overwrite=True to "
                                      "replace it")
        self.paths = paths
        self._trainer_arguments = (training_data, mini_batch_size, eta)
        # a plain X given again is compared with its index while the first epoch
        # trains, where a core is free for it (_deferred_check); not when resuming,
        # whose checkpoint is checked against the data's fingerprint first
        self.trainer = self._make_trainer(
            combiner, defer_check=combiner is None and resume_state is None)
        self.combiner = combiner
        self.lead = combiner is None or combiner.rank == 0
        # SGD's calls on one network go on from each other's calibration (not
        # fastgd profile's or the benchmarks' Trainers, which time the kernels)
        self.trainer.start_from_last_calibration()
        self.eta = self.trainer.eta  # the start: the schedule changes trainer.eta
        self.test = None
        self.data = {"training_data": self.trainer.data, "test_data": None}
        if test_data is not None:
            self.data["test_data"] = prepare(test_data, net.sizes[0], net.sizes[-1], net.dtype,
                                             "test_data")
            self.test = self.data["test_data"].X, self.data["test_data"].y
        self._fingerprint = None  # computed when a checkpoint needs it
        self.definition = dict(
            epochs=self.epochs, mini_batch_size=self.trainer.mini_batch_size,
            eta=self.trainer.eta, reduction=o.reduction, shuffle=bool(o.shuffle),
            monitor_training_cost=bool(o.monitor_training_cost),
            on_divergence=o.on_divergence, checkpoint_every=self.checkpoint_every,
            save_best=paths.get("save_best"), early_stop=self.early_stop,
            lmbda=self.trainer.lmbda, regularization=o.regularization,
            eta_schedule=o.eta_schedule, patience=self.patience,
            min_eta_factor=self.min_eta_factor)
        recorded = dict(self.trainer.info(), epochs_planned=self.epochs)
        clash = sorted(set(o.info or ()) & set(recorded))
        if clash:
            raise ValueError(f"info must not hold {clash}: History.info records "
                             "those itself")
        if o.info and "checkpoint" in paths:
            try:
                json.dumps(o.info, default=json_default)
            except (TypeError, ValueError) as e:
                raise ValueError(f"info must hold JSON values (it is kept in the "
                                 f"checkpoint): {e}") from None
        self.history = History(**(o.info or {}), **recorded)
        # Where the run stands: epochs done, and within the next one the
        # examples done, their summed cost, and the generator's state before
        # that epoch's permutation (so the permutation can be drawn again).
        self.epoch, self.position, self.partial_cost = 0, 0, 0.0
        self.rng_before = None
        if resume_state is not None:
            self._restore(resume_state)

    def _make_trainer(self, combiner=None, defer_check=False):
        o = self.options
        training_data, mini_batch_size, eta = self._trainer_arguments
        return Trainer(self.net, training_data, mini_batch_size, eta, reduction=o.reduction,
                       threads=o.threads, kernel=o.kernel, lmbda=o.lmbda,
                       regularization=o.regularization, notice=o.verbose, combiner=combiner,
                       defer_check=defer_check)

    # -- the loop ---------------------------------------------------------------------

    def train(self):
        try:
            return self._train()
        finally:
            if self.trainer.specialized is not None:  # no thread left in numba at exit
                self.trainer.specialized.cancel()

    def _train(self):
        net, trainer, history = self.net, self.trainer, self.history
        if self.position:  # resuming mid-epoch: draw the same permutation again
            net.rng.bit_generator.state = self.rng_before
        progress = ProgressLine() if self.options.verbose else None
        # one training at a time per network, and none while another thread reads it
        with net._training(), StopRequests(self.options.handle_signals) as stop:
            while self._epochs(progress, stop):
                pass  # the training data had changed in place: trained again on them
        trainer = self.trainer
        history.info.update(threading_layer=threading_layer(),
                            kernel_in_use=trainer.current.name,
                            threads_in_use=trainer.current.threads, kernels=trainer.build)
        return history

    def _epochs(self, progress, stop):
        """The epochs of the call; returns True if they must start again because
        the training data turned out to have changed in place (``_deferred_check``)."""
        check = self._deferred_check()  # may replace self.trainer: read it after
        trainer, history = self.trainer, self.history
        steps = trainer.epochs(self.epochs - self.epoch, shuffle=self.options.shuffle,
                               first=self.epoch, position=self.position,
                               cost=self.partial_cost, should_stop=stop.requested,
                               progress=progress)
        with contextlib.closing(steps):
            for step in steps:
                if progress is not None:
                    progress.clear()
                if check is not None:
                    if not self._inputs_unchanged(*check):
                        return True
                    check = None
                self.rng_before = trainer.rng_before
                if not step.done and math.isfinite(step.cost):
                    self.position, self.partial_cost = step.position, step.cost
                    self._interrupted(trainer.agree(stop.signal))
                self.position, self.partial_cost = 0, 0.0
                record = self._record(step.cost, step.seconds)
                self.epoch += 1
                history.append(record)
                if self.options.verbose:
                    print(epoch_line(record), flush=True)
                reason = self._after_epoch()
                if reason is not None:
                    history.stopped = reason
                    self._write_checkpoint()
                    break
                if self.epoch % self.checkpoint_every == 0 or self.epoch == self.epochs:
                    self._write_checkpoint()
                signum = trainer.agree(stop.signal)  # over ranks, every rank stops
                if signum is not None:
                    self._interrupted(signum)
        return False

    def _deferred_check(self):
        """The comparison of a plain X given again with its index, if the Trainer
        left it to this call (``dataset.DeferredCheck``): run now when the first
        epoch may train on every core, else started in a thread of its own, on a
        core that training leaves free.  Returns None, or what ``_inputs_unchanged``
        needs to undo the training done meanwhile."""
        trainer, net = self.trainer, self.net
        pending = trainer.data.pending
        if pending is None:
            return None
        if trainer.threads_next() >= available_cores():
            trainer.data.pending = None
            if not pending.same(trainer.threads):
                self._prepare_again()
            return None
        pending.start()
        return (pending, net.params.copy(), net.rng.bit_generator.state, self.epoch,
                self.position, self.partial_cost, self.rng_before)

    def _inputs_unchanged(self, pending, params, rng, epoch, position, cost, rng_before):
        """At the first step: True if X was what its index said; else the weights,
        generator and position go back to where the call began, the data are
        prepared again, and False says to train again."""
        self.trainer.data.pending = None
        if pending.same():
            return True
        self.net.params[...] = params
        self.net.rng.bit_generator.state = rng
        self.epoch, self.position, self.partial_cost, self.rng_before = (epoch, position, cost,
                                                                         rng_before)
        self._prepare_again()
        return False

    def _prepare_again(self):
        """A new Trainer on training data that changed in place since they were
        indexed (checked and indexed now)."""
        if self.trainer.specialized is not None:
            self.trainer.specialized.cancel()
        self.trainer = self._make_trainer()
        self.trainer.start_from_last_calibration()
        self.data["training_data"] = self.trainer.data
        self.history.info.update(self.trainer.info())

    def _record(self, cost, seconds):
        """The epoch's entry in the History."""
        trainer, record = self.trainer, None
        if self.lead:
            record = epoch_record(self.net, self.epoch, cost, seconds, (trainer.X, trainer.y),
                                  self.test, threads=self.options.threads,
                                  monitor_training_cost=self.options.monitor_training_cost)
            if self.options.eta_schedule is not None:
                record["eta"] = trainer.eta
        return record if self.combiner is None else self.combiner.share(record)

    def _after_epoch(self):
        """Verdict, best network and early stop after an epoch; returns why
        training stops now, or None to go on."""
        history, o = self.history, self.options
        verdict = diagnose(history, self.trainer.eta, self.net.sizes[-1])
        if verdict and history.diverged is None:
            history.diverged = verdict
            if o.on_divergence == "raise":
                self._write_checkpoint()
                raise DivergenceError(verdict, history, self.net)
            if self.lead:
                warnings.warn(verdict, DivergenceWarning,
                              stacklevel=stacklevel_outside_package())
            if o.on_divergence == "stop":
                return verdict
        if not math.isfinite(history[-1]["cost"]):
            return history.diverged
        if self.test is None:
            return None
        best = max(range(len(history)), key=lambda i: (history[i]["correct"], -i))
        if best == len(history) - 1 and "save_best" in self.paths:
            try:
                write_network(self.paths["save_best"], self.net, overwrite=True)
                history.best_saved = {"epoch": history[best]["epoch"],
                                      "path": self.paths["save_best"]}
            except OSError as e:
                self._write_failed("save_best", e)
        if self.early_stop is not None and len(history) - 1 - best >= self.early_stop:
            return (f"no better accuracy for {self.early_stop} epochs (early_stop): the best "
                    f"was {history[best]['correct']} / {history[best]['total']} in epoch "
                    f"{history[best]['epoch']}")
        if self.options.eta_schedule is not None:
            eta = scheduled_eta(history, self.eta, self.patience)
            if eta <= self.eta * self.min_eta_factor:
                return (f"eta fell to {eta:g}, {self.min_eta_factor:g} of its start "
                        f"{self.eta:g} (eta_schedule, halved after each {self.patience} "
                        "epochs without a better accuracy)")
            self.trainer.eta = eta
        return None

    def _interrupted(self, signum):
        """Write the checkpoint (mid-epoch if need be) and raise TrainingInterrupted."""
        written = self._write_checkpoint()
        self.history.stopped = f"interrupted by {signal_name(signum)}"
        self.history.info.update(threading_layer=threading_layer(),
                                 kernel_in_use=self.trainer.current.name,
                                 threads_in_use=self.trainer.current.threads,
                                 kernels=self.trainer.build)
        raise TrainingInterrupted(signum, self.history, self.epoch, self.position,
                                  written, self.net)

    # -- checkpoints ----------------------------------------------------------------

    @property
    def fingerprint(self):
        """The fingerprints (``FINGERPRINT_ALGORITHM``) of the training and test
        data, computed on first use: only a checkpoint needs them."""
        if self._fingerprint is None:
            self._fingerprint = {key: None if data is None else data.fingerprint()
                                 for key, data in self.data.items()}
        return self._fingerprint

    def _write_checkpoint(self):
        """Write the checkpoint, if asked for and the weights are finite (a diverged
        network never replaces the last good checkpoint); returns its path or None."""
        path = self.paths.get("checkpoint")
        if path is None or not np.isfinite(self.net.params).all():
            return None
        state = {"fingerprint": self.fingerprint,
                 "fingerprint_algorithm": FINGERPRINT_ALGORITHM, "definition": self.definition,
                 "seed": self.net.seed, "dtype": self.net.dtype.name,
                 "epoch": self.epoch, "position": self.position,
                 "partial_cost": self.partial_cost,
                 "rng": (self.rng_before if self.position else self.net.rng.bit_generator.state),
                 "history": {"records": list(self.history), "info": self.history.info,
                             "diverged": self.history.diverged,
                             "stopped": self.history.stopped,
                             "best_saved": self.history.best_saved}}
        try:
            write_checkpoint(path, self.net, state)
        except OSError as e:
            self._write_failed("checkpoint", e)
            return None
        self.history.checkpoint = {"epoch": self.epoch, "position": self.position,
                                   "path": path}
        return path

    def _write_failed(self, name, error):
        """A checkpoint or save_best that could not be written (a full disk): the
        run goes on, since the network it trains is what matters and the caller
        still has it; ``History.info["write_errors"][name]`` keeps the last failure,
        and the first is warned of (RuntimeWarning)."""
        errors = self.history.info.setdefault("write_errors", {})
        if name not in errors:
            warnings.warn(f"{name} {self.paths[name]} could not be written ({error}); "
                          "training goes on without it", RuntimeWarning,
                          stacklevel=stacklevel_outside_package())
        errors[name] = {"path": self.paths[name], "epoch": self.epoch,
                        "position": self.position, "error": str(error)}

    def _restore(self, state):
        check_same_data(state, self.data, lambda: self.fingerprint)
        # the checkpoint was checked by itself (read_checkpoint); its position
        # must also fall inside these data
        n = self.trainer.n
        if state["position"] >= n:
            raise ValueError(f"the checkpoint {state['path']} is damaged: position "
                             f"{state['position']} is past the {n} training examples")
        if state["definition"]["mini_batch_size"] != self.trainer.mini_batch_size:
            raise ValueError(f"the checkpoint {state['path']} is damaged: mini_batch_size "
                             f"{state['definition']['mini_batch_size']} for {n} examples")
        saved = state["history"]
        self.history[:] = saved["records"]
        self.history.diverged = saved["diverged"]
        self.history.best_saved = saved.get("best_saved")
        for key, value in saved["info"].items():
            self.history.info.setdefault(key, value)
        self.history.info["resumed"] = {"from": state["path"], "epoch": state["epoch"],
                                        "position": state["position"]}
        self.epoch, self.position = state["epoch"], state["position"]
        self.partial_cost = state["partial_cost"]
        if self.options.eta_schedule is not None:
            self.trainer.eta = scheduled_eta(self.history, self.eta, self.patience)
        self.net.rng.bit_generator.state = state["rng"]
        self.rng_before = state["rng"]


def resume(path: StrPath, training_data: Data, test_data: Data | None = None, *,
           epochs: int | None = None, threads: int | None = None, kernel: str = "auto",
           verbose: bool = True, checkpoint: StrPath | None = None,
           save_best: StrPath | None = None, overwrite: bool = False,
           handle_signals: bool = True,
           network_class: type[_N] = Network,  # type: ignore[assignment]  # (mypy#3737)
           ) -> tuple[_N, History]:
    """Continue the run whose checkpoint is at ``path``; returns (network, History).

    The checkpoint is untrusted: every field is checked before any is used, and
    a damaged or crafted one raises ValueError.  Output paths come only from
    the arguments: ``checkpoint`` (default ``path``) and ``save_best`` (default:
    none, even if the run had one; give the same path again to go on keeping
    the best network there, which it may then replace without ``overwrite``).

    The network, the epoch (and position within it), the generator's state, the
    History and the options that define the run (mini-batch size, eta, ...) come
    from the checkpoint, so a run of 6 epochs and a run of 3 epochs resumed for
    3 more give bit-identical weights.  ``training_data`` and ``test_data`` (pairs
    (X, y) or ``Dataset`` objects) must be the data the checkpoint was written for
    (checked by their fingerprints, ``Dataset.fingerprint``).  ``epochs``
    is the total to reach (default: the run's own); ``checkpoint`` defaults to
    ``path``, which is updated as the run goes on.  ``network_class`` makes the
    network (``fastgd.resume`` gives ``fastgd.Network``, which has ``SGD``).
    """
    # the caller's flags first: a bad one is the caller's error, whatever the file
    for name, value in (("verbose", verbose), ("overwrite", overwrite),
                        ("handle_signals", handle_signals)):
        check_bool(value, name)
    net, state = read_checkpoint(path, network_class)
    definition = state["definition"]
    net.seed = state["seed"]
    options = TrainingOptions(
        reduction=definition["reduction"], shuffle=definition["shuffle"], threads=threads,
        kernel=kernel, verbose=verbose, monitor_training_cost=definition["monitor_training_cost"],
        on_divergence=definition["on_divergence"],
        checkpoint=path if checkpoint is None else checkpoint,
        checkpoint_every=definition["checkpoint_every"],
        save_best=save_best,
        early_stop=definition["early_stop"], overwrite=overwrite, handle_signals=handle_signals,
        **{key: definition.get(key, default) for key, default in RUN_OPTION_DEFAULTS.items()})
    total = definition["epochs"] if epochs is None else check_int(epochs, "epochs", minimum=0)
    if total < state["epoch"]:
        raise ValueError(f"epochs must be at least the {state['epoch']} epochs the checkpoint "
                         f"has done, got {total}")
    try:
        run = Run(net, training_data, total, definition["mini_batch_size"], definition["eta"],
                  test_data, options, resume_state=state)
    except ValueError as e:
        if not str(e).startswith("mini_batch_size "):
            raise
        # here it can only be the checkpoint's: say so, and where it came from
        raise ValueError(f"{e} (the mini-batch size that checkpoint {os.fspath(path)!r} "
                         "records: is this the training data it was written for?)") from None
    return net, run.train()

