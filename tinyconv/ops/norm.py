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

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.batchnorm import (
    batch_norm_backward, batch_norm_eval, batch_norm_forward, per_channel,
)


def affine_or_default(C, dtype, gamma, beta):
    """gamma and beta, or ones and zeros when the batch norm (of C channels) has no affine
    parameters."""
    return (gamma if gamma is not None else np.ones(C, dtype=dtype),
            beta if beta is not None else np.zeros(C, dtype=dtype))


def update_running_stats(running_mean, running_var, mu, var, M, momentum):
    """In place (they are the module's buffers); var is biased, running_var is not."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * (M / (M - 1))


def eval_scale_shift(dtype, gamma, beta, running_mean, running_var, eps):
    """Constant statistics: y = x * scale + shift per channel. Returns (scale, shift, invstd)."""
    invstd = (1.0 / np.sqrt(running_var + eps)).astype(dtype, copy=False)
    scale = gamma * invstd
    return scale, beta - running_mean * scale, invstd


class BatchNorm(ArrayFunction):
    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        gamma_, beta_ = affine_or_default(x.shape[1], x.dtype, gamma, beta)
        if training:
            y, xhat, mu, var, invstd = batch_norm_forward(x, gamma_, beta_, eps)
            update_running_stats(running_mean, running_var, mu, var, x.size // x.shape[1],
                                 momentum)
            ctx.save_for_backward(xhat, invstd, gamma_)
        else:
            scale, shift, invstd = eval_scale_shift(x.dtype, gamma_, beta_, running_mean,
                                                    running_var, eps)
            y = batch_norm_eval(x, scale, shift)
            if ctx.recording:
                ctx.save_for_backward(scale, x, running_mean.copy(), invstd)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx, gy):
        if ctx.training:
            xhat, invstd, gamma = ctx.saved_tensors
            gx, ggamma, gbeta = batch_norm_backward(gy, xhat, gamma, invstd)
        else:
            scale, x, mu, invstd = ctx.saved_tensors
            nd, axes = gy.ndim, (0,) + tuple(range(2, gy.ndim))
            gx = gy * per_channel(scale, nd)
            gbeta = gy.sum(axis=axes) if ctx.needs_input_grad[2] else None
            ggamma = None
            if ctx.needs_input_grad[1]:  # needs xhat, recomputed only when asked for
                xhat = (x - per_channel(mu, nd)) * per_channel(invstd, nd)
                ggamma = (gy * xhat).sum(axis=axes)
        return (gx if ctx.needs_input_grad[0] else None), ggamma, gbeta


class Dropout(ArrayFunction):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, gy):
        return gy * ctx.mask
