"""The Functions that in-place changes are recorded with.

An in-place op on a tensor that is part of a graph (``y.mul_(0.5)``, ``y[0] = 5``) is recorded
as PyTorch does: the tensor keeps its memory, which now holds the new value, and gets a new
``grad_fn`` whose input is the old value. Most in-place ops are recorded as their out-of-place
twin (``mul_`` as ``Mul``); the ones here have no such twin:

    fill(a, v)               out = v everywhere             ga = 0
    copy_from(a, src)        out = src (broadcast, cast)    ga = 0, gsrc = gy summed to src
    set_item(a, v, index)    out = a, out[index] = v        ga = gy, ga[index] = 0;  gv = gy[index]
    set_view(base, v, view)  out = base, view(out) = v      the same, through a view function
    view_of(base, view)      out = view(base)               gbase = 0, view(gbase) = gy

``set_view`` and ``view_of`` handle an in-place op on a view (``y[0].mul_(2)``): the view's
base gets the new values written into the viewed part, and the view becomes a view of that.
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction


class Fill(ArrayFunction):
    @staticmethod
    def forward(ctx, a, value):
        return np.full_like(a, value)

    @staticmethod
    def backward(ctx, gy):
        return np.zeros_like(gy)


class CopyFrom(ArrayFunction):
    @staticmethod
    def forward(ctx, a, src):
        return np.broadcast_to(src, a.shape).astype(a.dtype)

    @staticmethod
    def backward(ctx, gy):
        return np.zeros_like(gy), gy  # the engine sums gy back to src's shape


class SetItem(ArrayFunction):
    @staticmethod
    def forward(ctx, a, value, index):
        ctx.index = index
        ctx.value_shape = np.shape(value)
        out = a.copy()
        out[index] = value
        return out

    @staticmethod
    def backward(ctx, gy):
        ga = gy.copy()
        ga[ctx.index] = 0
        gv = np.asarray(gy[ctx.index])
        # value was broadcast into the indexed part: sum its gradient back to value's shape
        extra = gv.ndim - len(ctx.value_shape)
        if extra > 0:
            gv = gv.sum(axis=tuple(range(extra)))
        return ga, gv


class SetView(ArrayFunction):
    @staticmethod
    def forward(ctx, base, value, view):
        ctx.view = view
        out = base.copy()
        view(out)[...] = value
        return out

    @staticmethod
    def backward(ctx, gy):
        gbase = gy.copy()
        ctx.view(gbase)[...] = 0
        return gbase, np.array(ctx.view(gy))


class ViewOf(ArrayFunction):
    @staticmethod
    def forward(ctx, base, view):
        ctx.view, ctx.shape = view, base.shape
        return view(base)

    @staticmethod
    def backward(ctx, gy):
        gbase = np.zeros(ctx.shape, dtype=gy.dtype)
        ctx.view(gbase)[...] = gy
        return gbase
