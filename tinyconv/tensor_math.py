"""The arithmetic of :class:`~tinyconv.tensor.Tensor`: operators with torch's type promotion,
elementwise functions, comparisons and reductions (the ``TensorMath`` mixin of Tensor).

Each method hands its operands to a differentiable op of tinyconv/ops (``E.Add.apply``...);
comparisons and logic give results without gradient, as in torch.
"""

from __future__ import annotations

import builtins as _b  # as in tensor.py, where int, float and bool are dtypes
import numbers

import numpy as np

# Tensor is built from this mixin in tinyconv/tensor.py, so the class (and the dtypes) are
# looked up on that module when a method runs; importing the names here would be circular.
from tinyconv import tensor
from tinyconv.ops import elementwise as E
from tinyconv.ops import matmul as MM
from tinyconv.ops import reduce as R
from tinyconv.ops import trig as TRIG


def _operand(x):
    """A Tensor as is, a Python or NumPy scalar as a Python number, anything else as a Tensor."""
    if isinstance(x, tensor.Tensor):
        return x
    if isinstance(x, np.generic):
        x = x.item()  # torch treats NumPy scalars as Python numbers (x * np.float64(2) too)
    if isinstance(x, numbers.Number):
        return x  # Python scalars are "weak" in NumPy 2: float32 + 1.5 stays float32
    return tensor.Tensor(np.asarray(x))


def _float_dtype(x):
    """The float dtype of an operand (a Python float counts as the default), or None."""
    if isinstance(x, tensor.Tensor):
        return x._data.dtype if x._data.dtype.kind == "f" else None
    return tensor.default_float if isinstance(x, _b.float) else None


def _promoted(a, b, divide=False):
    """Both operands of a binary op, with torch's type promotion where NumPy's differs.

    torch computes an integer (or bool) tensor met by a float in that float's dtype (float32
    for a Python float) and divides integers in float32; NumPy would give float64 in all these
    cases (e.g. ``int64 tensor * 1.5``, ``int64 / int64``).
    """
    a, b = _operand(a), _operand(b)
    fa, fb = _float_dtype(a), _float_dtype(b)
    if divide and fa is None and fb is None:
        fa = fb = tensor.default_float
    if isinstance(a, tensor.Tensor) and a._data.dtype.kind in "biu" and fb is not None:
        a = a.to(fb)
    if isinstance(b, tensor.Tensor) and b._data.dtype.kind in "biu" and fa is not None:
        b = b.to(fa)
    return a, b


