"""Pooling over windows of a (N, C, H, W) input.

    max:      y = max over the window          gx: gy sent to the arg-max (kernels/pool.py)
    average:  y = (sum over the window) / d    gx: gy / d spread over the window (col2im)
    adaptive: window i along H spans [floor(i*H/OH), ceil((i+1)*H/OH))

Average pooling reuses im2col: viewing x as (N*C, 1, H, W), each column of im2col is one
window, so the pooled value is the column sum divided by the window's divisor d.
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.conv import col2im, im2col
from tinyconv.kernels.pool import maxpool2d_backward, maxpool2d_forward


class MaxPool2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, out_size):
        y, idx = maxpool2d_forward(x, kernel[0], kernel[1], stride, padding, dilation, *out_size,
                                   indices=ctx.recording)
        ctx.idx, ctx.x_shape = idx, x.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        return maxpool2d_backward(gy, ctx.idx, ctx.x_shape)


def avg_pool_divisor(size, kernel, stride, padding, out, count_include_pad):
    """Divisor of each output position along one axis (torch's rule, ceil mode included).

    A window covers [start, start + kernel) clipped to the padded input [-P, size + P); without
    ``count_include_pad`` it is clipped to the real input [0, size) instead.
    """
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


class AvgPool2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out_size, divisor):
        N, C, H, W = x.shape
        kh, kw = kernel
        planes = x.reshape(N * C, 1, H, W)
        cols = im2col(planes, kh, kw, stride, padding, (1, 1), out_size)  # (kh*kw, N*C*OH*OW)
        y = cols.sum(axis=0).reshape(N, C, *out_size) / divisor  # divisor (OH, OW) broadcasts
        ctx.x_shape, ctx.geometry, ctx.divisor = x.shape, (kh, kw, stride, padding), divisor
        ctx.out_size = out_size
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, gy):
        N, C, H, W = ctx.x_shape
        kh, kw, stride, padding = ctx.geometry
        g = (gy / ctx.divisor).reshape(1, -1)  # one value per window
        gcols = np.broadcast_to(g, (kh * kw, g.shape[1]))  # ... copied to each cell of it
        gx = col2im(gcols, (N * C, 1, H, W), kh, kw, stride, padding, (1, 1), ctx.out_size)
        return gx.reshape(ctx.x_shape).astype(gy.dtype, copy=False)


def adaptive_bins(size, out):
    """[(start, end)] of each adaptive pooling window along one axis."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, out_size):
        N, C, H, W = x.shape
        rows, cols = adaptive_bins(H, out_size[0]), adaptive_bins(W, out_size[1])
        y = np.empty((N, C) + tuple(out_size), dtype=x.dtype)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        ctx.x_shape, ctx.bins = x.shape, (rows, cols)
        return y

    @staticmethod
    def backward(ctx, gy):
        gx = np.zeros(ctx.x_shape, dtype=gy.dtype)
        rows, cols = ctx.bins
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                area = (h1 - h0) * (w1 - w0)
                gx[:, :, h0:h1, w0:w1] += gy[:, :, i:i + 1, j:j + 1] / area
        return gx
