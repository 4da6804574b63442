"""Tests for tinyconv.autograd: the graph, backward and grad mode, each compared with torch.

Every scenario is written once as a function of the library (``lib`` is ``tinyconv`` or
``torch``), run in both, and the gradients compared.
"""

import sys

import numpy as np
import pytest
import torch
from helpers import F64, assert_close

import tinyconv
from tinyconv.autograd import unbroadcast


def _leaf(lib, values):
    return lib.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def _same_in_both(scenario):
    """Run ``scenario(lib)`` (which returns tensors) with tinyconv and torch; compare."""
    tiny, ref = scenario(tinyconv), scenario(torch)
    for a, e in zip(tiny, ref, strict=True):
        assert_close(a, e, **F64)
    return tiny


def test_gradients_accumulate_across_backward_calls():
    def scenario(lib):
        x = _leaf(lib, [1.0, 2.0, 3.0])
        (x * x).sum().backward()  # 2x
        (3 * x).sum().backward()  # + 3, a second graph
        return (x.grad,)

    (grad,) = _same_in_both(scenario)
    np.testing.assert_array_equal(grad.numpy(), [5.0, 7.0, 9.0])


def test_diamond_graph_sums_both_paths():
    def scenario(lib):
        x = _leaf(lib, [0.5, -1.0])
        a = x * 2  # x feeds two branches
        b = x.exp()
        y = a * b + a  # and a is used twice as well
        y.sum().backward()
        return (x.grad,)

    (grad,) = _same_in_both(scenario)
    x = np.array([0.5, -1.0])
    np.testing.assert_allclose(grad.numpy(), 2 * np.exp(x) + 2 * x * np.exp(x) + 2)


def test_same_tensor_twice_in_one_op():
    def scenario(lib):
        x = _leaf(lib, [3.0])
        (x * x).backward(lib.ones(1, dtype=lib.float64))
        y = _leaf(lib, [2.0])
        (y + y + y).sum().backward()
        return x.grad, y.grad

    grads = _same_in_both(scenario)
    assert grads[0].item() == 6.0 and grads[1].item() == 3.0


def test_deep_chain_does_not_hit_the_recursion_limit():
    depth = 5000
    assert depth > sys.getrecursionlimit() / 2  # a recursive topological sort would overflow
    x = tinyconv.tensor([1.0], dtype=tinyconv.float64, requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** depth], rtol=1e-10)


def test_wide_graph_each_node_once():
    # Each node's backward runs once however many paths reach it: 2**30 paths here.
    x = tinyconv.tensor([1.0], dtype=tinyconv.float64, requires_grad=True)
    y = x
    for _ in range(30):
        y = y + y
    y.sum().backward()
    assert x.grad.item() == 2.0 ** 30


def test_backward_twice_needs_retain_graph():
    def build(lib):
        x = _leaf(lib, [1.0, 2.0])
        return x, (x * x).sum()

    for lib in (tinyconv, torch):
        x, y = build(lib)
        y.backward()
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second "
                                               "time.*retain_graph=True"):
            y.backward()

    def scenario(lib):
        x, y = build(lib)
        y.backward(retain_graph=True)
        y.backward()  # the second pass still has the saved tensors
        return (x.grad,)

    (grad,) = _same_in_both(scenario)
    np.testing.assert_array_equal(grad.numpy(), [4.0, 8.0])


def test_non_scalar_backward_needs_gradient():
    for lib in (tinyconv, torch):
        y = _leaf(lib, [1.0, 2.0]) * 2
        with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                               "outputs"):
            y.backward()
    y = _leaf(tinyconv, [1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\), expected the tensor's "
                                           r"shape \(2,\)"):
        y.backward(tinyconv.ones(3))

    def scenario(lib):
        x = _leaf(lib, [1.0, 2.0])
        (x * x).backward(lib.tensor([1.0, -1.0], dtype=lib.float64))
        return (x.grad,)

    _same_in_both(scenario)


def test_backward_of_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        (tinyconv.ones(2) * 2).sum().backward()


def test_no_grad_blocks_recording():
    x = tinyconv.tensor([1.0, 2.0], requires_grad=True)
    with tinyconv.no_grad():
        y = x * 2
        assert not tinyconv.is_grad_enabled()
        with tinyconv.enable_grad():
            z = x * 3
    assert tinyconv.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert z.requires_grad and z.grad_fn is not None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()

    @tinyconv.no_grad()
    def evaluate(t):
        return t * 2

    assert not evaluate(x).requires_grad
    with tinyconv.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(ValueError):
        with tinyconv.no_grad():
            raise ValueError
    assert tinyconv.is_grad_enabled()


