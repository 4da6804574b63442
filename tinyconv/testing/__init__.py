"""Testing helpers for code built on tinyconv: PyTorch's ``torch.testing.assert_close``, and
(in :mod:`tinyconv.testing.strategies`, which needs hypothesis) strategies that draw tensors,
conv2d and pooling arguments and batches.

This module needs NumPy only; ``import tinyconv.testing`` never imports torch or hypothesis.

``assert_close(actual, expected)`` passes when, element by element,
``|actual - expected| <= atol + rtol * |expected|``, with tolerances chosen by dtype as
PyTorch chooses them:

    dtype             rtol      atol
    float16           1e-3      1e-5
    float32           1.3e-6    1e-5
    float64           1e-7      1e-7
    integers, bool    0         0       (exact)
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["assert_close", "default_tolerances", "noncontiguous"]

_TOLERANCES = {
    np.dtype(np.float16): (1e-3, 1e-5),
    np.dtype(np.float32): (1.3e-6, 1e-5),
    np.dtype(np.float64): (1e-7, 1e-7),
    np.dtype(np.complex64): (1.3e-6, 1e-5),
    np.dtype(np.complex128): (1e-7, 1e-7),
}


def default_tolerances(*dtypes) -> tuple[float, float]:
    """(rtol, atol) PyTorch uses for these dtypes: the loosest of them (0, 0 for integers)."""
    pairs = [_TOLERANCES.get(np.dtype(d), (0.0, 0.0)) for d in dtypes]
    return max(p[0] for p in pairs), max(p[1] for p in pairs)


def noncontiguous(arr) -> np.ndarray:
    """The same values as ``arr`` in memory that is neither C- nor F-contiguous.

    The storage is a twice-as-large array of the reversed shape, read with step 2 and then
    transposed, so code that assumes a contiguous layout reads the wrong elements.
    """
    arr = np.asarray(arr)
    if arr.ndim == 0:
        return arr.copy()
    big = np.zeros(tuple(2 * s for s in arr.shape[::-1]), dtype=arr.dtype)
    view = big[(slice(None, None, 2),) * arr.ndim].T
    view[...] = arr
    assert view.shape == arr.shape and (arr.size < 2 or not view.flags.c_contiguous)
    return view


def _as_array(x):
    """A tinyconv Tensor, NumPy array or Python number as an array (a torch tensor works too,
    through ``__array__``, but is not needed)."""
    from tinyconv.tensor import Tensor

    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, bool):
        return np.asarray(x, dtype=np.bool_)
    if isinstance(x, numbers.Integral):
        return np.asarray(x, dtype=np.int64)
    if isinstance(x, numbers.Real):
        return np.asarray(x, dtype=np.float64)
    if hasattr(x, "detach"):  # a torch tensor that requires grad
        x = x.detach()
    return np.asarray(x)


def _is_tensor_like(x) -> bool:
    from tinyconv.tensor import Tensor

    return isinstance(x, (Tensor, np.ndarray, numbers.Number, np.generic)) or hasattr(
        x, "__array__")


def _fail(message, msg):
    if msg is None:
        raise AssertionError(message)
    raise AssertionError(msg(message) if callable(msg) else msg)


def _where(path) -> str:
    return "" if not path else "\n\nThe failure occurred for item " + "".join(
        f"[{p!r}]" for p in path)


def _compare(actual, expected, rtol, atol, equal_nan, check_dtype, msg, path):
    a, e = _as_array(actual), _as_array(expected)
    scalar = isinstance(actual, numbers.Number) and isinstance(expected, numbers.Number)
    if a.shape != e.shape:
        _fail(f"The values for attribute 'shape' do not match: {a.shape} != {e.shape}."
              f"{_where(path)}", msg)
    if check_dtype and a.dtype != e.dtype:
        _fail(f"The values for attribute 'dtype' do not match: {a.dtype} != {e.dtype}."
              f"{_where(path)}", msg)
    if rtol is None:
        rtol, atol = default_tolerances(a.dtype, e.dtype)
    exact = rtol == 0 and atol == 0
    common = np.result_type(a.dtype, e.dtype)
    if common.kind == "b":
        a64, e64 = a.astype(np.int64), e.astype(np.int64)
    elif common.kind in "iu":
        a64, e64 = a.astype(common), e.astype(common)
    else:
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a64 - e64) if common.kind != "u" else np.abs(
            a64.astype(np.float64) - e64.astype(np.float64))
        close = diff <= atol + rtol * np.abs(e64)
        if a64.dtype.kind in "fc":
            close |= a64 == e64  # equal infinities (their difference is NaN)
            if equal_nan:
                close |= np.isnan(a64) & np.isnan(e64)
    if close.all():
        return
    kind = "Scalars" if scalar else "Tensor-likes"
    verb = "equal" if exact else "close"
    if scalar:
        rel = float(diff) / abs(float(e64)) if float(e64) != 0 else float("inf")
        _fail(f"{kind} are not {verb}!\n\nExpected {expected} but got {actual}.\n"
              f"Absolute difference: {diff.item()} (up to {atol} allowed)\n"
              f"Relative difference: {rel} (up to {rtol} allowed){_where(path)}", msg)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / np.abs(e64)
    # Only mismatches are ranked; a NaN (on one side only) ranks first, as in PyTorch.
    abs_rank = np.where(close, -1, np.where(np.isnan(diff), np.inf, diff))
    rel_rank = np.where(close, -1, np.where(np.isnan(rel), np.inf, rel))
    n_bad, total = int((~close).sum()), close.size
    ia = np.unravel_index(int(np.argmax(abs_rank)), a.shape) if a.ndim else ()
    ir = np.unravel_index(int(np.argmax(rel_rank)), a.shape) if a.ndim else ()
    ia, ir = tuple(int(i) for i in ia), tuple(int(i) for i in ir)

    tail_a = "" if exact else f" (up to {atol} allowed)"
    tail_r = "" if exact else f" (up to {rtol} allowed)"
    _fail(f"{kind} are not {verb}!\n\n"
          f"Mismatched elements: {n_bad} / {total} ({100 * n_bad / total:.1f}%)\n"
          f"Greatest absolute difference: {diff[ia].item()} at index {ia}{tail_a}\n"
          f"Greatest relative difference: {rel[ir].item()} at index {ir}{tail_r}{_where(path)}",
          msg)


def _walk(actual, expected, rtol, atol, equal_nan, check_dtype, msg, path):
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        if set(actual) != set(expected):
            _fail(f"The keys of the mappings do not match: {sorted(map(str, actual))} != "
                  f"{sorted(map(str, expected))}.{_where(path)}", msg)
        for k in actual:
            _walk(actual[k], expected[k], rtol, atol, equal_nan, check_dtype, msg, path + (k,))
        return
    if (isinstance(actual, Sequence) and not isinstance(actual, str)
            and isinstance(expected, Sequence) and not isinstance(expected, str)):
        if len(actual) != len(expected):
            _fail(f"The length of the sequences mismatch: {len(actual)} != {len(expected)}"
                  f"{_where(path)}", msg)
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _walk(a, e, rtol, atol, equal_nan, check_dtype, msg, path + (i,))
        return
    for name, x in (("actual", actual), ("expected", expected)):
        if not _is_tensor_like(x):
            raise TypeError(f"assert_close: {name} must be a Tensor, an array, a number or a "
                            f"sequence/mapping of them, got {type(x).__name__}")
    _compare(actual, expected, rtol, atol, equal_nan, check_dtype, msg, path)


def assert_close(actual, expected, *, rtol=None, atol=None, equal_nan=False, check_dtype=True,
                 msg=None) -> None:
    """Raise AssertionError unless ``actual`` and ``expected`` are close (PyTorch's semantics).

    Args:
        actual, expected: Tensors, NumPy arrays or numbers, or (nested) sequences or mappings of
            them, compared item by item.
        rtol, atol: tolerances, both or neither; by default they follow the dtype (module
            docstring), the looser of the two dtypes when they differ.
        equal_nan: NaN == NaN counts as close.
        check_dtype: the dtypes must be equal (otherwise both are compared in a common dtype).
        msg: replaces the generated message; a callable receives it and returns the new one.

    The message counts the mismatched elements and gives the greatest absolute and relative
    differences with their indices, as PyTorch's does.
    """
    if (rtol is None) != (atol is None):
        missing = "atol" if atol is None else "rtol"
        raise ValueError(f"Both 'rtol' and 'atol' must be either specified or omitted, but got "
                         f"no {missing}.")
    _walk(actual, expected, rtol, atol, equal_nan, check_dtype, msg, ())
