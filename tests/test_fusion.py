"""BatchNorm2d -> ReLU -> MaxPool2d(2, 2) fused by nn.Sequential (tinyconv/nn/fusion.py).

The fused kernels against their reference twins (the unfused NumPy references in a row), the
fused op against the three unfused ops (bit-identical outputs and running statistics, gradients
equal up to the order of the sums), and the rules for when nn.Sequential fuses.
"""

import ast
from pathlib import Path

import numpy as np
import pytest
from helpers import F32, F64, check_op, draw_array, eval_fused_and_not, grad_check, run_fused
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv import nn
from tinyconv.kernels import fused
from tinyconv.nn import fusion

HYP = settings(max_examples=30, deadline=None, database=None)
ROOT = Path(__file__).resolve().parents[1]
DTYPES = [np.float32, np.float64]


@HYP
@given(n=st.integers(1, 3), c=st.integers(1, 3), oh=st.integers(1, 4), ow=st.integers(1, 4),
       dtype=st.sampled_from(DTYPES), ties=st.booleans(), data=st.data())
def test_fused_kernels_equal_reference(n, c, oh, ow, dtype, ties, data):
    x = draw_array(data, (n, c, 2 * oh, 2 * ow), dtype, ties)
    gamma = draw_array(data, (c,), dtype, False)
    beta = draw_array(data, (c,), dtype, False)
    gy = draw_array(data, (n, c, oh, ow), dtype, False)
    # the statistics: the fast kernel's float64 sums against NumPy's
    y, at, (mu, var, invstd) = fused.train_forward(x, gamma, beta, 1e-5)
    y_ref, at_ref, stats_ref = fused.train_forward_reference(x, gamma, beta, 1e-5)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for name, a, b in zip(("mu", "var", "invstd"), (mu, var, invstd), stats_ref, strict=True):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, err_msg=name)
    assert y.dtype == dtype and at.dtype == np.uint8
    np.testing.assert_allclose(y, y_ref, rtol=rtol * 10, atol=rtol * 10)
    # given the same statistics, the forward pass is exact (same operations, same order)
    y_same, at_same = fused.forward_reference(x, gamma, beta, True, (mu, invstd))
    np.testing.assert_array_equal(y, y_same)
    np.testing.assert_array_equal(at, at_same)
    grads = fused.backward(gy, x, y, at, gamma, mu, invstd)
    grads_ref = fused.backward_reference(gy, x, y, at, gamma, mu, invstd)
    for name, a, b in zip(("gx", "ggamma", "gbeta"), grads, grads_ref, strict=True):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=rtol * 10, err_msg=name)


def layer(c=3, pool=None):
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), pool or nn.MaxPool2d(2, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ties", [False, True])
def test_fused_equals_unfused(dtype, ties):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 6, 8))
    x = tinyconv.from_numpy((np.round(x * 2) / 2 if ties else x).astype(dtype))
    tinyconv.manual_seed(0)
    a, b = layer().to(dtype), layer().to(dtype)
    b.load_state_dict(a.state_dict())
    for p in a.parameters():  # not the default 1 and 0
        p.data = tinyconv.from_numpy(rng.uniform(0.5, 1.5, p.shape).astype(dtype))
    b.load_state_dict(a.state_dict())
    for _ in range(2):  # the second step sees the running statistics moved by the first
        out_f, gx_f, g_f, state_f, node_f = run_fused(a, x, True)
        out_u, gx_u, g_u, state_u, node_u = run_fused(b, x, False)
        assert node_f == "BatchNormReLUMaxPool2dBackward" and node_u == "MaxPool2dBackward"
        np.testing.assert_array_equal(out_f, out_u)
        for k in state_f:
            np.testing.assert_array_equal(state_f[k], state_u[k], err_msg=k)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(gx_f, gx_u, rtol=rtol, atol=rtol * np.abs(gx_u).max())
        for k in g_f:
            np.testing.assert_allclose(g_f[k], g_u[k], rtol=rtol, atol=rtol, err_msg=k)
    # evaluation under no_grad: fused, same output
    np.testing.assert_array_equal(*eval_fused_and_not(a, b, x))


def test_evaluation_with_a_backward_keeps_batch_norm_apart():
    x = tinyconv.randn(2, 3, 4, 4, requires_grad=True)
    model = layer().eval()
    out = model(x)
    assert out.grad_fn.name() == "MaxPool2dReLUBackward"
    assert out.grad_fn.inputs[0].grad_fn.name() == "BatchNormBackward"
    out.sum().backward()
    assert x.grad is not None
    assert int(model[0].num_batches_tracked.item()) == 0  # counted once, only in training


def test_training_counts_each_batch_once():
    model = layer()
    model(tinyconv.randn(2, 3, 4, 4))
    model(tinyconv.randn(2, 3, 4, 4))
    assert int(model[0].num_batches_tracked.item()) == 2


@pytest.mark.parametrize("case", ["odd size", "stride 1", "padding", "ceil mode", "indices",
                                  "patched", "subclass", "disabled"])
