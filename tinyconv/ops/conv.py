"""2-D convolution as im2col + one matrix product (GEMM).

Shapes: x (N, C, H, W), weight W (OC, C, KH, KW), bias b (OC,), output y (N, OC, OH, OW);
K = C*KH*KW is the length of one receptive field, P = N*OH*OW the number of them, and
W2 = W.reshape(OC, K) the weights as a matrix. im2col and col2im: tinyconv/kernels/conv.py.

    forward:   cols = im2col(x)                        (K, P), columns ordered (n, oh, ow)
               Y    = W2 @ cols                        (OC, P)  -> y (N, OC, OH, OW), + b
    backward:  gY   = gy as (OC, P)                    (the layout of Y)
               gb   = sum of gy over N, OH, OW         (OC,)
               gW   = gY @ cols.T                      (OC, K)  -> (OC, C, KH, KW)
               gx   = col2im(W2.T @ gY)                (K, P)   -> (N, C, H, W)

docs/conv2d-forward.md and docs/conv2d-backward.md derive both passes; the loops by the
definition are ``conv2d_naive`` in tinyconv/kernels/naive.py.

The batch goes through in chunks of a few samples (see "Chunks" below: the column matrix of a
whole batch would not stay in the cache), and backward rebuilds each chunk's cols from x; the
formulas above hold chunk by chunk, gW being the sum of the chunks' products. Two more speed
cases, in named helpers after the op (they change no number):

* a first layer (its input needs no gradient) with a short receptive field: gW by one small
  GEMM per sample (:func:`_weight_grad_t`);
* the fused ops of tinyconv/ops/fused.py (see tinyconv/nn/fusion.py) read Y in the GEMM's own
  channel-major layout (:func:`gemm_channel_major`) and hand back gY in it
  (:func:`gradients`).
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.conv import col2im, conv_out_size, im2col, to_batch_major, to_channel_major

CHUNK_ELEMENTS = 1 << 20  # cols entries per chunk (4 MB in float32), see "Chunks" below
SMALL_K = 32  # first layers with receptive fields up to this long: see _weight_grad_t


class Conv2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        geometry = (W.shape[2], W.shape[3], stride, padding, dilation)  # kh, kw, ...
        y = np.empty((x.shape[0], W.shape[0]) + output_size(x.shape, W.shape, *geometry[2:]),
                     dtype=np.result_type(x, W))  # (N, OC, OH, OW)
        for n in chunks(x.shape[0], W, y.shape[2] * y.shape[3]):  # see "Chunks" below
            cols = im2col(x[n], *geometry)  # (K, P) of this chunk
            _gemm_into(y[n], W, cols, b)  # y = W2 @ cols + b, in the batch's layout
        if ctx.recording:  # backward rebuilds each chunk's cols from x
            ctx.save_for_backward(x, W)
            ctx.geometry = geometry
        return y

    @staticmethod
    def backward(ctx, gy):
        x, W = ctx.saved_tensors
        N, OC = gy.shape[:2]
        # gy (N, OC, OH, OW) -> gY (OC, N*OH*OW), the layout of Y in forward; the same pass over
        # gy sums it for gb
        gY, gb = to_channel_major(gy.reshape(N, OC, -1))
        return gradients(gY, gb, x, W, ctx.geometry, ctx.needs_input_grad)


def gradients(gY, gb, x, W, geometry, need):
    """(gx, gW, gb) of a convolution of x from gY (OC, N*OH*OW), the output gradient in the
    GEMM's layout, and gb (OC,), its sum over each channel; ``need``: which of the three are
    wanted. Chunk by chunk of samples, as the forward pass: each chunk's cols is rebuilt from x.

    Conv2d and the fused ops of tinyconv/ops/fused.py both end here.
    """
    need_x, need_w, need_b = need[:3]
    OC, N = W.shape[0], x.shape[0]
    L = gY.size // (OC * N)  # OH*OW
    gY = gY.reshape(OC, N * L)
    W2 = W.reshape(OC, -1)
    gWT = np.zeros(W2.shape[::-1], dtype=gY.dtype) if need_w else None  # gW as (K, OC)
    gx = np.empty(x.shape, dtype=gY.dtype) if need_x else None
    for n in chunks(N, W, L) if need_w or need_x else ():  # (gb alone needs no cols)
        cols, gYn = im2col(x[n], *geometry), gY[:, n.start * L:n.stop * L]
        # gW = gY · colsᵀ, summed over the chunks                   (OC, K) -> (OC, C, KH, KW)
        if need_w:
            gWT += _weight_grad_t(gYn, cols, n.stop - n.start, _is_first_layer(need, W))
        # gx = col2im(W2ᵀ · gY)                                      (K, P) -> (N, C, H, W)
        if need_x:
            gx[n] = col2im(W2.T @ gYn, gx[n].shape, *geometry)
    # gb = sum of gy over batch and positions                   (OC,): given
    gW = np.ascontiguousarray(gWT.T).reshape(W.shape) if need_w else None
    return gx, gW, gb if need_b else None


# ---------------------------------------------------------------------------------------------
# Chunks. The column matrix of a whole batch is large (58 MB for DeepFashionCNN's 32x28x28 -> 32
# layer at batch 64): written once and read back from main memory, moving it costs more than the
# GEMM's arithmetic. So the batch goes through in chunks of a few samples, each chunk's cols
# (about CHUNK_ELEMENTS entries) staying in the cache between im2col and its GEMM; forward keeps
# x, not cols, and backward rebuilds each chunk's cols (cheap: in the cache). The sums are the
# same, only split: gW is the sum of the chunks' gY · colsᵀ.


def chunks(N, W, L):
    """Slices of ``range(N)``, samples per slice chosen so that one slice's cols (K, n*L) has
    about CHUNK_ELEMENTS entries (at least one sample)."""
    step = chunk_size(W, L)
    return [slice(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


# ---------------------------------------------------------------------------------------------
# speed cases and helpers


def output_size(x_shape, w_shape, stride, padding, dilation):
    """(OH, OW) of a convolution of an input of ``x_shape`` with weights of ``w_shape``."""
    return tuple(conv_out_size(x_shape[2 + a], w_shape[2 + a], stride[a], padding[a],
                               dilation[a]) for a in (0, 1))


def _gemm_into(y, W, cols, b):
    """y (n, OC, OH, OW) = W2 @ cols + b: the GEMM's (OC, n*OH*OW) result moved into y's layout,
    whole rows of OH*OW at a time, adding the bias on the way."""
    n, OC = y.shape[:2]
    to_batch_major((W.reshape(OC, -1) @ cols).reshape(OC, n, -1), b, out=y.reshape(n, OC, -1))


def chunk_size(W, L):
    """Samples per chunk (see "Chunks" above)."""
    return max(1, CHUNK_ELEMENTS // (W[0].size * L))


def _weight_grad_t(gY, cols, n, first_layer):
    """gWᵀ = cols @ gYᵀ (K, OC) of one chunk of n samples; gY (OC, n*L) may be a strided view.

    Transposed because OpenBLAS splits this form's work between its threads far better when the
    inner dimension n*OH*OW is long and the result small (ResNet-18's layer shapes at batch 8,
    2 threads: 25-120 ms per product as gY @ cols.T, 14-24 ms so).

    For a first layer with a short receptive field (see :func:`_is_first_layer`) the product has
    a tiny (K, OC) result and a long inner dimension, a shape BLAS handles poorly (FashionCNN's
    first layer: 0.8 ms); n small products, one per sample, summed, take 0.3 ms.
    """
    if not first_layer:
        return cols @ gY.T
    K, OC = cols.shape[0], gY.shape[0]
    per_sample = np.matmul(cols.reshape(K, n, -1).transpose(1, 0, 2),  # (n, K, L)
                           gY.reshape(OC, n, -1).transpose(1, 2, 0))  # (n, L, OC)
    return per_sample.sum(axis=0)


def _is_first_layer(need, W):
    """The input needs no gradient (a first layer) and the receptive field is short (K = 9 for
    one grey channel and 3x3 kernels): then gW goes by per-sample GEMMs."""
    return not need[0] and W[0].size <= SMALL_K


def gemm_channel_major(x, W, stride, padding, dilation):
    """Y = W2 @ im2col(x) as (OC, N, OH, OW), the GEMM's own layout (channel-major; no bias
    added), for the fused ops of tinyconv/ops/fused.py to read in place of y; by chunks."""
    OC, _, kh, kw = W.shape
    OH, OW = output_size(x.shape, W.shape, stride, padding, dilation)
    L = OH * OW
    Y = np.empty((OC, x.shape[0] * L), dtype=np.result_type(x, W))
    for n in chunks(x.shape[0], W, L):  # the chunk's columns of Y: a strided view
        np.matmul(W.reshape(OC, -1), im2col(x[n], kh, kw, stride, padding, dilation),
                  out=Y[:, n.start * L:n.stop * L])
    return Y.reshape(OC, x.shape[0], OH, OW)
