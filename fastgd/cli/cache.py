"""``fastgd compile`` and ``fastgd cache``: the kernel cache, filled ahead of time,
looked at and cleared.

    fastgd compile --sizes 784,30,10          # before the first run: a Docker image, CI
    fastgd compile --sizes 784,100,10 --dtype float64 --inputs both --distributed
    fastgd cache                              # the folder, its size, one line per module
    fastgd cache --clear
"""

import fastgd
from fastgd.cli._arguments import DTYPES, layer_sizes
from fastgd import config
from fastgd.network_file import COSTS
from fastgd.precompile import INPUTS

BOOK_SIZES = [784, 30, 10]


def add_parsers(commands):
    """Add compile and cache to the subcommands."""
    compile_ = commands.add_parser(
        "compile", help="compile the kernels of a network shape into the on-disk cache, "
                        "ahead of the first run",
        description="Compile (or find in numba's disk cache) the kernels that training and "
                    "evaluating a network of these sizes use, so that no later run waits "
                    "for numba: in a Docker image, on each node of a cluster or MPI job "
                    "before it starts, in CI. Each network shape, dtype, cost and input "
                    "path has kernels of its own (tens of seconds each to compile). The cache is "
                    "$FASTGD_CACHE_DIR (default: a fastgd folder in $NUMBA_CACHE_DIR or "
                    "~/.cache); see fastgd cache.")
    compile_.add_argument("--sizes", type=layer_sizes, default=BOOK_SIZES, metavar="N,N,...",
                          help="the number of neurons in each layer, input layer first "
                               "(default 784,30,10)")
    compile_.add_argument("--dtype", choices=DTYPES, default="float32",
                          help="floating-point precision of the network (default float32)")
    compile_.add_argument("--cost", choices=COSTS, default="quadratic",
                          help="the cost the network trains on (default quadratic)")
    compile_.add_argument("--inputs", choices=INPUTS, default="sparse",
                          help="the training input path: sparse (default; MNIST's, whose "
                               "zero pixels are skipped), dense (training data with at least "
                               f"{config.DENSE_FROM * 100:g}%% of the inputs nonzero) or both")
    compile_.add_argument("--distributed", action="store_true",
                          help="also the kernels of distributed training (fastgd train "
                               "--distributed, MPI)")
    compile_.set_defaults(func=compile_command)

    cache = commands.add_parser(
        "cache", help="show the kernel cache (folder, size, one line per module), or clear it",
        description="Show where fastgd's generated kernel modules and numba's compiled code "
                    "for them are, how much room they take and what each module is for. "
                    "Modules built from other fastgd sources (another version or checkout) "
                    "are marked stale: fastgd removes them by itself an hour after they "
                    "were last written.")
    cache.add_argument("--clear", action="store_true",
                       help="remove every generated module and its compiled code (nothing "
                            "else in the folder); the next run of each shape compiles again")
    cache.set_defaults(func=cache_command)


def compile_command(args):
    result = fastgd.compile_kernels(args.sizes, args.dtype, args.cost, inputs=args.inputs,
                                    distributed=args.distributed, verbose=True)
    compiled = len(result.compiled)
    inputs = "sparse and dense" if result.inputs == "both" else result.inputs
    # a network too wide to specialise trains on the generic kernels: those are compiled
    what = ("Generic kernels only (too wide for specialised ones: "
            "fastgd.config.SPECIALIZE_MAX_OUTPUTS)" if result.generic else "Kernels")
    print(f"{what} for a {result.sizes} network, {result.dtype}, {result.cost} cost, {inputs} "
          f"inputs: {compiled} compiled, {len(result.kernels) - compiled} already on disk, "
          f"{result.seconds:.1f} s; cache {result.folder}")
    names = [step.kernel + (f" ({step.inputs})" if step.inputs else "") for step in result.kernels]
    width = max(map(len, names))
    for name, step in zip(names, result.kernels):
        state = {True: "on disk", False: "compiled", None: "compiled or loaded"}[step.cached]
        print(f"  {name:<{width}}  {state:<18} {step.seconds:6.1f} s")
    return 0


def _megabytes(n):
    return f"{n / 1e6:.1f} MB"


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def cache_command(args):
    if args.clear:
        removed = fastgd.clear_cache()
        print(f"Removed {_plural(len(removed.modules), 'module')} "
              f"({_plural(len(removed.files), 'file')}, {_megabytes(removed.bytes)}) "
              f"from {removed.folder}")
        if removed.failed:
            path, reason = removed.failed[0]
            raise OSError(f"could not remove {_plural(len(removed.failed), 'file')}, such as "
                          f"{path}: {reason}")
        return 0
    info = fastgd.cache_info()
    stale = sum(not e.current for e in info.entries)
    print(f"Kernel cache {info.folder}: {_plural(len(info.entries), 'module')}"
          + (f" ({stale} stale)" if stale else "") + f", {_megabytes(info.bytes)}")
    for folder in info.numba_folders:
        print(f"  compiled code and bytecode in {folder}")
    for e in info.entries:
        generic = not e.widths  # the generic kernels: every shape, every dtype
        facts = ["generic (any sizes, any dtype)" if generic else
                 f"sizes *,{','.join(map(str, e.widths))}",
                 *([] if generic else
                   [e.dtype or (f"panel {e.panel}" if e.panel else "dtype unknown")]),
                 f"{e.inputs} inputs",
                 f"{e.cost} cost" if e.cost else "cost unknown",
                 "compiled" if e.compiled else "not compiled",
                 _megabytes(e.bytes)]
        if not e.current:
            facts.append("stale")
        print(f"  {e.module}: {', '.join(facts)}")
    return 0
