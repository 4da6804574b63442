"""Tests for tinyconv.Tensor and the torch-named factories: semantics equal PyTorch's.

Arithmetic, reductions, shape operations and indexing are checked with ``helpers.check_op``
(values, dtypes and every input gradient against torch) and, for the derivative rules, with
float64 central differences. The last section runs every idiom of the PyTorch MNIST/CIFAR
tutorials literally, with tinyconv in place of torch.
"""

import operator

import numpy as np
import pytest
import torch
from helpers import (
    F32,
    F64,
    FLOAT_DTYPES,
    TOL,
    assert_close,
    broadcastable_shapes,
    check_op,
    grad_check,
    randn,
    seeds,
    shapes,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv.errors import ShapeError

PARITY = settings(max_examples=60, deadline=None)


def _rng(seed):
    return np.random.default_rng(seed)


def _positive(rng, shape, dtype=np.float64):
    """Values in [0.5, 2]: safe for log, sqrt, division and real powers."""
    return rng.uniform(0.5, 2.0, shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# arithmetic and broadcasting

BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "**": operator.pow}


@PARITY
@given(shapes_=broadcastable_shapes(), op=st.sampled_from(sorted(BINARY)), dtype=FLOAT_DTYPES,
       seed=seeds, contiguous=st.booleans())
def test_binary_ops_broadcast_like_torch(shapes_, op, dtype, seed, contiguous):
    rng = _rng(seed)
    # Positive operands keep / and ** (and its log-derivative) well defined.
    a, b = (_positive(rng, s, dtype) for s in shapes_)
    fn = BINARY[op]
    check_op(fn, fn, [a, b], contiguous=contiguous, **TOL[dtype])


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("a_shape, b_shape", [((3, 1), (1, 4)), ((4,), (2, 3, 4)),
                                              ((2, 1, 4), (3, 1)), ((), (2, 3))])
def test_broadcast_gradients_are_reduced(op, a_shape, b_shape):
    rng = _rng(0)
    arrays = [_positive(rng, a_shape), _positive(rng, b_shape)]
    check_op(BINARY[op], BINARY[op], arrays, **F64)
    grad_check(BINARY[op], arrays)


SCALAR_EXPRESSIONS = {
    "x + 2": lambda x: x + 2, "2 + x": lambda x: 2 + x, "x - 2.5": lambda x: x - 2.5,
    "2 - x": lambda x: 2 - x, "x * 3": lambda x: x * 3, "3 * x": lambda x: 3 * x,
    "x / 4": lambda x: x / 4, "1 / x": lambda x: 1 / x, "x ** 2": lambda x: x ** 2,
    "x ** 0.5": lambda x: x ** 0.5, "2 ** x": lambda x: 2 ** x, "-x": lambda x: -x,
    "+x": lambda x: +x, "abs(-x)": lambda x: abs(-x), "x ** -1": lambda x: x ** -1,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("expr", sorted(SCALAR_EXPRESSIONS))
def test_scalar_operands_both_orders(expr, dtype):
    fn = SCALAR_EXPRESSIONS[expr]
    x = _positive(_rng(1), (2, 3), dtype)
    check_op(fn, fn, [x], **TOL[dtype])  # also checks that the dtype stays float32
    if dtype == np.float64:
        grad_check(fn, [x])


def test_tensor_operand_orders_and_numpy_scalars():
    rng = _rng(2)
    a, b = _positive(rng, (3,)), _positive(rng, (2, 3))
    for fn in (lambda x, y: x - y, lambda x, y: y - x, lambda x, y: y / x, lambda x, y: y ** x):
        check_op(fn, fn, [a, b], **F64)
    # A NumPy scalar on the left gives a tensor with the gradient, not an ndarray.
    x = tinyconv.tensor(a, requires_grad=True)
    y = np.float64(2.0) * x
    assert isinstance(y, tinyconv.Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0))
    # torch treats NumPy scalars like Python numbers: they never change a tensor's dtype.
    a32 = a.astype(np.float32)
    for fn in (lambda t: t * np.float64(2.0), lambda t: np.float64(2.0) * t,
               lambda t: t / np.sqrt(2.0), lambda t: np.int64(3) - t, lambda t: t ** np.int32(2)):
        check_op(fn, fn, [a32], **F32)


def test_pow_at_zero_has_torch_gradients():
    # d(x**2)/dx = 0 at 0; d(0**y)/dy is taken as 0, not nan (log 0 = -inf).
    x = np.array([0.0, 1.0, 2.0])
    check_op(lambda a: a ** 2, lambda a: a ** 2, [x], **F64)
    check_op(lambda a, b: a ** b, lambda a, b: a ** b, [x, np.array([2.0, 3.0, 0.5])], **F64)


INTEGER_PROMOTIONS = {
    "x / 2": lambda x, y: x / 2, "x / y": lambda x, y: x / y, "1 / x": lambda x, y: 1 / x,
    "x * 1.5": lambda x, y: x * 1.5, "x + 0.5": lambda x, y: x + 0.5,
    "0.5 - x": lambda x, y: 0.5 - x, "2.0 ** x": lambda x, y: 2.0 ** x,
    "x ** 0.5": lambda x, y: x ** 0.5, "x / True": lambda x, y: x / True,
}


@pytest.mark.parametrize("expr", sorted(INTEGER_PROMOTIONS))
def test_integer_tensors_promote_to_float32_like_torch(expr):
    # torch: an integer tensor meeting a Python float, or true division of integers, gives the
    # default float dtype (float32), not float64 as NumPy would.
    fn = INTEGER_PROMOTIONS[expr]
    check_op(fn, fn, [np.array([1, 2, 3]), np.array([2, 4, 5])], grad=False, **F32)


def test_integer_arithmetic_stays_integer():
    x = np.array([1, 2, 3])
    for fn in (lambda a: a + 1, lambda a: a * 2, lambda a: -a, lambda a: a - a, lambda a: a ** 2):
        check_op(fn, fn, [x], grad=False, atol=0, rtol=0)


def test_mixed_float_dtypes_promote_like_torch():
    a, b = np.ones(3, dtype=np.float32), np.ones(3, dtype=np.float64)
    check_op(operator.add, operator.add, [a, b], **F32)
    check_op(operator.mul, operator.mul, [a, np.array([1, 2, 3])], **F32)  # float32 * int64


@PARITY
@given(dims=st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                             ((5, 2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2)),
                             ((2, 1, 2, 3), (3, 3, 2))]),
       dtype=FLOAT_DTYPES, seed=seeds, contiguous=st.booleans())
