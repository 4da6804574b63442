"""tinyconv: a small deep-learning framework on NumPy and numba with PyTorch's API.

Replace ``import torch`` by ``import tinyconv as torch``-style imports and a tutorial's CNN runs
unchanged; see README.md. This module gathers the torch-named factories and functions.
"""

from __future__ import annotations

import numbers as _numbers
import os as _os
import sys as _sys

# NOTE: OpenBLAS (behind numpy's matrix products) keeps its worker threads spinning after each
# product (for 2**28 cycles by default), and they take the cores from numba's threads in the
# kernels that run next: a FashionCNN training step took ~41 ms instead of ~37 ms on 2 cores.
# OPENBLAS_THREAD_TIMEOUT=4 lets them sleep almost at once. OpenBLAS reads it when it loads, so
# it takes effect only if tinyconv is imported before numpy (the examples and benchmarks set it
# themselves); a value already in the environment wins.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from tinyconv import _threads  # noqa: E402,F401 - picks numba's threading layer (see there)

import numpy as _np

from tinyconv import _malloc  # noqa: F401 - keeps freed buffers for the next step (see there)
from tinyconv._devices import require_cpu as _require_cpu
from tinyconv import autograd, nn, optim  # noqa: F401
from tinyconv import random as _random
from tinyconv.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinyconv.errors import DTypeError, ShapeError
from tinyconv.ops import elementwise as _E
from tinyconv.ops import shape as _S
from tinyconv.random import get_rng_state, initial_seed, manual_seed, set_rng_state
from tinyconv.serialization import CheckpointError, load, save
from tinyconv.tensor import (  # noqa: F401 - torch's dtype names
    Size, Tensor, bool, device, double, float, float16, float32, float64, half, int, int8,
    int16, int32, int64, long, short, uint8,
)

__version__ = "0.1.0"

import builtins as _b  # noqa: E402 - after the dtype names that shadow int/float/bool


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, _numbers.Integral) or s < 0:
            raise ValueError(f"sizes must be non-negative integers, got {tuple(size)}")
    return tuple(_b.int(s) for s in size)


def _dt(dtype, default=None):
    """``dtype`` as a NumPy dtype, or ``default`` when None (never compare a dtype to None:
    NumPy reads None as float64)."""
    return _np.dtype(dtype) if dtype is not None else default


def _make(arr, dtype, requires_grad):
    t = Tensor._wrap(arr.astype(_np.dtype(dtype) if dtype is not None else arr.dtype,
                                copy=False))
    if requires_grad:
        t.requires_grad = True
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):  # noqa: A002
    """A new tensor holding a copy of ``data`` (Python floats -> float32, ints -> int64)."""
    _require_cpu(device)
    t = Tensor(data, dtype=dtype)
    if isinstance(data, (_np.ndarray, Tensor)) and t._data is (data._data if isinstance(
            data, Tensor) else data):
        t._data = t._data.copy()
    t.requires_grad = requires_grad
    return t


def from_numpy(array):
    """A tensor sharing memory with ``array`` (no copy), like torch.from_numpy."""
    if not isinstance(array, _np.ndarray):
        raise TypeError(f"from_numpy(): expected np.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def as_tensor(data, dtype=None, device=None):  # noqa: A002
    _require_cpu(device)
    if isinstance(data, Tensor) and dtype is None:
        return data
    return Tensor(data, dtype=dtype)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def zeros(*size, dtype=None, requires_grad=False, device=None):  # noqa: A002
    _require_cpu(device)
    return _make(_np.zeros(_size(size), dtype=_dt(dtype, float32)), None, requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):  # noqa: A002
    _require_cpu(device)
    return _make(_np.ones(_size(size), dtype=_dt(dtype, float32)), None, requires_grad)


def empty(*size, dtype=None, requires_grad=False, device=None):  # noqa: A002
    _require_cpu(device)
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):  # noqa: A002
    _require_cpu(device)
    if dtype is None:
        dtype = int64 if isinstance(fill_value, _numbers.Integral) else float32
    return _make(_np.full(_size((size,)), fill_value, dtype=dtype), None, requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=_dt(dtype, t.dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=_dt(dtype, t.dtype), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):  # noqa: A002
    _require_cpu(device)
    return _make(_np.eye(n, m, dtype=_dt(dtype, float32)), None, requires_grad)


def randn(*size, dtype=None, requires_grad=False, generator=None, device=None):  # noqa: A002
    """Standard normal samples from tinyconv's generator (not torch's numbers)."""
    _require_cpu(device)
    rng = generator or _random.default_generator
    work = _np.float64 if dtype is not None and _np.dtype(dtype) == float64 else _np.float32
    arr = rng.standard_normal(_size(size), dtype=work)
    return _make(arr, dtype, requires_grad)


def rand(*size, dtype=None, requires_grad=False, generator=None, device=None):  # noqa: A002
    """Uniform samples in [0, 1) from tinyconv's generator."""
    _require_cpu(device)
    rng = generator or _random.default_generator
    work = _np.float64 if dtype is not None and _np.dtype(dtype) == float64 else _np.float32
    arr = rng.random(_size(size), dtype=work)
    return _make(arr, dtype, requires_grad)


def randint(low, high=None, size=(), dtype=None, generator=None, device=None):  # noqa: A002
    _require_cpu(device)
    if high is None:
        low, high = 0, low
    rng = generator or _random.default_generator
    return _make(rng.integers(low, high, size=_size((size,))), _dt(dtype, int64), False)


def randperm(n, dtype=None, generator=None, device=None):  # noqa: A002
    _require_cpu(device)
    rng = generator or _random.default_generator
    return _make(rng.permutation(n).astype(_np.int64), dtype, False)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):  # noqa: A002
    _require_cpu(device)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange(): step must be nonzero")
    integral = _b.all(isinstance(v, _numbers.Integral) for v in (start, end, step))
    arr = _np.arange(start, end, step, dtype=_np.int64 if integral else _np.float32)
    return _make(arr, dtype, requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):  # noqa: A002
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    _require_cpu(device)
    return _make(_np.linspace(start, end, steps, dtype=_np.float32), dtype, requires_grad)


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
    return _S.Cat.apply(axis, *tensors)


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
    return _S.Stack.apply(axis, *tensors)


def where(condition, input, other):  # noqa: A002
    cond = condition._data if isinstance(condition, Tensor) else _np.asarray(condition)
    a = input if isinstance(input, Tensor) else Tensor(_np.asarray(input))
    b = other if isinstance(other, Tensor) else Tensor(_np.asarray(other))
    return _E.Where.apply(cond.astype(_np.bool_), a, b)


def maximum(input, other):  # noqa: A002
    return _E.Maximum.apply(input, other)


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

from tinyconv import accelerator, backends, cuda  # noqa: E402,F401 - devices tinyconv lacks
from tinyconv import data, models, utils  # noqa: E402,F401 - after Tensor exists
from tinyconv.summary import summary  # noqa: E402
from tinyconv import viz  # noqa: E402


# Subpackages imported on first use, so that ``import tinyconv`` stays fast: ``tinyconv.onnx``
# (``torch.onnx.export(...)`` right after ``import torch``) and ``tinyconv.vision``.
_LAZY_SUBMODULES = ("onnx", "vision")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"tinyconv.{name}")
    raise AttributeError(f"module 'tinyconv' has no attribute {name!r}")
