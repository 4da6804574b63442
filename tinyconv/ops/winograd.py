"""3x3, stride-1 convolution by Winograd's F(2x2, 3x3), on arrays: an alternative to im2col.

    U = G g Gᵀ                  filters, (16, OC, C)          winograd_filter_transform
    V = Bᵀ d B                  input tiles, (16, C, T)       winograd_input_transform
    M[xi] = U[xi] @ V[xi]       16 GEMMs, (16, OC, T)         np.matmul, batched
    y = Aᵀ M A + b              output tiles -> (N, OC, OH, OW)  winograd_output_transform

The transforms and the method: tinyconv/kernels/winograd.py and docs/winograd.md. Large
batches go in chunks of samples (:func:`chunk_samples`), which bounds the memory V and M take
(V is 4 values per input pixel, 16 per 2x2 tile). Chunks small enough to keep V and M in the
cache (1-16 samples of the seed networks' layers) were measured too and were not faster on the
2-core test machine: the extra kernel and BLAS calls cost more than the cache saved.

Entry points (arrays in, arrays out; no autograd here):

* :func:`winograd_applies`: whether a convolution's geometry is one this file computes;
* :func:`winograd_conv2d`: y = conv2d(x, W, b, padding=padding), stride 1, dilation 1;
* :func:`winograd_conv2d_input_grad`: gx of such a convolution, itself a Winograd convolution:
  the output gradient convolved with the filters turned by 180 degrees, their in- and output
  channels swapped, padding 2 - P (the weight gradient is not a 3x3 convolution of this kind;
  it stays on im2col).
"""

from __future__ import annotations

import numpy as np

from tinyconv._utils import _pair
from tinyconv.kernels.winograd import (
    tile_counts,
    winograd_filter_transform,
    winograd_filter_transform_reference,
    winograd_input_transform,
    winograd_input_transform_reference,
    winograd_output_transform,
    winograd_output_transform_reference,
)

# V and M entries per chunk of samples (see chunk_samples): 2**23 float32 values = 32 MB each
# (batch 64 of DeepFashionCNN's 32x28x28 layer is one chunk of 6.4 M)
CHUNK_ELEMENTS = 1 << 23


def winograd_applies(x_shape, W_shape, stride, padding, dilation):
    """True when the convolution of an input of ``x_shape`` (N, C, H, W) with weights of
    ``W_shape`` (OC, C, KH, KW) is one :func:`winograd_conv2d` computes: 3x3 kernel, stride 1,
    dilation 1, padding 0, 1 or 2 on each axis (so that the input gradient is one too), matching
    channels and at least one output position. ``stride``, ``padding``, ``dilation``: ints or
    (height, width) pairs. Says nothing about speed (see docs/winograd.md, when it pays)."""
    if len(x_shape) != 4 or len(W_shape) != 4 or tuple(W_shape[2:]) != (3, 3):
        return False
    if x_shape[1] != W_shape[1] or _pair(stride) != (1, 1) or _pair(dilation) != (1, 1):
        return False
    ph, pw = _pair(padding)
    return (0 <= ph <= 2 and 0 <= pw <= 2 and x_shape[2] + 2 * ph >= 3
            and x_shape[3] + 2 * pw >= 3)


def _check(x, W, b, padding):
    """The padding as a pair, after checking the arguments (clear errors, naming them)."""
    padding = _pair(padding)
    if x.ndim != 4 or W.ndim != 4:
        raise ValueError(f"winograd_conv2d: x must be (N, C, H, W) and W (OC, C, 3, 3); got "
                         f"x of shape {x.shape}, W of shape {W.shape}")
    if not winograd_applies(x.shape, W.shape, 1, padding, 1):
        raise ValueError(
            f"winograd_conv2d: needs a 3x3 kernel W (OC, C, 3, 3) with C = x's channels, padding "
            f"0, 1 or 2 per axis and an input of at least 3x3 with it; got x of shape {x.shape}, "
            f"W of shape {W.shape}, padding {padding}")
    if b is not None and b.shape != (W.shape[0],):
        raise ValueError(f"winograd_conv2d: b must have shape ({W.shape[0]},), got {b.shape}")
    for name, a in (("x", x), ("W", W), ("b", b)):
        if a is not None and a.dtype not in (np.float32, np.float64):
            raise TypeError(f"winograd_conv2d: {name} must be float32 or float64, got {a.dtype}")
    return padding


