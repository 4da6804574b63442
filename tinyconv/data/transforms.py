"""Batch image transforms on NumPy arrays, named after torchvision.transforms.

Unlike torchvision's per-image transforms, each transform here takes a whole batch and works
on it at once with array operations (no Python loop over images); a single image works too.
Shapes use N (batch), C (channels), H (height), W (width):

* ``ToTensor`` turns uint8 images, ``(N, H, W)``, ``(N, H, W, C)`` or one ``(H, W)``, into
  float32 ``(N, C, H, W)`` (or ``(C, H, W)``) scaled to [0, 1]. NOTE: a 3-D input is a batch of
  grayscale images here, whereas torchvision reads a 3-D ndarray as one ``(H, W, C)`` image.
* The others take float (or uint8) ``(N, C, H, W)`` or ``(C, H, W)``, so put them after
  ``ToTensor``. The random ones draw independently for every image in a batch.

The functions (``pad``, ``crop``, ``center_crop``, ``resize``, ``rotate``, ``hflip``,
``vflip``, ``rgb_to_grayscale``...) work on the last axes ``(..., C, H, W)`` of any array and
are also the arithmetic behind ``tinyconv.vision.transforms``, which wraps them with
torchvision's item-by-item conventions.

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

    NOTE: many source points fall exactly half-way between two pixels (e.g. at 30 or 45
    degrees), where the rounding direction depends on the last bit. To pick the same pixels
    as torchvision, the coordinates go through torchvision's float32 steps: the grid in
    [-1, 1] units (``x * cos / (W/2)``...), then back to pixels as ``((g + 1) * W - 1) / 2``
    (``grid_sample``'s ``align_corners=False``), rounded half to even.
    """
    batch, single = _as_batch(x)
    n, c, h, w = batch.shape
    f32 = np.float32
    radians = np.deg2rad(-np.broadcast_to(np.asarray(angle, dtype=np.float64), (n,)))
    cos = np.cos(radians).astype(f32)[:, None, None]
    sin = np.sin(radians).astype(f32)[:, None, None]
    half_w, half_h = f32(0.5 * w), f32(0.5 * h)
    xs = (np.arange(w) - (w - 1) / 2).astype(f32)[None, None, :]  # (1, 1, W)
    ys = (np.arange(h) - (h - 1) / 2).astype(f32)[None, :, None]  # (1, H, 1)
    # With radians = -angle: x_src = cos * x + sin * y, y_src = -sin * x + cos * y.
    grid_x = xs * (cos / half_w) + ys * (sin / half_w)  # (N, H, W), in [-1, 1] units
    grid_y = xs * (-sin / half_h) + ys * (cos / half_h)
    src_x = np.rint(((grid_x + f32(1)) * f32(w) - f32(1)) / f32(2)).astype(np.intp)
    src_y = np.rint(((grid_y + f32(1)) * f32(h) - f32(1)) / f32(2)).astype(np.intp)
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    # Gather from a flattened (N, C, H*W) view; outside pixels read index 0, then get `fill`.
    flat_index = np.where(inside, src_y * w + src_x, 0).reshape(n, 1, h * w)
    out = np.take_along_axis(batch.reshape(n, c, h * w), flat_index, axis=2)
    out = out.reshape(n, c, h, w)
    fill = np.broadcast_to(np.asarray(fill, dtype=batch.dtype), (c,))
    out = np.where(inside[:, None], out, fill[None, :, None, None])
    return out[0] if single else out


PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def parse_padding(padding):
    """Turn torchvision's ``padding`` into (left, top, right, bottom).

    ``padding`` is n (all sides), (left/right, top/bottom) or (left, top, right, bottom).
    """
    if isinstance(padding, numbers.Number) and not isinstance(padding, bool):
        left = top = right = bottom = int(padding)
    elif isinstance(padding, (list, tuple)) and len(padding) in (1, 2, 4):
        if len(padding) == 1:
            left = top = right = bottom = int(padding[0])
        elif len(padding) == 2:
            left = right = int(padding[0])
            top = bottom = int(padding[1])
        else:
            left, top, right, bottom = (int(p) for p in padding)
    else:
        raise ValueError(f"padding must be an int or a sequence of 1, 2 or 4 ints (left/right, "
                         f"top/bottom or left, top, right, bottom), got {padding!r}")
    if min(left, top, right, bottom) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return left, top, right, bottom


