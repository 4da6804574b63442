"""``torchvision.models`` for tinyconv: the tutorials' seed networks and ResNet-18/34.

``resnet18(weights=ResNet18_Weights.DEFAULT)`` loads torchvision's published ImageNet weights
(see ``_api.py`` for the cache folder and the hash check).
"""

from tinyconv.models import CNN, VGG, ConvModule, DeepFashionCNN, FashionCNN, FC2Layer, LeNet  # noqa: F401
from tinyconv.vision.models._api import (  # noqa: F401
    Weights,
    WeightsEnum,
    WeightsError,
    load_state_dict_file,
    load_state_dict_from_url,
)
from tinyconv.vision.models.resnet import (  # noqa: F401
    BasicBlock,
    ResNet,
    ResNet18_Weights,
    ResNet34_Weights,
    resnet18,
    resnet34,
)

__all__ = ["CNN", "ConvModule", "DeepFashionCNN", "FC2Layer", "FashionCNN", "LeNet", "VGG",
           "BasicBlock", "ResNet", "ResNet18_Weights", "ResNet34_Weights", "Weights",
           "WeightsEnum", "WeightsError", "load_state_dict_file", "load_state_dict_from_url",
           "resnet18", "resnet34"]
