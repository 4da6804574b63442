"""Conv2d fused with what follows it (tinyconv/nn/fusion.py): Conv2d -> BatchNorm2d -> ReLU ->
MaxPool2d(2, 2), and Conv2d -> MaxPool2d(2, 2) and ReLU in either order.

The kernels read the convolution's GEMM output in its channel-major layout and add the bias as
they go; here they are checked against the batch-major kernels on the biased output, the fused
ops against the modules run one by one (bit-identical outputs and running statistics,
gradients equal up to the order of the sums), against torch and against finite differences,
and the rules for when nn.Sequential fuses.
"""

import numpy as np
import pytest
from helpers import F32, F64, check_op, draw_array, eval_fused_and_not, grad_check, run_fused
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv import nn
from tinyconv.kernels import fused
from tinyconv.kernels.batchnorm import batch_norm_stats
from tinyconv.nn import fusion

HYP = settings(max_examples=30, deadline=None, database=None)
DTYPES = [np.float32, np.float64]


# ---- the kernels: channel-major (C, N, H, W) plus bias == batch-major (N, C, H, W) of Y + b ---


@HYP
@given(n=st.integers(1, 3), c=st.integers(1, 3), oh=st.integers(1, 4), ow=st.integers(1, 4),
       dtype=st.sampled_from(DTYPES), ties=st.booleans(), data=st.data())
def test_channel_major_kernels_equal_batch_major(n, c, oh, ow, dtype, ties, data):
    Y = draw_array(data, (c, n, 2 * oh, 2 * ow), dtype, ties)  # the GEMM's output, no bias
    bias = draw_array(data, (c,), dtype, ties)
    x = np.ascontiguousarray((Y + bias[:, None, None, None]).transpose(1, 0, 2, 3))  # unfused
    gamma, beta = draw_array(data, (c,), dtype), draw_array(data, (c,), dtype)
    gy = draw_array(data, (n, c, oh, ow), dtype)

    stats = fused.train_forward(Y, gamma, beta, 1e-5, True, bias)[2]
    for got, want in zip(stats, batch_norm_stats(x, 1e-5), strict=True):
        np.testing.assert_array_equal(got, want)  # the same sums in the same order
    mu, _, invstd = stats
    y, at = fused.forward(Y, gamma, beta, True, (mu, invstd), channel_major=True, pre=bias)
    y_ref, at_ref = fused.forward(x, gamma, beta, True, (mu, invstd))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(at, at_ref)
    # statistics and forward in one pass per channel, both layouts
    for args in ((Y, gamma, beta, 1e-5, True, bias), (x, gamma, beta, 1e-5)):
        y1, at1, stats1 = fused.train_forward(*args)
        np.testing.assert_array_equal(y1, y_ref)
        np.testing.assert_array_equal(at1, at_ref)
        for got, want in zip(stats1, stats, strict=True):
            np.testing.assert_array_equal(got, want)
    gx, ggamma, gbeta, gb = fused.backward(gy, Y, y, at, gamma, mu, invstd, channel_major=True,
                                           pre=bias)
    gx_ref, ggamma_ref, gbeta_ref = fused.backward(gy, x, y, at, gamma, mu, invstd)
    np.testing.assert_array_equal(gx.transpose(1, 0, 2, 3), gx_ref)
    np.testing.assert_array_equal(ggamma, ggamma_ref)
    np.testing.assert_array_equal(gbeta, gbeta_ref)
    # the bias gradient: the sum of gx over each channel (it is ~0, a sum of rounding errors)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gb, gx_ref.sum(axis=(0, 2, 3)), rtol=0,
                               atol=tol * max(1.0, np.abs(gx_ref).sum()))

    scale, shift = gamma * 0.5, beta  # evaluation: constant scale and shift
    y_eval, at_eval = fused.forward(Y, None, None, False, (scale, shift), channel_major=True,
                                    pre=bias)
    y_eval_ref, at_eval_ref = fused.forward(x, None, None, False, (scale, shift))
    np.testing.assert_array_equal(y_eval, y_eval_ref)
    np.testing.assert_array_equal(at_eval, at_eval_ref)

    y, at = fused.pool_relu_forward(Y, channel_major=True, pre=bias)
    y_ref, at_ref = fused.pool_relu_forward(x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(at, at_ref)
    gx, gb = fused.pool_relu_backward(gy, y, at, Y.shape, channel_major=True)
    gx_ref = fused.pool_relu_backward(gy, y, at, x.shape)
    np.testing.assert_array_equal(gx.transpose(1, 0, 2, 3), gx_ref)
    np.testing.assert_allclose(gb, gx_ref.sum(axis=(0, 2, 3)), rtol=tol, atol=tol)


# ---- the fused modules against the same modules run one by one --------------------------------


PATTERNS = {
    "conv-bn-relu-pool": (lambda: [nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                                   nn.MaxPool2d(2, 2)], "Conv2dBatchNormReLUMaxPool2dBackward"),
    "conv-bn-relu-pool, no bias": (lambda: [nn.Conv2d(2, 3, 3, padding="same", bias=False),
                                            nn.BatchNorm2d(3, affine=False), nn.ReLU(),
                                            nn.MaxPool2d(2)],
                                   "Conv2dBatchNormReLUMaxPool2dBackward"),
    "conv-pool-relu": (lambda: [nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2, 2), nn.ReLU()],
                       "Conv2dMaxPool2dReLUBackward"),
    "conv-relu-pool": (lambda: [nn.Conv2d(2, 3, (3, 2), stride=(1, 2), padding=(1, 0)), nn.ReLU(),
                                nn.MaxPool2d(2)], "Conv2dMaxPool2dReLUBackward"),
}


