"""torch.nn.functional's names and signatures over tinyconv's ops.

Each function checks its arguments (shapes, dtypes, hyper-parameters) and says clearly what was
expected and what was given, then calls one or a few Functions of ``tinyconv/ops``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from tinyconv import random
from tinyconv.errors import DTypeError, ShapeError
from tinyconv.kernels.conv import conv_out_size
from tinyconv.ops import conv as C
from tinyconv.ops import elementwise as E
from tinyconv.ops import fused as FU
from tinyconv.ops import loss as L
from tinyconv.ops import matmul as MM
from tinyconv.ops import norm as N
from tinyconv.ops import pool as P
from tinyconv.tensor import Tensor

__all__ = [
    "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm", "dropout",
    "dropout2d", "relu", "linear", "softmax", "log_softmax", "cross_entropy", "nll_loss",
    "flatten", "sigmoid", "tanh",
]


# ---------------------------------------------------------------------------------------------
# argument checking


def _check_tensor(fn, name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be a tinyconv.Tensor, "
                        f"not {type(x).__name__}")


def _check_float(fn, name, x):
    if x.dtype.kind != "f":
        raise DTypeError(f"{fn}(): expected '{name}' of a floating point dtype "
                         f"(float32 or float64), got {x.dtype}; convert with .float()")


def _check_4d(fn, x):
    _check_tensor(fn, "input", x)
    if x.ndim != 4:
        raise ShapeError(f"{fn}(): expected a 4-D input (N, C, H, W), got a {x.ndim}-D input "
                         f"of shape {tuple(x.shape)}")
    _check_float(fn, "input", x)


def _check_nonempty(fn, x, first):
    """Axes ``first``.. of x must be non-empty (torch allows only an empty batch, and for
    convolution an empty channel axis)."""
    if any(n == 0 for n in x.shape[first:]):
        raise ShapeError(f"{fn}(): expected dims {first}.. of the input to be non-empty (only "
                         f"the batch may be empty), got input of shape {tuple(x.shape)}")


def _pair(fn, name, value, minimum):
    """An int or a pair of ints -> a pair, each at least ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{fn}(): {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{fn}(): {name} must be >= {minimum}, got {value!r}")
    return pair


def _same_dtype(fn, x, other, name):
    if other is not None and other.dtype != x.dtype:
        raise DTypeError(f"{fn}(): input dtype ({x.dtype}) and {name} dtype ({other.dtype}) "
                         f"should be the same; convert with .to({name}.dtype)")


# ---------------------------------------------------------------------------------------------
# convolution and pooling


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002
    """2-D convolution of input (N, C, H, W) with weight (OC, C, KH, KW) -> (N, OC, OH, OW)."""
    _check_tensor("conv2d", "weight", weight)
    if isinstance(input, Tensor) and input.ndim == 3:  # unbatched (C, H, W), as torch allows
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation,
                      groups).squeeze(0)
    stride, padding, dilation = _conv2d_args(input, weight, bias, stride, padding, dilation,
                                             groups)
    return C.Conv2d.apply(input, weight, bias, stride, padding, dilation)


def _conv2d_args(input, weight, bias, stride, padding, dilation, groups):  # noqa: A002
    """Check a batched conv2d call; returns (stride, padding, dilation) as pairs of ints."""
    _check_4d("conv2d", input)
    _check_nonempty("conv2d", input, 2)
    if weight.ndim != 4:
        raise ShapeError(f"conv2d(): expected a 4-D weight (OC, C, KH, KW), got shape "
                         f"{tuple(weight.shape)}")
    if groups != 1:
        raise NotImplementedError(f"conv2d(): groups={groups} is not supported by tinyconv "
                                  f"(only groups=1)")
    _same_dtype("conv2d", input, weight, "weight")
    _same_dtype("conv2d", input, bias, "bias")
    OC, C_in, KH, KW = weight.shape
    if bias is not None and tuple(bias.shape) != (OC,):
        raise ShapeError(f"conv2d(): bias must have shape ({OC},) for {OC} output channels, "
                         f"got {tuple(bias.shape)}")
    if input.shape[1] != C_in:
        raise ShapeError(
            f"conv2d(): weight of size {list(weight.shape)} expects input[{input.shape[0]}, "
            f"{C_in}, H, W] with {C_in} channels, but got input of size {list(input.shape)} with "
            f"{input.shape[1]} channels")
    stride = _pair("conv2d", "stride", stride, 1)
    dilation = _pair("conv2d", "dilation", dilation, 1)
    if isinstance(padding, str):
        padding = _string_padding(padding, stride, dilation, (KH, KW))
    padding = _pair("conv2d", "padding", padding, 0)
    H, W = input.shape[2:]
    eff = ((KH - 1) * dilation[0] + 1, (KW - 1) * dilation[1] + 1)
    padded = (H + 2 * padding[0], W + 2 * padding[1])
    if padded[0] < eff[0] or padded[1] < eff[1]:
        raise ShapeError(f"conv2d(): calculated padded input size per channel: "
                         f"({padded[0]} x {padded[1]}); kernel size (dilated): "
                         f"({eff[0]} x {eff[1]}); the kernel can't be larger than the "
                         f"padded input")
    return stride, padding, dilation


