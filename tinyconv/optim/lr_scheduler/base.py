"""The base class of every learning-rate scheduler (``LRScheduler``) and the argument checks
the schedulers share.

``step()`` adds one to ``last_epoch`` and writes ``get_lr()`` into the optimizer's groups; a
subclass only says what the lr of the next step is (see tinyconv/optim/lr_scheduler/__init__.py
for each formula).
"""

from __future__ import annotations

import numbers
import warnings

from tinyconv.optim.optimizer import Optimizer

_EPOCH_DEPRECATED = ("The epoch parameter in scheduler.step() is deprecated (as in PyTorch): "
                     "call scheduler.step() without it")
# torch keeps this flag in its schedulers' __dict__; tinyconv has no use for it but accepts it
_TORCH_ONLY_KEYS = ("_get_lr_called_within_step",)


def _check_int(name, value, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"Invalid {name}: expected an int >= {low}, got {value!r}")


def _per_group(name, optimizer, value):
    """One value per parameter group: a list/tuple of that length, or a number repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have one value per parameter group: got "
                             f"{len(value)} values for {len(optimizer.param_groups)} groups")
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: ``step()`` adds one to ``last_epoch`` and writes ``get_lr()`` into the groups.

    ``last_epoch=-1`` starts a schedule (each group's current lr is stored as ``initial_lr``);
    another value resumes one, which needs ``initial_lr`` in the groups already (from an
    optimizer whose state_dict was saved with a scheduler attached).
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        _check_int("last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   f"when resuming a scheduler with last_epoch={last_epoch}: "
                                   f"load the optimizer's state_dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """The constructor's step: epoch 0 (or last_epoch + 1 when resuming)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """The learning rates for epoch ``self.last_epoch``, one per group."""
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rates the last ``step()`` wrote into the groups."""
        return self._last_lr

    def step(self, epoch=None):
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATED, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        """Go to the next epoch (or to ``epoch``, by the closed form where there is one) and
        write its learning rates into the groups. SequentialLR calls it with epoch 0 to restart
        a scheduler at its milestone, as torch does: no warning, and ``_step_count`` unchanged.
        """
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Every attribute but the optimizer (as torch)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        state_dict = {k: v for k, v in state_dict.items() if k not in _TORCH_ONLY_KEYS}
        unknown = set(state_dict) - set(self.__dict__)
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict(): unexpected keys "
                             f"{sorted(unknown)}")
        self.__dict__.update(state_dict)