def test_matmul_like_torch(dims, dtype, seed, contiguous):
    rng = _rng(seed)
    arrays = [randn(rng, s, dtype) for s in dims]
    check_op(operator.matmul, operator.matmul, arrays, contiguous=contiguous, **TOL[dtype])
    check_op(lambda a, b: a.matmul(b), torch.matmul, arrays, **TOL[dtype])


@pytest.mark.parametrize("dims", [((3,), (3,)), ((3,), (3, 2)), ((2, 3, 4), (4,)),
                                  ((2, 1, 2, 3), (4, 3, 2))])
def test_matmul_finite_differences(dims):
    rng = _rng(3)
    grad_check(operator.matmul, [randn(rng, s) for s in dims])


# ---------------------------------------------------------------------------------------------
# elementwise functions


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh"])
def test_unary_methods_and_functions(name, dtype):
    rng = _rng(4)
    x = _positive(rng, (3, 4), dtype) if name in ("log", "sqrt") else randn(rng, (3, 4), dtype)
    check_op(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], **TOL[dtype])
    check_op(getattr(tinyconv, name), getattr(torch, name), [x], **TOL[dtype])
    if dtype == np.float64:
        grad_check(lambda t: getattr(t, name)(), [x])


def test_clamp_and_maximum():
    x = np.array([-2.0, -0.5, 0.3, 1.5, 3.0])
    check_op(lambda t: t.clamp(-1, 1), lambda t: t.clamp(-1, 1), [x], **F64)
    check_op(lambda t: t.clamp(min=0), lambda t: t.clamp(min=0), [x], **F64)
    y = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    check_op(tinyconv.maximum, torch.maximum, [x, y], **F64)
    # A tie sends half the gradient to each side, as in torch.
    check_op(tinyconv.maximum, torch.maximum, [np.array([1.0, 2.0]), np.array([1.0, 3.0])],
             **F64)