def _string_padding(padding, stride, dilation, kernel):
    if padding == "valid":
        return 0
    if padding != "same":
        raise ValueError(f"conv2d(): padding must be an int, a pair, 'valid' or 'same', "
                         f"got {padding!r}")
    if stride != (1, 1):
        raise ValueError("conv2d(): padding='same' is not supported for strided convolutions")
    total = [d * (k - 1) for d, k in zip(dilation, kernel)]
    if any(t % 2 for t in total):
        raise NotImplementedError(
            f"conv2d(): padding='same' with an even effective kernel {kernel} needs asymmetric "
            f"padding, which tinyconv does not support")
    return (total[0] // 2, total[1] // 2)


def _pool_geometry(fn, x, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = _pair(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or stride == [] else _pair(fn, "stride", stride, 1)
    padding = _pair(fn, "padding", padding, 0)
    dilation = _pair(fn, "dilation", dilation, 1)
    for k, p in zip(kernel, padding):
        if p > k // 2:  # torch's rule; it also keeps every window partly inside the input
            raise ValueError(f"{fn}(): padding should be at most half of the kernel size, "
                             f"but got padding={padding}, kernel_size={kernel}")
    H, W = x.shape[2:]
    out = (conv_out_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode),
           conv_out_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode))
    if min(out) < 1:
        raise ShapeError(f"{fn}(): input of size {list(x.shape)} is too small for "
                         f"kernel_size={kernel}, stride={stride}, padding={padding}, "
                         f"dilation={dilation}: the output would be {out[0]}x{out[1]}")
    return kernel, stride, padding, dilation, out


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,  # noqa: A002
               return_indices=False):
    """Max over KH x KW windows of a (N, C, H, W) input; padding counts as -inf."""
    if isinstance(input, Tensor) and input.ndim == 3:  # unbatched (C, H, W), as torch allows
        _check_nonempty("max_pool2d", input, 0)
        out = max_pool2d(input.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode,
                         return_indices)
        return (out[0].squeeze(0), out[1].squeeze(0)) if return_indices else out.squeeze(0)
    _check_4d("max_pool2d", input)
    _check_nonempty("max_pool2d", input, 1)
    kernel, stride, padding, dilation, out = _pool_geometry(
        "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    y = P.MaxPool2d.apply(input, kernel, stride, padding, dilation, out)
    if return_indices:
        ctx_idx = y.grad_fn.ctx.idx if y.grad_fn is not None else None
        if ctx_idx is None:  # no graph recorded: recompute the indices
            from tinyconv.kernels.pool import maxpool2d_forward
            _, ctx_idx = maxpool2d_forward(input._data, *kernel, stride, padding, dilation, *out)
        return y, Tensor._wrap(ctx_idx)
    return y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,  # noqa: A002
               count_include_pad=True, divisor_override=None):
    """Mean over KH x KW windows of a (N, C, H, W) input."""
    if isinstance(input, Tensor) and input.ndim == 3:  # unbatched (C, H, W), as torch allows
        _check_nonempty("avg_pool2d", input, 0)
        return avg_pool2d(input.unsqueeze(0), kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override).squeeze(0)
    _check_4d("avg_pool2d", input)
    _check_nonempty("avg_pool2d", input, 1)
    kernel, stride, padding, _, out = _pool_geometry(
        "avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if divisor_override <= 0:
            raise ValueError(f"avg_pool2d(): divisor_override must be positive, got "
                             f"{divisor_override}")
        divisor = np.full(out, divisor_override, dtype=input.dtype)
    else:
        H, W = input.shape[2:]
        dh = P.avg_pool_divisor(H, kernel[0], stride[0], padding[0], out[0], count_include_pad)
        dw = P.avg_pool_divisor(W, kernel[1], stride[1], padding[1], out[1], count_include_pad)
        divisor = np.outer(dh, dw).astype(input.dtype)
    return P.AvgPool2d.apply(input, kernel, stride, padding, out, divisor)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """Average pooling to a fixed output size (OH, OW) whatever the input size."""
    if isinstance(input, Tensor) and input.ndim == 3:  # unbatched (C, H, W), as torch allows
        _check_nonempty("adaptive_avg_pool2d", input, 0)
        return adaptive_avg_pool2d(input.unsqueeze(0), output_size).squeeze(0)
    _check_4d("adaptive_avg_pool2d", input)
    _check_nonempty("adaptive_avg_pool2d", input, 1)
    if isinstance(output_size, numbers.Integral):
        output_size = (output_size, output_size)
    size = tuple(input.shape[2 + i] if s is None else int(s) for i, s in enumerate(output_size))
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"adaptive_avg_pool2d(): output_size must be a positive int or a pair, "
                         f"got {output_size!r}")
    if size == (1, 1):
        return input.mean(dim=(2, 3), keepdim=True)  # global average pooling
    return P.AdaptiveAvgPool2d.apply(input, size)


