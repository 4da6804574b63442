"""Batch normalization in training mode, one channel at a time.

Notation: x viewed as (N, C, L) with L = H*W (L = 1 for (N, C) input); per channel c the
M = N*L values x[:, c, :]; gamma, beta (C,); gy the gradient of the output::

    forward:   mu = sum(x) / M                 var = sum((x - mu)**2) / M     (biased)
               invstd = 1 / sqrt(var + eps)
               xhat = (x - mu) * invstd        y = gamma * xhat + beta
    backward:  gbeta = sum(gy)                 ggamma = sum(gy * xhat)
               gx = gamma * invstd / M * (M * gy - gbeta - xhat * ggamma)

(docs/batchnorm-backward.md derives gx step by step from the forward formulas.)

The NumPy twins below are the formula as array expressions: each line is one or two passes over
x with a temporary array. The numba versions make one thread handle one channel and read each
value two or three times in all, accumulating the sums in float64. They let LLVM reorder the sums
(fastmath 'reassoc') so that the reductions use vector instructions: the result is the same
sum in another order, deterministic on a given machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def _channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v, ndim):
    """(C,) -> (1, C, 1, ...) so that it broadcasts over an input of ``ndim`` axes."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_forward_reference(x, gamma, beta, eps):
    """Returns y, xhat, mu, var, invstd (NumPy expressions, the formula line by line)."""
    axes, nd = _channel_axes(x), x.ndim
    mu = x.mean(axis=axes)
    xc = x - per_channel(mu, nd)
    var = (xc * xc).mean(axis=axes)
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = xc * per_channel(invstd, nd)
    y = xhat * per_channel(gamma, nd) + per_channel(beta, nd)
    return y, xhat, mu, var, invstd


def batch_norm_backward_reference(gy, xhat, gamma, invstd):
    """Returns gx, ggamma, gbeta (training mode: the batch statistics depend on x)."""
    axes, nd = _channel_axes(gy), gy.ndim
    M = gy.size // gy.shape[1]
    gbeta = gy.sum(axis=axes)
    ggamma = (gy * xhat).sum(axis=axes)
    gx = per_channel(gamma * invstd / M, nd) * (
        M * gy - per_channel(gbeta, nd) - xhat * per_channel(ggamma, nd))
    return gx, ggamma, gbeta


# Only for the loops that sum ("reassoc" lets LLVM use vector adds). The loops that compute
# y = (x - mu) * invstd * gamma + beta get no fastmath flags at all: the fused kernels of
# tinyconv/kernels/fused.py must round every element exactly as they do (reassociating or
# contracting into a fused multiply-add would change the last bit).
_FASTMATH = {"reassoc"}


# NOTE: the loops take one (n, c) row of L values at a time as its own 1-D view and index only
# the views: indexing x[n, c, i] and y[n, c, i] directly, LLVM cannot rule out that the arrays
# overlap and does not vectorize the loop (several times slower).


def channel_stats_reference(x, c):
    """(mean, biased variance) of channel c of x (N, C, L), in float64 (NumPy)."""
    values = x[:, c, :].astype(np.float64)
    m = values.mean()
    return m, ((values - m) ** 2).mean()


@njit(cache=True, fastmath=_FASTMATH)
def channel_stats(x, c):
    """Fast :func:`channel_stats_reference`: two passes over the channel's rows, summing in
    float64. Called once per channel by _stats_loops (tinyconv/kernels/fused.py has the same
    sums for a convolution's output in its GEMM's layout)."""
    N, L = x.shape[0], x.shape[2]
    M = N * L
    total = 0.0
    for n in range(N):
        row = x[n, c]
        for i in range(L):
            total += row[i]
    m = total / M
    sq = 0.0
    for n in range(N):
        row = x[n, c]
        for i in range(L):
            d = row[i] - m
            sq += d * d
    return m, sq / M


@njit(cache=True, parallel=True)
def _stats_loops(x, eps, mu, var, invstd):
    for c in prange(mu.size):
        m, v = channel_stats(x, c)
        mu[c], var[c], invstd[c] = m, v, 1.0 / np.sqrt(v + eps)


@njit(cache=True, parallel=True)  # no fastmath: no sums here, and the fused kernel must match
def _normalize_loops(x, mu, invstd, gamma, beta, y, xhat):
    N, C, L = x.shape
    for c in prange(C):
        m, s, g, b = mu[c], invstd[c], gamma[c], beta[c]
        for n in range(N):
            row, h_row, y_row = x[n, c], xhat[n, c], y[n, c]
            for i in range(L):
                h = (row[i] - m) * s
                h_row[i] = h
                y_row[i] = h * g + b


