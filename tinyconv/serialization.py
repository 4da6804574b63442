"""Saving and loading checkpoints without pickle: ``tinyconv.save`` / ``tinyconv.load``.

A checkpoint is a nested structure of dicts, lists, tuples, numbers, strings, None and arrays
(tinyconv Tensors, NumPy arrays or CPU torch tensors) — what ``state_dict()`` of a model, an
optimizer or a scheduler returns. It is written as one ``.npz`` (zip) file:

* every array is an entry ``a0``, ``a1``, ... of the zip;
* the structure itself is JSON, stored as entry ``__tinyconv__``, with ``{"__array__": "a0"}`` in
  place of each array and, for each array, its shape, dtype and SHA-256.

Loading uses ``numpy.load(..., allow_pickle=False)`` and ``json``: nothing in the file can run
code. Every array is checked against its recorded shape, dtype and hash, so a truncated or
altered file is refused with a clear :class:`CheckpointError` instead of loading wrong weights.
Writes are atomic: a temporary file in the same folder, flushed to disk, then renamed over the
target, so an interrupted save never damages the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "tinyconv-checkpoint"
VERSION = 1
_HEADER = "__tinyconv__"


class CheckpointError(ValueError):
    """The file is not a valid tinyconv checkpoint (or is damaged)."""


def _contiguous(arr: np.ndarray) -> np.ndarray:
    # NOTE: not np.ascontiguousarray, which turns a 0-d array into a 1-d one.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(_contiguous(arr).reshape(-1).view(np.uint8)).hexdigest()


def _as_array(value):
    """The array behind a tinyconv or torch tensor or a NumPy array; None for anything else."""
    if isinstance(value, np.ndarray):
        return value
    from tinyconv.tensor import Tensor
    if isinstance(value, Tensor):
        return value._data
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return None


def _encode(obj, arrays, meta, where):
    arr = _as_array(obj)
    if arr is not None:
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"save(): array at {where} has dtype {arr.dtype}; only numeric "
                            f"and boolean arrays can be saved")
        name = f"a{len(arrays)}"
        arrays[name] = _contiguous(arr)
        meta[name] = {"shape": list(arr.shape), "dtype": arr.dtype.str, "sha256": _sha256(arr)}
        return {"__array__": name}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save(): dict key {k!r} at {where} must be a str or an int")
            items.append([k, _encode(v, arrays, meta, f"{where}[{k!r}]")])
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, meta, f"{where}[{i}]")
                              for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, meta, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"save(): cannot save an object of type {type(obj).__name__} at {where}; "
                    f"checkpoints hold dicts, lists, tuples, numbers, strings, None and arrays")


def save(obj, path) -> None:
    """Write ``obj`` (e.g. ``{"model": model.state_dict(), "epoch": 3}``) to ``path`` atomically."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    tree = _encode(obj, arrays, meta, "checkpoint")
    header = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree, "arrays": meta})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_HEADER: np.frombuffer(header.encode(), dtype=np.uint8)}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _decode(node, arrays):
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if isinstance(node, dict):
        if "__array__" in node:
            return arrays[node["__array__"]]
        if "__tuple__" in node:
            return tuple(_decode(v, arrays) for v in node["__tuple__"])
        if "__dict__" in node:
            return {k: _decode(v, arrays) for k, v in node["__dict__"]}
        raise CheckpointError(f"unknown node in checkpoint structure: {sorted(node)}")
    return node


def load(path):
    """Read a checkpoint written by :func:`save`; arrays come back as NumPy arrays.

    Raises :class:`CheckpointError` naming the file and the problem if it is not a complete,
    unaltered tinyconv checkpoint (a pickle, a truncated file, random bytes, a changed array).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:1] == b"\x80":
        raise CheckpointError(f"{path}: this is a Python pickle (e.g. from torch.save), not a "
                              f"tinyconv checkpoint; pickles can run code and are never loaded")
    if head != b"PK\x03\x04":
        raise CheckpointError(f"{path}: not a tinyconv checkpoint (expected a .npz zip archive "
                              f"starting with b'PK\\x03\\x04', found {head!r})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if _HEADER not in names:
                raise CheckpointError(f"{path}: a .npz file without the '{_HEADER}' entry; not "
                                      f"a checkpoint written by tinyconv.save()")
            header = json.loads(npz[_HEADER].tobytes().decode())
            if header.get("format") != FORMAT:
                raise CheckpointError(f"{path}: format is {header.get('format')!r}, expected "
                                      f"{FORMAT!r}")
            if header.get("version") != VERSION:
                raise CheckpointError(f"{path}: checkpoint version {header.get('version')!r} "
                                      f"is not supported (this tinyconv reads version {VERSION})")
            arrays = {}
            for name, info in header["arrays"].items():
                if name not in names:
                    raise CheckpointError(f"{path}: array {name} listed in the header is missing")
                arr = npz[name]
                if list(arr.shape) != info["shape"] or arr.dtype.str != info["dtype"]:
                    raise CheckpointError(f"{path}: array {name} should be {info['dtype']} "
                                          f"{tuple(info['shape'])}, found {arr.dtype.str} "
                                          f"{arr.shape}")
                if _sha256(arr) != info["sha256"]:
                    raise CheckpointError(f"{path}: array {name} fails its SHA-256 check (the "
                                          f"file was altered or damaged)")
                arrays[name] = arr
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError,
            json.JSONDecodeError, UnicodeDecodeError, io.UnsupportedOperation) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); "
                              f"the file is truncated or damaged") from None
    return _decode(header["tree"], arrays)