# ---------------------------------------------------------------------------------------------
# normalization, dropout, activations, linear


def batch_norm(input, running_mean, running_var, weight=None, bias=None,  # noqa: A002
               training=False, momentum=0.1, eps=1e-05):
    """Normalize each channel (axis 1) of a (N, C, ...) input; see ``tinyconv/ops/norm.py``.

    An empty batch gives an empty output (and zero gradients for weight and bias), as in torch;
    the running statistics are left as they are.
    """
    if isinstance(input, Tensor) and input.ndim >= 2 and input.shape[0] == 0:
        _check_batch_norm(input, running_mean, running_var, weight, bias, False)
        return _empty_batch_norm(input, weight, bias)
    _check_batch_norm(input, running_mean, running_var, weight, bias, training)
    return N.BatchNorm.apply(input, weight, bias, running_mean, running_var, bool(training),
                             momentum, eps)


def _empty_batch_norm(input, weight, bias):  # noqa: A002
    shape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    out = input * weight.reshape(shape) if weight is not None else input * 1
    return out + bias.reshape(shape) if bias is not None else out


def _batch_norm_relu_max_pool2d(input, running_mean, running_var, weight, bias,  # noqa: A002
                                training, momentum, eps):
    """max_pool2d(relu(batch_norm(input, ...)), 2, 2) as one op; see tinyconv/ops/fused.py.

    Only for what ``nn.Sequential`` fuses: a 4-D input of even height and width, and a backward
    pass (if any) in training mode.
    """
    _check_batch_norm(input, running_mean, running_var, weight, bias, training)
    return FU.BatchNormReLUMaxPool2d.apply(input, weight, bias, running_mean, running_var,
                                           bool(training), momentum, eps)


def _conv2d_batch_norm_relu_max_pool2d(input, conv_args, weight, bias, bn_args):  # noqa: A002
    """max_pool2d(relu(batch_norm(conv2d(input, weight, bias, *conv_args), *bn_args)), 2, 2) as
    one op; only for what ``nn.Sequential`` fuses (tinyconv/nn/fusion.py checked the rest)."""
    running_mean, running_var, gamma, beta, training, momentum, eps = bn_args
    return FU.Conv2dBatchNormReLUMaxPool2d.apply(input, weight, bias, gamma, beta, running_mean,
                                                 running_var, *conv_args, bool(training),
                                                 momentum, eps)


def _conv2d_max_pool2d_relu(input, conv_args, weight, bias):  # noqa: A002
    """relu(max_pool2d(conv2d(input, weight, bias, *conv_args), 2, 2)) as one op; only for what
    ``nn.Sequential`` fuses."""
    return FU.Conv2dMaxPool2dReLU.apply(input, weight, bias, *conv_args)


def _max_pool2d_relu(input):  # noqa: A002
    """relu(max_pool2d(input, 2, 2)) as one op (equal to max_pool2d(relu(input), 2, 2)); only for
    what ``nn.Sequential`` fuses: a 4-D floating-point input of even height and width."""
    return FU.MaxPool2dReLU.apply(input)


