"""``torchvision.models`` for tinyconv: the tutorials' seed networks (and, to come, ResNets)."""

from tinyconv.models import CNN, VGG, ConvModule, DeepFashionCNN, FashionCNN, FC2Layer, LeNet  # noqa: F401

__all__ = ["CNN", "ConvModule", "DeepFashionCNN", "FC2Layer", "FashionCNN", "LeNet", "VGG"]
