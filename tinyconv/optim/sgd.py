"""Stochastic gradient descent with momentum, as torch.optim.SGD.

For each parameter p with gradient g, learning rate lr, momentum mu, dampening d, weight decay wd::

    g = g + wd * p                         (if wd != 0)
    b = g                                   (first step)
    b = mu * b + (1 - d) * g                (later steps; if mu != 0)
    g = g + mu * b  if nesterov else  b     (if mu != 0)
    p = p - lr * g
"""

from __future__ import annotations

import math
import numbers

from tinyconv.optim.optimizer import Optimizer, check_range


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        momentum, dampening = group["momentum"], group["dampening"]
        check_range("momentum", momentum, 0.0)
        if not isinstance(dampening, numbers.Real) or not math.isfinite(dampening):
            raise ValueError(f"Invalid dampening value: dampening={dampening!r} "
                             f"(expected a finite number)")
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening, got "
                             f"momentum={momentum} and dampening={dampening}")

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group, p, g in self._params_with_grad():
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            if group["maximize"]:
                g = -g
            if wd != 0:
                g = g + wd * p._data
            if mu != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    buf *= mu
                    buf += (1 - group["dampening"]) * g
                g = g + mu * buf if group["nesterov"] else buf
            p._data -= lr * g
        return loss
