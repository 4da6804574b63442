"""Sine and cosine, elementwise; each one's derivative is (up to sign) the other.

    sin(a)   ga = gy * cos(a)
    cos(a)   ga = -gy * sin(a)
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction


def _floating(a):
    """Integer and bool inputs give float32, torch's default dtype (NumPy would give float64)."""
    return a if a.dtype.kind in "fc" else a.astype(np.float32)


class Sin(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        a = _floating(a)
        ctx.save_for_backward(a)
        return np.sin(a)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return gy * np.cos(a)


class Cos(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        a = _floating(a)
        ctx.save_for_backward(a)
        return np.cos(a)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return -gy * np.sin(a)
