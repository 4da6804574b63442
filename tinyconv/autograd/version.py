"""Version counters: how an in-place change of a saved array is caught.

Every tensor carries a version counter that each in-place op bumps (``x.add_(1)``,
``x[0] = 5``, ``x += 1``). A tensor whose array is a view of another's memory (``y[0]``,
``y.view(-1)``) shares that tensor's counter, since writing through either changes both. When
an op saves an array that is a tensor's memory for its backward (``Exp`` saves its output), the
node records the counter and its value; backward checks them and, if one moved, raises instead
of computing a gradient from overwritten numbers -- PyTorch's rule, with its message.
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd.graph import Context


class VersionCounter:
    """A mutable int shared by a tensor and its views."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


def _root(arr):
    """The array that owns ``arr``'s memory (``arr`` itself unless it is a view)."""
    base = arr.base
    while isinstance(base, np.ndarray):
        arr, base = base, base.base
    return arr


def _share_version_if_view(cls, result, args, kwargs):
    """If ``result``'s array is a view of an input tensor's memory, make it share that tensor's
    version counter and remember how to take the same view again from the base tensor (needed
    when the view is later changed in place: the base's graph is rewritten too)."""
    out = result._data
    if out.base is None:  # a fresh array (most results): a view only if it is an input itself
        owner = out
        if not any(getattr(a, "_data", None) is out for a in args):
            return
    else:
        owner = _root(out)
    Tensor = type(result)
    for pos, a in enumerate(args):
        if isinstance(a, Tensor) and _root(a._data) is owner:
            result._version_counter = a._version_counter
            base, inner = (a._view_base, a._view_fn) if a._view_base is not None else (a, None)
            rest = list(args)

            def view_fn(arr, pos=pos, inner=inner, rest=rest):
                rest = list(rest)
                rest[pos] = arr if inner is None else inner(arr)
                rest = [r._data if isinstance(r, Tensor) else r for r in rest]
                return cls.forward(Context((False,) * len(rest), False), *rest, **kwargs)

            result._view_base, result._view_fn = base, view_fn
            return


def _entry(t, what):
    """A node's record of a saved array that is ``t``'s memory: (t's version counter, its value
    now, t's shape, t's dtype, what t is to the node, e.g. "output 0").

    The entry keeps t's counter, shape and dtype, not t itself: a tensor is usually an output of
    the very node that keeps the entry (ReLU saves its output), and a node that held its output
    tensor, which holds the node as grad_fn, would form a reference cycle. Python frees a cycle
    only when its cycle collector runs, which it rarely does for objects as old as a finished
    step's graph: the arrays in it lived on into the next steps (measured: after three steps of
    a small ResNet-18, 193 nodes of finished graphs were still alive, with the output arrays
    of every op that saved its output)."""
    counter = t._version_counter
    return (counter, counter.value, tuple(t.shape), t.dtype, what)


def _saved_versions(ctx, args, result):
    """An :func:`_entry` for each saved array that is an input's or the output's memory (arrays
    computed inside forward cannot be changed by the user)."""
    versions = []
    for arr in ctx.saved_tensors:
        if not isinstance(arr, np.ndarray):
            continue
        root = _root(arr)
        if root is _root(result._data):
            versions.append(_entry(result, "output 0"))
            continue
        for i, t in enumerate(args):
            if getattr(t, "_data", None) is not None and _root(t._data) is root:
                versions.append(_entry(t, f"input {i}"))
                break
    return tuple(versions)


# An in-place op recorded without a snapshot (Tensor._write_one_op in tinyconv/tensor_inplace.py):
# its node's saved arrays are fixed before and after the write into tensor t's memory.


def keep_old_values(node, t):
    """Before the write: an array the node saved in t's memory (the old value, which the write
    will overwrite) is replaced by a copy, and its version entries go (no one can change a
    copy)."""
    root, ctx = _root(t._data), node.ctx
    if any(isinstance(a, np.ndarray) and _root(a) is root for a in ctx.saved_tensors):
        ctx.saved_tensors = tuple(a.copy() if isinstance(a, np.ndarray) and _root(a) is root
                                  else a for a in ctx.saved_tensors)
    node.saved_versions = tuple(v for v in node.saved_versions if v[0] is not t._version_counter)


def save_own_memory(node, result, t):
    """After the write: the op's result array, if the node saved it, is replaced by t's memory
    (the same values now), recorded at t's new version."""
    ctx, out = node.ctx, result._data
    if any(a is out for a in ctx.saved_tensors):
        ctx.saved_tensors = tuple(t._data if a is out else a for a in ctx.saved_tensors)
        node.saved_versions = tuple(v for v in node.saved_versions
                                    if v[0] is not result._version_counter) + (
            _entry(t, "output 0"),)


def _check_saved_versions(node):
    for counter, value, shape, dtype, what in node.saved_versions:
        if counter.value != value:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [tinyconv.Tensor {list(shape)}, dtype {dtype}], which "
                f"is {what} of {node.name()}, is at version {counter.value}; expected version "
                f"{value} instead. Hint: replace the in-place operation (add_, mul_, x[i] = v, "
                f"+=, ...) by its out-of-place form (add, mul, ...), or clone() the tensor "
                f"before changing it.")
