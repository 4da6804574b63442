"""Which runs of modules ``nn.Sequential`` may compute as one fused op.

Two patterns (tinyconv/ops/fused.py): ``BatchNorm2d -> ReLU -> MaxPool2d(2, 2)``, the end of
each FashionCNN layer, and ``MaxPool2d(2, 2)`` next to ``ReLU`` in either order (ConvModule,
DeepFashionCNN); each also with the ``Conv2d`` before it, whose output then goes to the fused
kernels in the GEMM's layout. A run is fused only when nothing could tell the difference:

* the modules are exactly tinyconv's classes, none has a ``forward`` replaced on the instance
  (``tinyconv.summary`` and the parity recorder do that to watch each layer) and none has a
  forward or backward hook (``register_forward_hook``...);
* the pooling is 2x2 with stride 2, no padding, dilation 1, floor mode, no indices returned,
  and the input is 4-D with even height and width, so the windows tile it exactly (with odd
  sizes the pooling would drop the last row or column, and the batch norm still see it);
* in evaluation mode (running statistics), only when no backward can follow;
* with a Conv2d: its call passes conv2d's checks (a wrong input gets conv2d's own error), its
  output has even height and width, and the batch norm's parameters and buffers fit it (same
  channel count and dtype); otherwise the Conv2d runs alone and the rest is tried after it.

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
    """None has its forward replaced on the instance or a hook registered (a hook must see each
    module's own call, so a hooked module is never fused)."""
    return not any("forward" in m.__dict__ or m._has_hooks() for m in modules)


def _tiling_pool(pool):
    """A MaxPool2d whose 2x2 windows, stride 2, tile its input."""
    from tinyconv.nn.modules.layers import MaxPool2d

    return (type(pool) is MaxPool2d and _pair(pool.kernel_size) == (2, 2)
            and _pair(pool.stride) == (2, 2) and _pair(pool.padding) == (0, 0)
            and _pair(pool.dilation) == (1, 1) and not pool.ceil_mode
            and not pool.return_indices)


def try_fused(modules, i, input):  # noqa: A002
    """(output, number of modules it stands for) for a fusable run starting at modules[i], or
    None when there is none."""
    from tinyconv.nn.modules.layers import BatchNorm2d, Conv2d, ReLU
    from tinyconv.tensor import Tensor

    if not (_enabled and isinstance(input, Tensor) and input.ndim == 4
            and input.dtype.kind == "f" and input.numel() > 0):
        return None
    if type(modules[i]) is Conv2d:
        return _conv_run(modules, i, input)
    if input.shape[2] % 2 or input.shape[3] % 2:
        return None
    run = modules[i:i + 3]
    if (len(run) == 3 and type(run[0]) is BatchNorm2d and type(run[1]) is ReLU
            and _tiling_pool(run[2]) and _unpatched(*run)):
        return _batch_norm_relu_max_pool(run[0], input), 3
    run = modules[i:i + 2]
    if len(run) == 2 and _unpatched(*run) and _pool_and_relu(run):
        from tinyconv.nn import functional as F
        return F._max_pool2d_relu(input), 2
    return None


def _pool_and_relu(run):
    """A 2x2 tiling MaxPool2d and a ReLU, in either order."""
    from tinyconv.nn.modules.layers import ReLU

    return ((type(run[0]) is ReLU and _tiling_pool(run[1]))
            or (_tiling_pool(run[0]) and type(run[1]) is ReLU))


def _conv_run(modules, i, input):  # noqa: A002
    """Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d(2, 2), or Conv2d followed by MaxPool2d(2, 2)
    and ReLU in either order, as one op."""
    from tinyconv.nn import functional as F
    from tinyconv.nn.modules.layers import BatchNorm2d, ReLU
    from tinyconv.ops.conv import output_size

    conv = modules[i]
    run = modules[i:i + 4]
    with_bn = (len(run) == 4 and type(run[1]) is BatchNorm2d and type(run[2]) is ReLU
               and _tiling_pool(run[3]))
    if not with_bn:
        run = modules[i:i + 3]
        if not (len(run) == 3 and _pool_and_relu(run[1:])):
            return None
    if not _unpatched(*run):
        return None
    # the unfused conv2d would raise the same errors for a wrong input
    conv_args = F._conv2d_args(input, conv.weight, conv.bias, conv.stride, conv.padding,
                               conv.dilation, conv.groups)
    OH, OW = output_size(input.shape, conv.weight.shape, *conv_args)
    if OH % 2 or OW % 2:
        return None
    if not with_bn:
        return F._conv2d_max_pool2d_relu(input, conv_args, conv.weight, conv.bias), 3
    bn = run[1]
    if not _batch_norm_fits(bn, conv, input, input.shape[0] * OH * OW):
        return None
    return F._conv2d_batch_norm_relu_max_pool2d(input, conv_args, conv.weight, conv.bias,
                                                bn._stats_args()), 4


def _batch_norm_fits(bn, conv, input, per_channel):  # noqa: A002
    """The batch norm after ``conv`` can be fused: it takes conv's channels and dtype, it has
    more than one value per channel in training, and in evaluation no backward can follow."""
    if bn.num_features != conv.out_channels:
        return False
    if any(t is not None and t.dtype != input.dtype
           for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias)):
        return False
    if bn.training or bn.running_mean is None:  # batch statistics
        return per_channel > 1
    params = (input, conv.weight, conv.bias, bn.weight, bn.bias)
    return not (is_grad_enabled() and any(p is not None and p.requires_grad for p in params))


def _batch_norm_relu_max_pool(bn, input):  # noqa: A002
    from tinyconv.nn import functional as F

    args = bn._batch_norm_args(input)  # checks input against the module; counts the batch
    use_batch_stats = args[4]
    if not use_batch_stats:
        params = (input, bn.weight, bn.bias)
        if is_grad_enabled() and any(p is not None and p.requires_grad for p in params):
            # NOTE: _batch_norm_args already counted this batch; the unfused path must not
            # count it again, so run the batch norm here and the ReLU and pooling fused.
            return F._max_pool2d_relu(F.batch_norm(input, *args))
    return F._batch_norm_relu_max_pool2d(input, *args)
