"""Tests for tinyconv/kernels: each numba kernel against its plain-loop twin, and the twins
against independent oracles (the adjoint identity, the output-size inequality, PyTorch).

Oracles, in order of independence:
  * ``*_reference`` twins (plain loops written from the docstring formula) for the numba kernels;
  * the adjoint identity sum(im2col(x) * c) == sum(x * col2im(c)) for col2im;
  * the defining inequality of ``conv_out_size``;
  * ``torch.nn.functional.conv2d`` / ``max_pool2d`` for the reference twins themselves.
"""

import contextlib
import importlib
import inspect
import math
import pkgutil
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import tinyconv.kernels
from tinyconv.kernels import activation as activation_kernels
from tinyconv.kernels import conv as conv_kernels
from tinyconv.kernels import fused
from tinyconv.kernels import pool as pool_kernels
from tinyconv.kernels.activation import (
    NUMPY_MAX,
    relu_backward,
    relu_backward_reference,
    relu_forward,
    relu_forward_reference,
)
from tinyconv.kernels.batchnorm import (
    batch_norm_backward,
    batch_norm_backward_reference,
    batch_norm_eval,
    batch_norm_eval_reference,
    batch_norm_forward,
    batch_norm_forward_reference,
    batch_norm_stats,
    batch_norm_stats_reference,
    channel_stats,
    channel_stats_reference,
)
from tinyconv.kernels.bias import add_bias_rows, add_bias_rows_reference
from tinyconv.kernels.conv import (
    col2im,
    col2im_reference,
    conv_out_size,
    im2col,
    im2col_reference,
    to_batch_major,
    to_batch_major_reference,
    to_channel_major,
    to_channel_major_reference,
)
from tinyconv.kernels.optim import adam_update, adam_update_reference
from tinyconv.kernels.pool import (
    max_of_window,
    max_of_window_reference,
    maxpool2d_backward,
    maxpool2d_backward_reference,
    maxpool2d_forward,
    maxpool2d_forward_reference,
)
from tinyconv.kernels.softmax import (
    log_softmax_rows,
    log_softmax_rows_backward,
    log_softmax_rows_backward_reference,
    log_softmax_rows_reference,
)
from tinyconv.ops.conv import _weight_grad_t

torch = pytest.importorskip("torch")


@contextlib.contextmanager
def kernels_split(split):
    """Run the kernels of conv, pool and activation on numba's threads (``split``) or on the
    calling thread alone, whatever the size: the tests' arrays are small, and the size
    thresholds (``PARALLEL_MIN``) would otherwise always pick the serial twin."""
    modules = [(conv_kernels, "PARALLEL_MIN"), (conv_kernels, "LAYOUT_PARALLEL_MIN"),
               (pool_kernels, "PARALLEL_MIN"), (activation_kernels, "PARALLEL_MIN")]
    saved = [getattr(m, name) for m, name in modules]
    for m, name in modules:
        setattr(m, name, 0 if split else sys.maxsize)
    try:
        yield
    finally:
        for (m, name), value in zip(modules, saved, strict=True):
            setattr(m, name, value)

DTYPES = [np.float32, np.float64]
HYP = settings(max_examples=40, deadline=None, database=None)


# ---- strategies ---------------------------------------------------------------------------


@st.composite
def conv_geometry(draw, max_side=7):
    """(x_shape, kh, kw, stride, padding, dilation) with at least one output position.

    Half of them are "same" convolutions (stride 1, no dilation, padding (K - 1) / 2), which
    im2col and col2im send down their own, faster loops.
    """
    N = draw(st.integers(1, 2))
    C = draw(st.integers(1, 3))
    if draw(st.booleans(), label="same"):
        kh, kw = draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5]))
        stride, padding, dilation = (1, 1), ((kh - 1) // 2, (kw - 1) // 2), (1, 1)
    else:
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    # the padded input must hold one dilated kernel
    min_h = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0])
    min_w = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1])
    H = draw(st.integers(min_h, max(min_h, max_side)))
    W = draw(st.integers(min_w, max(min_w, max_side)))
    return (N, C, H, W), kh, kw, stride, padding, dilation


@st.composite
def pool_geometry(draw, max_side=8):
    """A max-pool configuration torch accepts: padding <= half the kernel size.

    With dilation a window may then lie entirely in the padding (kernel 2, dilation 2,
    padding 1 on a 1-pixel input): such windows are -inf and send no gradient.
    """
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    eff = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    ceil_mode = draw(st.booleans())
    H = draw(st.integers(max(1, eff[0] - 2 * padding[0]), max_side))
    W = draw(st.integers(max(1, eff[1] - 2 * padding[1]), max_side))
    OH = conv_out_size(H, kh, stride[0], padding[0], dilation[0], ceil_mode)
    OW = conv_out_size(W, kw, stride[1], padding[1], dilation[1], ceil_mode)
    return (N, C, H, W), kh, kw, stride, padding, dilation, ceil_mode, (OH, OW)


