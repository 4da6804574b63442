"""Operations that move elements without changing them; each backward moves them back.

    reshape(a, s)      ga = gy.reshape(a.shape)
    permute(a, p)      ga = gy.transpose(inverse of p)
    a[index]           ga = zeros, then ga[index] += gy     (repeated indices accumulate)
    cat(xs, dim)       g_i = slice i of gy along dim
    stack(xs, dim)     g_i = gy taken at position i of dim
    expand(a, s)       ga = gy summed over the expanded axes (autograd.unbroadcast)
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction


class Reshape(ArrayFunction):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.in_shape)


class Permute(ArrayFunction):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return a.transpose(dims)

    @staticmethod
    def backward(ctx, gy):
        return gy.transpose(np.argsort(ctx.dims))


class Expand(ArrayFunction):
    @staticmethod
    def forward(ctx, a, shape):
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, gy):
        return gy  # unbroadcast() in the engine sums over the expanded axes


class Contiguous(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        return np.ascontiguousarray(a)

    @staticmethod
    def backward(ctx, gy):
        return gy


class GetItem(ArrayFunction):
    @staticmethod
    def forward(ctx, a, index):
        ctx.in_shape, ctx.in_dtype, ctx.index = a.shape, a.dtype, index
        out = a[index]
        if not isinstance(out, np.ndarray):  # one element: a 0-d view, as torch's x[i, j]
            out = a[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]
        return out

    @staticmethod
    def backward(ctx, gy):
        ga = np.zeros(ctx.in_shape, dtype=gy.dtype)
        np.add.at(ga, ctx.index, gy)
        return ga


class Cat(ArrayFunction):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        ctx.bounds = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, gy):
        return (None,) + tuple(np.split(gy, ctx.bounds, axis=ctx.dim))


class Stack(ArrayFunction):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        return np.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, gy):
        return (None,) + tuple(np.moveaxis(gy, ctx.dim, 0))
