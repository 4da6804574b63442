"""RMSprop, as torch.optim.RMSprop (single-tensor CPU path, same order of operations).

For parameter p with gradient g, smoothing constant alpha, momentum mu, weight decay wd::

    g   = g + wd * p                                    (if wd != 0)
    v   = alpha * v + (1 - alpha) * g * g               (running mean of g^2)
    m   = alpha * m + (1 - alpha) * g                   (centered only: running mean of g)
    avg = sqrt(v - m * m) + eps   if centered  else  sqrt(v) + eps
    b   = mu * b + g / avg;  p = p - lr * b             (if mu > 0)
    p   = p - lr * g / avg                              (if mu == 0)

v, m and b are ``square_avg``, ``grad_avg`` and ``momentum_buffer`` in the state, as in torch.
Centering divides by an estimate of the standard deviation of g instead of its root mean square.
"""

from __future__ import annotations

import numpy as np

from tinyconv.optim.optimizer import Optimizer, check_range


def lerp_(start, end, weight):
    """start += weight * (end - start), in place, rounded as torch.lerp rounds it.

    torch computes ``end - (end - start) * (1 - weight)`` when weight >= 0.5, which is the
    same number mathematically but exact at weight = 1.
    """
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        check_range("eps", group["eps"], 0.0, what="epsilon value")
        check_range("momentum", group["momentum"], 0.0)
        # torch checks only alpha >= 0; above 1 the "average" of g^2 can turn negative
        check_range("alpha", group["alpha"], 0.0, 1.0)

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group, p, g in self._params_with_grad():
            lr, alpha, eps, wd, mu = (group["lr"], group["alpha"], group["eps"],
                                      group["weight_decay"], group["momentum"])
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0.0
                state["square_avg"] = np.zeros_like(p._data)
                if mu > 0:
                    state["momentum_buffer"] = np.zeros_like(p._data)
                if group["centered"]:
                    state["grad_avg"] = np.zeros_like(p._data)
            state["step"] += 1
            if group["maximize"]:
                g = -g
            if wd != 0:
                g = g + wd * p._data
            square_avg = state["square_avg"]
            square_avg *= alpha
            square_avg += (1 - alpha) * g * g
            if group["centered"]:
                grad_avg = state["grad_avg"]
                lerp_(grad_avg, g, 1 - alpha)
                avg = np.sqrt(square_avg - grad_avg * grad_avg)
            else:
                avg = np.sqrt(square_avg)
            avg += eps
            if mu > 0:
                buf = state["momentum_buffer"]
                buf *= mu
                buf += g / avg
                p._data += -lr * buf
            else:
                p._data += -lr * g / avg
        return loss
