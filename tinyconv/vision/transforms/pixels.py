"""The transforms that change pixel values, not their positions: ``ToTensor``,
``ConvertImageDtype``, ``Normalize`` and ``Grayscale``.
"""


import numpy as np

from tinyconv.data import transforms as batch_ops
from tinyconv.tensor import Tensor
from tinyconv.vision.transforms.base import IMAGE, TENSOR, _to_chw, _Transform


class ToTensor(_Transform):
    """An image ``(H, W)`` or ``(H, W, C)`` -> a float32 Tensor ``(C, H, W)`` in [0, 1].

    uint8 values are divided by 255 (a division, not a multiplication by 1/255, so the result
    equals torchvision's bit for bit); other dtypes keep their values and dtype, as torchvision.
    """

    def __call__(self, pic):
        if isinstance(pic, Tensor):
            raise TypeError("ToTensor: pic should be a NumPy image (H, W) or (H, W, C) or a PIL "
                            "Image, got a Tensor (it is already a tensor)")
        x, kind = _to_chw(pic, "ToTensor")
        return Tensor._wrap(self._batch(x, kind)[0])

    def _batch(self, x, kind):
        if x.dtype == np.uint8:
            return np.ascontiguousarray(x, dtype=np.float32) / np.float32(255), TENSOR
        return np.ascontiguousarray(x), TENSOR


class ConvertImageDtype(_Transform):
    """Convert a tensor image to ``dtype``, rescaling values as torchvision.

    uint8 -> float: divide by 255. float -> uint8: ``(x * (256 - 1e-3))`` truncated, so that
    [0, 1] spreads evenly over 0..255. float -> float: a plain cast. Other integer conversions
    are not supported.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in "fu" or (self.dtype.kind == "u" and self.dtype != np.uint8):
            raise ValueError(f"ConvertImageDtype: dtype must be a float dtype or uint8, got "
                             f"{self.dtype}")

    def _apply(self, x, kind):
        if kind == IMAGE:
            raise TypeError("ConvertImageDtype expects a Tensor (C, H, W); apply ToTensor() "
                            "first or use tinyconv.tensor(...)")
        if x.dtype == self.dtype:
            return x
        if x.dtype.kind == "f" and self.dtype.kind == "f":
            return x.astype(self.dtype)
        if x.dtype == np.uint8 and self.dtype.kind == "f":
            return x.astype(self.dtype) / self.dtype.type(255)
        if x.dtype.kind == "f" and self.dtype == np.uint8:
            eps = 1e-3
            return (x * (255 + 1.0 - eps)).astype(np.uint8)
        raise ValueError(f"ConvertImageDtype: converting {x.dtype} to {self.dtype} is not "
                         f"supported (supported: uint8 <-> float, float <-> float)")

    def __repr__(self):
        return f"{type(self).__name__}(dtype={self.dtype})"


class Normalize(_Transform):
    """``(x - mean[c]) / std[c]`` for every channel c of a float Tensor ``(..., C, H, W)``.

    Subtract, then divide, in the tensor's dtype: the numbers of torchvision's ``Normalize``.
    ``inplace=True`` writes the result into the input tensor and returns it.
    """

    def __init__(self, mean, std, inplace=False):
        self.mean = list(mean) if isinstance(mean, (list, tuple)) else mean
        self.std = list(std) if isinstance(std, (list, tuple)) else std
        self.inplace = inplace
        means, stds = np.atleast_1d(mean), np.atleast_1d(std)
        if means.ndim != 1 or stds.ndim != 1 or means.dtype.kind not in "iuf" \
                or stds.dtype.kind not in "iuf":
            raise ValueError(f"Normalize: mean and std must be numbers or sequences of numbers, "
                             f"got mean={mean!r}, std={std!r}")
        if (stds == 0).any():
            raise ValueError(f"Normalize: std evaluated to zero after conversion to float, "
                             f"leading to division by zero: std={std!r}")
        self._means, self._stds = means, stds

    def __call__(self, tensor):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Normalize: expected a Tensor (C, H, W) (apply ToTensor() first), "
                            f"got {type(tensor).__name__}")
        x = np.asarray(tensor)
        if x.ndim < 3:
            raise ValueError(f"Normalize: expected a tensor image of size (..., C, H, W), got "
                             f"shape {tuple(x.shape)}")
        out = self._apply(x, TENSOR)  # checks the dtype and the channel count
        if self.inplace:
            # Through the tensor's own in-place ops, as torchvision, so that autograd's
            # version counter sees the write.
            mean = Tensor._wrap(self._means.astype(x.dtype)[:, None, None])
            std = Tensor._wrap(self._stds.astype(x.dtype)[:, None, None])
            return tensor.sub_(mean).div_(std)
        return Tensor._wrap(out)

    def _apply(self, x, kind):
        if kind == IMAGE:
            raise TypeError("Normalize expects a Tensor (C, H, W); put ToTensor() before it")
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: input tensor should be a float tensor, got {x.dtype} "
                            f"(apply ToTensor() or ConvertImageDtype first)")
        channels = x.shape[-3]
        for name, values in (("mean", self._means), ("std", self._stds)):
            if len(values) not in (1, channels):
                raise ValueError(f"Normalize: {name} has {len(values)} values but the tensor "
                                 f"has {channels} channels")
        mean = self._means.astype(x.dtype)[:, None, None]
        std = self._stds.astype(x.dtype)[:, None, None]
        return (x - mean) / std

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Grayscale(_Transform):
    """Colour to grey, ``num_output_channels`` 1 or 3 (the grey repeated).

    Tensors: torchvision's ``0.2989 R + 0.587 G + 0.114 B`` cast to the input dtype (a
    one-channel tensor comes back unchanged even with ``num_output_channels=3``, as in
    torchvision). Images: PIL's ``convert("L")``, ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``.
    """

    def __init__(self, num_output_channels=1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels should be either 1 or 3, got "
                             f"{num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def _apply(self, x, kind):
        if x.shape[-3] not in (1, 3):
            raise ValueError(f"Grayscale: expected an image with 1 or 3 channels, got "
                             f"{x.shape[-3]}")
        if kind == IMAGE:
            return batch_ops.rgb_to_grayscale_pil(x, self.num_output_channels)
        return batch_ops.rgb_to_grayscale(x, self.num_output_channels)

    def __repr__(self):
        return f"{type(self).__name__}(num_output_channels={self.num_output_channels})"
