"""torchvision's shape for tinyconv: ``import tinyconv.vision as torchvision`` ports a tutorial.

``datasets``, ``transforms``, ``models`` and ``utils`` have torchvision's names and arguments;
they share one implementation with ``tinyconv.data`` (the readers and the batch transforms).
"""

from tinyconv.vision import datasets, models, transforms, utils  # noqa: F401

__all__ = ["datasets", "models", "transforms", "utils"]