def test_not_fused(case):
    pool = {"stride 1": nn.MaxPool2d(2, 1), "padding": nn.MaxPool2d(2, 2, padding=1),
            "ceil mode": nn.MaxPool2d(2, 2, ceil_mode=True)}.get(case)
    model = layer(pool=pool)
    shape = (2, 3, 5, 4) if case == "odd size" else (2, 3, 4, 4)
    if case == "indices":
        model[2].return_indices = True
    if case == "patched":  # what tinyconv.summary and the parity recorder do
        model[1].forward = type(model[1]).forward.__get__(model[1])
    if case == "subclass":
        class MyReLU(nn.ReLU):
            pass
        model = nn.Sequential(model[0], MyReLU(), model[2])
    if case == "disabled":
        nn.set_fusion(False)
    out = model(tinyconv.randn(*shape))
    out = out[0] if case == "indices" else out
    assert out.grad_fn.name() not in ("BatchNormReLUMaxPool2dBackward", "MaxPool2dReLUBackward")


def test_wrong_input_gets_the_modules_errors():
    model = layer(c=3)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input with 3 channels"):
        model(tinyconv.randn(2, 4, 4, 4))


def test_summary_still_sees_each_layer():
    from tinyconv.models import SEED_NETWORKS
    text = str(tinyconv.summary(SEED_NETWORKS["fashioncnn"][0](), (1, 28, 28)))
    for name in ("BatchNorm2d", "ReLU", "MaxPool2d"):
        assert name in text


# ---- MaxPool2d(2, 2) and ReLU, either order ----------------------------------------------------


@HYP
@given(n=st.integers(1, 3), c=st.integers(1, 3), oh=st.integers(1, 4), ow=st.integers(1, 4),
       dtype=st.sampled_from(DTYPES), ties=st.booleans(), nan=st.booleans(), data=st.data())
def test_pool_relu_kernels_equal_reference(n, c, oh, ow, dtype, ties, nan, data):
    x = draw_array(data, (n, c, 2 * oh, 2 * ow), dtype, ties)
    if nan:
        x[(slice(None), slice(None), 0, 0)] = np.nan
    gy = draw_array(data, (n, c, oh, ow), dtype, False)
    y, at = fused.pool_relu_forward(x)
    y_ref, at_ref = fused.pool_relu_forward_reference(x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(at, at_ref)
    np.testing.assert_array_equal(fused.pool_relu_backward(gy, y, at, x.shape),
                                  fused.pool_relu_backward_reference(gy, y, at, x.shape))


@pytest.mark.parametrize("order", ["relu first", "pool first"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_relu_fused_equals_unfused(order, dtype):
    # both orders give the same values and gradients, so one op serves both
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal((3, 2, 6, 4)) * 2) / 2  # ties, zeros, all-negative windows
    x[0, 0, :2, :2] = -1.0
    x = tinyconv.from_numpy(x.astype(dtype))
    mods = [nn.ReLU(), nn.MaxPool2d(2)]
    model = nn.Sequential(*(mods if order == "relu first" else mods[::-1]))
    out_f, gx_f, _, _, node_f = run_fused(model, x, True)
    out_u, gx_u, _, _, node_u = run_fused(model, x, False)
    assert node_f == "MaxPool2dReLUBackward"
    assert node_u == ("MaxPool2dBackward" if order == "relu first" else "ReLUBackward")
    np.testing.assert_array_equal(out_f, out_u)
    np.testing.assert_array_equal(gx_f, gx_u)  # no sums: exact


# ---- the fused ops on their own: against torch and against finite differences -----------------

torch = pytest.importorskip("torch")


def fused_bn(x, w, b):
    return fusion.batch_norm_relu_max_pool2d(x, None, None, w, b, True, 0.1, 1e-5)


def torch_bn(x, w, b):
    F = torch.nn.functional
    return F.max_pool2d(F.relu(F.batch_norm(x, None, None, w, b, training=True, eps=1e-5)), 2)


@pytest.mark.parametrize("dtype, tol", [(np.float64, F64), (np.float32, F32)])
def test_fused_ops_match_torch(dtype, tol):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 6, 8)).astype(dtype)
    w, b = rng.uniform(0.5, 1.5, 3).astype(dtype), rng.standard_normal(3).astype(dtype)
    check_op(fused_bn, torch_bn, [x, w, b], **tol)
    check_op(fusion.max_pool2d_relu, lambda t: torch.relu(torch.nn.functional.max_pool2d(t, 2)),
             [x], **tol)


def test_fused_ops_gradients_equal_finite_differences():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 4, 4))
    w, b = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    grad_check(fused_bn, [x, w, b], atol=1e-6, rtol=1e-5)
    grad_check(fusion.max_pool2d_relu, [x], atol=1e-7, rtol=1e-5)


# ---- structure: fusion lives in nn/fusion.py, imported at the top ---------------------------


@pytest.mark.parametrize("path", ["tinyconv/nn/fusion.py", "tinyconv/nn/functional.py",
                                  "tinyconv/nn/modules/container.py", "tinyconv/ops/conv.py",
                                  "tinyconv/ops/fused.py", "tinyconv/kernels/fused.py"])
def test_no_import_inside_functions(path):
    """No import cycle worked around by importing inside a function (the modules on the path
    from nn.Sequential to the fused kernels)."""
    tree = ast.parse((ROOT / path).read_text())
    inner = [f"{fn.name}: line {node.lineno}" for fn in ast.walk(tree)
             if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not inner, f"{path} imports inside functions: {inner}"


def test_one_pair_helper():
    """``_pair`` is defined once, in tinyconv/_utils.py."""
    defined = [str(p.relative_to(ROOT)) for p in (ROOT / "tinyconv").rglob("*.py")
               if "def _pair(" in p.read_text()]
    assert defined == ["tinyconv/_utils.py"]
