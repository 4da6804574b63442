"""BatchNorm2d -> ReLU -> MaxPool2d(2, 2), and MaxPool2d(2, 2) with ReLU (either order), as
single ops (kernels in tinyconv/kernels/fused.py).

``nn.Sequential`` calls them in place of the modules when they follow each other and nothing
could tell the difference (the rules are in tinyconv/nn/fusion.py): the outputs are
bit-identical to the modules run one by one, the running statistics move the same way, and the
gradients are equal (for the batch norm, the same sums in another order). In the autograd graph
the nodes become one, ``BatchNormReLUMaxPool2dBackward`` or ``MaxPool2dReLUBackward``;
``tinyconv.nn.set_fusion(False)`` turns fusion off (e.g. to look at the unfused graph).
"""

from __future__ import annotations

from tinyconv.autograd import Function
from tinyconv.kernels import fused
from tinyconv.kernels.batchnorm import batch_norm_stats
from tinyconv.ops.norm import affine_or_default, eval_scale_shift, update_running_stats


class BatchNormReLUMaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        gamma_, beta_ = affine_or_default(x, gamma, beta)
        if training:
            mu, var, invstd = batch_norm_stats(x, eps)
            update_running_stats(running_mean, running_var, mu, var, x.size // x.shape[1],
                                 momentum)
            y, at = fused.forward(x, gamma_, beta_, True, (mu, invstd))
            ctx.save_for_backward(x, y, at, gamma_, mu, invstd)
            return y
        if ctx.recording:  # nn.Sequential never fuses evaluation when a backward will follow
            raise RuntimeError("BatchNormReLUMaxPool2d: no backward in evaluation mode")
        scale, shift, _ = eval_scale_shift(x, gamma_, beta_, running_mean, running_var, eps)
        y, _ = fused.forward(x, gamma_, beta_, False, (scale, shift))
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y, at, gamma, mu, invstd = ctx.saved_tensors
        gx, ggamma, gbeta = fused.backward(gy, x, y, at, gamma, mu, invstd)
        need = ctx.needs_input_grad
        return (gx if need[0] else None, ggamma if need[1] else None,
                gbeta if need[2] else None)


class MaxPool2dReLU(Function):
    """relu(max_pool2d(x, 2, 2)), which equals max_pool2d(relu(x), 2, 2), values and gradient."""

    @staticmethod
    def forward(ctx, x):
        y, at = fused.pool_relu_forward(x)
        ctx.save_for_backward(y, at)
        ctx.x_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        y, at = ctx.saved_tensors
        return fused.pool_relu_backward(gy, y, at, ctx.x_shape)
