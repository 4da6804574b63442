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

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.conv import col2im, conv_out_size, im2col, to_batch_major, to_channel_major

CHUNK_ELEMENTS = 1 << 20  # cols entries per chunk when nothing is saved for backward (4 MB f32)
SMALL_K = 32  # first layers with receptive fields up to this long: _weight_grad_per_sample


def _gemm_into(y, W2, cols, b):
    """y (n, OC, OH*OW) = W2 @ cols (+ b): the GEMM's (OC, n, OH*OW) result moved into y's
    layout, whole rows of OH*OW at a time, adding the bias on the way."""
    n, OC, L = y.shape
    to_batch_major((W2 @ cols).reshape(OC, n, L), b, out=y)


def _weight_grad_per_sample(gy, cols):
    """gW = sum over samples n of gy[n] @ cols[:, n].T, for gy (N, OC, L) (any strides).

    For a first layer with a short receptive field (K = 9 for one grey channel and 3x3 kernels)
    the one GEMM gY @ cols.T has a tiny (OC, K) result and an inner dimension of N*L, a shape
    BLAS handles poorly (FashionCNN's first layer: 0.8 ms); N small GEMMs, one per sample, take
    0.3 ms, and read gy in whichever layout it comes.
    """
    K, N = cols.shape[0], gy.shape[0]
    return np.matmul(gy, cols.reshape(K, N, -1).transpose(1, 2, 0)).sum(axis=0)


def output_size(x_shape, w_shape, stride, padding, dilation):
    """(OH, OW) of a convolution of an input of ``x_shape`` with weights of ``w_shape``."""
    return tuple(conv_out_size(x_shape[2 + a], w_shape[2 + a], stride[a], padding[a],
                               dilation[a]) for a in (0, 1))


def chunk_size(W, L):
    """Samples per chunk when nothing is saved for backward (see the module docstring)."""
    return max(1, CHUNK_ELEMENTS // (W[0].size * L))


def gemm_channel_major(x, W, stride, padding, dilation):
    """(Y, cols): Y = W.reshape(OC, K) @ im2col(x) as (OC, N, OH, OW), the GEMM's own layout
    (channel-major; no bias added), for the fused ops of tinyconv/ops/fused.py to read in place
    of the batch-major output."""
    OC, _, kh, kw = W.shape
    OH, OW = output_size(x.shape, W.shape, stride, padding, dilation)
    cols = im2col(x, kh, kw, stride, padding, dilation)
    return (W.reshape(OC, -1) @ cols).reshape(OC, x.shape[0], OH, OW), cols


def backward_from_channel_major(gY, gb, cols, W, x_shape, geometry, need):
    """(gx, gW, gb) of a convolution, given the gradient of its output in the GEMM's layout
    gY (OC, N*OH*OW) and its channel sums gb; ``need``: which of the three are wanted."""
    need_x, need_w, need_b = need[:3]
    OC = W.shape[0]
    W2 = W.reshape(OC, -1)
    gY = gY.reshape(OC, -1)
    if need_w and not need_x and W2.shape[1] <= SMALL_K:
        gW = _weight_grad_per_sample(gY.reshape(OC, x_shape[0], -1).transpose(1, 0, 2), cols)
    else:
        gW = gY @ cols.T if need_w else None
    gx = None
    if need_x:
        kh, kw, stride, padding, dilation = geometry
        gx = col2im(W2.T @ gY, x_shape, kh, kw, stride, padding, dilation)  # (N, C, H, W)
    return (gx, gW.reshape(W.shape) if need_w else None, gb if need_b else None)


class Conv2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        N, C, H, Wd = x.shape
        OC, _, kh, kw = W.shape
        OH, OW = output_size(x.shape, W.shape, stride, padding, dilation)
        W2 = W.reshape(OC, -1)  # (OC, K)
        y = np.empty((N, OC, OH * OW), dtype=np.result_type(x, W))
        if not ctx.recording:
            step = chunk_size(W, OH * OW)
            for n0 in range(0, N, step):
                cols = im2col(x[n0:n0 + step], kh, kw, stride, padding, dilation)
                _gemm_into(y[n0:n0 + step], W2, cols, b)
            return y.reshape(N, OC, OH, OW)
        cols = im2col(x, kh, kw, stride, padding, dilation)  # (K, P), columns ordered (n, oh, ow)
        _gemm_into(y, W2, cols, b)
        ctx.save_for_backward(cols, W)
        ctx.x_shape = x.shape
        ctx.geometry = (kh, kw, stride, padding, dilation)
        return y.reshape(N, OC, OH, OW)

    @staticmethod
    def backward(ctx, gy):
        cols, W = ctx.saved_tensors
        N, OC, OH, OW = gy.shape
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        if not need_x and W[0].size <= SMALL_K:
            # A first layer (its input needs no gradient) with a short receptive field: the
            # weight gradient straight from gy's layout (see _weight_grad_per_sample) costs less
            # than moving gy into the GEMM's layout first.
            gy3 = gy.reshape(N, OC, -1)
            gW = _weight_grad_per_sample(gy3, cols).reshape(W.shape) if need_w else None
            gb = gy3.sum(axis=(0, 2), dtype=np.float64).astype(gy.dtype) if need_b else None
            return None, gW, gb
        # (N, OC, OH*OW) -> (OC, N*OH*OW), the layout of Y in forward; gb on the way
        gY, gb = to_channel_major(gy.reshape(N, OC, OH * OW))
        return backward_from_channel_major(gY, gb, cols, W, ctx.x_shape, ctx.geometry,
                                           ctx.needs_input_grad)
