"""Matrix products.

    matmul: Y = A @ B           (..., n, k) @ (..., k, m) -> (..., n, m)
            gA = gY @ B^T       gB = A^T @ gY     (summed over broadcast batch axes)
    linear: Y = X @ W^T + b     X (N, in), W (out, in), b (out,) -> Y (N, out)
            gX = gY @ W         gW = gY^T @ X     gb = sum_N gY
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction, unbroadcast
from tinyconv.kernels.bias import add_bias_rows


class MatMul(ArrayFunction):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.asarray(np.matmul(a, b))

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        # Treat vectors as matrices (a row for A, a column for B), as matmul itself does.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # NOTE: restore the column axis before the row axis: for vector @ vector gy is 0-d and
        # has no axis -2 until the column axis exists.
        gy2 = gy
        if b.ndim == 1:
            gy2 = np.expand_dims(gy2, -1)
        if a.ndim == 1:
            gy2 = np.expand_dims(gy2, -2)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(gy2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ gy2, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(ArrayFunction):
    @staticmethod
    def forward(ctx, x, W, b=None):
        # Any leading axes are batch axes: fold them into one for a single GEMM.
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        y = x2 @ W.T  # (N, in) @ (in, out) -> (N, out)
        if b is not None:
            add_bias_rows(y, b)  # y += b (tinyconv/kernels/bias.py: NumPy is slow on short rows)
        need = ctx.needs_input_grad  # gW needs x, gx needs W: keep only those (as torch does)
        ctx.save_for_backward(x2 if need[1] else None, W if need[0] else None)
        ctx.x_shape, ctx.out_features = x.shape, W.shape[0]
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (W.shape[0],))

    @staticmethod
    def backward(ctx, gy):
        x2, W = ctx.saved_tensors
        gy2 = gy.reshape(-1, ctx.out_features)
        gx = (gy2 @ W).reshape(ctx.x_shape) if ctx.needs_input_grad[0] else None
        gW = gy2.T @ x2 if ctx.needs_input_grad[1] else None
        gb = gy2.sum(axis=0) if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2] else None
        return gx, gW, gb
