"""The loops of the fused ops: BatchNorm2d -> ReLU -> MaxPool2d(2, 2) in one pass over the
activation, and MaxPool2d(2, 2) with ReLU. Why and when modules are fused, and what it saves:
tinyconv/nn/fusion.py (the one place that explains fusion).

Notation as in tinyconv/kernels/batchnorm.py and pool.py; per channel c::

    z = (x - mu) * invstd * gamma + beta      (training: batch statistics)
    z = x * scale + shift                     (evaluation: scale = gamma * invstd,
                                                            shift = beta - running_mean * scale)
    r = relu(z),   y = max of r over each 2x2 window,   at = its position in the window 0..3
                                              (0 1 / 2 3; the first on ties; NaN wins)

Backward (training): the gradient of z is gy at the arg-max of each window whose y > 0 and 0
everywhere else, so the batch-norm sums only visit one pixel per window::

    sum_g = sum of gz,  sum_gh = sum of gz * xhat,
    gx    = gamma * invstd / M * (M * gz - sum_g - xhat * sum_gh)

Layouts: x is (N, C, H, W), or (C, N, H, W) when ``channel_major``: the output Y of a
convolution's GEMM, which the fused Conv2d ops hand over before it is moved into the batch's
layout; then ``pre`` (C,) holds the convolution's bias, added to each value first, exactly as
the unfused convolution adds it. The input gradient gx is written in x's layout; in
channel-major layout each channel's sum of gx (the convolution's bias gradient) comes too.

Each value is computed with the same operations, in the same order, as the unfused kernels, so
the forward outputs are bit-identical to them; the backward sums are the same sums in another
order. The ``*_reference`` twins (same signatures) are plain NumPy over the unfused references.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinyconv.kernels.activation import relu_backward_reference, relu_forward_reference
from tinyconv.kernels.batchnorm import (
    _FASTMATH,
    _vector,
    batch_norm_backward_reference,
    batch_norm_stats_reference,
    per_channel,
)
from tinyconv.kernels.pool import (
    max_of_window,
    maxpool2d_backward_reference,
    maxpool2d_forward_reference,
)

# ---------------------------------------------------------------------------------------------
# reference twins: the unfused NumPy references in a row


def _batch_major_reference(x, channel_major, pre):
    """x as (N, C, H, W), plus pre[c] (rounded in x's dtype) when given."""
    if channel_major:
        x = x.transpose(1, 0, 2, 3)
    return x if pre is None else x + per_channel(pre.astype(x.dtype, copy=False), 4)


def _window_position(idx, W):
    """Flat arg-max indices (N, C, OH, OW) of 2x2 / stride-2 windows -> position 0..3 inside."""
    OH, OW = idx.shape[2:]
    h, w = idx // W, idx % W
    return ((h - 2 * np.arange(OH)[:, None]) * 2 + (w - 2 * np.arange(OW))).astype(np.uint8)


def _flat_index(at, W):
    """The inverse of _window_position: flat indices h*W + w of the arg-max pixels (int64)."""
    OH, OW = at.shape[2:]
    at = at.astype(np.int64)
    return (2 * np.arange(OH)[:, None] + at // 2) * W + 2 * np.arange(OW) + at % 2


def _pool_reference(r):
    """(y, at) of 2x2 / stride-2 max pooling of r (N, C, H, W)."""
    H, W = r.shape[2:]
    y, idx = maxpool2d_forward_reference(r, 2, 2, (2, 2), (0, 0), (1, 1), H // 2, W // 2)
    return y, _window_position(idx, W)


def _into(out, y, at):
    if out is None:
        return y, at
    out[0][...], out[1][...] = y, at
    return out


def forward_reference(x, gamma, beta, training, stats, channel_major=False, pre=None, out=None):
    """max_pool2d(relu(batch norm of x), 2, 2) with the statistics ``stats``: (mu, invstd) when
    training, (scale, shift) in evaluation. Returns (y, at); see :func:`forward`."""
    x = _batch_major_reference(x, channel_major, pre)
    dt = x.dtype
    if training:
        mu, invstd, g, b = (per_channel(a.astype(dt, copy=False), 4)
                            for a in (stats[0], stats[1], gamma, beta))
        z = (x - mu) * invstd * g + b
    else:
        scale, shift = (per_channel(a.astype(dt, copy=False), 4) for a in stats)
        z = x * scale + shift
    return _into(out, *_pool_reference(relu_forward_reference(z)))


def train_forward_reference(x, gamma, beta, eps, channel_major=False, pre=None):
    """The batch statistics (NumPy), then :func:`forward_reference`: (y, at, (mu, var,
    invstd))."""
    mu, var, invstd = batch_norm_stats_reference(_batch_major_reference(x, channel_major, pre),
                                                 eps)
    y, at = forward_reference(x, gamma, beta, True, (mu, invstd), channel_major, pre)
    return y, at, (mu, var, invstd)


def backward_reference(gy, x, y, at, gamma, mu, invstd, channel_major=False, pre=None):
    """Training-mode gradients through the unfused references: (gx, ggamma, gbeta), and in
    channel-major layout also the sum of gx over each channel."""
    xb = _batch_major_reference(x, channel_major, pre)
    dt = xb.dtype
    xhat = (xb - per_channel(mu, 4)) * per_channel(invstd, 4)
    # relu(max of a window) = max of relu: the ReLU's gate on y, then the pooling's scatter
    g_pool = maxpool2d_backward_reference(relu_backward_reference(gy, y),
                                          _flat_index(at, xb.shape[3]), xb.shape)
    gx, ggamma, gbeta = batch_norm_backward_reference(g_pool, xhat, gamma.astype(dt), invstd)
    if not channel_major:
        return gx, ggamma, gbeta
    gx_sum = gx.sum(axis=(0, 2, 3), dtype=np.float64).astype(dt)
    return np.ascontiguousarray(gx.transpose(1, 0, 2, 3)), ggamma, gbeta, gx_sum


# ---------------------------------------------------------------------------------------------
# fast versions: numba loops, one pass over the activation


@njit(inline="always")
def _bn_relu_row(src, dst, training, a, s, g, b, p):
    # one row of the activation (+ p, the convolution's bias when fused with it, else 0),
    # normalized and through the ReLU: a plain loop over two views, which LLVM vectorizes (the
    # pooling below reads every other element)
    if training:
        for i in range(src.size):
            z = ((src[i] + p) - a) * s * g + b
            dst[i] = 0 if z <= 0 else z  # NaN <= 0 is false: NaN passes, as in the ReLU kernel
    else:
        for i in range(src.size):
            z = (src[i] + p) * s + b
            dst[i] = 0 if z <= 0 else z


@njit(inline="always")
def _dims(x, channel_major):
    """(N, C, H, W) of x in either layout."""
    if channel_major:
        return x.shape[1], x.shape[0], x.shape[2], x.shape[3]
    return x.shape[0], x.shape[1], x.shape[2], x.shape[3]


@njit(inline="always")
def _task(task, N, C, channel_major):
    """(n, c) of task number ``task``, walking the planes in memory order."""
    if channel_major:
        return task % N, task // N
    return task // C, task % C


@njit(inline="always")
def _forward_plane(plane, y_plane, at_plane, training, a, s, g, b, p, top, bottom):
    # one (H, W) plane -> its pooled (H/2, W/2) plane and arg-max places; top, bottom: scratch
    for oh in range(y_plane.shape[0]):
        _bn_relu_row(plane[2 * oh], top, training, a, s, g, b, p)
        _bn_relu_row(plane[2 * oh + 1], bottom, training, a, s, g, b, p)
        y_row, at_row = y_plane[oh], at_plane[oh]
        for ow in range(y_row.size):  # the pooling's rule, ties and NaN: max_of_window
            y_row[ow], at_row[ow] = max_of_window(top[2 * ow], top[2 * ow + 1], bottom[2 * ow],
                                                  bottom[2 * ow + 1])


_BLOCK = 16  # planes per task of the forward loops: fewer scratch allocations


@njit(cache=True, parallel=True)  # no fastmath: every element rounds as in the unfused kernels
def _forward_loops(x, channel_major, pre, training, p_a, p_s, p_g, p_b, y, at):
    # training: (a, s, g, b) = (mu, invstd, gamma, beta); evaluation: (-, scale, -, shift)
    N, C, H, W = _dims(x, channel_major)
    tasks = N * C
    for block in prange((tasks + _BLOCK - 1) // _BLOCK):  # the block's planes share scratch rows
        top, bottom = np.empty(W, x.dtype), np.empty(W, x.dtype)
        for task in range(block * _BLOCK, min(tasks, (block + 1) * _BLOCK)):
            n, c = _task(task, N, C, channel_major)
            _forward_plane(x[c, n] if channel_major else x[n, c], y[n, c], at[n, c], training,
                           p_a[c], p_s[c], p_g[c], p_b[c], pre[c], top, bottom)


@njit(cache=True, fastmath=_FASTMATH)
def _channel_stats(x, channel_major, c, p):
    """(mean, biased variance) of channel c of x + p in float64, x (N, C, L) or (C, N, L): the
    sums of tinyconv/kernels/batchnorm.py's channel_stats, in the same order."""
    N, L = (x.shape[1], x.shape[2]) if channel_major else (x.shape[0], x.shape[2])
    M = N * L
    total = 0.0
    for n in range(N):
        row = x[c, n] if channel_major else x[n, c]
        for i in range(L):
            total += row[i] + p
    m = total / M
    sq = 0.0
    for n in range(N):
        row = x[c, n] if channel_major else x[n, c]
        for i in range(L):
            d = (row[i] + p) - m
            sq += d * d
    return m, sq / M


@njit(cache=True, parallel=True)  # no fastmath: every element rounds as in the unfused kernels
def _train_forward_loops(x, x3, channel_major, pre, eps, gamma, beta, mu, var, invstd, y, at):
    # Training, one thread per channel: the channel's statistics, then its planes normalized
    # and pooled while they are still in the cache (x3: x as (N, C, H*W) or (C, N, H*W)).
    N, C, H, W = _dims(x, channel_major)
    for c in prange(C):
        m, v = _channel_stats(x3, channel_major, c, pre[c])
        mu[c], var[c], invstd[c] = m, v, 1.0 / np.sqrt(v + eps)
        top, bottom = np.empty(W, x.dtype), np.empty(W, x.dtype)
        for n in range(N):
            _forward_plane(x[c, n] if channel_major else x[n, c], y[n, c], at[n, c], True,
                           mu[c], invstd[c], gamma[c], beta[c], pre[c], top, bottom)


@njit(cache=True, parallel=True, fastmath=_FASTMATH)
def _backward_loops(gy, x, channel_major, pre, y, at, mu, invstd, gamma, gx, ggamma, gbeta,
                    gx_sum):
    # x and gx as (N, C, H*W) or (C, N, H*W): one flat row per plane
    N, C, OH, OW = y.shape
    H, W = 2 * OH, 2 * OW
    M = N * H * W
    zero = gy.dtype.type(0)
    for c in prange(C):  # one thread per channel: the sums need the whole channel
        m, s, p = mu[c], invstd[c], pre[c]
        sum_g = 0.0
        sum_gh = 0.0
        for n in range(N):  # one pixel per window: the arg-max, when the ReLU let it through
            x_row = x[c, n] if channel_major else x[n, c]
            g_plane, y_plane, at_plane = gy[n, c], y[n, c], at[n, c]
            for oh in range(OH):
                for ow in range(OW):
                    # a select, not a branch (see _forward_loops): gated windows add 0
                    yv, gv, k = y_plane[oh, ow], g_plane[oh, ow], at_plane[oh, ow]
                    g = zero if yv <= 0 else gv
                    h = ((x_row[(2 * oh + (k >> 1)) * W + 2 * ow + (k & 1)] + p) - m) * s
                    sum_g += g
                    sum_gh += g * h
        gbeta[c], ggamma[c] = sum_g, sum_gh
        scale = gamma[c] * s / M
        total = 0.0  # of gx over the channel, when channel_major: the bias gradient
        for n in range(N):
            x_row = x[c, n] if channel_major else x[n, c]
            out = gx[c, n] if channel_major else gx[n, c]
            for i in range(H * W):  # every pixel as if no gradient reached it (gz = 0) ...
                v = scale * (0 - sum_g - ((x_row[i] + p) - m) * s * sum_gh)
                out[i] = v
                total += v
            g_plane, y_plane, at_plane = gy[n, c], y[n, c], at[n, c]
            for oh in range(OH):  # ... then the arg-max pixels, which may have got one
                for ow in range(OW):
                    yv, gv, k = y_plane[oh, ow], g_plane[oh, ow], at_plane[oh, ow]
                    g = zero if yv <= 0 else gv
                    i = (2 * oh + (k >> 1)) * W + 2 * ow + (k & 1)
                    h = ((x_row[i] + p) - m) * s
                    v = scale * (M * g - sum_g - h * sum_gh)
                    total += v - out[i]
                    out[i] = v
        gx_sum[c] = total


def forward(x, gamma, beta, training, stats, channel_major=False, pre=None, out=None):
    """Fast :func:`forward_reference`: ``stats`` = (mu, invstd) when training, (scale, shift)
    in evaluation.

    Returns y (N, C, H/2, W/2) and at (N, C, H/2, W/2) uint8, written into ``out=(y, at)`` when
    given. ``channel_major`` and ``pre``: see the module docstring.
    """
    N, C, H, W = (x.shape[1], x.shape[0]) + x.shape[2:] if channel_major else x.shape
    if out is None:
        out = (np.empty((N, C, H // 2, W // 2), dtype=x.dtype),
               np.empty((N, C, H // 2, W // 2), dtype=np.uint8))
    if training:
        args = (stats[0], stats[1], gamma, beta)
    else:
        args = (stats[0], stats[0], stats[0], stats[1])  # a and g unused
    args = tuple(_vector(a, x.dtype) for a in args)
    _forward_loops(np.ascontiguousarray(x), channel_major, _pre(pre, C, x.dtype), training,
                   *args, *out)
    return out


def train_forward(x, gamma, beta, eps, channel_major=False, pre=None):
    """Fast :func:`train_forward_reference`: the batch statistics computed on the way; returns
    y, at and (mu, var, invstd), equal to ``batch_norm_stats`` followed by :func:`forward`."""
    x = np.ascontiguousarray(x)
    N, C, H, W = (x.shape[1], x.shape[0]) + x.shape[2:] if channel_major else x.shape
    dt = x.dtype
    y = np.empty((N, C, H // 2, W // 2), dtype=dt)
    at = np.empty(y.shape, dtype=np.uint8)
    mu, var, invstd = np.empty(C, dt), np.empty(C, dt), np.empty(C, dt)
    _train_forward_loops(x, _flat(x), channel_major, _pre(pre, C, dt), dt.type(eps),
                         _vector(gamma, dt), _vector(beta, dt), mu, var, invstd, y, at)
    return y, at, (mu, var, invstd)


def backward(gy, x, y, at, gamma, mu, invstd, channel_major=False, pre=None):
    """Fast :func:`backward_reference`: (gx, ggamma, gbeta), and in channel-major layout also
    the sum of gx over each channel (the bias gradient of the convolution before)."""
    C, dt = x.shape[0 if channel_major else 1], x.dtype
    gx = np.empty(x.shape, dtype=dt)
    ggamma, gbeta, gx_sum = np.empty(C, dtype=dt), np.empty(C, dtype=dt), np.empty(C, dtype=dt)
    _backward_loops(np.ascontiguousarray(gy), _flat(x), channel_major, _pre(pre, C, dt),
                    np.ascontiguousarray(y), np.ascontiguousarray(at), _vector(mu, dt),
                    _vector(invstd, dt), _vector(gamma, dt), _flat(gx), ggamma, gbeta, gx_sum)
    if channel_major:
        return gx, ggamma, gbeta, gx_sum
    return gx, ggamma, gbeta


def _flat(a):
    """(A, B, H, W) -> (A, B, H*W), a view."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _pre(pre, C, dtype):
    return np.zeros(C, dtype) if pre is None else _vector(pre, dtype)


# ---------------------------------------------------------------------------------------------
# MaxPool2d(2, 2) and ReLU, in either order
#
# max-pool then ReLU and ReLU then max-pool give the same values, relu(max of the window), and
# the same gradient: gy goes to the window's arg-max when the maximum is > 0 (or NaN), else
# nowhere. (Where every value is <= 0 the two orders pick different arg-maxima, the first
# value after the ReLU has made them all 0, the largest one before it; no gradient reaches
# either.) Its backward writes every input pixel once, with no zero-filled gradient to scatter
# into.


def pool_relu_forward_reference(x, channel_major=False, pre=None, out=None):
    """(y, at): max-pool 2x2 / stride 2 then ReLU, with the NumPy references."""
    y, at = _pool_reference(_batch_major_reference(x, channel_major, pre))
    return _into(out, relu_forward_reference(y), at)


def pool_relu_backward_reference(gy, y, at, x_shape, channel_major=False):
    """gx (in the layout of ``x_shape``): the ReLU's gate, then the max-pool's scatter, with the
    NumPy references; in channel-major layout also its sum over each channel."""
    shape = (x_shape[1], x_shape[0]) + tuple(x_shape[2:]) if channel_major else x_shape
    gx = maxpool2d_backward_reference(relu_backward_reference(gy, y),
                                      _flat_index(at, shape[3]), shape)
    if not channel_major:
        return gx
    gx_sum = gx.sum(axis=(0, 2, 3), dtype=np.float64).astype(gy.dtype)
    return np.ascontiguousarray(gx.transpose(1, 0, 2, 3)), gx_sum


@njit(cache=True, parallel=True)
def _pool_relu_loops(x, channel_major, pre, y, at):
    N, C, H, W = _dims(x, channel_major)
    OH, OW = y.shape[2], y.shape[3]
    for task in prange(N * C):
        n, c = _task(task, N, C, channel_major)
        plane, p = x[c, n] if channel_major else x[n, c], pre[c]
        for oh in range(OH):
            top, bottom = plane[2 * oh], plane[2 * oh + 1]
            y_row, at_row = y[n, c, oh], at[n, c, oh]
            for ow in range(OW):
                best, at_row[ow] = max_of_window(top[2 * ow] + p, top[2 * ow + 1] + p,
                                                 bottom[2 * ow] + p, bottom[2 * ow + 1] + p)
                y_row[ow] = 0 if best <= 0 else best  # NaN passes, as in the ReLU kernel


@njit(cache=True, parallel=True, fastmath=_FASTMATH)  # reassoc: only for the plane sums
def _pool_relu_backward_loops(gy, y, at, channel_major, gx, plane_sums):
    N, C, H, W = _dims(gx, channel_major)
    OH, OW = y.shape[2], y.shape[3]
    zero = gy.dtype.type(0)
    for task in prange(N * C):  # planes are disjoint: threads never write the same pixel
        n, c = _task(task, N, C, channel_major)
        plane = gx[c, n] if channel_major else gx[n, c]
        for oh in range(OH):
            g_row, y_row, at_row = gy[n, c, oh], y[n, c, oh], at[n, c, oh]
            for i in range(2):
                out = plane[2 * oh + i]
                for ow in range(OW):
                    yv, gv, k = y_row[ow], g_row[ow], at_row[ow]
                    g = zero if yv <= 0 else gv
                    out[2 * ow] = g if k == 2 * i else zero
                    out[2 * ow + 1] = g if k == 2 * i + 1 else zero
        if channel_major:  # each window's gradient lands on one pixel: the plane's sum
            g_flat, y_flat = gy[n, c].reshape(OH * OW), y[n, c].reshape(OH * OW)
            total = zero  # a plane's sum in the data's precision, the planes' in float64
            for q in range(OH * OW):
                total += zero if y_flat[q] <= 0 else g_flat[q]
            plane_sums[c, n] = total


def pool_relu_values_reference(x, channel_major=False, pre=None, out=None):
    """y of :func:`pool_relu_forward_reference` alone, written into ``out`` when given."""
    y, _ = pool_relu_forward_reference(x, channel_major, pre)
    if out is None:
        return y
    out[...] = y
    return out


@njit(inline="always")
def _larger(a, b):
    """b if it wins against a (larger, or NaN), else a: the rule of max_of_window."""
    return b if (b > a) | (b != b) else a


@njit(cache=True, parallel=True)
def _pool_relu_values_loops(x, channel_major, pre, y):
    # Evaluation needs no arg-max: the maximum of each column pair first (contiguous, so LLVM
    # vectorizes it), then of neighbouring columns. max_of_window's scan order decides only
    # which of equal values is the arg-max, and ties of +0 and -0, which the ReLU makes 0:
    # the values are the same. (32, 64, 28, 28) channel-major: 5.37 ms with the arg-max
    # (_pool_relu_loops), 0.48 ms so (2-core AVX2 test machine, best of 5 x 200 calls).
    N, C, H, W = _dims(x, channel_major)
    OH, OW = y.shape[2], y.shape[3]
    zero = x.dtype.type(0)
    for task in prange(N * C):
        n, c = _task(task, N, C, channel_major)
        plane, p = x[c, n] if channel_major else x[n, c], pre[c]
        column = np.empty(2 * OW, dtype=x.dtype)
        for oh in range(OH):
            top, bottom, y_row = plane[2 * oh], plane[2 * oh + 1], y[n, c, oh]
            for j in range(2 * OW):
                column[j] = _larger(top[j] + p, bottom[j] + p)
            for ow in range(OW):
                best = _larger(column[2 * ow], column[2 * ow + 1])
                y_row[ow] = zero if best <= 0 else best  # NaN passes, as in the ReLU kernel


def pool_relu_values(x, channel_major=False, pre=None, out=None):
    """Fast :func:`pool_relu_values_reference`: max-pool 2x2 / stride 2 then ReLU, values only
    (for evaluation), written into ``out`` when given."""
    N, C, H, W = (x.shape[1], x.shape[0]) + x.shape[2:] if channel_major else x.shape
    if out is None:
        out = np.empty((N, C, H // 2, W // 2), dtype=x.dtype)
    _pool_relu_values_loops(np.ascontiguousarray(x), channel_major, _pre(pre, C, x.dtype), out)
    return out


def pool_relu_forward(x, channel_major=False, pre=None, out=None):
    """Fast :func:`pool_relu_forward_reference` (x of even height and width), written into
    ``out=(y, at)`` when given; ``channel_major`` and ``pre``: see the module docstring."""
    N, C, H, W = (x.shape[1], x.shape[0]) + x.shape[2:] if channel_major else x.shape
    if out is None:
        out = (np.empty((N, C, H // 2, W // 2), dtype=x.dtype),
               np.empty((N, C, H // 2, W // 2), dtype=np.uint8))
    _pool_relu_loops(np.ascontiguousarray(x), channel_major, _pre(pre, C, x.dtype), *out)
    return out


def pool_relu_backward(gy, y, at, x_shape, channel_major=False):
    """Fast :func:`pool_relu_backward_reference`: gx in the layout of ``x_shape``; in
    channel-major layout (C, N, H, W) also its sum over each channel (the bias gradient)."""
    gx = np.empty(x_shape, dtype=gy.dtype)
    N, C = y.shape[:2]
    plane_sums = np.empty((C, N), dtype=np.float64)
    _pool_relu_backward_loops(np.ascontiguousarray(gy), np.ascontiguousarray(y),
                              np.ascontiguousarray(at), channel_major, gx, plane_sums)
    if channel_major:
        return gx, plane_sums.sum(axis=1).astype(gy.dtype)
    return gx
