"""Hypothesis strategies for testing code built on tinyconv (needs ``pip install hypothesis``).

What hypothesis draws is what finds bugs: shapes, hyper-parameters, memory layouts, ties and
special values. Array *contents* come from a NumPy generator seeded by a drawn integer, so a
failing example prints a seed that reproduces it and values stay in a well-conditioned range::

    from hypothesis import given
    from tinyconv.testing import strategies as tst

    @given(tst.tensors(tst.shapes(max_dims=3), low=-5, high=5))
    def test_swish_keeps_the_shape(x):
        assert swish(x).shape == x.shape

    @given(tst.conv2d_args())
    def test_conv_shape(args):
        x, w = tinyconv.randn(*args["x_shape"]), tinyconv.randn(*args["w_shape"])
        F.conv2d(x, w, stride=args["stride"], padding=args["padding"],
                 dilation=args["dilation"])
"""

from __future__ import annotations

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("tinyconv.testing.strategies needs hypothesis: pip install hypothesis "
                      "(or pip install 'tinyconv[testing]')") from err

from tinyconv.kernels.conv import conv_out_size
from tinyconv.testing import noncontiguous

__all__ = [
    "seeds", "float_dtypes", "shapes", "broadcastable_shapes", "arrays", "tensors",
    "conv2d_args", "pool2d_args", "batches", "draw_array",
]

# A seed rather than a Generator, so that a failing example prints something reproducible.
seeds = st.integers(0, 2**32 - 1)

float_dtypes = st.sampled_from([np.float64, np.float32])


@st.composite
def shapes(draw, min_dims=1, max_dims=4, min_side=1, max_side=5):
    """A tuple of ``min_dims`` to ``max_dims`` sides, each in [min_side, max_side]."""
    n = draw(st.integers(min_dims, max_dims))
    return tuple(draw(st.lists(st.integers(min_side, max_side), min_size=n, max_size=n)))


@st.composite
def broadcastable_shapes(draw, max_dims=4, max_side=4):
    """Two shapes that broadcast together: sides of 1 and missing leading axes on either."""
    full = draw(shapes(1, max_dims, 1, max_side))
    out = []
    for _ in range(2):
        drop = draw(st.integers(0, len(full) - 1))
        out.append(tuple(1 if draw(st.booleans()) else s for s in full[drop:]))
    return tuple(out)


def draw_array(data, shape, dtype, ties=False):
    """A standard normal sample of ``shape`` from a seed drawn with ``data`` (hypothesis'
    ``st.data()``); with ``ties``, few distinct values (multiples of 0.5: equal maxima in a
    pooling window, exact zeros after a ReLU)."""
    rng = np.random.default_rng(data.draw(seeds, label="seed"))
    x = rng.standard_normal(shape)
    if ties:
        x = np.round(x * 2) / 2
    return x.astype(dtype)


def _resolve(draw, value):
    return draw(value) if isinstance(value, st.SearchStrategy) else value


@st.composite
def arrays(draw, shape, dtype=np.float64, *, low=None, high=None, ties=False, nan=False,
           inf=False, contiguous=True):
    """A NumPy array of ``shape`` (a tuple or a strategy such as :func:`shapes`).

    Args:
        dtype: a NumPy dtype, or a strategy such as :data:`float_dtypes`. Integer dtypes draw
            from [low, high] (default [-10, 10]), bool dtypes draw True/False.
        low, high: draw floats uniformly in [low, high]; by default a standard normal sample.
        ties: round floats to multiples of 0.5, so that equal values occur.
        nan, inf: when True, hypothesis may replace some elements by NaN / +-inf.
        contiguous: True, False (a non-contiguous layout, see
            :func:`tinyconv.testing.noncontiguous`) or None (hypothesis chooses).
    """
    shape = tuple(_resolve(draw, shape))
    dtype = np.dtype(_resolve(draw, dtype))
    rng = np.random.default_rng(draw(seeds, label="seed"))
    if dtype.kind == "b":
        x = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" and low is None else (-10 if low is None else low)
        x = rng.integers(lo, 10 if high is None else high, size=shape, endpoint=True)
    elif low is None and high is None:
        x = rng.standard_normal(shape)
    else:
        lo, hi = (-1.0 if low is None else low), (1.0 if high is None else high)
        if lo > hi:
            raise ValueError(f"arrays(): low must be <= high, got low={lo}, high={hi}")
        x = rng.uniform(lo, hi, size=shape)
    if ties and dtype.kind == "f":
        x = np.round(x * 2) / 2
    x = x.astype(dtype)
    specials = [v for v, wanted in ((np.nan, nan), (np.inf, inf), (-np.inf, inf)) if wanted]
    if specials and x.size and dtype.kind == "f":
        flat = x.reshape(-1)
        positions = draw(st.lists(st.integers(0, x.size - 1), max_size=min(3, x.size)))
        for p in positions:
            flat[p] = draw(st.sampled_from(specials))
    if contiguous is None:
        contiguous = draw(st.booleans())
    return x if contiguous else noncontiguous(x)


