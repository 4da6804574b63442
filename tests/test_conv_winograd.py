"""Winograd wired into Conv2d (tinyconv/ops/conv.py, ``uses_winograd``): the forward pass
(with and without autograd), the input gradient, the fused ops, the switch.

Oracles: torch's convolution and its gradients (float64), float64 central differences, the
im2col path (``WINOGRAD = False``), and the unfused modules for the fused ops (bit-identical).
Each test also checks that the Winograd path did run (a spy on the two entry points), so that
a broken transform cannot hide behind another path.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import eval_fused_and_not, grad_check, run_fused

import tinyconv
from tinyconv import nn
from tinyconv.nn import functional as F
from tinyconv.ops import conv as conv_ops

torch = pytest.importorskip("torch")

# a geometry the rule selects (ch * tiles = 64 * 7*14*14 >= 2**16, a 28x28 output) and one it
# does not
SELECTED = ((7, 64, 28, 28), 64)
SEED_LAYER = ((64, 64, 14, 14), 64)  # DeepFashionCNN's 64x14x14 -> 64 at batch 64


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls of the Winograd forward and input gradient made by ops/conv.py."""
    calls = {"forward": 0, "input grad": 0}

    def wrap(name, fn):
        def counted(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return counted

    monkeypatch.setattr(conv_ops, "winograd_conv2d", wrap("forward", conv_ops.winograd_conv2d))
    monkeypatch.setattr(conv_ops, "winograd_conv2d_input_grad",
                        wrap("input grad", conv_ops.winograd_conv2d_input_grad))
    return calls


@pytest.fixture
def everywhere(monkeypatch):
    """Winograd for every geometry it computes (small ones too), the direct loops off."""
    monkeypatch.setattr(conv_ops, "DIRECT", False)
    for name in ("WINOGRAD_MIN_CHANNELS", "WINOGRAD_SMALL_CHANNELS", "WINOGRAD_SMALL_MIN_SIDE",
                 "WINOGRAD_MIN_TILES", "WINOGRAD_MIN_WORK"):
        monkeypatch.setattr(conv_ops, name, 1)


def uses(shape, oc, padding=1):
    return conv_ops.uses_winograd(shape, (oc, shape[1], 3, 3), (1, 1), (padding, padding),
                                   (1, 1))


def test_the_rule():
    # ResNet-18's 3x3 stride-1 layers at batch 8 and 32 (see uses_winograd for the timings)
    for batch, c, side, want in [(8, 64, 56, True), (8, 128, 28, True), (8, 256, 14, True),
                                 (8, 128, 14, False), (8, 512, 7, False), (32, 64, 56, True),
                                 (32, 128, 14, True), (32, 512, 7, True)]:
        assert uses((batch, c, side, side), c) is want, (batch, c, side)
    # the seed networks' 3x3 layers at batch 64 stay on im2col
    for c, side, oc in [(1, 28, 32), (32, 28, 32), (32, 14, 64), (64, 14, 64)]:
        assert not uses((64, c, side, side), oc)
    assert uses(*SELECTED) and not uses(*SEED_LAYER)
    # stride 2 or a 1x1 kernel: never
    assert not conv_ops.uses_winograd((8, 64, 56, 56), (64, 64, 3, 3), (2, 2), (1, 1), (1, 1))
    assert not conv_ops.uses_winograd((8, 64, 56, 56), (64, 64, 1, 1), (1, 1), (0, 0), (1, 1))


@pytest.mark.parametrize("padding", [1, 0])  # (padding 2: its input gradient, a 26-row
# output, is not selected; test_gradients_equal_finite_differences covers it)
def test_conv2d_on_a_selected_geometry_equals_torch(padding, spy):
    (N, C, H, W), OC = SELECTED
    H, W = H + 2 - 2 * padding, W + 3 - 2 * padding  # output 28 x 29: a partial last tile
    rng = np.random.default_rng(padding)
    arrays = {"x": rng.standard_normal((N, C, H, W)),
              "W": rng.standard_normal((OC, C, 3, 3)) / np.sqrt(9 * C),
              "b": rng.standard_normal(OC)}
    ours = {k: tinyconv.from_numpy(v.copy()).requires_grad_() for k, v in arrays.items()}
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    y = F.conv2d(ours["x"], ours["W"], ours["b"], padding=padding)
    y_ref = torch.nn.functional.conv2d(theirs["x"], theirs["W"], theirs["b"], padding=padding)
    assert spy["forward"] == 1
    g = np.random.default_rng(9).standard_normal(y.shape)
    y.backward(tinyconv.from_numpy(g))
    y_ref.backward(torch.tensor(g))
    assert spy["input grad"] == 1
    np.testing.assert_allclose(y.detach().numpy(), y_ref.detach().numpy(), rtol=1e-11,
                               atol=1e-11)
    for k in arrays:
        want = theirs[k].grad.numpy()
        np.testing.assert_allclose(ours[k].grad.numpy(), want, rtol=1e-11,
                                   atol=1e-11 * np.abs(want).max(), err_msg=k)
    with tinyconv.no_grad():  # evaluation goes the same way
        y_eval = F.conv2d(*map(tinyconv.from_numpy, arrays.values()), padding=padding)
    assert spy["forward"] == 2
    np.testing.assert_array_equal(y_eval.numpy(), y.detach().numpy())


def test_float32_on_a_selected_geometry_near_im2col(spy, monkeypatch):
    """float32: Winograd's result and input gradient within float32 rounding of im2col's."""
    (N, C, H, W), OC = SELECTED
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((OC, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    g = rng.standard_normal((N, OC, H, W)).astype(np.float32)
    results = []
    for on in (True, False):
        monkeypatch.setattr(conv_ops, "WINOGRAD", on)
        xt = tinyconv.from_numpy(x.copy()).requires_grad_()
        y = F.conv2d(xt, tinyconv.from_numpy(w), padding=1)
        y.backward(tinyconv.from_numpy(g))
        results.append((y.detach().numpy(), xt.grad.numpy()))
    assert spy == {"forward": 1, "input grad": 1}  # only while on
    for got, want in zip(*results, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())


@pytest.mark.parametrize("padding, size", [(1, (5, 6)), (0, (6, 5)), (2, (4, 4)),
                                           ((1, 2), (5, 4))])
def test_gradients_equal_finite_differences(padding, size, everywhere, spy):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3) + size)
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    grad_check(lambda x, w, b: F.conv2d(x, w, b, padding=padding), [x, w, b], atol=1e-6,
               rtol=1e-5)
    assert spy["forward"] > 0 and spy["input grad"] > 0


def _patterns():
    from test_conv_fusion import PATTERNS, twins
    # the patterns whose convolution is a 3x3 stride-1 one
    return PATTERNS, twins, ["conv-bn-relu-pool", "conv-bn-relu-pool, no bias", "conv-pool-relu"]


@pytest.mark.parametrize("pattern", _patterns()[2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_equals_unfused_by_winograd(pattern, dtype, everywhere, spy):
    """The fused ops read the convolution channel-major: by Winograd in both, so bit-identical
    outputs and running statistics, training and evaluation."""
    PATTERNS, twins, _ = _patterns()
    rng = np.random.default_rng(0)
    x = tinyconv.from_numpy(rng.standard_normal((4, 2, 6, 8)).astype(dtype))
    a, b = twins(pattern, dtype, rng)
    out_f, gx_f, g_f, state_f, node_f = run_fused(a, x, True)
    out_u, gx_u, g_u, state_u, _ = run_fused(b, x, False)
    assert node_f == PATTERNS[pattern][1]
    assert spy["forward"] == 2 and spy["input grad"] == 2
    np.testing.assert_array_equal(out_f, out_u)
    for k in state_f:
        np.testing.assert_array_equal(state_f[k], state_u[k], err_msg=k)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gx_f, gx_u, rtol=rtol, atol=rtol * np.abs(gx_u).max())
    np.testing.assert_array_equal(*eval_fused_and_not(a, b, x))
    assert spy["forward"] > 2


def test_fused_equals_unfused_on_a_selected_geometry(spy):
    """Batch 6 is selected, chunks of 1-2 samples (im2col's in evaluation) would not be: the
    fused evaluation hands Winograd the whole batch, as Conv2d.forward does."""
    rng = np.random.default_rng(1)
    x = tinyconv.from_numpy(rng.standard_normal((6, 64, 28, 28)).astype(np.float32))
    a = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.MaxPool2d(2, 2))
    b = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.MaxPool2d(2, 2))
    assert uses((6, 64, 28, 28), 64) and not uses((2, 64, 28, 28), 64)
    b.load_state_dict(a.state_dict())
    out_f, _, _, state_f, node_f = run_fused(a, x, True)
    out_u, _, _, state_u, _ = run_fused(b, x, False)
    assert node_f == "Conv2dBatchNormReLUMaxPool2dBackward" and spy["forward"] == 2
    np.testing.assert_array_equal(out_f, out_u)
    for k in state_f:
        np.testing.assert_array_equal(state_f[k], state_u[k], err_msg=k)
    np.testing.assert_array_equal(*eval_fused_and_not(a, b, x))
    assert spy["forward"] == 4


def _import_with(value):
    env = dict(os.environ, TINYCONV_WINOGRAD=value)
    return subprocess.run([sys.executable, "-c",
                           "import tinyconv.ops.conv as c; print(c.WINOGRAD)"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_switch():
    assert _import_with("0").stdout.strip() == "False"
    assert _import_with("1").stdout.strip() == "True"
    bad = _import_with("off")
    assert bad.returncode != 0
    assert ("environment variable TINYCONV_WINOGRAD must be one of '0', '1' (default '1'); "
            "got 'off'") in bad.stderr


def test_switched_off_uses_im2col(monkeypatch, spy):
    monkeypatch.setattr(conv_ops, "WINOGRAD", False)
    assert not uses(*SELECTED)
    (N, C, H, W), OC = SELECTED
    x = tinyconv.from_numpy(np.ones((N, C, H, W))).requires_grad_()
    F.conv2d(x, tinyconv.from_numpy(np.ones((OC, C, 3, 3))), padding=1).sum().backward()
    assert spy == {"forward": 0, "input grad": 0}