def test_detach_cuts_the_graph():
    def scenario(lib):
        x = _leaf(lib, [1.0, 2.0])
        y = x * x
        z = y.detach() * x + y  # only the second term and the x factor carry gradient
        z.sum().backward()
        return (x.grad,)

    (grad,) = _same_in_both(scenario)
    np.testing.assert_array_equal(grad.numpy(), [1.0 + 2.0, 4.0 + 4.0])
    x = tinyconv.tensor([1.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf


def test_requires_grad_on_integer_tensor_raises():
    with pytest.raises(RuntimeError, match="only tensors of floating point dtype can require "
                                           "gradients, got dtype int64"):
        tinyconv.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="only tensors of floating point dtype"):
        tinyconv.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="only tensors of floating point dtype"):
        tinyconv.zeros(2, dtype=tinyconv.int64, requires_grad=True)


def test_integer_results_of_differentiable_inputs_do_not_require_grad():
    x = tinyconv.tensor([1.5, -2.0], requires_grad=True)
    for y in (x.long(), x.argmax(), x > 0, x.max(0).indices, x.int()):
        assert not y.requires_grad and y.grad_fn is None
    assert torch.tensor([1.5], requires_grad=True).long().requires_grad is False


def test_retain_grad_on_non_leaf():
    def scenario(lib):
        x = _leaf(lib, [1.0, -2.0, 3.0])
        y = x * 2
        y.retain_grad()
        w = x + 1
        z = (y * y * w).sum()
        z.backward()
        return y.grad, x.grad, w

    (y_grad, x_grad, w), (torch_y_grad, torch_x_grad, _) = scenario(tinyconv), scenario(torch)
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(y_grad.numpy(), 2 * (2 * x) * (x + 1))
    assert_close(y_grad, torch_y_grad, **F64)
    assert_close(x_grad, torch_x_grad, **F64)
    assert w.grad is None  # a non-leaf without retain_grad keeps no .grad (torch: None too)


def test_leaf_properties_and_requires_grad_of_non_leaf():
    x = tinyconv.tensor([1.0], requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf and y.grad_fn.name() == "MulBackward"
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        y.requires_grad = False
    assert "grad_fn=<MulBackward>" in repr(y)


def test_only_inputs_that_require_grad_get_gradients():
    def scenario(lib):
        a = _leaf(lib, [1.0, 2.0])
        b = lib.tensor(np.array([3.0, 4.0]))  # a constant
        (a * b).sum().backward()
        assert b.grad is None
        return (a.grad,)

    _same_in_both(scenario)


def test_backward_of_a_leaf_itself():
    def scenario(lib):
        x = _leaf(lib, [1.0, 2.0])
        x.backward(lib.tensor([3.0, 4.0], dtype=lib.float64))
        return (x.grad,)

    _same_in_both(scenario)


def test_gradient_dtype_follows_the_leaf():
    x32 = tinyconv.tensor([1.0, 2.0], requires_grad=True)
    (x32.double() * 2).sum().backward()
    assert x32.grad.dtype == np.float32
    x64 = tinyconv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x64 * 2).sum().backward()
    assert x64.grad.dtype == np.float64


@pytest.mark.parametrize("grad_shape, shape, expected", [
    ((2, 3), (2, 3), [[1, 2, 3], [4, 5, 6]]),
    ((2, 3), (3,), [5, 7, 9]),
    ((2, 3), (1, 3), [[5, 7, 9]]),
    ((2, 3), (2, 1), [[6], [15]]),
    ((2, 3), (), 21),
    ((1, 2, 3), (1, 1, 1), [[[21]]]),
])
def test_unbroadcast(grad_shape, shape, expected):
    g = np.arange(1, 7, dtype=np.float64).reshape(grad_shape)
    out = unbroadcast(g, shape)
    assert out.shape == shape
    np.testing.assert_array_equal(out, expected)


def test_manual_sgd_updates_parameters_in_place():
    # "Learning PyTorch with Examples": zero the grad, backward, ``w -= lr * w.grad`` in no_grad.
    def scenario(lib):
        w = _leaf(lib, [1.0, -2.0])
        params = [w]
        for _ in range(3):
            w.grad = None
            (w * w * w).sum().backward()
            with lib.no_grad():
                w -= 0.1 * w.grad
                w *= 0.5
                w += 1.0
                w /= 2.0
        assert params[0] is w and w.is_leaf and w.requires_grad
        return w.detach(), w.grad

    _same_in_both(scenario)


def test_inplace_operators_like_torch():
    for lib in (tinyconv, torch):
        w = _leaf(lib, [1.0])
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used "
                                               "in an in-place operation"):
            w += 1
        x = lib.tensor([1.0, 2.0])  # no grad: in place, same object
        before = x
        x += lib.tensor([1.0, 1.0])
        assert x is before and x.tolist() == [2.0, 3.0]
        ints = lib.tensor([1, 2])
        with pytest.raises((RuntimeError, TypeError)):  # int64 -= float: torch and NumPy refuse
            ints -= 0.5

    # On a non-leaf in a graph the gradient stays right (tinyconv computes it out of place).
    def scenario(lib):
        x = _leaf(lib, [1.0, 2.0])
        y = x * x
        y *= 3
        y += x
        y.sum().backward()
        return y.detach(), x.grad

    _same_in_both(scenario)