class TensorMath:
    """Tensor's operators, elementwise functions, comparisons and reductions."""

    # ----- arithmetic ------------------------------------------------------------------------

    def __add__(self, other):
        return E.Add.apply(*_promoted(self, other))

    def __radd__(self, other):  # other + self
        return E.Add.apply(*_promoted(other, self))

    def __sub__(self, other):
        return E.Sub.apply(*_promoted(self, other))

    def __rsub__(self, other):  # other - self
        return E.Sub.apply(*_promoted(other, self))

    def __mul__(self, other):
        return E.Mul.apply(*_promoted(self, other))

    def __rmul__(self, other):  # other * self
        return E.Mul.apply(*_promoted(other, self))

    def __truediv__(self, other):
        return E.Div.apply(*_promoted(self, other, divide=True))

    def __rtruediv__(self, other):  # other / self
        return E.Div.apply(*_promoted(other, self, divide=True))

    def __pow__(self, other):
        return E.Pow.apply(*_promoted(self, other))

    def __rpow__(self, other):  # other ** self
        return E.Pow.apply(*_promoted(other, self))

    def __neg__(self):
        return E.Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return MM.MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):  # other @ self
        return MM.MatMul.apply(_operand(other), self)

    def __abs__(self):
        return E.Abs.apply(self)

    add = __add__
    sub = __sub__
    mul = __mul__
    div = __truediv__
    pow = __pow__
    neg = __neg__
    matmul = __matmul__
    mm = __matmul__
    abs = __abs__

    # NOTE: without these, Python runs ``w -= lr * w.grad`` as ``w = w - lr * w.grad``: a new
    # tensor, leaving the parameter itself unchanged. Like torch they change the tensor in place.
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def exp(self):
        return E.Exp.apply(self)

    def sin(self):
        return TRIG.Sin.apply(self)

    def cos(self):
        return TRIG.Cos.apply(self)

    def log(self):
        return E.Log.apply(self)

    def sqrt(self):
        return E.Sqrt.apply(self)

    def relu(self):
        return E.ReLU.apply(self)

    def sigmoid(self):
        return E.Sigmoid.apply(self)

    def tanh(self):
        return E.Tanh.apply(self)

    def softmax(self, dim):
        from tinyconv.nn.functional import softmax
        return softmax(self, dim)

    def log_softmax(self, dim):
        from tinyconv.nn.functional import log_softmax
        return log_softmax(self, dim)

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's names
        out = self
        if min is not None:
            out = E.Maximum.apply(out, tensor.Tensor(np.asarray(min, dtype=self.dtype)))
        if max is not None:
            out = -E.Maximum.apply(-out, tensor.Tensor(np.asarray(-max, dtype=self.dtype)))
        return out

    # ----- comparisons (no gradient) -------------------------------------------------------

    def _compare(self, other, op):
        b = other._data if isinstance(other, tensor.Tensor) else other
        return tensor.Tensor._wrap(np.asarray(op(self._data, b)))

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def equal(self, other):
        return self.shape == other.shape and _b.bool(np.array_equal(self._data, other._data))

    def allclose(self, other, rtol=1e-05, atol=1e-08):
        return _b.bool(np.allclose(self._data, other._data, rtol=rtol, atol=atol))

    def __invert__(self):
        return tensor.Tensor._wrap(np.invert(self._data))

    def __and__(self, other):
        return self._compare(other, np.logical_and)

    def __or__(self, other):
        return self._compare(other, np.logical_or)

    # ----- reductions ------------------------------------------------------------------------

    def _dims(self, dim):
        if dim is None:
            return None
        dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
        return tuple(sorted(self._axis(d) for d in dims))

    def sum(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        if x._data.dtype.kind in "bui" and x._data.dtype != np.int64:
            x = x.to(tensor.int64)  # torch sums booleans and small ints into int64
        return R.Sum.apply(x, x._dims(dim), keepdim)

    def mean(self, dim=None, keepdim=False, dtype=None):
        x = self if dtype is None else self.to(dtype)
        if x._data.dtype.kind not in "fc":
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be "
                               f"either a floating point or complex dtype. Got: {x.dtype}")
        return R.Mean.apply(x, x._dims(dim), keepdim)

    def max(self, dim=None, keepdim=False):
        """``x.max()``: the largest element; ``x.max(dim)``: (values, indices) along ``dim``.

        ``x.max(other_tensor)`` is the elementwise maximum, as in torch.
        """
        if isinstance(dim, tensor.Tensor):
            return E.Maximum.apply(self, dim)
        if dim is None:
            return R.MaxAll.apply(self)
        axis = self._axis(dim)
        values = R.MaxDim.apply(self, axis, keepdim)
        return tensor.MaxResult(values, self.argmax(axis, keepdim))

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, tensor.Tensor):
            return -E.Maximum.apply(-self, -dim)
        if dim is None:
            return -R.MaxAll.apply(-self)
        axis = self._axis(dim)
        values = R.MaxDim.apply(self, axis, keepdim, sign=-1)
        return tensor.MinResult(values, self.argmin(axis, keepdim))

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return tensor.Tensor._wrap(np.asarray(np.argmax(self._data), dtype=np.int64))
        return tensor.Tensor._wrap(np.argmax(self._data, axis=self._axis(dim), keepdims=keepdim)
                            .astype(np.int64, copy=False))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return tensor.Tensor._wrap(np.asarray(np.argmin(self._data), dtype=np.int64))
        return tensor.Tensor._wrap(np.argmin(self._data, axis=self._axis(dim), keepdims=keepdim)
                            .astype(np.int64, copy=False))
