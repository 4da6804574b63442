"""im2col and col2im: turning a convolution into one matrix product.

Notation: input x (N, C, H, W); kernel size KH x KW; stride SH, SW; padding PH, PW; dilation
DH, DW. The output size along one axis is (see :func:`conv_out_size`)::

    OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1

im2col copies every receptive field into one *column* of a matrix (hence the name); row
r = (c, kh, kw) of that matrix holds, for every output position, the input pixel that kernel
weight W[:, c, kh, kw] multiplies::

    cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]

    input (N, C, H, W)  ->  cols (C*KH*KW, N*OH*OW)

with 0 where the index falls into the padding. A convolution with weights W (OC, C, KH, KW) is
then a single GEMM: ``W.reshape(OC, -1) @ cols`` gives (OC, N*OH*OW).

col2im is the adjoint (transpose) of im2col: the same loop nest with ``+=`` in place of ``=``,
adding every entry of a column matrix back to the input position it was copied from. Pixels that
belong to several receptive fields receive the sum of their gradients::

    x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW] +=
        cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow]

Each kernel has a ``*_reference`` twin: the plain loop nest of the formula above, kept for
reading and as the tests' oracle. The fast versions compute the same thing with the loops
arranged for speed: the innermost loop runs along ``ow``, where both the column row and the input
row are contiguous (for stride 1), over the range of ``ow`` that lands inside the input, so it has
no bounds test and compiles to vector instructions; the padding is filled separately.

The convolution by its definition, without im2col, is ``conv2d_naive`` in
``tinyconv/kernels/naive.py``; docs/conv2d-forward.md and docs/conv2d-backward.md derive the
forward and backward pass with a worked 4x4 example.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uintp

from tinyconv import _load
from tinyconv._threads import split_if

# Below these sizes (entries of the column matrix; elements moved) the kernels run on the calling
# thread alone (tinyconv/_threads.py, split_if). Measured on 2 cores, batch 64, serial / split:
# im2col of the 6x12x12 layer (614,400 entries) 0.18 / 0.13 ms, of 1x28x28 k5 (921,600)
# 0.18 / 0.14 ms; the layout moves of a (64, 6, 576) output (221,184) 0.02 / 0.07 ms and of
# 1M elements about even.
PARALLEL_MIN = 1 << 18
LAYOUT_PARALLEL_MIN = 1 << 20


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


def im2col_reference(x, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1), out_size=None):
    """Plain-Python im2col (slow; for reading and for tests). ``out_size``: see :func:`im2col`."""
    N, C, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = out_size or (conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw))
    cols = np.zeros((C * kh * kw, N * OH * OW), dtype=x.dtype)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    for i in range(kh):
                        for j in range(kw):
                            h = oh * sh - ph + i * dh
                            w = ow * sw - pw + j * dw
                            if 0 <= h < H and 0 <= w < W:
                                row, col = (c * kh + i) * kw + j, (n * OH + oh) * OW + ow
                                cols[row, col] = x[n, c, h, w]
    return cols


def col2im_reference(cols, x_shape, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                     out_size=None):
    """Plain-Python col2im: the im2col loops with ``+=`` (slow; for reading and for tests)."""
    N, C, H, W = x_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = out_size or (conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw))
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
                                row, col = (c * kh + i) * kw + j, (n * OH + oh) * OW + ow
                                x[n, c, h, w] += cols[row, col]
    return x


# ---------------------------------------------------------------------------------------------
# fast versions: numba-compiled, the same loops reordered and split across threads


def _valid_range(size, out, k, stride, pad, dil):
    """[lo, hi): the output positions o whose tap o*stride - pad + k*dil lies in [0, size)."""
    first = k * dil - pad  # input index for o = 0
    lo = 0 if first >= 0 else (-first + stride - 1) // stride
    hi = 0 if first >= size else min(out, (size - 1 - first) // stride + 1)
    return lo, max(lo, hi)


_valid_range_jit = njit(cache=True, inline="always")(_valid_range)


# NOTE on indices. numba reads a[k] with a signed k as Python does: a negative k counts from the
# end, so every access tests k < 0. In a copy loop over a[d + q] that test kept LLVM from
# emitting vector moves (it made AVX-512 gathers and scatters instead, 5-10x slower: im2col of
# the 6x12x12 layer at batch 64 took 0.7 ms, now 0.1-0.2 ms). The offsets below are unsigned
# (``uintp``), which numba knows cannot be negative; they are nonnegative by construction (the
# ranges come from _valid_range). Unsigned and signed integers must not be mixed in one
# expression (numba, like NumPy, would make it a float), hence uintp(...) around each offset.


@njit(cache=True, inline="always")
def _copy_row(dst, d, before, count, after, src, s, step):
    """dst[d + q] = 0 for q < before; dst[d + before + q] = src[s + q*step] for q < count;
    then ``after`` zeros: one output row of im2col, its padding included."""
    for q in range(uintp(before)):
        dst[d + q] = 0
    d += uintp(before)
    if step == 1:
        for q in range(uintp(count)):
            dst[d + q] = src[s + q]
    else:
        stride = uintp(step)
        for q in range(uintp(count)):
            dst[d + q] = src[s + q * stride]
    d += uintp(count)
    for q in range(uintp(after)):
        dst[d + q] = 0


@njit(cache=True, parallel=True)
def _im2col_loops(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW):
    N, C, H, W = x.shape
    L = OH * OW
    planes = x.reshape(N * C, H * W)
    # One row r = (c, i, j) of cols per task, all samples: each task writes one contiguous
    # stretch of N*L values, and the row's geometry is worked out once, not once per sample.
    for r in prange(C * kh * kw):
        c, i, j = r // (kh * kw), (r // kw) % kh, r % kw
        oh_lo, oh_hi = _valid_range_jit(H, OH, i, sh, ph, dh)
        ow_lo, ow_hi = _valid_range_jit(W, OW, j, sw, pw, dw)
        out = cols[r]
        for n in range(N):
            plane, base = planes[n * C + c], n * L
            for q in range(uintp(oh_lo * OW)):  # rows whose tap is above the image
                out[uintp(base) + q] = 0
            for oh in range(oh_lo, oh_hi):
                first = (oh * sh - ph + i * dh) * W + ow_lo * sw + j * dw - pw  # its input pixel
                _copy_row(out, uintp(base + oh * OW), ow_lo, ow_hi - ow_lo, OW - ow_hi,
                          plane, uintp(first), sw)
            for q in range(uintp((OH - oh_hi) * OW)):  # ... and below it
                out[uintp(base + oh_hi * OW) + q] = 0


@njit(cache=True, parallel=True)
def _col2im_loops(cols, x, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW):
    N, C, H, W = x.shape
    L = OH * OW
    planes = x.reshape(N * C, H * W)
    # NOTE: parallel over (n, c) planes only: different planes never share a pixel, so threads
    # never write the same memory; the rows (i, j) of one plane are summed by one thread.
    for p in prange(N * C):
        n, c = p // C, p % C
        plane = planes[p]
        for q in range(plane.size):  # here, not before: in parallel, and in the cache next
            plane[q] = 0
        for i in range(kh):
            oh_lo, oh_hi = _valid_range_jit(H, OH, i, sh, ph, dh)
            for j in range(kw):
                ow_lo, ow_hi = _valid_range_jit(W, OW, j, sw, pw, dw)
                seg, count = cols[(c * kh + i) * kw + j], uintp(ow_hi - ow_lo)
                for oh in range(oh_lo, oh_hi):
                    first = uintp((oh * sh - ph + i * dh) * W + ow_lo * sw + j * dw - pw)
                    s = uintp(n * L + oh * OW + ow_lo)
                    if sw == 1:
                        for q in range(count):
                            plane[first + q] += seg[s + q]
                    else:
                        stride = uintp(sw)
                        for q in range(count):
                            plane[first + q * stride] += seg[s + q]


# "Same" convolutions (stride 1, no dilation, padding (K - 1) / 2, so OH = H and OW = W), the
# shape of every 3x3 layer of the seed networks, have a faster route. Read one input plane and one
# column-matrix segment as flat arrays of H*W pixels: tap (i, j) of output pixel q = oh*W + ow
# is input pixel q + shift, shift = (i - PH)*W + (j - PW), the same for every q. So a segment is
# ONE shifted copy of the plane (zeros where q + shift leaves the plane: the rows above or below),
# instead of OH short row copies; only the taps that fall left or right of the image, which the
# flat shift wraps round to the neighbouring row, are set to 0 afterwards.
#
# NOTE: all copy loops here run over pre-sliced views indexed alike (dst[q] = src[q]). Written as
# row[seg + ow] = x[n, c, h, ow + w0], LLVM cannot rule out that the two arrays overlap and
# does not vectorize: 2-5x slower.


def _is_same_conv(H, W, kh, kw, stride, padding, dilation, OH, OW):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    return ((sh, sw, dh, dw) == (1, 1, 1, 1) and 2 * ph == kh - 1 and 2 * pw == kw - 1
            and (OH, OW) == (H, W))


@njit(cache=True, parallel=True)
def _im2col_same_loops(x, cols, kh, kw, ph, pw):
    N, C, H, W = x.shape
    HW = H * W
    planes = x.reshape(N * C, HW)
    for task in prange(C * kh * kw * N):  # one (row r = (c, i, j), sample n) segment per task
        r, n = task // N, task % N
        c, i, j = r // (kh * kw), (r // kw) % kh, r % kw
        out = cols[r, n * HW:(n + 1) * HW]
        plane = planes[n * C + c]
        shift = (i - ph) * W + (j - pw)
        lo = min(HW, max(0, -shift))  # [lo, hi): the q with q + shift inside the plane
        hi = max(lo, min(HW, HW - shift))
        out[:lo] = 0
        dst, src = out[lo:hi], plane[lo + shift:hi + shift]
        for q in range(hi - lo):
            dst[q] = src[q]
        out[hi:] = 0
        for ow in range(min(W, max(0, pw - j))):  # taps left of the image
            for oh in range(H):
                out[oh * W + ow] = 0
        for ow in range(max(0, min(W, W + pw - j)), W):  # taps right of it
            for oh in range(H):
                out[oh * W + ow] = 0


@njit(cache=True, parallel=True)
def _col2im_same_loops(cols, x, kh, kw, ph, pw):
    N, C, H, W = x.shape
    HW = H * W
    planes = x.reshape(N * C, HW)
    # inside[j, q]: tap column j of output pixel q lies inside the image (the flat shift did not
    # wrap it round to the neighbouring row). A select, not a multiply: 0 * inf would be NaN.
    inside = np.empty((kw, HW), dtype=np.bool_)
    for j in range(kw):
        for q in range(HW):
            inside[j, q] = 0 <= q % W + j - pw < W
    zero = cols.dtype.type(0)
    for task in prange(N * C):  # planes are disjoint: threads never write the same pixel
        n, c = task // C, task % C
        plane = planes[task]
        # the centre tap (shift 0) covers every pixel once: it sets the plane, the rest add to it
        centre = cols[(c * kh + ph) * kw + pw, n * HW:(n + 1) * HW]
        for q in range(HW):
            plane[q] = centre[q]
        for i in range(kh):
            for j in range(kw):
                if i == ph and j == pw:
                    continue
                seg = cols[(c * kh + i) * kw + j, n * HW:(n + 1) * HW]
                shift = (i - ph) * W + (j - pw)
                lo = min(HW, max(0, -shift))
                hi = max(lo, min(HW, HW - shift))
                dst, src, keep = plane[lo + shift:hi + shift], seg[lo:hi], inside[j, lo:hi]
                for q in range(hi - lo):
                    dst[q] += src[q] if keep[q] else zero


# ---------------------------------------------------------------------------------------------
# between the GEMM's layout and the batch's: (OC, N, L) <-> (N, OC, L), L = OH*OW
#
# The GEMM gives the output as Y (OC, N*L), columns ordered (n, oh, ow); the next layer wants
# y (N, OC, OH, OW). Whole rows of L values move, and the bias is added on the way; backward
# moves the output gradient the other way and sums each channel's rows for the bias gradient.


def to_batch_major_reference(Y, b, out=None):
    """Y (OC, N, L) -> y (N, OC, L), plus b[oc] when b is not None; written into ``out`` when
    given."""
    y = Y.transpose(1, 0, 2)
    y = np.ascontiguousarray(y + b.astype(Y.dtype)[:, None] if b is not None else y)
    if out is None:
        return y
    out[...] = y
    return out


def to_channel_major_reference(gy):
    """gy (N, OC, L) -> (gY (OC, N, L), gb (OC,) = sum of gy over N and L)."""
    gY = np.ascontiguousarray(gy.transpose(1, 0, 2))
    return gY, gY.sum(axis=(1, 2), dtype=np.float64).astype(gy.dtype)


@njit(cache=True, parallel=True)
def _to_batch_major_loops(Y, b, y):
    OC, N, L = Y.shape
    for task in prange(N * OC):
        n, oc = task // OC, task % OC
        src, dst, bias = Y[oc, n], y[n, oc], b[oc]
        for i in range(L):
            dst[i] = src[i] + bias


@njit(cache=True, parallel=True, fastmath={"reassoc"})  # reassoc: the sum may use vector adds
def _to_channel_major_loops(gy, gY, gb):
    N, OC, L = gy.shape
    for oc in prange(OC):  # one thread per channel: its bias-gradient sum has one writer
        total = 0.0
        for n in range(N):
            src, dst = gy[n, oc], gY[oc, n]
            for i in range(L):
                v = src[i]
                dst[i] = v
                total += v
        gb[oc] = total


def to_batch_major(Y, b, out=None):
    """Fast version of :func:`to_batch_major_reference`; writes into ``out`` when given."""
    OC, N, L = Y.shape
    y = np.empty((N, OC, L), dtype=Y.dtype) if out is None else out
    bias = np.ascontiguousarray(b, dtype=Y.dtype) if b is not None else np.zeros(OC, Y.dtype)
    split_if(_to_batch_major_loops, y.size, LAYOUT_PARALLEL_MIN)(np.ascontiguousarray(Y), bias, y)
    return y


def to_channel_major(gy):
    """Fast version of :func:`to_channel_major_reference`."""
    N, OC, L = gy.shape
    gY, gb = np.empty((OC, N, L), dtype=gy.dtype), np.empty(OC, dtype=gy.dtype)
    split_if(_to_channel_major_loops, gy.size, LAYOUT_PARALLEL_MIN)(np.ascontiguousarray(gy), gY,
                                                                     gb)
    return gY, gb


def im2col(x, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1), out_size=None):
    """(N, C, H, W) -> (C*KH*KW, N*OH*OW); see the module docstring.

    ``out_size=(OH, OW)`` overrides the usual output size (average pooling in ceil mode has
    windows that run past the padding; those cells read as 0 like padding).
    """
    _load.maybe_adapt()  # threads follow the machine's load (tinyconv/_load.py)
    N, C, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = out_size or (conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw))
    cols = np.empty((C * kh * kw, N * OH * OW), dtype=x.dtype)
    x = np.ascontiguousarray(x)
    if _is_same_conv(H, W, kh, kw, stride, padding, dilation, OH, OW):
        split_if(_im2col_same_loops, cols.size, PARALLEL_MIN)(x, cols, kh, kw, ph, pw)
    else:
        split_if(_im2col_loops, cols.size, PARALLEL_MIN)(x, cols, kh, kw, sh, sw, ph, pw, dh,
                                                         dw, OH, OW)
    return cols


def col2im(cols, x_shape, kh, kw, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
           out_size=None):
    """(C*KH*KW, N*OH*OW) -> (N, C, H, W), summing overlaps; the adjoint of :func:`im2col`."""
    N, C, H, W = x_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH, OW = out_size or (conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw))
    x = np.empty(x_shape, dtype=cols.dtype)  # the loops set every pixel
    cols = np.ascontiguousarray(cols)
    if _is_same_conv(H, W, kh, kw, stride, padding, dilation, OH, OW):
        split_if(_col2im_same_loops, cols.size, PARALLEL_MIN)(cols, x, kh, kw, ph, pw)
    else:
        split_if(_col2im_loops, cols.size, PARALLEL_MIN)(cols, x, kh, kw, sh, sw, ph, pw, dh,
                                                         dw, OH, OW)
    return x