def draw_array(data, shape, dtype, ties=False):
    """Random array; with ``ties`` few distinct values so that windows hold equal maxima.

    Half the time the array is a non-contiguous view (a transposed or strided copy).
    """
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(-2, 3, size=shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    layout = data.draw(st.sampled_from(["contiguous", "transposed", "strided"]), label="layout")
    if layout == "transposed":  # same values, Fortran-ordered memory
        x = np.asfortranarray(x)
    elif layout == "strided":  # every other element of a bigger buffer
        big = np.zeros(shape[:-1] + (2 * shape[-1],), dtype=dtype)
        big[..., ::2] = x
        x = big[..., ::2]  # (a size-1 last axis leaves it contiguous all the same)
    return x


def out_hw(x_shape, kh, kw, stride, padding, dilation):
    return (conv_out_size(x_shape[2], kh, stride[0], padding[0], dilation[0]),
            conv_out_size(x_shape[3], kw, stride[1], padding[1], dilation[1]))


# ---- conv_out_size ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(size=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 5), p=st.integers(0, 4),
       d=st.integers(1, 3))
def test_conv_out_size_defining_inequality(size, k, s, p, d):
    eff = d * (k - 1) + 1
    if size + 2 * p < eff:
        return  # no window fits; the formula is not used there (conv2d rejects it)
    out = conv_out_size(size, k, s, p, d)
    assert out >= 1
    last_end = (out - 1) * s + eff  # end (exclusive) of the last window, in padded coordinates
    assert last_end <= size + 2 * p  # the last window fits in the padded input
    assert last_end + s > size + 2 * p  # one more window would not


@settings(max_examples=300, deadline=None, database=None)
@given(size=st.integers(1, 30), k=st.integers(1, 6), s=st.integers(1, 5), d=st.integers(1, 3),
       p_frac=st.floats(0, 1), ceil_mode=st.booleans())
