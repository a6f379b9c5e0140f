"""LLVM intrinsics the kernels need and numba does not offer: a float's bits
(``float_bits``, ``float_from_bits``, for ``maths.exp``), prefetch hints
(``_prefetch``, ``_prefetch_outer`` and the row prefetches built on them), and
atomic operations for the work queue (``fetch_add``, ``load_acquire``).
None of them changes a result.
"""

import numpy as np
from llvmlite import ir
from numba import types as nbtypes
from numba.core import cgutils
from numba.extending import intrinsic

from .numba_cache import njit

@intrinsic
def float_bits(typingctx, x):
    """The 64 bits of a float64 as an int64 (a reinterpretation, not a conversion)."""
    if x != nbtypes.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return nbtypes.int64(x), codegen


@intrinsic
def float_from_bits(typingctx, i):
    """The float64 whose 64 bits are the int64 i (the inverse of float_bits)."""
    if i != nbtypes.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return nbtypes.float64(i), codegen



def _element_pointer(context, builder, signature, args):
    """LLVM pointer to array[i] for an intrinsic called as f(array, i, ...)."""
    arrayty = signature.args[0]
    ary = context.make_array(arrayty)(context, builder, args[0])
    return cgutils.get_item_pointer2(context, builder, ary.data,
                                     cgutils.unpack_tuple(builder, ary.shape),
                                     cgutils.unpack_tuple(builder, ary.strides),
                                     arrayty.layout, [args[1]])


def _prefetch_intrinsic(name, locality, doc):
    """An intrinsic name(array, i) that asks the CPU to start loading the cache
    line of array[i] (LLVM's prefetch hint, for reading data) into the cache
    levels that `locality` names: 3 all of them, down to L1; 1 the outer ones
    (L2 on x86).  A hint changes no result, only when the data arrive."""
    def prefetch(typingctx, array, i):
        if not isinstance(array, nbtypes.Array) or not isinstance(i, nbtypes.Integer):
            return None

        def codegen(context, builder, signature, args):
            ptr = _element_pointer(context, builder, signature, args)
            byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
                "llvm.prefetch.p0")
            # read, locality, data
            builder.call(fn, [builder.bitcast(ptr, byte_ptr), i32(0), i32(locality), i32(1)])
            return context.get_dummy_value()

        return nbtypes.void(array, i), codegen

    prefetch.__name__ = prefetch.__qualname__ = name
    prefetch.__doc__ = doc
    return intrinsic(prefetch)


_prefetch = _prefetch_intrinsic("_prefetch", 3, "Start loading array[i] into every cache level.")
_prefetch_outer = _prefetch_intrinsic(
    "_prefetch_outer", 1,
    "Start loading array[i] into the outer cache levels (L2), not L1: for data "
    "needed later, which would only push out of L1 what is needed now.")


@njit(cache=True, nogil=True, inline="always")
def prefetch_row(x, indptr, indices, values, splits):
    """Start loading row x of the CSR arrays (and of splits) into cache: examples
    come in shuffled order, so each one's nonzero inputs lie somewhere new in
    memory.  Dense rows (``dense_columns``) have no indices."""
    if indices.shape[0] > 0:
        for p in range(indptr[x], indptr[x + 1], np.uint64(64 // indices.itemsize)):
            _prefetch(indices, p)
    for p in range(indptr[x], indptr[x + 1], np.uint64(64 // values.itemsize)):
        _prefetch(values, p)
    if splits.shape[0] > 0:
        _prefetch(splits[x], 0)
        _prefetch(splits[x], splits.shape[1] - 1)


@njit(cache=True, nogil=True, inline="always")
def prefetch_row_outer(x, indptr, indices, values):
    """Start loading row x of the CSR arrays into L2 only: the first of two
    steps, many examples ahead (``prefetch_row``, into L1, is the second,
    nearer the row's use), so that the wait for memory overlaps more examples'
    work without filling L1."""
    if indices.shape[0] > 0:
        for p in range(indptr[x], indptr[x + 1], np.uint64(64 // indices.itemsize)):
            _prefetch_outer(indices, p)
    for p in range(indptr[x], indptr[x + 1], np.uint64(64 // values.itemsize)):
        _prefetch_outer(values, p)


@intrinsic
def fetch_add(typingctx, array, i, value):
    """old = array[i]; array[i] += value, atomically; returns old.  Acquire-release
    ordering: what a thread wrote before its addition is seen by a thread that
    reads the sum after it (``wait_for``)."""
    if not (isinstance(array, nbtypes.Array) and array.dtype == nbtypes.int64
            and isinstance(i, nbtypes.Integer) and value == nbtypes.int64):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        return builder.atomic_rmw("add", ptr, args[2], "acq_rel")

    return nbtypes.int64(array, i, value), codegen


@intrinsic
def load_acquire(typingctx, array, i):
    """array[i], read atomically with acquire ordering (the compiler can neither
    keep it in a register across a loop nor move later reads before it)."""
    if not (isinstance(array, nbtypes.Array) and array.dtype == nbtypes.int64
            and isinstance(i, nbtypes.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        return builder.load_atomic(ptr, "acquire", 8)

    return nbtypes.int64(array, i), codegen
