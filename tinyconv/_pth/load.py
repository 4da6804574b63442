"""Reading a checkpoint: unpickle with :class:`CheckpointUnpickler`, fill each storage from its
bytes, then cut every tensor out of its storage after checking the view lies inside it
(``load_zip`` for torch >= 1.6's zip archives, ``load_legacy`` for the older format).
"""

from __future__ import annotations

import io
import os
import struct
import zipfile

import numpy as np

from tinyconv._pth.format import LEGACY_PROTOCOL_VERSION, MAGIC_NUMBER, PICKLE_ERRORS
from tinyconv._pth.unpickler import (
    CheckpointUnpickler,
    RefusedGlobal,
    _Inert,
    _Storage,
    _TensorView,
)
from tinyconv.serialization import CheckpointError


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