def test_conv_out_size_matches_torch_max_pool2d(size, k, s, d, p_frac, ceil_mode):
    eff = d * (k - 1) + 1
    p = int(p_frac * (k // 2))  # torch: padding at most half the kernel size
    if size + 2 * p < eff:
        return
    x = torch.zeros(1, 1, size, 1)
    y = torch.nn.functional.max_pool2d(x, (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=ceil_mode)
    assert conv_out_size(size, k, s, p, d, ceil_mode) == y.shape[2]


def test_conv_out_size_ceil_mode_examples():
    # 5 wide, kernel 2, stride 2: floor gives 2 windows, ceil adds the partial one at 4
    assert conv_out_size(5, 2, 2) == 2
    assert conv_out_size(5, 2, 2, ceil_mode=True) == 3
    # a partial window that would start in the right padding is dropped (torch's rule)
    assert conv_out_size(4, 3, 3, 1, ceil_mode=True) == 2


# ---- im2col / col2im vs their reference twins ---------------------------------------------


@HYP
@given(geom=conv_geometry(), dtype=st.sampled_from(DTYPES), split=st.booleans(), data=st.data())
def test_im2col_equals_reference(geom, dtype, split, data):
    x_shape, kh, kw, stride, padding, dilation = geom
    x = draw_array(data, x_shape, dtype)
    with kernels_split(split):
        cols = im2col(x, kh, kw, stride, padding, dilation)
    ref = im2col_reference(x, kh, kw, stride, padding, dilation)
    assert cols.dtype == ref.dtype == dtype
    OH, OW = out_hw(x_shape, kh, kw, stride, padding, dilation)
    assert cols.shape == (x_shape[1] * kh * kw, x_shape[0] * OH * OW)
    np.testing.assert_array_equal(cols, ref)  # a copy: bit for bit


@HYP
@given(geom=conv_geometry(), dtype=st.sampled_from(DTYPES), split=st.booleans(), data=st.data())
def test_col2im_equals_reference(geom, dtype, split, data):
    x_shape, kh, kw, stride, padding, dilation = geom
    OH, OW = out_hw(x_shape, kh, kw, stride, padding, dilation)
    cols = draw_array(data, (x_shape[1] * kh * kw, x_shape[0] * OH * OW), dtype)
    with kernels_split(split):
        x = col2im(cols, x_shape, kh, kw, stride, padding, dilation)
    ref = col2im_reference(cols, x_shape, kh, kw, stride, padding, dilation)
    assert x.dtype == ref.dtype == dtype and x.shape == x_shape
    # NOTE: allclose, not equal: col2im sums overlapping windows, and a kernel is free to add
    # them in another order than the reference (today's loops happen to use the same order).
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(x, ref, rtol=rtol, atol=rtol)


@HYP
@given(geom=conv_geometry(), data=st.data())
def test_col2im_is_the_adjoint_of_im2col(geom, data):
    x_shape, kh, kw, stride, padding, dilation = geom
    OH, OW = out_hw(x_shape, kh, kw, stride, padding, dilation)
    x = draw_array(data, x_shape, np.float64)
    c = draw_array(data, (x_shape[1] * kh * kw, x_shape[0] * OH * OW), np.float64)
    lhs = np.sum(im2col(x, kh, kw, stride, padding, dilation) * c)
    rhs = np.sum(x * col2im(c, x_shape, kh, kw, stride, padding, dilation))
    scale = np.sum(np.abs(im2col(x, kh, kw, stride, padding, dilation) * c)) + 1.0
    assert abs(lhs - rhs) <= 1e-12 * scale


def test_col2im_counts_window_overlaps():
    # col2im of all-ones columns counts, for each pixel, the windows that contain it
    x_shape, k = (1, 1, 4, 4), 3
    cols = np.ones((9, 4))
    counts = col2im(cols, x_shape, k, k)
    expected = np.array([[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]], dtype=float)
    np.testing.assert_array_equal(counts[0, 0], expected)


@HYP
@given(geom=conv_geometry(max_side=6), oc=st.integers(1, 3), data=st.data())
def test_im2col_reference_conv_equals_torch_conv2d(geom, oc, data):
    # The reference twin against an independent oracle: conv as W @ im2col equals torch's.
    x_shape, kh, kw, stride, padding, dilation = geom
    N, C = x_shape[:2]
    x = draw_array(data, x_shape, np.float64)
    W = draw_array(data, (oc, C, kh, kw), np.float64)
    OH, OW = out_hw(x_shape, kh, kw, stride, padding, dilation)
    y = W.reshape(oc, -1) @ im2col_reference(x, kh, kw, stride, padding, dilation)
    y = y.reshape(oc, N, OH, OW).transpose(1, 0, 2, 3)
    expected = torch.nn.functional.conv2d(torch.from_numpy(np.ascontiguousarray(x)),
                                          torch.from_numpy(np.ascontiguousarray(W)),
                                          stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_im2col_column_layout_by_hand():
    # 1 sample, 2 channels, 3x3 input, 2x2 kernel: row (c, kh, kw), column (oh, ow)
    x = np.arange(18, dtype=np.float64).reshape(1, 2, 3, 3)
    cols = im2col(x, 2, 2)
    assert cols.shape == (8, 4)
    np.testing.assert_array_equal(cols[:, 0], [0, 1, 3, 4, 9, 10, 12, 13])
    np.testing.assert_array_equal(cols[:, 3], [4, 5, 7, 8, 13, 14, 16, 17])
    padded = im2col(x, 2, 2, padding=(1, 1))
    np.testing.assert_array_equal(padded[:, 0], [0, 0, 0, 0, 0, 0, 0, 9])  # only x[0, 1, 0, 0]


# ---- max pooling --------------------------------------------------------------------------


@HYP
@given(geom=pool_geometry(), dtype=st.sampled_from(DTYPES), ties=st.booleans(),
       nan_frac=st.sampled_from([0.0, 0.0, 0.2, 0.6]), split=st.booleans(), data=st.data())
def test_maxpool2d_forward_equals_reference(geom, dtype, ties, nan_frac, split, data):
    x_shape, kh, kw, stride, padding, dilation, _, (OH, OW) = geom
    x = draw_array(data, x_shape, dtype, ties=ties)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="nan seed"))
    r = rng.random(x_shape)  # NaN and -inf (a window of -inf keeps its first valid tap)
    x = np.where(r < nan_frac / 2, np.nan, np.where(r < nan_frac, -np.inf, x)).astype(dtype)
    args = (kh, kw, stride, padding, dilation, OH, OW)
    with kernels_split(split):
        y, idx = maxpool2d_forward(x, *args)
        y_only, _ = maxpool2d_forward(x, *args, indices=False)  # evaluation's loops
    y_ref, idx_ref = maxpool2d_forward_reference(x, *args)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(y_only, y_ref)


@HYP
@given(geom=pool_geometry(), dtype=st.sampled_from(DTYPES), split=st.booleans(), data=st.data())
def test_maxpool2d_backward_equals_reference(geom, dtype, split, data):
    x_shape, kh, kw, stride, padding, dilation, _, (OH, OW) = geom
    x = draw_array(data, x_shape, dtype, ties=True)
    _, idx = maxpool2d_forward_reference(x, kh, kw, stride, padding, dilation, OH, OW)
    gy = draw_array(data, x_shape[:2] + (OH, OW), dtype)
    with kernels_split(split):
        gx = maxpool2d_backward(gy, idx, x_shape)
    ref = maxpool2d_backward_reference(gy, idx, x_shape)
    assert gx.dtype == dtype and gx.shape == x_shape
    # exact: both scatter each plane's gradients in the same (oh, ow) order
    np.testing.assert_array_equal(gx, ref)
    # nothing is lost: every output gradient of a window with an input pixel lands somewhere
    sent = np.where(idx >= 0, gy, 0).sum(axis=(2, 3), dtype=np.float64)
    np.testing.assert_allclose(gx.sum(axis=(2, 3), dtype=np.float64), sent, rtol=1e-5,
                               atol=1e-5)


@HYP
@given(k=st.sampled_from([(2, 2), (3, 3), (2, 3), (1, 1)]), n=st.integers(1, 3),
       c=st.integers(1, 3), extra=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dtype=st.sampled_from(DTYPES), nan_frac=st.sampled_from([0.0, 0.2, 0.6]),
       split=st.booleans(), data=st.data())
def test_maxpool2d_tiled_fast_path_equals_reference(k, n, c, extra, dtype, nan_frac, split, data):
    # windows that tile the input (stride == kernel, no padding) take their own loops, the 2x2
    # case its own again; rows/columns left over past the last whole window are ignored
    kh, kw = k
    OH, OW = data.draw(st.integers(1, 4), label="OH"), data.draw(st.integers(1, 4), label="OW")
    x_shape = (n, c, OH * kh + extra[0] % kh, OW * kw + extra[1] % kw)
    x = draw_array(data, x_shape, dtype, ties=True)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="nan seed"))
    x = np.where(rng.random(x_shape) < nan_frac, np.nan, x).astype(dtype)
    args = (kh, kw, (kh, kw), (0, 0), (1, 1), OH, OW)
    with kernels_split(split):
        y, idx = maxpool2d_forward(x, *args)
        y_only, _ = maxpool2d_forward(x, *args, indices=False)  # evaluation's loops
    y_ref, idx_ref = maxpool2d_forward_reference(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_array_equal(y_only, y_ref)


def torch_max_pool(x, kh, kw, stride, padding, dilation, ceil_mode):
    return torch.nn.functional.max_pool2d(torch.from_numpy(np.ascontiguousarray(x)), (kh, kw),
                                          stride, padding, dilation, ceil_mode=ceil_mode,
                                          return_indices=True)


@HYP
@given(geom=pool_geometry(), dtype=st.sampled_from(DTYPES), ties=st.booleans(), data=st.data())
def test_maxpool2d_reference_equals_torch(geom, dtype, ties, data):
    # values and flat indices (ties: the first maximum in window order, as torch's CPU kernel)
    x_shape, kh, kw, stride, padding, dilation, ceil_mode, (OH, OW) = geom
    x = draw_array(data, x_shape, dtype, ties=ties)
    y, idx = maxpool2d_forward_reference(x, kh, kw, stride, padding, dilation, OH, OW)
    ty, tidx = torch_max_pool(x, kh, kw, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(y, ty.numpy())
    assert_indices_match_torch(idx, tidx.numpy(), y)


def assert_indices_match_torch(idx, tidx, y):
    """Equal flat indices, except windows lying entirely in the padding.

    There tinyconv stores -1 (no input pixel) and torch an index past the input's end (its
    first in-window position, which is not a pixel); both outputs are -inf.
    """
    in_padding = idx == -1
    assert np.all(np.isneginf(y[in_padding]))
    np.testing.assert_array_equal(idx[~in_padding], tidx[~in_padding])


@HYP
@given(geom=pool_geometry(), dtype=st.sampled_from(DTYPES), data=st.data(),
       nan_frac=st.sampled_from([0.1, 0.3, 0.6]))
def test_maxpool2d_nan_propagation_equals_torch(geom, dtype, data, nan_frac):
    # NaN wins over every number; with several NaNs in a window the index must be torch's too,
    # since backward routes the gradient to it.
    x_shape, kh, kw, stride, padding, dilation, ceil_mode, (OH, OW) = geom
    x = draw_array(data, x_shape, dtype)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="nan seed"))
    x = np.where(rng.random(x_shape) < nan_frac, np.nan, x).astype(dtype)
    ty, tidx = torch_max_pool(x, kh, kw, stride, padding, dilation, ceil_mode)
    for fn in (maxpool2d_forward, maxpool2d_forward_reference):
        y, idx = fn(x, kh, kw, stride, padding, dilation, OH, OW)
        np.testing.assert_array_equal(y, ty.numpy())  # NaN == NaN for assert_array_equal
        assert_indices_match_torch(idx, tidx.numpy(), y)


