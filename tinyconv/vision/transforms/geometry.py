"""The transforms that move pixels: ``Resize``, ``CenterCrop``, ``Pad``, ``RandomCrop``,
``RandomResizedCrop``, the flips and ``RandomRotation``.
"""

import numbers

import numpy as np

from tinyconv.data import _rng
from tinyconv.data import transforms as batch_ops
from tinyconv.vision.transforms.base import IMAGE, InterpolationMode, _interpolation, _Transform


def _check_size(size, owner):
    """torchvision's size argument: an int, or a sequence of 1 or 2 ints; returns (h, w)."""
    if isinstance(size, numbers.Number) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, (list, tuple)) and len(size) in (1, 2):
        return (int(size[0]),) * 2 if len(size) == 1 else (int(size[0]), int(size[1]))
    raise ValueError(f"{owner}: size must be an int or a sequence of 1 or 2 ints (h, w), got "
                     f"{size!r}")


class Resize(_Transform):
    """Resize to ``size``: ``(h, w)``, or an int for the shorter side (keeping the aspect).

    ``interpolation``: ``InterpolationMode.BILINEAR`` (default), ``NEAREST`` or
    ``NEAREST_EXACT``; ``antialias`` (default True) blurs before shrinking, as torchvision;
    ``max_size`` caps the longer side when ``size`` is an int. Numbers: torchvision's tensor
    path (see ``tinyconv.data.transforms.resize``); images (PIL stand-ins) are always
    antialiased, as PIL does, and NEAREST on them picks PIL's pixels.
    """

    SUPPORTED = (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT,
                 InterpolationMode.BILINEAR)

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias=True):
        if not (isinstance(size, numbers.Integral) and not isinstance(size, bool)) and not (
                isinstance(size, (list, tuple)) and len(size) in (1, 2)):
            raise TypeError(f"Resize: size should be an int or a sequence of length 1 or 2, "
                            f"got {size!r}")
        if isinstance(size, (list, tuple)) and len(size) == 2 and max_size is not None:
            raise ValueError("Resize: max_size should only be passed if size is an int or a "
                             f"sequence of length 1, got size={size!r}")
        self.size = size
        self.max_size = max_size
        self.interpolation = _interpolation(interpolation, "Resize", self.SUPPORTED)
        self.antialias = antialias

    def _apply(self, x, kind):
        out_size = batch_ops.output_size(x.shape[-2:], self.size, self.max_size)
        if out_size == tuple(x.shape[-2:]):
            return x
        if self.interpolation == InterpolationMode.BILINEAR:
            antialias = True if kind == IMAGE else bool(self.antialias)
            return batch_ops.resize(x, out_size, "bilinear", antialias)
        if kind == IMAGE:
            rows = batch_ops.nearest_indices(x.shape[-2], out_size[0], pil=True)
            cols = batch_ops.nearest_indices(x.shape[-1], out_size[1], pil=True)
            return x[..., rows[:, None], cols[None, :]]
        return batch_ops.resize(x, out_size, self.interpolation.value)

    def __repr__(self):
        return (f"{type(self).__name__}(size={self.size}, interpolation="
                f"{self.interpolation.value}, max_size={self.max_size}, "
                f"antialias={self.antialias})")


class CenterCrop(_Transform):
    """Cut the central ``size`` window (zero-padding first if the image is smaller)."""

    def __init__(self, size):
        self.size = _check_size(size, "CenterCrop")

    def _apply(self, x, kind):
        return batch_ops.center_crop(x, self.size)

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size})"


def _check_fill(fill, owner):
    if not isinstance(fill, (numbers.Number, list, tuple)):
        raise TypeError(f"{owner}: fill must be a number or a sequence of numbers, got "
                        f"{type(fill).__name__}")
    return fill


def _check_padding_mode(padding_mode, owner):
    if padding_mode not in batch_ops.PADDING_MODES:
        raise ValueError(f"{owner}: padding_mode must be one of "
                         f"{', '.join(map(repr, batch_ops.PADDING_MODES))}, got "
                         f"{padding_mode!r}")
    return padding_mode


