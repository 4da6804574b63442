"""Writing a checkpoint as ``torch.save`` does: :class:`PickleWriter` emits the pickle opcodes
directly (the ``pickle`` module would have to import torch to name ``torch.FloatStorage``), and
``write_zip`` lays the records out in the zip archive, each aligned to 64 bytes.
"""

from __future__ import annotations

import collections
import hashlib
import struct
import zipfile

import numpy as np

from tinyconv._pth.format import ALIGNMENT, FILE_FORMAT_VERSION, STORAGE_NAMES
from tinyconv.nn.modules.module import Parameter
from tinyconv.serialization import _as_array


class PickleWriter:
    """Writes ``obj`` as a protocol-2 pickle, tensors as torch does, without importing torch.

    Only the opcodes a checkpoint needs: containers, numbers, strings, None, and for each tensor
    ``GLOBAL torch._utils._rebuild_tensor_v2`` called on a storage persistent id.
    """

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.storages: list[np.ndarray] = []  # data/<i> is storages[i]
        self._storage_keys: dict[int, int] = {}  # id(array) -> key, so shared arrays share
        self._kept: list = []  # keeps those arrays alive, so their ids stay unique

    def dump(self, obj) -> bytes:
        self.save(obj, "checkpoint")
        self.out += b"."  # STOP
        return bytes(self.out)

    def global_(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def call(self, module, name, args, where):
        """``module.name(*args)``: GLOBAL, the argument tuple, REDUCE."""
        self.global_(module, name)
        self.tuple_(args, where)
        self.out += b"R"

    def tuple_(self, items, where):
        if not items:
            self.out += b")"  # EMPTY_TUPLE
            return
        self.out += b"("  # MARK
        for i, item in enumerate(items):
            self.save(item, f"{where}[{i}]")
        self.out += b"t"  # TUPLE

    def save(self, obj, where):
        arr = _as_array(obj)
        if arr is not None:
            if isinstance(obj, Parameter):  # torch pickles a Parameter around its tensor
                self.call("torch._utils", "_rebuild_parameter",
                          (_TensorArg(arr, False), obj.requires_grad, collections.OrderedDict()),
                          where)
            else:
                self.tensor(arr, bool(getattr(obj, "requires_grad", False)), where)
        elif isinstance(obj, _TensorArg):
            self.tensor(obj.arr, obj.requires_grad, where)
        elif isinstance(obj, np.generic):
            self.save(obj.item(), where)
        elif obj is None:
            self.out += b"N"
        elif isinstance(obj, bool):
            self.out += b"\x88" if obj else b"\x89"  # NEWTRUE / NEWFALSE
        elif isinstance(obj, int):
            self.int_(obj)
        elif isinstance(obj, float):
            self.out += b"G" + struct.pack(">d", obj)  # BINFLOAT
        elif isinstance(obj, str):
            raw = obj.encode("utf-8", "surrogatepass")
            self.out += b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE
        elif isinstance(obj, tuple):
            self.tuple_(obj, where)
        elif isinstance(obj, list):
            self.out += b"]"  # EMPTY_LIST
            if obj:
                self.out += b"("
                for i, item in enumerate(obj):
                    self.save(item, f"{where}[{i}]")
                self.out += b"e"  # APPENDS
        elif isinstance(obj, dict):
            if isinstance(obj, collections.OrderedDict):  # a state_dict: torch's type
                self.call("collections", "OrderedDict", (), where)
            else:
                self.out += b"}"  # EMPTY_DICT
            if obj:
                self.out += b"("
                for key, value in obj.items():
                    if _as_array(key) is not None or isinstance(key, (dict, list)):
                        raise TypeError(f"save(): dict key {key!r:.40} at {where} must be a "
                                        f"number, a string or a tuple")
                    self.save(key, f"{where} key")
                    self.save(value, f"{where}[{key!r}]")
                self.out += b"u"  # SETITEMS
        else:
            raise TypeError(f"save(): cannot save an object of type {type(obj).__name__} at "
                            f"{where}; checkpoints hold dicts, lists, tuples, numbers, strings, "
                            f"None and tensors")

    def int_(self, value):
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])  # BININT1
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)  # BININT2
        elif -2**31 <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)  # BININT
        else:  # LONG1: little-endian two's complement
            raw = value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "little",
                                 signed=True)
            self.out += b"\x8a" + bytes([len(raw)]) + raw

    def tensor(self, arr, requires_grad, where):
        """``_rebuild_tensor_v2(storage, 0, size, contiguous stride, requires_grad, {})``."""
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        name = STORAGE_NAMES.get(dtype)
        if name is None:
            raise TypeError(f"save(): tensor at {where} has dtype {arr.dtype}; a .pt/.pth file "
                            f"holds {', '.join(sorted(d.name for d in STORAGE_NAMES))}")
        key = self._storage_keys.get(id(arr))
        if key is None:
            key = self._storage_keys[id(arr)] = len(self.storages)
            self._kept.append(arr)
            if not (arr.flags.c_contiguous and arr.dtype == dtype):
                arr = arr.astype(dtype, order="C")  # a copy, little-endian, contiguous
            self.storages.append(arr.reshape(-1))
        stride, step = [], 1
        for n in reversed(arr.shape):  # C order; torch counts an empty dim as 1 here
            stride.append(step)
            step *= max(n, 1)
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("  # MARK (the arguments), MARK (the persistent id)
        self.save("storage", where)
        self.global_("torch", name)
        self.save(str(key), where)
        self.save("cpu", where)
        self.int_(arr.size)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self.int_(0)  # storage_offset
        self.tuple_(tuple(int(n) for n in arr.shape), where)
        self.tuple_(tuple(reversed(stride)), where)
        self.save(bool(requires_grad) and arr.dtype.kind == "f", where)
        self.call("collections", "OrderedDict", (), where)  # backward_hooks
        self.out += b"tR"  # TUPLE, REDUCE


class _TensorArg:
    """The tensor inside a Parameter, pickled with requires_grad=False (as torch does)."""

    def __init__(self, arr, requires_grad):
        self.arr, self.requires_grad = arr, requires_grad


class _NoSeek:
    """A file that cannot seek, so that zipfile writes what torch's writer (miniz) writes.

    Without seek, each record's CRC and sizes follow its data in a 16-byte *data descriptor*
    rather than being patched into its header; torch relies on that layout when it computes
    storage offsets for ``torch.load(mmap=True)``.
    """

    def __init__(self, f):
        self.f = f

    def write(self, data):
        return self.f.write(data)

    def tell(self):
        return self.f.tell()

    def flush(self):
        self.f.flush()

    def seek(self, *args):
        raise OSError("not seekable")


def _write_record(zf, out, name, data):
    """One uncompressed record whose data starts at a multiple of :data:`ALIGNMENT`."""
    data = memoryview(data).cast("B")
    info = zipfile.ZipInfo(name)  # dated 1980-01-01 00:00, as torch's
    info.compress_type = zipfile.ZIP_STORED
    zip64_extra = 20 if len(data) * 1.05 > zipfile.ZIP64_LIMIT else 0  # zipfile's rule
    header = 30 + len(name.encode("utf-8")) + 4 + zip64_extra  # fixed part, name, "FB" + size
    pad = -(out.tell() + header) % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, data)
    info.extra = b""  # the padding belongs in the local header only, as in torch's files


def write_zip(f, obj, archive_name):
    """Write ``obj`` to the binary file ``f`` in torch's zip format."""
    writer = PickleWriter()
    pickled = writer.dump(obj)
    out = _NoSeek(f)
    digest = hashlib.sha256(pickled)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        folder = archive_name
        _write_record(zf, out, f"{folder}/data.pkl", pickled)
        _write_record(zf, out, f"{folder}/.format_version", b"1")
        _write_record(zf, out, f"{folder}/.storage_alignment", str(ALIGNMENT).encode())
        _write_record(zf, out, f"{folder}/byteorder", b"little")
        for key, arr in enumerate(writer.storages):
            _write_record(zf, out, f"{folder}/data/{key}", arr)
            digest.update(arr)
        _write_record(zf, out, f"{folder}/version", FILE_FORMAT_VERSION)
        # torch's id is 40 decimal digits; ours is derived from the content, so that saving
        # the same object twice gives the same bytes.
        serial = str(int.from_bytes(digest.digest(), "little") % 10**40).zfill(40)
        _write_record(zf, out, f"{folder}/.data/serialization_id", serial.encode())
