"""Winograd F(2x2, 3x3) (tinyconv/kernels/winograd.py, tinyconv/ops/winograd.py).

Oracles, in order of independence:
  * the ``*_reference`` twins (one tile at a time, with the matrices Bᵀ, G, Aᵀ) for the kernels;
  * ``conv2d_naive`` and ``conv2d_naive_backward`` (the textbook loops) in float64;
  * ``torch.nn.functional.conv2d`` and its input gradient;
  * float32 results against a float64 direct convolution, next to im2col's float32 error.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv.kernels.naive import conv2d_naive, conv2d_naive_backward
from tinyconv.kernels.winograd import (
    AT,
    BT,
    G,
    tile_counts,
    winograd_filter_transform,
    winograd_filter_transform_reference,
    winograd_input_transform,
    winograd_input_transform_reference,
    winograd_output_transform,
    winograd_output_transform_reference,
)
from tinyconv.nn import functional as F
from tinyconv.ops import conv as conv_ops
from tinyconv.ops.winograd import (
    winograd_applies,
    winograd_conv2d,
    winograd_conv2d_input_grad,
    winograd_conv2d_input_grad_reference,
    winograd_conv2d_reference,
)

torch = pytest.importorskip("torch")

HYP = settings(max_examples=30, deadline=None, database=None)
F64 = dict(rtol=1e-12, atol=1e-12)


@st.composite
def winograd_case(draw, max_side=9):
    """(x_shape, OC, padding) of a convolution winograd_conv2d computes: odd and even sides,
    padding 0, 1 or 2 per axis, tiles that run past the edge."""
    N, C, OC = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    H = draw(st.integers(max(1, 3 - 2 * padding[0]), max_side))
    W = draw(st.integers(max(1, 3 - 2 * padding[1]), max_side))
    return (N, C, H, W), OC, padding


def arrays(seed, x_shape, oc, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    W = rng.standard_normal((oc, x_shape[1], 3, 3)).astype(dtype)
    b = rng.standard_normal(oc).astype(dtype)
    return x, W, b


# ---- the matrices ---------------------------------------------------------------------------


def test_the_matrices_compute_f23():
    """Aᵀ [(G g) ⊙ (Bᵀ d)] is the 3-tap correlation of d with g at two positions, for any d, g
    (checked on the unit vectors: the identity is bilinear)."""
    for k in range(4):
        for m in range(3):
            d, g = np.eye(4)[k], np.eye(3)[m]
            want = np.array([d[0:3] @ g, d[1:4] @ g])
            np.testing.assert_array_equal(AT @ ((G @ g) * (BT @ d)), want)


def test_filter_transform_is_g_g_gt():
    W = np.random.default_rng(0).standard_normal((3, 2, 3, 3))
    U = winograd_filter_transform(W)
    for oc in range(3):
        for c in range(2):
            np.testing.assert_allclose(U[:, oc, c].reshape(4, 4), G @ W[oc, c] @ G.T, **F64)


# ---- kernels vs their reference twins -------------------------------------------------------


@HYP
@given(case=winograd_case(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_input_transform_equals_reference(case, dtype, seed):
    x_shape, _, padding = case
    x = arrays(seed, x_shape, 1, dtype)[0]
    got = winograd_input_transform(x, padding)
    want = winograd_input_transform_reference(x, padding)
    assert got.dtype == want.dtype == dtype
    # additions and subtractions of the same two values: the same numbers, bit for bit
    np.testing.assert_array_equal(got, want)


@HYP
@given(case=winograd_case(), dtype=st.sampled_from([np.float32, np.float64]),
       bias=st.booleans(), seed=st.integers(0, 2**16))
def test_output_transform_equals_reference(case, dtype, bias, seed):
    (N, _, H, W), OC, (ph, pw) = case
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((16, OC, N * np.prod(tile_counts(OH, OW)))).astype(dtype)
    b = rng.standard_normal(OC).astype(dtype) if bias else None
    got = winograd_output_transform(M, b, np.empty((N, OC, OH, OW), dtype))
    want = winograd_output_transform_reference(M, b, np.empty((N, OC, OH, OW), dtype))
    tol = 1e-6 if dtype == np.float32 else 1e-14  # sums of three terms, maybe in another order
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- the entry points vs the direct method and torch ---------------------------------------


@HYP
@given(case=winograd_case(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_winograd_conv2d_equals_naive_and_torch(case, bias, seed):
    x_shape, OC, padding = case
    x, W, b = arrays(seed, x_shape, OC)
    b = b if bias else None
    y = winograd_conv2d(x, W, b, padding)
    np.testing.assert_allclose(y, conv2d_naive(x, W, b, padding=padding), **F64)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(W),
                                     None if b is None else torch.tensor(b), padding=padding)
    np.testing.assert_allclose(y, ref.numpy(), **F64)
    np.testing.assert_allclose(y, winograd_conv2d_reference(x, W, b, padding), **F64)
    # in chunks of one sample (BLAS may then sum in another order)
    np.testing.assert_allclose(y, winograd_conv2d(x, W, b, padding, chunk=1), **F64)


@HYP
@given(case=winograd_case(), seed=st.integers(0, 2**16))
def test_input_grad_equals_naive_and_torch(case, seed):
    x_shape, OC, padding = case
    x, W, _ = arrays(seed, x_shape, OC)
    gy = np.random.default_rng(seed + 1).standard_normal(conv2d_naive(x, W, None,
                                                                      padding=padding).shape)
    gx = winograd_conv2d_input_grad(gy, W, padding)
    assert gx.shape == x.shape
    np.testing.assert_allclose(gx, conv2d_naive_backward(gy, x, W, padding=padding)[0], **F64)
    px = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(px, torch.tensor(W), padding=padding).backward(torch.tensor(gy))
    np.testing.assert_allclose(gx, px.grad.numpy(), **F64)
    np.testing.assert_allclose(gx, winograd_conv2d_input_grad_reference(gy, W, padding), **F64)


def test_seed_layer_shape_odd_sides_and_float32():
    """A seed layer's channels on odd sides (tiles past the edge), float32 in, float32 out."""
    x, W, b = arrays(3, (2, 32, 13, 11), 16, np.float32)
    y = winograd_conv2d(x, W, b, 1)
    assert y.dtype == np.float32 and y.shape == (2, 16, 13, 11)
    ref = torch.nn.functional.conv2d(*map(torch.tensor, (x, W, b)), padding=1).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


