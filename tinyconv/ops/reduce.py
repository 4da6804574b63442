"""Reductions over one, several or all axes.

    sum:  y = sum_i a_i          ga_i = gy                (broadcast back over the reduced axes)
    mean: y = (1/n) sum_i a_i    ga_i = gy / n
    max:  y = a_k, k = argmax    ga_k = gy, 0 elsewhere   (along a dim: the index torch returns)
          over all elements, ties share the gradient evenly, as torch does.
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction


def _expand_back(gy, in_shape, axis, keepdim):
    """Re-insert the reduced axes of ``gy`` (size 1) so it broadcasts against the input."""
    if axis is None:
        return np.broadcast_to(gy.reshape((1,) * len(in_shape)), in_shape)
    if not keepdim:
        gy = np.expand_dims(gy, axis)
    return np.broadcast_to(gy, in_shape)


class Sum(ArrayFunction):
    @staticmethod
    def forward(ctx, a, axis=None, keepdim=False):
        ctx.in_shape, ctx.axis, ctx.keepdim = a.shape, axis, keepdim
        return np.asarray(a.sum(axis=axis, keepdims=keepdim))

    @staticmethod
    def backward(ctx, gy):
        return _expand_back(gy, ctx.in_shape, ctx.axis, ctx.keepdim)


class Mean(ArrayFunction):
    @staticmethod
    def forward(ctx, a, axis=None, keepdim=False):
        ctx.in_shape, ctx.axis, ctx.keepdim = a.shape, axis, keepdim
        ctx.count = a.size if axis is None else int(np.prod([a.shape[i] for i in axis]))
        return np.asarray(a.mean(axis=axis, keepdims=keepdim), dtype=a.dtype)

    @staticmethod
    def backward(ctx, gy):
        return _expand_back(gy / ctx.count, ctx.in_shape, ctx.axis, ctx.keepdim)


class MaxAll(ArrayFunction):
    """Maximum over all elements (``x.max()``)."""

    @staticmethod
    def forward(ctx, a):
        y = np.asarray(a.max())
        ctx.save_for_backward(a == y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (is_max,) = ctx.saved_tensors
        return is_max * (gy / is_max.sum())


class MaxDim(ArrayFunction):
    """Maximum along one dim (``x.max(dim)``); the gradient goes to the returned index.

    ``sign=-1`` turns it into a minimum (min(a) = -max(-a) without a second kernel).
    """

    @staticmethod
    def forward(ctx, a, dim, keepdim=False, sign=1):
        idx = np.argmax(a if sign == 1 else -a, axis=dim, keepdims=True)
        y = np.take_along_axis(a, idx, axis=dim)
        ctx.in_shape, ctx.dim, ctx.idx = a.shape, dim, idx
        if not keepdim:
            y = y.squeeze(dim)
        ctx.keepdim = keepdim
        return y

    @staticmethod
    def backward(ctx, gy):
        ga = np.zeros(ctx.in_shape, dtype=gy.dtype)
        if not ctx.keepdim:
            gy = np.expand_dims(gy, ctx.dim)
        np.put_along_axis(ga, ctx.idx, gy, axis=ctx.dim)
        return ga
