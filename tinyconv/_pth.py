"""PyTorch's own checkpoint format (``.pt`` / ``.pth``), read and written without torch.

What ``torch.save(obj, "m.pth")`` writes is a zip archive, stored uncompressed, whose records all
sit in one folder named after the file (``m/``):

* ``m/data.pkl``: ``obj`` as a pickle (protocol 2). Each tensor is the call
  ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  backward_hooks)`` and each storage is a *persistent id*, the tuple
  ``("storage", torch.FloatStorage, key, "cpu", numel)``: the pickle names the storage, the
  bytes live elsewhere. A tensor is a strided view of its storage, so tensors can share one
  storage (``t`` and ``t[::2]``) and a view can start at an offset;
* ``m/data/<key>``: the raw bytes of each storage, little-endian, each record's data aligned to
  64 bytes (a padding "extra field" ``FB`` in the record's local header does that);
* ``m/byteorder`` (``little``), ``m/version`` (``3``), ``m/.format_version``,
  ``m/.storage_alignment`` and ``m/.data/serialization_id``.

The legacy format (``torch.save(..., _use_new_zipfile_serialization=False)``, torch < 1.6) is five
pickles in a row: a magic number, the protocol version 1001, a dict of system info, the object
(with 6-tuple persistent ids), the list of storage keys, and then each storage as its element
count (int64, little-endian) followed by its bytes.

**Reading never runs code.** A pickle is a small program: its ``GLOBAL`` opcode imports any
name (``os.system``) and ``REDUCE`` calls it. :class:`CheckpointUnpickler` resolves only the names
a checkpoint needs, to tinyconv's *own* functions (``_rebuild_tensor_v2`` here builds a record of
the view, not a torch tensor), and refuses every other global. Tensors are then cut from the
storages with ``numpy.lib.stride_tricks.as_strided`` after checking that every view lies inside
its storage, and copied so that each result owns its memory.

**Writing** emits the pickle opcodes directly (the ``pickle`` module would have to import torch
to write ``torch.FloatStorage``), and the zip with :mod:`zipfile`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from tinyconv.nn.modules.module import Parameter
from tinyconv.serialization import CheckpointError, _as_array

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


# ----- what the unpickler hands out -----------------------------------------------------------

class _Inert:
    """Base of the placeholders below: a pickle's BUILD opcode may not change them."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"the pickle tries to set the state of a "
                                     f"{type(self).__name__}; a checkpoint never does")


class _StorageType(_Inert):
    """Stands for ``torch.FloatStorage`` and friends; ``dtype`` is None for unsupported ones."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _TorchDtype(_Inert):
    """Stands for ``torch.float32`` and friends (an argument of ``_rebuild_tensor_v3``)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _Storage(_Inert):
    """A storage named by a persistent id: ``numel`` elements of ``dtype``, filled in later.

    A legacy file can also name a *view* of a storage: ``base`` is then the whole storage and
    this one starts ``base_offset`` elements into it.
    """

    __slots__ = ("key", "dtype", "numel", "data", "big_endian", "base", "base_offset")

    def __init__(self, key, dtype, numel, base=None, base_offset=0):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.base, self.base_offset = base, base_offset
        self.data = None  # 1-d array of numel elements, once read
        self.big_endian = False  # the file's byte order (its "byteorder" record)


class _TensorView(_Inert):
    """A tensor to cut from a storage: what ``_rebuild_tensor_v2`` describes."""

    __slots__ = ("storage", "offset", "size", "stride", "requires_grad", "dtype")

    def __init__(self, storage, offset, size, stride, requires_grad, dtype):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.requires_grad, self.dtype = requires_grad, dtype


