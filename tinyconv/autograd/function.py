"""Custom differentiable operations written the PyTorch way (``torch.autograd.Function``).

A user's op subclasses :class:`Function` and gets Tensors, as in PyTorch::

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):                 # x: a Tensor; runs with recording off
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):      # dL/d(output) as a Tensor
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x ** 2  # dL/dx: one gradient per input of forward

    y = Cube.apply(x)

``apply`` runs ``forward`` under ``no_grad`` (whatever it computes is not recorded), then
records one graph node for the whole call. In backward the engine hands this class the gradient
of each output, and :meth:`Function._run_backward` wraps them in Tensors, calls ``backward`` and
checks its answer: one gradient per positional argument of ``apply`` (None where there is no
gradient), each of the input's shape or of a shape it broadcasts to, as PyTorch checks.

The newer PyTorch style is supported too: ``forward(*args)`` without ``ctx`` plus a
``setup_context(ctx, inputs, output)`` that saves what backward needs.

tinyconv's own ops use the array-level :class:`tinyconv.autograd.ArrayFunction`, which skips
the wrapping; both kinds meet in the same graph.
"""

from __future__ import annotations

import functools

import numpy as np

from tinyconv import autograd
from tinyconv.autograd.version import _entry

__all__ = ["Function", "FunctionCtx", "once_differentiable"]


class FunctionCtx:
    """The ``ctx`` of a custom :class:`Function`: saved tensors, flags, and any attributes.

    * ``save_for_backward(*tensors)`` / ``saved_tensors``: Tensors (or None) kept for backward;
      anything else (ints, shapes, arrays) is stored as an attribute, ``ctx.k = k``.
    * ``needs_input_grad``: a bool per argument of ``apply``, True for a Tensor that requires
      a gradient; backward may skip computing the others.
    * ``mark_non_differentiable(*outputs)``: these outputs get no gradient (indices, masks).
    * ``mark_dirty(*inputs)``: forward modified these inputs in place and returns them.
    * ``set_materialize_grads(False)``: backward receives None, not zeros, for an output that
      no gradient reached.
    """

    def __init__(self):
        self.needs_input_grad: tuple[bool, ...] = ()
        self._saved: tuple = ()
        self._non_differentiable: tuple = ()
        self._dirty: tuple = ()
        self._materialize_grads = True

    def save_for_backward(self, *tensors) -> None:
        from tinyconv.tensor import Tensor

        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save Tensors (or None), but argument {i} is of "
                    f"type {type(t).__name__}; keep other values as attributes of ctx "
                    f"(e.g. ctx.k = k)")
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        return self._saved

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_differentiable = tensors

    def mark_dirty(self, *tensors) -> None:
        self._dirty = tensors

    def set_materialize_grads(self, value: bool) -> None:
        self._materialize_grads = bool(value)


def once_differentiable(fn):
    """Decorator for a ``backward`` that cannot itself be differentiated (PyTorch's name).

    tinyconv never records a graph while running backward (there is no double backward), so
    every backward is once-differentiable already; the decorator runs ``fn`` under ``no_grad``
    and exists so that code written for PyTorch imports and runs unchanged.
    """

    @functools.wraps(fn)
    def wrapper(ctx, *grad_outputs):
        with autograd.no_grad():
            return fn(ctx, *grad_outputs)

    return wrapper


def _contains(tensors, t) -> bool:
    return any(t is s for s in tensors)


