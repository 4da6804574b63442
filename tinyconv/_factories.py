"""The torch-named ways to make a tensor: ``tensor``, ``from_numpy``, ``zeros``, ``ones``,
``full``, ``eye``, ``arange``, ``linspace``, ``randn``, ``rand``, ``randint``, ``randperm``...
(``tinyconv.zeros`` and the others are these functions).

Defaults are torch's: float32 for floats, int64 for integers; the random ones draw from
tinyconv's generator (``tinyconv.manual_seed``), not torch's numbers. ``device`` is accepted
for torch's signatures and must be the CPU.
"""

from __future__ import annotations

import numbers

import numpy as np

from tinyconv import random as _random
from tinyconv._devices import require_cpu
from tinyconv.tensor import Tensor, float32, float64, int64


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"sizes must be non-negative integers, got {tuple(size)}")
    return tuple(int(s) for s in size)


def _dt(dtype, default=None):
    """``dtype`` as a NumPy dtype, or ``default`` when None (never compare a dtype to None:
    NumPy reads None as float64)."""
    return np.dtype(dtype) if dtype is not None else default


def _make(arr, dtype, requires_grad):
    t = Tensor._wrap(arr.astype(np.dtype(dtype) if dtype is not None else arr.dtype,
                                copy=False))
    if requires_grad:
        t.requires_grad = True
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):  # noqa: A002
    """A new tensor holding a copy of ``data`` (Python floats -> float32, ints -> int64)."""
    require_cpu(device)
    t = Tensor(data, dtype=dtype)
    if isinstance(data, (np.ndarray, Tensor)) and t._data is (data._data if isinstance(
            data, Tensor) else data):
        t._data = t._data.copy()
    t.requires_grad = requires_grad
    return t


def from_numpy(array):
    """A tensor sharing memory with ``array`` (no copy), like torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy(): expected np.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def as_tensor(data, dtype=None, device=None):  # noqa: A002
    require_cpu(device)
    if isinstance(data, Tensor) and dtype is None:
        return data
    return Tensor(data, dtype=dtype)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def zeros(*size, dtype=None, requires_grad=False, device=None):  # noqa: A002
    require_cpu(device)
    return _make(np.zeros(_size(size), dtype=_dt(dtype, float32)), None, requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):  # noqa: A002
    require_cpu(device)
    return _make(np.ones(_size(size), dtype=_dt(dtype, float32)), None, requires_grad)


def empty(*size, dtype=None, requires_grad=False, device=None):  # noqa: A002
    require_cpu(device)
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):  # noqa: A002
    require_cpu(device)
    if dtype is None:
        dtype = int64 if isinstance(fill_value, numbers.Integral) else float32
    return _make(np.full(_size((size,)), fill_value, dtype=dtype), None, requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=_dt(dtype, t.dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=_dt(dtype, t.dtype), requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):  # noqa: A002
    require_cpu(device)
    return _make(np.eye(n, m, dtype=_dt(dtype, float32)), None, requires_grad)


def randn(*size, dtype=None, requires_grad=False, generator=None, device=None):  # noqa: A002
    """Standard normal samples from tinyconv's generator (not torch's numbers)."""
    require_cpu(device)
    rng = generator or _random.default_generator
    work = np.float64 if dtype is not None and np.dtype(dtype) == float64 else np.float32
    arr = rng.standard_normal(_size(size), dtype=work)
    return _make(arr, dtype, requires_grad)


def rand(*size, dtype=None, requires_grad=False, generator=None, device=None):  # noqa: A002
    """Uniform samples in [0, 1) from tinyconv's generator."""
    require_cpu(device)
    rng = generator or _random.default_generator
    work = np.float64 if dtype is not None and np.dtype(dtype) == float64 else np.float32
    arr = rng.random(_size(size), dtype=work)
    return _make(arr, dtype, requires_grad)


def randint(low, high=None, size=(), dtype=None, generator=None, device=None):  # noqa: A002
    require_cpu(device)
    if high is None:
        low, high = 0, low
    rng = generator or _random.default_generator
    return _make(rng.integers(low, high, size=_size((size,))), _dt(dtype, int64), False)


def randperm(n, dtype=None, generator=None, device=None):  # noqa: A002
    require_cpu(device)
    rng = generator or _random.default_generator
    return _make(rng.permutation(n).astype(np.int64), dtype, False)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):  # noqa: A002
    require_cpu(device)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange(): step must be nonzero")
    integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    arr = np.arange(start, end, step, dtype=np.int64 if integral else np.float32)
    return _make(arr, dtype, requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):  # noqa: A002
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    require_cpu(device)
    return _make(np.linspace(start, end, steps, dtype=np.float32), dtype, requires_grad)
