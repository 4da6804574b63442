"""Adagrad, as torch.optim.Adagrad (single-tensor CPU path, same order of operations).

At step t, for parameter p with gradient g, weight decay wd (Duchi et al. 2011)::

    g   = g + wd * p                                   (if wd != 0)
    clr = lr / (1 + (t - 1) * lr_decay)
    s   = s + g * g                                    (the sum of all squared gradients)
    p   = p - clr * g / (sqrt(s) + eps)

s is ``sum`` in the state and starts at ``initial_accumulator_value``. As in torch, the state of
every parameter is created by the constructor, not by the first step. Each coordinate's step
shrinks as its squared gradients pile up, so rarely-updated coordinates keep larger steps.
"""

from __future__ import annotations

import numpy as np

from tinyconv.optim.optimizer import Optimizer, check_range


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(group, p)

    def _init_state(self, group, p):
        state = self.state.setdefault(p, {})
        if not state:
            state["step"] = 0.0
            state["sum"] = np.full_like(p._data, group["initial_accumulator_value"])
        return state

    def _check_group(self, group):
        super()._check_group(group)
        check_range("lr_decay", group["lr_decay"], 0.0)
        check_range("initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        check_range("eps", group["eps"], 0.0, what="epsilon value")

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group, p, g in self._params_with_grad():
            state = self._init_state(group, p)  # a group added later starts here
            state["step"] += 1
            t = state["step"]
            if group["maximize"]:
                g = -g
            if group["weight_decay"] != 0:
                g = g + group["weight_decay"] * p._data
            clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
            state["sum"] += g * g
            std = np.sqrt(state["sum"]) + group["eps"]
            p._data += -clr * g / std
        return loss
