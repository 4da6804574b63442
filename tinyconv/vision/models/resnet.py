"""ResNet-18 and ResNet-34 (He et al., 2015), torchvision's modules, names and initialisation.

A residual block learns a correction F(x) to its input instead of a whole new mapping::

    y = relu(F(x) + shortcut(x)),   F = bn2(conv2(relu(bn1(conv1(x)))))

``shortcut`` is the identity, or, where the block halves the resolution (stride 2) or changes the
channel count, a 1x1 stride-2 convolution and a batch norm (``downsample``) so that the two
terms have the same shape. In backward the sum sends its gradient to both terms unchanged, so
every block passes a clean copy of the gradient to the blocks before it; that is why such deep
networks train.

The network (for a 224x224 input; any size >= 32 works, the average pooling adapts)::

    conv1 7x7/2 (64) -> bn1 -> relu -> maxpool 3x3/2     (64, 56, 56)
    layer1: BasicBlock x n1, 64 channels                 (64, 56, 56)
    layer2: BasicBlock x n2, 128 channels, first /2      (128, 28, 28)
    layer3: BasicBlock x n3, 256 channels, first /2      (256, 14, 14)
    layer4: BasicBlock x n4, 512 channels, first /2      (512, 7, 7)
    avgpool to 1x1 -> flatten -> fc (512 -> num_classes)

ResNet-18 has (n1..n4) = (2, 2, 2, 2), ResNet-34 (3, 4, 6, 3). Module and parameter names are
torchvision's, so its ``state_dict`` (and its published ImageNet weights) load key for key.
"""

from __future__ import annotations

import warnings
from functools import partial

from tinyconv import nn
from tinyconv.vision.models._api import ImageClassification, Weights, WeightsEnum

__all__ = ["ResNet", "BasicBlock", "ResNet18_Weights", "ResNet34_Weights", "resnet18",
           "resnet34"]


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution with padding 1 (no bias: a batch norm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution (the shortcut's projection)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        # conv1 (and the downsample branch) halve the resolution when stride is 2
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        # x is used twice (here and by conv1): autograd adds the two gradients that reach it.
        # `+=` and ReLU(inplace=True) write into out, as in torch; the graph records them, and
        # the gradient of an addition passes to both terms unchanged.
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """torchvision.models.ResNet for BasicBlock networks (ResNet-18 and ResNet-34)."""

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1,
                 width_per_group=64, replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must give the number of blocks of the 4 stages, "
                             f"got {layers!r}")

        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            # each element says whether to replace the stage's stride 2 by a dilation
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation should be None or a 3-element tuple, "
                             f"got {replace_stride_with_dilation}")
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2,
                                       dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2,
                                       dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2,
                                       dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # He initialisation for the convolutions: N(0, 2 / fan_out), fan_out = out_ch * kh * kw
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

        # Zero the last batch norm of each residual branch: every block then starts as the
        # identity (https://arxiv.org/abs/1706.02677 reports +0.2-0.3% from it).
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )

        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        previous_dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width, dilation=self.dilation,
                                norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def _forward_impl(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)

        x = self.avgpool(x)
        x = x.flatten(1)
        x = self.fc(x)
        return x

    def forward(self, x):
        return self._forward_impl(x)


# ---------------------------------------------------------------------------------------------
# published weights


_COMMON_META = {
    "min_size": (1, 1),
    "num_categories": 1000,
}


class ResNet18_Weights(WeightsEnum):  # noqa: N801 - torchvision's name
    IMAGENET1K_V1 = Weights(
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        transforms=partial(ImageClassification, crop_size=224),
        meta={**_COMMON_META, "num_params": 11689512,
              "_metrics": {"ImageNet-1K": {"acc@1": 69.758, "acc@5": 89.078}}},
    )
    DEFAULT = IMAGENET1K_V1


class ResNet34_Weights(WeightsEnum):  # noqa: N801 - torchvision's name
    IMAGENET1K_V1 = Weights(
        url="https://download.pytorch.org/models/resnet34-b627a593.pth",
        transforms=partial(ImageClassification, crop_size=224),
        meta={**_COMMON_META, "num_params": 21797672,
              "_metrics": {"ImageNet-1K": {"acc@1": 73.314, "acc@5": 91.42}}},
    )
    DEFAULT = IMAGENET1K_V1


def _legacy_weights(fn_name, weights, kwargs, default):
    """torchvision's old ``pretrained=True|False`` keyword, mapped to ``weights``."""
    if "pretrained" not in kwargs:
        return weights
    pretrained = kwargs.pop("pretrained")
    if weights is not None:
        raise ValueError(f"{fn_name}(): pass weights= or the deprecated pretrained=, not both")
    warnings.warn(f"{fn_name}(): the parameter 'pretrained' is deprecated, use 'weights' "
                  f"instead (weights={default!r} for pretrained=True)", UserWarning,
                  stacklevel=3)
    return default if pretrained else None


def _resnet(block, layers, weights, progress, **kwargs):
    if weights is not None:
        classes = weights.meta["num_categories"]
        if kwargs.get("num_classes", classes) != classes:
            raise ValueError(f"The parameter 'num_classes' expected value {classes} but got "
                             f"{kwargs['num_classes']} instead (pretrained weights have "
                             f"{classes} classes; replace model.fc afterwards)")
        kwargs["num_classes"] = classes
    model = ResNet(block, layers, **kwargs)
    if weights is not None:
        model.load_state_dict(weights.get_state_dict(progress=progress, check_hash=True))
    return model


def resnet18(*, weights=None, progress=True, **kwargs):
    """ResNet-18; ``weights=ResNet18_Weights.DEFAULT`` loads torchvision's ImageNet weights
    (downloaded once into the cache, see tinyconv/vision/models/_api.py)."""
    weights = ResNet18_Weights.verify(
        _legacy_weights("resnet18", weights, kwargs, ResNet18_Weights.IMAGENET1K_V1))
    return _resnet(BasicBlock, [2, 2, 2, 2], weights, progress, **kwargs)


def resnet34(*, weights=None, progress=True, **kwargs):
    """ResNet-34; ``weights=ResNet34_Weights.DEFAULT`` loads torchvision's ImageNet weights."""
    weights = ResNet34_Weights.verify(
        _legacy_weights("resnet34", weights, kwargs, ResNet34_Weights.IMAGENET1K_V1))
    return _resnet(BasicBlock, [3, 4, 6, 3], weights, progress, **kwargs)
