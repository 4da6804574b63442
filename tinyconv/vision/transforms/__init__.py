"""``torchvision.transforms`` for tinyconv: the same names, arguments and numbers.

Two kinds of input, as in torchvision
-------------------------------------
torchvision's transforms take either a PIL image or a tensor, and the two are laid out
differently. tinyconv has no PIL dependency, so a NumPy array stands in for the PIL image:

* an **image** is a NumPy array ``(H, W)`` (grey) or ``(H, W, C)`` (colour), usually uint8,
  exactly ``np.asarray(pil_image)``. The datasets return images, and a PIL image given to a
  transform is turned into one with ``np.asarray``. Transforms that torchvision applies to PIL
  images (crops, flips, pad, resize, rotation, grayscale) take and return images.
* a **tensor** is a tinyconv ``Tensor`` ``(C, H, W)``, or ``(..., C, H, W)`` with leading batch
  dimensions, as torchvision's tensor path. Transforms return a Tensor for a Tensor.

``ToTensor`` goes from the first kind to the second, as torchvision's: ``(H, W)`` or
``(H, W, C)`` uint8 -> float32 ``(C, H, W)`` divided by 255. ``Normalize`` takes tensors only.
So the classic CIFAR pipeline ``Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
ToTensor(), Normalize(mean, std)])`` works unchanged: the first two see ``(32, 32, 3)``
images. (``tinyconv.data.transforms.ToTensor`` differs: it reads a 3-D array as a batch of grey
images. That module's transforms are batch-first; these follow torchvision item by item.)

Numbers
-------
Tensors get the numbers of torchvision's tensor path. Images get PIL's numbers where they are
exact pixel moves (crop, flip, pad, nearest resize, ``Grayscale``'s integer luma); bilinear
``Resize`` of an image computes torchvision's tensor-path numbers on the uint8 values (PIL's
own fixed-point arithmetic differs by at most one grey level), and ``RandomRotation`` samples as
the tensor path for both kinds (the same pixels as PIL's, except where a source point lies
exactly half-way between two pixels, as at 30 degrees on an odd-sized image).

The fast batch path
-------------------
A ``DataLoader`` over a dataset of ``tinyconv.vision.datasets`` asks for whole batches
(``__getitems__``). When every transform of the pipeline is one of this module's (not a
``Lambda`` or a user function), the dataset runs it once on the whole uint8 batch instead of
once per image: each transform has a ``_batch(x, kind)`` method on ``(N, C, H, W)`` arrays
that does for every image what ``__call__`` does for one, random transforms drawing
independently per image (see ``apply_to_batch``). The results have the same distribution as
the item-by-item path; they are not the same random draws (the draws come in another order).
Otherwise the dataset applies the pipeline image by image and stacks the results.

Randomness comes from tinyconv's global generator, so ``tinyconv.manual_seed(s)`` makes the
random transforms reproducible. ``functional`` has the same operations as plain functions.
"""

import enum
import numbers

import numpy as np

from tinyconv.data import _rng
from tinyconv.data import transforms as batch_ops
from tinyconv.tensor import Tensor

__all__ = [
    "CenterCrop", "Compose", "ConvertImageDtype", "Grayscale", "InterpolationMode", "Lambda",
    "Normalize", "Pad", "RandomCrop", "RandomHorizontalFlip", "RandomResizedCrop",
    "RandomRotation", "RandomVerticalFlip", "Resize", "ToTensor",
]

IMAGE, TENSOR = "image", "tensor"


