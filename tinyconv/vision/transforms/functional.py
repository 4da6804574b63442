"""``torchvision.transforms.functional`` for tinyconv: the transforms as plain functions.

Each takes an image (NumPy ``(H, W)`` / ``(H, W, C)`` or a PIL image) or a Tensor
``(..., C, H, W)`` and returns the same kind, with the numbers of the matching class in
``tinyconv.vision.transforms`` (see its docstring). Nothing here is random: use these to apply
the same flip or crop to an image and its mask, drawing the parameters yourself.
"""

import numbers

import numpy as np

from tinyconv.data import transforms as batch_ops
from tinyconv.tensor import Tensor
from tinyconv.vision import transforms as T

__all__ = [
    "center_crop", "crop", "get_dimensions", "hflip", "normalize", "pad", "resize",
    "resized_crop", "rgb_to_grayscale", "rotate", "to_tensor", "vflip",
]


def _run(img, owner, fn):
    """Apply ``fn(x, kind)`` to ``img`` seen as ``(..., C, H, W)``; return the same kind."""
    x, kind = T._to_chw(img, owner)
    out = T._from_chw(fn(x, kind), kind)
    if isinstance(img, Tensor) and img.ndim == 2 and out.shape[0] == 1:
        return out[0]
    return out


def get_dimensions(img):
    """``[channels, height, width]`` of an image or a tensor."""
    x, _ = T._to_chw(img, "get_dimensions")
    return [int(v) for v in x.shape[-3:]]


def to_tensor(pic):
    """An image -> float32 Tensor ``(C, H, W)``, uint8 divided by 255 (``ToTensor``)."""
    return T.ToTensor()(pic)


def normalize(tensor, mean, std, inplace=False):
    """``(x - mean[c]) / std[c]`` on a float Tensor (``Normalize``)."""
    return T.Normalize(mean, std, inplace=inplace)(tensor)


def hflip(img):
    """Mirror left-right."""
    return _run(img, "hflip", lambda x, kind: np.flip(x, -1))


def vflip(img):
    """Mirror top-bottom."""
    return _run(img, "vflip", lambda x, kind: np.flip(x, -2))


def crop(img, top, left, height, width):
    """The ``height`` x ``width`` window at ``(top, left)``; parts outside the image are 0."""
    def window(x, kind):
        h, w = x.shape[-2:]
        before_y, before_x = max(-top, 0), max(-left, 0)
        after_y, after_x = max(top + height - h, 0), max(left + width - w, 0)
        if before_y or before_x or after_y or after_x:
            x = batch_ops.pad(x, (before_x, before_y, after_x, after_y))
        y0, x0 = top + before_y, left + before_x
        return x[..., y0:y0 + height, x0:x0 + width]

    return _run(img, "crop", window)


def center_crop(img, output_size):
    """The central ``output_size`` window (``CenterCrop``)."""
    return T.CenterCrop(output_size)(img)


def resize(img, size, interpolation=T.InterpolationMode.BILINEAR, max_size=None,
           antialias=True):
    """Resize to ``size`` (``Resize``)."""
    return T.Resize(size, interpolation, max_size, antialias)(img)


def resized_crop(img, top, left, height, width, size,
                 interpolation=T.InterpolationMode.BILINEAR, antialias=True):
    """``crop`` then ``resize``, as ``RandomResizedCrop`` does with its window."""
    return resize(crop(img, top, left, height, width), size, interpolation,
                  antialias=antialias)


def pad(img, padding, fill=0, padding_mode="constant"):
    """Pad the borders (``Pad``)."""
    return T.Pad(padding, fill, padding_mode)(img)


def rotate(img, angle, interpolation=T.InterpolationMode.NEAREST, expand=False, center=None,
           fill=None):
    """Rotate counter-clockwise by ``angle`` degrees (``RandomRotation`` with a fixed angle)."""
    if not isinstance(angle, numbers.Number):
        raise TypeError(f"rotate: angle should be a number, got {type(angle).__name__}")
    T.RandomRotation(0, interpolation, expand, center)  # checks the options
    fill = 0 if fill is None else fill
    return _run(img, "rotate", lambda x, kind: batch_ops.rotate(
        x.reshape(-1, *x.shape[-3:]), float(angle), fill=fill).reshape(x.shape))


def rgb_to_grayscale(img, num_output_channels=1):
    """Colour to grey (``Grayscale``)."""
    return T.Grayscale(num_output_channels)(img)
