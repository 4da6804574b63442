"""The teaching material: docs/ pages, their worked examples, and the naive convolution oracle.

* every ``<!-- example: NAME -->`` block in docs/*.md is exactly what docs/worked_examples.py
  prints now, so the pages cannot drift from the code;
* every relative link in docs/ points to a file that exists, and a link whose text names a
  function or class points to the file that defines it;
* ``conv2d_naive`` (the textbook loops) == ``F.conv2d`` (im2col + GEMM) == torch's conv2d, values
  and all three gradients, on hypothesis-drawn shapes, strides, paddings and dilations;
* the final formulas of the derivations, checked numerically against PyTorch.
"""

from __future__ import annotations

import importlib.util
import os
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv.kernels.batchnorm import batch_norm_backward, batch_norm_forward
from tinyconv.kernels.conv import col2im, conv_out_size, im2col
from tinyconv.kernels.naive import conv2d_naive, conv2d_naive_backward
from tinyconv.nn import functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _load_worked_examples():
    spec = importlib.util.spec_from_file_location(
        "worked_examples", os.path.join(DOCS, "worked_examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WE = _load_worked_examples()
PAGES = sorted(f for f in os.listdir(DOCS) if f.endswith(".md"))


def _read(name):
    with open(os.path.join(DOCS, name), encoding="utf-8") as fh:
        return fh.read()


# ---------------------------------------------------------------------------------------------
# the pages


def test_index_lists_every_page():
    index = _read("README.md")
    for page in PAGES:
        if page != "README.md":
            assert f"]({page})" in index, f"docs/README.md does not link to {page}"


@pytest.mark.parametrize("name", sorted(WE.EXAMPLES))
def test_example_block_matches_code(name):
    """The block between the markers is exactly what the code prints now."""
    found = [(page, mt.group(3)) for page in PAGES
             for mt in WE.BLOCK.finditer(_read(page)) if mt.group(2) == name]
    assert found, f"no page has a block <!-- example: {name} -->"
    expected = WE.render(name)
    for page, text in found:
        assert text == expected, (f"docs/{page}: block {name!r} is out of date; run "
                                  f"python docs/worked_examples.py --write")


def test_every_block_has_a_generator():
    for page in PAGES:
        text = _read(page)
        opened = re.findall(r"<!-- example: (\w+) -->", text)
        assert len(opened) == text.count("<!-- /example -->"), f"docs/{page}: unbalanced markers"
        for name in opened:
            assert name in WE.EXAMPLES, f"docs/{page}: unknown example {name!r}"


LINK = re.compile(r"\[([^\]]+)\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES)
def test_links_point_to_existing_code(page):
    """Relative links resolve; [`name`](file.py) links name something defined in that file."""
    for mt in LINK.finditer(_read(page)):
        text, target = mt.group(1), mt.group(2)
        if "://" in target:
            continue
        path = os.path.normpath(os.path.join(DOCS, target))
        assert os.path.exists(path), f"docs/{page}: broken link {target}"
        if not target.endswith(".py"):
            continue
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        for name in re.findall(r"`([\w.]+)`", text):
            if name.endswith(".py"):  # a file name, not a function
                continue
            cls, _, meth = name.rpartition(".")
            if cls:  # Class.method: the class exists and has that method
                assert re.search(rf"^class {cls}\b", source, re.M), f"{page}: {name} in {target}"
                assert re.search(rf"^    def {meth}\(", source, re.M), f"{page}: {name}"
            else:
                assert re.search(rf"^(def|class) {name}\b", source, re.M), (
                    f"docs/{page}: {name} is not defined in {target}")


# ---------------------------------------------------------------------------------------------
# naive loops == im2col + GEMM == torch


@st.composite
def conv_cases(draw):
    N, C, OC = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    # an input large enough for at least one output position
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 7))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 7))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return (N, C, H, W), (OC, C, kh, kw), (sh, sw), (ph, pw), (dh, dw), bias, seed


