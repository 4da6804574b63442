"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a header followed by the array's elements in row-major order, big-endian::

    byte 0-1   0x00 0x00                  (magic)
    byte 2     dtype code                 (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                           0x0D float32, 0x0E float64)
    byte 3     ndim
    then       ndim big-endian uint32     (the dimensions, outermost first)
    then       prod(dims) elements

MNIST's images are ``(N, 28, 28)`` uint8 and its labels ``(N,)`` uint8. Files are often gzipped;
gzip is recognised by its magic bytes 1f 8b, never by the file name, so a renamed file still
reads.
"""

import gzip
import math
import os
import zlib

import numpy as np

from tinyconv.data.errors import DataError

# IDX dtype code -> big-endian NumPy dtype, as the format stores it.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _describe_codes():
    return ", ".join(f"0x{code:02X} ({dt.newbyteorder('=').name})"
                     for code, dt in IDX_DTYPES.items())


def read_uncompressed(path):
    """Return the bytes of ``path``, gunzipped if the file starts with the gzip magic 1f 8b.

    Raises DataError for a truncated or corrupt gzip stream (bad CRC, bad deflate data).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except EOFError as err:
        raise DataError(
            f"{path}: truncated gzip stream: expected a complete gzip member, found the data "
            f"ends early after {len(data)} compressed bytes ({err})"
        ) from err
    except (OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"{path}: corrupt gzip stream: expected valid gzip data, found: {err}"
        ) from err


def parse_idx(data, source="<bytes>"):
    """Parse the uncompressed bytes of an IDX file into a native-endian NumPy array.

    ``source`` names the data in error messages (normally the file path). The result is
    writable and does not share memory with ``data``.
    """
    data = memoryview(data).cast("B")
    if len(data) < 4:
        raise DataError(
            f"{source}: expected an IDX header of at least 4 bytes, found {len(data)} bytes"
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source}: bad IDX magic number: expected first bytes 0x00 0x00, found "
            f"0x{data[0]:02X} 0x{data[1]:02X} (not an IDX file?)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataError(
            f"{source}: unknown IDX dtype code: expected one of {_describe_codes()}, "
            f"found 0x{code:02X}"
        )
    if ndim == 0:
        raise DataError(f"{source}: expected at least one IDX dimension, found ndim 0")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{source}: truncated IDX header: expected {header_len} bytes for {ndim} "
            f"dimensions, found {len(data)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    found = len(data) - header_len
    if found != expected:
        what = "truncated file" if found < expected else "trailing bytes"
        raise DataError(
            f"{source}: IDX payload length mismatch ({what}): expected {expected} bytes for "
            f"shape {dims} of {dtype.newbyteorder('=').name}, found {found} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    # One copy, which also converts to native byte order: the result owns writable memory,
    # so it neither pins the (possibly huge) input buffer nor warns in torch.from_numpy.
    return array.astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read an IDX file, raw or gzipped, into a NumPy array.

    Every problem with the file's contents raises DataError naming the file, what was expected
    and what was found. A missing file raises FileNotFoundError as usual.

    >>> images = read_idx("data/MNIST/raw/train-images-idx3-ubyte.gz")   # doctest: +SKIP
    >>> images.shape, images.dtype                                        # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    path = os.fspath(path)
    return parse_idx(read_uncompressed(path), source=path)


def idx_bytes(array):
    """Return the IDX encoding (uncompressed bytes) of ``array``."""
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(
            f"IDX cannot store dtype {array.dtype}: expected one of {_describe_codes()}"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path, array, compress=False):
    """Write ``array`` to ``path`` as an IDX file, gzipped when ``compress`` is true.

    The file name is used as given (no ``.gz`` is added). Returns the path.
    """
    data = idx_bytes(array)
    if compress:
        # mtime=0 makes the output reproducible, byte for byte.
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return path
