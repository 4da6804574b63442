"""Learning-rate schedulers, as torch.optim.lr_scheduler (the same recursive formulas).

A scheduler owns an optimizer and rewrites ``group["lr"]`` of every parameter group each time
``step()`` is called (once per epoch, or once per batch for OneCycleLR), after
``optimizer.step()``. ``last_epoch`` counts the calls; the constructor makes the first one
(epoch 0). With base_lr the group's ``initial_lr`` and t = last_epoch::

    LambdaLR:          lr_t = base_lr * lr_lambda(t)
    MultiplicativeLR:  lr_t = lr_{t-1} * lr_lambda(t)
    StepLR:            lr_t = lr_{t-1} * gamma  when t is a positive multiple of step_size
    MultiStepLR:       lr_t = lr_{t-1} * gamma ** (how many times t appears in milestones)
    ExponentialLR:     lr_t = lr_{t-1} * gamma
    CosineAnnealingLR: lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2,
                       computed recursively from lr_{t-1} exactly as torch does
    ConstantLR:        lr_t = base_lr * factor for t < total_iters, then base_lr
    LinearLR:          lr_t = base_lr * (a factor going in a line from start_factor at t = 0
                       to end_factor at t = total_iters, then staying there)
    PolynomialLR:      lr_t = base_lr * (1 - min(t, total_iters) / total_iters) ** power
    CosineAnnealingWarmRestarts: the cosine of CosineAnnealingLR over T_cur / T_i, restarting
                       at base_lr every T_i epochs (T_i = T_0, then times T_mult each restart);
                       step(epoch) takes fractional epochs
    CyclicLR:          a triangle wave between base_lr and max_lr (its height scaled per cycle
                       or per step), stepped once per batch; momentum moves the opposite way
    OneCycleLR:        up from max_lr / div_factor to max_lr, then down to a tiny lr
                       (cosine or linear pieces; momentum moves the opposite way)
    ReduceLROnPlateau: lr = max(lr * factor, min_lr) when the metric given to step() has not
                       improved for more than ``patience`` steps
    SequentialLR:      other schedulers one after the other, switching at ``milestones``
    ChainedScheduler:  other schedulers all stepped at each step (their changes multiply)

The recursive forms (multiplying the current lr) are torch's: they compose with anything else
that changes ``group["lr"]``, and they round exactly as torch rounds, so the tests can ask for
the very same floats.

Where each lives: base.py (LRScheduler, the base class), epoch.py (the formulas of the epoch,
LambdaLR to CosineAnnealingLR, ConstantLR, LinearLR, PolynomialLR), cyclic.py (CyclicLR,
CosineAnnealingWarmRestarts), plateau.py (ReduceLROnPlateau), one_cycle.py (OneCycleLR),
composite.py (SequentialLR, ChainedScheduler).
"""

from tinyconv.optim.lr_scheduler.base import LRScheduler
from tinyconv.optim.lr_scheduler.composite import ChainedScheduler, SequentialLR
from tinyconv.optim.lr_scheduler.cyclic import CosineAnnealingWarmRestarts, CyclicLR
from tinyconv.optim.lr_scheduler.epoch import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from tinyconv.optim.lr_scheduler.one_cycle import OneCycleLR
from tinyconv.optim.lr_scheduler.plateau import ReduceLROnPlateau

__all__ = ["ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
           "CyclicLR", "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR",
           "MultiplicativeLR", "OneCycleLR", "PolynomialLR", "ReduceLROnPlateau",
           "SequentialLR", "StepLR"]
