"""2-D convolution by its textbook definition: nested loops, one multiply-add at a time.

This is the slowest and plainest way to compute a convolution. It exists to be read next to the
fast path (``tinyconv/kernels/conv.py``: im2col + one GEMM) and as an oracle for the tests, which
check that both give the same numbers. See ``docs/conv2d-forward.md`` and
``docs/conv2d-backward.md`` for the derivations.

Notation: input x (N, C, H, W); weights W (OC, C, KH, KW); bias b (OC,) or None; stride
(SH, SW), padding (PH, PW), dilation (DH, DW); output y (N, OC, OH, OW) with
``OH = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1`` (and the same for OW). Input pixels
outside [0, H) x [0, W) are the zero padding.

Forward (strictly, deep learning's "convolution" is a cross-correlation: the kernel is not
flipped)::

    y[n, oc, oh, ow] = b[oc] + sum over c < C, kh < KH, kw < KW of
                       W[oc, c, kh, kw] * x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]

The loop nest: the batch loop n around the textbook's six loops::

    for n, oc, oh, ow:                 # one output value each
        for c, kh, kw:                 # its receptive field, K = C*KH*KW multiply-adds
            h, w = oh*SH - PH + kh*DH, ow*SW - PW + kw*DW
            y[n, oc, oh, ow] += W[oc, c, kh, kw] * x[n, c, h, w]   (skipped in the padding)

Backward, given gy = dL/dy (N, OC, OH, OW). Every term of the sum above connects one weight,
one input pixel and one output; the chain rule sends gy[n, oc, oh, ow] back along each term::

    gb[oc]              = sum over n, oh, ow of gy[n, oc, oh, ow]
    gW[oc, c, kh, kw]  += gy[n, oc, oh, ow] * x[n, c, h, w]       for every term,
    gx[n, c, h, w]     += gy[n, oc, oh, ow] * W[oc, c, kh, kw]    with h, w the tapped pixel

so the backward pass is the forward loop nest with the multiply-add turned around.
"""

from __future__ import annotations

import numpy as np

from tinyconv._utils import _pair
from tinyconv.kernels.conv import conv_out_size


def conv2d_naive(x, W, b=None, stride=1, padding=0, dilation=1):
    """y = conv2d(x, W, b) by six nested loops inside the batch loop. Slow: for teaching and tests.

    x (N, C, H, W), W (OC, C, KH, KW), b (OC,) or None -> y (N, OC, OH, OW), in x's dtype
    (each sum is accumulated in a Python float, i.e. float64).
    ``stride``, ``padding`` and ``dilation`` are ints or (height, width) pairs.
    """
    N, C, H, Wd = x.shape
    OC, C_w, KH, KW = W.shape
    if C_w != C:
        raise ValueError(f"x has {C} channels but W expects {C_w}")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    OH = conv_out_size(H, KH, sh, ph, dh)
    OW = conv_out_size(Wd, KW, sw, pw, dw)
    y = np.zeros((N, OC, OH, OW), dtype=x.dtype)
    for n in range(N):
        for oc in range(OC):
            for oh in range(OH):
                for ow in range(OW):
                    acc = 0.0 if b is None else float(b[oc])
                    for c in range(C):
                        for kh in range(KH):
                            for kw in range(KW):
                                h = oh * sh - ph + kh * dh  # the input pixel this tap reads
                                w = ow * sw - pw + kw * dw
                                if 0 <= h < H and 0 <= w < Wd:  # outside: zero padding
                                    acc += float(W[oc, c, kh, kw]) * float(x[n, c, h, w])
                    y[n, oc, oh, ow] = acc
    return y


def conv2d_naive_backward(gy, x, W, stride=1, padding=0, dilation=1):
    """(gx, gW, gb) of :func:`conv2d_naive` by the same loops, given gy = dL/dy (N, OC, OH, OW).

    Returns gx (N, C, H, W), gW (OC, C, KH, KW), gb (OC,), in x's dtype (accumulated in float64).
    """
    N, C, H, Wd = x.shape
    OC, _, KH, KW = W.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    OH, OW = gy.shape[2:]
    gx = np.zeros(x.shape, dtype=np.float64)
    gW = np.zeros(W.shape, dtype=np.float64)
    gb = np.zeros(OC, dtype=np.float64)
    for n in range(N):
        for oc in range(OC):
            for oh in range(OH):
                for ow in range(OW):
                    g = float(gy[n, oc, oh, ow])
                    gb[oc] += g  # d y / d b[oc] = 1
                    for c in range(C):
                        for kh in range(KH):
                            for kw in range(KW):
                                h = oh * sh - ph + kh * dh
                                w = ow * sw - pw + kw * dw
                                if 0 <= h < H and 0 <= w < Wd:
                                    gW[oc, c, kh, kw] += g * float(x[n, c, h, w])  # dy/dW = x
                                    gx[n, c, h, w] += g * float(W[oc, c, kh, kw])  # dy/dx = W
    dt = x.dtype
    return gx.astype(dt), gW.astype(dt), gb.astype(dt)
