"""Worked examples for winograd.md: F(2, 3) in one dimension, one 4x4 tile in two, the counts.

Each public function returns the text of one ``<!-- example: NAME -->`` block; they are
registered in docs/worked_examples.py (``EXAMPLES``), which writes the pages and which
``tests/test_docs.py`` compares with them. Every number comes from tinyconv's own code.
"""

from __future__ import annotations

import numpy as np
from worked_layers import fmt  # docs/ is on sys.path (worked_examples.py puts it there)

from tinyconv.kernels.naive import conv2d_naive
from tinyconv.kernels.winograd import (
    AT,
    BT,
    G,
    tile_counts,
    winograd_filter_transform,
    winograd_input_transform,
    winograd_input_transform_reference,
    winograd_output_transform_reference,
)
from tinyconv.ops.winograd import winograd_conv2d


def winograd_1d():
    d = np.array([1.0, 2.0, 3.0, 4.0])
    g = np.array([2.0, 1.0, 3.0])
    direct = np.array([d[0:3] @ g, d[1:4] @ g])
    Gg, BTd = G @ g, BT @ d
    m = Gg * BTd
    y = AT @ m
    return "\n".join([
        "d = " + fmt(d) + "    g = " + fmt(g),
        "direct: y0 = d0*g0 + d1*g1 + d2*g2, y1 = d1*g0 + d2*g1 + d3*g2 = " + fmt(direct)
        + "   (6 multiplies)",
        "",
        "Bᵀ d     = " + fmt(BTd) + "   (d0 - d2, d1 + d2, d2 - d1, d1 - d3)",
        "G g      = " + fmt(Gg) + "   (g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2, g2)",
        "m = G g ⊙ Bᵀ d = " + fmt(m) + "   (4 multiplies)",
        "y = Aᵀ m = " + fmt(y) + "   (m0 + m1 + m2, m1 - m2 - m3)",
        f"equal to direct: {np.array_equal(y, direct)}",
    ])


def winograd_2d():
    """One 4x4 input tile (1..16) and a small integer filter: padding 0 gives exactly one 2x2
    tile of output."""
    x = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)
    W = np.array([[1, 2, 0], [0, 1, -1], [2, 0, 1]], dtype=np.float64).reshape(1, 1, 3, 3)
    V = winograd_input_transform_reference(x, (0, 0))  # (16, C=1, tiles=1)
    U = winograd_filter_transform(W)  # (16, OC=1, C=1)
    M = U @ V  # the 16 "GEMMs", each 1x1 here
    y = winograd_output_transform_reference(M, None, np.empty((1, 1, 2, 2)))
    direct = conv2d_naive(x, W, None, padding=0)
    return "\n".join([
        f"{'d = x[0, 0]':<18}g = W[0, 0]",
        *[f"{a}    {b}".rstrip() for a, b in zip(fmt(x[0, 0]).splitlines(),
                                        fmt(W[0, 0]).splitlines() + [""], strict=True)],
        "",
        "V = Bᵀ d B  (winograd_input_transform_reference, as 4x4)",
        fmt(V[:, 0, 0].reshape(4, 4)),
        "",
        "U = G g Gᵀ  (winograd_filter_transform, as 4x4)",
        fmt(U[:, 0, 0].reshape(4, 4)),
        "",
        "M = U ⊙ V   (16 multiplies; with C channels, M[xi] = U[xi] @ V[xi] sums over them)",
        fmt(M[:, 0, 0].reshape(4, 4)),
        "",
        "Y = Aᵀ M A  (winograd_output_transform_reference)",
        fmt(y[0, 0]),
        "",
        "conv2d_naive(x, W, padding=0) (36 multiplies)",
        fmt(direct[0, 0]),
        f"equal: {np.array_equal(y, direct)}; the fast kernel's V equal to the reference's: "
        f"{np.array_equal(winograd_input_transform(x, (0, 0)), V)}; "
        f"winograd_conv2d equal: {np.array_equal(winograd_conv2d(x, W, None, 0), direct)}",
    ])


def winograd_counts():
    """Multiplies and the size of the big intermediate arrays, per seed layer at batch 64."""
    lines = []
    for (C, side, OC) in [(1, 28, 32), (32, 28, 32), (32, 14, 64), (64, 14, 64)]:
        N = 64
        TH, TW = tile_counts(side, side)  # padding 1: OH = side
        direct = N * OC * C * side * side * 9
        wino = N * OC * C * TH * TW * 16
        cols = C * 9 * N * side * side * 4
        V, M = 16 * C * N * TH * TW * 4, 16 * OC * N * TH * TW * 4
        lines += [f"{C}x{side}x{side} -> {OC}, batch {N}:",
                  f"  multiplies: direct / im2col {direct:,}, Winograd {wino:,} "
                  f"({direct / wino:.2f}x fewer)",
                  f"  float32 bytes: im2col's cols {cols:,}; Winograd's V {V:,} and M {M:,}"]
    return "\n".join(lines)


def winograd_rule():
    """Which 3x3 stride-1 layers Conv2d runs by Winograd (tinyconv/ops/conv.py, uses_winograd)."""
    from tinyconv.ops import conv as conv_ops

    lines = [f"rule: ch = min(C, OC) >= {conv_ops.WINOGRAD_MIN_CHANNELS}; ch >= "
             f"{conv_ops.WINOGRAD_SMALL_CHANNELS} unless the output is at least "
             f"{conv_ops.WINOGRAD_SMALL_MIN_SIDE}x{conv_ops.WINOGRAD_SMALL_MIN_SIDE};",
             f"      tiles (2x2, whole batch) >= {conv_ops.WINOGRAD_MIN_TILES}; ch * tiles >= "
             f"{conv_ops.WINOGRAD_MIN_WORK:,}",
             f"{'layer (padding 1)':<18} {'batch':>5} {'tiles':>7} {'ch * tiles':>11}  path"]
    layers = [((1, 28), 32, 64), ((32, 28), 32, 64), ((32, 14), 64, 64), ((64, 14), 64, 64)]
    layers += [((c, side), c, n) for n in (8, 32)
               for c, side in [(64, 56), (128, 28), (256, 14), (512, 7)]]
    for (C, side), OC, N in layers:
        tiles = N * int(np.prod(tile_counts(side, side)))
        on = conv_ops.uses_winograd((N, C, side, side), (OC, C, 3, 3), (1, 1), (1, 1), (1, 1))
        lines.append(f"{f'{C}x{side}x{side} -> {OC}':<18} {N:>5} {tiles:>7,} "
                     f"{min(C, OC) * tiles:>11,}  {'Winograd' if on else 'im2col'}")
    return "\n".join(lines)


EXAMPLES = {f.__name__: f for f in (winograd_1d, winograd_2d, winograd_counts, winograd_rule)}