def pad(x, padding, fill=0, padding_mode="constant"):
    """Pad the last two axes (H, W) of ``x`` by ``padding``, as torchvision's ``F.pad``.

    ``padding``: n, (left/right, top/bottom) or (left, top, right, bottom). ``padding_mode``:

    * ``"constant"``: new pixels are ``fill`` (a number, or one number per channel, axis -3),
    * ``"edge"``: repeat the border pixel,                 ``a b c | c c``
    * ``"reflect"``: mirror without repeating the border,  ``a b c | b a``
    * ``"symmetric"``: mirror repeating the border,        ``a b c | c b``
    """
    left, top, right, bottom = parse_padding(padding)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, "
                         f"got {padding_mode!r}")
    x = np.asarray(x)
    h, w = x.shape[-2:]
    if padding_mode == "reflect" and (max(left, right) >= w or max(top, bottom) >= h):
        raise ValueError(f"padding_mode='reflect' needs padding smaller than the image, got "
                         f"padding {padding!r} for a {h}x{w} image")
    if padding_mode != "constant":
        widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
        return np.pad(x, widths, mode=padding_mode)
    out_shape = x.shape[:-2] + (top + h + bottom, left + w + right)
    fill = np.asarray(fill, dtype=x.dtype)
    if fill.ndim == 1:
        if x.ndim < 3 or len(fill) not in (1, x.shape[-3]):
            raise ValueError(f"fill has {len(fill)} values but the input has "
                             f"{x.shape[-3] if x.ndim >= 3 else 1} channels")
        fill = fill[:, None, None]
    out = np.empty(out_shape, dtype=x.dtype)
    out[...] = fill
    out[..., top:top + h, left:left + w] = x
    return out


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
    # windows[n, c, i, j] is the height x width window whose top-left corner is (i, j): a
    # strided view, no copy. Picking one (i, j) per image copies just the N windows.
    windows = np.lib.stride_tricks.sliding_window_view(batch, (height, width), axis=(2, 3))
    out = windows[np.arange(n), :, top, left]  # (N, C, height, width)
    return out[0] if single else out


def vflip(x, flags=True):
    """Mirror images top-bottom where ``flags`` (a bool, or one bool per image) is true."""
    batch, single = _as_batch(x)
    flags = np.broadcast_to(np.asarray(flags, dtype=bool), (len(batch),))
    out = batch.copy()
    out[flags] = batch[flags, :, ::-1, :]
    return out[0] if single else out


def center_crop(x, size):
    """Cut the central ``size`` window of the last two axes, as torchvision's ``F.center_crop``.

    A window larger than the image first zero-pads it (the odd pixel going right/bottom); the
    top-left corner of the window is ``round((H - h) / 2), round((W - w) / 2)``, rounding halves
    to even as Python's ``round`` does.
    """
    height, width = _pair(size, "size")
    x = np.asarray(x)
    image_h, image_w = x.shape[-2:]
    if height > image_h or width > image_w:
        pad_w, pad_h = max(width - image_w, 0), max(height - image_h, 0)
        x = pad(x, (pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2))
        image_h, image_w = x.shape[-2:]
    top = int(round((image_h - height) / 2.0))
    left = int(round((image_w - width) / 2.0))
    return x[..., top:top + height, left:left + width]


def resize_weights(in_size, out_size, antialias=True):
    """The (out_size, in_size) matrix of bilinear resampling weights along one axis.

    Output pixel ``i`` covers input coordinates around ``center = (i + 0.5) * scale`` with
    ``scale = in_size / out_size``. With ``antialias`` (PyTorch's ``antialias=True``, the same
    algorithm as Pillow's), the triangle filter ``max(0, 1 - |d|)`` is stretched by ``scale``
    when shrinking, so every input pixel under the output pixel contributes; weights are
    normalised to sum to 1. Without it, plain bilinear: the two input pixels either side of
    ``center - 0.5`` (clamped at 0), as ``F.interpolate(..., align_corners=False)``.
    """
    scale = in_size / out_size
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        if antialias:
            stretch = max(scale, 1.0)
            support = stretch  # the triangle's half-width, 1 input pixel times the stretch
            # int() truncates toward zero, as the C code of both libraries does.
            first = max(int(center - support + 0.5), 0)
            last = min(int(center + support + 0.5), in_size)
            taps = np.arange(first, last)
            w = np.maximum(0.0, 1.0 - np.abs((taps - center + 0.5) * (1.0 / stretch)))
            weights[i, first:last] = w / w.sum()
        else:
            source = max(center - 0.5, 0.0)
            low = int(source)
            high = low + 1 if low < in_size - 1 else low
            frac = source - low
            weights[i, low] += 1.0 - frac
            weights[i, high] += frac
    return weights


def nearest_indices(in_size, out_size, exact=False, pil=False):
    """Input index read by each output pixel: ``floor(i * scale)`` (PyTorch's ``"nearest"``)
    or, with ``exact``, ``floor((i + 0.5) * scale)`` (``"nearest-exact"``), in float32.

    ``pil``: Pillow's NEAREST, the same formula as nearest-exact but accumulated in float64
    (``x = 0.5 * scale``, then ``x += scale`` per pixel), which rounds differently.
    """
    if pil:
        steps = np.full(out_size, in_size / out_size)
        steps[0] *= 0.5
        return np.minimum(np.cumsum(steps).astype(np.intp), in_size - 1)
    scale = np.float32(in_size / out_size)
    offset = np.float32(0.5 if exact else 0.0)
    index = np.floor((np.arange(out_size, dtype=np.float32) + offset) * scale).astype(np.intp)
    return np.minimum(index, in_size - 1)


