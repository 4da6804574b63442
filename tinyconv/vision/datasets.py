"""``torchvision.datasets`` for tinyconv (see ``tinyconv.data`` for the readers)."""

from tinyconv.data import CIFAR10, MNIST, FashionMNIST  # noqa: F401

__all__ = ["CIFAR10", "FashionMNIST", "MNIST"]
