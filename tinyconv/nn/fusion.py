"""Fusion: which runs of modules ``nn.Sequential`` computes as one op, and why.

This is the one place that explains fusion; tinyconv/ops/fused.py (the Functions) and
tinyconv/kernels/fused.py (their loops) link here.

**Why.** FashionCNN's layers end in ``BatchNorm2d -> ReLU -> MaxPool2d(2, 2)``. Run module by
module, this writes four full-size arrays in the forward pass (xhat, the batch-norm output, the
ReLU output, the pooling's arg-max) and three in the backward pass (the pooling's scattered
gradient, the ReLU's, the batch norm's), each read back by the next step. Fused, the forward
pass reads x twice (statistics, then normalize + ReLU + max) and writes only the pooled output
and a one-byte arg-max per window; the backward pass reads x, recomputes xhat where it needs it,
and writes the input gradient once.

**The patterns.** ``BatchNorm2d -> ReLU -> MaxPool2d(2, 2)`` and ``MaxPool2d(2, 2)`` next to
``ReLU`` in either order (ConvModule, DeepFashionCNN: relu(max of a window) = max of relu, values
and gradient), each also with the ``Conv2d`` before it. With the convolution, the kernels read
its GEMM output Y (OC, N, OH, OW) where it lies, adding the bias as they go, instead of a
batch-major copy of it; and the backward pass writes the output gradient straight into that
layout, which is the one the convolution's backward GEMMs take::

    unfused:  Y = W @ cols -> y = Y + b, moved to (N, OC, OH, OW) -> batch norm ... -> out
    fused:    Y = W @ cols -> batch norm (Y + b) ... -> out

two full-size passes over the activation fewer (the move in forward and its inverse in
backward).

**Same results.** The outputs are bit-identical to the modules run one by one, the running
statistics move the same way, and the gradients are equal (for the batch norm, the same sums in
another order). In the autograd graph the nodes become one: ``BatchNormReLUMaxPool2dBackward``,
``MaxPool2dReLUBackward``, ``Conv2dBatchNormReLUMaxPool2dBackward``,
``Conv2dMaxPool2dReLUBackward``. ``set_fusion(False)`` turns fusion off for the whole process
(e.g. to look at the unfused graph).

**When.** A run is fused only when nothing could tell the difference:

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
error messages.
"""

from __future__ import annotations

from tinyconv._utils import _pair
from tinyconv.autograd import is_grad_enabled
from tinyconv.nn import functional as F
from tinyconv.nn.modules.layers import BatchNorm2d, Conv2d, MaxPool2d, ReLU
from tinyconv.ops import fused as fused_ops
from tinyconv.ops.conv import output_size
from tinyconv.tensor import Tensor

_enabled = True


def set_fusion(enabled: bool) -> None:
    """Let ``nn.Sequential`` fuse module runs (the default) or not."""
    global _enabled
    _enabled = bool(enabled)


def fusion_enabled() -> bool:
    return _enabled


# ---------------------------------------------------------------------------------------------
# which runs fuse


def _unpatched(*modules):
    """None has its forward replaced on the instance or a hook registered (a hook must see each
    module's own call, so a hooked module is never fused)."""
    return not any("forward" in m.__dict__ or m._has_hooks() for m in modules)


def _tiling_pool(pool):
    """A MaxPool2d whose 2x2 windows, stride 2, tile its input."""
    return (type(pool) is MaxPool2d and _pair(pool.kernel_size) == (2, 2)
            and _pair(pool.stride) == (2, 2) and _pair(pool.padding) == (0, 0)
            and _pair(pool.dilation) == (1, 1) and not pool.ceil_mode
            and not pool.return_indices)


def try_fused(modules, i, input):  # noqa: A002
    """(output, number of modules it stands for) for a fusable run starting at modules[i], or
    None when there is none."""
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
        return max_pool2d_relu(input), 2
    return None


def _pool_and_relu(run):
    """A 2x2 tiling MaxPool2d and a ReLU, in either order."""
    return ((type(run[0]) is ReLU and _tiling_pool(run[1]))
            or (_tiling_pool(run[0]) and type(run[1]) is ReLU))


def _conv_run(modules, i, input):  # noqa: A002
    """Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d(2, 2), or Conv2d followed by MaxPool2d(2, 2)
    and ReLU in either order, as one op."""
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
        return conv2d_max_pool2d_relu(input, conv_args, conv.weight, conv.bias), 3
    bn = run[1]
    if not _batch_norm_fits(bn, conv, input, input.shape[0] * OH * OW):
        return None
    return conv2d_batch_norm_relu_max_pool2d(input, conv_args, conv.weight, conv.bias,
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
    args = bn._batch_norm_args(input)  # checks input against the module; counts the batch
    use_batch_stats = args[4]
    if not use_batch_stats:
        params = (input, bn.weight, bn.bias)
        if is_grad_enabled() and any(p is not None and p.requires_grad for p in params):
            # NOTE: _batch_norm_args already counted this batch; the unfused path must not
            # count it again, so run the batch norm here and the ReLU and pooling fused.
            return max_pool2d_relu(F.batch_norm(input, *args))
    return batch_norm_relu_max_pool2d(input, *args)


# ---------------------------------------------------------------------------------------------
# the fused ops, called with what the modules' checks produced


def batch_norm_relu_max_pool2d(input, running_mean, running_var, weight, bias,  # noqa: A002
                               training, momentum, eps):
    """max_pool2d(relu(batch_norm(input, ...)), 2, 2) as one op.

    Only for what ``try_fused`` accepts: a 4-D input of even height and width, and a backward
    pass (if any) in training mode. The arguments are F.batch_norm's, checked as it checks them.
    """
    F._check_batch_norm(input, running_mean, running_var, weight, bias, training)
    return fused_ops.BatchNormReLUMaxPool2d.apply(input, weight, bias, running_mean, running_var,
                                                  bool(training), momentum, eps)


def conv2d_batch_norm_relu_max_pool2d(input, conv_args, weight, bias, bn_args):  # noqa: A002
    """max_pool2d(relu(batch_norm(conv2d(input, weight, bias, *conv_args), *bn_args)), 2, 2) as
    one op; only for what ``try_fused`` accepts (it checked the arguments)."""
    running_mean, running_var, gamma, beta, training, momentum, eps = bn_args
    return fused_ops.Conv2dBatchNormReLUMaxPool2d.apply(
        input, weight, bias, gamma, beta, running_mean, running_var, *conv_args, bool(training),
        momentum, eps)


def conv2d_max_pool2d_relu(input, conv_args, weight, bias):  # noqa: A002
    """relu(max_pool2d(conv2d(input, weight, bias, *conv_args), 2, 2)) as one op; only for what
    ``try_fused`` accepts."""
    return fused_ops.Conv2dMaxPool2dReLU.apply(input, weight, bias, *conv_args)


def max_pool2d_relu(input):  # noqa: A002
    """relu(max_pool2d(input, 2, 2)) as one op (equal to max_pool2d(relu(input), 2, 2)); only
    for a 4-D floating-point input of even height and width."""
    return fused_ops.MaxPool2dReLU.apply(input)