@settings(max_examples=40, deadline=None)
@given(conv_cases())
def test_naive_conv_equals_im2col_and_torch(case):
    x_shape, w_shape, stride, padding, dilation, use_bias, seed = case
    assert conv_out_size(x_shape[2], w_shape[2], stride[0], padding[0], dilation[0]) >= 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    W = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if use_bias else None
    geo = dict(stride=stride, padding=padding, dilation=dilation)

    y_naive = conv2d_naive(x, W, b, **geo)
    gy = rng.standard_normal(y_naive.shape)
    gx_n, gW_n, gb_n = conv2d_naive_backward(gy, x, W, **geo)

    tx = tinyconv.tensor(x, requires_grad=True)
    tW = tinyconv.tensor(W, requires_grad=True)
    tb = tinyconv.tensor(b, requires_grad=True) if use_bias else None
    y_tiny = F.conv2d(tx, tW, tb, **geo)
    y_tiny.backward(tinyconv.tensor(gy))

    px = torch.tensor(x, requires_grad=True)
    pW = torch.tensor(W, requires_grad=True)
    pb = torch.tensor(b, requires_grad=True) if use_bias else None
    y_torch = torch.nn.functional.conv2d(px, pW, pb, **geo)
    y_torch.backward(torch.tensor(gy))

    tol = dict(rtol=1e-9, atol=1e-11)  # float64: the three differ only in summation order
    np.testing.assert_allclose(y_naive, y_tiny.detach().numpy(), **tol)
    np.testing.assert_allclose(y_naive, y_torch.detach().numpy(), **tol)
    for naive, tiny, ref in [(gx_n, tx.grad, px.grad), (gW_n, tW.grad, pW.grad)]:
        np.testing.assert_allclose(naive, tiny.numpy(), **tol)
        np.testing.assert_allclose(naive, ref.numpy(), **tol)
    # the bias gradient does not depend on whether the forward pass had a bias
    np.testing.assert_allclose(gb_n, gy.sum(axis=(0, 2, 3)), **tol)
    if use_bias:
        np.testing.assert_allclose(gb_n, tb.grad.numpy(), **tol)
        np.testing.assert_allclose(gb_n, pb.grad.numpy(), **tol)


def test_naive_conv_float32_and_errors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    W = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    y = conv2d_naive(x, W, None, 2, 1, 1)
    assert y.dtype == np.float32 and y.shape == (1, 3, 3, 3)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(W), stride=2, padding=1)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        conv2d_naive(x, W[:, :1], None)


# ---------------------------------------------------------------------------------------------
# the derivations' final formulas, numerically


def test_col2im_is_the_transpose_of_im2col():
    """conv2d-backward.md: gx = col2im(gcols) because col2im is im2col's transpose."""
    rng = np.random.default_rng(1)
    geo = ((2, 1), (1, 2), (1, 2))
    x = rng.standard_normal((2, 3, 6, 5))
    cols = im2col(x, 3, 2, *geo)
    c = rng.standard_normal(cols.shape)
    assert np.isclose((cols * c).sum(), (x * col2im(c, x.shape, 3, 2, *geo)).sum())


