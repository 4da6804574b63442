"""Reverse-mode automatic differentiation.

Two base classes describe a differentiable operation. Both have a static ``forward`` and a static
``backward`` side by side and are called through ``apply``; they differ in what they exchange.

:class:`ArrayFunction` (tinyconv's own ops, in ``tinyconv/ops``) works on NumPy arrays only, so
an op costs no more than its array algebra::

    class Mul(ArrayFunction):
        @staticmethod
        def forward(ctx, a, b):            # a, b: np.ndarray
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, gy):             # gy: dL/d(output), same shape as the output
            a, b = ctx.saved_tensors
            return gy * b, gy * a          # one gradient per input, None if not needed

:class:`Function` (``tinyconv.autograd.function``) is PyTorch's ``torch.autograd.Function``:
``forward`` and ``backward`` receive and return Tensors, so a custom op written for PyTorch runs
here with only its imports changed. It is built on the same engine: ``apply`` records one
:class:`Node` whichever base the op uses, and the engine calls ``Node.fn._run_backward``, which
for a ``Function`` wraps the incoming gradients in Tensors, calls the user's ``backward`` and
checks what it returns (one gradient per input, of the input's shape).

``Mul.apply(x, y)`` unwraps the Tensors, runs ``forward``, wraps the result in a Tensor and, when
any input requires a gradient, records a :class:`Node` (the Function class, its context and its
input Tensors) as the result's ``grad_fn``. ``Tensor.backward()`` walks those nodes in reverse
topological order and calls each ``backward`` exactly once, summing the gradients that reach a
tensor along several paths. ``backward`` runs with recording off: tinyconv has no double
backward (gradients of gradients), so :func:`gradcheck` exists but ``gradgradcheck`` does not.

Broadcasting is handled here once, not in every op: a gradient returned for an input that was
broadcast is summed back to the input's shape by :func:`unbroadcast`.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

__all__ = [
    "ArrayFunction", "Context", "Function", "FunctionCtx", "GradcheckError", "Node",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "set_detect_anomaly",
    "detect_anomaly", "is_anomaly_enabled", "unbroadcast", "backward", "gradcheck",
    "once_differentiable",
]


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return _grad_mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager (and decorator) that switches graph recording on or off."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode  # like torch: takes effect even when not used in `with`

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False


class no_grad(contextlib.ContextDecorator):
    """``with tinyconv.no_grad():`` runs ops without recording a graph (evaluation, updates)."""

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False


class enable_grad(contextlib.ContextDecorator):
    """Re-enables graph recording inside a ``no_grad`` block."""

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = True
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False


class _AnomalyMode(threading.local):
    enabled = False


_anomaly_mode = _AnomalyMode()


def is_anomaly_enabled() -> bool:
    return _anomaly_mode.enabled


class set_detect_anomaly(contextlib.ContextDecorator):
    """Check every op's output in forward and every gradient in backward for NaN or Inf.

    The first op that produces one raises ``FloatingPointError`` naming it (torch's
    ``set_detect_anomaly``). Costs one pass over each array, so it is off by default.
    """

    def __init__(self, mode: bool = True):
        self.prev = _anomaly_mode.enabled
        _anomaly_mode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly_mode.enabled = self.prev
        return False


detect_anomaly = set_detect_anomaly


def _check_finite(arr, fn, where):
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        kind = "NaN" if np.isnan(arr).any() else "Inf"
        raise FloatingPointError(f"anomaly detected: {fn.__name__} produced {kind} in its "
                                 f"{where} pass (in an array of shape {arr.shape})")


class Context:
    """What an :class:`ArrayFunction`'s ``forward`` leaves for ``backward``: saved arrays and
    any other attributes.

    ``recording`` is False when no backward will follow (under ``no_grad``, or no input
    requires a gradient): ``forward`` may then skip saving anything and take a cheaper route.
    """

    def __init__(self, needs_input_grad: tuple[bool, ...], recording: bool = True):
        self.needs_input_grad = needs_input_grad
        self.recording = recording
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


class Node:
    """One recorded call of a Function: the graph is made of these.

    ``inputs`` holds, per positional argument of ``apply``, the Tensor (or None for anything
    else); ``n_outputs`` is 1 except for a custom :class:`Function` that returned a tuple, whose
    output tensors carry their position as ``tensor._output_nr``.
    """

    __slots__ = ("fn", "ctx", "inputs", "out_shape", "out_dtype", "n_outputs", "__weakref__")

    def __init__(self, fn, ctx, inputs, out_shape, out_dtype, n_outputs=1):
        self.fn = fn  # the ArrayFunction or Function subclass
        self.ctx = ctx
        self.inputs = inputs
        self.out_shape = out_shape
        self.out_dtype = out_dtype
        self.n_outputs = n_outputs

    def name(self) -> str:
        return self.fn.__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"


class ArrayFunction:
    """Base class of tinyconv's own differentiable operations: forward and backward exchange
    NumPy arrays (see the module docstring). Write a custom op with :class:`Function`."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, gy):
        raise NotImplementedError

    @classmethod
    def _run_backward(cls, ctx, gy):
        """What the engine calls: the gradients (arrays or None) of this op's inputs."""
        return cls.backward(ctx, gy)

    @classmethod
    def apply(cls, *args, **kwargs):
        from tinyconv.tensor import Tensor

        # Tensors among the positional arguments are the differentiable inputs; everything else
        # (ints, tuples, None, arrays) is passed through as a hyper-parameter.
        arrays = [a._data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = _grad_mode.enabled and any(needs)
        ctx = Context(needs, record)
        out = cls.forward(ctx, *arrays, **kwargs)
        if _anomaly_mode.enabled:
            _check_finite(np.asarray(out), cls, "forward")
        result = Tensor._wrap(out)
        # NOTE: integer and bool results (x.long(), argmax) are not differentiable, as in torch.
        if record and result._data.dtype.kind in "fc":
            inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
            result.requires_grad = True
            result.grad_fn = Node(cls, ctx, inputs, out.shape, out.dtype)
        return result


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _topological_order(root_node: Node) -> list[Node]:
    """Nodes reachable from ``root_node``, each after every node that consumes its output.

    Iterative depth-first search (deep graphs would overflow Python's recursion limit); parents
    are visited in input order, so the order, and hence summation order, is deterministic.
    """
    order: list[Node] = []
    visited: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root_node, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for t in reversed(node.inputs):
            if t is not None and t.grad_fn is not None and id(t.grad_fn) not in visited:
                stack.append((t.grad_fn, False))
    order.reverse()  # post-order reversed: consumers before producers
    return order


def _add_output_grad(grads: dict, t, g: np.ndarray) -> None:
    """Add ``g``, the gradient of non-leaf ``t``, to what its node has received so far.

    A node with one output keeps one array; a node with several keeps a list, one slot per
    output, filled through ``t._output_nr``.
    """
    node = t.grad_fn
    key = id(node)
    if node.n_outputs == 1:
        grads[key] = grads[key] + g if key in grads else g
        return
    slots = grads.setdefault(key, [None] * node.n_outputs)
    i = t._output_nr
    slots[i] = g if slots[i] is None else slots[i] + g


def backward(tensor, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) * grad into ``.grad`` of every leaf that requires grad."""
    from tinyconv.tensor import Tensor

    root = tensor.grad_fn
    if root is None:
        # A leaf: its gradient with respect to itself.
        tensor._accumulate(grad)
        return
    grads: dict[int, object] = {}
    _add_output_grad(grads, tensor, grad)
    handed: set[int] = set()  # ids of arrays already given to a leaf as its gradient
    for node in _topological_order(root):
        gy = grads.pop(id(node), None)
        if gy is None:
            continue  # no gradient flowed into this node (e.g. from an integer output)
        if node.ctx is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Specify retain_graph=True if you "
                "need to backward through the graph a second time.")
        with no_grad():
            in_grads = node.fn._run_backward(node.ctx, gy)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if _anomaly_mode.enabled:
            for g in in_grads:
                _check_finite(g, node.fn, "backward")
        if len(in_grads) < len(node.inputs):
            in_grads = in_grads + (None,) * (len(node.inputs) - len(in_grads))
        for t, g in zip(node.inputs, in_grads, strict=False):  # extra Nones are dropped
            if t is None or g is None or not t.requires_grad:
                continue
            if isinstance(g, Tensor):
                g = g._data
            g = unbroadcast(np.asarray(g), t.shape)
            if g.dtype != t.dtype:
                g = g.astype(t.dtype)
            if t.grad_fn is None:
                # A fresh array nobody else holds can become the leaf's .grad without a copy
                # (a 12 MB copy for FashionCNN's fc1 otherwise); anything else is copied.
                owned = (g.base is None and g.flags.writeable and g.flags.c_contiguous
                         and id(g) not in handed and g is not grad)
                handed.add(id(g))
                t._accumulate(g, owned)
            else:
                if t._retains_grad:
                    t._accumulate(g)
                key = id(t.grad_fn)
                if t.grad_fn.n_outputs == 1 and key in grads:  # the common case, inline
                    grads[key] = grads[key] + g
                else:
                    _add_output_grad(grads, t, g)
        if not retain_graph:
            node.ctx = None  # free the saved arrays


# The tensor-level API (PyTorch's torch.autograd.Function) and the gradient checker.
from tinyconv.autograd.function import Function, FunctionCtx, once_differentiable  # noqa: E402
from tinyconv.autograd.gradcheck import GradcheckError, gradcheck  # noqa: E402