class Pad(_Transform):
    """Pad the borders by ``padding`` (n, (left/right, top/bottom) or (l, t, r, b)).

    ``padding_mode``: ``"constant"`` (with ``fill``), ``"edge"``, ``"reflect"`` or
    ``"symmetric"``, as ``tinyconv.data.transforms.pad``.
    """

    def __init__(self, padding, fill=0, padding_mode="constant"):
        try:
            batch_ops.parse_padding(padding)
        except ValueError as err:
            raise ValueError(f"Pad: {err}") from None
        self.padding = padding
        self.fill = _check_fill(fill, "Pad")
        self.padding_mode = _check_padding_mode(padding_mode, "Pad")

    def _apply(self, x, kind):
        return batch_ops.pad(x, self.padding, self.fill, self.padding_mode)

    def __repr__(self):
        return (f"{type(self).__name__}(padding={self.padding}, fill={self.fill}, "
                f"padding_mode={self.padding_mode})")


class RandomCrop(_Transform):
    """Cut a ``size`` window at a random place, uniform over all windows that fit.

    First ``padding`` (if given) pads every side as ``Pad``; then ``pad_if_needed`` pads an
    image smaller than ``size`` by the missing amount on both sides of that axis, as
    torchvision. Each image gets its own window.
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0,
                 padding_mode="constant"):
        self.size = _check_size(size, "RandomCrop")
        if padding is not None:
            try:
                batch_ops.parse_padding(padding)
            except ValueError as err:
                raise ValueError(f"RandomCrop: {err}") from None
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = _check_fill(fill, "RandomCrop")
        self.padding_mode = _check_padding_mode(padding_mode, "RandomCrop")

    def _padded(self, x):
        if self.padding is not None:
            x = batch_ops.pad(x, self.padding, self.fill, self.padding_mode)
        height, width = self.size
        if self.pad_if_needed and x.shape[-1] < width:
            x = batch_ops.pad(x, (width - x.shape[-1], 0), self.fill, self.padding_mode)
        if self.pad_if_needed and x.shape[-2] < height:
            x = batch_ops.pad(x, (0, height - x.shape[-2]), self.fill, self.padding_mode)
        if x.shape[-2] < height or x.shape[-1] < width:
            raise ValueError(f"RandomCrop: required crop size {self.size} is larger than the "
                             f"(padded) image size {tuple(x.shape[-2:])}")
        return x

    def _offsets(self, x, n):
        rng = _rng.resolve(None)
        top = rng.integers(0, x.shape[-2] - self.size[0] + 1, size=n)
        left = rng.integers(0, x.shape[-1] - self.size[1] + 1, size=n)
        return top, left

    def _apply(self, x, kind):
        x = self._padded(x)
        (top,), (left,) = self._offsets(x, 1)
        return x[..., top:top + self.size[0], left:left + self.size[1]]

    def _batch(self, x, kind):
        x = self._padded(x)
        top, left = self._offsets(x, len(x))
        return batch_ops.crop(x, top, left, *self.size), kind

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomResizedCrop(_Transform):
    """Cut a random window of random area and aspect ratio, then resize it to ``size``.

    As torchvision: up to 10 tries draw an area fraction uniform in ``scale`` and an aspect
    ratio (w / h) log-uniform in ``ratio``; the first window that fits is placed uniformly at
    random. If none fits, the largest central window with an aspect ratio in ``ratio``. The
    window is then resized as ``Resize(size, interpolation, antialias=antialias)``.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
        self.size = _check_size(size, "RandomResizedCrop")
        if not isinstance(scale, (list, tuple)) or len(scale) != 2 or \
                not isinstance(ratio, (list, tuple)) or len(ratio) != 2:
            raise TypeError(f"RandomResizedCrop: scale and ratio must be sequences (min, max), "
                            f"got scale={scale!r}, ratio={ratio!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomResizedCrop: scale and ratio must be (min, max) with "
                             f"min <= max, got scale={scale!r}, ratio={ratio!r}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        interpolation = _interpolation(interpolation, "RandomResizedCrop", Resize.SUPPORTED)
        self._resize = Resize(list(self.size), interpolation, antialias=antialias)
        self.interpolation, self.antialias = self._resize.interpolation, antialias

    def window(self, height, width):
        """Draw ``(top, left, h, w)`` for a ``height`` x ``width`` image."""
        rng = _rng.resolve(None)
        area = height * width
        log_ratio = np.log(self.ratio)
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect = np.exp(rng.uniform(*log_ratio))
            w = int(round(np.sqrt(target_area * aspect)))
            h = int(round(np.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def _apply(self, x, kind):
        top, left, h, w = self.window(*x.shape[-2:])
        return self._resize._apply(x[..., top:top + h, left:left + w], kind)

    def _batch(self, x, kind):
        # Every image has its own window size, so the resize runs image by image.
        return np.stack([self._apply(image, kind) for image in x]), kind

    def __repr__(self):
        return (f"{type(self).__name__}(size={self.size}, scale={self.scale}, "
                f"ratio={self.ratio}, interpolation={self.interpolation.value}, "
                f"antialias={self.antialias})")


class RandomHorizontalFlip(_Transform):
    """Mirror left-right with probability ``p``."""

    axis = -1  # the width axis

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: p must be a probability in [0, 1], "
                             f"got {p!r}")
        self.p = p

    def _apply(self, x, kind):
        return np.flip(x, self.axis) if _rng.resolve(None).random() < self.p else x

    def _batch(self, x, kind):
        flags = _rng.resolve(None).random(len(x)) < self.p
        out = x.copy()
        out[flags] = np.flip(x[flags], self.axis)
        return out, kind

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability ``p``."""

    axis = -2  # the height axis


class RandomRotation(_Transform):
    """Rotate by an angle drawn uniformly from ``[-degrees, degrees]`` (or ``(min, max)``).

    Positive angles turn counter-clockwise, about the image centre, nearest-neighbour, keeping
    the size; pixels from outside the image become ``fill`` (a number or one per channel).
    ``expand=True``, a ``center`` and interpolation other than NEAREST are not supported.
    """

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False,
                 center=None, fill=0):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(f"RandomRotation: if degrees is a single number, it must be "
                                 f"non-negative, got {degrees}")
            degrees = (-degrees, degrees)
        elif not isinstance(degrees, (list, tuple)) or len(degrees) != 2:
            raise ValueError(f"RandomRotation: degrees must be a number or a sequence of 2 "
                             f"numbers (min, max), got {degrees!r}")
        self.degrees = [float(d) for d in degrees]
        self.interpolation = _interpolation(interpolation, "RandomRotation",
                                            (InterpolationMode.NEAREST,))
        if expand:
            raise ValueError("RandomRotation: expand=True is not supported by tinyconv "
                             "(supported: expand=False, the output keeps the input size)")
        if center is not None:
            raise ValueError(f"RandomRotation: center={center!r} is not supported by tinyconv "
                             f"(supported: center=None, the image centre)")
        self.expand, self.center = expand, center
        self.fill = _check_fill(fill, "RandomRotation")

    def _apply(self, x, kind):
        angle = _rng.resolve(None).uniform(*self.degrees)
        flat = x.reshape(-1, *x.shape[-3:])
        return batch_ops.rotate(flat, angle, fill=self.fill).reshape(x.shape)

    def _batch(self, x, kind):
        angles = _rng.resolve(None).uniform(*self.degrees, size=len(x))
        return batch_ops.rotate(x, angles, fill=self.fill), kind

    def __repr__(self):
        return (f"{type(self).__name__}(degrees={self.degrees}, interpolation=nearest, "
                f"expand=False, fill={self.fill})")