@njit(cache=True, parallel=True, fastmath=_FASTMATH)
def _backward_loops(gy, xhat, gamma, invstd, gx, ggamma, gbeta):
    N, C, L = gy.shape
    M = N * L
    for c in prange(C):
        sum_g = 0.0
        sum_gx = 0.0
        for n in range(N):
            g_row, h_row = gy[n, c], xhat[n, c]
            for i in range(L):
                sum_g += g_row[i]
                sum_gx += g_row[i] * h_row[i]
        gbeta[c], ggamma[c] = sum_g, sum_gx
        scale = gamma[c] * invstd[c] / M
        for n in range(N):
            g_row, h_row, out = gy[n, c], xhat[n, c], gx[n, c]
            for i in range(L):
                out[i] = scale * (M * g_row[i] - sum_g - h_row[i] * sum_gx)


def batch_norm_eval_reference(x, scale, shift):
    """Evaluation mode, statistics fixed: y = x * scale + shift per channel (NumPy)."""
    return x * per_channel(scale, x.ndim) + per_channel(shift, x.ndim)


@njit(cache=True, parallel=True)
def _eval_loops(x, scale, shift, y):
    N, C, L = x.shape
    for p in prange(N * C):  # one pass over x instead of NumPy's two and a temporary
        n, c = p // C, p % C
        s, t = scale[c], shift[c]
        row, out = x[n, c], y[n, c]
        for i in range(L):
            out[i] = row[i] * s + t


def _as_ncl(a):
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def batch_norm_stats_reference(x, eps):
    """Batch statistics of each channel of x (N, C, ...): (mu, var, invstd) in x's dtype, the
    sums in float64 (NumPy)."""
    axes = _channel_axes(x)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=axes)
    var = ((x64 - per_channel(mu, x.ndim)) ** 2).mean(axis=axes)
    dt = x.dtype
    return mu.astype(dt), var.astype(dt), (1.0 / np.sqrt(var + eps)).astype(dt)


def batch_norm_stats(x, eps):
    """Fast :func:`batch_norm_stats_reference`: (mu, var, invstd) of each channel, in x's
    dtype."""
    x3 = _as_ncl(x)
    C, dt = x.shape[1], x.dtype
    mu, var, invstd = np.empty(C, dt), np.empty(C, dt), np.empty(C, dt)
    _stats_loops(x3, dt.type(eps), mu, var, invstd)
    return mu, var, invstd


def batch_norm_forward(x, gamma, beta, eps):
    """Fast version of :func:`batch_norm_forward_reference` (same return values)."""
    x3 = _as_ncl(x)
    dt = x.dtype
    mu, var, invstd = batch_norm_stats(x3, eps)
    y, xhat = np.empty(x3.shape, dt), np.empty(x3.shape, dt)
    _normalize_loops(x3, mu, invstd, _vector(gamma, dt), _vector(beta, dt), y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), mu, var, invstd


def batch_norm_eval(x, scale, shift):
    """Fast version of :func:`batch_norm_eval_reference`."""
    x3 = _as_ncl(x)
    y = np.empty(x3.shape, x.dtype)
    _eval_loops(x3, _vector(scale, x.dtype), _vector(shift, x.dtype), y)
    return y.reshape(x.shape)


def batch_norm_backward(gy, xhat, gamma, invstd):
    """Fast version of :func:`batch_norm_backward_reference` (same return values)."""
    gy3 = _as_ncl(gy)
    C, dt = gy.shape[1], gy.dtype
    gx = np.empty(gy3.shape, dt)
    ggamma, gbeta = np.empty(C, dt), np.empty(C, dt)
    _backward_loops(gy3, _as_ncl(xhat), _vector(gamma, dt), _vector(invstd, dt), gx, ggamma,
                    gbeta)
    return gx.reshape(gy.shape), ggamma, gbeta


def _vector(a, dtype):
    """A per-channel vector as the kernels take it: contiguous, in the data's dtype. (numba
    compiles a kernel once per layout of its arguments: a strided gamma would cost a compile of
    its own, seconds, for the same loops.)"""
    return np.ascontiguousarray(a, dtype=dtype)
