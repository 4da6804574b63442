"""Adam and AdamW, as torch.optim.Adam / AdamW (single-tensor CPU path, same order of operations).

At step t, for parameter p with gradient g::

    g  = g + wd * p                                  (Adam's L2 weight decay, if wd != 0)
    p  = p * (1 - lr * wd)                           (AdamW's decoupled decay instead)
    m  = m + (1 - beta1) * (g - m)                   (= beta1 * m + (1 - beta1) * g)
    v  = beta2 * v + (1 - beta2) * g * g
    p  = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

With ``amsgrad`` the largest v seen so far replaces v in the last line. ``Adam(...,
decoupled_weight_decay=True)`` is AdamW, as in torch.
"""

from __future__ import annotations

import numpy as np

from tinyconv.kernels.optim import adam_update, adam_update_reference
from tinyconv.optim.optimizer import Optimizer, check_range


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        check_range("eps", group["eps"], 0.0, what="epsilon value")
        for i, beta in enumerate(group["betas"]):
            check_range(f"betas[{i}]", beta, 0.0, 1.0, high_open=True,
                        what=f"beta parameter at index {i}")

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group, p, g in self._params_with_grad():
            lr, (beta1, beta2), eps, wd = (group["lr"], group["betas"], group["eps"],
                                           group["weight_decay"])
            if group["maximize"]:
                g = -g
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0.0
                state["exp_avg"] = np.zeros_like(p._data)
                state["exp_avg_sq"] = np.zeros_like(p._data)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = np.zeros_like(p._data)
            state["step"] += 1
            t = state["step"]
            dt = p._data.dtype.type  # scalars in the parameter's precision, as torch does
            l2 = 0.0
            if wd != 0:
                if group.get("decoupled_weight_decay", False):
                    p._data *= dt(1 - lr * wd)
                else:
                    l2 = wd
            step_size = lr / (1 - beta1 ** t)
            bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
            args = (p._data, g, state["exp_avg"], state["exp_avg_sq"],
                    state.get("max_exp_avg_sq"), dt(l2), dt(1 - beta1), dt(beta2),
                    dt(1 - beta2), dt(-step_size), dt(bias_correction2_sqrt), dt(eps))
            if all(a.flags.c_contiguous and a.dtype == p._data.dtype
                   for a in args[:4] if a is not None):
                adam_update(*args)  # one fused pass over memory
            else:
                adam_update_reference(*args)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as torch)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
