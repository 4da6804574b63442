"""Log-softmax over the last axis, one row at a time.

    forward:   y_j  = x_j - m - log(sum_k exp(x_k - m)),   m = max_k x_k   (so exp never overflows)
    backward:  gx_j = gy_j - exp(y_j) * sum_k gy_k

The ``*_reference`` twins are these formulas in NumPy (tinyconv/ops/loss.py derives them; so
does docs/cross-entropy.md). Why loops: a classifier's rows are short (10 classes), and NumPy
reduces a short last axis slowly, a call per reduction over the whole array: on a (1000, 10)
batch the reference forward takes ~140 us on the 2-core test machine (AVX2 only).
The loops here walk each row once, in cache, for the max, the shift and the sums; the
exponentials go to NumPy's ``np.exp`` over the whole array, which runs 8 at a time in SIMD
registers, where numba calls the scalar ``exp`` once per value (LLVM has no vector exp without
Intel's SVML): forward 102 -> 65 us, backward 64 -> 48 us on that batch (best of 5 x 1000
calls). Serial: a batch of logits is small.

NaN and infinities come out as from the formulas: a NaN in a row makes m NaN (NumPy's max
propagates it, so ``v != v`` here), and a row whose maximum is infinite gives NaN (inf - inf).
The sums run left to right; NumPy's add up 8 partial sums for rows of 8 or more: the results
agree to rounding, not bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def log_softmax_rows_reference(x):
    """Log-softmax of ``x`` over its last axis."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_rows_backward_reference(gy, y):
    """The gradient of the input of :func:`log_softmax_rows_reference` from ``gy`` and its
    output ``y``."""
    return gy - np.exp(y) * gy.sum(axis=-1, keepdims=True)


@njit(cache=True)
def _shift_loops(x, shifted):
    """shifted = x - (max of its row)."""
    for i in range(x.shape[0]):
        row, out = x[i], shifted[i]
        m = row[0]
        for v in row[1:]:
            if v > m or v != v:  # a NaN wins, as in NumPy's max
                m = v
        for j in range(row.size):
            out[j] = row[j] - m


@njit(cache=True)
def _subtract_log_sum_loops(shifted, e):
    """shifted -= log(sum of its row of e), e = exp(shifted)."""
    for i in range(e.shape[0]):
        total = e.dtype.type(0)
        for v in e[i]:
            total += v
        lse = np.log(total)
        out = shifted[i]
        for j in range(out.size):
            out[j] -= lse


@njit(cache=True)
def _backward_loops(gy, e, gx):
    """gx = gy - e * (sum of gy's row), e = exp(y)."""
    for i in range(gy.shape[0]):
        g, p, dst = gy[i], e[i], gx[i]
        total = gy.dtype.type(0)
        for v in g:
            total += v
        for j in range(g.size):
            dst[j] = g[j] - p[j] * total


def _as_rows(a):
    """``a`` as a C-contiguous (rows, last axis) array."""
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


def _use_loops(*arrays):
    a = arrays[0]
    return (a.ndim >= 1 and a.size > 0 and a.dtype in (np.float32, np.float64)
            and all(b.dtype == a.dtype and b.shape == a.shape for b in arrays))


def log_softmax_rows(x):
    """Fast version of :func:`log_softmax_rows_reference`."""
    if not _use_loops(x):
        return log_softmax_rows_reference(x)
    y = np.empty(x.shape, dtype=x.dtype)
    rows = y.reshape(-1, x.shape[-1])
    _shift_loops(_as_rows(x), rows)
    _subtract_log_sum_loops(rows, np.exp(rows))
    return y


def log_softmax_rows_backward(gy, y):
    """Fast version of :func:`log_softmax_rows_backward_reference`."""
    if not _use_loops(gy, y):
        return log_softmax_rows_backward_reference(gy, y)
    gx = np.empty(gy.shape, dtype=gy.dtype)
    _backward_loops(_as_rows(gy), _as_rows(np.exp(y)), gx.reshape(-1, gy.shape[-1]))
    return gx
