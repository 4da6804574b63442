"""Direct convolution for short receptive fields: each output from the input where it lies.

Shapes as in tinyconv/ops/conv.py: x (N, C, H, W), W (OC, C, KH, KW), b (OC,), y (N, OC, OH,
OW); K = C*KH*KW, the length of one receptive field. Stride 1 only (see
:func:`direct_applies`)::

    y[n, oc, oh, ow] = b[oc] + sum over c, i, j of W[oc, c, i, j] * xp[n, c, oh + i*DH, ow + j*DW]

xp being x with PH zero rows above and below, PW zero columns left and right (Hp x Wp).

**Why.** im2col + GEMM writes the column matrix (K values per output position), multiplies it
(OC x K times K x N*OH*OW), then moves the (OC, N*OH*OW) product into y's (N, OC, OH, OW)
layout with the bias. For a first layer K is 9..75: the GEMM has a tiny inner dimension and
moving the arrays costs more than its arithmetic. The direct loops read x once per sample and
write y once, in its final layout, bias included.

**How (the fast loops).** One sample per task (threads split the batch). The sample is copied
into a zero-padded buffer xp, planes one after the other, so no tap needs a bounds test. Read a
plane as a flat array of rows of Wp pixels: output (oh, ow) of tap (c, i, j) is pixel
q + shift of that flat array, q = oh*Wp + ow, shift = c*Hp*Wp + i*DH*Wp + j*DW, the same for
every q. So each tap is one long loop over q (all rows of the output at once, "wide" rows of Wp
values of which the last Wp - OW are dropped at the end) that compiles to vector instructions::

    acc[q] = W[oc, 0] * xp[shift_0 + q];   acc[q] += W[oc, t] * xp[shift_t + q] for the other
    taps t;   y <- acc + b[oc]

The loop runs over L = OH*Wp rounded up to a multiple of 64 (the buffer has room for it), so it
has no scalar remainder (a scalar tail of up to 63 values cost as much as the vector body).
Two output channels and up to eight taps go together per pass (the first tap alone sets acc;
then eight taps per pass, four, one): each xp value read serves two channels, and acc is read
and written once per eight taps instead of once per tap. (Measured on one core, batch 64,
against four taps per pass after zeroing acc: 1x28x28 -> 32, k3 p1 0.59 ms instead of 0.69,
3x32x32 -> 64, k3 p1 4.0 instead of 4.5, 1x28x28 -> 6, k5 0.18 instead of 0.20.)

The sums are those of the GEMM in another order: equal to float rounding (not bit for bit).
The bias is added last, as after the GEMM, so that the fused ops of tinyconv/ops/fused.py, which
take the sums without it (``channel_major``, b None) and add it themselves, give the same bits
as the unfused Conv2d. ``conv2d_direct_reference`` is the formula on NumPy slices, tap by tap.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from tinyconv._threads import split_if

#: below this many multiply-adds (N*OC*K*OH*OW) the loops run on the calling thread alone
#: (tinyconv/_threads.py, split_if). Measured on 2 cores, batch 64, serial / split (ms):
#: 1x28x28 -> 6, k5 (6.8 M) 0.19 / 0.19, 6x12x12 -> 6, k5 (7.4 M) 0.24 / 0.25, 1x28x28 -> 32,
#: k3 p1 (16.5 M) 0.62 / 0.49 (OpenMP layer); on numba's workqueue layer (torch imported first)
#: the split small ones took 0.40 and 0.38-0.48. The CNN's training step with its four direct
#: loops serial instead of split: 2.2 instead of 2.3 ms (OpenMP), 2.35 instead of 3.9 (workqueue).
PARALLEL_MIN = 1 << 23
_BLOCK = 64  # wide rows are computed in multiples of this many values


def direct_applies(x_shape, W_shape, stride, padding, dilation):
    """True when :func:`conv2d_direct` computes this convolution: stride 1 on both axes,
    matching channels, at least one output position. ``stride``, ``padding``, ``dilation``:
    (height, width) pairs. Says nothing about speed (see :func:`direct_work`)."""
    if len(x_shape) != 4 or len(W_shape) != 4 or x_shape[1] != W_shape[1]:
        return False
    return tuple(stride) == (1, 1) and all(o >= 1 for o in _out_size(x_shape, W_shape, padding,
                                                                       dilation))


def direct_work(x_shape, W_shape, padding, dilation):
    """Multiply-adds the direct loops spend per output value: OC*K times the wide rows' overhead
    (OH*Wp rounded up to a multiple of 64, over OH*OW). The GEMM spends OC*K per value too, but
    at a higher rate, plus im2col's K and the layout move; tinyconv/ops/conv.py compares this
    figure with a measured limit."""
    OH, OW = _out_size(x_shape, W_shape, padding, dilation)
    wide = -(-OH * (x_shape[3] + 2 * padding[1]) // _BLOCK) * _BLOCK
    return W_shape[0] * W_shape[1] * W_shape[2] * W_shape[3] * wide / (OH * OW)


def _out_size(x_shape, W_shape, padding, dilation):
    return tuple(x_shape[2 + a] + 2 * padding[a] - dilation[a] * (W_shape[2 + a] - 1)
                 for a in (0, 1))


def conv2d_direct_reference(x, W, b=None, padding=(0, 0), dilation=(1, 1), channel_major=False):
    """The formula of the module docstring, one tap (c, i, j) at a time over NumPy slices of the
    padded input. Returns y (N, OC, OH, OW), or (OC, N, OH, OW) when ``channel_major`` (the
    layout of the GEMM's output that the fused ops read)."""
    (ph, pw), (dh, dw) = padding, dilation
    OC, C, KH, KW = W.shape
    OH, OW = _out_size(x.shape, W.shape, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((x.shape[0], OC, OH, OW), dtype=np.result_type(x, W))
    for oc in range(OC):
        for c in range(C):
            for i in range(KH):
                for j in range(KW):
                    y[:, oc] += W[oc, c, i, j] * xp[:, c, i * dh:i * dh + OH, j * dw:j * dw + OW]
        if b is not None:  # last, as the fast loops add it
            y[:, oc] += b[oc]
    return np.ascontiguousarray(y.transpose(1, 0, 2, 3)) if channel_major else y


@njit(cache=True, inline="always")
def _tap_shifts(C, KH, KW, Hp, Wp, dh, dw):
    """shifts[t]: where tap t = (c, i, j) starts in a flat padded sample of C planes of Hp x Wp
    (module docstring: output q of the tap reads pixel q + shift)."""
    shifts = np.empty(C * KH * KW, dtype=np.intp)
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                shifts[(c * KH + i) * KW + j] = c * Hp * Wp + i * dh * Wp + j * dw
    return shifts


@njit(cache=True, inline="always")
def _pad_into(xp, sample, ph, pw, Hp, Wp):
    """Copy one sample (C, H, W) into the flat buffer xp of its zero-padded planes (C, Hp, Wp);
    the padding itself is never written (xp starts as zeros and keeps them)."""
    C, H, Wd = sample.shape
    for c in range(C):
        for h in range(H):
            start = c * Hp * Wp + (h + ph) * Wp + pw
            dst, src = xp[start:start + Wd], sample[c, h]
            for w in range(Wd):
                dst[w] = src[w]


@njit(cache=True, parallel=True)
def _direct_loops(x, W, b, y, ph, pw, dh, dw, channel_major):
    N, C, H, Wd = x.shape
    OC, _, KH, KW = W.shape
    OH, OW = H + 2 * ph - dh * (KH - 1), Wd + 2 * pw - dw * (KW - 1)
    Hp, Wp = H + 2 * ph, Wd + 2 * pw
    L = (OH * Wp + _BLOCK - 1) // _BLOCK * _BLOCK  # wide rows, rounded up (module docstring)
    K = C * KH * KW
    shifts = _tap_shifts(C, KH, KW, Hp, Wp, dh, dw)  # tap t = (c, i, j) reads xp[shifts[t] + q]
    W2 = W.reshape(OC, K)
    for n in prange(N):
        xp = np.zeros(shifts[K - 1] + L, dtype=y.dtype)  # the padded sample, and room to read on
        _pad_into(xp, x[n], ph, pw, Hp, Wp)
        acc = np.empty((2, L), dtype=y.dtype)
        a0, a1 = acc[0], acc[1]
        for oc0 in range(0, OC, 2):  # two channels per pass (the second repeats an odd last)
            oc1 = min(oc0 + 1, OC - 1)
            r0, r1 = W2[oc0], W2[oc1]
            s0, u0, v0 = xp[shifts[0]:shifts[0] + L], r0[0], r1[0]
            for q in range(L):  # the first tap sets acc
                e0 = s0[q]
                a0[q] = u0 * e0
                a1[q] = v0 * e0
            t = 1
            while t + 8 <= K:  # eight taps per pass
                s0, s1 = xp[shifts[t]:shifts[t] + L], xp[shifts[t + 1]:shifts[t + 1] + L]
                s2, s3 = xp[shifts[t + 2]:shifts[t + 2] + L], xp[shifts[t + 3]:shifts[t + 3] + L]
                s4, s5 = xp[shifts[t + 4]:shifts[t + 4] + L], xp[shifts[t + 5]:shifts[t + 5] + L]
                s6, s7 = xp[shifts[t + 6]:shifts[t + 6] + L], xp[shifts[t + 7]:shifts[t + 7] + L]
                u0, u1, u2, u3 = r0[t], r0[t + 1], r0[t + 2], r0[t + 3]
                u4, u5, u6, u7 = r0[t + 4], r0[t + 5], r0[t + 6], r0[t + 7]
                v0, v1, v2, v3 = r1[t], r1[t + 1], r1[t + 2], r1[t + 3]
                v4, v5, v6, v7 = r1[t + 4], r1[t + 5], r1[t + 6], r1[t + 7]
                for q in range(L):
                    e0, e1, e2, e3 = s0[q], s1[q], s2[q], s3[q]
                    e4, e5, e6, e7 = s4[q], s5[q], s6[q], s7[q]
                    a0[q] += (((u0 * e0 + u1 * e1) + (u2 * e2 + u3 * e3))
                              + ((u4 * e4 + u5 * e5) + (u6 * e6 + u7 * e7)))
                    a1[q] += (((v0 * e0 + v1 * e1) + (v2 * e2 + v3 * e3))
                              + ((v4 * e4 + v5 * e5) + (v6 * e6 + v7 * e7)))
                t += 8
            while t + 4 <= K:  # then four
                s0, s1 = xp[shifts[t]:shifts[t] + L], xp[shifts[t + 1]:shifts[t + 1] + L]
                s2, s3 = xp[shifts[t + 2]:shifts[t + 2] + L], xp[shifts[t + 3]:shifts[t + 3] + L]
                u0, u1, u2, u3 = r0[t], r0[t + 1], r0[t + 2], r0[t + 3]
                v0, v1, v2, v3 = r1[t], r1[t + 1], r1[t + 2], r1[t + 3]
                for q in range(L):
                    e0, e1, e2, e3 = s0[q], s1[q], s2[q], s3[q]
                    a0[q] += (u0 * e0 + u1 * e1) + (u2 * e2 + u3 * e3)
                    a1[q] += (v0 * e0 + v1 * e1) + (v2 * e2 + v3 * e3)
                t += 4
            while t < K:  # and the rest one by one
                s0, u0, v0 = xp[shifts[t]:shifts[t] + L], r0[t], r1[t]
                for q in range(L):
                    e0 = s0[q]
                    a0[q] += u0 * e0
                    a1[q] += v0 * e0
                t += 1
            for k in range(min(2, OC - oc0)):  # the wide rows' first OW values, + b -> y
                oc = oc0 + k
                row, bias = y[oc * N + n] if channel_major else y[n * OC + oc], b[oc]
                for oh in range(OH):
                    dst, src = row[oh * OW:(oh + 1) * OW], acc[k, oh * Wp:oh * Wp + OW]
                    for ow in range(OW):
                        dst[ow] = src[ow] + bias


def conv2d_direct(x, W, b=None, padding=(0, 0), dilation=(1, 1), channel_major=False):
    """Fast version of :func:`conv2d_direct_reference` (stride 1; see :func:`direct_applies`).

    x (N, C, H, W), W (OC, C, KH, KW), b (OC,) or None; ``padding``, ``dilation``: (height,
    width) pairs. Returns y (N, OC, OH, OW), or (OC, N, OH, OW) when ``channel_major``, in the
    result type of x and W.
    """
    dtype = np.result_type(x, W)
    N, OC = x.shape[0], W.shape[0]
    OH, OW = _out_size(x.shape, W.shape, padding, dilation)
    y = np.empty((OC, N, OH, OW) if channel_major else (N, OC, OH, OW), dtype=dtype)
    if y.size == 0:
        return y
    bias = np.zeros(OC, dtype) if b is None else np.ascontiguousarray(b, dtype=dtype)
    work = y.size * W[0].size
    split_if(_direct_loops, work, PARALLEL_MIN)(
        np.ascontiguousarray(x, dtype=dtype), np.ascontiguousarray(W, dtype=dtype), bias,
        y.reshape(N * OC, OH * OW), padding[0], padding[1], dilation[0], dilation[1],
        channel_major)
    return y


# ---------------------------------------------------------------------------------------------
# the weight gradient, by the same wide rows
#
#     gW[oc, c, i, j] = sum over n, oh, ow of gy[n, oc, oh, ow] * xp[n, c, oh + i*DH, ow + j*DW]
#
# Per sample, gy[n, oc] is laid out as wide rows of Wp values (zeros in the Wp - OW dropped
# columns and after the end), so the sum over (oh, ow) is one dot product of two flat arrays,
# g and xp[shift_t:]: four taps and two channels per pass, eight sums, no array written.
# Threads split the batch into one run of samples each (allocating the two buffers once per
# run, not per sample, took 1x28x28 -> 32, k3 p1 from 0.85 to 0.66 ms and 6x12x12 -> 6, k5
# from 0.28 to 0.18); each sample's (OC, K) sums are added up in sample order afterwards.


def conv2d_direct_weight_grad_reference(gY, x, kernel_size, padding=(0, 0), dilation=(1, 1)):
    """gW (OC, C, KH, KW) of a stride-1 convolution of x (N, C, H, W), given gY (OC, N, OH*OW),
    the output gradient channel-major (the GEMM's layout, as tinyconv/ops/conv.py has it): the
    formula above, one tap at a time over NumPy slices."""
    (ph, pw), (dh, dw), (KH, KW) = padding, dilation, kernel_size
    N, C = x.shape[:2]
    OC = gY.shape[0]
    OH, OW = _out_size(x.shape, (OC, C, KH, KW), padding, dilation)
    gy = gY.reshape(OC, N, OH, OW)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gW = np.empty((OC, C, KH, KW), dtype=np.result_type(gY, x))
    for oc in range(OC):
        for c in range(C):
            for i in range(KH):
                for j in range(KW):
                    gW[oc, c, i, j] = np.sum(
                        gy[oc] * xp[:, c, i * dh:i * dh + OH, j * dw:j * dw + OW])
    return gW


@njit(cache=True, parallel=True, fastmath={"reassoc"})  # reassoc: the dot products in vectors
def _weight_grad_loops(gY, x, gWn, KH, KW, ph, pw, dh, dw, parts):
    N, C, H, Wd = x.shape
    OC, K = gWn.shape[1], gWn.shape[2]
    OH, OW = H + 2 * ph - dh * (KH - 1), Wd + 2 * pw - dw * (KW - 1)
    Hp, Wp = H + 2 * ph, Wd + 2 * pw
    L = (OH * Wp + _BLOCK - 1) // _BLOCK * _BLOCK
    shifts = _tap_shifts(C, KH, KW, Hp, Wp, dh, dw)
    for part in prange(parts):  # one run of samples per thread, its buffers reused
        xp = np.zeros(shifts[K - 1] + L, dtype=x.dtype)  # the padding stays 0
        g = np.zeros((OC, L), dtype=gY.dtype)  # gy[n] as wide rows; the rest stays 0
        for n in range(part * N // parts, (part + 1) * N // parts):
            _pad_into(xp, x[n], ph, pw, Hp, Wp)
            for oc in range(OC):
                for oh in range(OH):
                    dst, src = g[oc, oh * Wp:oh * Wp + OW], gY[oc, n, oh * OW:(oh + 1) * OW]
                    for ow in range(OW):
                        dst[ow] = src[ow]
            out = gWn[n]
            for oc0 in range(0, OC, 2):
                oc1 = min(oc0 + 1, OC - 1)
                g0, g1 = g[oc0], g[oc1]
                t = 0
                while t < K:  # four taps per pass (the last pass repeats the last tap as needed)
                    t1, t2, t3 = min(t + 1, K - 1), min(t + 2, K - 1), min(t + 3, K - 1)
                    s0, s1 = xp[shifts[t]:shifts[t] + L], xp[shifts[t1]:shifts[t1] + L]
                    s2, s3 = xp[shifts[t2]:shifts[t2] + L], xp[shifts[t3]:shifts[t3] + L]
                    d00 = d01 = d02 = d03 = d10 = d11 = d12 = d13 = gWn.dtype.type(0)
                    for q in range(L):
                        e0, e1, e2, e3, f0, f1 = s0[q], s1[q], s2[q], s3[q], g0[q], g1[q]
                        d00 += f0 * e0
                        d01 += f0 * e1
                        d02 += f0 * e2
                        d03 += f0 * e3
                        d10 += f1 * e0
                        d11 += f1 * e1
                        d12 += f1 * e2
                        d13 += f1 * e3
                    out[oc0, t], out[oc0, t1], out[oc0, t2], out[oc0, t3] = d00, d01, d02, d03
                    out[oc1, t], out[oc1, t1], out[oc1, t2], out[oc1, t3] = d10, d11, d12, d13
                    t += 4


def conv2d_direct_weight_grad(gY, x, kernel_size, padding=(0, 0), dilation=(1, 1)):
    """Fast version of :func:`conv2d_direct_weight_grad_reference`: gW (OC, C, KH, KW) from
    gY (OC, N, OH*OW) and x (N, C, H, W), stride 1."""
    dtype = np.result_type(gY, x)
    N, C = x.shape[:2]
    OC, (KH, KW) = gY.shape[0], kernel_size
    OH, OW = _out_size(x.shape, (OC, C, KH, KW), padding, dilation)
    per_sample = np.zeros((N, OC, C * KH * KW), dtype=dtype)
    if per_sample.size and OH * OW:
        split_if(_weight_grad_loops, per_sample.size * OH * OW, PARALLEL_MIN)(
            np.ascontiguousarray(gY, dtype=dtype).reshape(OC, N, OH * OW),
            np.ascontiguousarray(x, dtype=dtype), per_sample, KH, KW, padding[0], padding[1],
            dilation[0], dilation[1], min(N, numba.get_num_threads()))
    return per_sample.sum(axis=0).reshape(OC, C, KH, KW)
