"""Batch normalization and dropout.

Batch norm over channel axis 1 of x (N, C) or (N, C, H, W); statistics are taken over the other
axes, M = x.size / C values per channel::

    training:  mu = mean(x),  var = mean((x - mu)**2)     (biased, used to normalize)
               running_mean = (1 - m) * running_mean + m * mu
               running_var  = (1 - m) * running_var  + m * var * M / (M - 1)   (unbiased)
    eval:      mu, var = running_mean, running_var
    both:      xhat = (x - mu) / sqrt(var + eps),   y = gamma * xhat + beta

    backward (training; mu and var depend on x):
        gbeta  = sum(gy)       ggamma = sum(gy * xhat)
        gx     = gamma / (M * sqrt(var + eps)) * (M * gy - gbeta - xhat * ggamma)
    backward (eval; mu and var are constants):
        gx     = gy * gamma / sqrt(var + eps)

Dropout multiplies by a mask of 0 and 1/(1-p), so the expected value is unchanged:
y = x * mask, gx = gy * mask.
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import Function


def _per_channel(v, ndim):
    """(C,) -> (1, C, 1, ...) so that it broadcasts over x of ``ndim`` axes."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        axes = (0,) + tuple(range(2, x.ndim))
        M = x.size // x.shape[1]
        if training:
            mu = x.mean(axis=axes)
            xc = x - _per_channel(mu, x.ndim)
            var = (xc * xc).mean(axis=axes)
            if running_mean is not None:
                # In-place: these arrays are the module's buffers.
                running_mean *= 1 - momentum
                running_mean += momentum * mu
                running_var *= 1 - momentum
                running_var += momentum * var * (M / (M - 1))
        else:
            mu, var = running_mean, running_var
            xc = x - _per_channel(mu, x.ndim)
        invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
        xhat = xc * _per_channel(invstd, x.ndim)
        y = xhat * _per_channel(gamma, x.ndim) if gamma is not None else xhat.copy()
        if beta is not None:
            y += _per_channel(beta, x.ndim)
        ctx.save_for_backward(xhat, invstd, gamma)
        ctx.training, ctx.axes, ctx.M = training, axes, M
        return y

    @staticmethod
    def backward(ctx, gy):
        xhat, invstd, gamma = ctx.saved_tensors
        axes, M, nd = ctx.axes, ctx.M, gy.ndim
        gbeta = gy.sum(axis=axes)
        ggamma = (gy * xhat).sum(axis=axes)
        scale = invstd if gamma is None else gamma * invstd
        gx = None
        if ctx.needs_input_grad[0]:
            if ctx.training:
                gx = _per_channel(scale / M, nd) * (
                    M * gy - _per_channel(gbeta, nd) - xhat * _per_channel(ggamma, nd))
            else:
                gx = gy * _per_channel(scale, nd)
        return gx, ggamma, gbeta


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, gy):
        return gy * ctx.mask
