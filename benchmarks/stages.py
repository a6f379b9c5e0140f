"""Where a parallel epoch of small mini-batches goes, stage by stage and thread by thread.

    python benchmarks/stages.py [--mini-batch-size 100] [--threads 1 2] [--rounds 5]

A mini-batch of at most ``chunk_size`` examples (100 is one for [784, 30, 10]) is
trained in two stages per step (``kernels.drivers.drive_descend``): its forward
and backward passes in blocks of examples, then its update in blocks of weight
rows, each stage ended by a wait on the work queue's counter.  This script runs
a copy of that loop with the same generated kernels, the same plan and the same
work queue, and reads the CPU's cycle counter (``llvm.readcyclecounter``) around
each stage, per worker thread: the time each thread spent working on each
stage's pieces, and waiting at each stage's end for the others.  With one
thread the waits are only the counter's own cost; with more, the work that
grows with the thread count is time lost to sharing (cache lines moving between
cores), and the waits are time lost to imbalance and to meeting.

It prints, for each thread count, the epoch's wall time, and per stage the work
summed over the threads and the wait of the thread that waited least and most
(milliseconds per epoch), then the speed-up and where the time beyond a perfect
split went.  The weights are restored before every round, so every round does
the same work.
"""

import argparse
import functools
import statistics
import time

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils
from numba import types as nbtypes
from numba.extending import intrinsic

import fastgd
from fastgd import config, kernels
from fastgd.kernels.buffers import layer_views, scratch_views
from fastgd.kernels.workqueue import finish_and_take, take_piece, wait_for, work_queue
from fastgd.training.kernel_choice import numba_threads
from fastgd.training.trainer import Trainer

# Columns of a worker's row of the timing array (a row is 16 numbers, 128 bytes,
# so that no two workers write one cache line).
FB_WORK, FB_WAIT, UP_WORK, UP_WAIT, FB_PIECES, UP_PIECES = range(6)
STAGES = (("forward + backward", FB_WORK, FB_WAIT), ("update", UP_WORK, UP_WAIT))


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (rdtsc on x86): constant-rate on current CPUs,
    converted to seconds against time.perf_counter (``ticks_per_second``)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])
    return nbtypes.int64(), codegen


@njit(nogil=True)
def _ticks():
    return cycles()


def ticks_per_second():
    """The counter's rate, from 0.2 s of time.perf_counter."""
    _ticks()  # compiled before the clock starts
    t0, c0 = time.perf_counter(), _ticks()
    while time.perf_counter() - t0 < 0.2:
        pass
    return (_ticks() - c0) / (time.perf_counter() - t0)


@functools.cache
def make_driver(module):
    """drive_train's loop for direct mini-batches (no decay), timed per stage:
    a copy of ``drive_descend``'s first branch, calling module's passes (made and
    compiled once per module)."""
    forward_pass, backward_pass = module.forward_pass, module.backward_pass
    update_rows = module.update_rows
    patience = config.SPINS_BEFORE_YIELD

    @njit(nogil=True, error_model="numpy")
    def worker(w, examples, idx, start, stop, mini_batch_size, eta, params, layout, scratch,
               plan, counter, total, timing):
        indptr, indices, values, labels = examples
        nabla, groups, A, D, costs = scratch
        splits, spans, example_block = plan.splits, plan.spans, plan.example_block
        sizes = layout.sizes
        n_out = sizes[sizes.shape[0] - 1]
        rows_held = A.shape[0] // layout.a_off[-1]
        n_row_blocks = max(1, splits.shape[1] - 1)
        n_pieces = n_row_blocks + sizes.shape[0] - 2
        weights, biases = layer_views(params, layout)
        As, Ds = scratch_views(A, layout, rows_held), scratch_views(D, layout, rows_held)
        typed = np.ones(1, params.dtype)
        one = typed[0]
        zero = one - one
        no_offset = np.int64(0)
        piece = take_piece(counter)
        base = 0
        for mb_start in range(start, stop, mini_batch_size):
            mb = min(mini_batch_size, stop - mb_start)
            typed[0] = -eta / mb
            step = typed[0]
            rows = idx[mb_start:stop]
            n_blocks = (mb + example_block - 1) // example_block
            c0 = cycles()
            while piece < base + n_blocks:
                t0 = (piece - base) * example_block
                t1 = min(mb, t0 + example_block)
                forward_pass(t0, t1, rows, indptr, indices, values, splits, spans, weights,
                             biases, As, zero)
                backward_pass(t0, t1, rows, labels, weights, As, Ds, costs, n_out)
                timing[w, FB_PIECES] += 1
                piece = finish_and_take(counter)
            c1 = cycles()
            base = wait_for(counter, base + n_blocks, patience)
            c2 = cycles()
            while piece < base + n_pieces:
                if piece == base:
                    for t in range(mb):
                        total[0] += costs[t]
                update_rows(piece - base, n_row_blocks, no_offset, mb, rows, indptr, indices,
                            values, spans, step, weights, biases, As, Ds)
                timing[w, UP_PIECES] += 1
                piece = finish_and_take(counter)
            c3 = cycles()
            base = wait_for(counter, base + n_pieces, patience)
            c4 = cycles()
            timing[w, FB_WORK] += c1 - c0
            timing[w, FB_WAIT] += c2 - c1
            timing[w, UP_WORK] += c3 - c2
            timing[w, UP_WAIT] += c4 - c3

    @njit(nogil=True, parallel=True, error_model="numpy")
    def drive(examples, idx, start, stop, mini_batch_size, eta, params, layout, scratch, plan,
              timing):
        counter, total = work_queue()
        for w in prange(plan.n_workers):
            worker(w, examples, idx, start, stop, mini_batch_size, eta, params, layout,
                   scratch, plan, counter, total, timing)
        return total[0]

    return drive


