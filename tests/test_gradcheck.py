"""tinyconv.autograd.gradcheck against torch.autograd.gradcheck, and tinyconv.testing.

* gradcheck passes on correct ops (built-in and custom), catches a wrong backward and its
  report names the right output, input and index; it answers as torch's gradcheck does on the
  same Functions, and its Jacobians equal torch's;
* tinyconv.testing.assert_close gives torch.testing.assert_close's verdicts and messages;
* the public hypothesis strategies draw valid arguments.
"""

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv.autograd import GradcheckError, gradcheck
from tinyconv.autograd.gradcheck import analytical_jacobian, numerical_jacobian
from tinyconv.kernels.conv import conv_out_size
from tinyconv.nn import functional as F
from tinyconv.testing import assert_close, default_tolerances, noncontiguous
from tinyconv.testing import strategies as tst

LIBS = [tinyconv, torch]


def _inputs(lib, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(lib.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes)


def make_weighted_mul(lib, wrong_at=None):
    """y = a * b * w (w a fixed float, not a tensor); with ``wrong_at``, the gradient of b
    is off by 0.25 at that flat index only."""

    class WeightedMul(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, w):
            ctx.save_for_backward(a, b)
            ctx.w = w
            return a * b * w

        @staticmethod
        def backward(ctx, gy):
            a, b = ctx.saved_tensors
            gb = gy * a * ctx.w
            if wrong_at is not None:
                bump = np.zeros(tuple(b.shape))
                bump.flat[wrong_at] = 0.25
                gb = gb + lib.tensor(bump) * gy
            return gy * b * ctx.w, gb, None

    return WeightedMul


def make_two_outputs(lib, wrong=False):
    class SinCosLike(lib.autograd.Function):
        """(x ** 2, x.exp()): two outputs; with ``wrong``, the second output's gradient is
        dropped."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x, x.exp()

        @staticmethod
        def backward(ctx, g_square, g_exp):
            (x,) = ctx.saved_tensors
            return 2 * x * g_square + (0 if wrong else x.exp() * g_exp)

    return SinCosLike


# ---------------------------------------------------------------------------------------------
# gradcheck passes on correct ops


@pytest.mark.parametrize("name, fn, shapes", [
    ("mul-broadcast", lambda a, b: a * b, [(2, 3), (3,)]),
    ("div", lambda a, b: a / (b * b + 1), [(2, 2), (2, 2)]),
    ("matmul", lambda a, b: a @ b, [(2, 3), (3, 2)]),
    ("log_softmax", lambda a: a.log_softmax(1), [(2, 4)]),
    ("sum-dim", lambda a: a.sum(1, keepdim=True), [(3, 2)]),
    ("conv2d", lambda x, w: F.conv2d(x, w, stride=2, padding=1), [(1, 2, 4, 4), (2, 2, 3, 3)]),
])
def test_passes_on_builtin_ops(name, fn, shapes):
    assert gradcheck(fn, _inputs(tinyconv, *shapes)) is True


def test_passes_on_custom_functions_and_leaves_inputs_alone():
    a, b = _inputs(tinyconv, (2, 3), (2, 3))
    before = a.detach().numpy().copy()
    assert gradcheck(make_weighted_mul(tinyconv).apply, (a, b, 1.5))
    assert gradcheck(make_two_outputs(tinyconv).apply, (a,))
    assert a.grad is None and b.grad is None  # it used copies
    np.testing.assert_array_equal(a.detach().numpy(), before)


def test_single_tensor_input_and_only_some_inputs_requiring_grad():
    (x,) = _inputs(tinyconv, (3,))
    assert gradcheck(lambda t: t.tanh(), x)
    fixed = tinyconv.tensor(np.array([1.0, 2.0, 3.0]))
    assert gradcheck(lambda t, c: t * c, (x, fixed))


# ---------------------------------------------------------------------------------------------
# gradcheck catches a wrong backward and says where


def test_wrong_backward_report_names_input_and_index():
    a, b = _inputs(tinyconv, (2, 3), (2, 3))
    Broken = make_weighted_mul(tinyconv, wrong_at=4)  # b's element [1, 1]
    with pytest.raises(GradcheckError) as info:
        gradcheck(Broken.apply, (a, b, 2.0))
    report = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert report.startswith("Jacobian mismatch for output 0 with respect to input 1 in "
                             "WeightedMul.apply:")
    assert "with respect to input 0" not in report  # a's gradient is right
    # only d y[1,1] / d b[1,1] is wrong (the bump is scaled by gy, one-hot at y[1, 1])
    assert "1 of 36 entries differ" in report
    assert "Worst entry: d output[0][1, 1] / d input[1][1, 1]" in report
    expected_analytical = 2.0 * a.detach().numpy()[1, 1] + 0.25
    assert f"analytical (backward)      {expected_analytical:.10g}" in report


def test_wrong_second_output_is_reported_for_that_output():
    (x,) = _inputs(tinyconv, (3,))
    with pytest.raises(GradcheckError, match="output 1 with respect to input 0") as info:
        gradcheck(make_two_outputs(tinyconv, wrong=True).apply, (x,))
    assert "output 0" not in str(info.value)


def test_raise_exception_false_returns_false():
    a, b = _inputs(tinyconv, (2,), (2,))
    assert gradcheck(make_weighted_mul(tinyconv, wrong_at=0).apply, (a, b, 1.0),
                     raise_exception=False) is False


def test_tolerances_decide():
    # a backward off by a relative 1e-4: passes at rtol=1e-3, fails at rtol=1e-5
    class Slightly(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3

        @staticmethod
        def backward(ctx, gy):
            return gy * 3 * (1 + 1e-4)

    (x,) = _inputs(tinyconv, (4,))
    assert gradcheck(Slightly.apply, (x,))
    assert not gradcheck(Slightly.apply, (x,), rtol=1e-5, atol=0, raise_exception=False)


def test_non_reproducible_backward():
    class Noisy(tinyconv.autograd.Function):
        rng = np.random.default_rng(0)

        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, gy):
            return gy * (2 + 1e-9 * Noisy.rng.standard_normal())

    (x,) = _inputs(tinyconv, (3,))
    with pytest.raises(GradcheckError, match="Backward is not reentrant in Noisy.apply"):
        gradcheck(Noisy.apply, (x,))
    assert gradcheck(Noisy.apply, (x,), nondet_tol=1e-6)


# ---------------------------------------------------------------------------------------------
# refusals


def test_float32_is_refused_with_the_reason_and_the_fix():
    x = tinyconv.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"inputs\[0\] requires grad and has dtype float32, "
                                         r"not float64(.|\n)*noise(.|\n)*inputs\[0\]\.double\(\)"):
        gradcheck(lambda t: t * 2, (x,))


def test_no_input_requires_grad():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gradcheck(lambda t: t * 2, (tinyconv.tensor(np.ones(2)),))
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        torch.autograd.gradcheck(lambda t: t * 2, (torch.ones(2, dtype=torch.float64),))


def test_non_tensor_output():
    (x,) = _inputs(tinyconv, (2,))
    with pytest.raises(TypeError, match="returned a ndarray as output 0"):
        gradcheck(lambda t: t.detach().numpy(), (x,))


def test_module_paths_like_torch():
    from tinyconv.autograd.gradcheck import gradcheck as from_module

    assert from_module is tinyconv.autograd.gradcheck is gradcheck
    assert not hasattr(tinyconv.autograd, "gradgradcheck")  # no double backward in tinyconv


# ---------------------------------------------------------------------------------------------
# the same verdicts and Jacobians as torch


CASES = {
    "right": lambda lib: (make_weighted_mul(lib).apply, 1.5),
    "wrong at 2": lambda lib: (make_weighted_mul(lib, wrong_at=2).apply, 1.5),
    "two outputs": lambda lib: (make_two_outputs(lib).apply, None),
    "two outputs, wrong": lambda lib: (make_two_outputs(lib, wrong=True).apply, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_verdict_as_torch(case):
    verdicts = []
    for lib in LIBS:
        fn, w = CASES[case](lib)
        a, b = _inputs(lib, (2, 2), (2, 2))
        args = (a, b, w) if w is not None else (a,)
        verdicts.append(lib.autograd.gradcheck(fn, args, raise_exception=False))
    assert verdicts[0] == verdicts[1]
    assert verdicts[0] == ("wrong" not in case)


@pytest.mark.parametrize("wrong", [False, True])
def test_jacobians_equal_torchs(wrong):
    fns, ins = [], []
    for lib in LIBS:
        fn, _ = CASES["two outputs, wrong" if wrong else "two outputs"](lib)
        fns.append(fn)
        ins.append(_inputs(lib, (3,)))
    analytical = analytical_jacobian(fns[0], ins[0])
    numerical = numerical_jacobian(fns[0], ins[0])
    reference = torch.autograd.functional.jacobian(make_two_outputs(torch).apply, ins[1][0])
    for k in range(2):
        np.testing.assert_allclose(numerical[k][0], reference[k].numpy(), rtol=1e-7,
                                   atol=1e-9)
    torch_analytical = []  # torch's own backward, one-hot row by row, through the broken Function
    x = ins[1][0]
    for k in range(2):
        rows = []
        for r in range(3):
            out = fns[1](x)[k]
            (g,) = torch.autograd.grad(out, x, torch.eye(3, dtype=torch.float64)[r],
                                       allow_unused=True)
            rows.append(np.zeros(3) if g is None else g.numpy())
        torch_analytical.append(np.array(rows))
    for k in range(2):
        np.testing.assert_allclose(analytical[k][0], torch_analytical[k], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# tinyconv.testing.assert_close: torch.testing.assert_close's verdicts and messages


def _message(check, actual, expected, **kwargs):
    try:
        check(actual, expected, **kwargs)
    except (AssertionError, ValueError) as err:
        return type(err).__name__ + ": " + str(err)
    return None


def _torch_names(text):
    """torch's message with its dtype and Size spelled as NumPy's."""
    if text is None:
        return None
    for name in ("float16", "float32", "float64", "int64"):
        text = text.replace(f"torch.{name}", name)
    return text.replace("torch.Size([2])", "(2,)").replace("torch.Size([3])", "(3,)")


PAIRS = {
    "float32 one off": ([1.0, 2.0, 3.0], [1.0, 2.5, 3.0], np.float32, {}),
    "float32 within default": ([1.0, 2.0], [1.0, 2.0 + 1e-6], np.float32, {}),
    "float64 outside default": ([1.0, 2.0], [1.0, 2.0 + 1e-6], np.float64, {}),
    "float16 within default": ([1.0, 2.0], [1.0, 2.001], np.float16, {}),
    "int exact": ([1, 2, 3], [1, 3, 3], np.int64, {}),
    "nan": ([0.0, np.nan], [0.0, np.nan], np.float64, {}),
    "nan equal": ([0.0, np.nan], [0.0, np.nan], np.float64, {"equal_nan": True}),
    "explicit tolerances": ([1.0, 2.0], [1.1, 2.0], np.float64, {"rtol": 0.0, "atol": 0.2}),
    "only rtol": ([1.0], [1.0], np.float64, {"rtol": 0.1}),
    "2d worst": ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.1], [3.0, 5.0]], np.float64, {}),
}


@pytest.mark.parametrize("case", sorted(PAIRS))
def test_assert_close_like_torch(case):
    a, e, dtype, kwargs = PAIRS[case]
    ours = _message(assert_close, tinyconv.tensor(np.array(a, dtype=dtype)),
                    tinyconv.tensor(np.array(e, dtype=dtype)), **kwargs)
    theirs = _message(torch.testing.assert_close, torch.tensor(np.array(a, dtype=dtype)),
                      torch.tensor(np.array(e, dtype=dtype)), **kwargs)
    # NOTE: torch prints float32 differences computed in float32 (0.20000000298023224);
    # tinyconv subtracts in float64 (0.2). The greatest differences are compared as numbers,
    # everything else (counts, indices, tolerances) as text.
    difference = re.compile(r"difference: (\S+) at")
    assert difference.sub("difference: # at", ours or "") == \
        difference.sub("difference: # at", _torch_names(theirs) or "")
    if ours is not None:
        np.testing.assert_allclose([float(v) for v in difference.findall(ours)],
                                   [float(v) for v in difference.findall(theirs)], rtol=1e-6)


def test_assert_close_shape_dtype_nested_and_msg():
    shape = _message(assert_close, tinyconv.zeros(2), tinyconv.zeros(3))
    assert shape == _torch_names(_message(torch.testing.assert_close, torch.zeros(2),
                                          torch.zeros(3)))
    dtype = _message(assert_close, tinyconv.zeros(2), tinyconv.zeros(2, dtype=tinyconv.float64))
    assert dtype == _torch_names(_message(torch.testing.assert_close, torch.zeros(2),
                                          torch.zeros(2, dtype=torch.float64)))
    assert_close(tinyconv.zeros(2), tinyconv.zeros(2, dtype=tinyconv.float64), check_dtype=False)
    nested = _message(assert_close, {"w": [tinyconv.zeros(2)]}, {"w": [tinyconv.ones(2)]})
    assert nested.endswith("The failure occurred for item ['w'][0]")
    assert _message(assert_close, 1.0, 1.5, msg="custom") == "AssertionError: custom"
    assert _message(assert_close, 1.0, 1.5, msg=lambda m: m.upper()).startswith(
        "AssertionError: SCALARS ARE NOT CLOSE")
    assert_close(np.arange(3.0), np.arange(3.0))  # NumPy arrays work too
    assert default_tolerances(np.float32) == (1.3e-6, 1e-5)
    assert default_tolerances(np.float32, np.float64) == (1.3e-6, 1e-5)  # the looser
    assert default_tolerances(np.int64) == (0.0, 0.0)


def test_testing_imports_neither_torch_nor_hypothesis():
    code = ("import sys, tinyconv.testing; "
            "assert 'torch' not in sys.modules and 'hypothesis' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_strategies_without_hypothesis_say_what_to_install():
    code = ("import sys; sys.modules['hypothesis'] = None\n"  # as if it were not installed
            "try:\n    import tinyconv.testing.strategies\n"
            "except ImportError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert "tinyconv.testing.strategies needs hypothesis: pip install hypothesis" in out


# ---------------------------------------------------------------------------------------------
# the public strategies


@settings(max_examples=25, deadline=None)
@given(args=tst.conv2d_args(), seed=tst.seeds)
def test_conv2d_args_are_valid(args, seed):
    rng = np.random.default_rng(seed)
    x = tinyconv.tensor(rng.standard_normal(args["x_shape"]))
    w = tinyconv.tensor(rng.standard_normal(args["w_shape"]))
    y = F.conv2d(x, w, stride=args["stride"], padding=args["padding"],
                 dilation=args["dilation"])

    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    s, p, d = pair(args["stride"]), pair(args["padding"]), pair(args["dilation"])
    for axis in (0, 1):
        size = conv_out_size(args["x_shape"][2 + axis], args["w_shape"][2 + axis], s[axis],
                             p[axis], d[axis])
        assert y.shape[2 + axis] == size >= 1


@settings(max_examples=25, deadline=None)
@given(args=tst.pool2d_args())
def test_pool2d_args_are_valid(args):
    x = tinyconv.randn(*args["x_shape"])
    y = F.max_pool2d(x, args["kernel_size"], args["stride"], args["padding"], args["dilation"],
                     args["ceil_mode"])
    assert y.numel() >= 1


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_arrays_and_tensors_options(data):
    shape = data.draw(tst.shapes(max_dims=3))
    x = data.draw(tst.arrays(shape, np.float32, low=-2, high=3, ties=True, contiguous=False))
    assert x.shape == shape and x.dtype == np.float32
    assert np.all((x >= -2) & (x <= 3)) and np.all(x * 2 == np.round(x * 2))
    assert x.size < 2 or not x.flags.c_contiguous
    special = data.draw(tst.arrays((4,), nan=True, inf=True))
    assert np.all(np.isfinite(special) | np.isnan(special) | np.isinf(special))
    t = data.draw(tst.tensors(shape, np.float64, requires_grad=True))
    assert isinstance(t, tinyconv.Tensor) and t.requires_grad and t.dtype == tinyconv.float64
    xb, target = data.draw(tst.batches(num_classes=3))
    assert xb.ndim == 4 and target.shape == (xb.shape[0],) and int(target.max()) < 3


def test_arrays_can_draw_nan_and_inf():
    from hypothesis import find

    assert np.isnan(find(tst.arrays((3,), nan=True), lambda a: np.isnan(a).any())).any()
    assert np.isinf(find(tst.arrays((3,), inf=True), lambda a: np.isinf(a).any())).any()
    assert noncontiguous(np.ones((2, 3))).flags.c_contiguous is False


# ---------------------------------------------------------------------------------------------
# examples/check_op.py: gradcheck over every built-in op


def _load_check_op():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "check_op.py")
    spec = importlib.util.spec_from_file_location("check_op", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_op_quick_passes_on_every_builtin_op(capsys):
    check_op = _load_check_op()
    assert check_op.main(["--quick"]) == 0
    out = capsys.readouterr().out
    n = len(check_op.CASES)
    assert f"{n} of {n} ops pass gradcheck" in out and "FAILED" not in out
    for name in ("conv2d stride 2 pad 1", "batch_norm (eval)", "dropout(p=0.4), fixed mask"):
        assert name in out


def test_check_op_reports_a_broken_op(capsys, monkeypatch):
    check_op = _load_check_op()
    broken = make_weighted_mul(tinyconv, wrong_at=1).apply
    monkeypatch.setattr(check_op, "CASES", [
        ("broken mul", lambda a, b: broken(a, b, 1.0), [(3,), (3,)], False),
        ("exp", lambda a: a.exp(), [(3,)], False)])
    assert check_op.main(["--quick"]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 ops pass gradcheck" in out
    assert "FAILED" in out and "with respect to input 1" in out
