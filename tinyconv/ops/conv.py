"""2-D convolution as im2col + one GEMM (see ``tinyconv/kernels/conv.py`` and docs/).

When no backward will follow (evaluation under ``no_grad``), the batch goes through in chunks of
samples instead: each chunk's cols (a few MB) stays in the cache for its GEMM, and nothing is
kept for backward; at batch 1000 the whole cols matrix of FashionCNN's second layer would be
225 MB.

Shapes: x (N, C, H, W), weight W (OC, C, KH, KW), bias b (OC,), output y (N, OC, OH, OW);
K = C*KH*KW is the length of one receptive field, P = N*OH*OW the number of them.

    forward:   cols = im2col(x)                       (K, P)
               Y    = W.reshape(OC, K) @ cols         (OC, P)  -> y (N, OC, OH, OW), + b
    backward:  gY   = gy as (OC, P)
               gW   = gY @ cols.T                     (OC, K)  -> (OC, C, KH, KW)
               gb   = gy summed over N, OH, OW        (OC,)
               gx   = col2im(W.reshape(OC, K).T @ gY) (K, P)   -> (N, C, H, W)
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import Function
from tinyconv.kernels.conv import (
    col2im, conv_out_size, im2col, to_batch_major, to_channel_major,
)


CHUNK_ELEMENTS = 1 << 20  # cols entries per chunk when nothing is saved for backward (4 MB f32)
SMALL_K = 32  # receptive fields up to this length take backward's per-sample route (see there)


def _gemm_into(y, W2, cols, b):
    """y (n, OC, OH*OW) = W2 @ cols (+ b): the GEMM's (OC, n, OH*OW) result moved into y's
    layout, whole rows of OH*OW at a time, adding the bias on the way."""
    n, OC, L = y.shape
    to_batch_major((W2 @ cols).reshape(OC, n, L), b, out=y)


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        N, C, H, Wd = x.shape
        OC, _, kh, kw = W.shape
        OH = conv_out_size(H, kh, stride[0], padding[0], dilation[0])
        OW = conv_out_size(Wd, kw, stride[1], padding[1], dilation[1])
        W2 = W.reshape(OC, -1)  # (OC, K)
        y = np.empty((N, OC, OH * OW), dtype=np.result_type(x, W))
        if not ctx.recording:
            step = max(1, CHUNK_ELEMENTS // (W2.shape[1] * OH * OW))
            for n0 in range(0, N, step):
                cols = im2col(x[n0:n0 + step], kh, kw, stride, padding, dilation)
                _gemm_into(y[n0:n0 + step], W2, cols, b)
            return y.reshape(N, OC, OH, OW)
        cols = im2col(x, kh, kw, stride, padding, dilation)  # (K, P), columns ordered (n, oh, ow)
        _gemm_into(y, W2, cols, b)
        ctx.save_for_backward(cols, W2)
        ctx.x_shape, ctx.w_shape = x.shape, W.shape
        ctx.geometry = (kh, kw, stride, padding, dilation)
        return y.reshape(N, OC, OH, OW)

    @staticmethod
    def backward(ctx, gy):
        cols, W2 = ctx.saved_tensors
        N, OC, OH, OW = gy.shape
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        K, L = W2.shape[1], OH * OW
        if not need_x and K <= SMALL_K:
            # A first layer (its input needs no gradient) with a short receptive field: one
            # small GEMM per sample straight from gy's layout, gW = sum_n gy[n] @ cols[:, n].T,
            # costs less than moving gy into the GEMM's layout (FashionCNN's first layer:
            # 0.6 instead of 1.4 ms).
            gy3 = gy.reshape(N, OC, L)
            gW = np.matmul(gy3, cols.reshape(K, N, L).transpose(1, 2, 0)).sum(axis=0)
            gb = gy3.sum(axis=(0, 2), dtype=np.float64).astype(gy.dtype)
            return (None, gW.reshape(ctx.w_shape) if need_w else None,
                    gb if need_b else None)
        # (N, OC, OH*OW) -> (OC, N*OH*OW), the layout of Y in forward; gb on the way
        gY, gb = to_channel_major(gy.reshape(N, OC, L))
        gY = gY.reshape(OC, -1)
        gW = (gY @ cols.T).reshape(ctx.w_shape) if need_w else None  # (OC, K)
        gb = gb if need_b else None  # (OC,): gy summed over N, OH, OW
        gx = None
        if need_x:
            kh, kw, stride, padding, dilation = ctx.geometry
            gx = col2im(W2.T @ gY, ctx.x_shape, kh, kw, stride, padding, dilation)  # (N, C, H, W)
        return gx, gW, gb