@st.composite
def tensors(draw, shape, dtype=np.float64, *, requires_grad=False, **kwargs):
    """A tinyconv Tensor holding :func:`arrays` ``(shape, dtype, **kwargs)``; non-contiguous
    arrays keep their layout (``tinyconv.from_numpy``)."""
    import tinyconv

    t = tinyconv.from_numpy(draw(arrays(shape, dtype, **kwargs)))
    return t.requires_grad_(True) if requires_grad else t


@st.composite
def conv2d_args(draw, max_batch=3, max_channels=4, max_size=8, max_kernel=4):
    """A conv2d configuration whose padded input is at least as large as the dilated kernel.

    Returns a dict of x_shape (N, C, H, W), w_shape (OC, C, KH, KW), stride, padding, dilation.
    Kernels may be non-square; hyper-parameters are ints or pairs, as torch accepts both.
    """
    N = draw(st.integers(1, max_batch))
    C, OC = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    size = []
    for k, d, p in zip(kernel, dilation, padding, strict=True):
        least = max(1, (k - 1) * d + 1 - 2 * p)
        size.append(draw(st.integers(least, max(least, max_size))))
    as_arg = st.sampled_from(["pair", "int"])

    def arg(pair):
        return pair[0] if pair[0] == pair[1] and draw(as_arg) == "int" else pair

    return dict(x_shape=(N, C, *size), w_shape=(OC, C, *kernel), stride=arg(stride),
                padding=arg(padding), dilation=arg(dilation))


@st.composite
def pool2d_args(draw, max_batch=2, max_channels=3, max_size=9, max_kernel=4, dilation=True):
    """A pooling configuration with padding <= kernel // 2 (torch's limit) and >= 1 output.

    Returns a dict of x_shape, kernel_size, stride (None means the kernel size, torch's
    default), padding, dilation (1 when ``dilation`` is False) and ceil_mode.
    """
    N, C = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    s = kernel if stride is None else stride
    size, dilation_ = [], []
    for k, d, p, si in zip(kernel, dil, padding, s, strict=True):
        least = max(1, (k - 1) * d + 1 - 2 * p)
        side = draw(st.integers(least, max(least, max_size)))
        out = conv_out_size(side, k, si, p, d, ceil_mode)
        assert out >= 1
        # NOTE: with dilation a window can fall entirely into the padding (e.g. W=1, k=2, d=2,
        # p=1); torch then returns -inf and an index outside the window. Fall back to
        # dilation 1 there, where every window meets the input.
        if any(all(not 0 <= o * si - p + i * d < side for i in range(k)) for o in range(out)):
            d = 1
        size.append(side)
        dilation_.append(d)
    return dict(x_shape=(N, C, *size), kernel_size=kernel, stride=stride, padding=padding,
                dilation=tuple(dilation_), ceil_mode=ceil_mode)


@st.composite
def batches(draw, max_batch=4, channels=(1, 3), max_size=8, num_classes=10,
            dtype=np.float32):
    """An image batch and its class targets, as ``(x, target)`` tinyconv Tensors: x of shape
    (N, C, H, W) with C drawn from ``channels`` and target int64 in [0, num_classes)."""
    import tinyconv

    n = draw(st.integers(1, max_batch))
    c = draw(st.sampled_from(channels))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    x = draw(arrays((n, c, h, w), dtype))
    rng = np.random.default_rng(draw(seeds, label="target seed"))
    target = rng.integers(0, num_classes, size=n).astype(np.int64)
    return tinyconv.from_numpy(x), tinyconv.from_numpy(target)
