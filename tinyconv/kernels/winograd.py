"""Winograd's F(2x2, 3x3): a 3x3 convolution with 16 multiplies per 2x2 output tile, not 36.

Only for 3x3 kernels, stride 1, dilation 1 (any padding). The entry point that puts the pieces
together is ``winograd_conv2d`` in tinyconv/ops/winograd.py; docs/winograd.md derives the method
with worked numbers.

**One dimension, F(2, 3).** Two outputs of a 3-tap filter g over four inputs d::

    y0 = d0*g0 + d1*g1 + d2*g2
    y1 = d1*g0 + d2*g1 + d3*g2                      6 multiplies

can be had with 4 multiplies, once the filter's combinations are computed (they are reused for
every tile of every image)::

    m0 = (d0 - d2) * g0                 y0 = m0 + m1 + m2
    m1 = (d1 + d2) * (g0 + g1 + g2)/2   y1 = m1 - m2 - m3
    m2 = (d2 - d1) * (g0 - g1 + g2)/2
    m3 = (d1 - d3) * g2

In matrices: y = Aᵀ [(G g) ⊙ (Bᵀ d)], ⊙ the element-wise product, with::

         [ 1  0 -1  0 ]          [  1    0    0  ]
    Bᵀ = [ 0  1  1  0 ]      G = [ 1/2  1/2  1/2 ]      Aᵀ = [ 1  1  1  0 ]
         [ 0 -1  1  0 ]          [ 1/2 -1/2  1/2 ]           [ 0  1 -1 -1 ]
         [ 0  1  0 -1 ]          [  0    0    1  ]

**Two dimensions, F(2x2, 3x3)**: the same transforms on both axes of a 4x4 input tile d (the
tiles overlap by 2, so they step by 2) and the 3x3 filter g::

    V = Bᵀ d B    (4x4, per input tile and channel c)
    U = G g Gᵀ    (4x4, per filter (oc, c): computed once)
    Y = Aᵀ [ sum over c of U ⊙ V ] A    (2x2 outputs)

The sum over input channels can be taken before the output transform because that transform is
linear. Direct convolution spends 2*2*3*3 = 36 multiplies per tile and channel pair (oc, c);
Winograd spends 4*4 = 16, 2.25 times fewer. Split by the 16 positions xi = 4*i + j of the 4x4
tile, the sum over c is a matrix product, so the 16 multiplies become 16 independent GEMMs::

    M[xi] = U[xi] @ V[xi]        (OC, C) @ (C, tiles) -> (OC, tiles)

The transforms themselves only add and subtract (the 1/2 is folded into U).

**Layouts.** V is (16, C, T) and M is (16, OC, T), where T counts the tiles of all samples, in
the order (n, th, tw): tile (th, tw) reads the padded input rows 2*th ... 2*th + 3 and columns
2*tw ... 2*tw + 3 and gives the outputs (2*th + i, 2*tw + j), i, j in {0, 1}. The output has
OH = H + 2*PH - 2 rows, so there are TH = ceil(OH / 2) tile rows; when OH is odd the last tile
row runs one row past the output: it reads zeros beyond the input, and its extra outputs are
dropped (the same for the columns).

Each kernel has a ``*_reference`` twin written straight from the formulas (one tile at a time,
with the matrices above); the fast versions unroll the matrix products into the additions they
are, split the work by (sample, channel) planes across threads, and copy each plane into two
small zero-padded buffers first, its even and its odd columns, so the loops need no bounds tests
and read consecutive memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BT = np.array([[1, 0, -1, 0],
               [0, 1, 1, 0],
               [0, -1, 1, 0],
               [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0],
               [0, 1, -1, -1]], dtype=np.float64)


def tile_counts(out_h, out_w):
    """(TH, TW): 2x2 output tiles per column and per row, the last ones possibly partial."""
    return (out_h + 1) // 2, (out_w + 1) // 2


# ---------------------------------------------------------------------------------------------
# reference twins: the formulas, one tile at a time


def winograd_filter_transform_reference(W):
    """U = G g Gᵀ for every filter g = W[oc, c] (3x3), as (16, OC, C): U[4*i + j, oc, c], in
    W's dtype; one filter at a time, with the matrix G."""
    OC, C = W.shape[:2]
    G_ = G.astype(W.dtype)
    U = np.empty((16, OC, C), dtype=W.dtype)
    for oc in range(OC):
        for c in range(C):
            U[:, oc, c] = (G_ @ W[oc, c] @ G_.T).reshape(16)
    return U