# ---- when it applies, and bad input -------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (((8, 32, 28, 28), (32, 32, 3, 3), 1, 1, 1), True),
    (((8, 32, 28, 28), (32, 32, 3, 3), (1, 1), (0, 2), (1, 1)), True),
    (((1, 1, 1, 1), (4, 1, 3, 3), 1, 1, 1), True),  # one output pixel
    (((1, 1, 1, 1), (4, 1, 3, 3), 1, 0, 1), False),  # no output pixel
    (((8, 32, 28, 28), (32, 32, 3, 3), 2, 1, 1), False),  # stride 2
    (((8, 32, 28, 28), (32, 32, 3, 3), 1, 1, 2), False),  # dilation 2
    (((8, 32, 28, 28), (32, 32, 3, 3), 1, 3, 1), False),  # padding 3
    (((8, 32, 28, 28), (32, 32, 5, 5), 1, 2, 1), False),  # 5x5
    (((8, 32, 28, 28), (32, 16, 3, 3), 1, 1, 1), False),  # channels differ
    (((32, 28, 28), (32, 32, 3, 3), 1, 1, 1), False),  # not batched
])
def test_winograd_applies(args, expected):
    assert winograd_applies(*args) is expected


def test_bad_input_is_refused_clearly():
    x, W, b = arrays(0, (1, 2, 5, 5), 3)
    with pytest.raises(ValueError, match=r"3x3 kernel.*padding \(3, 3\)"):
        winograd_conv2d(x, W, b, 3)
    with pytest.raises(ValueError, match=r"W of shape \(3, 2, 5, 5\)"):
        winograd_conv2d(x, np.zeros((3, 2, 5, 5)), b, 2)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\), got \(2,\)"):
        winograd_conv2d(x, W, b[:2], 1)
    with pytest.raises(TypeError, match="x must be float32 or float64, got int64"):
        winograd_conv2d(x.astype(np.int64), W, b, 1)
    with pytest.raises(ValueError, match="padding must be 0, 1 or 2 per axis, got"):
        winograd_conv2d_input_grad(x, W, 3)


# ---- float32 accuracy ------------------------------------------------------------------------

# (C, side, OC): the seed networks' 3x3 layers (padding 1); docs/winograd.md lists the errors
SEED_LAYERS = [(1, 28, 32), (32, 28, 32), (32, 14, 64), (64, 14, 64)]