def _check_int_tuple(value, what):
    if not isinstance(value, tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise pickle.UnpicklingError(f"a tensor's {what} must be a tuple of non-negative ints, "
                                     f"the pickle gives {value!r}")


def _tensor_view(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                 dtype=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"a tensor's storage must be a persistent id, the pickle "
                                     f"gives {type(storage).__name__}")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) \
            or storage_offset < 0:
        raise pickle.UnpicklingError(f"a tensor's storage offset must be a non-negative int, "
                                     f"the pickle gives {storage_offset!r}")
    _check_int_tuple(size, "size")
    _check_int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"a tensor's size {size} and stride {stride} differ in "
                                     f"length")
    if not isinstance(requires_grad, bool):
        raise pickle.UnpicklingError(f"requires_grad must be a bool, got {requires_grad!r}")
    if backward_hooks:  # hooks are functions: never in a checkpoint worth loading
        raise pickle.UnpicklingError("a tensor carries backward hooks; they are not loaded")
    if metadata:  # e.g. a conjugate or negative bit: values would differ from the storage's
        raise pickle.UnpicklingError(f"a tensor carries metadata {metadata!r}, which tinyconv "
                                     f"does not support")
    return _TensorView(storage, storage_offset, size, stride, requires_grad, dtype)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
    """Stands for ``torch._utils._rebuild_tensor_v2``: a view of a typed storage."""
    return _tensor_view(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                        metadata=metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    """Stands for ``torch._utils._rebuild_tensor_v3``: a view of raw bytes as ``dtype``."""
    if not isinstance(dtype, _TorchDtype):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v3 needs a torch dtype, got {dtype!r}")
    return _tensor_view(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                        dtype=dtype.dtype, metadata=metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """Stands for ``torch._utils._rebuild_parameter(_with_state)``: a Parameter is its tensor."""
    if not isinstance(data, _TensorView) or not isinstance(requires_grad, bool):
        raise pickle.UnpicklingError("_rebuild_parameter needs a tensor and a bool")
    if backward_hooks or state:
        raise pickle.UnpicklingError("a Parameter carries hooks or Python state; not loaded")
    data.requires_grad = requires_grad
    return data


def _latin1_bytes(text, encoding):
    """Stands for ``_codecs.encode``: protocol-2 pickles spell ``bytes`` as latin-1 text."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({text!r:.40}, {encoding!r}) is not the "
                                     f"latin-1 spelling of bytes")
    return text.encode("latin-1")


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global that a checkpoint never needs."""


class CheckpointUnpickler(pickle.Unpickler):
    """Unpickles tensors, storages, OrderedDicts and plain Python values; refuses the rest.

    ``find_class`` is the only way a pickle reaches a name (the GLOBAL, STACK_GLOBAL, INST and
    EXT opcodes all go through it), so the names below are all a file can ever call, and each
    is tinyconv's own pure function or a plain type.
    """

    ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch", "Size"): tuple,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def __init__(self, file, storages):
        super().__init__(file, encoding="utf-8")
        self.storages = storages  # key -> _Storage, shared by all tensors of the file

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        if module in ("torch", "torch.storage") and name.endswith("Storage"):
            return _StorageType(name, STORAGE_DTYPES.get(name))
        if module == "torch" and name in TORCH_DTYPES:
            return _TorchDtype(name, np.dtype(TORCH_DTYPES[name]))
        hint = ("a TorchScript archive (torch.jit.save) holds code; load it with torch.jit.load"
                if module.startswith("__torch__") else
                "only tensors, state_dicts and plain Python values are loaded, as "
                "torch.load(weights_only=True) does; save model.state_dict(), not the model")
        raise RefusedGlobal(f"refused global '{module}.{name}' ({hint}); nothing in the file "
                            f"was run")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) not in (5, 6):
            raise pickle.UnpicklingError(f"persistent id {pid!r:.80} is not a storage tuple")
        kind, storage_type, key, location, numel = pid[:5]
        if kind not in ("storage", b"storage"):
            raise pickle.UnpicklingError(f"persistent id of kind {kind!r:.40}; only 'storage' "
                                         f"is known")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"storage type {storage_type!r:.40} is not a torch "
                                         f"storage class")
        if storage_type.dtype is None:
            raise pickle.UnpicklingError(
                f"unsupported dtype: torch.{storage_type.name} (tinyconv reads "
                f"{', '.join(sorted(STORAGE_DTYPES))}); convert it before saving, e.g. "
                f"tensor.float()")
        if not isinstance(key, str) or not isinstance(location, (str, bytes)) \
                or not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage id {pid!r:.120}")
        storage = self._storage(key, storage_type.dtype, numel)
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return storage
        # Legacy files only: (view_key, offset, size) names a slice of the storage.
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and all(isinstance(v, int) and v >= 0 for v in view[1:])):
            raise pickle.UnpicklingError(f"malformed storage view {view!r:.80}")
        view_key, offset, size = view
        if view_key not in self.storages:
            self.storages[view_key] = _Storage(view_key, storage.dtype, size, storage, offset)
        return self.storages[view_key]

    def _storage(self, key, dtype, numel):
        if key not in self.storages:
            self.storages[key] = _Storage(key, dtype, numel)
        storage = self.storages[key]
        if storage.dtype != dtype or storage.numel != numel or storage.base is not None:
            raise pickle.UnpicklingError(f"storage {key!r} is named twice with different "
                                         f"dtypes or sizes")
        return storage


