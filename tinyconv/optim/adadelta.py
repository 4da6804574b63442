"""Adadelta, as torch.optim.Adadelta (single-tensor CPU path, same order of operations).

For parameter p with gradient g, decay rho, weight decay wd (Zeiler 2012, "ADADELTA")::

    g     = g + wd * p                                        (if wd != 0)
    v     = rho * v + (1 - rho) * g * g                       (running mean of g^2)
    delta = sqrt(u + eps) / sqrt(v + eps) * g                 (the step, in units of p)
    u     = rho * u + (1 - rho) * delta * delta               (running mean of delta^2)
    p     = p - lr * delta

v is ``square_avg`` and u is ``acc_delta`` in the state, as in torch. The ratio of the two
root-mean-squares gives the step the units of p, so lr = 1.0 (the default) is the method as
published; lr only rescales it.
"""

from __future__ import annotations

import numpy as np

from tinyconv.optim.optimizer import Optimizer, check_range


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        check_range("rho", group["rho"], 0.0, 1.0)
        check_range("eps", group["eps"], 0.0, what="epsilon value")

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group, p, g in self._params_with_grad():
            lr, rho, eps, wd = group["lr"], group["rho"], group["eps"], group["weight_decay"]
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0.0
                state["square_avg"] = np.zeros_like(p._data)
                state["acc_delta"] = np.zeros_like(p._data)
            state["step"] += 1
            if group["maximize"]:
                g = -g
            if wd != 0:
                g = g + wd * p._data
            square_avg, acc_delta = state["square_avg"], state["acc_delta"]
            square_avg *= rho
            square_avg += (1 - rho) * g * g
            delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
            acc_delta *= rho
            acc_delta += (1 - rho) * delta * delta
            p._data += -lr * delta
        return loss