def test_maxpool2d_nan_by_hand():
    nan = math.nan
    x = np.array([[[[1.0, nan, 3.0, nan], [5.0, 6.0, 7.0, 8.0]]]])
    y, idx = maxpool2d_forward(x, 2, 2, (2, 2), (0, 0), (1, 1), 1, 2)
    assert np.isnan(y).all()
    ty, tidx = torch_max_pool(x, 2, 2, (2, 2), (0, 0), (1, 1), False)
    np.testing.assert_array_equal(idx, tidx.numpy())
    y, idx = maxpool2d_forward(x, 2, 4, (1, 1), (0, 0), (1, 1), 1, 1)  # two NaNs in one window
    ty, tidx = torch_max_pool(x, 2, 4, (1, 1), (0, 0), (1, 1), False)
    assert np.isnan(y).all()
    np.testing.assert_array_equal(idx, tidx.numpy())


def test_maxpool2d_padding_never_wins():
    # an all-negative input with padding: padded cells act as -inf, not 0
    x = -np.ones((1, 1, 2, 2)) - np.arange(4.0).reshape(1, 1, 2, 2)
    y, idx = maxpool2d_forward(x, 2, 2, (1, 1), (1, 1), (1, 1), 3, 3)
    assert (y < 0).all()
    ty, tidx = torch_max_pool(x, 2, 2, (1, 1), (1, 1), (1, 1), False)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())


@pytest.mark.parametrize("fwd, bwd", [(maxpool2d_forward, maxpool2d_backward),
                                      (maxpool2d_forward_reference, maxpool2d_backward_reference)])
