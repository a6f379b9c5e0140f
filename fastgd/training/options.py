"""The options of a training run (``TrainingOptions``), checked once, and every
choice list they take, defined here once (the CLI offers the same tuples)."""

from dataclasses import dataclass

from .._files import StrPath
from .._validation import check_bool, check_int, check_positive_float
from ..network import REGULARIZATIONS, check_regularization

# How a mini-batch's summed gradient becomes a step: "mean" divides by its
# size m, as the book does; "sum" does not.
REDUCTIONS = ("mean", "sum")
# Which training kernel runs: "auto" times serial against parallel on all the
# threads and on halves of them (see Trainer);
# all three give bit-identical weights on any thread count.
DETERMINISTIC_KERNELS = ("auto", "serial", "parallel")
# "hogwild" (Hogwild!, opt-in) is the one kernel whose bits depend on how its
# threads interleave: never chosen by "auto".
KERNELS = DETERMINISTIC_KERNELS + ("hogwild",)
# What a run does when training fails (see diagnose).
ON_DIVERGENCE = ("stop", "warn", "raise")
# How eta changes from epoch to epoch (see scheduled_eta).
ETA_SCHEDULES = (None, "halve-on-plateau")
# config.SPECIALIZE: when a Trainer whose specialised kernels are not compiled yet
# gets them (see Trainer): compiled in a background thread while it trains on
# the generic kernels, compiled first ("now"), or not at all ("never").
SPECIALIZE_MODES = ("background", "now", "never")

__all__ = ["REDUCTIONS", "KERNELS", "DETERMINISTIC_KERNELS", "ON_DIVERGENCE", "ETA_SCHEDULES",
           "SPECIALIZE_MODES", "REGULARIZATIONS", "TrainingOptions", "check_choice",
           "RUN_OPTIONS", "RUN_OPTION_DEFAULTS"]


def check_choice(value: str | None, name: str, choices: tuple[str | None, ...]) -> str | None:
    """value if it is one of choices, else ValueError naming the argument and
    the choices ("reduction must be 'mean' or 'sum', got 'avg'")."""
    if not (value is None or isinstance(value, str)) or value not in choices:
        spelled = ", ".join(map(repr, choices[:-1])) + f" or {choices[-1]!r}"
        raise ValueError(f"{name} must be {spelled}, got {value!r}")
    return value


@dataclass(frozen=True)
class TrainingOptions:
    """SGD's keyword options (see ``fastgd.training.SGD`` for each), checked
    when made: a bad value raises a ValueError (or TypeError) naming it, and the
    numbers are normalised (``lmbda`` and ``min_eta_factor`` floats,
    ``checkpoint_every``, ``early_stop`` and ``patience`` ints)."""
    reduction: str = "mean"
    shuffle: bool = True
    threads: int | None = None
    kernel: str = "auto"
    verbose: bool = True
    monitor_training_cost: bool = False
    on_divergence: str = "stop"
    checkpoint: StrPath | None = None
    checkpoint_every: int = 1
    save_best: StrPath | None = None
    early_stop: int | None = None
    overwrite: bool = False
    handle_signals: bool = True
    info: dict | None = None
    lmbda: float = 0.0
    regularization: str = "L2"
    eta_schedule: str | None = None
    patience: int = 10
    min_eta_factor: float = 1 / 128

    def __post_init__(self) -> None:
        def normalise(name, value):
            object.__setattr__(self, name, value)

        # a string such as "False" would read as true: flags are bools only
        for name in ("shuffle", "verbose", "monitor_training_cost", "overwrite",
                     "handle_signals"):
            normalise(name, check_bool(getattr(self, name), name))
        if self.info is not None:
            if not isinstance(self.info, dict) or not all(isinstance(k, str)
                                                          for k in self.info):
                raise TypeError(f"info must be a dict with str keys (entries for "
                                f"History.info), got {self.info!r}"[:200])
            normalise("info", dict(self.info))
        check_choice(self.on_divergence, "on_divergence", ON_DIVERGENCE)
        normalise("checkpoint_every", check_int(self.checkpoint_every, "checkpoint_every",
                                                minimum=1))
        if self.early_stop is not None:
            normalise("early_stop", check_int(self.early_stop, "early_stop", minimum=1))
        check_choice(self.eta_schedule, "eta_schedule", ETA_SCHEDULES)
        normalise("patience", check_int(self.patience, "patience", minimum=1))
        factor = check_positive_float(self.min_eta_factor, "min_eta_factor")
        if factor >= 1:
            raise ValueError(f"min_eta_factor must be less than 1, got {self.min_eta_factor!r}")
        normalise("min_eta_factor", factor)
        check_choice(self.reduction, "reduction", REDUCTIONS)
        check_choice(self.kernel, "kernel", KERNELS)
        # n in the decay eta lmbda / n is the training set's size, as in the book
        normalise("lmbda", check_regularization(self.lmbda, self.regularization))
        if self.threads is not None:
            check_int(self.threads, "threads", minimum=1)


# What defines a run (a checkpoint keeps these; resume takes them from it).
RUN_OPTIONS = ("epochs", "mini_batch_size", "eta", "reduction", "shuffle",
               "monitor_training_cost", "on_divergence", "checkpoint_every", "save_best",
               "early_stop")
# Options added since; a checkpoint without them was written with these values.
RUN_OPTION_DEFAULTS = {"lmbda": 0.0, "regularization": "L2", "eta_schedule": None,
                       "patience": 10, "min_eta_factor": 1 / 128}
