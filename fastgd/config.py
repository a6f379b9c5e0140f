"""fastgd's tunables: settings that change how fast it runs, and two that change
what it computes.

The kernels' settings, EVAL_BLOCK and SPECIALIZE are read when they are used
(``config.X`` at the point of use, never a copy made at import), so a change at
run time takes effect from the next module generated, network trained or
kernel looked up.  The settings of ``fastgd.training`` (EXAMPLE_BLOCK to
RECHECK_EPOCHS below, none of which changes a bit) are copied into it when it
is imported: set ``fastgd.training.SEGMENT`` and so on to change them.  The settings the code
generator writes into the kernels (``kernels.generator.SETTINGS``) are part of
each generated module's key and are written into its header, so a change
gives another module, never an old one.

Settings that change the bits (they fix the order of the additions):

* ``CHAINS``: the chains each z_j is summed in;
* ``DENSE_FROM``: which input path the training data take.

Every other setting gives the same bits whatever its value (the tests run the
kernels with other values too).  The other things that decide the bits belong
to the kernels' contract instead: ``kernels.PAD`` and ``training.GROUP`` /
``training.chunk_size``.  What each setting is worth on the machines measured
is in BENCHMARKS.md.
"""

import os

# -- the generated kernels (fastgd.kernels) -----------------------------------------------

# Outputs computed together in registers (wider layers are done in panels):
# None means as many as the machine's vector registers hold (``panel_width``).
PANEL = None
# How many examples ahead the forward pass asks for the nonzero inputs: into L1
# (PREFETCH_AHEAD), and earlier into L2 (PREFETCH_OUTER), so that more of the wait
# for memory overlaps work without pushing out of L1 what is in use.
PREFETCH_AHEAD = 4
PREFETCH_OUTER = 12
# Calls of the backward pass with at least this many examples first make transposed
# copies of the weights after layer 0 (see _backward_code); fewer examples use the
# weights as they are.  Both give the same bits.
TRANSPOSE_FROM = 8
# Independent chains each z_j is summed in, 1 or 2 (see generator._forward_code).
# Changes the bits: the terms are added in another order.
CHAINS = 2
# Parameters per piece when a large mini-batch's group sums are added to nabla.
PARAM_BLOCK = 4096
# Weight rows per piece of the weight decay (pieces are shared among threads).
DECAY_ROWS = 64
# Turns of the wait loop before a thread waiting for the end of a stage gives its
# CPU away (sched_yield) at every turn: long enough for a stage to end on an idle
# machine, short enough that, with more threads than CPUs, the thread it waits
# for soon gets a CPU (both measured in BENCHMARKS.md).
SPINS_BEFORE_YIELD = 20_000
# Training data with at least this fraction of nonzero inputs take the dense input
# path (every input read in order, no column indices); sparser data skip their zeros.
# The two cost the same near the middle of the range where they cross (BENCHMARKS.md),
# so the exact value matters little.  The path fixes the order of additions (the
# chains pair other terms), so it is chosen from the data alone, never timed: a run
# gives the same bits on any machine.
DENSE_FROM = 0.75

# The fewest entries of a data set's index (its nonzero inputs) that each thread
# copies when the index is built (``kernels.nonzero_columns``): starting a thread
# costs about what copying tens of thousands of entries does, so a small data set
# is indexed by one thread.  No effect on the result.
INDEX_ENTRIES_PER_THREAD = 1 << 16

# -- compiling (fastgd.training.Trainer) --------------------------------------------------

# A network shape whose specialised kernels are not compiled yet trains on the generic
# kernels (the same bits, compiled once for every shape) while a background thread
# compiles the specialised ones, and switches to them at a segment boundary once they
# are ready ("background"); "now" compiles them first and waits; "never" keeps the
# generic kernels.  Read whenever a Trainer starts; $FASTGD_SPECIALIZE sets it for a
# process and its children (the test suite runs on the generic kernels this way, and
# tests the specialised ones where it says so).
SPECIALIZE = os.environ.get("FASTGD_SPECIALIZE", "background")
# The specialised kernels write each output of each layer out as code of its own
# (``kernels.unrolled_outputs``: the padded widths after the input, 48 for the
# book's [784, 30, 10]).  Their source grows in proportion (about ten lines per
# output), and so do numba's and LLVM's time and memory to compile it, past a
# fixed part, until one function holds too many variables for LLVM: a few times
# the book's network compiles in about twice its time, a layer of 1000 took many
# minutes and over a gigabyte, one of 10000 gigabytes more.  A shape past this
# many outputs is never specialised: it trains on the generic kernels (the same
# bits), and nothing compiles for it in the background.  The bound counts
# outputs, not seconds, so that which kernels a shape gets does not depend on
# the machine.
SPECIALIZE_MAX_OUTPUTS = 256

# -- cutting the work into pieces (fastgd.training) ---------------------------------------

# Examples per piece of the parallel forward/backward pass: many small pieces,
# handed out as threads become free, so that a thread the OS preempts holds up
# only its piece.  The parallel update of a small mini-batch is cut into this
# many blocks of weight rows per thread: each block reads every example's errors
# and spans again, and one block per thread took the least time on the 2-core
# EPYC (quiet, and beside a busy loop, where auto trains serially anyway) and on
# 8 and 16 Xeon cores (BENCHMARKS.md, "Row blocks").
EXAMPLE_BLOCK = 16
ROW_BLOCKS_PER_THREAD = 1
# Examples the parallel kernel backpropagates between two additions of the
# groups to nabla: more than the serial kernel's, so that the threads wait for
# each other (at the end of each stage) less often.
PARALLEL_CHUNK = 1024
# An epoch is run in segments of about this many examples (whole mini-batches),
# so that long epochs can show progress, stop on a signal, and stop early on NaN.
SEGMENT = 10_000
# Seconds into an epoch after which progress is shown.
PROGRESS_AFTER = 2.0

# -- the auto kernel (fastgd.training.Trainer) --------------------------------------------

# Each candidate is timed on about TRIAL_EXAMPLES examples (whole mini-batches),
# twice, alternating, after two short scouting trials; the slower of its two
# full times counts.  The choice is timed again when a segment's
# time per example drifts by more than DRIFT from what the choice was timed at
# (slower for the parallel kernel, faster for the serial one: see
# Trainer._watch), and after
# RECHECK_EPOCHS epochs (doubling each time the choice stands), since a load
# that goes away need not change the speed of the kernel in use.
TRIAL_EXAMPLES = 2048
# A candidate whose faster scouting trial is more than this many times slower than
# the fastest's is not timed further in that calibration (on a busy machine the
# parallel kernel can be a hundred times slower than the serial one).
TRIAL_CUTOFF = 2.0
DRIFT = 0.3
RECHECK_EPOCHS = 4

# -- evaluation (fastgd.network) ----------------------------------------------------------

# Examples per parallel block when evaluating: enough work to hide the cost of a
# parallel region, small enough to balance the threads.
EVAL_BLOCK = 64
