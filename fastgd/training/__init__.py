"""Training on one machine: the options (``options``), the one epoch loop
(``trainer``), the run around it (``sgd``: SGD and resume), checkpoints
(``checkpoint``), the History and how a run ends (``history``), failure verdicts
(``diagnose``), which kernel runs (``kernel_choice``), the specialised kernels'
background compile (``specialization``), progress lines (``progress``) and
signals (``stop_requests``).  The public names are re-exported here."""

from .checkpoint import CHECKPOINT_FORMAT, data_fingerprint, read_checkpoint
from .diagnose import (DIVERGENCE_PATIENCE, DIVERGENCE_TOLERANCE, SATURATED_EPOCHS,
                       SATURATION_SAMPLE, STALL_EPOCHS, STALL_TOLERANCE, diagnose)
from .history import (DivergenceError, DivergenceWarning, EpochStep, History,
                      TrainingInterrupted, epoch_record)
from .kernel_choice import (GROUP, Candidate, choose_kernel, chunk, chunk_size, numba_threads,
                            threading_layer)
from .options import (DETERMINISTIC_KERNELS, ETA_SCHEDULES, KERNELS, ON_DIVERGENCE,
                      REDUCTIONS, REGULARIZATIONS, RUN_OPTION_DEFAULTS, RUN_OPTIONS,
                      SPECIALIZE_MODES, TrainingOptions, check_choice)
from .progress import ProgressLine, epoch_line
from .sgd import SGD, Run, resume, scheduled_eta
from .specialization import (Specialization, compile_estimate, compile_notice,
                             compiling_needed, measuring_mode)
from .buffers import Buffers
from .trainer import Trainer

__all__ = [
    "CHECKPOINT_FORMAT", "data_fingerprint", "read_checkpoint",
    "DIVERGENCE_PATIENCE", "DIVERGENCE_TOLERANCE", "SATURATED_EPOCHS", "SATURATION_SAMPLE",
    "STALL_EPOCHS", "STALL_TOLERANCE", "diagnose",
    "DivergenceError", "DivergenceWarning", "EpochStep", "History", "TrainingInterrupted",
    "epoch_record",
    "GROUP", "Candidate", "choose_kernel", "chunk", "chunk_size", "numba_threads",
    "threading_layer",
    "DETERMINISTIC_KERNELS", "ETA_SCHEDULES", "KERNELS", "ON_DIVERGENCE", "REDUCTIONS",
    "REGULARIZATIONS",
    "RUN_OPTION_DEFAULTS", "RUN_OPTIONS", "SPECIALIZE_MODES", "TrainingOptions", "check_choice",
    "ProgressLine", "epoch_line",
    "SGD", "Run", "resume", "scheduled_eta",
    "Specialization", "compile_estimate", "compile_notice", "compiling_needed",
    "measuring_mode",
    "Buffers", "Trainer",
]
