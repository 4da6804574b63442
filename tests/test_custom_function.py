"""Custom autograd Functions written the PyTorch way (tinyconv.autograd.Function).

Each Function here is written once, as code for a library ``lib`` (``tinyconv`` or ``torch``),
and run in both: values and gradients must agree, as must the errors for broken Functions. The
first test is PyTorch's own tutorial ("Learning PyTorch with Examples", LegendrePolynomial3),
retold with the same API calls.
"""

import math

import numpy as np
import pytest
import torch
from helpers import F64, assert_close

import tinyconv
from tinyconv.autograd import ArrayFunction
from tinyconv.autograd.function import once_differentiable

LIBS = [tinyconv, torch]


def _leaf(lib, values):
    return lib.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# ---------------------------------------------------------------------------------------------
# PyTorch's tutorial: fit y = sin(x) with a + b * P3(c + d * x), P3 a custom Function


def legendre_tutorial(lib, steps=60):
    """The tutorial's training loop; only ``lib`` changes (``import tinyconv as torch``).

    Differences from the tutorial: float64 (so the two libraries agree to 1e-9 after many
    steps) and the data built with NumPy (tinyconv has no ``sin``).
    """

    class LegendrePolynomial3(lib.autograd.Function):
        @staticmethod
        def forward(ctx, input):  # noqa: A002 - the tutorial's name
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors  # noqa: A001
            return grad_output * 1.5 * (5 * input ** 2 - 1)

    x_np = np.linspace(-math.pi, math.pi, 2000)
    x, y = lib.tensor(x_np), lib.tensor(np.sin(x_np))
    a = lib.full((), 0.0, dtype=lib.float64, requires_grad=True)
    b = lib.full((), -1.0, dtype=lib.float64, requires_grad=True)
    c = lib.full((), 0.0, dtype=lib.float64, requires_grad=True)
    d = lib.full((), 0.3, dtype=lib.float64, requires_grad=True)
    learning_rate = 5e-6
    history = []
    for _ in range(steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        history.append(loss.item())
        loss.backward()
        history.append([t.grad.item() for t in (a, b, c, d)])
        with lib.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return history, [t.item() for t in (a, b, c, d)], y_pred.grad_fn


def test_legendre_tutorial_same_gradients_every_step():
    tiny_hist, tiny_params, tiny_fn = legendre_tutorial(tinyconv)
    ref_hist, ref_params, _ = legendre_tutorial(torch)
    # NOTE: sin is odd, so a and c (and their gradients) stay at zero up to rounding: sums of
    # 2000 terms that cancel, ~1e-12, whose value depends on summation order. atol covers them.
    np.testing.assert_allclose(tiny_params, ref_params, rtol=1e-9, atol=1e-12)
    for step, (t, r) in enumerate(zip(tiny_hist, ref_hist, strict=True)):
        np.testing.assert_allclose(t, r, rtol=1e-9, atol=1e-9, err_msg=f"history entry {step}")
    assert tiny_hist[-2] < tiny_hist[0]  # the loss went down
    assert tiny_fn.name() == "AddBackward"


# ---------------------------------------------------------------------------------------------
# one op written both ways: ArrayFunction (arrays, tinyconv's ops) and Function (Tensors)


class SwishArrays(ArrayFunction):
    """y = x * sigmoid(x); dy/dx = s + x * s * (1 - s), with s = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        e = np.exp(-np.abs(x))  # the sigmoid of tinyconv's Sigmoid op, stable for large |x|
        s = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, gy):
        x, s = ctx.saved_tensors
        return gy * (s + x * s * (1 - s))


def make_swish(lib):
    class Swish(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            s = x.sigmoid()
            ctx.save_for_backward(x, s)
            return x * s

        @staticmethod
        def backward(ctx, gy):
            x, s = ctx.saved_tensors
            return gy * (s + x * s * (1 - s))

    return Swish


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_op_as_array_function_and_tensor_function(dtype):
    rng = np.random.default_rng(0)
    x_np, g_np = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4))
    results = []
    for apply in (SwishArrays.apply, make_swish(tinyconv).apply):
        x = tinyconv.tensor(x_np, requires_grad=True)
        y = apply(x)
        y.backward(tinyconv.tensor(g_np.astype(dtype)))
        results.append((y.detach().numpy(), x.grad.numpy()))
    (y1, g1), (y2, g2) = results
    # the same arithmetic in the same order, on arrays or through Tensors: identical bits
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(g1, g2)
    assert y1.dtype == g1.dtype == dtype
    # and both are the composite x * sigmoid(x) of built-in ops
    x = tinyconv.tensor(x_np, requires_grad=True)
    (x * x.sigmoid()).backward(tinyconv.tensor(g_np.astype(dtype)))
    np.testing.assert_allclose(x.grad.numpy(), g1, rtol=1e-5, atol=1e-6)


def test_tensor_function_matches_torch():
    x_np = np.linspace(-3, 3, 7)
    out = []
    for lib in LIBS:
        x = _leaf(lib, x_np)
        y = make_swish(lib).apply(x * 2)  # inside a graph: built-in op before and after
        (y.exp() * 0.5).sum().backward()
        out.append((y, x.grad))
    for a, e in zip(*out, strict=True):
        assert_close(a, e, **F64)


# ---------------------------------------------------------------------------------------------
# the context: needs_input_grad, non-tensor arguments, attributes, grad mode inside forward


def make_scaled_mul(lib, seen):
    """y = k * a * b with k a Python number, recorded in ``seen``: what forward/backward saw."""

    class ScaledMul(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, k, b):
            seen["grad_enabled_in_forward"] = lib.is_grad_enabled()
            seen["input_types"] = (type(a).__name__, type(k).__name__)
            ctx.k = k  # a non-tensor: an attribute
            ctx.save_for_backward(a, b)
            return k * a * b

        @staticmethod
        def backward(ctx, gy):
            a, b = ctx.saved_tensors
            seen["needs_input_grad"] = ctx.needs_input_grad
            ga = gy * ctx.k * b if ctx.needs_input_grad[0] else None
            gb = gy * ctx.k * a if ctx.needs_input_grad[2] else None
            return ga, None, gb

    return ScaledMul


def test_context_needs_input_grad_and_attributes():
    results = []
    for lib in LIBS:
        seen = {}
        a = _leaf(lib, [1.0, 2.0])
        b = lib.tensor(np.array([3.0, 4.0]))  # needs no gradient
        y = make_scaled_mul(lib, seen).apply(a, 2.5, b)
        assert y.requires_grad and not seen["grad_enabled_in_forward"]
        y.sum().backward()
        assert seen["needs_input_grad"] == (True, False, False)
        assert seen["input_types"][1] == "float"
        results.append((y, a.grad))
    for t, r in zip(*results, strict=True):
        assert_close(t, r, **F64)
    assert b.grad is None


def test_no_graph_under_no_grad_or_without_grad_inputs():
    Swish = make_swish(tinyconv)
    x = tinyconv.tensor([1.0, 2.0], requires_grad=True)
    with tinyconv.no_grad():
        y = Swish.apply(x)
    assert y.grad_fn is None and not y.requires_grad
    z = Swish.apply(tinyconv.tensor([1.0]))
    assert z.grad_fn is None and not z.requires_grad
    w = Swish.apply(x)
    assert w.grad_fn.name() == "SwishBackward" and w.grad_fn.inputs[0] is x


def test_returning_an_input_gives_a_new_tensor():
    class Identity(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, gy):
            return gy * 3  # deliberately not 1, to see that this backward ran

    x = tinyconv.tensor([1.0, 2.0], requires_grad=True)
    y = Identity.apply(x)
    assert y is not x and x.is_leaf and y.grad_fn.name() == "IdentityBackward"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# ---------------------------------------------------------------------------------------------
# several outputs, non-differentiable outputs, set_materialize_grads, mark_dirty


def make_split(lib, seen, materialize=True):
    """(2 * x, x ** 2, a 0/1 mask of x > 0 marked non-differentiable)."""

    class Split(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(materialize)
            mask = (x > 0).to(x.dtype)
            ctx.mark_non_differentiable(mask)
            ctx.save_for_backward(x)
            return x * 2, x * x, mask

        @staticmethod
        def backward(ctx, g_double, g_square, g_mask):
            (x,) = ctx.saved_tensors
            seen["grads"] = (g_double is None, g_square is None, g_mask is None)
            gx = 0
            if g_double is not None:
                gx = gx + 2 * g_double
            if g_square is not None:
                gx = gx + 2 * x * g_square
            return gx

    return Split


@pytest.mark.parametrize("use", ["both", "first", "second"])
def test_several_outputs(use):
    results = []
    for lib in LIBS:
        seen = {}
        x = _leaf(lib, [-1.0, 0.5, 2.0])
        double, square, mask = make_split(lib, seen).apply(x)
        assert not mask.requires_grad and double.requires_grad and square.requires_grad
        loss = {"both": (double * square).sum(), "first": double.sum(),
                "second": (square * 3).sum()}[use]
        loss.backward()
        assert seen["grads"] == (False, False, False)  # materialized: zeros, not None
        results.append((double, square, mask, x.grad))
    for t, r in zip(*results, strict=True):
        assert_close(t, r, **F64)


def test_set_materialize_grads_false_passes_none():
    for lib in LIBS:
        seen = {}
        x = _leaf(lib, [1.0, 3.0])
        double, _, _ = make_split(lib, seen, materialize=False).apply(x)
        double.sum().backward()
        assert seen["grads"] == (False, True, True), lib.__name__
        np.testing.assert_array_equal(x.grad.detach().numpy(), [2.0, 2.0])


def make_double_in_place(lib):
    class DoubleInPlace(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, gy):
            return gy * 2

    return DoubleInPlace


def test_mark_dirty_rebases_the_modified_input():
    results = []
    for lib in LIBS:
        x = _leaf(lib, [1.0, -2.0])
        h = x * 3  # a non-leaf, modified in place below
        out = make_double_in_place(lib).apply(h)
        assert out is h and h.grad_fn is not None
        (h * h).sum().backward()  # h = 6x now: d/dx sum(36 x^2) = 72 x
        results.append((h, x.grad))
    for t, r in zip(*results, strict=True):
        assert_close(t, r, **F64)
    np.testing.assert_allclose(results[0][1].numpy(), [72.0, -144.0])


def test_mark_dirty_on_a_leaf_that_requires_grad_is_refused():
    x = tinyconv.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        make_double_in_place(tinyconv).apply(x)


# ---------------------------------------------------------------------------------------------
# the newer style (setup_context) and once_differentiable


def make_power(lib):
    class Power(lib.autograd.Function):
        @staticmethod
        def forward(x, n):
            return x ** n

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, n = inputs
            ctx.n = n
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, gy):
            (x,) = ctx.saved_tensors
            return gy * ctx.n * x ** (ctx.n - 1), None

    return Power


def test_setup_context_style():
    results = []
    for lib in LIBS:
        x = _leaf(lib, [0.5, 1.5, -2.0])
        y = make_power(lib).apply(x, 3)
        y.sum().backward()
        results.append((y, x.grad))
    for t, r in zip(*results, strict=True):
        assert_close(t, r, **F64)
    # in this style forward has no ctx and may be called directly, as in PyTorch
    direct = make_power(tinyconv).forward(tinyconv.tensor([2.0]), 3)
    assert direct.item() == 8.0


def test_once_differentiable_runs_backward_without_recording():
    seen = {}

    class Cube(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        @once_differentiable
        def backward(ctx, gy):
            (x,) = ctx.saved_tensors
            seen["recording"] = tinyconv.is_grad_enabled()
            return 3 * gy * x ** 2

    assert Cube.backward.__name__ == "backward"  # functools.wraps kept the name
    x = tinyconv.tensor([2.0], requires_grad=True)
    Cube.apply(x).backward()
    assert x.grad.item() == 12.0 and seen["recording"] is False
    assert torch.autograd.function.once_differentiable.__module__.startswith("torch")


def test_anomaly_mode_names_a_custom_function():
    class MakesNaN(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, gy):
            return tinyconv.full(tuple(gy.shape), float("nan"), dtype=gy.dtype)

    x = tinyconv.tensor([1.0], requires_grad=True)
    y = MakesNaN.apply(x).sum()
    with tinyconv.autograd.detect_anomaly():
        # (a NaN made by a built-in op inside backward would be reported by that op)
        with pytest.raises(FloatingPointError, match="MakesNaN produced NaN in its backward"):
            y.backward()


# ---------------------------------------------------------------------------------------------
# errors that say what is wrong


def make_broken(lib, kind):
    class Broken(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, gy):
            if kind == "too few":
                return gy
            if kind == "too many":
                return gy, gy, gy
            if kind == "shape":
                return gy, gy.sum(0)  # b has shape (2, 3); this is (3,)
            if kind == "integer":
                return gy, gy.long()
            raise AssertionError(kind)

    return Broken


@pytest.mark.parametrize("kind, message", [
    ("too few", r"function BrokenBackward returned an incorrect number of gradients "
                r"\(expected 2, got 1\)"),
    ("too many", r"function BrokenBackward returned an incorrect number of gradients "
                 r"\(expected 2, got 3\)"),
    ("shape", r"Function BrokenBackward returned an invalid gradient at index 1 - got \[3\] "
              r"but expected shape compatible with \[2, 3\]"),
])
def test_backward_errors_match_torch(kind, message):
    for lib in LIBS:
        a, b = _leaf(lib, np.ones((2, 3))), _leaf(lib, np.ones((2, 3)))
        y = make_broken(lib, kind).apply(a, b)
        with pytest.raises(RuntimeError, match=message):
            y.sum().backward()


def test_integer_gradient_is_refused_naming_function_and_index():
    # torch would cast the int64 gradient to float64 silently; tinyconv refuses it
    a, b = _leaf(tinyconv, np.ones(3)), _leaf(tinyconv, np.ones(3))
    y = make_broken(tinyconv, "integer").apply(a, b)
    with pytest.raises(RuntimeError, match=r"BrokenBackward returned an invalid gradient at "
                                           r"index 1 - expected a floating point dtype "
                                           r"\(float64, the input's\) but got int64"):
        y.sum().backward()


def test_float32_gradient_for_a_float64_input_is_cast_as_in_torch():
    class Halves(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x / 2

        @staticmethod
        def backward(ctx, gy):
            return gy.float() / 2

    x = _leaf(tinyconv, [1.0, 2.0])
    Halves.apply(x).sum().backward()
    assert x.grad.dtype == tinyconv.float64
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 0.5])


def test_gradient_that_is_not_a_tensor():
    class ReturnsArray(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, gy):
            return gy.detach().numpy()

    y = ReturnsArray.apply(_leaf(tinyconv, [1.0]))
    with pytest.raises(TypeError, match="ReturnsArrayBackward returned a ndarray as the "
                                        "gradient of input 0; expected a Tensor or None"):
        y.sum().backward()


def test_gradient_for_a_non_tensor_argument():
    class Scale(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, gy):
            return gy, gy

    y = Scale.apply(_leaf(tinyconv, [1.0]), 2.0)
    with pytest.raises(RuntimeError, match="returned a gradient different than None at "
                                           "position 2, but the corresponding forward input "
                                           "was not a Tensor"):
        y.sum().backward()


def test_save_for_backward_of_a_non_tensor():
    for lib, message in [(tinyconv, "save_for_backward can only save Tensors \\(or None\\), "
                                    "but argument 1 is of type int"),
                         (torch, "save_for_backward can only save variables, but argument 1 "
                                 "is of type int")]:
        class SavesInt(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x, 3)
                return x * 1

            @staticmethod
            def backward(ctx, gy):
                return gy

        with pytest.raises(TypeError, match=message):
            SavesInt.apply(_leaf(lib, [1.0]))


def test_calling_forward_directly_or_an_instance():
    Swish = make_swish(tinyconv)
    x = tinyconv.tensor([1.0])
    with pytest.raises(RuntimeError, match=r"Swish.forward was called directly .* call "
                                           r"Swish.apply\(...\) instead"):
        Swish.forward(x)
    with pytest.raises(RuntimeError, match=r"call Swish.apply\(...\) on the class"):
        Swish()(x)


def test_backward_not_implemented():
    class NoBackward(tinyconv.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    y = NoBackward.apply(_leaf(tinyconv, [1.0]))
    with pytest.raises(NotImplementedError, match="You must implement the backward function"):
        y.sum().backward()


def test_second_backward_without_retain_graph():
    y = make_swish(tinyconv).apply(_leaf(tinyconv, [1.0])).sum()
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


# ---------------------------------------------------------------------------------------------
# with the engine's version counters and hooks


def test_saved_input_changed_in_place_is_caught_as_in_torch():
    for lib in LIBS:
        x = _leaf(lib, [1.0, 2.0])
        h = x * 1
        y = make_swish(lib).apply(h)  # saves h
        h.add_(1)
        with pytest.raises(RuntimeError, match="one of the variables needed for gradient "
                                               "computation has been modified by an inplace "
                                               "operation"):
            y.sum().backward()


def test_hooks_and_retain_grad_on_one_of_several_outputs():
    results = []
    for lib in LIBS:
        seen = {}
        x = _leaf(lib, [-1.0, 0.5, 2.0])
        double, square, _ = make_split(lib, {}).apply(x)
        square.retain_grad()
        double.register_hook(lambda g, seen=seen: seen.setdefault("double", g.clone()) * 10)
        (double * 3 + square * square).sum().backward()
        assert double.grad_fn.name() == "SplitBackward"
        results.append((seen["double"], square.grad, x.grad))
    for t, r in zip(*results, strict=True):
        assert_close(t, r, **F64)
