"""2-D convolution as im2col + one GEMM (see ``tinyconv/kernels/conv.py`` and docs/).

Shapes: x (N, C, H, W), weight W (OC, C, KH, KW), bias b (OC,), output y (N, OC, OH, OW);
K = C*KH*KW is the length of one receptive field, P = N*OH*OW the number of them.

    forward:   cols = im2col(x)                       (P, K)
               y    = cols @ W.reshape(OC, K).T + b   (P, OC) -> (N, OC, OH, OW)
    backward:  gY   = gy as (P, OC)
               gW   = gY.T @ cols                     (OC, K)  -> (OC, C, KH, KW)
               gb   = gY summed over P                (OC,)
               gx   = col2im(gY @ W.reshape(OC, K))   (P, K)   -> (N, C, H, W)
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import Function
from tinyconv.kernels.conv import col2im, conv_out_size, im2col


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        N, C, H, Wd = x.shape
        OC, _, kh, kw = W.shape
        OH = conv_out_size(H, kh, stride[0], padding[0], dilation[0])
        OW = conv_out_size(Wd, kw, stride[1], padding[1], dilation[1])
        cols = im2col(x, kh, kw, stride, padding, dilation)  # (P, K)
        W2 = W.reshape(OC, -1)  # (OC, K)
        y = cols @ W2.T  # (P, OC)
        if b is not None:
            y += b
        ctx.save_for_backward(cols, W2)
        ctx.x_shape, ctx.w_shape = x.shape, W.shape
        ctx.geometry = (kh, kw, stride, padding, dilation)
        # NOTE: the GEMM yields channels last (N, OH, OW, OC); torch's layout is channels first.
        return np.ascontiguousarray(y.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2))

    @staticmethod
    def backward(ctx, gy):
        cols, W2 = ctx.saved_tensors
        N, OC, OH, OW = gy.shape
        gY = gy.transpose(0, 2, 3, 1).reshape(-1, OC)  # (P, OC), rows ordered (n, oh, ow)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gW = (gY.T @ cols).reshape(ctx.w_shape) if need_w else None  # (OC, K)
        gb = gY.sum(axis=0) if need_b else None  # (OC,)
        gx = None
        if need_x:
            kh, kw, stride, padding, dilation = ctx.geometry
            gx = col2im(gY @ W2, ctx.x_shape, kh, kw, stride, padding, dilation)  # (N, C, H, W)
        return gx, gW, gb
