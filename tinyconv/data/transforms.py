"""Batch image transforms on NumPy arrays, named after torchvision.transforms.

Unlike torchvision's per-image transforms, each transform here takes a whole batch and works
on it at once with array operations (no Python loop over images); a single image works too.
Shapes use N (batch), C (channels), H (height), W (width):

* ``ToTensor`` turns uint8 images, ``(N, H, W)``, ``(N, H, W, C)`` or one ``(H, W)``, into
  float32 ``(N, C, H, W)`` (or ``(C, H, W)``) scaled to [0, 1]. NOTE: a 3-D input is a batch of
  grayscale images here, whereas torchvision reads a 3-D ndarray as one ``(H, W, C)`` image.
* The others take float (or uint8) ``(N, C, H, W)`` or ``(C, H, W)``, so put them after
  ``ToTensor``. The random ones draw independently for every image in a batch.

Random transforms take ``generator``: an int seed, a ``numpy.random.Generator``, or None for
the global generator (``tinyconv.random.default_generator`` if available, see ``_rng``).
"""

import numbers

import numpy as np

from tinyconv.data import _rng


def _as_batch(x):
    """View ``(C, H, W)`` as ``(1, C, H, W)``; return the view and whether it was single."""
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"expected an image (C, H, W) or a batch (N, C, H, W), got shape {x.shape}")


def _pair(value, what):
    """Turn ``n`` or ``(h, w)`` into ``(h, w)``."""
    if isinstance(value, numbers.Number):
        return int(value), int(value)
    if len(value) == 1:
        return int(value[0]), int(value[0])
    if len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{what} must be an int or a pair (h, w), got {value!r}")


# ---- functional forms: deterministic, given the per-image parameters --------------------


def hflip(x, flags=True):
    """Mirror images left-right where ``flags`` (a bool, or one bool per image) is true."""
    batch, single = _as_batch(x)
    flags = np.broadcast_to(np.asarray(flags, dtype=bool), (len(batch),))
    out = batch.copy()
    out[flags] = batch[flags, :, :, ::-1]
    return out[0] if single else out


def rotate(x, angle, fill=0):
    """Rotate images counter-clockwise by ``angle`` degrees about their centres.

    ``angle`` is a number or one number per image. Nearest-neighbour sampling, output the size
    of the input, pixels that come from outside the image set to ``fill`` (a number or one per
    channel), as ``torchvision.transforms.functional.rotate(img, angle)`` with its defaults.

    Each output pixel (y, x), measured from the centre ((H-1)/2, (W-1)/2) with y pointing
    down, takes the input pixel nearest to::

        x_src = cos(a) * x - sin(a) * y
        y_src = sin(a) * x + cos(a) * y

    which is an inverse rotation, so the content turns counter-clockwise on screen.
    """
    batch, single = _as_batch(x)
    n, c, h, w = batch.shape
    radians = np.deg2rad(np.broadcast_to(np.asarray(angle, dtype=np.float64), (n,)))
    cos = np.cos(radians)[:, None, None]
    sin = np.sin(radians)[:, None, None]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ys, xs = np.mgrid[:h, :w]
    ys, xs = ys - cy, xs - cx
    # np.rint rounds halves to even, like grid_sample's nearest mode.
    src_x = np.rint(cos * xs - sin * ys + cx).astype(np.intp)  # (N, H, W)
    src_y = np.rint(sin * xs + cos * ys + cy).astype(np.intp)
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    # Gather from a flattened (N, C, H*W) view; outside pixels read index 0, then get `fill`.
    flat_index = np.where(inside, src_y * w + src_x, 0).reshape(n, 1, h * w)
    out = np.take_along_axis(batch.reshape(n, c, h * w), flat_index, axis=2)
    out = out.reshape(n, c, h, w)
    fill = np.broadcast_to(np.asarray(fill, dtype=batch.dtype), (c,))
    out = np.where(inside[:, None], out, fill[None, :, None, None])
    return out[0] if single else out


def pad(x, padding, fill=0):
    """Pad the last two axes by ``padding``: n, (left/right, top/bottom), or (l, t, r, b)."""
    if isinstance(padding, numbers.Number):
        left = top = right = bottom = int(padding)
    elif len(padding) == 2:
        left = right = int(padding[0])
        top = bottom = int(padding[1])
    elif len(padding) == 4:
        left, top, right, bottom = (int(p) for p in padding)
    else:
        raise ValueError(f"padding must be an int, a pair or a 4-tuple, got {padding!r}")
    if min(left, top, right, bottom) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    x = np.asarray(x)
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(x, widths, constant_values=fill)


def crop(x, top, left, height, width):
    """Cut ``height`` x ``width`` windows starting at ``(top, left)``, a pair or one per image."""
    batch, single = _as_batch(x)
    n, c = batch.shape[:2]
    top = np.broadcast_to(np.asarray(top, dtype=np.intp), (n,))
    left = np.broadcast_to(np.asarray(left, dtype=np.intp), (n,))
    if (top < 0).any() or (left < 0).any() or (top + height > batch.shape[2]).any() \
            or (left + width > batch.shape[3]).any():
        raise ValueError(f"crop window {height}x{width} at the given offsets leaves the "
                         f"{batch.shape[2]}x{batch.shape[3]} image")
    rows = top[:, None] + np.arange(height)  # (N, height)
    cols = left[:, None] + np.arange(width)  # (N, width)
    out = batch[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                rows[:, None, :, None], cols[:, None, None, :]]
    return out[0] if single else out


# ---- transform classes -------------------------------------------------------------------


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


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``, one coin per image."""

    def __init__(self, p=0.5, generator=None):
        self.p = p
        self.generator = _rng.make_generator(generator)

    def __call__(self, x):
        batch, single = _as_batch(x)
        flags = _rng.resolve(self.generator).random(len(batch)) < self.p
        out = hflip(batch, flags)
        return out[0] if single else out

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


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
        self.size = _pair(size, "size")
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
