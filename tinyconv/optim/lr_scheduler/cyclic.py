"""The schedules that come back to where they started: CyclicLR (a triangle wave between two
learning rates, with the momentum moving the opposite way) and CosineAnnealingWarmRestarts (a
cosine decay that restarts, SGDR). Both are usually stepped once per batch.
"""

from __future__ import annotations

import math
import numbers
import types

from tinyconv.optim.lr_scheduler.base import LRScheduler, _check_int, _per_group
from tinyconv.optim.optimizer import Optimizer, check_range

_MODES = ("triangular", "triangular2", "exp_range")


class CyclicLR(LRScheduler):
    """Cyclical learning rates (Smith 2017): up from ``base_lr`` to ``max_lr`` in
    ``step_size_up`` steps, back down in ``step_size_down`` (default: the same), again and again.

    With t = last_epoch, T = step_size_up + step_size_down and r = step_size_up / T::

        cycle = floor(1 + t / T)                         (the cycles count from 1)
        x     = 1 + t / T - cycle                        (where we are in it, 0 <= x < 1)
        h     = x / r  if x <= r  else  (x - 1) / (r - 1)      (0 -> 1 -> 0)
        lr    = base_lr + (max_lr - base_lr) * h * scale

    ``scale`` is 1 ('triangular'), 1 / 2 ** (cycle - 1) ('triangular2': the height halves each
    cycle), gamma ** t ('exp_range'), or ``scale_fn`` of the cycle or of t (``scale_mode``).
    With ``cycle_momentum`` the momentum (SGD's and RMSprop's ``momentum``, Adam's beta1) goes
    the other way: max_momentum - (max_momentum - base_momentum) * h * scale.

    The constructor sets each group's lr to ``base_lr`` (and its momentum to max_momentum).
    ``state_dict`` keeps ``scale_fn`` as torch does: a plain function as None, a callable
    object as a copy of its ``__dict__``.
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle",
                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        _check_int("last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)
        for name, values in (("base_lr", base_lrs), ("max_lr", self.max_lrs)):
            for value in values:
                check_range(name, value, 0.0)
        check_range("step_size_up", step_size_up, 0.0, low_open=True)
        if step_size_down is not None:
            check_range("step_size_down", step_size_down, 0.0)
        if scale_fn is None and mode not in _MODES:
            raise ValueError(f"Invalid mode: expected one of {', '.join(map(repr, _MODES))} "
                             f"(or a scale_fn), got {mode!r}")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn should be a function, but got {type(scale_fn).__name__}")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"Invalid scale_mode: expected 'cycle' or 'iterations', got "
                             f"{scale_mode!r}")
        check_range("gamma", gamma, 0.0, low_open=True)
        if last_epoch == -1:
            for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = lr
        step_size_up = float(step_size_up)
        step_size_down = step_size_up if step_size_down is None else float(step_size_down)
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        self.mode, self.gamma = mode, gamma
        self._scale_fn_custom = scale_fn
        # the built-in modes say what they scale by (torch overrides scale_mode the same way)
        self.scale_mode = scale_mode if scale_fn is not None else (
            "iterations" if mode == "exp_range" else "cycle")

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"optimizer must support momentum or beta1 with "
                                 f"`cycle_momentum` option enabled ({type(optimizer).__name__} "
                                 f"has neither): pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            top = (1.0, True) if self.use_beta1 else (None, False)  # beta1 must stay below 1
            for name, values in (("base_momentum", self.base_momentums),
                                 ("max_momentum", self.max_momentums)):
                for value in values:
                    check_range(name, value, 0.0, top[0], high_open=top[1])
            if last_epoch == -1:
                for group, m_max, m_base in zip(optimizer.param_groups, self.max_momentums,
                                                self.base_momentums, strict=True):
                    self._set_momentum(group, m_max)
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)
        # as torch: the first step used the groups' initial_lr, later ones use base_lr
        self.base_lrs = base_lrs

    def scale_fn(self, x):
        """The height of the cycle at x (the cycle number, or the step: ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x  # exp_range

    def _set_momentum(self, group, momentum):
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            height = x / self.step_ratio
        else:
            height = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base_lr + (max_lr - base_lr) * height * scale
               for base_lr, max_lr in zip(self.base_lrs, self.max_lrs, strict=True)]
        if self.cycle_momentum:
            for group, m_base, m_max in zip(self.optimizer.param_groups, self.base_momentums,
                                            self.max_momentums, strict=True):
                self._set_momentum(group, m_max - (m_max - m_base) * height * scale)
        return lrs

    def state_dict(self):
        state = super().state_dict()
        fn = state.pop("_scale_fn_custom")
        state["_scale_fn_custom"] = (None if fn is None or isinstance(fn, types.FunctionType)
                                     else fn.__dict__.copy())
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        saved_fn = state_dict.pop("_scale_fn_custom", None)
        super().load_state_dict(state_dict)
        if saved_fn is not None:
            if self._scale_fn_custom is None:
                raise ValueError("CyclicLR.load_state_dict(): the state_dict has the state of a "
                                 "scale_fn, this scheduler has no scale_fn")
            self._scale_fn_custom.__dict__.update(saved_fn)


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter 2016): a cosine from the initial lr down to ``eta_min`` over
    T_i epochs, then a restart at the initial lr; T_0 is the first period, each next one is
    ``T_mult`` times longer::

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    ``step()`` adds one to T_cur (restarting at T_i); ``step(epoch)`` goes to ``epoch``, which
    may be fractional (``scheduler.step(epoch + i / iters_per_epoch)`` once per batch), and
    finds T_cur and T_i from it. Unlike the other schedulers, step(epoch) is not deprecated.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):  # noqa: N803
        _check_int("T_0", T_0, 1)
        _check_int("T_mult", T_mult, 1)
        check_range("eta_min", eta_min, 0.0)
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch=None):
        # as torch, this step does not count _step_count (it stays 0)
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if (not isinstance(epoch, numbers.Real) or isinstance(epoch, bool)
                    or not math.isfinite(epoch) or epoch < 0):
                raise ValueError(f"Invalid epoch: expected a number >= 0, got {epoch!r}")
            self._go_to(epoch)
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _go_to(self, epoch):
        """T_cur and T_i at ``epoch``. With T_mult > 1 the restarts are at
        T_0 (T_mult ** n - 1) / (T_mult - 1), so n = floor(log_{T_mult}(epoch / T_0
        (T_mult - 1) + 1)) restarts have passed (computed as torch computes it)."""
        if epoch < self.T_0:
            self.T_i = self.T_0
            self.T_cur = epoch
        elif self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        else:
            n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult ** n