def test_maxpool2d_window_in_padding_sends_no_gradient(fwd, bwd):
    # kernel 2 x 1, dilation 2, padding 1 on a 1-pixel-high input: the window's two cells are
    # rows -1 and 1, both padding. torch outputs -inf too.
    # NOTE: torch's backward is not used as the oracle here: its index for such a window points
    # past the input, and its CPU backward then reads out of bounds (it aborted the process).
    x = np.arange(1.0, 4.0).reshape(1, 1, 1, 3)
    y, idx = fwd(x, 2, 1, (1, 1), (1, 0), (2, 1), 1, 3)
    assert np.all(np.isneginf(y)) and np.all(idx == -1)
    ty = torch.nn.functional.max_pool2d(torch.from_numpy(x), (2, 1), 1, (1, 0), (2, 1))
    np.testing.assert_array_equal(y, ty.numpy())
    gx = bwd(np.ones_like(y), idx, x.shape)
    np.testing.assert_array_equal(gx, np.zeros_like(x))  # nothing wraps round to x[..., -1]


# ---- fused Adam update --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wd, amsgrad", [(0.0, False), (0.01, False), (0.0, True)])
@pytest.mark.parametrize("shape", [(37, 11), (300, 301)])  # serial and parallel loops
def test_adam_update_equals_reference_bit_for_bit(dtype, wd, amsgrad, shape):
    rng = np.random.default_rng(7)
    state = [rng.standard_normal(shape).astype(dtype) for _ in range(2)]  # p, g
    state += [rng.standard_normal(shape).astype(dtype) * 0.1, rng.random(shape).astype(dtype)]
    vmax = rng.random(shape).astype(dtype) if amsgrad else None
    dt = np.dtype(dtype).type
    scalars = (dt(wd), dt(1 - 0.9), dt(0.999), dt(1 - 0.999), dt(-1e-3 / (1 - 0.9 ** 3)),
               dt((1 - 0.999 ** 3) ** 0.5), dt(1e-8))
    fast = [a.copy() for a in state] + [None if vmax is None else vmax.copy()]
    ref = [a.copy() for a in state] + [None if vmax is None else vmax.copy()]
    adam_update(*fast, *scalars)
    adam_update_reference(*ref, *scalars)
    for name, a, b in zip(("p", "g", "m", "v", "vmax"), fast, ref, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(fast[0], state[0])  # the parameter did move


# ---- batch norm (training mode) -----------------------------------------------------------


@HYP
@given(shape=st.sampled_from([(5, 3), (4, 3, 5, 2), (2, 1, 7, 7), (3, 4, 1)]),
       dtype=st.sampled_from(DTYPES), data=st.data())
def test_batch_norm_kernels_equal_reference(shape, dtype, data):
    x = draw_array(data, shape, dtype) * 3 + 1
    C = shape[1]
    gamma = draw_array(data, (C,), dtype)
    beta = draw_array(data, (C,), dtype)
    gy = draw_array(data, shape, dtype)
    fast = batch_norm_forward(x, gamma, beta, 1e-5)
    ref = batch_norm_forward_reference(x, gamma, beta, 1e-5)
    # NOTE: allclose, not equal: the kernel accumulates its sums in float64, NumPy in the
    # input's dtype (pairwise); float64 agrees to rounding, float32 to a few ulps of the sums.
    rtol, atol = (1e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)
    for name, a, b in zip(("y", "xhat", "mu", "var", "invstd"), fast, ref, strict=True):
        assert a.dtype == b.dtype == dtype, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)
    xhat, invstd = ref[1], ref[4]
    for name, a, b in zip(("gx", "ggamma", "gbeta"),
                          batch_norm_backward(gy, xhat, gamma, invstd),
                          batch_norm_backward_reference(gy, xhat, gamma, invstd), strict=True):
        assert a.dtype == b.dtype == dtype, name
        np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol * 10, err_msg=name)


@HYP
@given(shape=st.sampled_from([(5, 3), (4, 3, 5, 2), (2, 1, 7, 7), (3, 4, 1)]),
       dtype=st.sampled_from(DTYPES), data=st.data())
def test_batch_norm_eval_kernel_equals_reference(shape, dtype, data):
    x = draw_array(data, shape, dtype)
    scale, shift = draw_array(data, (shape[1],), dtype), draw_array(data, (shape[1],), dtype)
    y = batch_norm_eval(x, scale, shift)
    assert y.dtype == dtype and y.shape == shape
    # exact: the same multiply and add per element, and no fused multiply-add on either side
    np.testing.assert_array_equal(y, batch_norm_eval_reference(x, scale, shift))


# ---- ReLU ---------------------------------------------------------------------------------


@HYP
@given(size=st.sampled_from([7, NUMPY_MAX, NUMPY_MAX + 12345]),
       dtype=st.sampled_from(DTYPES), special=st.booleans(), split=st.booleans(), data=st.data())
def test_relu_kernels_equal_reference(size, dtype, special, split, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.standard_normal(size).astype(dtype)
    gy = rng.standard_normal(size).astype(dtype)
    if special:  # exact zeros (gradient 0 there), NaN inputs, infinite gradients at dead units
        x[rng.random(size) < 0.1] = 0
        x[rng.random(size) < 0.05] = np.nan
        gy[rng.random(size) < 0.05] = np.inf
    x = x.reshape(1, -1) if size % 2 else x
    with kernels_split(split):
        y = relu_forward(x)
        gx = relu_backward(gy.reshape(x.shape), y)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, relu_forward_reference(x))
    np.testing.assert_array_equal(gx, relu_backward_reference(gy.reshape(x.shape), y))
    assert not np.isnan(gx).any()  # inf * 0 never made a NaN