def float32_errors(C, side, OC, batch=4, seed=0):
    """(winograd, im2col): the largest |error| of each float32 result against the float64
    convolution of the same float32 numbers, divided by the largest |y|; inputs standard
    normal, weights and bias uniform in ±1/sqrt(9C) (PyTorch's default initialisation)."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(9 * C)
    x = rng.standard_normal((batch, C, side, side)).astype(np.float32)
    W = rng.uniform(-bound, bound, (OC, C, 3, 3)).astype(np.float32)
    b = rng.uniform(-bound, bound, OC).astype(np.float32)

    def im2col(*arrays):  # (Conv2d would take Winograd at ResNet's layers: switched off)
        saved, conv_ops.WINOGRAD = conv_ops.WINOGRAD, False
        try:
            with tinyconv.no_grad():
                return F.conv2d(*map(tinyconv.tensor, arrays), padding=1).numpy()
        finally:
            conv_ops.WINOGRAD = saved

    y = im2col(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    scale = np.abs(y).max()
    return (np.abs(winograd_conv2d(x, W, b, 1) - y).max() / scale,
            np.abs(im2col(x, W, b) - y).max() / scale)


# (C, side, C): ResNet-18's 3x3 stride-1 layers, which Conv2d runs by Winograd
RESNET_LAYERS = [(64, 56, 64), (128, 28, 128), (256, 14, 256), (512, 7, 512)]


@pytest.mark.parametrize("layer", SEED_LAYERS + RESNET_LAYERS,
                         ids=lambda s: "x".join(map(str, s)))
def test_float32_error_is_small_and_near_im2col(layer):
    """Winograd is known to lose some accuracy (its transforms add values of both signs before
    the multiply); at the seed layers it stays within 4x im2col's error and below 1e-6 of the
    output's size (docs/winograd.md gives the figures)."""
    wino, im2col = float32_errors(*layer)
    assert wino < 1e-6, wino
    assert wino < 4 * im2col, (wino, im2col)


# ---- the benchmark script runs ------------------------------------------------------------


def test_benchmark_smoke(tmp_path):
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    import sys
    sys.path.insert(0, str(bench))
    spec = importlib.util.spec_from_file_location("bench_winograd", bench / "winograd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--batch", "2", "--resnet-batches", "1", "--threads", "1", "--rounds", "1",
                 "--repeat", "1", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "winograd.json").read_text())
    # forward and input grad of every layer; and the forward's parts of ResNet's
    assert len(data["rows"]) == 2 * len(module.SHAPES) + 3 * len(module.RESNET_SHAPES)
    assert all(ms > 0 for row in data["rows"] for ms in row["ms"].values())


# ---- the filter transform's fast version, the channel-major output, strided input -------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (7, 5), (64, 3)])
def test_filter_transform_equals_reference(shape, dtype):
    W = np.random.default_rng(1).standard_normal(shape + (3, 3)).astype(dtype)
    got, want = winograd_filter_transform(W), winograd_filter_transform_reference(W)
    assert got.dtype == want.dtype == dtype and got.shape == (16,) + shape
    tol = 1e-6 if dtype == np.float32 else 1e-14  # halvings of sums, maybe in another order
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # and the reference is G g Gᵀ itself, filter by filter
    np.testing.assert_allclose(want[:, -1, -1].reshape(4, 4), G @ W[-1, -1] @ G.T, rtol=tol,
                               atol=tol)


@HYP
@given(case=winograd_case(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_channel_major_output_and_strided_input(case, bias, seed):
    """channel_major gives the same numbers as (OC, N, OH, OW); an input that is a transposed
    view (gy in the GEMM's layout, as Conv2d's backward hands it) gives the same as a copy."""
    x_shape, OC, padding = case
    x, W, b = arrays(seed, x_shape, OC, np.float32)
    b = b if bias else None
    y = winograd_conv2d(x, W, b, padding)
    y_cm = winograd_conv2d(x, W, b, padding, channel_major=True)
    assert y_cm.shape == (OC, x.shape[0]) + y.shape[2:] and y_cm.flags.c_contiguous
    np.testing.assert_array_equal(y_cm.transpose(1, 0, 2, 3), y)
    x_view = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    assert x_view.flags.c_contiguous == (min(x.shape[:2]) == 1)  # a strided view unless N or C is 1
    np.testing.assert_array_equal(winograd_conv2d(x_view, W, b, padding), y)


def test_docs_timing_tables_are_the_committed_results():
    """docs/winograd.md's timing tables ("When it pays") are copied from the committed
    benchmarks/results/winograd.md, row for row: the page states no timing the code did not
    print."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "winograd.md").read_text(encoding="utf-8")
    section = page[page.index("## When it pays"):page.index("## Code")]
    results = (root / "benchmarks" / "results" / "winograd.md").read_text(encoding="utf-8")
    def data_rows(text):  # the timing tables' rows: 9 cells (pass, ...) or 7 (a layer's parts)
        return [line for line in text.splitlines() if line.startswith("| ")
                and not line.startswith(("| pass |", "| shape |", "| pass, layer"))
                and line.count(" | ") in (6, 8)]

    in_results, in_doc = data_rows(results), data_rows(section)
    assert len(in_results) == 32 and in_doc == in_results
