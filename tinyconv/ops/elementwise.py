"""Elementwise operations with broadcasting.

Each Function returns the gradient for the *broadcast* shape; `autograd.unbroadcast` sums it
back to each input's own shape. Derivatives, with y the output and gy = dL/dy:

    add:  y = a + b      ga = gy            gb = gy
    sub:  y = a - b      ga = gy            gb = -gy
    mul:  y = a * b      ga = gy * b        gb = gy * a
    div:  y = a / b      ga = gy / b        gb = -gy * a / b**2
    pow:  y = a ** b     ga = gy * b * a**(b-1)     gb = gy * y * log(a)
    exp:  y = e**a       ga = gy * y
    log:  y = ln a       ga = gy / a
    relu: y = max(a, 0)  ga = gy where not y <= 0, else 0   (0 at a = 0; a NaN unit passes gy,
                                                             as torch; see kernels/activation.py)
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import ArrayFunction
from tinyconv.kernels.activation import relu_backward, relu_forward


class Add(ArrayFunction):
    @staticmethod
    def forward(ctx, a, b):
        return np.add(a, b)

    @staticmethod
    def backward(ctx, gy):
        return gy, gy


class Sub(ArrayFunction):
    @staticmethod
    def forward(ctx, a, b):
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx, gy):
        return gy, (-gy if ctx.needs_input_grad[1] else None)


class Mul(ArrayFunction):
    @staticmethod
    def forward(ctx, a, b):
        need = ctx.needs_input_grad  # keep only what backward will read (as torch does)
        ctx.save_for_backward(a if need[1] else None, b if need[0] else None)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = gy * b if ctx.needs_input_grad[0] else None
        gb = gy * a if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(ArrayFunction):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        return np.true_divide(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = gy / b if ctx.needs_input_grad[0] else None
        gb = -gy * a / (b * b) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        return np.negative(a)

    @staticmethod
    def backward(ctx, gy):
        return -gy


class Pow(ArrayFunction):
    @staticmethod
    def forward(ctx, a, b):
        y = np.power(a, b)
        ctx.save_for_backward(a, b, y if ctx.needs_input_grad[1] else None)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        ga = gy * b * np.power(a, b - 1) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            # NOTE: like torch, d(a**b)/db is taken as 0 where a == 0 (log would be -inf).
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = np.where(a > 0, gy * y * np.log(np.where(a > 0, a, 1)), 0)
        return ga, gb


class Exp(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        y = np.exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y


class Log(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return gy / a


class Sqrt(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        y = np.sqrt(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy / (2 * y)


class Abs(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, gy):
        (a,) = ctx.saved_tensors
        return gy * np.sign(a)


class Maximum(ArrayFunction):
    """Elementwise max(a, b); like torch, a tie sends half the gradient to each input."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        share_a = (a > b) + 0.5 * (a == b)
        ga = gy * share_a if ctx.needs_input_grad[0] else None
        gb = gy * (1 - share_a) if ctx.needs_input_grad[1] else None
        return ga, gb


class ReLU(ArrayFunction):
    """y = max(x, 0); gx = gy where not y <= 0 (see tinyconv/kernels/activation.py)."""

    @staticmethod
    def forward(ctx, a):
        y = relu_forward(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        # NOTE: gradient 0 at a == 0, as in torch (y <= 0 there).
        return relu_backward(gy, y)


class Sigmoid(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        # Split by sign so that exp never overflows.
        e = np.exp(-np.abs(a))
        y = np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y * (1 - y)


class Tanh(ArrayFunction):
    @staticmethod
    def forward(ctx, a):
        y = np.tanh(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (1 - y * y)


class Cast(ArrayFunction):
    """Change of dtype; the gradient is cast back to the input's dtype."""

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.in_dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, gy):
        return gy.astype(ctx.in_dtype)


class Where(ArrayFunction):
    """where(cond, a, b): cond is a boolean array (not differentiable)."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, gy):
        (cond,) = ctx.saved_tensors
        zero = np.zeros((), dtype=gy.dtype)
        return None, np.where(cond, gy, zero), np.where(cond, zero, gy)