def test_relu_matches_torch_on_special_values():
    x = np.array([-1.0, -0.0, 0.0, 2.0, np.nan, np.inf, -np.inf] * 10000, dtype=np.float32)
    gy = np.full_like(x, np.inf)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.relu(tx)
    ty.backward(torch.from_numpy(gy))
    y = relu_forward(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(relu_backward(gy, y), tx.grad.numpy())


# ---- a bias added to every row (Linear's forward) ---------------------------------------------


@HYP
@given(rows=st.integers(0, 40), features=st.integers(1, 17), dtype=st.sampled_from(DTYPES),
       strided=st.booleans(), data=st.data())
def test_add_bias_rows_equal_reference(rows, features, dtype, strided, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    y = rng.standard_normal((rows, 2 * features if strided else features)).astype(dtype)
    if strided:  # a view the loops do not take: the reference does it
        y = y[:, ::2]
    b = rng.standard_normal(features).astype(dtype)
    b[rng.random(features) < 0.2] = np.inf
    want = y.copy()
    add_bias_rows_reference(want, b)
    add_bias_rows(y, b)  # in place, like the reference
    np.testing.assert_array_equal(y, want)  # one addition per value: the same bits


# ---- log-softmax over the last axis ------------------------------------------------------------


@HYP
@given(rows=st.integers(1, 40), classes=st.integers(1, 17), lead=st.booleans(),
       dtype=st.sampled_from(DTYPES), special=st.booleans(), data=st.data())
def test_log_softmax_rows_equal_reference(rows, classes, lead, dtype, special, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = (rng.standard_normal((rows, classes)) * 30).astype(dtype)
    gy = rng.standard_normal((rows, classes)).astype(dtype)
    if special:  # NaN, +-inf, rows of -inf (NaN out, as the formula), huge logits
        for value in (np.nan, np.inf, -np.inf, 1e30 if dtype == np.float32 else 1e300):
            x[rng.random(x.shape) < 0.08] = value
        x[rng.random(rows) < 0.2] = -np.inf
    if lead:  # more leading axes, and a strided input
        x, gy = x.reshape(1, rows, classes), gy.reshape(1, rows, classes)
        x = np.concatenate([x, x], axis=-1)[..., ::2]
    y = log_softmax_rows(x)
    with np.errstate(invalid="ignore"):  # inf - inf in NumPy's formula
        want = log_softmax_rows_reference(x)
    assert y.dtype == dtype and y.shape == x.shape
    tol = 1e-5 if dtype == np.float32 else 1e-13  # sums in another order, exp/log of libm
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    gx = log_softmax_rows_backward(gy, y)
    with np.errstate(invalid="ignore"):
        gx_want = log_softmax_rows_backward_reference(gy, y)
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(gx_want))
    np.testing.assert_allclose(gx, gx_want, rtol=tol, atol=tol * np.abs(gy).sum(axis=-1).max())


def test_log_softmax_rows_match_torch():
    x = np.random.default_rng(0).standard_normal((1000, 10)).astype(np.float32) * 10
    x[0, 3], x[1] = np.nan, -np.inf
    x[2, 5] = np.inf
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.log_softmax(tx, 1)
    ty.backward(torch.from_numpy(gy))
    y = log_softmax_rows(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_softmax_rows_backward(gy, y), tx.grad.numpy(), rtol=1e-5,
                               atol=1e-5)


# ---- layout moves around the convolution's GEMM -------------------------------------------


@HYP
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 40)),
       dtype=st.sampled_from(DTYPES), bias=st.booleans(), split=st.booleans(), data=st.data())
def test_layout_moves_equal_reference(shape, dtype, bias, split, data):
    OC, N, L = shape
    Y = draw_array(data, (OC, N, L), dtype)
    b = draw_array(data, (OC,), dtype) if bias else None
    with kernels_split(split):
        y = to_batch_major(Y, b)
    assert y.dtype == dtype and y.shape == (N, OC, L)
    np.testing.assert_array_equal(y, to_batch_major_reference(Y, b))  # a copy (+ b): exact
    out = np.empty((N, OC, L), dtype)
    assert to_batch_major(Y, b, out=out) is out
    with kernels_split(split):
        gY, gb = to_channel_major(y)
    gY_ref, gb_ref = to_channel_major_reference(y)
    assert gY.dtype == gb.dtype == dtype
    np.testing.assert_array_equal(gY, gY_ref)
    # NOTE: allclose for the sums: the kernel adds in float64 in its own (vector) order
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(gb, gb_ref, rtol=rtol, atol=rtol)


# ---- batch statistics ---------------------------------------------------------------------


@HYP
@given(shape=st.sampled_from([(5, 3), (4, 3, 5, 2), (2, 1, 7, 7), (3, 4, 1)]),
       dtype=st.sampled_from(DTYPES), ties=st.booleans(), nan=st.booleans(), data=st.data())