def _check_batch_norm(input, running_mean, running_var, weight, bias, training):  # noqa: A002
    _check_tensor("batch_norm", "input", input)
    _check_float("batch_norm", "input", input)
    if input.ndim < 2:
        raise ShapeError(f"batch_norm(): expected an input of at least 2 dimensions (N, C, ...), "
                         f"got shape {tuple(input.shape)}")
    C = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ShapeError(f"batch_norm(): {name} should contain {C} elements (the input's "
                             f"channel count, dim 1 of {tuple(input.shape)}), not "
                             f"{t.numel()}")
        if t is not None:
            _same_dtype("batch_norm", input, t, name)
    if training and input.numel() // C <= 1:
        raise ShapeError(f"batch_norm(): expected more than 1 value per channel when training, "
                         f"got input size {list(input.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm(): running_mean and running_var are needed in eval mode")


def _check_p(fn, p):
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn}(): dropout probability has to be between 0 and 1, but got {p}")


def _dropout_mask(shape, p, dtype):
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    keep = random.default_generator.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) / dtype.type(1.0 - p)


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    _check_tensor("dropout", "input", input)
    _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    mask = _dropout_mask(input.shape, p, input.dtype)
    if inplace:
        return input.mul_(Tensor._wrap(mask))
    return N.Dropout.apply(input, mask)


