"""ReLU forward and backward over whole activations.

    forward:   y  = x where x > 0, else 0        (NaN stays NaN, as in torch)
    backward:  gx = 0 where y <= 0, else gy      (0 at x == 0; a NaN unit passes gy: torch's rule)

The backward is a select, not ``gy * (y > 0)``: a multiply would turn an infinite gradient at a
dead unit into NaN (inf * 0), where torch gives 0.

NumPy's ``np.maximum`` runs on one core; these loops split the array across numba's threads.
Arrays below ``PARALLEL_MIN`` elements run the same loops on the calling thread alone
(tinyconv/_threads.py, split_if): waking the threads costs more than they save there (measured
on 2 cores: 221,184 elements serial 0.02 ms, split 0.06 ms; 1M about even, 0.1 ms). Arrays below
``NUMPY_MAX`` elements stay in NumPy, whose call costs less than numba's dispatch.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinyconv._threads import split_if

PARALLEL_MIN = 1 << 20
NUMPY_MAX = 1 << 12
_BLOCK = 1 << 14  # elements per task


def relu_forward_reference(x):
    return np.maximum(x, 0)


def relu_backward_reference(gy, y):
    return np.where(y <= 0, np.zeros((), gy.dtype), gy)


# NOTE: each task slices its block out of every array first and loops over the slices with one
# index. Indexing the whole arrays directly (gx[i] = ... gy[i] ...) is 10x slower: LLVM cannot
# rule out that the output overlaps an input at some offset, and gives up vectorizing.


@njit(cache=True, parallel=True)
def _relu_forward_loops(x, y):
    n = x.size
    for block in prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = block * _BLOCK, min(n, (block + 1) * _BLOCK)
        src, dst = x[lo:hi], y[lo:hi]
        for i in range(hi - lo):
            v = src[i]
            dst[i] = 0 if v <= 0 else v  # NaN <= 0 is false: NaN passes through


@njit(cache=True, parallel=True)
def _relu_backward_loops(gy, y, gx):
    n = gy.size
    zero = gy.dtype.type(0)
    for block in prange((n + _BLOCK - 1) // _BLOCK):
        lo, hi = block * _BLOCK, min(n, (block + 1) * _BLOCK)
        g, out, dst = gy[lo:hi], y[lo:hi], gx[lo:hi]
        for i in range(hi - lo):
            dst[i] = zero if out[i] <= 0 else g[i]


def _use_loops(a):
    return a.size >= NUMPY_MAX and a.dtype.kind == "f"


def relu_forward(x):
    """Fast version of :func:`relu_forward_reference`."""
    if not _use_loops(x):
        return relu_forward_reference(x)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    split_if(_relu_forward_loops, x.size, PARALLEL_MIN)(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(gy, y):
    """Fast version of :func:`relu_backward_reference`."""
    if not _use_loops(gy) or gy.dtype != y.dtype:
        return relu_backward_reference(gy, y)
    gy, y = np.ascontiguousarray(gy), np.ascontiguousarray(y)
    gx = np.empty_like(gy)
    split_if(_relu_backward_loops, gy.size, PARALLEL_MIN)(gy.reshape(-1), y.reshape(-1),
                                                          gx.reshape(-1))
    return gx
