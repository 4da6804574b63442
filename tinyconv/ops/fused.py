"""BatchNorm2d -> ReLU -> MaxPool2d(2, 2), and MaxPool2d(2, 2) with ReLU (either order), as
single ops (kernels in tinyconv/kernels/fused.py), with or without the Conv2d before them.

``nn.Sequential`` calls them in place of the modules when they follow each other and nothing
could tell the difference (the rules are in tinyconv/nn/fusion.py): the outputs are
bit-identical to the modules run one by one, the running statistics move the same way, and the
gradients are equal (for the batch norm, the same sums in another order). In the autograd graph
the nodes become one, ``BatchNormReLUMaxPool2dBackward`` or ``MaxPool2dReLUBackward`` (with the
convolution: ``Conv2dBatchNormReLUMaxPool2dBackward``, ``Conv2dMaxPool2dReLUBackward``);
``tinyconv.nn.set_fusion(False)`` turns fusion off (e.g. to look at the unfused graph).

With the convolution (``Conv2dBatchNormReLUMaxPool2d``, ``Conv2dMaxPool2dReLU``), the kernels
read the convolution's GEMM output Y (OC, N, OH, OW) where it lies, adding the bias as they
go, instead of a batch-major copy of it; and the backward pass writes the output gradient
straight into that layout, which is the one the convolution's backward GEMMs take:

    unfused:  Y = W @ cols -> y = Y + b, moved to (N, OC, OH, OW) -> batch norm ... -> out
    fused:    Y = W @ cols -> batch norm (Y + b) ... -> out

Two full-size passes over the activation fewer (the move in forward and its inverse in
backward). The values are the same as unfused, bit for bit in the forward pass.
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels import fused
from tinyconv.ops.conv import (
    backward_from_channel_major,
    chunk_size,
    gemm_channel_major,
    output_size,
)
from tinyconv.ops.norm import affine_or_default, eval_scale_shift, update_running_stats


class BatchNormReLUMaxPool2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        gamma_, beta_ = affine_or_default(x.shape[1], x.dtype, gamma, beta)
        if training:
            y, at, (mu, var, invstd) = fused.train_forward(x, gamma_, beta_, eps)
            update_running_stats(running_mean, running_var, mu, var, x.size // x.shape[1],
                                 momentum)
            ctx.save_for_backward(x, y, at, gamma_, mu, invstd)
            return y
        if ctx.recording:  # nn.Sequential never fuses evaluation when a backward will follow
            raise RuntimeError("BatchNormReLUMaxPool2d: no backward in evaluation mode")
        scale, shift, _ = eval_scale_shift(x.dtype, gamma_, beta_, running_mean, running_var, eps)
        y, _ = fused.forward(x, gamma_, beta_, False, (scale, shift))
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y, at, gamma, mu, invstd = ctx.saved_tensors
        gx, ggamma, gbeta = fused.backward(gy, x, y, at, gamma, mu, invstd)
        need = ctx.needs_input_grad
        return (gx if need[0] else None, ggamma if need[1] else None,
                gbeta if need[2] else None)


class MaxPool2dReLU(ArrayFunction):
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


def _conv_epilogue(ctx, x, W, b, conv_args, epilogue):
    """Run a convolution whose channel-major output goes straight into ``epilogue(Y, bias, out)``,
    which writes the pooled (y, at) into ``out``. Returns (Y, cols, y, at); when nothing is saved
    for backward, the batch goes through in chunks (as in Conv2d) and Y, cols are None."""
    N, OC = x.shape[0], W.shape[0]
    OH, OW = output_size(x.shape, W.shape, *conv_args)
    bias = b if b is not None else np.zeros(OC, dtype=x.dtype)
    y = np.empty((N, OC, OH // 2, OW // 2), dtype=x.dtype)
    at = np.empty(y.shape, dtype=np.uint8)
    if ctx.recording:
        Y, cols = gemm_channel_major(x, W, *conv_args)
        epilogue(Y, bias, (y, at))
        return Y, cols, y, at
    step = chunk_size(W, OH * OW)
    for n0 in range(0, N, step):
        Y, _ = gemm_channel_major(x[n0:n0 + step], W, *conv_args)
        epilogue(Y, bias, (y[n0:n0 + step], at[n0:n0 + step]))
    return None, None, y, at


def _save_conv(ctx, x, W, conv_args, *arrays):
    ctx.save_for_backward(W, *arrays)
    ctx.x_shape, ctx.geometry = x.shape, W.shape[2:] + tuple(conv_args)


class Conv2dBatchNormReLUMaxPool2d(ArrayFunction):
    """max_pool2d(relu(batch_norm(conv2d(x, W, b))), 2, 2); the batch norm in training mode
    (batch statistics), or in evaluation mode when no backward will follow."""

    @staticmethod
    def forward(ctx, x, W, b, gamma, beta, running_mean, running_var, stride, padding, dilation,
                training, momentum, eps):
        conv_args = (stride, padding, dilation)
        gamma_, beta_ = affine_or_default(W.shape[0], x.dtype, gamma, beta)
        if not training:
            if ctx.recording:  # nn.Sequential never fuses this case
                raise RuntimeError("Conv2dBatchNormReLUMaxPool2d: no backward in evaluation mode")
            scale, shift, _ = eval_scale_shift(x.dtype, gamma_, beta_, running_mean, running_var,
                                               eps)
            return _conv_epilogue(ctx, x, W, b, conv_args, lambda Y, bias, out: fused.forward(
                Y, gamma_, beta_, False, (scale, shift), True, bias, out))[2]
        Y, cols = gemm_channel_major(x, W, *conv_args)
        bias = b if b is not None else np.zeros(W.shape[0], dtype=x.dtype)
        y, at, (mu, var, invstd) = fused.train_forward(Y, gamma_, beta_, eps, True, bias)
        update_running_stats(running_mean, running_var, mu, var, Y[0].size, momentum)
        if ctx.recording:
            _save_conv(ctx, x, W, conv_args, cols, Y, bias, y, at, gamma_, mu, invstd)
        return y

    @staticmethod
    def backward(ctx, gy):
        W, cols, Y, bias, y, at, gamma, mu, invstd = ctx.saved_tensors
        gY, ggamma, gbeta, gb = fused.backward(gy, Y, y, at, gamma, mu, invstd, True, bias)
        need = ctx.needs_input_grad
        gx, gW, gb = backward_from_channel_major(gY, gb, cols, W, ctx.x_shape, ctx.geometry, need)
        return gx, gW, gb, ggamma if need[3] else None, gbeta if need[4] else None


class Conv2dMaxPool2dReLU(ArrayFunction):
    """relu(max_pool2d(conv2d(x, W, b), 2, 2)), which equals max_pool2d(relu(conv2d(...)), 2, 2)."""

    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        conv_args = (stride, padding, dilation)
        Y, cols, y, at = _conv_epilogue(ctx, x, W, b, conv_args, lambda Y, bias, out:
                                        fused.pool_relu_forward(Y, True, bias, out))
        if ctx.recording:
            _save_conv(ctx, x, W, conv_args, cols, y, at)
            ctx.y_shape = Y.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        W, cols, y, at = ctx.saved_tensors
        gY, gb = fused.pool_relu_backward(gy, y, at, ctx.y_shape, channel_major=True)
        return backward_from_channel_major(gY, gb, cols, W, ctx.x_shape, ctx.geometry,
                                           ctx.needs_input_grad)