def setup(data, sizes, m, threads, plan_of=None, specialize="now"):
    """(net, trainer, plan): a network of `sizes` (seed 1, float32), its Trainer on
    `data` at mini-batch size m, and the plan of the serial kernel (plan_of 1) or
    of the parallel kernel for plan_of threads (default: `threads`), run by
    `threads` workers."""
    plan_of = threads if plan_of is None else plan_of
    net = fastgd.Network(sizes, dtype="float32", seed=1)
    trainer = Trainer(net, data, m, 3.0, threads=plan_of,
                      kernel="serial" if plan_of == 1 else "parallel", specialize=specialize)
    if m > trainer.buffers.direct_max:
        raise ValueError(f"mini-batch size {m} is larger than the direct mini-batches "
                         f"({trainer.buffers.direct_max}) this script times")
    candidate, buffers = trainer.current, trainer.buffers
    plan = kernels.Plan(candidate.splits, candidate.spans, buffers.direct_max, buffers.group,
                        candidate.chunk, candidate.example_block, threads)
    return net, trainer, plan


def epoch(drive, trainer, plan, order):
    """One pass of ``drive`` over `order` on the trainer's weights; returns the
    timing array (a row per worker: cycles and pieces, columns FB_WORK...)."""
    timing = np.zeros((plan.n_workers, 16), np.int64)
    with numba_threads(plan.n_workers):
        kernels.call(drive, trainer.examples, order, 0, len(order), trainer.mini_batch_size,
                     trainer.eta, trainer.net.params, trainer.net.layout.arrays,
                     trainer.buffers.scratch, plan, timing)
    return timing


def measure(data, m, threads, rounds, rate, plan_of=None):
    """Per-round (wall seconds, per-worker stage seconds, pieces) of `rounds`
    epochs of [784, 30, 10] from the same weights, after one that compiles."""
    net, trainer, plan = setup(data, [784, 30, 10], m, threads, plan_of)
    drive = make_driver(trainer.module)
    order = np.random.default_rng(1).permutation(trainer.n).astype(np.int64)
    start_params = net.params.copy()
    results = []
    for r in range(rounds + 1):  # the first compiles and warms up
        net.params[:] = start_params
        began = time.perf_counter()
        timing = epoch(drive, trainer, plan, order)
        wall = time.perf_counter() - began
        if r:
            results.append((wall, timing[:, :4] / rate, timing[:, 4:6].copy()))
    return results


def summarise(results):
    """Medians over the rounds: wall, and per stage the work summed over the
    workers, the least and the most wait of a worker."""
    wall = statistics.median(r[0] for r in results)
    rows = {}
    for name, work, wait in STAGES:
        rows[name] = (statistics.median(r[1][:, work].sum() for r in results),
                      statistics.median(r[1][:, wait].min() for r in results),
                      statistics.median(r[1][:, wait].max() for r in results))
    pieces = results[0][2].sum(axis=0)
    return wall, rows, pieces


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mini-batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--plan-threads", type=int, default=None, metavar="T",
                        help="run the parallel kernel's plan for T threads (its pieces: "
                             "blocks of examples, blocks of weight rows) on every thread "
                             "count, so that one thread shows what the pieces cost without "
                             "sharing (default: each thread count its own plan, the "
                             "serial kernel's for one)")
    args = parser.parse_args()
    if args.mini_batch_size < 1 or args.rounds < 1 or min(args.threads) < 1:
        parser.error("--mini-batch-size, --rounds and --threads take integers >= 1")
    data = fastgd.load_mnist(as_dataset=True)[0]
    rate = ticks_per_second()
    print(f"[784, 30, 10] float32, {len(data):,} examples, m = {args.mini_batch_size}, "
          f"medians of {args.rounds} epochs, ms per epoch (cycle counter at "
          f"{rate / 1e9:.2f} GHz)\n")
    print("| threads | wall | stage | work, all threads | wait, least | wait, most | pieces |")
    print("| --: | --: | --- | --: | --: | --: | --: |")
    summaries = {}
    for threads in args.threads:
        wall, rows, pieces = summarise(measure(data, args.mini_batch_size, threads,
                                               args.rounds, rate, args.plan_threads))
        summaries[threads] = wall, rows
        for i, (name, (work, least, most)) in enumerate(rows.items()):
            print(f"| {threads} | {wall * 1e3:.1f} | {name} | {work * 1e3:.1f} | "
                  f"{least * 1e3:.1f} | {most * 1e3:.1f} | {int(pieces[i])} |")
    if 1 in summaries:
        wall1, rows1 = summaries[1]
        work1 = sum(v[0] for v in rows1.values())
        for threads, (wall, rows) in summaries.items():
            if threads == 1:
                continue
            work = sum(v[0] for v in rows.values())
            print(f"\n{threads} threads: {wall1 / wall:.2f}x one thread; the work of all "
                  f"threads {work * 1e3:.1f} ms against {work1 * 1e3:.1f} ms on one "
                  f"({work / work1:.2f}x); a perfect split of one thread's work "
                  f"{work1 / threads * 1e3:.1f} ms, the wall {wall * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
