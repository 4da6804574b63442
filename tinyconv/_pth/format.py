"""The constants of PyTorch's checkpoint format (see tinyconv/_pth/__init__.py): magic numbers,
alignment, torch's storage and dtype names, and the exceptions a damaged file can raise.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
import zlib

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # first pickle of a legacy file
LEGACY_PROTOCOL_VERSION = 1001
ALIGNMENT = 64  # torch aligns every record's data to 64 bytes (for mmap)
FILE_FORMAT_VERSION = b"3\n"  # what torch 1.6 to 2.x write to <name>/version

# torch storage class -> NumPy dtype of its elements, as stored in the file (little-endian).
STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"), "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"), "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "UntypedStorage": np.dtype("u1"),  # raw bytes; _rebuild_tensor_v3 names the dtype
}
STORAGE_NAMES = {dtype: name for name, dtype in STORAGE_DTYPES.items()
                 if name != "UntypedStorage"}
# torch dtypes a pickle may name (``_rebuild_tensor_v3`` passes one for uint16/32/64).
TORCH_DTYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4",
    "int16": "<i2", "int8": "i1", "uint8": "u1", "bool": "?", "uint16": "<u2",
    "uint32": "<u4", "uint64": "<u8",
}
# What zipfile, zlib and struct raise on a damaged archive: BadZipFile, RuntimeError ("... is
# encrypted"), NotImplementedError ("compression method ..."), KeyError and UnicodeDecodeError (a
# damaged record name), EOFError, struct.error, zlib.error, ValueError, OSError.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError,
              zlib.error, struct.error, KeyError, UnicodeDecodeError, EOFError, ValueError,
              OSError)
# What the pickle machine raises on damaged opcodes or arguments (a truncated pickle, a call
# with the wrong arguments, a memo index that was never set, a nesting too deep).
PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
                 IndexError, KeyError, OverflowError, UnicodeDecodeError, RecursionError,
                 MemoryError)
