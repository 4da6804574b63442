"""Dropout: multiply by a mask of 0 and 1/(1-p), drawn by the caller (nn/functional.py), so
that the expected value is unchanged::

    y = x * mask,    gx = gy * mask
"""

from __future__ import annotations

from tinyconv.autograd import ArrayFunction


class Dropout(ArrayFunction):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, gy):
        return gy * ctx.mask