def test_conv_backward_matrix_formulas():
    """conv2d-backward.md: gW = gY @ cols.T, gcols = W2.T @ gY, gb = gY.sum(1), against torch."""
    rng = np.random.default_rng(2)
    x, W = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 5, 5))
    cols = im2col(x, 3, 3, (1, 1), (1, 1), (1, 1))
    gY = gy.transpose(1, 0, 2, 3).reshape(4, -1)
    W2 = W.reshape(4, -1)
    gW = (gY @ cols.T).reshape(W.shape)
    gx = col2im(W2.T @ gY, x.shape, 3, 3, (1, 1), (1, 1), (1, 1))
    px, pW = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    torch.nn.functional.conv2d(px, pW, padding=1).backward(torch.tensor(gy))
    np.testing.assert_allclose(gW, pW.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, px.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_maxpool_gradient_goes_to_the_argmax():
    """maxpool-backward.md: overlapping windows add up, as in torch."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 6, 6))
    px = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(px, 3, stride=1).sum().backward()
    tx = tinyconv.tensor(x, requires_grad=True)
    F.max_pool2d(tx, 3, stride=1).sum().backward()
    np.testing.assert_array_equal(tx.grad.numpy(), px.grad.numpy())
    assert tx.grad.numpy().sum() == 2 * 2 * 4 * 4  # one unit of gradient per window


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3, 3)])
def test_batchnorm_three_term_formula(shape):
    """batchnorm-backward.md: gamma*invstd/M * (M*gy - gbeta - xhat*ggamma) == torch's gx."""
    rng = np.random.default_rng(4)
    x, gy = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(shape)
    C = shape[1]
    gamma, beta, eps = rng.standard_normal(C), rng.standard_normal(C), 1e-5
    axes = (0,) + tuple(range(2, len(shape)))
    bc = (1, C) + (1,) * (len(shape) - 2)
    M = x.size // C
    mu = x.mean(axis=axes, keepdims=True)
    invstd = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * invstd
    gbeta = gy.sum(axis=axes, keepdims=True)
    ggamma = (gy * xhat).sum(axis=axes, keepdims=True)
    gx = gamma.reshape(bc) * invstd / M * (M * gy - gbeta - xhat * ggamma)

    px, pg = torch.tensor(x, requires_grad=True), torch.tensor(gamma, requires_grad=True)
    pb = torch.tensor(beta, requires_grad=True)
    y = torch.nn.functional.batch_norm(px, None, None, pg, pb, training=True, eps=eps)
    y.backward(torch.tensor(gy))
    np.testing.assert_allclose(gx, px.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ggamma.reshape(C), pg.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gbeta.reshape(C), pb.grad.numpy(), rtol=1e-8, atol=1e-10)
    # the kernel computes the same, and the two properties the page states hold
    _, kxhat, _, _, kinv = batch_norm_forward(x, gamma, beta, eps)
    kgx, _, _ = batch_norm_backward(gy, kxhat, gamma, kinv)
    np.testing.assert_allclose(kgx, gx, rtol=1e-8, atol=1e-10)
    assert np.allclose(gx.sum(axis=axes), 0, atol=1e-9)
    # 0 only for eps = 0: sum(xhat**2) = M * var / (var + eps), not M
    var = 1 / invstd**2 - eps
    np.testing.assert_allclose((gx * xhat).sum(axis=axes, keepdims=True),
                               gamma.reshape(bc) * invstd * ggamma * eps / (var + eps),
                               rtol=1e-6, atol=1e-14)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    """cross-entropy.md: d(mean loss)/dx = (softmax(x) - onehot(t)) / N, stable for huge logits."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4)) * 5
    x[0, 1] = 1e4  # would overflow exp without the shift
    t = rng.integers(0, 4, 6)
    m = x.max(axis=1, keepdims=True)
    p = np.exp(x - m) / np.exp(x - m).sum(axis=1, keepdims=True)
    expected = (p - np.eye(4)[t]) / 6
    tx = tinyconv.tensor(x, requires_grad=True)
    loss = F.cross_entropy(tx, tinyconv.tensor(t))
    loss.backward()
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(tx.grad.numpy(), expected, rtol=1e-10, atol=1e-14)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t))
    assert np.isclose(loss.item(), ref.item(), rtol=1e-12)


def test_adam_by_hand_equals_tinyconv_and_torch():
    """adam.md: the textbook update with bias correction is what both optimizers do."""
    p0 = np.array([1.0, -2.0])
    *_, (_, _, _, _, _, p_hand) = WE.adam_by_hand(p0, WE.adam_grads())
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch.optim.Adam([tp], lr=1e-3)
    mine = tinyconv.nn.Parameter(tinyconv.tensor(p0.copy()))
    opt = tinyconv.optim.Adam([mine], lr=1e-3)
    for g in WE.adam_grads():
        tp.grad = torch.tensor(g)
        topt.step()
        mine.grad = tinyconv.tensor(g)
        opt.step()
    np.testing.assert_allclose(p_hand, tp.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(mine.detach().numpy(), tp.detach().numpy(), rtol=1e-14)
    first = next(WE.adam_by_hand(p0, WE.adam_grads()))[-1]
    np.testing.assert_allclose(np.abs(first - p0), 1e-3, rtol=1e-4)  # the first step: lr (- eps)


# ---------------------------------------------------------------------------------------------
# examples/explain_conv.py (the parts that need no data set; the rest is run by hand)


def _load_explain_conv():
    spec = importlib.util.spec_from_file_location(
        "explain_conv", os.path.join(ROOT, "examples", "explain_conv.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_explain_conv_prints_the_worked_example(capsys):
    explain = _load_explain_conv()
    assert explain.main(["--no-plots"]) == 0
    out = capsys.readouterr().out
    assert WE.conv_forward() in out and WE.conv_backward() in out


def test_explain_conv_draws_im2col(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    explain = _load_explain_conv()
    path = tmp_path / "im2col.png"
    explain.plot_im2col(WE, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_naive_vs_im2col_benchmark_runs():
    """benchmarks/naive_vs_im2col.py on a tiny case (the real cases take seconds)."""
    spec = importlib.util.spec_from_file_location(
        "naive_vs_im2col", os.path.join(ROOT, "benchmarks", "naive_vs_im2col.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    line = bench.run_case("tiny", (1, 2, 5, 5), (3, 2, 3, 3), 1, np.random.default_rng(0), 1)
    assert line.startswith("tiny: ") and "speedup" in line


# ---------------------------------------------------------------------------------------------
# docs/your-own-op.md: its code blocks are run by worked_examples.py


def test_your_own_op_every_code_block_runs_and_has_its_output():
    code = WE.own_op_code()
    assert list(code) == ["swish_define", "swish_gradcheck", "swish_property", "swish_broken",
                          "legendre"]
    outputs = WE.own_op_outputs()
    page = _read("your-own-op.md")
    for name in code:
        assert f"<!-- example: own_op_{name} -->" in page
        assert outputs[name], f"block {name} printed nothing"
    assert outputs["swish_gradcheck"].startswith("True\n")
    assert outputs["swish_broken"].startswith(
        "Jacobian mismatch for output 0 with respect to input 0 in BrokenSwish.apply:")


def test_your_own_op_swish_gradient_is_torchs():
    x = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    torch.nn.functional.silu(x).sum().backward()
    line = WE.own_op_outputs()["swish_define"].splitlines()[1]  # x.grad = tensor([...], ...)
    shown = [float(v) for v in re.search(r"\[(.*)\]", line).group(1).split(",")]
    np.testing.assert_allclose(shown, x.grad.numpy(), atol=5e-5)  # printed to 4 decimals


# ---------------------------------------------------------------------------------------------
# linear.md, relu.md, dropout.md, pooling.md, sgd-momentum.md, fusion.md: the prose's claims

WL = WE.worked_layers


def test_linear_gradient_formulas_equal_torch():
    """linear.md: gx = gy @ W, gW = gy.T @ x, gb = gy.sum(0), and torch's init bound."""
    x, W, b, gy = WL.linear_setup()
    px, pW, pb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    torch.nn.functional.linear(px, pW, pb).backward(torch.tensor(gy))
    np.testing.assert_allclose(gy @ W, px.grad.numpy(), rtol=1e-15)
    np.testing.assert_allclose(gy.T @ x, pW.grad.numpy(), rtol=1e-15)
    np.testing.assert_allclose(gy.sum(axis=0), pb.grad.numpy(), rtol=1e-15)
    # a = sqrt(5) makes kaiming_uniform's bound exactly 1/sqrt(fan_in), in torch as in tinyconv
    gain = tinyconv.nn.init.calculate_gain("leaky_relu", np.sqrt(5))
    assert np.isclose(np.sqrt(3) * gain, 1.0, rtol=1e-15)
    assert np.isclose(torch.nn.init.calculate_gain("leaky_relu", np.sqrt(5)), gain, rtol=1e-15)
    for layer in (tinyconv.nn.Linear(200, 300), torch.nn.Linear(200, 300)):
        w, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        bound = 1 / np.sqrt(200)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
        assert np.abs(bias).max() <= bound


@pytest.mark.parametrize("size", [8, 1 << 17])  # the NumPy reference and the numba loops
def test_relu_nan_inf_and_zero_as_torch(size):
    """relu.md: relu(NaN) = NaN with gradient gy, gradient 0 at 0, inf gy at a dead unit -> 0."""
    x = np.zeros(size)
    x[:8] = [-2.0, -0.0, 0.0, 0.5, 3.0, np.nan, np.inf, -np.inf]
    gy = np.ones(size)
    gy[7] = np.inf
    tx = tinyconv.tensor(x, requires_grad=True)
    y = F.relu(tx)
    y.backward(tinyconv.tensor(gy))
    px = torch.tensor(x, requires_grad=True)
    py = torch.relu(px)
    py.backward(torch.tensor(gy))
    np.testing.assert_array_equal(y.detach().numpy(), py.detach().numpy())  # NaN == NaN here
    np.testing.assert_array_equal(tx.grad.numpy(), px.grad.numpy())
    assert tx.grad.numpy()[5] == 1 and tx.grad.numpy()[2] == 0 and tx.grad.numpy()[7] == 0


def test_dropout_gradient_is_the_mask_and_eval_is_identity():
    """dropout.md: y = x * mask, gx = gy * mask; Dropout2d draws one mask value per channel."""
    tinyconv.manual_seed(3)
    x = np.random.default_rng(0).standard_normal((4, 6)) + 3  # no zeros
    tx = tinyconv.tensor(x, requires_grad=True)
    y = F.dropout(tx, p=0.3)
    gy = np.random.default_rng(1).standard_normal(x.shape)
    y.backward(tinyconv.tensor(gy))
    mask = y.detach().numpy() / x
    assert set(np.round(np.unique(mask), 12)) <= {0.0, round(1 / 0.7, 12)}
    np.testing.assert_allclose(tx.grad.numpy(), gy * mask, rtol=1e-12)
    assert F.dropout(tx, p=0.3, training=False) is tx
    y4 = F.dropout2d(tinyconv.tensor(np.ones((3, 5, 4, 4))), p=0.5).numpy()
    per_channel = y4.reshape(15, 16)
    assert all(len(set(row)) == 1 for row in per_channel)  # whole channels kept or zeroed


def test_average_pooling_examples_equal_torch():
    """pooling.md: count_include_pad, ceil_mode, the gradient spread evenly; adaptive windows."""
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    for kw in (dict(count_include_pad=True), dict(count_include_pad=False),
               dict(count_include_pad=False, ceil_mode=True), dict(ceil_mode=True)):
        tx = tinyconv.tensor(x, requires_grad=True)
        px = torch.tensor(x, requires_grad=True)
        y = F.avg_pool2d(tx, 3, stride=2, padding=1, **kw)
        py = torch.nn.functional.avg_pool2d(px, 3, stride=2, padding=1, **kw)
        np.testing.assert_allclose(y.detach().numpy(), py.detach().numpy(), rtol=1e-14)
        y.sum().backward()
        py.sum().backward()
        np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-14)
    x5 = np.arange(1.0, 26.0).reshape(1, 1, 5, 5)
    tx, px = tinyconv.tensor(x5, requires_grad=True), torch.tensor(x5, requires_grad=True)
    y = F.adaptive_avg_pool2d(tx, 3)
    py = torch.nn.functional.adaptive_avg_pool2d(px, 3)
    np.testing.assert_allclose(y.detach().numpy(), py.detach().numpy(), rtol=1e-14)
    y.sum().backward()
    py.sum().backward()
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-14)
    from tinyconv.ops.pool import adaptive_bins
    bins = adaptive_bins(5, 3)
    assert any(end > nxt for (_, end), (nxt, _) in zip(bins[:-1], bins[1:], strict=True))
    assert np.isclose(tx.grad.numpy()[0, 0, 1, 1], 1 / 4 + 1 / 6 + 1 / 6 + 1 / 9)