def twins(pattern, dtype, rng):
    tinyconv.manual_seed(0)
    a = nn.Sequential(*PATTERNS[pattern][0]()).to(dtype)
    for p in a.parameters():  # not the default initialisation (batch norm: 1 and 0)
        p.data = tinyconv.from_numpy(rng.uniform(0.5, 1.5, p.shape).astype(dtype))
    b = nn.Sequential(*PATTERNS[pattern][0]()).to(dtype)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_equals_unfused(pattern, dtype):
    rng = np.random.default_rng(0)
    x = tinyconv.from_numpy(rng.standard_normal((4, 2, 6, 8)).astype(dtype))
    a, b = twins(pattern, dtype, rng)
    for _ in range(2):  # the second step sees the running statistics moved by the first
        out_f, gx_f, g_f, state_f, node_f = run_fused(a, x, True)
        out_u, gx_u, g_u, state_u, _ = run_fused(b, x, False)
        assert node_f == PATTERNS[pattern][1]
        np.testing.assert_array_equal(out_f, out_u)
        for k in state_f:
            np.testing.assert_array_equal(state_f[k], state_u[k], err_msg=k)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(gx_f, gx_u, rtol=rtol, atol=rtol * np.abs(gx_u).max())
        for k in g_f:
            # the conv bias before a batch norm has a gradient of 0 plus rounding errors
            with_bn = "bn" in pattern
            atol = rtol * np.abs(gx_u).max() * x.numel() if k == "0.bias" and with_bn else rtol
            np.testing.assert_allclose(g_f[k], g_u[k], rtol=rtol, atol=atol, err_msg=k)
    np.testing.assert_array_equal(*eval_fused_and_not(a, b, x))


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_evaluation_in_chunks_equals_unfused(pattern, monkeypatch):
    # without a backward the batch goes through in chunks of samples: make them small
    monkeypatch.setattr("tinyconv.ops.conv.CHUNK_ELEMENTS", 200)
    rng = np.random.default_rng(1)
    x = tinyconv.from_numpy(rng.standard_normal((7, 2, 6, 8)).astype(np.float32))
    a, b = twins(pattern, np.float32, rng)
    a.train()
    a(x)  # move the running statistics off their initial values
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(*eval_fused_and_not(a, b, x))


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_training_in_chunks_equals_whole_batch(pattern, fuse, monkeypatch):
    # forward and backward go through the batch in chunks of samples, backward rebuilding each
    # chunk's columns from x: with chunks of one or two samples the values and gradients equal
    # those of the whole batch at once (float64: only the order of gW's sum differs)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 2, 6, 8))
    results = []
    for elements in (1 << 30, 200, 1):  # one chunk; chunks of one or two samples; of one
        monkeypatch.setattr("tinyconv.ops.conv.CHUNK_ELEMENTS", elements)
        nn.set_fusion(fuse)
        try:
            model, _ = twins(pattern, np.float64, np.random.default_rng(4))
            xt = tinyconv.from_numpy(x.copy()).requires_grad_()
            out = model(xt)
            (out * tinyconv.from_numpy(np.cos(np.arange(out.numel())).reshape(out.shape))).sum(
            ).backward()
        finally:
            nn.set_fusion(True)
        results.append((out.detach().numpy(), xt.grad.numpy(),
                        {k: p.grad.numpy() for k, p in model.named_parameters()}))
    for out, gx, grads in results[1:]:
        np.testing.assert_allclose(out, results[0][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gx, results[0][1], rtol=1e-12, atol=1e-12)
        for k in grads:
            np.testing.assert_allclose(grads[k], results[0][2][k], rtol=1e-11, atol=1e-11,
                                       err_msg=k)


def test_first_layer_without_input_gradient():
    # the input needs no gradient: the small-receptive-field weight gradient route
    rng = np.random.default_rng(2)
    x = tinyconv.from_numpy(rng.standard_normal((3, 1, 8, 6)))
    for pattern in ("conv-bn-relu-pool", "conv-pool-relu"):
        grads = []
        for fuse in (True, False):
            nn.set_fusion(fuse)
            tinyconv.manual_seed(0)
            model = nn.Sequential(*PATTERNS[pattern][0]()).double()
            model[0] = nn.Conv2d(1, 3, 3, padding=1).double()
            model(x).pow(2).sum().backward()
            grads.append({k: p.grad.numpy() for k, p in model.named_parameters()})
        for k in grads[0]:
            atol = 1e-9 if k == "0.bias" and pattern == "conv-bn-relu-pool" else 1e-12
            np.testing.assert_allclose(grads[0][k], grads[1][k], rtol=1e-12, atol=atol,
                                       err_msg=f"{pattern}: {k}")


@pytest.mark.parametrize("case", ["odd output", "channels", "patched", "evaluation with grad",
                                  "subclass", "disabled"])
def test_conv_not_fused(case):
    layers = PATTERNS["conv-bn-relu-pool"][0]()
    shape = (2, 2, 4, 4)
    if case == "odd output":
        shape = (2, 2, 5, 4)
    if case == "patched":  # what tinyconv.summary and the parity recorder do
        layers[0].forward = type(layers[0]).forward.__get__(layers[0])
    if case == "subclass":
        class MyConv(nn.Conv2d):
            pass
        layers[0] = MyConv(2, 3, 3, padding=1)
    model = nn.Sequential(*layers)
    x = tinyconv.randn(*shape)
    if case == "evaluation with grad":
        model.eval()
        x.requires_grad_()
    if case == "disabled":
        nn.set_fusion(False)
    if case == "channels":
        model[1] = nn.BatchNorm2d(4)
        with pytest.raises(ValueError, match=r"BatchNorm2d\(4\): expected input with 4 channels"):
            model(x)
        return
    out = model(x)
    node = out.grad_fn
    while node is not None and node.name() != "Conv2dBackward":
        assert not node.name().startswith("Conv2d") or case == "odd output", node.name()
        inputs = [t for t in node.inputs if t is not None and t.grad_fn is not None]
        node = inputs[0].grad_fn if inputs else None
    assert node is not None and node.name() == "Conv2dBackward"


def test_wrong_input_gets_conv2d_errors():
    model = nn.Sequential(*PATTERNS["conv-bn-relu-pool"][0]())
    with pytest.raises(ValueError, match=r"expects input\[2, 2, H, W\] with 2 channels"):
        model(tinyconv.randn(2, 3, 4, 4))
    model = nn.Sequential(*PATTERNS["conv-pool-relu"][0]()).double()
    with pytest.raises(TypeError, match="dtype"):
        model(tinyconv.randn(2, 2, 4, 4))  # float32 input, float64 weights


def test_training_counts_each_batch_once():
    model = nn.Sequential(*PATTERNS["conv-bn-relu-pool"][0]())
    model(tinyconv.randn(2, 2, 4, 4))
    model(tinyconv.randn(2, 2, 4, 4))
    assert int(model[1].num_batches_tracked.item()) == 2


# ---- the fused ops on their own: against torch and against finite differences -----------------

torch = pytest.importorskip("torch")


def fused_conv_bn(x, w, b, gamma, beta):
    return fusion.conv2d_batch_norm_relu_max_pool2d(x, ((1, 1), (1, 1), (1, 1)), w, b,
                                                 (None, None, gamma, beta, True, 0.1, 1e-5))


def torch_conv_bn(x, w, b, gamma, beta):
    F = torch.nn.functional
    y = F.batch_norm(F.conv2d(x, w, b, padding=1), None, None, gamma, beta, training=True)
    return F.max_pool2d(F.relu(y), 2)


def fused_conv_pool(x, w, b):
    return fusion.conv2d_max_pool2d_relu(x, ((1, 1), (1, 1), (1, 1)), w, b)


def torch_conv_pool(x, w, b):
    F = torch.nn.functional
    return F.relu(F.max_pool2d(F.conv2d(x, w, b, padding=1), 2))


def arrays(rng, dtype, n=4, c=2, oc=3, h=6, w=8):
    return [rng.standard_normal((n, c, h, w)).astype(dtype),
            rng.standard_normal((oc, c, 3, 3)).astype(dtype),
            rng.standard_normal(oc).astype(dtype),
            rng.uniform(0.5, 1.5, oc).astype(dtype), rng.standard_normal(oc).astype(dtype)]


@pytest.mark.parametrize("dtype, tol", [(np.float64, F64), (np.float32, F32)])
def test_fused_conv_ops_match_torch(dtype, tol):
    x, w, b, gamma, beta = arrays(np.random.default_rng(3), dtype)
    if dtype == np.float64:
        check_op(fused_conv_bn, torch_conv_bn, [x, w, b, gamma, beta], **tol)
    else:
        # A conv bias before a batch norm has the gradient 0: both libraries return rounding
        # errors of ~1e-7 * sum|gx|, which no relative tolerance compares; float64 checks it
        # above, here the convolution has no bias.
        check_op(lambda x, w, g, be: fused_conv_bn(x, w, None, g, be),
                 lambda x, w, g, be: torch_conv_bn(x, w, None, g, be), [x, w, gamma, beta],
                 **tol)
    check_op(fused_conv_pool, torch_conv_pool, [x, w, b], **tol)


def test_fused_conv_ops_gradients_equal_finite_differences():
    a = arrays(np.random.default_rng(4), np.float64, n=2, c=2, oc=2, h=4, w=4)
    grad_check(fused_conv_bn, a, atol=1e-6, rtol=1e-5)
    grad_check(fused_conv_pool, a[:3], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("wanted", ["x", "W", "b", "xW", "xb", "Wb", "xWb"])
def test_conv_gradients_for_each_subset_of_inputs_equal_torch(wanted, monkeypatch):
    # backward builds each chunk's columns only for the gradients wanted (none for b alone);
    # chunks of two samples, float64, against torch
    torch = pytest.importorskip("torch")
    monkeypatch.setattr("tinyconv.ops.conv.CHUNK_ELEMENTS", 100)
    rng = np.random.default_rng(5)
    arrays = {"x": rng.standard_normal((5, 2, 5, 6)), "W": rng.standard_normal((4, 2, 3, 3)),
              "b": rng.standard_normal(4)}
    ours = {k: tinyconv.from_numpy(v.copy()).requires_grad_(k in wanted) for k, v in arrays.items()}
    theirs = {k: torch.tensor(v, requires_grad=k in wanted) for k, v in arrays.items()}
    weights = np.cos(np.arange(5 * 4 * 5 * 6)).reshape(5, 4, 5, 6)
    (tinyconv.nn.functional.conv2d(ours["x"], ours["W"], ours["b"], padding=1)
     * tinyconv.from_numpy(weights)).sum().backward()
    (torch.nn.functional.conv2d(theirs["x"], theirs["W"], theirs["b"], padding=1)
     * torch.tensor(weights)).sum().backward()
    for k in arrays:
        if k in wanted:
            np.testing.assert_allclose(ours[k].grad.numpy(), theirs[k].grad.numpy(), rtol=1e-12,
                                       atol=1e-12, err_msg=k)
        else:
            assert ours[k].grad is None