def winograd_input_transform_reference(x, padding, out=None):
    """V (16, C, N*TH*TW): V[:, c, t] = Bᵀ d B of the 4x4 tile d of channel c of tile t.

    ``padding`` (PH, PW); pixels outside the input (the padding, and past the edge for a partial
    last tile) read as 0. Written into ``out`` when given.
    """
    N, C, H, W = x.shape
    ph, pw = padding
    TH, TW = tile_counts(H + 2 * ph - 2, W + 2 * pw - 2)
    V = np.zeros((16, C, N * TH * TW), dtype=x.dtype) if out is None else out
    BT_ = BT.astype(x.dtype)
    for n in range(N):
        for c in range(C):
            for th in range(TH):
                for tw in range(TW):
                    d = np.zeros((4, 4), dtype=x.dtype)
                    for i in range(4):
                        for j in range(4):
                            h, w = 2 * th + i - ph, 2 * tw + j - pw
                            if 0 <= h < H and 0 <= w < W:
                                d[i, j] = x[n, c, h, w]
                    V[:, c, (n * TH + th) * TW + tw] = (BT_ @ d @ BT_.T).reshape(16)
    return V


def winograd_output_transform_reference(M, b, out):
    """y = Aᵀ m A + b for every tile: M (16, OC, n*TH*TW) -> ``out`` (n, OC, OH, OW), returned.

    ``b`` (OC,) or None. A tile's outputs beyond OH or OW (a partial last tile) are dropped.
    """
    N, OC, OH, OW = out.shape
    TH, TW = tile_counts(OH, OW)
    AT_ = AT.astype(M.dtype)
    for n in range(N):
        for oc in range(OC):
            for th in range(TH):
                for tw in range(TW):
                    m = M[:, oc, (n * TH + th) * TW + tw].reshape(4, 4)
                    Y = AT_ @ m @ AT_.T  # (2, 2)
                    for i in range(2):
                        for j in range(2):
                            h, w = 2 * th + i, 2 * tw + j
                            if h < OH and w < OW:
                                out[n, oc, h, w] = Y[i, j] + (0 if b is None else b[oc])
    return out


# ---------------------------------------------------------------------------------------------
# fast versions: numba-compiled, the matrix products unrolled into their additions


@njit(cache=True, inline="always")
def _g3(a, b, c):
    """G (a, b, c): the filter transform of one 3-tap row or column."""
    return a, 0.5 * (a + b + c), 0.5 * (a - b + c), c


@njit(cache=True, parallel=True)
def _filter_transform_loops(W, U):
    OC, C = W.shape[:2]
    for oc in prange(OC):
        g = W[oc]
        # NOTE: the 16 rows U[xi, oc] lie OC*C values apart (1 MB at 512 -> 512): stores that
        # go to all 16 at once keep evicting each other from the cache (same cache sets). So a
        # block of 64 filters goes into a small buffer first, copied out row by row (2.4x faster).
        u = np.empty((16, 64), dtype=U.dtype)
        for c0 in range(0, C, 64):
            n = min(64, C - c0)
            for k in range(n):
                c = c0 + k
                # G g: the transform of each of the three columns, rows r0..r3
                r00, r10, r20, r30 = _g3(g[c, 0, 0], g[c, 1, 0], g[c, 2, 0])
                r01, r11, r21, r31 = _g3(g[c, 0, 1], g[c, 1, 1], g[c, 2, 1])
                r02, r12, r22, r32 = _g3(g[c, 0, 2], g[c, 1, 2], g[c, 2, 2])
                # · Gᵀ: the same transform of each row
                u[0, k], u[1, k], u[2, k], u[3, k] = _g3(r00, r01, r02)
                u[4, k], u[5, k], u[6, k], u[7, k] = _g3(r10, r11, r12)
                u[8, k], u[9, k], u[10, k], u[11, k] = _g3(r20, r21, r22)
                u[12, k], u[13, k], u[14, k], u[15, k] = _g3(r30, r31, r32)
            for xi in range(16):
                U[xi, oc, c0:c0 + n] = u[xi, :n]


