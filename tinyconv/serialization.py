"""Saving and loading checkpoints: ``tinyconv.save`` / ``tinyconv.load``.

The suffix picks the format written: ``.pt`` and ``.pth`` get PyTorch's own zip format (see
:mod:`tinyconv._pth`), which ``torch.load(path, weights_only=True)`` reads; every other suffix
gets tinyconv's format, described here. ``load`` tells the formats apart by their content.

A checkpoint is a nested structure of dicts, lists, tuples, numbers, strings, None and arrays
(tinyconv Tensors, NumPy arrays or CPU torch tensors) — what ``state_dict()`` of a model, an
optimizer or a scheduler returns. It is written as one ``.npz`` (zip) file:

* every array is an entry ``a0``, ``a1``, ... of the zip;
* the structure itself is JSON, stored as entry ``__tinyconv__``, with ``{"__array__": "a0"}`` in
  place of each array and, for each array, its shape, dtype and SHA-256.

Loading uses ``numpy.load(..., allow_pickle=False)`` and ``json``: nothing in the file can run
code (a PyTorch file's pickle goes through a restricted unpickler that calls only tinyconv's own
tensor-building functions). Every array is checked against its recorded shape, dtype and hash,
so a truncated or altered file is refused with a clear :class:`CheckpointError` instead of
loading wrong weights.
Writes are atomic: a temporary file in the target's folder, flushed to disk, then renamed over
the target, so an interrupted save never damages the previous checkpoint. A new file gets the
mode ``open()`` would give it (``0o666`` less the umask), an existing one keeps its mode, and a
path that is a symbolic link is written through the link, as ``open(path, "wb")`` does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import stat
import struct
import tokenize
import zipfile
import zlib

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


def _atomic_write(path: str, write) -> None:
    """Call ``write(f)`` on a temporary file beside the real target, fsync, rename it over.

    ``os.path.realpath`` follows symbolic links, so the link stays and its target is replaced.
    The temporary file is created with mode 0o666 and the kernel applies the umask, exactly as
    for ``open(path, "wb")`` (``tempfile.mkstemp`` would give 0o600); if the target exists, its
    mode is kept, as ``open`` keeps it.
    """
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    while True:
        tmp = os.path.join(folder, f"{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


TORCH_SUFFIXES = (".pt", ".pth")


def save(obj, path) -> None:
    """Write ``obj`` (e.g. ``{"model": model.state_dict(), "epoch": 3}``) to ``path`` atomically.

    A ``.pt`` or ``.pth`` path gets PyTorch's zip format (``torch.load(path,
    weights_only=True)`` reads it, tensors as ``torch.Tensor``); any other gets tinyconv's
    ``.npz`` format with a SHA-256 per array. Never imports torch.
    """
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() in TORCH_SUFFIXES:
        from tinyconv import _pth

        # torch names the archive's folder after the file ("m.pth" -> "m/"), else "archive".
        name = os.path.splitext(os.path.basename(path))[0] or "archive"
        if "/" in name or "\\" in name or not name.isprintable():
            name = "archive"
        _atomic_write(path, lambda f: _pth.write_zip(f, obj, name))
        return
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    tree = _encode(obj, arrays, meta, "checkpoint")
    header = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree, "arrays": meta})
    _atomic_write(path, lambda f: np.savez(
        f, **{_HEADER: np.frombuffer(header.encode(), dtype=np.uint8)}, **arrays))


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


def load(f, map_location=None, *, weights_only=True):
    """Read a checkpoint: tinyconv's ``.npz`` or PyTorch's ``.pt``/``.pth`` (zip or legacy).

    The format is told from the content, not the suffix. tinyconv checkpoints give NumPy
    arrays; PyTorch files give tinyconv Tensors (a Parameter comes back as a Tensor with its
    ``requires_grad``), dicts, OrderedDicts, lists, tuples and plain values. A PyTorch file's
    pickle is read by a restricted unpickler, as ``torch.load(weights_only=True)``: only tensors,
    storages and containers are built, and any other name it asks for is refused, never run.

    ``map_location`` may be None or "cpu" (everything loads to the CPU; a tensor saved from
    CUDA too). ``weights_only=False`` is refused: tinyconv never unpickles arbitrary objects.

    Raises :class:`CheckpointError` naming the file and the problem if it is not a complete,
    unaltered checkpoint (a truncated file, a flipped bit, random bytes, a storage too short
    for its tensors, an unsupported dtype, a pickle asking for code). Nothing is half-loaded.
    """
    if map_location is not None and str(map_location) != "cpu":
        raise ValueError(f"load(): map_location must be None or 'cpu' (tinyconv runs on the "
                         f"CPU), got {map_location!r}")
    if weights_only is False:
        raise ValueError("load(): weights_only=False would unpickle arbitrary objects, which "
                         "can run code; tinyconv only loads tensors and plain values")
    path = os.fspath(f)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as file:
        head = file.read(4)
    if head[:1] == b"\x80":  # a pickle: torch's legacy format, or nothing we read
        from tinyconv import _pth

        with open(path, "rb") as file:
            return _pth.load_legacy(path, file.read())
    if head != b"PK\x03\x04":
        raise CheckpointError(f"{path}: not a checkpoint (expected a zip archive starting "
                              f"with b'PK\\x03\\x04' or a pickle, found {head!r})")
    try:
        with zipfile.ZipFile(path) as zf:
            if _HEADER + ".npy" not in zf.namelist():
                from tinyconv import _pth

                return _pth.load_zip(path, zf)
        return _load_npz(path)
    except CheckpointError:
        raise
    except _DAMAGE_ERRORS as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); "
                              f"the file is truncated or damaged") from None


# What zipfile, zlib, struct and numpy raise on a damaged archive: BadZipFile, RuntimeError
# ("... is encrypted"), NotImplementedError ("compression method ..."), KeyError and
# UnicodeDecodeError (a damaged record name), EOFError, struct.error, zlib.error, ValueError
# (also numpy's header checks), SyntaxError and tokenize.TokenError (numpy parses a damaged
# .npy header with the tokenizer), OSError, json.JSONDecodeError (a ValueError).
_DAMAGE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError,
                  zlib.error, struct.error, KeyError, UnicodeDecodeError, EOFError, ValueError,
                  OSError, io.UnsupportedOperation, SyntaxError, tokenize.TokenError)


def _load_npz(path):
    with np.load(path, allow_pickle=False) as npz:
        names = set(npz.files)
        header = json.loads(npz[_HEADER].tobytes().decode())
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise CheckpointError(f"{path}: format is "
                                  f"{header.get('format') if isinstance(header, dict) else None!r}"
                                  f", expected {FORMAT!r}")
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
    return _decode(header["tree"], arrays)
