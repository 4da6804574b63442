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
import weakref as _weakref

import numpy as np

__all__ = [
    "ArrayFunction", "Context", "Function", "FunctionCtx", "GradcheckError", "Node",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "set_detect_anomaly",
    "detect_anomaly", "is_anomaly_enabled", "unbroadcast", "backward", "grad", "gradcheck",
    "once_differentiable", "VersionCounter",
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

    ``n_outputs`` is 1 except for the node of a custom :class:`Function` that returned several
    tensors: that node receives a list of gradients, one per output, each delivered through the
    output's own one-output node (see ``tinyconv/autograd/function.py``).
    """

    __slots__ = ("fn", "ctx", "inputs", "edges", "out_shape", "out_dtype", "saved_versions",
                 "hooks", "retained", "n_outputs", "__weakref__")

    def __init__(self, fn, ctx, inputs, out_shape, out_dtype, n_outputs=1):
        self.n_outputs = n_outputs
        self.fn = fn  # the ArrayFunction or Function subclass
        self.ctx = ctx
        self.inputs = inputs  # tuple of Tensors (or None for non-tensor arguments)
        # The node that made each input, fixed now: an in-place op may later give the input
        # tensor a new grad_fn, but this node's gradient belongs to the value it was given.
        self.edges = tuple(None if t is None else t.grad_fn for t in inputs)
        self.out_shape = out_shape
        self.out_dtype = out_dtype
        # (version counter, value when saved, what it is) for every saved array that is a
        # tensor's memory: backward refuses to run if an in-place op has changed one since.
        self.saved_versions = ()
        self.hooks = None  # the output tensor's register_hook functions, run on its gradient
        self.retained = None  # weak reference to the output tensor, if it called retain_grad()

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
        _share_version_if_view(cls, result, args, kwargs)
        # NOTE: integer and bool results (x.long(), argmax) are not differentiable, as in torch.
        if record and result._data.dtype.kind in "fc":
            inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
            result.requires_grad = True
            node = Node(cls, ctx, inputs, out.shape, out.dtype)
            if ctx.saved_tensors:
                node.saved_versions = _saved_versions(ctx, args, result)
            result.grad_fn = node
        return result


# ---------------------------------------------------------------------------------------------
# Version counters: how an in-place change of a saved array is caught
#
# Every tensor carries a version counter that each in-place op bumps (``x.add_(1)``,
# ``x[0] = 5``, ``x += 1``). A tensor whose array is a view of another's memory (``y[0]``,
# ``y.view(-1)``) shares that tensor's counter, since writing through either changes both. When
# an op saves an array that is a tensor's memory for its backward (``Exp`` saves its output), the
# node records the counter and its value; backward checks them and, if one moved, raises instead
# of computing a gradient from overwritten numbers -- PyTorch's rule, with its message.


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


def _saved_versions(ctx, args, result):
    """(counter, value, tensor, what) for each saved array that is an input's or the output's
    memory (arrays computed inside forward cannot be changed by the user)."""
    versions = []
    for arr in ctx.saved_tensors:
        if not isinstance(arr, np.ndarray):
            continue
        root = _root(arr)
        if root is _root(result._data):
            versions.append((result._version_counter, result._version_counter.value, result,
                             "output 0"))
            continue
        for i, t in enumerate(args):
            if getattr(t, "_data", None) is not None and _root(t._data) is root:
                versions.append((t._version_counter, t._version_counter.value, t,
                                 f"input {i}"))
                break
    return tuple(versions)


def _check_saved_versions(node):
    for counter, value, t, what in node.saved_versions:
        if counter.value != value:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [tinyconv.Tensor {list(t.shape)}, dtype {t.dtype}], which "
                f"is {what} of {node.name()}, is at version {counter.value}; expected version "
                f"{value} instead. Hint: replace the in-place operation (add_, mul_, x[i] = v, "
                f"+=, ...) by its out-of-place form (add, mul, ...), or clone() the tensor "
                f"before changing it.")


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


def _topological_order(roots) -> list[Node]:
    """Nodes reachable from ``roots`` (a node or a list of nodes), each after every node that
    consumes its output.

    Iterative depth-first search (deep graphs would overflow Python's recursion limit); parents
    are visited in input order, so the order, and hence summation order, is deterministic.
    """
    order: list[Node] = []
    visited: set[int] = set()
    roots = roots if isinstance(roots, (list, tuple)) else [roots]
    for root in roots:
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for parent in reversed(node.edges):
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()  # post-order reversed: consumers before producers
    return order


def _run_hooks(hooks, g):
    """Call each ``register_hook`` function on the gradient; one may return a replacement."""
    from tinyconv.tensor import Tensor

    for hook in list(hooks.values()):
        with no_grad():
            new = hook(Tensor._wrap(g))
        if new is not None:
            new = np.asarray(new._data if isinstance(new, Tensor) else new)
            if new.shape != g.shape:
                raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} returned a "
                                   f"gradient of shape {new.shape}; expected {g.shape}")
            g = new
    return g


def backward(tensor, grad: np.ndarray, retain_graph: bool = False, *, capture=None) -> None:
    """Accumulate d(tensor)/d(leaf) * grad into ``.grad`` of every leaf that requires grad.

    ``tensor`` and ``grad`` may be lists (several outputs, their gradients summed). With
    ``capture`` (a dict id(tensor) -> None, see :func:`grad`), the gradients of those tensors are
    stored there instead, and no ``.grad`` is touched.

    The engine, in one paragraph: order the nodes so that every node comes after all the nodes
    that use its output (reverse topological order); give each root its starting gradient; then
    visit the nodes in that order, each time with the *sum* of all gradients that reached its
    output, call the op's ``backward`` for the gradients of its inputs, sum broadcast axes away
    (:func:`unbroadcast`), and either add them to a leaf's ``.grad`` or pass them on to the node
    that made the input.
    """
    from tinyconv.tensor import Tensor

    tensors = list(tensor) if isinstance(tensor, (list, tuple)) else [tensor]
    grads_in = list(grad) if isinstance(grad, (list, tuple)) else [grad]
    grads: dict[int, np.ndarray] = {}
    roots = []
    # A leaf's gradient is delivered (hooks, then .grad) once, after the whole pass, as the sum
    # of all that reached it, like torch's AccumulateGrad: id(leaf) -> [leaf, gradient].
    leaves: dict[int, list] = {}
    for t, g in zip(tensors, grads_in, strict=True):
        if t.grad_fn is None:
            _collect(leaves, t, g)  # a leaf: its gradient w.r.t. itself
            continue
        key = id(t.grad_fn)
        grads[key] = grads[key] + g if key in grads else g
        roots.append(t.grad_fn)
    for node in _topological_order(roots):
        gy = grads.pop(id(node), None)
        if gy is None:
            continue  # no gradient flowed into this node (e.g. from an integer output)
        if node.ctx is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Specify retain_graph=True if you "
                "need to backward through the graph a second time.")
        if node.hooks:
            gy = _run_hooks(node.hooks, gy)
        retained = node.retained() if node.retained is not None else None
        if capture is not None:
            if retained is not None and id(retained) in capture:
                capture[id(retained)] = _plus(capture[id(retained)], gy)
        elif retained is not None:
            retained._accumulate(gy)
        _check_saved_versions(node)
        with no_grad():
            in_grads = node.fn._run_backward(node.ctx, gy)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if _anomaly_mode.enabled:
            for g in in_grads:
                _check_finite(g, node.fn, "backward")
        if len(in_grads) < len(node.inputs):
            in_grads = in_grads + (None,) * (len(node.inputs) - len(in_grads))
        needs = node.ctx.needs_input_grad
        for t, parent, need, g in zip(node.inputs, node.edges, needs, in_grads, strict=False):
            if t is None or g is None or not need:
                continue
            if isinstance(g, Tensor):
                g = g._data
            g = unbroadcast(np.asarray(g), t.shape)
            if g.dtype != t.dtype:
                g = g.astype(t.dtype)
            if parent is None:
                _collect(leaves, t, g)
            elif parent.n_outputs == 1:
                key = id(parent)
                grads[key] = grads[key] + g if key in grads else g
            else:
                _add_to_slot(grads, parent, t._output_nr, g)
        if not retain_graph:
            node.ctx = None  # free the saved arrays
    # ids of arrays that a leaf may not keep as its .grad: the caller's, and those already given
    handed: set[int] = {id(g) for g in grads_in}
    for t, g, summed in leaves.values():
        _deliver_to_leaf(t, g, summed, capture, handed)


def _add_to_slot(grads, node, i, g):
    """Add ``g`` to the gradient of output ``i`` of ``node``, a node with several outputs."""
    slots = grads.setdefault(id(node), [None] * node.n_outputs)
    slots[i] = g if slots[i] is None else slots[i] + g


def _plus(a, b):
    return b if a is None else a + b


def _collect(leaves, t, g):
    entry = leaves.get(id(t))
    if entry is None:
        leaves[id(t)] = [t, g, False]
    else:
        entry[1], entry[2] = entry[1] + g, True  # a sum is a fresh array


def _deliver_to_leaf(t, g, summed, capture, handed):
    """A leaf's gradient: through its hooks, into ``.grad`` (or ``capture``)."""
    if t._hooks:
        hooked = _run_hooks(t._hooks, g)
        summed, g = summed and hooked is g, hooked
    if capture is not None:
        if id(t) in capture:
            capture[id(t)] = _plus(capture[id(t)], g)
        return
    # A fresh array nobody else holds can become the leaf's .grad without a copy (a 12 MB
    # copy for FashionCNN's fc1 otherwise); anything else is copied.
    owned = summed or (g.base is None and g.flags.writeable and g.flags.c_contiguous
                       and id(g) not in handed)
    handed.add(id(g))
    t._accumulate(g, owned)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned, not added to ``.grad``.

    As ``torch.autograd.grad``: ``outputs`` and ``inputs`` are tensors or sequences of them;
    ``grad_outputs`` defaults to ones for scalar outputs; an input the outputs do not depend on
    raises unless ``allow_unused=True`` (then its gradient is None, or zeros with
    ``materialize_grads=True``). ``create_graph=True`` (gradients that are differentiable again)
    is not supported: tinyconv's backward passes work on NumPy arrays and record no graph.
    """
    from tinyconv.tensor import Tensor

    if create_graph:
        raise NotImplementedError("autograd.grad(create_graph=True): tinyconv has no double "
                                  "backward (backward passes run on NumPy arrays and record no "
                                  "graph); use finite differences of the gradient instead")
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) is not supported")
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outs):
        raise RuntimeError(f"autograd.grad(): got {len(outs)} outputs and "
                           f"{len(grad_outputs)} grad_outputs; they must match")
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"autograd.grad(): input {i} does not require grad")
    gs = []
    for i, (o, g) in enumerate(zip(outs, grad_outputs, strict=True)):
        if not isinstance(o, Tensor) or not o.requires_grad:
            raise RuntimeError(f"autograd.grad(): element {i} of the outputs does not require "
                               f"grad and does not have a grad_fn")
        if g is None:
            if o._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; "
                                   f"output {i} has shape {tuple(o.shape)}: pass grad_outputs=")
            g = np.ones(o._data.shape, dtype=o._data.dtype)
        else:
            g = np.asarray(g._data if isinstance(g, Tensor) else g, dtype=o._data.dtype)
            if g.shape != o._data.shape:
                raise RuntimeError(f"autograd.grad(): grad_outputs[{i}] has shape {g.shape}; "
                                   f"expected output {i}'s shape {o._data.shape}")
        gs.append(g)
    capture = {id(t): None for t in ins}
    # Non-leaf inputs are captured at their node: mark them as retained for this pass.
    marked = []
    for t in ins:
        if t.grad_fn is not None and t.grad_fn.retained is None:
            t.grad_fn.retained = _weakref.ref(t)
            marked.append(t.grad_fn)
    try:
        backward(outs, gs, retain_graph=bool(retain_graph), capture=capture)
    finally:
        for node in marked:
            node.retained = None
    result = []
    for i, t in enumerate(ins):
        g = capture[id(t)]
        if g is None:
            if not allow_unused and not materialize_grads:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to "
                                   f"not have been used in the graph. Set allow_unused=True if "
                                   f"this is the desired behavior.")
            result.append(Tensor._wrap(np.zeros(t._data.shape, t._data.dtype))
                          if materialize_grads else None)
        else:
            result.append(Tensor._wrap(np.array(g, dtype=t._data.dtype)))
    return tuple(result)


# The tensor-level API (PyTorch's torch.autograd.Function) and the gradient checker.
from tinyconv.autograd.function import Function, FunctionCtx, once_differentiable  # noqa: E402
from tinyconv.autograd.gradcheck import GradcheckError, gradcheck  # noqa: E402
