"""The fused ops as Functions: BatchNorm2d -> ReLU -> MaxPool2d(2, 2), and MaxPool2d(2, 2) with
ReLU (either order), each with or without the Conv2d before them.

When and why ``nn.Sequential`` uses them, and what they save: tinyconv/nn/fusion.py, the one
place that explains fusion. Their loops: tinyconv/kernels/fused.py. With the convolution, the
kernels read its GEMM output Y (OC, N, OH, OW) in place (tinyconv/ops/conv.py's
``gemm_channel_major``) and hand back its gradient in that layout (``gradients``).
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels import fused as fused_kernels
from tinyconv.ops.conv import chunks, gemm_channel_major, gradients, output_size, uses_winograd
from tinyconv.ops.norm import affine_or_default, eval_scale_shift, update_running_stats


class BatchNormReLUMaxPool2d(ArrayFunction):
    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training, momentum, eps):
        gamma_, beta_ = affine_or_default(x.shape[1], x.dtype, gamma, beta)
        if training:
            y, at, (mu, var, invstd) = fused_kernels.train_forward(x, gamma_, beta_, eps)
            update_running_stats(running_mean, running_var, mu, var, x.size // x.shape[1],
                                 momentum)
            ctx.save_for_backward(x, y, at, gamma_, mu, invstd)
            return y
        if ctx.recording:  # nn.Sequential never fuses evaluation when a backward will follow
            raise RuntimeError("BatchNormReLUMaxPool2d: no backward in evaluation mode")
        scale, shift, _ = eval_scale_shift(x.dtype, gamma_, beta_, running_mean, running_var, eps)
        y, _ = fused_kernels.forward(x, gamma_, beta_, False, (scale, shift))
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y, at, gamma, mu, invstd = ctx.saved_tensors
        gx, ggamma, gbeta = fused_kernels.backward(gy, x, y, at, gamma, mu, invstd)
        need = ctx.needs_input_grad
        return (gx if need[0] else None, ggamma if need[1] else None,
                gbeta if need[2] else None)


class MaxPool2dReLU(ArrayFunction):
    """relu(max_pool2d(x, 2, 2)), which equals max_pool2d(relu(x), 2, 2), values and gradient."""

    @staticmethod
    def forward(ctx, x):
        if not ctx.recording:  # no backward: no arg-max (a faster loop, the same values)
            return fused_kernels.pool_relu_values(x)
        y, at = fused_kernels.pool_relu_forward(x)
        ctx.save_for_backward(y, at)
        ctx.x_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        y, at = ctx.saved_tensors
        return fused_kernels.pool_relu_backward(gy, y, at, ctx.x_shape)


def _conv_epilogue(ctx, x, W, b, conv_args, epilogue):
    """Run a convolution whose channel-major output goes straight into ``epilogue(Y, bias, out)``,
    which writes the pooled (y, at) into ``out``. Returns (Y, y, at); when nothing is saved for
    backward, the epilogue runs chunk by chunk too (as in Conv2d; not with Winograd) and Y is
    None."""
    N, OC = x.shape[0], W.shape[0]
    OH, OW = output_size(x.shape, W.shape, *conv_args)
    bias = b if b is not None else np.zeros(OC, dtype=x.dtype)
    y = np.empty((N, OC, OH // 2, OW // 2), dtype=x.dtype)
    at = np.empty(y.shape, dtype=np.uint8)
    # (Winograd: the whole batch at once, as Conv2d.forward hands it, see uses_winograd)
    if ctx.recording or uses_winograd(x.shape, W.shape, *conv_args):
        Y = gemm_channel_major(x, W, *conv_args)
        epilogue(Y, bias, (y, at))
        return Y, y, at
    for n in chunks(N, W, OH * OW):
        epilogue(gemm_channel_major(x[n], W, *conv_args), bias, (y[n], at[n]))
    return None, y, at


def _save_conv(ctx, x, W, conv_args, *arrays):
    ctx.save_for_backward(x, W, *arrays)
    ctx.geometry = W.shape[2:] + tuple(conv_args)


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
            return _conv_epilogue(ctx, x, W, b, conv_args, lambda Y, bias, out:
                                  fused_kernels.forward(Y, gamma_, beta_, False, (scale, shift),
                                                        True, bias, out))[1]
        Y = gemm_channel_major(x, W, *conv_args)
        bias = b if b is not None else np.zeros(W.shape[0], dtype=x.dtype)
        y, at, (mu, var, invstd) = fused_kernels.train_forward(Y, gamma_, beta_, eps, True, bias)
        update_running_stats(running_mean, running_var, mu, var, Y[0].size, momentum)
        if ctx.recording:
            _save_conv(ctx, x, W, conv_args, Y, bias, y, at, gamma_, mu, invstd)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, W, Y, bias, y, at, gamma, mu, invstd = ctx.saved_tensors
        gY, ggamma, gbeta, gb = fused_kernels.backward(gy, Y, y, at, gamma, mu, invstd, True, bias)
        need = ctx.needs_input_grad
        gx, gW, gb = gradients(gY, gb, x, W, ctx.geometry, need)
        return gx, gW, gb, ggamma if need[3] else None, gbeta if need[4] else None


class Conv2dMaxPool2dReLU(ArrayFunction):
    """relu(max_pool2d(conv2d(x, W, b), 2, 2)), which equals max_pool2d(relu(conv2d(...)), 2, 2)."""

    @staticmethod
    def forward(ctx, x, W, b, stride, padding, dilation):
        conv_args = (stride, padding, dilation)

        def epilogue(Y, bias, out):
            if ctx.recording:
                return fused_kernels.pool_relu_forward(Y, True, bias, out)
            # no backward: values only, a faster loop (at stays unwritten; nothing reads it)
            return fused_kernels.pool_relu_values(Y, True, bias, out[0])

        Y, y, at = _conv_epilogue(ctx, x, W, b, conv_args, epilogue)
        if ctx.recording:
            _save_conv(ctx, x, W, conv_args, y, at)
            ctx.y_shape = Y.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        x, W, y, at = ctx.saved_tensors
        gY, gb = fused_kernels.pool_relu_backward(gy, y, at, ctx.y_shape, channel_major=True)
        return gradients(gY, gb, x, W, ctx.geometry, ctx.needs_input_grad)
