"""Adam and AdamW, as torch.optim.Adam / AdamW (single-tensor CPU path, same order of operations).

At step t, for parameter p with gradient g::

    g  = g + wd * p                                  (Adam's L2 weight decay, if wd != 0)
    p  = p * (1 - lr * wd)                           (AdamW's decoupled decay instead)
    m  = m + (1 - beta1) * (g - m)                   (= beta1 * m + (1 - beta1) * g)
    v  = beta2 * v + (1 - beta2) * g * g
    p  = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

With ``amsgrad`` the largest v seen so far replaces v in the last line.
"""

from __future__ import annotations

import numpy as np

from tinyconv.kernels.optim import adam_update, adam_update_reference
from tinyconv.optim.optimizer import Optimizer


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps} (expected >= 0)")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b} (expected [0, 1))")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

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
                if self._decoupled:
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

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
