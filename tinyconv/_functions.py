"""The torch-style free functions: ``cat``, ``stack``, ``where``, ``maximum``, and
``tinyconv.max(x, ...)``, ``tinyconv.sum(x, ...)``... which are ``x.max(...)``, ``x.sum(...)``
(torch has both forms; the method is the definition, see tinyconv/tensor_math.py).

Several names are Python builtins' (``max``, ``min``, ``sum``, ``abs``): they are torch's, and
shadow the builtins only in this module and in ``tinyconv``'s namespace.
"""

from __future__ import annotations

import numpy as np

from tinyconv.errors import ShapeError
from tinyconv.ops import elementwise as E
from tinyconv.ops import shape as S
from tinyconv.tensor import Tensor


def cat(tensors, dim=0):
    """Concatenate along an existing dim (all other dims must match)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat(): expected a non-empty list of Tensors")
    nd = tensors[0].ndim
    axis = tensors[0]._axis(dim)
    for i, t in enumerate(tensors):
        if t.ndim != nd or t.shape[:axis] + t.shape[axis + 1:] != \
                tensors[0].shape[:axis] + tensors[0].shape[axis + 1:]:
            raise ShapeError(f"cat(): sizes of tensors must match except in dimension {axis}; "
                             f"tensor 0 has shape {tuple(tensors[0].shape)}, tensor {i} has "
                             f"{tuple(t.shape)}")
    return S.Cat.apply(axis, *tensors)


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join equally shaped tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ShapeError(f"stack(): expects each tensor to be equal size, but got "
                             f"{tuple(tensors[0].shape)} at entry 0 and {tuple(t.shape)} at "
                             f"entry {i}")
    axis = dim % (tensors[0].ndim + 1)
    return S.Stack.apply(axis, *tensors)


def where(condition, input, other):  # noqa: A002
    cond = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
    a = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
    b = other if isinstance(other, Tensor) else Tensor(np.asarray(other))
    return E.Where.apply(cond.astype(np.bool_), a, b)


def maximum(input, other):  # noqa: A002
    return E.Maximum.apply(input, other)


# Free functions that forward to the Tensor method of the same name, as torch has both.
def max(input, dim=None, keepdim=False):  # noqa: A001,A002
    return input.max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001,A002
    return input.min(dim, keepdim)


def _forward(name):
    def fn(input, *args, **kwargs):  # noqa: A002
        return getattr(input, name)(*args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"``tinyconv.{name}(x, ...)`` is ``x.{name}(...)``."
    return fn


argmax = _forward("argmax")
argmin = _forward("argmin")
sum = _forward("sum")  # noqa: A001
mean = _forward("mean")
exp = _forward("exp")
sin = _forward("sin")
cos = _forward("cos")
log = _forward("log")
sqrt = _forward("sqrt")
abs = _forward("abs")  # noqa: A001
relu = _forward("relu")
sigmoid = _forward("sigmoid")
tanh = _forward("tanh")
softmax = _forward("softmax")
log_softmax = _forward("log_softmax")
flatten = _forward("flatten")
reshape = _forward("reshape")
matmul = _forward("matmul")
mm = _forward("mm")
transpose = _forward("transpose")
permute = _forward("permute")
squeeze = _forward("squeeze")
unsqueeze = _forward("unsqueeze")
clamp = _forward("clamp")
eq = _forward("eq")
equal = _forward("equal")
allclose = _forward("allclose")
numel = _forward("numel")
t = _forward("t")
diag = _forward("diag")
