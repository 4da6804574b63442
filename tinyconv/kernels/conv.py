"""im2col and col2im: turning a convolution into one matrix product.

Notation: input x (N, C, H, W); kernel size KH x KW; stride SH, SW; padding PH, PW; dilation
DH, DW. The output size along one axis is (see :func:`conv_out_size`)::

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1

im2col copies every receptive field into one row of a matrix::

    cols[(n*OH + oh)*OW + ow, (c*KH + kh)*KW + kw] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]

    input (N, C, H, W)  ->  cols (N*OH*OW, C*KH*KW)

with 0 where the index falls into the padding. A convolution with weights W (OC, C, KH, KW) is
then a single GEMM: ``y = cols @ W.reshape(OC, -1).T`` gives (N*OH*OW, OC).

col2im is the adjoint (transpose) of im2col: the same loop nest with ``+=`` in place of ``=``,
adding every entry of a column matrix back to the input position it was copied from. Pixels that
belong to several receptive fields receive the sum of their gradients::

    x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW] += cols[(n*OH + oh)*OW + ow, (c*KH + kh)*KW + kw]

Each kernel has a ``*_reference`` twin: the plain loop nest of the formula above, kept for
reading and as the tests' oracle. The fast versions are the same loops compiled by numba,
arranged so that the writes run along contiguous memory and split across threads by sample.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                  dilation: int = 1, ceil_mode: bool = False) -> int:
    """Number of kernel positions along an axis: floor((size + 2P - D(K-1) - 1) / S) + 1.

    With ``ceil_mode`` (pooling only) the last, partial window counts too, provided it starts
    inside the input or its left padding (torch's rule).
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


# ---------------------------------------------------------------------------------------------
# reference twins: the formula, loop for loop


def im2col_reference(x, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Plain-Python im2col (slow; for reading and for tests)."""
    N, C, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH = conv_out_size(H, kh, sh, ph, dh)
    OW = conv_out_size(W, kw, sw, pw, dw)
    cols = np.zeros((N * OH * OW, C * kh * kw), dtype=x.dtype)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    for i in range(kh):
                        for j in range(kw):
                            h = oh * sh - ph + i * dh
                            w = ow * sw - pw + j * dw
                            if 0 <= h < H and 0 <= w < W:
                                cols[(n * OH + oh) * OW + ow, (c * kh + i) * kw + j] = x[n, c, h, w]
    return cols


def col2im_reference(cols, x_shape, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Plain-Python col2im: the im2col loops with ``+=`` (slow; for reading and for tests)."""
    N, C, H, W = x_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH = conv_out_size(H, kh, sh, ph, dh)
    OW = conv_out_size(W, kw, sw, pw, dw)
    x = np.zeros(x_shape, dtype=cols.dtype)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    for i in range(kh):
                        for j in range(kw):
                            h = oh * sh - ph + i * dh
                            w = ow * sw - pw + j * dw
                            if 0 <= h < H and 0 <= w < W:
                                x[n, c, h, w] += cols[(n * OH + oh) * OW + ow, (c * kh + i) * kw + j]
    return x


# ---------------------------------------------------------------------------------------------
# fast versions: numba-compiled, parallel over samples


@njit(cache=True, parallel=True)
def _im2col_loops(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW):
    N, C, H, W = x.shape
    for n in prange(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                for c in range(C):
                    for i in range(kh):
                        h = oh * sh - ph + i * dh
                        for j in range(kw):
                            w = ow * sw - pw + j * dw
                            col = (c * kh + i) * kw + j
                            if 0 <= h < H and 0 <= w < W:
                                cols[row, col] = x[n, c, h, w]
                            else:
                                cols[row, col] = 0


@njit(cache=True, parallel=True)
def _col2im_loops(cols, x, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW):
    N, C, H, W = x.shape
    # NOTE: parallel over n only: different samples never write the same pixel, so no races.
    for n in prange(N):
        for oh in range(OH):
            for ow in range(OW):
                row = (n * OH + oh) * OW + ow
                for c in range(C):
                    for i in range(kh):
                        h = oh * sh - ph + i * dh
                        if h < 0 or h >= H:
                            continue
                        for j in range(kw):
                            w = ow * sw - pw + j * dw
                            if 0 <= w < W:
                                x[n, c, h, w] += cols[row, (c * kh + i) * kw + j]


def im2col(x, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1), out_size=None):
    """(N, C, H, W) -> (N*OH*OW, C*KH*KW); see the module docstring.

    ``out_size=(OH, OW)`` overrides the usual output size (average pooling in ceil mode has
    windows that run past the padding; those cells read as 0 like padding).
    """
    N, C, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = out_size or (conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw))
    cols = np.empty((N * OH * OW, C * kh * kw), dtype=x.dtype)
    _im2col_loops(np.ascontiguousarray(x), cols, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW)
    return cols


def col2im(cols, x_shape, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
           out_size=None):
    """(N*OH*OW, C*KH*KW) -> (N, C, H, W), summing overlaps; the adjoint of :func:`im2col`."""
    N, C, H, W = x_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = out_size or (conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw))
    x = np.zeros(x_shape, dtype=cols.dtype)
    _col2im_loops(np.ascontiguousarray(cols), x, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW)
    return x
