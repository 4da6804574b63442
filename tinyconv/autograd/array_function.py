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
        Tensor = _tensor_type()
        # Tensors among the positional arguments are the differentiable inputs; everything else
        # (ints, tuples, None, arrays) is passed through as a hyper-parameter.
        arrays = [a._data if isinstance(a, Tensor) else a for a in args]
        needs = tuple([isinstance(a, Tensor) and a._requires_grad for a in args])
        record = _grad_mode.enabled and True in needs
        ctx = Context(needs, record)
        out = cls.forward(ctx, *arrays, **kwargs)
        if _anomaly_mode.enabled:
            _check_finite(np.asarray(out), cls, "forward")
        result = Tensor._wrap(out)
        # a result array that is none of the inputs and no view is not a view of an input
        data = result._data  # out as an array (a forward may return a NumPy scalar)
        if not (data.base is None and all([a is not data for a in arrays])):
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


_TENSOR = []


def _tensor_type():
    """tinyconv.tensor.Tensor, imported on the first call (tensor.py imports this module), then
    kept: an import statement in ``apply`` cost ~1 us of each op's ~13 us of bookkeeping."""
    if not _TENSOR:
        from tinyconv.tensor import Tensor

        _TENSOR.append(Tensor)
    return _TENSOR[0]