class InterpolationMode(enum.Enum):
    """torchvision's interpolation names; tinyconv implements NEAREST, NEAREST_EXACT, BILINEAR."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


# PIL's integer constants, which torchvision also accepts.
_PIL_INTERPOLATION = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR,
                      3: InterpolationMode.BICUBIC, 4: InterpolationMode.BOX,
                      5: InterpolationMode.HAMMING, 1: InterpolationMode.LANCZOS}


def _interpolation(value, owner, supported):
    """Check an ``interpolation`` argument; return the InterpolationMode."""
    mode = value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        mode = _PIL_INTERPOLATION.get(int(value), value)
    elif isinstance(value, str):
        mode = next((m for m in InterpolationMode if m.value == value), value)
    if mode not in supported:
        names = ", ".join(f"InterpolationMode.{m.name}" for m in supported)
        raise ValueError(f"{owner}: interpolation={value!r} is not supported by tinyconv; "
                         f"supported: {names}")
    return mode


# ---- the two kinds of input --------------------------------------------------------------


def _to_chw(img, owner):
    """Return ``(array (..., C, H, W), kind)`` for a Tensor, a NumPy image or a PIL image."""
    if isinstance(img, Tensor):
        x = np.asarray(img)
        if x.ndim < 2:
            raise ValueError(f"{owner}: expected a tensor (..., C, H, W) or (H, W), got shape "
                             f"{tuple(x.shape)}")
        return (x[None] if x.ndim == 2 else x), TENSOR
    if type(img).__module__.startswith("PIL."):
        img = np.asarray(img)
    if isinstance(img, np.ndarray):
        if img.ndim == 2:
            return img[None], IMAGE
        if img.ndim == 3:
            return img.transpose(2, 0, 1), IMAGE
        raise ValueError(f"{owner}: expected a NumPy image (H, W) or (H, W, C), got shape "
                         f"{img.shape} (for channels-first data use a tinyconv Tensor)")
    raise TypeError(f"{owner}: expected a tinyconv Tensor, a NumPy image (H, W) or (H, W, C) "
                    f"or a PIL Image, got {type(img).__name__}")


def _from_chw(x, kind):
    """Inverse of ``_to_chw``: a Tensor, or an image ``(H, W)`` / ``(H, W, C)`` like PIL's."""
    if kind == TENSOR:
        return Tensor._wrap(np.ascontiguousarray(x))
    return np.ascontiguousarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0))


def is_batchable(transform):
    """Whether ``transform`` can run on a whole batch at once (see the module docstring).

    True for this module's transforms and Composes of them; not for ``Lambda``, user
    functions, or subclasses defined elsewhere (their ``__call__`` may do something else).
    """
    if type(transform) is Compose:
        return all(is_batchable(t) for t in transform.transforms)
    return isinstance(transform, _Transform) and type(transform).__module__ == __name__


def apply_to_batch(transform, images):
    """Run a batchable ``transform`` on a batch of images as the datasets store them.

    ``images`` is uint8 ``(N, H, W)`` or ``(N, H, W, C)``: N images of the first kind. The
    result equals stacking ``transform(images[i])`` (up to the random draws): float32
    ``(N, C, H, W)`` after ``ToTensor``, else images ``(N, H, W)`` / ``(N, H, W, C)``.
    """
    images = np.asarray(images)
    x = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    x, kind = transform._batch(x, IMAGE)
    if kind == IMAGE:
        x = x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x)


class _Transform:
    """Base: ``__call__`` converts the input to ``(..., C, H, W)`` and calls ``_apply``.

    ``_apply(x, kind)`` does the work for one image (random transforms draw once);
    ``_batch(x, kind)`` for every image of an ``(N, C, H, W)`` batch, drawing per image, and
    returns ``(array, kind)``. Deterministic transforms need only ``_apply``.
    """

    def __call__(self, img):
        x, kind = _to_chw(img, type(self).__name__)
        out = _from_chw(self._apply(x, kind), kind)
        if isinstance(img, Tensor) and img.ndim == 2 and out.shape[0] == 1:
            return out[0]  # a 2-D tensor (H, W) comes back 2-D, as in torchvision
        return out

    def _batch(self, x, kind):
        return self._apply(x, kind), kind

    def __repr__(self):
        return f"{type(self).__name__}()"


class Compose:
    """Apply ``transforms`` one after another."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for transform in self.transforms:
            img = transform(img)
        return img

    def _batch(self, x, kind):
        for transform in self.transforms:
            x, kind = transform._batch(x, kind)
        return x, kind

    def __repr__(self):
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Lambda:
    """Apply a user function ``lambd`` to each image (never batched: it sees one image)."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument lambd should be callable, got "
                            f"{type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return f"{type(self).__name__}()"


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


from tinyconv.vision.transforms import functional  # noqa: E402, F401 (needs the classes above)