class Function:
    """Base class of custom differentiable operations on Tensors (see the module docstring).

    Subclasses define static ``forward`` and ``backward`` (and optionally ``setup_context``)
    and are called with ``MyFunction.apply(*args)``, never instantiated.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A forward that takes ctx first is meant to be called by apply only; wrap it so that a
        # direct call (MyFunction.forward(x)) says so instead of failing somewhere inside.
        if "forward" in cls.__dict__ and not cls._uses_setup_context():
            cls.forward = staticmethod(_checked_forward(cls, cls.__dict__["forward"]))

    def __call__(self, *args, **kwargs):
        name = type(self).__name__
        raise RuntimeError(
            f"{name} is an autograd Function: call {name}.apply(...) on the class, do not "
            f"instantiate and call it (the old non-static style is not supported, as in PyTorch)")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement the backward function for custom "
                                  "autograd.Function to use it with backward mode AD.")

    @classmethod
    def _uses_setup_context(cls) -> bool:
        setup = cls.__dict__.get("setup_context") or cls.setup_context
        return getattr(setup, "__func__", setup) is not Function.__dict__["setup_context"].__func__

    # ----- forward: record one node for the whole call -----------------------------------------

    @classmethod
    def apply(cls, *args, **kwargs):
        from tinyconv.tensor import Tensor

        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = autograd.is_grad_enabled() and any(needs)
        ctx = FunctionCtx()
        ctx.needs_input_grad = needs
        with autograd.no_grad():
            if cls._uses_setup_context():
                raw = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, raw)
            else:
                raw = cls.forward(ctx, *args, **kwargs)
        is_tuple = isinstance(raw, tuple)
        raw_outs = raw if is_tuple else (raw,)
        for t in ctx._dirty:
            if not _contains(raw_outs, t):
                raise RuntimeError(f"{cls.__name__}: a tensor passed to ctx.mark_dirty() must "
                                   f"be returned by forward")
        if autograd.is_anomaly_enabled():
            for out in raw_outs:
                if isinstance(out, Tensor):
                    autograd.anomaly_mode._check_finite(out._data, cls, "forward")

        inputs = [a if isinstance(a, Tensor) else None for a in args]
        outs = []
        for out in raw_outs:
            if not isinstance(out, Tensor):
                outs.append(out)
            elif _contains(ctx._dirty, out) and _contains(args, out):
                outs.append(out)  # modified in place: the same object, given a new history
            else:
                outs.append(Tensor._wrap(out._data))
        differentiable = [
            isinstance(o, Tensor) and o._data.dtype.kind in "fc"
            and not _contains(ctx._non_differentiable, r)
            for o, r in zip(outs, raw_outs, strict=True)]
        for o in outs:  # an input returned as it is: the same memory, the same version
            for a in args:
                if isinstance(o, Tensor) and isinstance(a, Tensor) and o._data is a._data:
                    o._version_counter = a._version_counter
        if record and any(differentiable):
            for i, a in enumerate(args):
                if _contains(ctx._dirty, a):
                    inputs[i] = _rebase_dirty(cls, a)
            ctx._input_meta = tuple((tuple(a.shape), a.dtype) if isinstance(a, Tensor) else None
                                    for a in args)
            ctx._output_meta = tuple((o._data.shape, o._data.dtype) if isinstance(o, Tensor)
                                     else None for o in outs)
            first = next(o for o, d in zip(outs, differentiable, strict=True) if d)
            node = autograd.Node(cls, ctx, tuple(inputs), first._data.shape, first._data.dtype,
                                 n_outputs=len(outs))
            node.saved_versions = _saved_versions(ctx, args, raw_outs, outs)
            for i, (o, d) in enumerate(zip(outs, differentiable, strict=True)):
                if d:
                    _attach(o, node, i)
        return tuple(outs) if is_tuple else outs[0]

    # ----- backward: what the engine calls -----------------------------------------------------

    @classmethod
    def _run_backward(cls, ctx, gy):
        """The engine's arrays in, the user's ``backward`` on Tensors, checked arrays out."""
        from tinyconv.tensor import Tensor

        if isinstance(ctx, _OutputCtx):
            return (gy,)  # one output's node passes its gradient on to the Function's node
        gys = [gy] if len(ctx._output_meta) == 1 else list(gy)
        grad_outputs = []
        for g, meta in zip(gys, ctx._output_meta, strict=True):
            if g is None and ctx._materialize_grads and meta is not None:
                g = np.zeros(meta[0], dtype=meta[1])
            grad_outputs.append(None if g is None else Tensor._wrap(g))
        result = cls.backward(ctx, *grad_outputs)
        if not isinstance(result, tuple):
            result = (result,)
        return _checked_gradients(cls, ctx._input_meta, result)


class _OutputCtx:
    """The context of the one-output node in front of output ``index`` of a Function that
    returned several tensors."""

    def __init__(self, index):
        self.index = index
        self.needs_input_grad = (True,)


def _attach(out, node, i):
    """Make ``out``, output ``i``, a result of ``node``.

    With one output, ``node`` is its ``grad_fn``. With several, the engine's one-gradient-per-
    node bookkeeping (hooks, retain_grad, version checks) still applies per output: each output
    gets a node of its own (named like the Function's) whose input is a hidden tensor made by
    ``node`` at position ``i``; the engine collects the outputs' gradients into a list there.
    """
    from tinyconv.tensor import Tensor

    if node.n_outputs == 1:
        out.grad_fn, out._requires_grad = node, True
        return
    hidden = Tensor._wrap(out._data)
    hidden.grad_fn, hidden._requires_grad, hidden._output_nr = node, True, i
    out.grad_fn = autograd.Node(node.fn, _OutputCtx(i), (hidden,), out._data.shape,
                                out._data.dtype)
    out._requires_grad = True


def _saved_versions(ctx, args, raw_outs, outs):
    """A version entry (see tinyconv/autograd/version.py) for each saved tensor that is an input
    or an output: backward refuses to run if an in-place op has changed one since."""
    from tinyconv.tensor import Tensor

    versions = []
    for s in ctx._saved:
        found = [(outs[k], f"output {k}") for k, r in enumerate(raw_outs) if s is r]
        found += [(a, f"input {i}") for i, a in enumerate(args) if s is a]
        if found and isinstance(found[0][0], Tensor):
            t, what = found[0]
            versions.append(_entry(t, what))
    return tuple(versions)


def _checked_forward(cls, forward):
    @functools.wraps(forward)
    def checked(ctx, *args, **kwargs):
        if not isinstance(ctx, FunctionCtx):
            raise RuntimeError(
                f"{cls.__name__}.forward was called directly (its first argument, ctx, is a "
                f"{type(ctx).__name__}); call {cls.__name__}.apply(...) instead, which creates "
                f"ctx and records the operation for backward")
        return forward(ctx, *args, **kwargs)

    return checked


def _rebase_dirty(cls, t):
    """``t`` was modified in place by ``cls.forward``: a stand-in for its old value becomes the
    node's input, and ``t`` itself becomes the node's output."""
    from tinyconv.tensor import Tensor

    if t.requires_grad and t.is_leaf:
        raise RuntimeError(f"{cls.__name__}: a leaf Variable that requires grad is being used "
                           f"in an in-place operation (ctx.mark_dirty)")
    old = Tensor._wrap(t._data)
    old.grad_fn, old._requires_grad = t.grad_fn, t.requires_grad
    old._version_counter = t._version_counter
    return old


def _checked_gradients(cls, input_meta, grads) -> tuple:
    """The gradients ``backward`` returned, as arrays, after PyTorch's checks: their number,
    a Tensor (or None) for each Tensor input and None for the rest, a shape the input's shape
    broadcasts to (the engine sums it back) and a floating dtype (cast to the input's dtype)."""
    from tinyconv.tensor import Tensor

    name = cls.__name__ + "Backward"
    n = len(input_meta)
    if len(grads) < n or any(g is not None for g in grads[n:]):
        raise RuntimeError(
            f"function {name} returned an incorrect number of gradients (expected {n}, got "
            f"{len(grads)}): backward must return one gradient per argument of forward, None "
            f"for an argument that is not a Tensor or needs no gradient")
    arrays = []
    for i, (g, meta) in enumerate(zip(grads[:n], input_meta, strict=True)):
        if g is None:
            arrays.append(None)
            continue
        if meta is None:
            raise RuntimeError(f"function {name} returned a gradient different than None at "
                               f"position {i + 1}, but the corresponding forward input was not "
                               f"a Tensor")
        if not isinstance(g, Tensor):
            raise TypeError(f"function {name} returned a {type(g).__name__} as the gradient of "
                            f"input {i}; expected a Tensor or None")
        shape, dtype = meta
        got = tuple(g.shape)
        if got != shape and not _expandable(shape, got):
            raise RuntimeError(f"Function {name} returned an invalid gradient at index {i} - got "
                               f"{list(got)} but expected shape compatible with {list(shape)}")
        if g._data.dtype.kind not in "fc":
            raise RuntimeError(f"Function {name} returned an invalid gradient at index {i} - "
                               f"expected a floating point dtype ({dtype}, the input's) but got "
                               f"{g._data.dtype}")
        arrays.append(g._data)
    return tuple(arrays)


def _expandable(shape, target) -> bool:
    """True if an array of ``shape`` broadcasts to ``target`` (so a gradient of shape
    ``target`` can be summed back to ``shape``)."""
    if len(shape) > len(target):
        return False
    return all(s == t or s == 1 for s, t in zip(shape[::-1], target[::-1], strict=False))
