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

Where each part lives: format.py (the constants), unpickler.py (the restricted unpickler and the
records it hands out), load.py (``load_zip``, ``load_legacy``), save.py (``write_zip``).
"""

from tinyconv._pth.load import load_legacy, load_zip
from tinyconv._pth.save import write_zip

__all__ = ["load_legacy", "load_zip", "write_zip"]
