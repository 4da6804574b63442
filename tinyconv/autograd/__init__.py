"""Reverse-mode automatic differentiation.

Two base classes describe a differentiable operation. Both have a static ``forward`` and a static
``backward`` side by side and are called through ``apply``; they differ in what they exchange.

:class:`ArrayFunction` (tinyconv's own ops, in ``tinyconv/ops``) works on NumPy arrays only, so
an op costs no more than its array algebra::

    class Mul(ArrayFunction):
        @staticmethod
        def forward(ctx, a, b):            # a, b: np.ndarray
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, gy):             # gy: dL/d(output), same shape as the output
            a, b = ctx.saved_tensors
            return gy * b, gy * a          # one gradient per input, None if not needed

:class:`Function` (``tinyconv.autograd.function``) is PyTorch's ``torch.autograd.Function``:
``forward`` and ``backward`` receive and return Tensors, so a custom op written for PyTorch runs
here with only its imports changed. It is built on the same engine: ``apply`` records one
:class:`Node` whichever base the op uses, and the engine calls ``Node.fn._run_backward``, which
for a ``Function`` wraps the incoming gradients in Tensors, calls the user's ``backward`` and
checks what it returns (one gradient per input, of the input's shape).

``Mul.apply(x, y)`` unwraps the Tensors, runs ``forward``, wraps the result in a Tensor and, when
any input requires a gradient, records a :class:`Node` (the Function class, its context and its
input Tensors) as the result's ``grad_fn``. ``Tensor.backward()`` walks those nodes in reverse
topological order and calls each ``backward`` exactly once, summing the gradients that reach a
tensor along several paths. ``backward`` runs with recording off: tinyconv has no double
backward (gradients of gradients), so :func:`gradcheck` exists but ``gradgradcheck`` does not.

Broadcasting is handled here once, not in every op: a gradient returned for an input that was
broadcast is summed back to the input's shape by :func:`unbroadcast`.

Where each piece lives: array_function.py (ArrayFunction), function.py (Function, PyTorch's),
graph.py (Context, Node), engine.py (backward, grad, unbroadcast), version.py (the version
counters that catch in-place changes), grad_mode.py (no_grad and friends), anomaly_mode.py
(detect_anomaly), gradcheck.py (gradcheck).
"""

from tinyconv.autograd.anomaly_mode import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from tinyconv.autograd.array_function import ArrayFunction
from tinyconv.autograd.engine import (
    _topological_order,  # noqa: F401 - used by docs/, viz
    backward,
    grad,
    unbroadcast,
)
from tinyconv.autograd.function import Function, FunctionCtx, once_differentiable
from tinyconv.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinyconv.autograd.gradcheck import GradcheckError, gradcheck
from tinyconv.autograd.graph import Context, Node
from tinyconv.autograd.version import VersionCounter

__all__ = [
    "ArrayFunction", "Context", "Function", "FunctionCtx", "GradcheckError", "Node",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "set_detect_anomaly",
    "detect_anomaly", "is_anomaly_enabled", "unbroadcast", "backward", "grad", "gradcheck",
    "once_differentiable", "VersionCounter",
]
