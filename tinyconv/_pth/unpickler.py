"""The restricted unpickler: :class:`CheckpointUnpickler` resolves only the names a checkpoint
needs, to the inert records below (a storage, a tensor view), and refuses every other global, so
reading a checkpoint never runs code.
"""

from __future__ import annotations

import collections
import pickle

import numpy as np

from tinyconv._pth.format import STORAGE_DTYPES, TORCH_DTYPES


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