def test_batch_norm_stats_equal_reference(shape, dtype, ties, nan, data):
    x = draw_array(data, shape, dtype, ties) * 3 + 1
    if nan:  # a NaN makes its channel's statistics NaN, on both sides
        x.flat[data.draw(st.integers(0, x.size - 1), label="nan at")] = np.nan
    # NOTE: allclose: both sum in float64, in different orders
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for name, a, b in zip(("mu", "var", "invstd"), batch_norm_stats(x, 1e-5),
                          batch_norm_stats_reference(x, 1e-5), strict=True):
        assert a.dtype == b.dtype == dtype, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, err_msg=name)
    x3 = np.ascontiguousarray(x).reshape(shape[0], shape[1], -1)
    for c in range(shape[1]):
        np.testing.assert_allclose(channel_stats(x3, c), channel_stats_reference(x3, c),
                                   rtol=1e-12, atol=1e-12)


# ---- the 2x2 window rule of max pooling ---------------------------------------------------


@HYP
@given(values=st.lists(st.sampled_from([-1.0, 0.0, -0.0, 1.0, 2.0, np.inf, -np.inf, np.nan]),
                       min_size=4, max_size=4), dtype=st.sampled_from(DTYPES))
def test_max_of_window_equals_reference(values, dtype):
    args = [dtype(v) for v in values]
    best, place = max_of_window(*args)
    best_ref, place_ref = max_of_window_reference(*args)
    assert place == place_ref, values  # the first maximum on ties; the last NaN
    np.testing.assert_array_equal(best, best_ref)


# ---- fused kernels (tinyconv/kernels/fused.py) --------------------------------------------


@st.composite
def fused_case(draw, data):
    """(x, pre, channel_major, gamma, beta, gy): an activation of even height and width, in the
    batch's layout (N, C, H, W) or a convolution's GEMM layout (C, N, H, W), maybe with the
    convolution's bias ``pre``, ties and a NaN."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    oh, ow = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    ties, channel_major = draw(st.booleans()), draw(st.booleans())
    shape = (c, n, 2 * oh, 2 * ow) if channel_major else (n, c, 2 * oh, 2 * ow)
    x = draw_array(data, shape, dtype, ties)
    if draw(st.booleans(), label="nan"):
        x = np.array(x)
        x.flat[draw(st.integers(0, x.size - 1))] = np.nan
    pre = draw_array(data, (c,), dtype, ties) if draw(st.booleans(), label="bias") else None
    gamma, beta = draw_array(data, (c,), dtype), draw_array(data, (c,), dtype)
    return x, pre, channel_major, gamma, beta, draw_array(data, (n, c, oh, ow), dtype)


def _tol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


@HYP
@given(data=st.data())
def test_fused_batch_norm_relu_pool_kernels_equal_reference(data):
    x, pre, channel_major, gamma, beta, gy = data.draw(fused_case(data))
    dtype, tol = x.dtype, _tol(x.dtype)
    layout = (channel_major, pre)
    # training, statistics on the way: both sum in float64, in different orders
    y, at, stats = fused.train_forward(x, gamma, beta, 1e-5, *layout)
    y_ref, _, stats_ref = fused.train_forward_reference(x, gamma, beta, 1e-5, *layout)
    for name, a, b in zip(("mu", "var", "invstd"), stats, stats_ref, strict=True):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=name)
    assert y.dtype == dtype and at.dtype == np.uint8
    np.testing.assert_allclose(y, y_ref, rtol=tol * 10, atol=tol * 10)
    # given the statistics, exact in both modes: the same operations in the same order
    mu, _, invstd = stats
    for training, given_stats in ((True, (mu, invstd)), (False, (gamma * 0.5, beta))):
        out = (np.empty_like(y), np.empty_like(at))
        assert fused.forward(x, gamma, beta, training, given_stats, *layout, out=out) is out
        y_ref, at_ref = fused.forward_reference(x, gamma, beta, training, given_stats, *layout)
        np.testing.assert_array_equal(out[0], y_ref)
        np.testing.assert_array_equal(out[1], at_ref)
    grads = fused.backward(gy, x, y, at, gamma, mu, invstd, *layout)
    grads_ref = fused.backward_reference(gy, x, y, at, gamma, mu, invstd, *layout)
    assert len(grads) == len(grads_ref) == (4 if channel_major else 3)
    for name, a, b in zip(("gx", "ggamma", "gbeta"), grads[:3], grads_ref[:3], strict=True):
        assert a.dtype == dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=tol * 10, atol=tol * 10, err_msg=name)
    if channel_major:  # the sum of gx over each channel: ~0, a sum of rounding errors
        atol = tol * max(1.0, np.nansum(np.abs(grads_ref[0])))
        np.testing.assert_allclose(grads[3], grads_ref[3], rtol=0, atol=atol)


@HYP
@given(data=st.data())
def test_fused_pool_relu_kernels_equal_reference(data):
    x, pre, channel_major, _, _, gy = data.draw(fused_case(data))
    out = fused.pool_relu_forward(x, channel_major, pre)
    out_ref = fused.pool_relu_forward_reference(x, channel_major, pre)
    for a, b in zip(out, out_ref, strict=True):  # exact: a max, an add and a select
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    y, at = out
    got = fused.pool_relu_backward(gy, y, at, x.shape, channel_major)
    want = fused.pool_relu_backward_reference(gy, y, at, x.shape, channel_major)
    if not channel_major:
        np.testing.assert_array_equal(got, want)  # a select and a scatter: exact
        return
    np.testing.assert_array_equal(got[0], want[0])
    tol = _tol(x.dtype)  # the channel sums: float64 in different orders
    np.testing.assert_allclose(got[1], want[1], rtol=tol, atol=tol)


# ---- the first layer's weight gradient (tinyconv/ops/conv.py) -----------------------------


@HYP
@given(n=st.integers(1, 4), oc=st.integers(1, 5), k=st.integers(1, 9), length=st.integers(1, 30),
       dtype=st.sampled_from(DTYPES), first_layer=st.booleans(), strided=st.booleans(),
       data=st.data())
def test_weight_grad_t_equals_one_gemm(n, oc, k, length, dtype, first_layer, strided, data):
    """gWᵀ of a chunk, by per-sample GEMMs or by one, equals the plain (gY @ cols.T).T; gY may
    be a chunk's strided view of the whole gradient."""
    cols = draw_array(data, (k, n * length), dtype)
    whole = draw_array(data, (oc, (n + 2) * length), dtype)
    gY = whole[:, length:(n + 1) * length] if strided else np.ascontiguousarray(
        whole[:, :n * length])
    tol = _tol(dtype) * 10
    np.testing.assert_allclose(_weight_grad_t(gY, cols, n, first_layer), (gY @ cols.T).T,
                               rtol=tol, atol=tol)


