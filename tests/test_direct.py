"""The direct convolution loops (tinyconv/kernels/direct.py) and their use in Conv2d.

* the fast kernels against their ``*_reference`` twins, on threads and on the calling thread;
* the twins against torch's conv2d (values, and the weight gradient);
* F.conv2d with the direct loops on, against torch (values and all three gradients) and against
  the im2col path (``tinyconv.ops.conv.DIRECT = False``), float32 and float64, on geometries
  drawn mostly where the loops apply (stride 1) with padding, dilation, batch 1, odd channel
  counts, and the fallbacks (stride 2, a turned-filter padding below 0);
* which layers the rule sends to the loops, and that the switch turns them off.
"""

import contextlib

import numpy as np
import pytest
from helpers import TOL, assert_close, check_op, grad_check, randn
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
import tinyconv.nn.functional as F
from tinyconv._utils import _pair
from tinyconv.kernels import direct
from tinyconv.kernels.direct import (
    conv2d_direct,
    conv2d_direct_reference,
    conv2d_direct_weight_grad,
    conv2d_direct_weight_grad_reference,
    direct_applies,
)
from tinyconv.ops import conv as conv_ops

torch = pytest.importorskip("torch")
TF = torch.nn.functional

HYP = settings(max_examples=40, deadline=None, database=None)
DTYPES = [np.float32, np.float64]


@contextlib.contextmanager
def split(on):
    """The loops on numba's threads (``on``) or on the calling thread, whatever the size."""
    saved = direct.PARALLEL_MIN
    direct.PARALLEL_MIN = 0 if on else 1 << 62
    try:
        yield
    finally:
        direct.PARALLEL_MIN = saved


@contextlib.contextmanager
def direct_switch(on):
    saved = conv_ops.DIRECT
    conv_ops.DIRECT = on
    try:
        yield
    finally:
        conv_ops.DIRECT = saved


@st.composite
def geometries(draw, stride_one=True):
    """dict(x_shape, w_shape, stride, padding, dilation) with at least one output position;
    stride 1 unless ``stride_one`` is False (then 1 or 2 per axis)."""
    N, C, OC = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    stride = (1, 1) if stride_one else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = []
    for k, d, p in zip(kernel, dilation, padding, strict=True):
        least = max(1, d * (k - 1) + 1 - 2 * p)
        size.append(draw(st.integers(least, least + 9)))
    return dict(x_shape=(N, C, *size), w_shape=(OC, C, *kernel), stride=stride,
                padding=padding, dilation=dilation)


def _arrays(geo, dtype, seed, bias=True):
    rng = np.random.default_rng(seed)
    x, W = randn(rng, geo["x_shape"], dtype), randn(rng, geo["w_shape"], dtype)
    return x, W, randn(rng, geo["w_shape"][:1], dtype) if bias else None


# ---- kernels against their twins, twins against torch -------------------------------------


@HYP
@given(geo=geometries(), dtype=st.sampled_from(DTYPES), bias=st.booleans(),
       channel_major=st.booleans(), on_threads=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_direct_equals_reference(geo, dtype, bias, channel_major, on_threads, seed):
    x, W, b = _arrays(geo, dtype, seed, bias)
    args = (x, W, b, geo["padding"], geo["dilation"], channel_major)
    with split(on_threads):
        y = conv2d_direct(*args)
    ref = conv2d_direct_reference(*args)
    assert y.shape == ref.shape and y.dtype == ref.dtype == dtype
    np.testing.assert_allclose(y, ref, **TOL[dtype])


@HYP
@given(geo=geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_conv2d_direct_reference_equals_torch(geo, dtype, seed):
    x, W, b = _arrays(geo, dtype, seed)
    kw = dict(padding=geo["padding"], dilation=geo["dilation"])
    expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b), **kw)
    np.testing.assert_allclose(conv2d_direct_reference(x, W, b, **kw), expected.numpy(),
                               **TOL[dtype])


@HYP
@given(geo=geometries(), dtype=st.sampled_from(DTYPES), on_threads=st.booleans(),
       seed=st.integers(0, 2**16))
def test_weight_grad_equals_reference_and_torch(geo, dtype, on_threads, seed):
    x, W, _ = _arrays(geo, dtype, seed, bias=False)
    kw = dict(padding=geo["padding"], dilation=geo["dilation"])
    pW = torch.from_numpy(W).requires_grad_()
    out = TF.conv2d(torch.from_numpy(x), pW, **kw)
    gy = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    out.backward(torch.from_numpy(gy))
    gY = np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(gy.shape[1], gy.shape[0], -1)
    with split(on_threads):
        gW = conv2d_direct_weight_grad(gY, x, W.shape[2:], **kw)
    ref = conv2d_direct_weight_grad_reference(gY, x, W.shape[2:], **kw)
    assert gW.shape == ref.shape == W.shape and gW.dtype == dtype
    np.testing.assert_allclose(gW, ref, **TOL[dtype])
    np.testing.assert_allclose(ref, pW.grad.numpy(), **TOL[dtype])


