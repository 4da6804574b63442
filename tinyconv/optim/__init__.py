"""Optimizers and learning-rate schedulers (``tinyconv.optim``), as ``torch.optim``."""

from tinyconv.optim import lr_scheduler
from tinyconv.optim.adadelta import Adadelta
from tinyconv.optim.adagrad import Adagrad
from tinyconv.optim.adam import Adam, AdamW
from tinyconv.optim.optimizer import Optimizer
from tinyconv.optim.rmsprop import RMSprop
from tinyconv.optim.sgd import SGD

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD",
           "lr_scheduler"]