# ---- every fast kernel has a twin ---------------------------------------------------------

# Deliberate exceptions: jitted functions, or fast functions, without a ``*_reference`` twin of
# their own, with the reason. (Empty: keep it so; add here only with a reason a reader accepts.)
NO_TWIN = {}


def _kernel_modules():
    for info in pkgutil.iter_modules(tinyconv.kernels.__path__):
        yield importlib.import_module(f"tinyconv.kernels.{info.name}")


def _is_jitted(obj):
    return hasattr(obj, "py_func") and callable(obj)


def _names_used(fn):
    """Global names a function's code (nested code included) refers to."""
    code = fn.py_func.__code__ if _is_jitted(fn) else fn.__code__
    names, todo = set(), [code]
    while todo:
        c = todo.pop()
        names |= set(c.co_names)
        todo += [k for k in c.co_consts if inspect.iscode(k)]
    return names


def _own_functions(module):
    """Functions and jitted functions defined in ``module`` (not imported into it)."""
    for name, obj in vars(module).items():
        fn = obj.py_func if _is_jitted(obj) else obj
        if inspect.isfunction(fn) and fn.__module__ == module.__name__:
            yield name, obj


def _check_twins(module):
    """Every jitted function of ``module`` is a public kernel with a ``<name>_reference`` twin
    of the same signature, or private loops reached only through such a kernel; and every
    public function that reaches a jitted one has its twin."""
    functions = dict(_own_functions(module))
    jitted = {name for name, fn in functions.items() if _is_jitted(fn)}
    reaches = {}  # name -> the jitted functions it reaches, directly or through others

    def reached(name, seen=()):
        if name not in reaches:
            found = set()
            for used in _names_used(functions[name]) & functions.keys():
                if used not in seen:
                    found |= ({used} if used in jitted else set()) | reached(used, seen + (name,))
            reaches[name] = found
        return reaches[name]

    fast = [name for name in functions if not name.startswith("_")
            and not name.endswith("_reference") and (name in jitted or reached(name))]
    covered = set()
    for name in fast:
        if f"{module.__name__}.{name}" in NO_TWIN:
            continue
        twin = functions.get(f"{name}_reference")
        assert twin is not None, f"{module.__name__}.{name} has no {name}_reference twin"
        fn = functions[name]
        sig = inspect.signature(fn.py_func if _is_jitted(fn) else fn)
        assert inspect.signature(twin) == sig, (
            f"{module.__name__}.{name}{sig} and its twin {name}_reference"
            f"{inspect.signature(twin)} differ")
        covered |= {name} | reached(name)
    for name in jitted - covered:
        assert f"{module.__name__}.{name}" in NO_TWIN, (
            f"{module.__name__}.{name} is jitted but neither a public kernel with a twin nor "
            f"reached from one")


@pytest.mark.parametrize("module", list(_kernel_modules()), ids=lambda m: m.__name__)
def test_every_fast_kernel_has_a_reference_twin(module):
    """The twins are compared with their kernels by the tests above; this finds a kernel
    added without one."""
    _check_twins(module)


@pytest.mark.parametrize("source, message", [
    ("def double(x):\n    return 2 * x\n", "no double_reference twin"),
    ("def double(x):\n    return 2 * x\ndef double_reference(x, y):\n    return 2 * x\n",
     "differ"),
    ("def _loops(x):\n    return x\n", "_loops is jitted but neither"),
])
def test_the_twin_check_can_fail(source, message):
    """The check above on made-up modules: a jitted kernel without a twin, with a twin of
    another signature, private loops that no public kernel reaches."""
    module = types.ModuleType("tinyconv.kernels._made_up")
    exec(source, module.__dict__)
    for name in ("double", "_loops"):
        if name in module.__dict__:
            setattr(module, name, njit(module.__dict__[name]))
    with pytest.raises(AssertionError, match=message):
        _check_twins(module)
