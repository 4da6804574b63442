"""What every transform of tinyconv.vision.transforms stands on: the two kinds of input (a NumPy
image ``(H, W[, C])`` or a Tensor ``(..., C, H, W)``, see tinyconv/vision/transforms/__init__.py)
seen as one ``(..., C, H, W)`` array, the base class ``_Transform``, ``InterpolationMode``, the
batch path (``is_batchable``, ``apply_to_batch``), and the two containers ``Compose``, ``Lambda``.
"""

import enum
import numbers

import numpy as np

from tinyconv.tensor import Tensor

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

    True for the transforms of tinyconv.vision.transforms and Composes of them; not for
    ``Lambda``, user functions, or subclasses defined elsewhere (their ``__call__`` may do
    something else).
    """
    if type(transform) is Compose:
        return all(is_batchable(t) for t in transform.transforms)
    defined_in = type(transform).__module__.rpartition(".")[0]  # the package of its module
    return isinstance(transform, _Transform) and defined_in == __package__


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