def chunk_samples(C, OC, tiles_per_sample):
    """Samples per chunk: as many as keep V (16, C, T) and M (16, OC, T) of one chunk within
    ``CHUNK_ELEMENTS`` entries each, at least one."""
    return max(1, CHUNK_ELEMENTS // (16 * max(C, OC) * tiles_per_sample))


def winograd_conv2d(x, W, b=None, padding=1, chunk=None, channel_major=False):
    """y = conv2d(x, W, b, stride=1, padding=padding) by Winograd F(2x2, 3x3).

    x (N, C, H, W), W (OC, C, 3, 3), b (OC,) or None, float32 or float64; ``padding`` an int or
    (PH, PW) pair, each 0, 1 or 2 (see :func:`winograd_applies`). Returns y (N, OC, OH, OW) with
    OH = H + 2*PH - 2, OW = W + 2*PW - 2, in the result type of x and W; with ``channel_major``
    the same numbers as (OC, N, OH, OW) (the layout tinyconv/ops/conv.py's fused ops read).
    x may be a strided view (the input gradient passes gy in the GEMM's channel-major layout).
    ``chunk``: samples per chunk (default :func:`chunk_samples`).
    """
    ph, pw = _check(x, W, b, padding)
    dtype = np.result_type(x, W)
    x, W = x.astype(dtype, copy=False), W.astype(dtype, copy=False)
    N, C, H, Wd = x.shape
    OC = W.shape[0]
    OH, OW = H + 2 * ph - 2, Wd + 2 * pw - 2
    TH, TW = tile_counts(OH, OW)
    T = TH * TW
    U = winograd_filter_transform(W)  # (16, OC, C)
    if channel_major:
        y_cm = np.empty((OC, N, OH, OW), dtype=dtype)
        y = y_cm.transpose(1, 0, 2, 3)  # written through this (N, OC, OH, OW) view
    else:
        y = np.empty((N, OC, OH, OW), dtype=dtype)
    step = chunk or chunk_samples(C, OC, T)
    V_buf = np.empty(16 * C * min(step, N) * T, dtype=dtype)  # reused by every chunk
    M_buf = np.empty(16 * OC * min(step, N) * T, dtype=dtype)
    for n0 in range(0, N, step):
        k = min(step, N - n0)
        V = winograd_input_transform(x[n0:n0 + k], (ph, pw),
                                     out=V_buf[:16 * C * k * T].reshape(16, C, k * T))
        M = np.matmul(U, V, out=M_buf[:16 * OC * k * T].reshape(16, OC, k * T))
        winograd_output_transform(M, b, y[n0:n0 + k])
    return y_cm if channel_major else y


def winograd_conv2d_reference(x, W, b=None, padding=1, chunk=None):
    """:func:`winograd_conv2d` with the reference transforms, the whole batch at once (slow;
    for reading and for tests). ``chunk`` is ignored."""
    ph, pw = _check(x, W, b, padding)
    dtype = np.result_type(x, W)
    x, W = x.astype(dtype, copy=False), W.astype(dtype, copy=False)
    N, OC = x.shape[0], W.shape[0]
    U = winograd_filter_transform_reference(W)
    V = winograd_input_transform_reference(x, (ph, pw))
    M = U @ V  # the 16 GEMMs
    y = np.empty((N, OC, x.shape[2] + 2 * ph - 2, x.shape[3] + 2 * pw - 2), dtype=dtype)
    return winograd_output_transform_reference(M, b, y)


def _turned_filters(W):
    """W (OC, C, 3, 3) turned by 180 degrees, in- and output channels swapped: (C, OC, 3, 3)."""
    return np.ascontiguousarray(W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def winograd_conv2d_input_grad(gy, W, padding=1, chunk=None):
    """gx = dL/dx of ``winograd_conv2d(x, W, b, padding)`` given gy = dL/dy (N, OC, OH, OW).

    y[oh] = sum over i of W[i] * x[oh - P + i] sends gy[oh] * W[i] to x[h] with h = oh - P + i,
    so gx[h] = sum over i of W[i] * gy[h + P - i] = sum over i' of W[2 - i'] * gy[h - (2 - P) + i']:
    a convolution of gy with the turned filters and padding 2 - P (both axes; the channels sum
    the other way round, hence the swap). Its output has OH + 2*(2 - P) - 2 = H rows.
    """
    ph, pw = _pair(padding)
    if not (0 <= ph <= 2 and 0 <= pw <= 2):
        raise ValueError(f"winograd_conv2d_input_grad: padding must be 0, 1 or 2 per axis, got "
                         f"{(ph, pw)}")
    return winograd_conv2d(gy, _turned_filters(W), None, (2 - ph, 2 - pw), chunk)


def winograd_conv2d_input_grad_reference(gy, W, padding=1, chunk=None):
    """:func:`winograd_conv2d_input_grad` by :func:`winograd_conv2d_reference`."""
    ph, pw = _pair(padding)
    return winograd_conv2d_reference(gy, _turned_filters(W), None, (2 - ph, 2 - pw))