@njit(cache=True, parallel=True)
def _input_transform_loops(x, V, ph, pw, TH, TW):
    N, C, H, W = x.shape
    T = TH * TW
    for task in prange(N * C):  # one (sample, channel) plane per task
        n, c = task // C, task % C
        # The plane inside its padding, split into its even and odd columns: e[r, k] is padded
        # pixel (r, 2k), o[r, k] is (r, 2k + 1). Tile tw's four columns 2tw ... 2tw + 3 are
        # then e[:, tw], o[:, tw], e[:, tw + 1], o[:, tw + 1]: every loop below reads and writes
        # consecutive memory, and no tile needs a bounds test (zeros below and right cover a
        # partial last tile).
        e = np.zeros((2 * TH + 2, TW + 1), dtype=x.dtype)
        o = np.zeros((2 * TH + 2, TW + 1), dtype=x.dtype)
        first_even = pw % 2  # the first w whose padded column w + pw is even
        for h in range(H):
            src, e_row, o_row = x[n, c, h], e[h + ph], o[h + ph]
            for w in range(first_even, W, 2):
                e_row[(w + pw) // 2] = src[w]
            for w in range(1 - first_even, W, 2):
                o_row[(w + pw) // 2] = src[w]
        # Bᵀ d: four combinations of the tile's rows, for all tiles of a tile row at once
        # (NOTE: one store stream per loop; see _sub below)
        a = np.empty((8, TW + 1), dtype=x.dtype)  # row i: a[2i] even, a[2i + 1] odd columns
        for th in range(TH):
            r = 2 * th
            for p, half in enumerate((e, o)):
                _sub(a[p], half[r], half[r + 2])          # d0 - d2
                _add(a[2 + p], half[r + 1], half[r + 2])  # d1 + d2
                _sub(a[4 + p], half[r + 2], half[r + 1])  # d2 - d1
                _sub(a[6 + p], half[r + 1], half[r + 3])  # d1 - d3
            # · B: the same combinations of the columns (a0, a1, a2, a3) = (a_e[tw], a_o[tw],
            # a_e[tw + 1], a_o[tw + 1]) of each combined row i
            t0 = n * T + th * TW
            for i in range(4):
                a_e0, a_e1 = a[2 * i, :TW], a[2 * i, 1:]
                a_o0, a_o1 = a[2 * i + 1, :TW], a[2 * i + 1, 1:]
                _sub(V[4 * i, c, t0:t0 + TW], a_e0, a_e1)      # a0 - a2
                _add(V[4 * i + 1, c, t0:t0 + TW], a_o0, a_e1)  # a1 + a2
                _sub(V[4 * i + 2, c, t0:t0 + TW], a_e1, a_o0)  # a2 - a1
                _sub(V[4 * i + 3, c, t0:t0 + TW], a_o0, a_o1)  # a1 - a3


# NOTE: each loop below writes one array, over views indexed alike. A loop that writes several
# numba arrays makes LLVM check at run time that none overlaps the arrays it reads, and past a
# few such checks it does not vectorize (see the NOTE in tinyconv/kernels/conv.py).


@njit(cache=True, inline="always")
def _add(out, u, v):
    for k in range(out.size):
        out[k] = u[k] + v[k]


@njit(cache=True, inline="always")
def _sub(out, u, v):
    for k in range(out.size):
        out[k] = u[k] - v[k]


@njit(cache=True, inline="always")
def _add3(out, u, v, w, bias):
    for k in range(out.size):
        out[k] = u[k] + v[k] + w[k] + bias


@njit(cache=True, inline="always")
def _sub3(out, u, v, w, bias):
    for k in range(out.size):
        out[k] = u[k] - v[k] - w[k] + bias


@njit(cache=True, inline="always")
def _interleave(out, even, odd):
    """out[2k] = even[k], out[2k + 1] = odd[k], as far as out reaches (an odd width drops the
    last odd value: the partial last tile)."""
    for k in range(out.size // 2):
        out[2 * k] = even[k]
        out[2 * k + 1] = odd[k]
    if out.size % 2:
        out[out.size - 1] = even[out.size // 2]


@njit(cache=True, parallel=True)
def _output_transform_loops(M, b, y, TH, TW):
    N, OC, OH, OW = y.shape
    T = TH * TW
    for task in prange(N * OC):  # one (sample, output channel) plane per task
        n, oc = task // OC, task % OC
        bias = b[oc]
        s = np.empty((4, TW), dtype=y.dtype)
        d = np.empty((4, TW), dtype=y.dtype)
        out_e = np.empty((2, TW), dtype=y.dtype)  # a tile row's two output rows, even columns
        out_o = np.empty((2, TW), dtype=y.dtype)  # and odd ones
        for th in range(TH):
            t0 = n * T + th * TW
            # Aᵀ m: row 0 of the result is m0 + m1 + m2, row 1 is m1 - m2 - m3 (rows of the
            # tile m), for all tiles of the tile row at once; j is the column
            for j in range(4):
                m0, m1 = M[j, oc, t0:t0 + TW], M[4 + j, oc, t0:t0 + TW]
                m2, m3 = M[8 + j, oc, t0:t0 + TW], M[12 + j, oc, t0:t0 + TW]
                _add(s[j], m0, m1)
                _add(s[j], s[j], m2)
                _sub(d[j], m1, m2)
                _sub(d[j], d[j], m3)
            # · A: the same combination of the columns, plus the bias; even output columns
            # 2tw into out_e, odd ones into out_o
            for i, u in enumerate((s, d)):
                _add3(out_e[i], u[0], u[1], u[2], bias)
                _sub3(out_o[i], u[1], u[2], u[3], bias)
            for i in range(min(2, OH - 2 * th)):  # a partial last tile row has one
                _interleave(y[n, oc, 2 * th + i], out_e[i], out_o[i])


def winograd_filter_transform(W):
    """Fast version of :func:`winograd_filter_transform_reference` (the products with G unrolled
    into their additions and halvings; equal to float rounding). ResNet-18's 512 -> 512 filters,
    float32, 2 threads: 10-18 ms as two tensordots and a transpose, about 4 ms so."""
    U = np.empty((16,) + W.shape[:2], dtype=W.dtype)
    _filter_transform_loops(np.ascontiguousarray(W), U)
    return U


def winograd_input_transform(x, padding, out=None):
    """Fast version of :func:`winograd_input_transform_reference`; ``out`` must be C-contiguous,
    x need not be (a view with contiguous rows, such as a channel-major array transposed, is
    read in place)."""
    N, C, H, W = x.shape
    ph, pw = padding
    TH, TW = tile_counts(H + 2 * ph - 2, W + 2 * pw - 2)
    V = np.empty((16, C, N * TH * TW), dtype=x.dtype) if out is None else out
    if x.strides[-1] != x.itemsize:  # rows must be contiguous; planes may lie anywhere
        x = np.ascontiguousarray(x)
    _input_transform_loops(x, V, ph, pw, TH, TW)
    return V


def winograd_output_transform(M, b, out):
    """Fast version of :func:`winograd_output_transform_reference`; ``out`` may be a view with
    contiguous rows (the channel-major output of ``winograd_conv2d``)."""
    OC = out.shape[1]
    bias = b.astype(out.dtype, copy=False) if b is not None else np.zeros(OC, out.dtype)
    _output_transform_loops(np.ascontiguousarray(M), bias, out, *tile_counts(*out.shape[2:]))
    return out