def resize(x, size, interpolation="bilinear", antialias=True):
    """Resize the last two axes of ``x`` to ``size = (h, w)``, as torchvision's tensor path.

    ``interpolation``: ``"bilinear"`` or ``"nearest"`` / ``"nearest-exact"`` (see
    ``nearest_indices``). Bilinear resizing is separable: two matrix products,
    ``out = Wh @ x @ Ww.T`` with ``Wh``, ``Ww`` from ``resize_weights``, width first as
    PyTorch does, in float32 (float64 input stays float64). Integer input is computed in
    float32, then rounded to nearest and clipped, as torchvision does for uint8 tensors.
    """
    out_h, out_w = size
    x = np.asarray(x)
    in_h, in_w = x.shape[-2:]
    if interpolation in ("nearest", "nearest-exact"):
        exact = interpolation == "nearest-exact"
        rows = nearest_indices(in_h, out_h, exact)
        cols = nearest_indices(in_w, out_w, exact)
        return x[..., rows[:, None], cols[None, :]]
    if interpolation != "bilinear":
        raise ValueError(f"interpolation must be 'bilinear', 'nearest' or 'nearest-exact', "
                         f"got {interpolation!r}")
    work_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    out = x.astype(work_dtype, copy=False)
    if out_w != in_w:
        out = out @ resize_weights(in_w, out_w, antialias).T.astype(work_dtype)
    if out_h != in_h:
        out = resize_weights(in_h, out_h, antialias).astype(work_dtype) @ out
    if work_dtype != x.dtype:
        info = np.iinfo(x.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(x.dtype, copy=False)


def rgb_to_grayscale(x, num_output_channels=1):
    """Luma of ``(..., 3, H, W)`` images, as torchvision's tensor path: ``0.2989 R + 0.587 G +
    0.114 B``, cast back to the input dtype (truncating for integers).
    ``num_output_channels=3`` repeats the result three times. One-channel input is returned as
    is, whatever ``num_output_channels`` (torchvision's tensor path does the same)."""
    x = np.asarray(x)
    if x.shape[-3] == 1:
        return x.copy()
    if x.shape[-3] != 3:
        raise ValueError(f"expected images with 1 or 3 channels, got {x.shape[-3]}")
    r, g, b = (x[..., c, :, :] for c in range(3))
    grey = (np.float32(0.2989) * r + np.float32(0.587) * g + np.float32(0.114) * b)
    grey = grey.astype(x.dtype)[..., None, :, :]
    if num_output_channels == 3:
        return np.repeat(grey, 3, axis=-3)
    return grey


def rgb_to_grayscale_pil(x, num_output_channels=1):
    """Luma of uint8 ``(..., 3, H, W)`` images exactly as Pillow's ``convert("L")``:
    ``(19595 R + 38470 G + 7471 B + 2**15) >> 16`` (ITU-R 601-2 in 16-bit fixed point)."""
    x = np.asarray(x)
    if x.shape[-3] == 3:
        r, g, b = (x[..., c, :, :].astype(np.uint32) for c in range(3))
        grey = ((19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16).astype(np.uint8)
        grey = grey[..., None, :, :]
    elif x.shape[-3] == 1:
        grey = x.copy()
    else:
        raise ValueError(f"expected images with 1 or 3 channels, got {x.shape[-3]}")
    if num_output_channels == 3:
        return np.repeat(grey, 3, axis=-3)
    return grey


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


class RandomVerticalFlip:
    """Mirror each image top-bottom with probability ``p``, one coin per image."""

    def __init__(self, p=0.5, generator=None):
        self.p = p
        self.generator = _rng.make_generator(generator)

    def __call__(self, x):
        batch, single = _as_batch(x)
        flags = _rng.resolve(self.generator).random(len(batch)) < self.p
        out = vflip(batch, flags)
        return out[0] if single else out

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


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


def output_size(image_size, size, max_size=None):
    """torchvision's Resize size rule: ``(h, w)`` as given, or an int for the shorter side.

    With an int, the shorter side becomes ``size`` and the longer ``int(size * long / short)``;
    ``max_size`` then caps the longer side, shrinking both proportionally.
    """
    h, w = (int(v) for v in image_size)
    if not isinstance(size, numbers.Number):
        if len(size) == 1:
            size = size[0]
        else:
            if max_size is not None:
                raise ValueError("max_size is only supported when size is an int or a "
                                 f"1-element sequence, got size={tuple(size)!r}")
            return int(size[0]), int(size[1])
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = int(size), int(int(size) * long / short)
    if max_size is not None:
        if max_size <= new_short:
            raise ValueError(f"max_size must be larger than the requested size, got "
                             f"max_size={max_size} and size={size}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


class CenterCrop:
    """Cut the central ``size`` window of every image (see ``center_crop``)."""

    def __init__(self, size):
        self.size = _pair(size, "size")

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
