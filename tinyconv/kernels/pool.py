"""Max pooling: the forward pass remembers where each maximum came from; backward scatters.

Notation: input x (N, C, H, W); window KH x KW; stride SH, SW; padding PH, PW (padded cells hold
-inf, so they never win); dilation DH, DW. Output y (N, C, OH, OW) with OH from
``conv_out_size`` (optionally in ceil mode)::

    y[n, c, oh, ow] = max over i < KH, j < KW of x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]
    idx[n, c, oh, ow] = h*W + w of that maximum (the first one in window order on ties; NaN
                        wins, the last NaN in window order as in torch's CPU kernel; -1 for a
                        window lying entirely in the padding, possible with dilation)

Backward: each output gradient flows to the single input pixel that produced the maximum;
overlapping windows that chose the same pixel add up (windows with idx -1 send nothing)::

    gx[n, c].flat[idx[n, c, oh, ow]] += gy[n, c, oh, ow]

``idx`` uses the same flat-index convention as torch's ``return_indices=True``. Why the
gradient goes to the arg-max, with a worked example: docs/maxpool-backward.md.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinyconv._threads import split_if

# Inputs below this many elements are pooled on the calling thread alone (tinyconv/_threads.py,
# split_if). Measured on 2 cores, serial / split: 2x2 forward of (64, 6, 24, 24) (221,184)
# 0.18 / 0.17 ms, of (64, 6, 8, 8) 0.025 / 0.071 ms; backward 0.032 / 0.064 and 0.005 / 0.053 ms.
PARALLEL_MIN = 1 << 18


def maxpool2d_forward_reference(x, kh, kw, stride, padding, dilation, OH, OW, indices=True):
    """Plain-Python max pooling: returns (y, idx) (``indices`` is accepted for the fast
    version's signature; idx is always computed here)."""
    N, C, H, W = x.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    idx = np.empty((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best, best_at = -np.inf, -1
                    for i in range(kh):
                        for j in range(kw):
                            h = oh * sh - ph + i * dh
                            w = ow * sw - pw + j * dw
                            if 0 <= h < H and 0 <= w < W:
                                v = x[n, c, h, w]
                                # NaN propagates: a number never replaces a NaN; a later
                                # NaN does (torch's CPU kernel: `val > maxval || isnan(val)`).
                                if best_at == -1 or v > best or np.isnan(v):
                                    best, best_at = v, h * W + w
                    y[n, c, oh, ow] = best
                    idx[n, c, oh, ow] = best_at
    return y, idx


def maxpool2d_backward_reference(gy, idx, x_shape):
    """Plain-Python scatter of ``gy`` to the arg-max positions."""
    N, C, H, W = x_shape
    gx = np.zeros(x_shape, dtype=gy.dtype)
    OH, OW = gy.shape[2:]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    k = idx[n, c, oh, ow]
                    if k >= 0:  # -1: the window lies in the padding
                        gx[n, c, k // W, k % W] += gy[n, c, oh, ow]
    return gx


@njit(cache=True, parallel=True)
def _maxpool2d_forward_loops(x, y, idx, kh, kw, sh, sw, ph, pw, dh, dw):
    # Separable: a window's maximum is the maximum over its rows i of each row's maximum over
    # its columns j. Pass 1 takes, for every input row h and output column ow, the maximum over
    # the window's columns (and the column w it came from); pass 2, for every output row, the
    # maximum of those over the window's rows. Scanning j within a row, then the rows in order,
    # is the reference's scan (i, then j) split in two, so ties and NaN come out the same: a
    # later tap wins when it is larger or NaN. H*OW*KW + OH*OW*KH comparisons, not OH*OW*KH*KW,
    # and pass 2 runs along whole output rows (vector instructions). Selects, not branches
    # (`|` and conditional expressions; see max_of_window): ResNet's 3x3 / stride 2 pooling of
    # real activations took 60 ms at batch 8 with branches. An empty ``idx``: values only.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    want_idx = idx.size > 0
    lowest = y.dtype.type(-np.inf)
    for p in prange(N * C):  # one (sample, channel) plane per iteration
        n, c = p // C, p % C
        plane = x[n, c]
        row_best = np.empty((H, OW), dtype=y.dtype)
        row_at = np.empty((H, OW), dtype=np.int64)  # the column w of each, -1: none (padding)
        for h in range(H):
            src, best_h, at_h = plane[h], row_best[h], row_at[h]
            for ow in range(OW):
                best, at = lowest, -1
                for j in range(kw):
                    w = ow * sw - pw + j * dw
                    if 0 <= w < W:  # false only near the edges: predictable
                        v = src[w]
                        win = (at == -1) | (v > best) | (v != v)
                        best = v if win else best
                        at = w if win else at
                best_h[ow], at_h[ow] = best, at
        best_o = np.empty(OW, dtype=y.dtype)
        at_o = np.empty(OW, dtype=np.int64)
        for oh in range(OH):
            best_o[:] = lowest
            at_o[:] = -1
            for i in range(kh):
                h = oh * sh - ph + i * dh
                if h < 0 or h >= H:
                    continue
                best_h, at_h = row_best[h], row_at[h]
                for ow in range(OW):
                    v = best_h[ow]
                    win = (at_h[ow] >= 0) & ((at_o[ow] == -1) | (v > best_o[ow]) | (v != v))
                    best_o[ow] = v if win else best_o[ow]
                    at_o[ow] = h * W + at_h[ow] if win else at_o[ow]
            y_row = y[n, c, oh]
            for ow in range(OW):
                y_row[ow] = best_o[ow]
            if want_idx:
                idx_row = idx[n, c, oh]
                for ow in range(OW):
                    idx_row[ow] = at_o[ow]


@njit(cache=True, parallel=True)
def _maxpool2d_backward_loops(gy, idx, gx):
    N, C, H, W = gx.shape
    OH, OW = gy.shape[2], gy.shape[3]
    # Planes as flat rows: idx already holds the flat position h*W + w within a plane.
    gy_rows, idx_rows = gy.reshape(N * C, OH * OW), idx.reshape(N * C, OH * OW)
    gx_rows = gx.reshape(N * C, H * W)
    for p in prange(N * C):  # planes are disjoint, so threads never write the same pixel
        for q in range(OH * OW):
            k = idx_rows[p, q]
            if k >= 0:  # -1: the window lies in the padding
                gx_rows[p, k] += gy_rows[p, q]


@njit(cache=True, parallel=True)
def _maxpool2d_tiled_loops(x, y, idx, kh, kw):
    # Windows that tile the input (stride == kernel, no padding, no dilation): every window
    # lies inside, so there are no bounds tests, and each input pixel is read once.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n, c = p // C, p % C
        for oh in range(OH):
            for ow in range(OW):
                h0, w0 = oh * kh, ow * kw
                best = x[n, c, h0, w0]
                best_at = h0 * W + w0
                for i in range(kh):
                    for j in range(kw):
                        v = x[n, c, h0 + i, w0 + j]
                        if v > best or v != v:
                            best = v
                            best_at = (h0 + i) * W + w0 + j
                y[n, c, oh, ow] = best
                idx[n, c, oh, ow] = best_at


def max_of_window_reference(a, b, c, d):
    """(value, place 0..3) of the maximum of a, b, c, d scanned in that order: a later value
    wins when it is larger or NaN (the rule of maxpool2d_forward_reference)."""
    best, place = a, 0
    for k, v in enumerate((b, c, d), start=1):
        if v > best or v != v:
            best, place = v, k
    return best, place


@njit(inline="always")
def max_of_window(a, b, c, d):
    """(value, place 0..3) of the maximum of a 2x2 window read as  a b / c d.

    The first maximum in that order wins ties, and a NaN wins over numbers (the last NaN if
    several), as in the general loops above and in torch. Pairwise: the top pair's winner
    keeps ties against the bottom pair's, which gives the same answer as the scan a, b, c, d.
    NOTE: `|`, not `or` (a branch), and conditional expressions (selects): on real activations
    the winner's place is random, and mispredicted branches made these loops 2-3x slower
    than on test data.
    """
    win = (b > a) | (b != b)
    top, k_top = (b if win else a), (1 if win else 0)
    win = (d > c) | (d != d)
    bottom, k_bottom = (d if win else c), (3 if win else 2)
    win = (bottom > top) | (bottom != bottom)
    return (bottom if win else top), (k_bottom if win else k_top)


@njit(cache=True, parallel=True)
def _maxpool2d_2x2_loops(x, y, idx):
    # The 2x2 / stride 2 case of _maxpool2d_tiled_loops written out with max_of_window.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n, c = p // C, p % C
        for oh in range(OH):
            top, bottom = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
            y_row, idx_row = y[n, c, oh], idx[n, c, oh]
            for ow in range(OW):
                best, k = max_of_window(top[2 * ow], top[2 * ow + 1], bottom[2 * ow],
                                        bottom[2 * ow + 1])
                y_row[ow] = best
                idx_row[ow] = (2 * oh + k // 2) * W + 2 * ow + k % 2


@njit(cache=True, parallel=True)
def _maxpool2d_2x2_values_loops(x, y):
    # _maxpool2d_2x2_loops without the arg-max: evaluation needs no backward, and the int64
    # indices would be twice the bytes of the values.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for p in prange(N * C):
        n, c = p // C, p % C
        for oh in range(OH):
            top, bottom = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
            y_row = y[n, c, oh]
            for ow in range(OW):
                y_row[ow] = max_of_window(top[2 * ow], top[2 * ow + 1], bottom[2 * ow],
                                          bottom[2 * ow + 1])[0]


def maxpool2d_forward(x, kh, kw, stride, padding, dilation, OH, OW, indices=True):
    """(N, C, H, W) -> y (N, C, OH, OW) and flat arg-max indices idx (N, C, OH, OW).

    With ``indices=False`` idx may come back as None (when a loop without it exists).
    """
    N, C = x.shape[:2]
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x = np.ascontiguousarray(x)
    tiled = ((sh, sw) == (kh, kw) and (ph, pw) == (0, 0) and (dh, dw) == (1, 1)
             and OH * kh <= x.shape[2] and OW * kw <= x.shape[3])
    if tiled and (kh, kw) == (2, 2) and not indices:
        split_if(_maxpool2d_2x2_values_loops, x.size, PARALLEL_MIN)(x, y)
        return y, None
    if not tiled and not indices:  # the general loops, values only (an empty idx)
        split_if(_maxpool2d_forward_loops, x.size, PARALLEL_MIN)(
            x, y, np.empty((0, 0, 0, 0), dtype=np.int64), kh, kw, sh, sw, ph, pw, dh, dw)
        return y, None
    idx = np.empty((N, C, OH, OW), dtype=np.int64)
    if tiled and (kh, kw) == (2, 2):
        split_if(_maxpool2d_2x2_loops, x.size, PARALLEL_MIN)(x, y, idx)
    elif tiled:
        split_if(_maxpool2d_tiled_loops, x.size, PARALLEL_MIN)(x, y, idx, kh, kw)
    else:
        split_if(_maxpool2d_forward_loops, x.size, PARALLEL_MIN)(x, y, idx, kh, kw, sh, sw, ph,
                                                                 pw, dh, dw)
    return y, idx


def maxpool2d_backward(gy, idx, x_shape):
    """Scatter gy (N, C, OH, OW) into a zero (N, C, H, W) gradient at the arg-max positions."""
    gx = np.zeros(x_shape, dtype=gy.dtype)
    split_if(_maxpool2d_backward_loops, gx.size, PARALLEL_MIN)(np.ascontiguousarray(gy), idx, gx)
    return gx
