"""The in-place methods of :class:`~tinyconv.tensor.Tensor` (``add_``, ``x[i] = v``, ``zero_``...:
the ``TensorInplace`` mixin), all through ``_apply_inplace``, which records them in a graph as
PyTorch does (see the comment at the top of the class).
"""

from __future__ import annotations

import builtins as _b  # as in tensor.py, where int, float and bool are dtypes
import weakref

import numpy as np

# Tensor is built from this mixin in tinyconv/tensor.py, so the class (and the dtypes) are
# looked up on that module when a method runs; importing the names here would be circular.
from tinyconv import autograd, tensor
from tinyconv.autograd.version import keep_old_values, save_own_memory
from tinyconv.ops import elementwise as E
from tinyconv.ops import inplace as INP


class TensorInplace:
    """Tensor's in-place methods."""

    # ----- in-place operations ---------------------------------------------------------------
    #
    # Every in-place op goes through _apply_inplace. Outside a graph (the optimizers' updates,
    # initialisation, anything under no_grad) it writes into the array and bumps the version
    # counter. Inside a graph it is recorded as PyTorch records it: the new value is computed
    # by the differentiable out-of-place op from a snapshot of the old value, written into this
    # tensor's memory, and this tensor's grad_fn becomes that op's node. Backward then gives
    # the right gradients, and any node that saved the overwritten memory for its backward
    # refuses to run (see tinyconv/autograd/version.py).

    def _tracks_inplace(self, *others):
        """Whether an in-place op on self (with ``others``) must be recorded in the graph."""
        if not autograd.is_grad_enabled():
            return False
        return self.requires_grad or _b.any(isinstance(o, tensor.Tensor) and o.requires_grad
                                            for o in others)

    def _check_writeable(self, op):
        if not self._data.flags.writeable:
            raise RuntimeError(f"{op}: unsupported operation: this tensor's memory is read-only "
                               f"(an expand()ed tensor, where more than one element refers to a "
                               f"single memory location); clone() it first")

    def _apply_inplace(self, compute, op, others=(), fast=None, one_op=False):
        """Change this tensor in place to ``compute(old)`` (a function of the old value built
        from differentiable ops). ``fast(array)``, if given, writes the new value directly when
        no graph is recorded. ``one_op``: ``compute`` is a single op (relu, add, ...; not
        clamp, which is several), which may then read this tensor's memory itself
        (see :meth:`_write_one_op`)."""
        self._check_writeable(op)
        if not self._tracks_inplace(*others):
            if fast is not None:
                fast(self._data)
            else:
                with autograd.no_grad():
                    new = compute(self)._data
                np.copyto(self._data, new, casting="same_kind")
            self._version_counter.value += 1
            return self
        base = self._view_base
        if self.is_leaf and self.requires_grad:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an "
                               f"in-place operation; wrap it in tinyconv.no_grad() (as "
                               f"optimizers and initialisers do) or use the out-of-place form")
        if base is not None and base.is_leaf and base.requires_grad:
            raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being "
                               f"used in an in-place operation; clone() it first")
        if base is None and one_op and self._write_one_op(compute):
            return self
        new = compute(self._snapshot())
        if new.dtype != self.dtype:
            if not np.can_cast(new.dtype, self.dtype, casting="same_kind"):
                raise RuntimeError(f"{op}: result type {new.dtype} can't be cast to the desired "
                                   f"output type {self.dtype}")
            new = new.to(self.dtype)
        if base is None:
            np.copyto(self._data, new._data)
            self._rebase(new.grad_fn)
        else:
            # Write through the base: its new value is the old one with the viewed part
            # replaced; this tensor (a view of the base's memory) sees the change, and its
            # graph becomes "a view of the new base".
            new_base = INP.SetView.apply(base._snapshot(), new, self._view_fn)
            np.copyto(base._data, new_base._data)
            base._rebase(new_base.grad_fn)
            self._rebase(INP.ViewOf.apply(base, self._view_fn).grad_fn)
        self._version_counter.value += 1
        return self

    def _write_one_op(self, compute):
        """The in-place change of :meth:`_apply_inplace` by a single op, without the snapshot:
        True when done, False (nothing changed) when the general way must do it.

        Why: the general way computes from a copy of the old value and writes the op's result
        into this tensor's memory, so an op that saves its result keeps a second array with
        the same values. A ResNet's ``ReLU(inplace=True)`` after each batch norm, and ``out +=
        identity``, did that: about 750 MiB of copies kept or made per ResNet-18 step at batch 32.
        Here, as in PyTorch:

        1. the op reads this tensor's memory directly (an alias: the same array, grad_fn and
           version counter, so that any node that saves it will see the write below);
        2. if the op's node saved the old value (Log saves its input), it gets a copy of it now,
           the one case that still copies;
        3. the result is written into this tensor's memory and the version moves on;
        4. if the node saved its result (ReLU, Exp, Sigmoid...), it now saves this tensor's
           memory, which holds the same values, at the new version: a later in-place change
           of this tensor is refused in backward, as PyTorch refuses it. The result array is
           freed when this returns.
        """
        alias = tensor.Tensor._wrap(self._data)
        alias.grad_fn, alias._requires_grad = self.grad_fn, self._requires_grad
        alias._version_counter = self._version_counter
        new = compute(alias)
        node = new.grad_fn
        if new.dtype != self.dtype or node is None or node is self.grad_fn \
                or not isinstance(node.ctx, autograd.Context):
            return False  # a cast on top, or not one ArrayFunction: the general way
        keep_old_values(node, self)
        np.copyto(self._data, new._data)
        self._version_counter.value += 1
        save_own_memory(node, new, self)
        self._rebase(node)
        return True

    def _snapshot(self):
        """A copy of the current value that stands for it in the graph (same grad_fn)."""
        t = tensor.Tensor._wrap(self._data.copy())
        t.grad_fn, t._requires_grad = self.grad_fn, self._requires_grad
        return t

    def _rebase(self, node):
        """Make ``node`` this tensor's grad_fn after an in-place change."""
        old = self.grad_fn
        self.grad_fn = node
        self._requires_grad = node is not None or self._requires_grad
        if node is not None and old is not None and old.retained is not None \
                and old.retained() is self:
            old.retained, node.retained = None, weakref.ref(self)

    def _binary_inplace(self, other, op, ufunc, out_of_place):
        other_arr = other._data if isinstance(other, tensor.Tensor) else other

        def fast(arr):
            ufunc(arr, other_arr, out=arr, casting="same_kind")

        return self._apply_inplace(lambda old: out_of_place(old, other), op, (other,), fast,
                                   one_op=True)

    def add_(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        return self._binary_inplace(other, "add_", np.add, lambda a, b: a + b)

    def sub_(self, other, alpha=1):
        if alpha != 1:
            other = other * alpha
        return self._binary_inplace(other, "sub_", np.subtract, lambda a, b: a - b)

    def mul_(self, other):
        return self._binary_inplace(other, "mul_", np.multiply, lambda a, b: a * b)

    def div_(self, other):
        return self._binary_inplace(other, "div_", np.true_divide, lambda a, b: a / b)

    def pow_(self, exponent):
        return self._binary_inplace(exponent, "pow_", np.power, lambda a, b: a ** b)

    def neg_(self):
        return self._apply_inplace(lambda old: -old, "neg_", one_op=True)

    def abs_(self):
        return self._apply_inplace(lambda old: old.abs(), "abs_", one_op=True)

    def exp_(self):
        return self._apply_inplace(lambda old: old.exp(), "exp_", one_op=True)

    def log_(self):
        return self._apply_inplace(lambda old: old.log(), "log_", one_op=True)

    def sqrt_(self):
        return self._apply_inplace(lambda old: old.sqrt(), "sqrt_", one_op=True)

    def relu_(self):
        return self._apply_inplace(lambda old: old.relu(), "relu_", one_op=True)

    def sigmoid_(self):
        return self._apply_inplace(lambda old: old.sigmoid(), "sigmoid_", one_op=True)

    def tanh_(self):
        return self._apply_inplace(lambda old: old.tanh(), "tanh_", one_op=True)

    def clamp_(self, min=None, max=None):  # noqa: A002 - torch's names
        return self._apply_inplace(lambda old: old.clamp(min, max), "clamp_")

    clip_ = clamp_

    def masked_fill_(self, mask, value):
        mask = mask._data if isinstance(mask, tensor.Tensor) else np.asarray(mask)
        mask = np.broadcast_to(mask.astype(np.bool_), self._data.shape)
        self[mask] = value
        return self

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        if isinstance(value, tensor.Tensor):
            return self.copy_(value.expand(self.shape) if value.ndim == 0 else value)

        def fast(arr):
            arr[...] = value

        return self._apply_inplace(lambda old: INP.Fill.apply(old, value), "fill_", (), fast,
                                   one_op=True)

    def copy_(self, src, non_blocking=False):
        if isinstance(src, tensor.Tensor):
            src_t = src
        else:
            src_t = tensor.Tensor._wrap(np.asarray(src))
        try:
            np.broadcast_shapes(src_t._data.shape, self._data.shape)
        except ValueError:
            raise RuntimeError(f"copy_(): the source of shape {tuple(src_t.shape)} cannot be "
                               f"broadcast to this tensor's shape {tuple(self.shape)}") from None

        def fast(arr):
            arr[...] = src_t._data  # copy_ converts between dtypes, as torch's does

        return self._apply_inplace(lambda old: INP.CopyFrom.apply(old, src_t), "copy_", (src_t,),
                                   fast, one_op=True)

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from tinyconv import random
        rng = generator or random.default_generator
        return self.copy_(rng.uniform(a, b, self._data.shape))

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from tinyconv import random
        rng = generator or random.default_generator
        return self.copy_(rng.normal(mean, std, self._data.shape))

    def clone(self):
        if self.requires_grad:
            return E.Mul.apply(self, 1)
        return tensor.Tensor._wrap(self._data.copy())