@pytest.mark.parametrize("extra", [{}, dict(dampening=0.5), dict(nesterov=True)])
def test_sgd_by_hand_equals_torch(extra):
    """sgd-momentum.md: the by-hand loop is torch.optim.SGD, and so is tinyconv's SGD."""
    p0 = np.array([1.0, 1.0])
    hyper = dict(lr=0.1, momentum=0.9, weight_decay=0.01, **extra)
    *_, (_, _, _, p_hand) = WL.sgd_by_hand(p0, WL.sgd_grads(), **hyper)
    tp = torch.tensor(p0.copy(), requires_grad=True)
    opt = torch.optim.SGD([tp], **hyper)
    for g in WL.sgd_grads():
        tp.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p_hand, tp.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(WL._tinyconv_sgd(p0, WL.sgd_grads(), **hyper),
                               tp.detach().numpy(), rtol=1e-14)


def test_lr_inside_momentum_equals_torch_form_while_lr_is_constant():
    """sgd-momentum.md: v = mu v + lr g; p -= v is torch's update as long as lr does not change."""
    p_torch, p_inside, v, buf = np.ones(2), np.ones(2), np.zeros(2), None
    for g in WL.sgd_grads():
        buf = g.copy() if buf is None else 0.9 * buf + g
        p_torch = p_torch - 0.1 * buf
        v = 0.9 * v + 0.1 * g
        p_inside = p_inside - v
    np.testing.assert_allclose(p_inside, p_torch, rtol=1e-14)