# ---------------------------------------------------------------------------------------------
# reductions


@st.composite
def reduction_cases(draw):
    shape = draw(shapes(1, 4, 1, 4))
    nd = len(shape)
    dim = draw(st.one_of(
        st.none(), st.integers(-nd, nd - 1),
        st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple)))
    return shape, dim, draw(st.booleans())


@PARITY
@given(case=reduction_cases(), name=st.sampled_from(["sum", "mean"]), dtype=FLOAT_DTYPES,
       seed=seeds, contiguous=st.booleans())
def test_sum_mean_like_torch(case, name, dtype, seed, contiguous):
    shape, dim, keepdim = case
    x = randn(_rng(seed), shape, dtype)
    if dim is None:
        fn = lambda t: getattr(t, name)()  # noqa: E731
    else:
        fn = lambda t: getattr(t, name)(dim, keepdim=keepdim)  # noqa: E731
    check_op(fn, fn, [x], contiguous=contiguous, **TOL[dtype])


@PARITY
@given(shape=shapes(1, 4, 1, 4), data=st.data(), keepdim=st.booleans(),
       name=st.sampled_from(["max", "min"]), dtype=FLOAT_DTYPES, seed=seeds)
def test_max_min_argmax_like_torch(shape, data, keepdim, name, dtype, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = randn(_rng(seed), shape, dtype)  # continuous values: no ties
    # (values, indices) along a dim, the gradient going to the returned index.
    tiny_out, _ = check_op(lambda t: getattr(t, name)(dim, keepdim),
                           lambda t: getattr(t, name)(dim, keepdim), [x], **TOL[dtype])
    assert tiny_out.values is tiny_out[0] and tiny_out.indices is tiny_out[1]
    check_op(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], **TOL[dtype])
    arg = "arg" + name
    check_op(lambda t: getattr(t, arg)(dim, keepdim), lambda t: getattr(t, arg)(dim, keepdim),
             [x], grad=False, atol=0, rtol=0)
    check_op(lambda t: getattr(t, arg)(), lambda t: getattr(t, arg)(), [x], grad=False,
             atol=0, rtol=0)


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("dim", [(0, 2), (-1, 0), (0, 1, 2), [1, 2]])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_over_several_dims(name, dim, keepdim):
    x = randn(_rng(17), (2, 3, 4))
    fn = lambda t: getattr(t, name)(dim, keepdim=keepdim)  # noqa: E731
    check_op(fn, fn, [x], **F64)
    check_op(lambda t: getattr(tinyconv, name)(t, dim, keepdim),
             lambda t: getattr(torch, name)(t, dim, keepdim), [x], **F64)


def test_max_of_all_elements_shares_gradient_between_ties():
    x = np.array([[1.0, 3.0], [3.0, 0.0]])
    check_op(lambda t: t.max(), lambda t: t.max(), [x], **F64)
    check_op(lambda t: t.min(), lambda t: t.min(), [np.array([2.0, -1.0, -1.0])], **F64)


def test_reductions_finite_differences():
    x = randn(_rng(5), (2, 3, 4))
    grad_check(lambda t: t.sum((0, 2), keepdim=True), [x])
    grad_check(lambda t: t.mean(1), [x])
    grad_check(lambda t: t.max(2)[0], [x])
    grad_check(lambda t: t.min(0, keepdim=True)[0], [x])
    grad_check(lambda t: t.max(), [x])


def test_reduction_dtypes_like_torch():
    b = np.array([[True, False], [True, True]])
    check_op(lambda t: t.sum(), lambda t: t.sum(), [b], grad=False, atol=0, rtol=0)
    check_op(lambda t: t.sum(1), lambda t: t.sum(1), [np.array([[1, 2], [3, 4]], np.int32)],
             grad=False, atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype.*int64"):
        tinyconv.tensor([1, 2]).mean()
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                                         r"\[-2, 1\], but got 2\)"):
        tinyconv.zeros(2, 3).sum(2)


# ---------------------------------------------------------------------------------------------
# shape operations


