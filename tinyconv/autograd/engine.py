"""The backward engine: :func:`backward` (what ``Tensor.backward()`` runs) and :func:`grad`
(``torch.autograd.grad``) walk the recorded nodes in reverse topological order, call each op's
backward exactly once, and sum the gradients that reach a tensor along several paths;
:func:`unbroadcast` sums a gradient back to the shape of an input that was broadcast.
"""

from __future__ import annotations

import weakref as _weakref

import numpy as np

from tinyconv import _load
from tinyconv.autograd.anomaly_mode import _anomaly_mode, _check_finite
from tinyconv.autograd.grad_mode import no_grad
from tinyconv.autograd.graph import Node
from tinyconv.autograd.version import _check_saved_versions


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

    _load.maybe_adapt()  # threads follow the machine's load (tinyconv/_load.py)
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
            node.ctx, node.saved_versions = None, ()  # free the saved arrays
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


def initial_gradient(t, gradient, what, argument):
    """The gradient backward starts from at ``t``: ``gradient`` as an array of t's shape and
    dtype, or ones when it is None and t has one element (a loss)."""
    from tinyconv.tensor import Tensor

    if gradient is None:
        if t._data.size != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs; "
                               f"{what} has shape {tuple(t.shape)}: pass {argument}=")
        return np.ones(t._data.shape, dtype=t._data.dtype)
    g = np.asarray(gradient._data if isinstance(gradient, Tensor) else gradient,
                   dtype=t._data.dtype)
    if g.shape != t._data.shape:
        raise RuntimeError(f"{argument} has shape {g.shape}, expected {what}'s shape "
                           f"{t._data.shape}")
    return g


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
        gs.append(initial_gradient(o, g, f"output {i}", f"grad_outputs[{i}]"))
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