# ----- reading --------------------------------------------------------------------------------

def _fill_storage(storage, raw, big_endian, where):
    """Set ``storage.data`` from its bytes, after checking there are exactly enough of them."""
    need = storage.numel * storage.dtype.itemsize
    if len(raw) != need:
        raise CheckpointError(f"{where} holds {len(raw)} bytes, but the pickle says "
                              f"{storage.numel} elements of {storage.dtype.name} ({need} bytes)")
    dtype = storage.dtype.newbyteorder(">") if big_endian else storage.dtype
    storage.data = np.frombuffer(raw, dtype=dtype)
    storage.big_endian = big_endian


def _cut_tensor(view, path):
    """The tensor a :class:`_TensorView` describes, as a tinyconv Tensor owning its memory."""
    from tinyconv.tensor import Tensor

    storage = view.storage
    root = storage.base if storage.base is not None else storage
    if storage.base is not None:  # a legacy view: a slice of the whole storage
        base = storage.base.data
        if base is None or storage.base_offset + storage.numel > len(base):
            raise CheckpointError(f"{path}: storage view {storage.key!r} reaches past the end "
                                  f"of storage {storage.base.key!r}")
        elements = base[storage.base_offset:storage.base_offset + storage.numel]
    else:
        elements = storage.data
    if elements is None:
        raise CheckpointError(f"{path}: storage {storage.key!r} is used by a tensor but its "
                              f"data is not in the file")
    if view.dtype is not None:  # _rebuild_tensor_v3: the storage is raw bytes
        count = len(elements) // view.dtype.itemsize
        order = ">" if root.big_endian else "<"
        elements = elements[:count * view.dtype.itemsize].view(view.dtype.newbyteorder(order))
    if 0 in view.size:
        last = -1  # an empty tensor reads nothing
    else:
        last = view.offset + sum((n - 1) * s for n, s in zip(view.size, view.stride, strict=True))
    if last >= len(elements):
        raise CheckpointError(f"{path}: a tensor of size {view.size}, stride {view.stride} at "
                              f"offset {view.offset} needs {last + 1} elements, storage "
                              f"{storage.key!r} has only {len(elements)}")
    itemsize = elements.dtype.itemsize
    window = np.lib.stride_tricks.as_strided(
        elements[view.offset:] if last >= 0 else elements[:0], shape=view.size,
        strides=[s * itemsize for s in view.stride], writeable=False)
    arr = window.astype(elements.dtype.newbyteorder("="), copy=True)  # owned, native order
    tensor = Tensor._wrap(arr)
    if view.requires_grad and arr.dtype.kind == "f":
        tensor.requires_grad = True
    return tensor


def _materialize(obj, path, memo):
    """Replace every :class:`_TensorView` in ``obj`` by its Tensor (containers in place)."""
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _TensorView):
        result = memo[id(obj)] = _cut_tensor(obj, path)
        return result
    if isinstance(obj, _Inert):
        raise CheckpointError(f"{path}: a bare {type(obj).__name__} outside a tensor; not a "
                              f"checkpoint tinyconv can read")
    if isinstance(obj, dict):
        memo[id(obj)] = obj
        for key, value in obj.items():
            if isinstance(key, _Inert):
                raise CheckpointError(f"{path}: a tensor or storage used as a dict key")
            obj[key] = _materialize(value, path, memo)
        for name, value in getattr(obj, "__dict__", {}).items():  # OrderedDict's _metadata
            setattr(obj, name, _materialize(value, path, memo))
        return obj
    if isinstance(obj, list):
        memo[id(obj)] = obj
        obj[:] = [_materialize(v, path, memo) for v in obj]
        return obj
    if isinstance(obj, tuple):
        result = memo[id(obj)] = tuple(_materialize(v, path, memo) for v in obj)
        return result
    return obj


def _materialize_all(obj, path):
    try:
        return _materialize(obj, path, {})
    except RecursionError:
        raise CheckpointError(f"{path}: containers nested too deeply") from None


