"""PyTorch's "PyTorch: Defining New autograd Functions" tutorial (pytorch.org/tutorials/beginner/
examples_autograd/polynomial_custom_function), in our words with the same API calls: a
torch.autograd.Function subclass with static forward/backward, ctx.save_for_backward and
ctx.saved_tensors, applied through .apply, and a hand-written gradient-descent loop.

Deterministic (no random numbers), so both frameworks should reach the same loss.
"""

import math
import os

import torch

STEPS = int(os.environ.get("PORTS_EPOCHS", 2000))


class LegendrePolynomial3(torch.autograd.Function):
    """P3(x) = 1/2 (5x^3 - 3x), the Legendre polynomial of degree three, with its own
    derivative P3'(x) = 3/2 (5x^2 - 1)."""

    @staticmethod
    def forward(ctx, input):
        """The forward pass gets a context object and the input tensor; what the backward pass
        needs is stored with ctx.save_for_backward."""
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        """The gradient of the loss with respect to the output comes in; the gradient with
        respect to the input goes out."""
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


dtype = torch.float
device = torch.device("cpu")

# Fit y = sin(x) on [-pi, pi] with y = a + b * P3(c + d * x).
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)

# The weights start not too far from the answer, so that the loop converges.
a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)

learning_rate = 5e-6
for t in range(STEPS):
    P3 = LegendrePolynomial3.apply

    y_pred = a + b * P3(c + d * x)

    loss = (y_pred - y).pow(2).sum()
    if t % 100 == 99:
        print(t, loss.item())

    loss.backward()

    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad

        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None

print(f'Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)')
print(f"RESULT loss={loss.item():.6f}")