def dropout2d(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero whole channels: one draw per (sample, channel) of a (N, C, H, W) input.

    On a 2-D input (N, C) torch drops single features, like :func:`dropout`, and warns; so does
    tinyconv. On a 3-D input (N, C, L) whole rows of length L are dropped, as torch does.
    """
    _check_tensor("dropout2d", "input", input)
    _check_p("dropout2d", p)
    if input.ndim not in (2, 3, 4):
        raise ShapeError(f"dropout2d(): expected a 2-D, 3-D or 4-D input, got shape "
                         f"{tuple(input.shape)}")
    if input.ndim == 2:
        warnings.warn("dropout2d: Received a 2-D input to dropout2d, which is deprecated in "
                      "torch; it drops single features like dropout. Use dropout instead.",
                      stacklevel=2)
    if not training or p == 0.0:
        return input
    noise = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    mask = _dropout_mask(noise, p, input.dtype)
    if inplace:
        return input.mul_(Tensor._wrap(mask))
    return N.Dropout.apply(input, mask)


def relu(input, inplace=False):  # noqa: A002
    """max(input, 0); with ``inplace=True`` the input tensor itself is changed and returned."""
    _check_tensor("relu", "input", input)
    if inplace:
        return input.relu_()
    return E.ReLU.apply(input)


def sigmoid(input):  # noqa: A002
    return E.Sigmoid.apply(input)


def tanh(input):  # noqa: A002
    return E.Tanh.apply(input)


def linear(input, weight, bias=None):  # noqa: A002
    """y = x @ W^T + b for x (..., in_features), W (out_features, in_features)."""
    _check_tensor("linear", "input", input)
    _check_tensor("linear", "weight", weight)
    _check_float("linear", "input", input)
    _same_dtype("linear", input, weight, "weight")
    _same_dtype("linear", input, bias, "bias")
    if input.ndim == 0 or weight.ndim != 2:
        raise ShapeError(f"linear(): expected an input of at least 1 dimension and a 2-D weight "
                         f"(out_features, in_features), got input shape {tuple(input.shape)} "
                         f"and weight shape {tuple(weight.shape)}")
    if input.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear(): input of shape {tuple(input.shape)} has {input.shape[-1]} features in "
            f"its last dimension, but the weight {tuple(weight.shape)} expects "
            f"in_features={weight.shape[1]}")
    return MM.Linear.apply(input, weight, bias)


# ---------------------------------------------------------------------------------------------
# softmax and losses


def _softmax_dim(fn, x, dim):
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {fn} has been deprecated. Change the call "
                      f"to include dim=X as an argument.", stacklevel=3)
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return x._axis(dim)


def softmax(input, dim=None, dtype=None):  # noqa: A002
    x = input if dtype is None else input.to(dtype)
    _check_float("softmax", "input", x)
    return L.Softmax.apply(x, _softmax_dim("softmax", x, dim))


def log_softmax(input, dim=None, dtype=None):  # noqa: A002
    x = input if dtype is None else input.to(dtype)
    _check_float("log_softmax", "input", x)
    return L.LogSoftmax.apply(x, _softmax_dim("log_softmax", x, dim))


def _check_reduction(fn, reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{fn}(): reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_class_targets(fn, input, target, ignore_index, weight):  # noqa: A002
    """Class-index targets for input (N, C, ...) or (C,): (the index array, C), or a clear error."""
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise DTypeError(f"{fn}(): target must hold class indices of an integer dtype "
                         f"(int64), got dtype {t.dtype}; convert with .long()")
    expected = (input.shape[0],) + tuple(input.shape[2:]) if input.ndim > 1 else ()
    if input.ndim < 1 or t.shape != expected:
        raise ShapeError(f"{fn}(): expected target of shape {expected} for input of shape "
                         f"{tuple(input.shape)}, got {t.shape}")
    n_classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"{fn}(): target {int(t[bad].flat[0])} is out of bounds for "
                         f"{n_classes} classes (valid targets are 0..{n_classes - 1})")
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise ShapeError(f"{fn}(): weight must have one entry per class ({n_classes},), "
                         f"got {tuple(weight.shape)}")
    return t, n_classes


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100,  # noqa: A002
             reduce=None, reduction="mean"):
    """Negative log-likelihood of class indices under log-probabilities (N, C) or (N, C, ...)."""
    _check_tensor("nll_loss", "input", input)
    _check_reduction("nll_loss", reduction)
    if size_average is not None or reduce is not None:
        raise NotImplementedError("nll_loss(): size_average and reduce are deprecated in torch; "
                                  "use reduction='mean'|'sum'|'none'")
    t, n_classes = _check_class_targets("nll_loss", input, target, ignore_index, weight)
    w = weight._data if weight is not None else None
    if input.ndim == 1:  # a single unbatched sample
        return L.NLLLoss.apply(input.unsqueeze(0), t.reshape(1).astype(np.int64), w,
                               ignore_index, reduction).reshape(())
    if input.ndim > 2:  # (N, C, d1, ...) -> (N*d1*..., C), target likewise
        moved = input.permute(0, *range(2, input.ndim), 1)
        out = L.NLLLoss.apply(moved.reshape(-1, n_classes), t.reshape(-1).astype(np.int64), w,
                              ignore_index, reduction)
        return out.reshape(t.shape) if reduction == "none" else out
    return L.NLLLoss.apply(input, t.astype(np.int64, copy=False), w, ignore_index, reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,  # noqa: A002
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of logits (N, C) against class indices (N,) or probabilities (N, C).

    Computed as nll_loss(log_softmax(input, 1)), which subtracts the row maximum first, so large
    logits never overflow.
    """
    _check_tensor("cross_entropy", "input", input)
    _check_float("cross_entropy", "input", input)
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy(): label_smoothing must be between 0.0 and 1.0, got "
                         f"{label_smoothing}")
    class_dim = 1 if input.ndim > 1 else 0
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    if t.dtype.kind == "f":
        if tuple(t.shape) != tuple(input.shape):
            raise DTypeError(
                f"cross_entropy(): target must hold class indices (int64) of shape "
                f"{(input.shape[0],) + tuple(input.shape[2:]) if input.ndim > 1 else ()}, or "
                f"class probabilities of the input's shape {tuple(input.shape)}; got a "
                f"{t.dtype} target of shape {tuple(t.shape)}. Convert indices with .long()")
        if weight is not None or label_smoothing:
            raise NotImplementedError("cross_entropy(): probability targets with weight or "
                                      "label_smoothing are not supported by tinyconv")
        losses = -(t * log_softmax(input, class_dim)).sum(dim=class_dim)
        return _reduce(losses, reduction)
    _check_class_targets("cross_entropy", input, t, ignore_index, weight)
    logp = log_softmax(input, class_dim)
    loss = nll_loss(logp, t, weight=weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing:
        if weight is not None:
            raise NotImplementedError("cross_entropy(): label_smoothing together with weight "
                                      "is not supported by tinyconv")
        n_classes = input.shape[class_dim]
        keep = Tensor._wrap((t._data != ignore_index).astype(input.dtype))
        smooth = -logp.sum(dim=class_dim) / n_classes * keep  # uniform-target cross-entropy
        if reduction == "mean":
            smooth = smooth.sum() / keep.sum()
        else:
            smooth = _reduce(smooth, reduction)
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing
    return loss


def _reduce(losses, reduction):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def flatten(input, start_dim=0, end_dim=-1):  # noqa: A002
    return input.flatten(start_dim, end_dim)