def _unpickle(file, storages, path):
    """The next pickle in ``file``; a refused global or damaged opcodes become CheckpointError."""
    try:
        return CheckpointUnpickler(file, storages).load()
    except RefusedGlobal as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except PICKLE_ERRORS as exc:
        raise CheckpointError(f"{path}: damaged pickle ({type(exc).__name__}: {exc})") from None


def _find_archive_folder(names, path):
    """The folder of ``<folder>/data.pkl``, the one pickle of a torch zip checkpoint."""
    folders = [n[:-len("/data.pkl")] for n in names
               if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(folders) != 1:
        raise CheckpointError(f"{path}: a zip archive that is neither a tinyconv checkpoint "
                              f"(no '__tinyconv__' entry) nor a PyTorch one (expected one "
                              f"'<name>/data.pkl', found {len(folders)})")
    return folders[0]


def load_zip(path, zf):
    """Read a checkpoint in torch's zip format from the open archive ``zf``."""
    file_size = os.path.getsize(path)
    infos = {info.filename: info for info in zf.infolist()}
    folder = _find_archive_folder(infos, path)

    def read(name):
        info = infos.get(f"{folder}/{name}")
        if info is None:
            raise CheckpointError(f"{path}: record '{folder}/{name}' is missing")
        # Sizes are checked before reading, so a damaged header cannot make us allocate more
        # than the file could hold (deflate expands at most 1032:1).
        stored = info.compress_type == zipfile.ZIP_STORED
        deflated = info.compress_type == zipfile.ZIP_DEFLATED
        if info.compress_size > file_size \
                or (stored and info.file_size != info.compress_size) \
                or (deflated and info.file_size > 1032 * info.compress_size + 64) \
                or not (stored or deflated):
            raise CheckpointError(f"{path}: record '{info.filename}' has a damaged header")
        return zf.read(info)  # zipfile checks the CRC-32 of every record it reads

    # The small records are all read, so that zipfile checks their CRC-32 too; torch refuses a
    # file without a version record.
    small = {name[len(folder) + 1:]: read(name[len(folder) + 1:]) for name in infos
             if name.startswith(folder + "/") and not name.startswith(f"{folder}/data/")}
    if not small.get("version", small.get(".data/version", b"")).strip().isdigit():
        raise CheckpointError(f"{path}: the record '{folder}/version' is missing or damaged")
    byteorder = small.get("byteorder", b"little")
    if byteorder not in (b"little", b"big"):
        raise CheckpointError(f"{path}: byteorder record is {byteorder!r:.40}, expected "
                              f"b'little' or b'big'")
    storages: dict[str, _Storage] = {}
    obj = _unpickle(io.BytesIO(small["data.pkl"]), storages, path)
    for key, storage in storages.items():
        _fill_storage(storage, read(f"data/{key}"), byteorder == b"big",
                      f"{path}: storage '{folder}/data/{key}'")
    return _materialize_all(obj, path)


def load_legacy(path, data):
    """Read a checkpoint in torch's legacy (pre-1.6) format from its bytes."""
    f = io.BytesIO(data)
    storages: dict[str, _Storage] = {}

    def unpickle():
        return _unpickle(f, storages, path)

    if unpickle() != MAGIC_NUMBER:
        raise CheckpointError(f"{path}: a pickle that is not a PyTorch checkpoint (no torch "
                              f"magic number); pickles are only read as torch checkpoints")
    if unpickle() != LEGACY_PROTOCOL_VERSION:
        raise CheckpointError(f"{path}: legacy torch checkpoint of an unknown protocol version")
    info = unpickle()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise CheckpointError(f"{path}: legacy torch checkpoint without little-endian system "
                              f"info")
    obj = unpickle()
    keys = unpickle()
    roots = {key for key, storage in storages.items() if storage.base is None}
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) \
            or set(keys) != roots:
        raise CheckpointError(f"{path}: the list of storages does not match the tensors")
    for key in keys:
        storage = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointError(f"{path}: the file ends before storage {key!r}")
        (count,) = struct.unpack("<q", header)
        if count != storage.numel:
            raise CheckpointError(f"{path}: storage {key!r} holds {count} elements, the pickle "
                                  f"says {storage.numel}")
        nbytes = count * storage.dtype.itemsize
        _fill_storage(storage, f.read(nbytes), False, f"{path}: storage {key!r}")
    if f.read(1):
        raise CheckpointError(f"{path}: unexpected bytes after the last storage")
    return _materialize_all(obj, path)


# ----- writing --------------------------------------------------------------------------------

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
