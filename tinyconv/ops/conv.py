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

And one that changes the order of the sums (equal to float rounding, not bit for bit):

* a stride-1 convolution with little work per output value (first layers, K = C*KH*KW of
  9..75, and small layers like the CNN's 6x12x12 -> 6, k5; :func:`_uses_direct`) goes by
  direct loops (tinyconv/kernels/direct.py), with no column matrix and no layout move: forward
  reads x and writes y in its final layout, bias included (also the channel-major Y of
  :func:`gemm_channel_major`, so fused and unfused stay bit-identical); backward gets gW by
  direct dot products and gx as the direct convolution of gy with the turned filters
  (:func:`_input_grad_direct`), each where it pays (measured). The CNN's training step
  at batch 64 (2 cores): 2.2 ms instead of 3.7. ``DIRECT = False`` (or
  ``TINYCONV_DIRECT_CONV=0`` in the environment) turns it off;
* a 3x3, stride-1 convolution with many channels on a large enough image (ResNet-18's 3x3
  layers at 56x56, 28x28 and 14x14; :func:`uses_winograd`) goes by Winograd's F(2x2, 3x3)
  (tinyconv/ops/winograd.py, docs/winograd.md): forward (also under no_grad, and the
  channel-major Y of :func:`gemm_channel_major`, so fused and unfused stay bit-identical) and
  the input gradient; the weight gradient stays on im2col. ``WINOGRAD = False`` (or
  ``TINYCONV_WINOGRAD=0``) turns it off.
"""

from __future__ import annotations

import numpy as np

from tinyconv._utils import _pair, env_choice
from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.conv import col2im, conv_out_size, im2col, to_batch_major, to_channel_major
from tinyconv.kernels.direct import (
    conv2d_direct,
    conv2d_direct_weight_grad,
    direct_applies,
    direct_work,
)
from tinyconv.ops.winograd import winograd_applies, winograd_conv2d, winograd_conv2d_input_grad

CHUNK_ELEMENTS = 1 << 20  # cols entries per chunk (4 MB in float32), see "Chunks" below
SMALL_K = 32  # first layers with receptive fields up to this long: see _weight_grad_t
#: forward by direct loops where they pay (see _uses_direct); False: always im2col + GEMM
DIRECT = env_choice("TINYCONV_DIRECT_CONV") == "1"
DIRECT_WORK_MAX = 3000  # multiply-adds per output value up to which the direct loops win
GX_DIRECT_MAX_K = 160  # and receptive-field length up to which they win for gx (see there)
# gW: below this receptive-field length the GEMMs stay faster (1x28x28 -> 32, k3 p1 at batch 64:
# per-sample GEMMs 0.39 ms, direct 0.66; from K = 25 on direct wins: 1x28x28 -> 6, k5 0.28 / 0.22,
# 6x12x12 -> 6, k5 0.42 / 0.18, 3x32x32 -> 64, k3 p1 4.1 / 2.3)
GW_DIRECT_MIN_K = 16
#: Winograd F(2x2, 3x3) where it pays (see uses_winograd); False: never
WINOGRAD = env_choice("TINYCONV_WINOGRAD") == "1"
WINOGRAD_MIN_CHANNELS = 64  # in- and output channels, each at least; and with fewer than
WINOGRAD_SMALL_CHANNELS = 128  # this many, an output of at least WINOGRAD_SMALL_MIN_SIDE a side
WINOGRAD_SMALL_MIN_SIDE = 28
WINOGRAD_MIN_TILES = 256  # 2x2 output tiles of the whole batch (the GEMMs' long side), at least
WINOGRAD_MIN_WORK = 1 << 16  # and channels * tiles, at least


class Conv2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        geometry = (W.shape[2], W.shape[3], stride, padding, dilation)  # kh, kw, ...
        if ctx.recording:  # backward rebuilds each chunk's cols from x
            ctx.save_for_backward(x, W)
            ctx.geometry = geometry
        if _uses_direct(x.shape, W.shape, stride, padding, dilation):  # speed case, see below
            return conv2d_direct(x, W, b, padding, dilation)
        if uses_winograd(x.shape, W.shape, stride, padding, dilation):  # speed case, see below
            return winograd_conv2d(x, W, b, padding)
        y = np.empty((x.shape[0], W.shape[0]) + output_size(x.shape, W.shape, *geometry[2:]),
                     dtype=np.result_type(x, W))  # (N, OC, OH, OW)
        for n in chunks(x.shape[0], W, y.shape[2] * y.shape[3]):  # see "Chunks" below
            cols = im2col(x[n], *geometry)  # (K, P) of this chunk
            _gemm_into(y[n], W, cols, b)  # y = W2 @ cols + b, in the batch's layout
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
    # speed cases first (direct loops, see _uses_direct); the GEMMs below do what they leave
    gx = _input_grad_direct(gY, x.shape, W, geometry) if need_x else None
    if need_x and gx is None:
        gx = _input_grad_winograd(gY, x.shape, W, geometry)
    # (gW by the loops only where gx needs no cols: else the cols built for gx serve gW too)
    direct_w = (need_w and (gx is not None or not need_x) and W[0].size >= GW_DIRECT_MIN_K
                and _uses_direct(x.shape, W.shape, *geometry[2:]))
    gW = conv2d_direct_weight_grad(gY.reshape(OC, N, L), x, W.shape[2:], *geometry[3:]) \
        if direct_w else None
    cols_w, cols_x = need_w and not direct_w, need_x and gx is None
    gWT = np.zeros(W2.shape[::-1], dtype=gY.dtype) if cols_w else None  # gW as (K, OC)
    if cols_x:
        gx = np.empty(x.shape, dtype=gY.dtype)
    for n in chunks(N, W, L) if cols_w or cols_x else ():  # (gb alone needs no cols)
        cols, gYn = im2col(x[n], *geometry), gY[:, n.start * L:n.stop * L]
        # gW = gY · colsᵀ, summed over the chunks                   (OC, K) -> (OC, C, KH, KW)
        if cols_w:
            gWT += _weight_grad_t(gYn, cols, n.stop - n.start, _is_first_layer(need, W))
        # gx = col2im(W2ᵀ · gY)                                      (K, P) -> (N, C, H, W)
        if cols_x:
            gx[n] = col2im(W2.T @ gYn, gx[n].shape, *geometry)
    # gb = sum of gy over batch and positions                   (OC,): given
    if cols_w:
        gW = np.ascontiguousarray(gWT.T).reshape(W.shape)
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


def _uses_direct(x_shape, W_shape, stride, padding, dilation):
    """Forward by the direct loops of tinyconv/kernels/direct.py: when ``DIRECT`` is on, the
    geometry is one they compute (stride 1) and they spend at most ``DIRECT_WORK_MAX``
    multiply-adds per output value. Measured at batch 64 on 2 cores, im2col + GEMM / direct (ms):
    1x28x28 -> 6 k5 0.61 / 0.31, 6x12x12 -> 6 k5 0.61 / 0.36, 3x32x32 -> 6 k5 1.9 / 1.0,
    3x32x32 -> 64 k3 p1 5.1 / 2.9, 3x32x32 -> 32 k5 p2 3.8 / 2.4 (work 180..2700 per value);
    6x14x14 -> 16 k5 0.71 / 1.15, 8x12x12 -> 16 k5 0.63 / 0.83, 16x14x14 -> 32 k3 p1
    1.3 / 1.6, 32x14x14 -> 64 k3 p1 3.7 / 5.3 (work 4,600..24,000)."""
    return (DIRECT and direct_applies(x_shape, W_shape, stride, padding, dilation)
            and direct_work(x_shape, W_shape, padding, dilation) <= DIRECT_WORK_MAX)


def uses_winograd(x_shape, W_shape, stride, padding, dilation):
    """Forward by Winograd F(2x2, 3x3) (tinyconv/ops/winograd.py): when ``WINOGRAD`` is on, the
    geometry is one it computes (3x3, stride 1, dilation 1, padding 0..2) and it pays. With
    ch = min(C, OC) and T the 2x2 output tiles of the whole batch (the 16 GEMMs are
    (OC, C) @ (C, T)): ch >= 64; ch >= 128 unless the output is at least 28x28; T >= 256; and
    ch * T >= 2**16. Fitted to im2col / Winograd measured on 2 cores (docs/winograd.md, "When it
    pays", benchmarks/winograd.py; forward and input gradient): ResNet-18's 64x56x56, 128x28x28
    and 256x14x14 layers win at batch 8 and 32 (1.3-2.4x); 512x7x7 wins at batch 32 (1.2-1.3x)
    and ties at batch 8 (0.96-1.10: 128 tiles make short GEMMs, and a 7x7 output wastes 15 of
    every 64 tile outputs); 128x14x14 -> 128 (a scratch run) 1.1x at batch 8, 1.4x at 32. The
    seed networks' layers stay on im2col: 32 channels, or 64 at 14x14, which won on the machine
    of these runs (1.1-1.7x) but lost on an earlier one with faster BLAS kernels (0.8x).

    The rule depends on the batch: a caller that splits a batch into chunks of samples must ask
    it of the whole batch and hand Winograd the whole batch (its own chunks, as in
    Conv2d.forward, so that the GEMMs and their sums are the same; tinyconv/ops/fused.py)."""
    if not (WINOGRAD and winograd_applies(x_shape, W_shape, stride, padding, dilation)):
        return False
    OH, OW = output_size(x_shape, W_shape, _pair(stride), _pair(padding), _pair(dilation))
    ch = min(W_shape[0], W_shape[1])
    tiles = x_shape[0] * ((OH + 1) // 2) * ((OW + 1) // 2)
    return (ch >= WINOGRAD_MIN_CHANNELS
            and (ch >= WINOGRAD_SMALL_CHANNELS or min(OH, OW) >= WINOGRAD_SMALL_MIN_SIDE)
            and tiles >= WINOGRAD_MIN_TILES and ch * tiles >= WINOGRAD_MIN_WORK)


def _input_grad_winograd(gY, x_shape, W, geometry):
    """gx by Winograd, or None where it does not pay: with stride 1 the input gradient is the
    convolution of gy with the turned filters (see :func:`_input_grad_direct`), a 3x3 one with
    padding 2 - P, OC input and C output channels; it goes by Winograd where
    :func:`uses_winograd` says so of that convolution. gY (OC, N*OH*OW) is read in place."""
    _, _, stride, padding, dilation = geometry
    OC, C = W.shape[:2]
    N = x_shape[0]
    OH, OW = output_size(x_shape, W.shape, stride, padding, dilation)
    turned_padding = tuple(2 - p for p in _pair(padding))
    if not (winograd_applies(x_shape, W.shape, stride, padding, dilation) and uses_winograd(
            (N, OC, OH, OW), (C, OC, 3, 3), stride, turned_padding, dilation)):
        return None
    gy = gY.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3)  # a view: (N, OC, OH, OW)
    return winograd_conv2d_input_grad(gy, W, padding)


def _input_grad_direct(gY, x_shape, W, geometry):
    """gx by the direct loops, or None where they do not pay.

    With stride 1, y[oh] = sum over i of W[i] * x[oh - P + i*D] sends gy[oh] * W[i] to x[h],
    h = oh - P + i*D; so gx[h] = sum over i' of W[KH-1-i'] * gy[h - P' + i'*D], P' = D*(KH-1) - P:
    a stride-1 convolution of gy with the filters turned by 180 degrees, their in- and output
    channels swapped, padding P' (>= 0 needed) and the same dilation; its output has H rows.

    Where it pays (measured at batch 64 on 2 cores, GEMM + col2im / direct, ms): beyond
    :func:`_uses_direct`, this convolution must have at least 2 output channels (the loops
    compute channels in pairs; 1x28x28 -> 6, k5: 0.47 / 0.72) and a receptive field OC*KH*KW
    of at most ``GX_DIRECT_MAX_K`` (3x32x32 -> 64, k3 p1, 576: 4.1 / 7.0); the CNN's 6x12x12
    -> 6, k5 (150): 0.62 / 0.51, LeNet's 3x32x32 -> 6, k5 (150): 5.3 / 1.8.
    """
    _, _, stride, (ph, pw), (dh, dw) = geometry
    OC, C, KH, KW = W.shape
    N = x_shape[0]
    OH, OW = output_size(x_shape, W.shape, stride, (ph, pw), (dh, dw))
    padding = (dh * (KH - 1) - ph, dw * (KW - 1) - pw)
    turned_shape = (C, OC, KH, KW)
    if (min(padding) < 0 or C < 2 or OC * KH * KW > GX_DIRECT_MAX_K
            or not _uses_direct((N, OC, OH, OW), turned_shape, stride, padding, (dh, dw))):
        return None
    gy = np.ascontiguousarray(gY.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3))
    turned = np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return conv2d_direct(gy, turned, None, padding, (dh, dw))


def gemm_channel_major(x, W, stride, padding, dilation):
    """Y = W2 @ im2col(x) as (OC, N, OH, OW), the GEMM's own layout (channel-major; no bias
    added), for the fused ops of tinyconv/ops/fused.py to read in place of y; by chunks."""
    if _uses_direct(x.shape, W.shape, stride, padding, dilation):  # as Conv2d.forward does
        return conv2d_direct(x, W, None, padding, dilation, channel_major=True)
    if uses_winograd(x.shape, W.shape, stride, padding, dilation):  # as Conv2d.forward does
        return winograd_conv2d(x, W, None, padding, channel_major=True)
    OC, _, kh, kw = W.shape
    OH, OW = output_size(x.shape, W.shape, stride, padding, dilation)
    L = OH * OW
    Y = np.empty((OC, x.shape[0] * L), dtype=np.result_type(x, W))
    for n in chunks(x.shape[0], W, L):  # the chunk's columns of Y: a strided view
        np.matmul(W.reshape(OC, -1), im2col(x[n], kh, kw, stride, padding, dilation),
                  out=Y[:, n.start * L:n.stop * L])
    return Y.reshape(OC, x.shape[0], OH, OW)
