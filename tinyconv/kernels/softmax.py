"""Log-softmax over the last axis, one row at a time.

    forward:   y_j  = x_j - m - log(sum_k exp(x_k - m)),   m = max_k x_k   (so exp never overflows)
    backward:  gx_j = gy_j - exp(y_j) * sum_k gy_k

The ``*_reference`` twins are these formulas in NumPy (tinyconv/ops/loss.py derives them; so
does docs/cross-entropy.md). Why loops: a classifier's rows are short (10 classes), and NumPy
reduces a short last axis slowly, a call per reduction over the whole array: on a (1000, 10)
batch its max takes ~45 us and its sum ~20 us, the forward ~95 us and the backward ~30 us on
the 2-core test machine; these loops walk each row once, in cache (~10 us). Serial: a batch of
logits is small.

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
def _forward_loops(x, y):
    for i in range(x.shape[0]):
        row, out = x[i], y[i]
        m = row[0]
        for v in row[1:]:
            if v > m or v != v:  # a NaN wins, as in NumPy's max
                m = v
        total = x.dtype.type(0)
        for v in row:
            total += np.exp(v - m)
        lse = np.log(total)
        for j in range(row.size):
            out[j] = (row[j] - m) - lse


@njit(cache=True)
def _backward_loops(gy, y, gx):
    for i in range(gy.shape[0]):
        g, out, dst = gy[i], y[i], gx[i]
        total = gy.dtype.type(0)
        for v in g:
            total += v
        for j in range(g.size):
            dst[j] = g[j] - np.exp(out[j]) * total


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
    _forward_loops(_as_rows(x), y.reshape(-1, x.shape[-1]))
    return y


def log_softmax_rows_backward(gy, y):
    """Fast version of :func:`log_softmax_rows_backward_reference`."""
    if not _use_loops(gy, y):
        return log_softmax_rows_backward_reference(gy, y)
    gx = np.empty(gy.shape, dtype=gy.dtype)
    _backward_loops(_as_rows(gy), _as_rows(y), gx.reshape(-1, gy.shape[-1]))
    return gx
