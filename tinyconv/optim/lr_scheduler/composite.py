"""Schedulers made of other schedulers: SequentialLR (one after the other, switching at
milestones) and ChainedScheduler (all of them at every step, their factors multiplying).

Both hold their schedulers in ``_schedulers`` and save them in their state_dict as a list of the
schedulers' own state_dicts (torch's layout).
"""

from __future__ import annotations

import numbers
from bisect import bisect_right

from tinyconv.optim.lr_scheduler.base import _TORCH_ONLY_KEYS, LRScheduler, _check_int
from tinyconv.optim.lr_scheduler.plateau import ReduceLROnPlateau
from tinyconv.optim.optimizer import Optimizer


def _check_schedulers(owner, schedulers, optimizer):
    """At least one scheduler, each an LRScheduler (not ReduceLROnPlateau: its step needs the
    metric) of ``optimizer``."""
    if isinstance(schedulers, LRScheduler) or not isinstance(schedulers, (list, tuple)):
        raise TypeError(f"{owner}: schedulers must be a list of schedulers, got "
                        f"{type(schedulers).__name__}")
    if len(schedulers) < 1:
        raise ValueError(f"{owner} expects at least one scheduler, but got no scheduler")
    for i, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"{owner}: schedulers[{i}] should be a learning-rate scheduler, got "
                            f"{type(scheduler).__name__}")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(f"{owner} does not support ReduceLROnPlateau (its step() needs the "
                             f"metric), but got one at schedulers[{i}]")
        if scheduler.optimizer is not optimizer:
            raise ValueError(f"{owner} expects all schedulers to belong to the same optimizer, "
                             f"but schedulers[{i}] ({type(scheduler).__name__}) is attached to "
                             f"another {type(scheduler.optimizer).__name__} optimizer")


class _Composite(LRScheduler):
    """state_dict / load_state_dict with the inner schedulers' states as a list."""

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state_dict = {k: v for k, v in state_dict.items() if k not in _TORCH_ONLY_KEYS}
        saved = state_dict.pop("_schedulers", None)
        if saved is None or len(saved) != len(self._schedulers):
            got = "none" if saved is None else len(saved)
            raise ValueError(f"{type(self).__name__}.load_state_dict(): expected the states of "
                             f"{len(self._schedulers)} schedulers in '_schedulers', got {got}")
        unknown = set(state_dict) - set(self.__dict__)
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict(): unexpected keys "
                             f"{sorted(unknown)}")
        self.__dict__.update(state_dict)
        for scheduler, state in zip(self._schedulers, saved, strict=True):
            scheduler.load_state_dict(state)


class SequentialLR(_Composite):
    """Run ``schedulers[0]`` until epoch ``milestones[0]``, then ``schedulers[1]`` (restarted at
    its epoch 0) until ``milestones[1]``, and so on: e.g. a LinearLR warm-up, then a cosine.

    The schedulers were built before (each made its first step, changing the lr); SequentialLR
    puts every group's lr back to its ``initial_lr``, takes one off each scheduler's
    last_epoch, and makes the first step of schedulers[0] again. At a milestone, the next
    scheduler goes to its epoch 0 by its closed form where it has one (torch's ``_update_lr(0)``).
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        _check_schedulers("SequentialLR", schedulers, optimizer)
        milestones = list(milestones)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers: got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        for i, m in enumerate(milestones):
            if not isinstance(m, numbers.Integral) or isinstance(m, bool) or m < 1:
                raise ValueError(f"Invalid milestones[{i}]: expected an int >= 1, got {m!r}")
            if i > 0 and m <= milestones[i - 1]:
                raise ValueError(f"Invalid milestones: expected increasing epochs, got "
                                 f"{milestones}")
        _check_int("last_epoch", last_epoch, -1)
        self._schedulers = list(schedulers)
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # undo the schedulers' first steps
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def recursive_undo(self, sched=None):
        """Take one off the last_epoch of every scheduler inside (however deeply nested)."""
        sched = self if sched is None else sched
        if hasattr(sched, "_schedulers"):
            for inner in sched._schedulers:
                self.recursive_undo(inner)
        elif hasattr(sched, "last_epoch"):
            sched.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Call ``step()`` of every scheduler in turn at each step: their changes compose (e.g. a
    ConstantLR warm-up times an ExponentialLR decay). ``optimizer`` defaults to the first
    scheduler's.
    """

    def __init__(self, schedulers, optimizer=None):
        if optimizer is None and isinstance(schedulers, (list, tuple)) and schedulers:
            optimizer = getattr(schedulers[0], "optimizer", None)
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        _check_schedulers("ChainedScheduler", schedulers, optimizer)
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def step(self):
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
