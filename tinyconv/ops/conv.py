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

Three speed cases, each in a named helper after the op (they change no number):

* evaluation (no backward will follow): :func:`_forward_in_chunks` runs the batch in chunks of
  samples, so each chunk's cols stays in the cache and nothing is kept;
* a first layer (its input needs no gradient) with a short receptive field:
  :func:`_first_layer_backward` computes gW by one small GEMM per sample;
* the fused ops of tinyconv/ops/fused.py (see tinyconv/nn/fusion.py) read Y in the GEMM's own
  channel-major layout (:func:`gemm_channel_major`) and hand back gY in it
  (:func:`gradients`).
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.conv import col2im, conv_out_size, im2col, to_batch_major, to_channel_major

CHUNK_ELEMENTS = 1 << 20  # cols entries per chunk when nothing is saved for backward (4 MB f32)
SMALL_K = 32  # first layers with receptive fields up to this long: _first_layer_backward


class Conv2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        geometry = (W.shape[2], W.shape[3], stride, padding, dilation)  # kh, kw, ...
        y = np.empty((x.shape[0], W.shape[0]) + output_size(x.shape, W.shape, *geometry[2:]),
                     dtype=np.result_type(x, W))  # (N, OC, OH, OW)
        if not ctx.recording:  # no backward will follow
            return _forward_in_chunks(x, W, b, geometry, y)
        cols = im2col(x, *geometry)  # (K, P)
        _gemm_into(y, W, cols, b)  # y = W2 @ cols + b, in the batch's layout
        ctx.save_for_backward(cols, W)
        ctx.x_shape, ctx.geometry = x.shape, geometry
        return y

    @staticmethod
    def backward(ctx, gy):
        cols, W = ctx.saved_tensors
        if _is_first_layer(ctx.needs_input_grad, W):
            return _first_layer_backward(gy, cols, W, ctx.needs_input_grad)
        N, OC = gy.shape[:2]
        # gy (N, OC, OH, OW) -> gY (OC, N*OH*OW), the layout of Y in forward; the same pass over
        # gy sums it for gb
        gY, gb = to_channel_major(gy.reshape(N, OC, -1))
        return gradients(gY, gb, cols, W, ctx.x_shape, ctx.geometry, ctx.needs_input_grad)


def gradients(gY, gb, cols, W, x_shape, geometry, need):
    """(gx, gW, gb) of a convolution from gY (OC, N*OH*OW), the output gradient in the GEMM's
    layout, and gb (OC,), its sum over each channel; ``need``: which of the three are wanted.

    Conv2d and the fused ops of tinyconv/ops/fused.py both end here.
    """
    need_x, need_w, need_b = need[:3]
    OC, N = W.shape[0], x_shape[0]
    gY = gY.reshape(OC, -1)
    # gb = sum of gy over batch and positions                   (OC,): given
    gb = gb if need_b else None
    # gW = gY · colsᵀ                                            (OC, K) -> (OC, C, KH, KW)
    # (for a fused first layer by per-sample GEMMs: the same sum, see _weight_grad_per_sample)
    gW = None
    if need_w:
        gW = (_weight_grad_per_sample(gY, cols, N) if _is_first_layer(need, W)
              else _weight_grad(gY, cols))
        gW = gW.reshape(W.shape)
    # gx = col2im(W2ᵀ · gY)                                      (K, P) -> (N, C, H, W)
    gx = col2im(W.reshape(OC, -1).T @ gY, x_shape, *geometry) if need_x else None
    return gx, gW, gb


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
    """Samples per chunk when nothing is saved for backward (see :func:`_forward_in_chunks`)."""
    return max(1, CHUNK_ELEMENTS // (W[0].size * L))


def _forward_in_chunks(x, W, b, geometry, y):
    """The forward pass into y when no backward will follow: the batch in chunks of samples.

    Each chunk's cols (a few MB) stays in the cache for its GEMM, and nothing is kept for
    backward; at batch 1000 the whole cols matrix of FashionCNN's second layer would be 225 MB.
    """
    step = chunk_size(W, y.shape[2] * y.shape[3])
    for n0 in range(0, x.shape[0], step):
        _gemm_into(y[n0:n0 + step], W, im2col(x[n0:n0 + step], *geometry), b)
    return y


def _weight_grad(gY, cols):
    """gW = gY @ cols.T, computed as (cols @ gY.T).T: the same sum, but OpenBLAS splits this
    form's work between its threads far better when the inner dimension N*OH*OW is long and the
    result small (measured for ResNet-18's layer shapes at batch 8 with 2 threads: 25-120 ms per
    product before, 14-24 ms after; the gain shows in benchmarks/resnet.py)."""
    # C order again (one small copy): the optimizers' fused kernels and the engine's hand-over
    # of gradients without a copy both want contiguous arrays
    return np.ascontiguousarray((cols @ gY.T).T)


def _is_first_layer(need, W):
    """The input needs no gradient (a first layer) and the receptive field is short (K = 9 for
    one grey channel and 3x3 kernels): then gW goes by per-sample GEMMs."""
    return not need[0] and W[0].size <= SMALL_K


def _weight_grad_per_sample(gy, cols, N):
    """gW = sum over samples n of gy[n] @ cols[:, n].T, for gy as (N, OC, L) or (OC, N*L).

    For a first layer with a short receptive field the one GEMM gY @ cols.T has a tiny (OC, K)
    result and an inner dimension of N*L, a shape BLAS handles poorly (FashionCNN's first
    layer: 0.8 ms); N small GEMMs, one per sample, take 0.3 ms, and read gy in whichever layout
    it comes.
    """
    K = cols.shape[0]
    if gy.ndim == 2:  # (OC, N*L), the GEMM's layout -> (N, OC, L), a view
        gy = gy.reshape(gy.shape[0], N, -1).transpose(1, 0, 2)
    return np.matmul(gy, cols.reshape(K, N, -1).transpose(1, 2, 0)).sum(axis=0)


def _first_layer_backward(gy, cols, W, need):
    """Conv2d.backward for a first layer (see :func:`_is_first_layer`): gW and gb straight from
    gy's (N, OC, OH, OW) layout, which costs less than moving gy into the GEMM's layout first."""
    N, OC = gy.shape[:2]
    gy3 = gy.reshape(N, OC, -1)
    gW = _weight_grad_per_sample(gy3, cols, N).reshape(W.shape) if need[1] else None
    gb = gy3.sum(axis=(0, 2), dtype=np.float64).astype(gy.dtype) if need[2] else None
    return None, gW, gb


def gemm_channel_major(x, W, stride, padding, dilation):
    """(Y, cols): Y = W2 @ im2col(x) as (OC, N, OH, OW), the GEMM's own layout (channel-major;
    no bias added), for the fused ops of tinyconv/ops/fused.py to read in place of y."""
    OC, _, kh, kw = W.shape
    OH, OW = output_size(x.shape, W.shape, stride, padding, dilation)
    cols = im2col(x, kh, kw, stride, padding, dilation)
    return (W.reshape(OC, -1) @ cols).reshape(OC, x.shape[0], OH, OW), cols