def test_direct_applies():
    assert direct_applies((64, 1, 28, 28), (6, 1, 5, 5), (1, 1), (0, 0), (1, 1))
    assert not direct_applies((64, 1, 28, 28), (6, 1, 5, 5), (2, 1), (0, 0), (1, 1))  # stride
    assert not direct_applies((64, 2, 28, 28), (6, 1, 5, 5), (1, 1), (0, 0), (1, 1))  # channels
    assert not direct_applies((1, 1, 4, 4), (6, 1, 5, 5), (1, 1), (0, 0), (1, 1))  # no output
    assert direct_applies((1, 1, 4, 4), (6, 1, 5, 5), (1, 1), (1, 1), (1, 1))


# ---- Conv2d with the direct loops: torch, and the im2col path --------------------------------


def _conv(geo):
    kw = {k: geo[k] for k in ("stride", "padding", "dilation")}
    return (lambda *t: F.conv2d(*t, **kw)), (lambda *t: TF.conv2d(*t, **kw))


@HYP
@given(geo=st.one_of(geometries(), geometries(stride_one=False)), dtype=st.sampled_from(DTYPES),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_with_direct_loops_equals_torch(geo, dtype, bias, seed):
    """Values and the gradients of x, W and b (stride 2 falls back to im2col)."""
    x, W, b = _arrays(geo, dtype, seed, bias)
    tiny_fn, torch_fn = _conv(geo)
    with direct_switch(True), split(True):
        check_op(tiny_fn, torch_fn, [a for a in (x, W, b) if a is not None], seed=seed,
                 **TOL[dtype])


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 2, 5, 5), (3, 2, 3, 3), dict(padding=1)),  # gx and gW both by the direct loops
    ((1, 2, 6, 5), (2, 2, 2, 3), dict(padding=(1, 0), dilation=2)),
    ((2, 1, 6, 6), (4, 1, 3, 3), dict()),  # a first layer: gW by the GEMM, forward direct
])
def test_conv2d_with_direct_loops_against_finite_differences(x_shape, w_shape, kw):
    """The gradients of x, W and b, independently of torch (float64 central differences)."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape),
              rng.standard_normal(w_shape[0])]
    assert conv_ops._uses_direct(x_shape, w_shape, (1, 1), _pair(kw.get("padding", 0)),
                                 _pair(kw.get("dilation", 1)))
    with direct_switch(True), split(True):
        grad_check(lambda x, w, b: F.conv2d(x, w, b, **kw), arrays)


@HYP
@given(geo=geometries(), dtype=st.sampled_from(DTYPES), need_x=st.booleans(),
       seed=st.integers(0, 2**16))
def test_conv2d_direct_equals_im2col_path(geo, dtype, need_x, seed):
    """The direct loops and im2col + GEMM: the same numbers to float rounding, with and
    without an input gradient (a first layer's)."""
    x, W, b = _arrays(geo, dtype, seed)
    gy = None
    results = []
    for on in (True, False):
        with direct_switch(on):
            tx = tinyconv.from_numpy(x).requires_grad_(need_x)
            tW, tb = (tinyconv.from_numpy(a).requires_grad_() for a in (W, b))
            y = _conv(geo)[0](tx, tW, tb)
            if gy is None:
                gy = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
            y.backward(tinyconv.from_numpy(gy))
            results.append([y.detach()] + [t.grad for t in (tx, tW, tb) if t.requires_grad])
    for a, e in zip(*results, strict=True):
        assert_close(a, e, **TOL[dtype])


def test_the_rule_sends_small_layers_to_the_direct_loops():
    """Which layers of the seed networks the direct loops take (forward and weight gradient),
    and that ``DIRECT = False`` turns them off."""
    one = ((1, 1), (0, 0), (1, 1))
    same = ((1, 1), (1, 1), (1, 1))
    takes = [((64, 1, 28, 28), (6, 1, 5, 5), one), ((64, 6, 12, 12), (6, 6, 5, 5), one),
             ((64, 1, 28, 28), (32, 1, 3, 3), same), ((64, 3, 32, 32), (64, 3, 3, 3), same)]
    leaves = [((64, 32, 14, 14), (64, 32, 3, 3), same), ((64, 6, 14, 14), (16, 6, 5, 5), one),
              ((64, 3, 224, 224), (64, 3, 7, 7), ((2, 2), (3, 3), (1, 1)))]
    with direct_switch(True):
        assert all(conv_ops._uses_direct(x, w, *g) for x, w, g in takes)
        assert not any(conv_ops._uses_direct(x, w, *g) for x, w, g in leaves)
    with direct_switch(False):
        assert not any(conv_ops._uses_direct(x, w, *g) for x, w, g in takes)


def test_input_gradient_falls_back_when_the_turned_padding_is_negative():
    """A 1x1 kernel with padding 1: gx is no convolution of gy with padding >= 0, so it comes
    from col2im; the values still equal torch's."""
    rng = np.random.default_rng(0)
    x, W = randn(rng, (2, 3, 5, 4)), randn(rng, (4, 3, 1, 1))
    gY = np.zeros((4, 2 * 7 * 6))
    assert conv_ops._input_grad_direct(gY, x.shape, W, (1, 1, (1, 1), (1, 1), (1, 1))) is None
    with direct_switch(True):
        check_op(lambda a, w: F.conv2d(a, w, padding=1), lambda a, w: TF.conv2d(a, w, padding=1),
                 [x, W], **TOL[np.float64])
