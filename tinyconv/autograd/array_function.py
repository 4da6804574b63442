""":class:`ArrayFunction`, the base class of tinyconv's own ops: ``forward`` and ``backward``
exchange NumPy arrays, and ``apply`` wraps them in Tensors and records the :class:`Node` (see
tinyconv/autograd/__init__.py; the Tensor-level ``Function`` of PyTorch is in function.py).
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd.anomaly_mode import _anomaly_mode, _check_finite
from tinyconv.autograd.grad_mode import _grad_mode
from tinyconv.autograd.graph import Context, Node
from tinyconv.autograd.version import _saved_versions, _share_version_if_view


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
