"""Softmax, log-softmax and the negative log-likelihood loss.

Along the class axis (dim), with m = max_j x_j subtracted first so that exp never overflows
(the log-sum-exp trick; it cancels exactly)::

    log_softmax: y_i = x_i - m - log(sum_j exp(x_j - m))     gx = gy - exp(y) * sum_j gy_j
    softmax:     s_i = exp(x_i - m) / sum_j exp(x_j - m)     gx = s * (gy - sum_j gy_j * s_j)

NLL loss of log-probabilities lp (N, C) against class indices t (N,), weights w (C,)::

    loss_n = -w[t_n] * lp[n, t_n]          (0 where t_n == ignore_index)
    'mean': sum_n loss_n / sum_n w[t_n]    'sum': sum_n loss_n    'none': loss_n
    backward: glp[n, t_n] = -w[t_n] * gy_n (divided by sum_n w[t_n] for 'mean'), 0 elsewhere

cross_entropy(x, t) = nll_loss(log_softmax(x, 1), t); through these two backward passes its
gradient is (softmax(x) - onehot(t)) / N for 'mean' (derived in docs/cross-entropy.md).
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.softmax import log_softmax_rows, log_softmax_rows_backward


class LogSoftmax(ArrayFunction):
    @staticmethod
    def forward(ctx, x, dim):
        if dim == x.ndim - 1:  # a classifier's logits: the same formula, a row at a time
            y = log_softmax_rows(x)  # (tinyconv/kernels/softmax.py: NumPy is slow on short rows)
        else:
            shifted = x - x.max(axis=dim, keepdims=True)
            y = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        if ctx.dim == y.ndim - 1:
            return log_softmax_rows_backward(gy, y)
        return gy - np.exp(y) * gy.sum(axis=ctx.dim, keepdims=True)


class Softmax(ArrayFunction):
    @staticmethod
    def forward(ctx, x, dim):
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        s = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(s)
        ctx.dim = dim
        return s

    @staticmethod
    def backward(ctx, gy):
        (s,) = ctx.saved_tensors
        return s * (gy - (gy * s).sum(axis=ctx.dim, keepdims=True))


class NLLLoss(ArrayFunction):
    """Input (N, C) log-probabilities, target (N,) int64; the caller flattens higher dims."""

    @staticmethod
    def forward(ctx, lp, target, weight, ignore_index, reduction):
        N = lp.shape[0]
        keep = target != ignore_index
        t = np.where(keep, target, 0)  # a safe index for ignored rows (their weight is 0)
        w = (weight[t] if weight is not None else np.ones(N, dtype=lp.dtype)) * keep
        w = w.astype(lp.dtype, copy=False)
        picked = lp[np.arange(N), t]
        losses = -w * picked
        ctx.t, ctx.w, ctx.shape, ctx.reduction = t, w, lp.shape, reduction
        if reduction == "none":
            return losses
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=lp.dtype)
        ctx.total = w.sum()
        # NOTE: all targets ignored gives 0/0 = nan, as torch does.
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(losses.sum() / ctx.total, dtype=lp.dtype)

    @staticmethod
    def backward(ctx, gy):
        N = ctx.shape[0]
        g = np.zeros(ctx.shape, dtype=gy.dtype)
        scale = -ctx.w * gy  # gy is a scalar for 'mean'/'sum', (N,) for 'none'
        if ctx.reduction == "mean":
            scale = scale / ctx.total
        g[np.arange(N), ctx.t] = scale
        return g, None