SHAPE_OPS = {
    "reshape": (lambda t: t.reshape(3, -1), lambda t: t.reshape(3, -1)),
    "reshape_tuple": (lambda t: t.reshape((2, 6)), lambda t: t.reshape((2, 6))),
    "view": (lambda t: t.view(-1), lambda t: t.view(-1)),
    "view_as": (lambda t: t.view(4, 3), lambda t: t.view(4, 3)),
    "flatten": (lambda t: t.flatten(), lambda t: t.flatten()),
    "flatten_1": (lambda t: t.flatten(1), lambda t: t.flatten(1)),
    "permute": (lambda t: t.permute(2, 0, 1), lambda t: t.permute(2, 0, 1)),
    "permute_list": (lambda t: t.permute([1, 2, 0]), lambda t: t.permute([1, 2, 0])),
    "transpose": (lambda t: t.transpose(0, -1), lambda t: t.transpose(0, -1)),
    "T_of_2d": (lambda t: t.reshape(3, 4).T, lambda t: t.reshape(3, 4).T),
    "t": (lambda t: t.reshape(3, 4).t(), lambda t: t.reshape(3, 4).t()),
    "squeeze": (lambda t: t.reshape(1, 3, 1, 4).squeeze(), lambda t: t.reshape(1, 3, 1, 4)
                .squeeze()),
    "squeeze_dim": (lambda t: t.reshape(1, 3, 1, 4).squeeze(2), lambda t: t.reshape(1, 3, 1, 4)
                    .squeeze(2)),
    "squeeze_noop": (lambda t: t.squeeze(0), lambda t: t.squeeze(0)),
    "unsqueeze": (lambda t: t.unsqueeze(1), lambda t: t.unsqueeze(1)),
    "unsqueeze_neg": (lambda t: t.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    "expand": (lambda t: t.reshape(2, 1, 6).expand(2, 3, 6),
               lambda t: t.reshape(2, 1, 6).expand(2, 3, 6)),
    "expand_new_axis": (lambda t: t.reshape(12).expand(2, -1), lambda t: t.reshape(12)
                        .expand(2, -1)),
    "contiguous": (lambda t: t.transpose(0, 1).contiguous(), lambda t: t.transpose(0, 1)
                   .contiguous()),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_ops_like_torch(name, dtype):
    tiny_fn, torch_fn = SHAPE_OPS[name]
    x = randn(_rng(6), (2, 3, 2), dtype)
    for contiguous in (True, False):
        check_op(tiny_fn, torch_fn, [x], contiguous=contiguous, atol=0, rtol=0)


@pytest.mark.parametrize("name, args", [("reshape", ((3, 4),)), ("flatten", (1,)),
                                        ("permute", ((2, 0, 1),)), ("transpose", (0, 2)),
                                        ("squeeze", ()), ("unsqueeze", (0,))])
def test_module_level_shape_functions(name, args):
    x = randn(_rng(6), (2, 3, 2))
    check_op(lambda t: getattr(tinyconv, name)(t, *args),
             lambda t: getattr(torch, name)(t, *args), [x], atol=0, rtol=0)


def test_shape_ops_finite_differences():
    x = randn(_rng(7), (2, 3, 2))
    for tiny_fn, _ in SHAPE_OPS.values():
        grad_check(tiny_fn, [x])


def test_shape_errors():
    x = tinyconv.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        x.view(4, 2)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        x.view(-1, -1)
    with pytest.raises(RuntimeError, match=r"not a permutation of the 2 dimensions"):
        x.permute(0, 0)


# ---------------------------------------------------------------------------------------------
# indexing


INDEXES = {
    "int": lambda: 1,
    "negative int": lambda: -1,
    "slice": lambda: slice(1, 3),
    "step slice": lambda: (slice(None), slice(None, None, 2)),
    "int and slice": lambda: (0, slice(1, None)),
    "ellipsis": lambda: (Ellipsis, 1),
    "none": lambda: (None, 1),
    "int array": lambda: np.array([0, 2, 3]),
    "repeated int array": lambda: np.array([3, 0, 3, 3]),
    "two int arrays": lambda: (np.array([0, 1, 1]), np.array([2, 2, 0])),
    "array and slice": lambda: (slice(None), np.array([1, 1, 2])),
    "list": lambda: [0, 0, 2],
    "bool mask": lambda: np.array([True, False, True, True]),
}


def _index(make, lib):
    """The index built by ``make`` with arrays as ``lib``'s integer/bool tensors."""
    index = make()
    wrap = (lambda a: tinyconv.tensor(a)) if lib == "tiny" else torch.tensor
    if isinstance(index, tuple):
        return tuple(wrap(i) if isinstance(i, np.ndarray) else i for i in index)
    return wrap(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_indexing_like_torch(name):
    # Repeated indices must accumulate their gradients (np.add.at, not assignment).
    make = INDEXES[name]
    x = randn(_rng(8), (4, 3))
    check_op(lambda t: t[_index(make, "tiny")], lambda t: t[_index(make, "torch")], [x],
             atol=0, rtol=0)
    grad_check(lambda t: t[_index(make, "tiny")], [x])


def test_repeated_index_gradient_counts():
    x = tinyconv.ones(3, requires_grad=True)
    x[tinyconv.tensor([2, 0, 2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0, 3.0])


def test_setitem_and_mask_indexing():
    x = tinyconv.tensor([[1.0, -2.0], [-3.0, 4.0]])
    assert x[x > 0].tolist() == [1.0, 4.0]
    x[x < 0] = 0.0
    assert x.tolist() == [[1.0, 0.0], [0.0, 4.0]]
    leaf = tinyconv.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad .* in-place"):
        leaf[0] = 1.0
    with tinyconv.no_grad():
        leaf[0] = 1.0
    assert leaf.tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------------------------
# comparisons


@pytest.mark.parametrize("op", [operator.eq, operator.ne, operator.lt, operator.le, operator.gt,
                                operator.ge])
def test_comparisons_return_bool_tensors(op):
    a, b = np.array([[1.0, 2.0, 3.0]]), np.array([[2.0], [3.0]])
    check_op(op, op, [a, b], grad=False, atol=0, rtol=0)  # tensor vs tensor, broadcast
    check_op(lambda t: op(t, 2.0), lambda t: op(t, 2.0), [a], grad=False, atol=0, rtol=0)
    ints = np.array([0, 1, 2])
    check_op(lambda t: op(t, 1), lambda t: op(t, 1), [ints], grad=False, atol=0, rtol=0)


def test_comparison_methods_and_logic():
    a, b = np.array([1, 2, 3]), np.array([1, 5, 3])
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        def compare(x, y, name=name):  # ``x.eq(y)`` etc.
            return getattr(x, name)(y)
        check_op(compare, compare, [a, b], grad=False, atol=0, rtol=0)
    check_op(lambda x, y: (x == y) & (x > 1), lambda x, y: (x == y) & (x > 1), [a, b],
             grad=False, atol=0, rtol=0)
    check_op(lambda x, y: ~(x == y) | (x > 2), lambda x, y: ~(x == y) | (x > 2), [a, b],
             grad=False, atol=0, rtol=0)
    assert tinyconv.tensor(a).equal(tinyconv.tensor(a))
    assert not tinyconv.tensor(a).equal(tinyconv.tensor(b))


# ---------------------------------------------------------------------------------------------
# properties, conversion and dtypes


def test_properties_like_torch():
    arr = randn(_rng(9), (2, 3, 4)).astype(np.float32)
    x, t = tinyconv.tensor(arr), torch.tensor(arr)
    assert tuple(x.shape) == tuple(t.shape) == (2, 3, 4)
    assert x.shape == (2, 3, 4) and isinstance(x.shape, tuple)
    assert x.size() == (2, 3, 4) and x.size(1) == t.size(1) == 3 and x.size(-1) == 4
    assert x.dim() == x.ndim == t.dim() == 3
    assert x.numel() == x.nelement() == t.numel() == 24
    assert len(x) == 2
    assert repr(x.shape) == "tinyconv.Size([2, 3, 4])"
    np.testing.assert_array_equal(x.numpy(), arr)
    assert isinstance(x.numpy(), np.ndarray)


def test_item_and_python_conversions():
    assert tinyconv.tensor(2.5).item() == torch.tensor(2.5).item() == 2.5
    assert tinyconv.tensor([[7]]).item() == 7 and isinstance(tinyconv.tensor([[7]]).item(), int)
    assert tinyconv.tensor(3.0).sum().item() == 3.0
    assert float(tinyconv.tensor([1.5])) == 1.5 and int(tinyconv.tensor(4)) == 4
    assert [1, 2, 3][tinyconv.tensor(1)] == 2  # __index__
    with pytest.raises(ValueError, match="only one element tensors .* got a tensor with 3 "
                                         "elements"):
        tinyconv.tensor([1.0, 2.0, 3.0]).item()
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value"):
        bool(tinyconv.tensor([1, 2]))


def test_numpy_of_tensor_requiring_grad_raises():
    x = tinyconv.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        x.numpy()
    np.testing.assert_array_equal(x.detach().numpy(), [1.0, 1.0])


def test_data_and_detach_share_memory_without_grad():
    x = tinyconv.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    for view in (x.data, x.detach(), y.data, y.detach()):
        assert not view.requires_grad and view.grad_fn is None
    x.data[0] = 5.0  # torch: .data shares storage
    assert x.detach().tolist() == [5.0, 2.0]
    d = x.detach()
    d[1] = 7.0
    assert x.detach().tolist() == [5.0, 7.0]
    # Assigning .data replaces the values, outside the graph.
    x.data = tinyconv.tensor([0.0, 1.0])
    assert x.detach().tolist() == [0.0, 1.0] and x.requires_grad


def test_default_dtypes_like_torch():
    cases = [[1.0, 2.0], [1, 2], [True, False], 1.5, 3, [[1, 2.5]],
             np.array([1.0, 2.0]), np.array([1.0], np.float32), np.array([1, 2], np.int32),
             np.array([1, 2], np.uint8)]
    for data in cases:
        assert tinyconv.tensor(data).dtype == torch.tensor(data).numpy().dtype, data
    assert tinyconv.tensor([1.0]).dtype == tinyconv.float32
    assert tinyconv.tensor([1]).dtype == tinyconv.int64 == tinyconv.long
    assert tinyconv.tensor(np.zeros(2)).dtype == tinyconv.float64 == tinyconv.double
    assert tinyconv.tensor([1, 2], dtype=tinyconv.float64).dtype == np.float64


def test_tensor_copies_but_from_numpy_shares():
    arr = np.zeros(3)
    t = tinyconv.tensor(arr)
    arr[0] = 1.0
    assert t.tolist() == [0.0, 0.0, 0.0]
    shared = tinyconv.from_numpy(arr)
    arr[1] = 2.0
    assert shared.tolist() == [1.0, 2.0, 0.0]


def test_dtype_conversions_like_torch():
    arr = np.array([1.7, -2.2, 0.0])
    for name in ("float", "double", "long", "int", "bool", "half"):
        cast = operator.methodcaller(name)  # ``t.float()`` etc.
        check_op(cast, cast, [arr], grad=False, atol=0, rtol=0)
    check_op(lambda t: t.to(tinyconv.float32), lambda t: t.to(torch.float32), [arr], **F32)
    # The gradient of a cast comes back in the input's dtype.
    x = tinyconv.tensor(arr, requires_grad=True)
    x.float().sum().backward()
    assert x.grad.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# factories, cat and stack


def test_factories_like_torch():
    for name in ("zeros", "ones"):
        for args, kw in [((2, 3), {}), (((2, 3),), {}), ((4,), {"dtype": tinyconv.float64})]:
            tkw = {"dtype": torch.float64} if kw else {}
            assert_close(getattr(tinyconv, name)(*args, **kw), getattr(torch, name)(*args, **tkw),
                         atol=0, rtol=0)
    for args in [(5,), (2, 7), (1, 2, 0.5), (0.0, 1.0, 0.25), (5, 0, -2)]:
        assert_close(tinyconv.arange(*args), torch.arange(*args), atol=0, rtol=0)
    assert_close(tinyconv.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 2], [3, 4]]), atol=0,
                 rtol=0)
    assert tinyconv.zeros(2, requires_grad=True).requires_grad


def test_random_factories():
    tinyconv.manual_seed(0)
    a = tinyconv.randn(2000)
    b = tinyconv.rand(2000)
    assert a.dtype == b.dtype == tinyconv.float32 and a.shape == (2000,)
    assert abs(a.numpy().mean()) < 0.1 and abs(a.numpy().std() - 1) < 0.1
    assert 0 <= b.numpy().min() and b.numpy().max() < 1 and abs(b.numpy().mean() - 0.5) < 0.05
    assert tinyconv.randn(2, 3, dtype=tinyconv.float64).dtype == np.float64
    assert tinyconv.randn((2, 3)).shape == (2, 3)


def test_manual_seed_reproduces_randn():
    tinyconv.manual_seed(42)
    a, b = tinyconv.randn(3, 4), tinyconv.rand(5)
    tinyconv.manual_seed(42)
    np.testing.assert_array_equal(tinyconv.randn(3, 4).numpy(), a.numpy())
    np.testing.assert_array_equal(tinyconv.rand(5).numpy(), b.numpy())
    tinyconv.manual_seed(43)
    assert not np.array_equal(tinyconv.randn(3, 4).numpy(), a.numpy())


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cat_like_torch(dim, dtype):
    rng = _rng(10)
    sizes = [1, 3, 2]
    arrays = []
    for s in sizes:
        shape = [2, 3, 2]
        shape[dim] = s
        arrays.append(randn(rng, tuple(shape), dtype))
    check_op(lambda *t: tinyconv.cat(t, dim), lambda *t: torch.cat(t, dim), arrays, **TOL[dtype])
    check_op(lambda *t: tinyconv.cat(list(t), dim=dim), lambda *t: torch.cat(list(t), dim=dim),
             arrays, contiguous=False, **TOL[dtype])
    if dtype == np.float64:
        grad_check(lambda *t: tinyconv.cat(t, dim), arrays)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stack_like_torch(dim, dtype):
    rng = _rng(11)
    arrays = [randn(rng, (2, 3), dtype) for _ in range(3)]
    check_op(lambda *t: tinyconv.stack(t, dim), lambda *t: torch.stack(t, dim), arrays,
             **TOL[dtype])
    if dtype == np.float64:
        grad_check(lambda *t: tinyconv.stack(t, dim), arrays)


def test_cat_stack_errors():
    with pytest.raises(ShapeError, match=r"sizes of tensors must match except in dimension 0; "
                                         r"tensor 0 has shape \(2, 3\), tensor 1 has \(2, 4\)"):
        tinyconv.cat([tinyconv.zeros(2, 3), tinyconv.zeros(2, 4)])
    with pytest.raises(ShapeError, match=r"expects each tensor to be equal size, but got "
                                         r"\(2, 3\) at entry 0 and \(3, 2\) at entry 1"):
        tinyconv.stack([tinyconv.zeros(2, 3), tinyconv.zeros(3, 2)])


# ---------------------------------------------------------------------------------------------
# tutorial idioms, executed literally (torch -> tinyconv) on small data


def _both(arr):
    """The same data as a tinyconv and a torch tensor."""
    return tinyconv.tensor(arr), torch.tensor(arr)


def test_idiom_max_of_outputs_data():
    outputs = randn(_rng(12), (5, 10)).astype(np.float32)
    tiny, ref = _both(outputs)
    _, predicted = tinyconv.max(tiny.data, 1)
    _, expected = torch.max(ref.data, 1)
    assert_close(predicted, expected, atol=0, rtol=0)
    values, indices = tinyconv.max(tiny.data, 1)
    assert_close(values, torch.max(ref.data, 1).values, atol=0, rtol=0)
    assert_close(indices, torch.max(ref.data, 1).indices, atol=0, rtol=0)


def test_idiom_argmax():
    output = randn(_rng(13), (6, 4)).astype(np.float32)
    tiny, ref = _both(output)
    assert_close(tinyconv.argmax(tiny, 1), torch.argmax(ref, 1), atol=0, rtol=0)
    assert_close(tinyconv.argmax(tiny, dim=1), torch.argmax(ref, dim=1), atol=0, rtol=0)
    assert_close(tiny.argmax(dim=1, keepdim=True), ref.argmax(dim=1, keepdim=True), atol=0,
                 rtol=0)


def test_idiom_keepdim_max_eq_view_as_sum_item():
    # The PyTorch MNIST example's test loop.
    rng = _rng(14)
    output_arr = randn(rng, (8, 10)).astype(np.float32)
    target_arr = rng.integers(0, 10, 8)
    target_arr[:3] = output_arr[:3].argmax(1)  # some correct predictions
    results = []
    for _lib, (output, target) in (("tiny", (tinyconv.tensor(output_arr),
                                             tinyconv.tensor(target_arr))),
                                   ("torch", (torch.tensor(output_arr), torch.tensor(target_arr)))):
        pred = output.data.max(1, keepdim=True)[1]
        assert tuple(pred.shape) == (8, 1)
        correct = pred.eq(target.data.view_as(pred)).cpu().sum().item()
        assert isinstance(correct, int)
        results.append(correct)
    assert results[0] == results[1] >= 3


def test_idiom_predicted_eq_labels_sum_item_and_size():
    rng = _rng(15)
    outputs_arr, labels_arr = randn(rng, (16, 10)).astype(np.float32), rng.integers(0, 10, 16)
    labels_arr[:5] = outputs_arr[:5].argmax(1)
    totals = []
    for torch_ in (tinyconv, torch):
        outputs, labels = torch_.tensor(outputs_arr), torch_.tensor(labels_arr)
        total, correct = 0, 0
        _, predicted = torch_.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
        totals.append((total, correct, 100 * correct / total))
    assert totals[0] == totals[1]
    assert totals[0][0] == 16 and totals[0][1] >= 5


def test_idiom_views_of_feature_maps():
    x_arr = randn(_rng(16), (3, 64, 7, 7)).astype(np.float32)
    tiny, ref = _both(x_arr)
    assert_close(tiny.view(-1, 64 * 7 * 7), ref.view(-1, 64 * 7 * 7), atol=0, rtol=0)
    assert_close(tiny.view(tiny.size(0), -1), ref.view(ref.size(0), -1), atol=0, rtol=0)
    assert_close(tinyconv.flatten(tiny, 1), torch.flatten(ref, 1), atol=0, rtol=0)


@pytest.mark.parametrize("device", ["cpu", "cpu:0", tinyconv.device("cpu")])
def test_idiom_to_device_float_long(device):
    inputs_arr, labels_arr = np.arange(12, dtype=np.uint8).reshape(3, 4), np.array([1, 0, 2],
                                                                                   np.int32)
    inputs, labels = tinyconv.tensor(inputs_arr), tinyconv.tensor(labels_arr)
    inputs, labels = inputs.to(device).float(), labels.to(device).long()
    t_inputs = torch.tensor(inputs_arr).to("cpu").float()
    t_labels = torch.tensor(labels_arr).to("cpu").long()
    assert_close(inputs, t_inputs, atol=0, rtol=0)
    assert_close(labels, t_labels, atol=0, rtol=0)
    assert inputs.device == "cpu" and str(inputs.device) == "cpu"
    assert tinyconv.device(device).type == torch.device(str(device)).type == "cpu"
    assert inputs.to(device, tinyconv.float64).dtype == np.float64


def test_idiom_nelement_parameter_count():
    params = [tinyconv.randn(6, 1, 5, 5, requires_grad=True), tinyconv.zeros(6, requires_grad=True)]
    t_params = [torch.randn(6, 1, 5, 5, requires_grad=True), torch.zeros(6, requires_grad=True)]
    assert sum(p.nelement() for p in params) == sum(p.nelement() for p in t_params) == 156
    assert sum(p.numel() for p in params if p.requires_grad) == 156


def test_idiom_no_grad_records_no_graph():
    w = tinyconv.randn(3, 2, requires_grad=True)
    x = tinyconv.randn(4, 3)
    with tinyconv.no_grad():
        y = (x @ w).relu().sum()
    assert not y.requires_grad and y.grad_fn is None
    assert tinyconv.is_grad_enabled()
    y2 = (x @ w).sum()
    assert y2.requires_grad and y2.grad_fn is not None


def test_idiom_to_cuda_fails_clearly():
    x = tinyconv.zeros(2)
    for call in (lambda: x.to("cuda"), lambda: x.to("cuda:0"), lambda: x.cuda(),
                 lambda: x.to(device="cuda"), lambda: x.to(tinyconv.device("cuda"))):
        with pytest.raises(RuntimeError, match="tinyconv runs on the CPU only; got device "
                                               "'cuda(:0)?'"):
            call()


def test_idiom_device_selection_line():
    # device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = tinyconv.device("cuda" if False else "cpu")
    assert repr(device) == "device(type='cpu')" and device.type == "cpu"
    assert tinyconv.zeros(2).to(device).device == device
