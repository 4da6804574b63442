"""``torchvision.utils`` for tinyconv: ``make_grid`` and ``save_image`` (PNG, NumPy + zlib).

``make_grid`` tiles a batch of images ``(B, C, H, W)`` into one image, ``nrow`` per row, with
``padding`` pixels of ``pad_value`` around each; grey images become three identical channels.
``save_image`` makes the grid and writes it as an 8-bit PNG. A PNG file is simple enough to
write by hand::

    8-byte signature  \\x89 P N G \\r \\n \\x1a \\n
    chunk IHDR        width, height (big-endian uint32), bit depth 8, colour type 2 (RGB)
                      or 6 (RGBA), compression 0, filter 0, interlace 0
    chunk IDAT        zlib.compress(the rows, each prefixed by its filter type byte 0)
    chunk IEND        empty

and each chunk is ``length (uint32) + type (4 bytes) + data + CRC-32 of type and data``.
"""

import math
import os
import struct
import tempfile
import zlib

import numpy as np

from tinyconv.tensor import Tensor

__all__ = ["make_grid", "save_image"]


def _as_array(tensor):
    """A Tensor or a list of same-shaped Tensors -> one ndarray (stacked)."""
    if isinstance(tensor, Tensor):
        return np.asarray(tensor)
    if isinstance(tensor, (list, tuple)):
        for item in tensor:
            if not isinstance(item, Tensor):
                raise TypeError(f"tensor or list of tensors expected, got a list containing "
                                f"{type(item).__name__}")
        return np.stack([np.asarray(item) for item in tensor])
    raise TypeError(f"tensor or list of tensors expected, got {type(tensor).__name__}")


def _normalize_range(x, low, high):
    """Clamp ``x`` to [low, high] and map it linearly onto [0, 1], in x's dtype, in place."""
    np.clip(x, x.dtype.type(low), x.dtype.type(high), out=x)
    x -= x.dtype.type(low)
    x /= x.dtype.type(max(high - low, 1e-5))


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
              pad_value=0.0):
    """Tile images ``(B, C, H, W)`` (or a list of ``(C, H, W)``) into one ``(C, H', W')`` Tensor.

    The grid has ``min(nrow, B)`` columns and ``ceil(B / columns)`` rows; image k sits at
    row ``k // columns``, column ``k % columns``, each cell ``H + padding`` by ``W + padding``
    plus one more ``padding`` at the bottom and right edge. One-channel images become three
    channels (grey), so the result can be shown or saved as RGB. A single image comes back
    without padding. ``normalize`` maps ``value_range = (low, high)`` (default: the tensor's
    min and max, or each image's with ``scale_each``) onto [0, 1], clamping outside values.
    Same arguments and numbers as ``torchvision.utils.make_grid``.
    """
    x = _as_array(tensor)
    if x.ndim == 2:  # one image H x W
        x = x[None]
    if x.ndim == 3:  # one image C x H x W
        if x.shape[0] == 1:
            x = np.concatenate([x, x, x], axis=0)
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"make_grid: expected images (B, C, H, W), (C, H, W) or (H, W), got "
                         f"shape {x.shape}")
    if x.shape[1] == 1:  # grey images -> three channels
        x = np.concatenate([x, x, x], axis=1)
    if normalize is True:
        x = x.copy()
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError(f"value_range has to be a tuple (min, max) if specified, got "
                            f"{type(value_range).__name__}")
        images = x if scale_each is True else x[None]
        for image in images:
            low, high = value_range if value_range is not None else \
                (float(image.min()), float(image.max()))
            _normalize_range(image, low, high)
    if x.shape[0] == 1:
        return Tensor._wrap(np.ascontiguousarray(x[0]))

    count, channels, h, w = x.shape
    columns = min(nrow, count)
    rows = int(math.ceil(count / columns))
    cell_h, cell_w = h + padding, w + padding
    grid = np.full((channels, cell_h * rows + padding, cell_w * columns + padding), pad_value,
                   dtype=x.dtype)
    for k in range(count):
        top = (k // columns) * cell_h + padding
        left = (k % columns) * cell_w + padding
        grid[:, top:top + h, left:left + w] = x[k]
    return Tensor._wrap(grid)


def _png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(pixels):
    """PNG bytes of a uint8 image ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA)."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"encode_png: expected uint8 (H, W, 3) or (H, W, 4), got "
                         f"{pixels.dtype} array of shape {pixels.shape}")
    height, width, channels = pixels.shape
    colour_type = 2 if channels == 3 else 6
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    # Every row starts with its filter type; 0 means "no filter", the bytes as they are.
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _png_chunk(b"IEND", b""))


def _write_atomic(path, data):
    """Write ``data`` to ``path`` so that it is either the old file or the whole new one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_image(tensor, fp, format=None, **kwargs):  # noqa: A002 (torchvision's name)
    """Save ``make_grid(tensor, **kwargs)`` as a PNG file, as ``torchvision.utils.save_image``.

    Values in [0, 1] become 0..255 as ``clamp(x * 255 + 0.5, 0, 255)`` truncated to uint8
    (i.e. rounded). ``fp`` is a file name or a binary file object; a file name is written
    atomically (a temporary file in the same folder, then renamed). Only PNG is written:
    ``format`` must be None or ``"png"``, and a file name must end in ``.png`` when ``format``
    is None.
    """
    if format is not None and str(format).lower() != "png":
        raise ValueError(f"save_image: format={format!r} is not supported; tinyconv writes "
                         f"PNG only (format=None or 'png')")
    is_path = isinstance(fp, (str, os.PathLike))
    if is_path and format is None:
        ext = os.path.splitext(os.fspath(fp))[1].lower()
        if ext != ".png":
            raise ValueError(f"save_image: cannot write {os.fspath(fp)!r}: tinyconv writes PNG "
                             f"only; use a file name ending in .png (got extension "
                             f"{ext or 'none'!r})")
    grid = np.asarray(make_grid(tensor, **kwargs))
    if grid.dtype.kind != "f":
        grid = grid.astype(np.float32)
    if grid.shape[0] not in (3, 4):
        raise ValueError(f"save_image: expected images with 1, 3 or 4 channels, got "
                         f"{grid.shape[0]}")
    scaled = np.clip(grid * grid.dtype.type(255) + grid.dtype.type(0.5), 0, 255)
    data = encode_png(scaled.transpose(1, 2, 0).astype(np.uint8))
    if is_path:
        _write_atomic(os.fspath(fp), data)
    else:
        fp.write(data)
