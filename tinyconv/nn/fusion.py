"""Which runs of modules ``nn.Sequential`` may compute as one fused op.

Today one pattern: ``BatchNorm2d -> ReLU -> MaxPool2d(2, 2)``, the end of each FashionCNN layer
(tinyconv/ops/fused.py). A run is fused only when nothing could tell the difference:

* the three modules are exactly tinyconv's classes, and none has a ``forward`` replaced on the
  instance (``tinyconv.summary`` and the parity recorder do that to watch each layer);
* the pooling is 2x2 with stride 2, no padding, dilation 1, floor mode, no indices returned,
  and the input is 4-D with even height and width, so the windows tile it exactly;
* in evaluation mode (running statistics), only when no backward can follow.

Anything else, wrong input included, goes through the modules one by one, with their checks and
error messages. ``set_fusion(False)`` turns fusion off for the whole process.
"""

from __future__ import annotations

from tinyconv.autograd import is_grad_enabled

_enabled = True


def set_fusion(enabled: bool) -> None:
    """Let ``nn.Sequential`` fuse module runs (the default) or not."""
    global _enabled
    _enabled = bool(enabled)


def fusion_enabled() -> bool:
    return _enabled


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _unpatched(*modules):
    return not any("forward" in m.__dict__ for m in modules)


def try_fused(modules, i, input):  # noqa: A002
    """The output of modules[i:i + 3] computed as one op, or None when they cannot be fused."""
    from tinyconv.nn import functional as F
    from tinyconv.nn.modules.layers import BatchNorm2d, MaxPool2d, ReLU
    from tinyconv.tensor import Tensor

    if not _enabled or i + 3 > len(modules):
        return None
    bn, relu, pool = modules[i:i + 3]
    if not (type(bn) is BatchNorm2d and type(relu) is ReLU and type(pool) is MaxPool2d
            and _unpatched(bn, relu, pool)):
        return None
    if not (_pair(pool.kernel_size) == (2, 2) and _pair(pool.stride) == (2, 2)
            and _pair(pool.padding) == (0, 0) and _pair(pool.dilation) == (1, 1)
            and not pool.ceil_mode and not pool.return_indices):
        return None
    if not (isinstance(input, Tensor) and input.ndim == 4 and input.dtype.kind == "f"
            and input.shape[2] % 2 == 0 and input.shape[3] % 2 == 0 and input.numel() > 0):
        return None
    args = bn._batch_norm_args(input)  # checks input against the module; counts the batch
    use_batch_stats = args[4]
    if not use_batch_stats:
        params = (input, bn.weight, bn.bias)
        if is_grad_enabled() and any(p is not None and p.requires_grad for p in params):
            # NOTE: _batch_norm_args already counted this batch; the unfused path must not
            # count it again, so run the batch norm here and the rest module by module.
            return pool(relu(F.batch_norm(input, *args)))
    return F._batch_norm_relu_max_pool2d(input, *args)
