"""Optimizers and learning-rate schedulers (``tinyconv.optim``), as ``torch.optim``."""

from tinyconv.optim import lr_scheduler
from tinyconv.optim.adam import Adam, AdamW
from tinyconv.optim.optimizer import Optimizer
from tinyconv.optim.sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "SGD", "lr_scheduler"]
