"""The batch transform classes (``ToTensor``, ``Normalize``, ``RandomCrop``...), named after
torchvision's: each takes a whole batch, draws its random parameters independently for every
image, and calls the functional forms of functional.py.
"""

import numbers

import numpy as np

from tinyconv.data import _rng
from tinyconv.data.transforms.functional import (
    _as_batch,
    _size_pair,
    center_crop,
    crop,
    hflip,
    output_size,
    pad,
    resize,
    rgb_to_grayscale,
    rotate,
    vflip,
)


class Compose:
    """Apply transforms one after another: ``Compose([ToTensor(), Normalize(0.5, 0.5)])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"{type(self).__name__}([{inner}\n])"


class ToTensor:
    """uint8 images -> float32 channels-first arrays in [0, 1] (see the module docstring).

    ``(N, H, W)`` -> ``(N, 1, H, W)``, ``(N, H, W, C)`` -> ``(N, C, H, W)``,
    ``(H, W)`` -> ``(1, H, W)``. Non-uint8 input is converted to float32 without scaling, as
    torchvision does. Named after torchvision; it returns a NumPy array, the DataLoader's
    ``collate_fn`` makes the tensor.
    """

    def __call__(self, x):
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[None]
        elif x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"expected (H, W), (N, H, W) or (N, H, W, C), got shape {x.shape}")
        if x.dtype == np.uint8:
            # Divide (not multiply by 1/255) so the result equals torchvision's bit for bit.
            return np.ascontiguousarray(x, dtype=np.float32) / np.float32(255)
        return np.ascontiguousarray(x, dtype=np.float32)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel, on float ``(N, C, H, W)`` or ``(C, H, W)``.

    ``mean`` and ``std`` are numbers or sequences of length C (or 1). Computed in float32 as
    subtract-then-divide, which makes it match torchvision exactly.
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"mean and std must be numbers or flat sequences, got "
                             f"{mean!r} and {std!r}")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"mean and std must have the same length, got {len(self.mean)} "
                             f"and {len(self.std)}")
        if (self.std == 0).any():
            raise ValueError(f"std must be non-zero, got {std!r}")

    def __call__(self, x):
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"Normalize expects a float array (apply ToTensor first), "
                            f"got {x.dtype}")
        if x.ndim not in (3, 4):
            raise ValueError(f"expected (C, H, W) or (N, C, H, W), got shape {x.shape}")
        channels = x.shape[-3]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"{name} has {len(values)} values but the input has "
                                 f"{channels} channels")
        mean = self.mean.astype(x.dtype)[:, None, None]
        std = self.std.astype(x.dtype)[:, None, None]
        return (x - mean) / std

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean.tolist()}, std={self.std.tolist()})"


class _RandomFlip:
    """Mirror each image with probability ``p``, one coin per image; ``flip`` says which way."""

    @staticmethod
    def flip(batch, flags):
        raise NotImplementedError

    def __init__(self, p=0.5, generator=None):
        self.p = p
        self.generator = _rng.make_generator(generator)

    def __call__(self, x):
        batch, single = _as_batch(x)
        flags = _rng.resolve(self.generator).random(len(batch)) < self.p
        out = self.flip(batch, flags)
        return out[0] if single else out

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each image left-right with probability ``p``, one coin per image."""

    flip = staticmethod(hflip)


class RandomRotation:
    """Rotate each image by its own angle, uniform in ``[-degrees, degrees]``.

    ``degrees`` may also be a pair ``(min, max)``. Nearest-neighbour, about the centre, keeping
    the size, outside filled with ``fill``; positive angles turn counter-clockwise, as in
    torchvision. See ``rotate``.
    """

    def __init__(self, degrees, generator=None, fill=0):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(f"degrees must be non-negative when a number, got {degrees}")
            degrees = (-degrees, degrees)
        if len(degrees) != 2:
            raise ValueError(f"degrees must be a number or a pair (min, max), got {degrees!r}")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.fill = fill
        self.generator = _rng.make_generator(generator)

    def __call__(self, x):
        batch, single = _as_batch(x)
        angles = _rng.resolve(self.generator).uniform(*self.degrees, size=len(batch))
        out = rotate(batch, angles, fill=self.fill)
        return out[0] if single else out

    def __repr__(self):
        return f"{type(self).__name__}(degrees={list(self.degrees)}, fill={self.fill})"


class RandomCrop:
    """Zero-pad by ``padding`` (if given), then cut a ``size`` window at a random place.

    ``size`` is n or (h, w); ``padding`` as in ``pad``. Each image gets its own offsets, uniform
    over all windows that fit, as torchvision's RandomCrop.
    """

    def __init__(self, size, padding=None, generator=None):
        self.size = _size_pair(size, "size")
        self.padding = padding
        self.generator = _rng.make_generator(generator)

    def __call__(self, x):
        batch, single = _as_batch(x)
        if self.padding is not None:
            batch = pad(batch, self.padding)
        height, width = self.size
        n, _, padded_h, padded_w = batch.shape
        if height > padded_h or width > padded_w:
            raise ValueError(f"crop size {self.size} is larger than the (padded) image "
                             f"{padded_h}x{padded_w}")
        rng = _rng.resolve(self.generator)
        top = rng.integers(0, padded_h - height + 1, size=n)
        left = rng.integers(0, padded_w - width + 1, size=n)
        out = crop(batch, top, left, height, width)
        return out[0] if single else out

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomVerticalFlip(_RandomFlip):
    """Mirror each image top-bottom with probability ``p``, one coin per image."""

    flip = staticmethod(vflip)


class Resize:
    """Resize ``(N, C, H, W)`` or ``(C, H, W)`` images to ``size = (h, w)`` (see ``resize``).

    An int ``size`` matches the shorter side, keeping the aspect ratio (the longer side
    becomes ``int(size * long / short)``), as torchvision.
    """

    def __init__(self, size, interpolation="bilinear", antialias=True):
        self.size = size if isinstance(size, numbers.Number) else tuple(size)
        self.interpolation = interpolation
        self.antialias = antialias

    def __call__(self, x):
        x = np.asarray(x)
        return resize(x, output_size(x.shape[-2:], self.size), self.interpolation,
                      self.antialias)

    def __repr__(self):
        return (f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation}, "
                f"antialias={self.antialias})")


class CenterCrop:
    """Cut the central ``size`` window of every image (see ``center_crop``)."""

    def __init__(self, size):
        self.size = _size_pair(size, "size")

    def __call__(self, x):
        return center_crop(x, self.size)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size})"


class Grayscale:
    """Luma of RGB images (see ``rgb_to_grayscale``), 1 or 3 output channels."""

    def __init__(self, num_output_channels=1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def __call__(self, x):
        return rgb_to_grayscale(x, self.num_output_channels)

    def __repr__(self):
        return f"{type(self).__name__}(num_output_channels={self.num_output_channels})"