def test_fused_equals_unfused_but_for_the_conv_biases():
    """fusion.md: outputs, loss, buffers and gradients bit-identical except the convolution
    biases, whose true gradient (a constant before a batch norm) is 0."""
    out_f, loss_f, g_f, b_f, names_f = WL._fashion_step(True)
    out_u, loss_u, g_u, b_u, names_u = WL._fashion_step(False)
    np.testing.assert_array_equal(out_f, out_u)
    assert loss_f == loss_u
    for k in b_f:
        np.testing.assert_array_equal(b_f[k], b_u[k])
    for k in g_f:
        if k in ("layer1.0.bias", "layer2.0.bias"):
            assert np.abs(g_u[k]).max() < 1e-6 * np.abs(g_u["layer1.1.bias"]).max()
        else:
            np.testing.assert_array_equal(g_f[k], g_u[k], err_msg=k)
    assert names_f.count("Conv2dBatchNormReLUMaxPool2dBackward") == 2
    assert "Conv2dBackward" in names_u and "Conv2dBackward" not in names_f


def test_traced_loops_are_numba_kernels():
    """fusion.md: the functions ending in _loops in the call trace are numba-compiled."""
    import importlib

    from numba.core.registry import CPUDispatcher

    names = set()
    for text in (WL.trace_fused(), WL.trace_unfused()):
        for line in text.splitlines():
            path, name = line.strip().split("   (x")[0].split(": ")
            if name.endswith("_loops"):
                names.add((path[:-3].replace("/", "."), name))
    assert names
    for module, name in names:
        assert isinstance(getattr(importlib.import_module(module), name), CPUDispatcher), name


def test_eval_with_gradients_fuses_only_relu_and_pooling():
    """fusion.md: in eval mode with a backward possible, conv and batch norm run alone."""
    from tinyconv.autograd import _topological_order
    from tinyconv.models import FashionCNN

    model = FashionCNN().eval()
    x = tinyconv.tensor(np.zeros((2, 1, 28, 28), dtype=np.float32))
    with pytest.warns(UserWarning, match="dropout2d"):  # fc1's output is 2-D, as in torch
        y = model(x)
    names = [node.name() for node in _topological_order(y.grad_fn)]
    assert names.count("MaxPool2dReLUBackward") == 2
    assert names.count("BatchNormBackward") == 2 and names.count("Conv2dBackward") == 2
