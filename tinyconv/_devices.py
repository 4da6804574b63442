"""Devices: tinyconv computes on the CPU only, but speaks PyTorch's device language.

Tutorials open with ``device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")``
and move models and batches with ``.to(device)``. Here ``cuda.is_available()`` is False, so that
line picks the CPU; a ``device("cuda:0")`` can still be built and printed, and only moving a
tensor or a module onto it fails, with one line saying what to do instead.
"""

from __future__ import annotations

import numbers

_KNOWN_TYPES = ("cpu", "cuda", "mps", "xpu", "meta")


class device:  # noqa: N801 - torch's name
    """``device('cpu')``, ``device('cuda:0')``, ``device('cuda', 0)``, ``device(0)``, as torch.

    Only ``cpu`` can hold tinyconv tensors; the others exist so that device-selecting code runs.
    """

    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):  # noqa: A002 - torch's argument name
        if isinstance(type, device):
            self.type, self.index = type.type, type.index
            return
        if isinstance(type, numbers.Integral) and not isinstance(type, bool):
            type, index = "cuda", int(type)  # noqa: A001 - torch.device(0) is cuda:0
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string such as 'cpu' or 'cuda:0', or a "
                            f"device, got {type!r}")
        name, _, idx = type.partition(":")
        if name not in _KNOWN_TYPES:
            raise RuntimeError(f"device(): expected one of {', '.join(_KNOWN_TYPES)} at the "
                               f"start of the device string, got {type!r}")
        if idx:
            if index is not None:
                raise RuntimeError(f"device(): type {type!r} already has an index; do not pass "
                                   f"index={index!r} as well")
            if not idx.isdigit():
                raise RuntimeError(f"device(): invalid device string {type!r}")
            index = int(idx)
        if index is not None and (not isinstance(index, numbers.Integral) or index < 0):
            raise RuntimeError(f"device(): index must be a non-negative int, got {index!r}")
        self.type = name
        self.index = None if index is None else int(index)

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


def require_cpu(dev, what: str = "tensors") -> None:
    """Raise one clear error unless ``dev`` (a device, a string, an int or None) is the CPU."""
    if dev is None:
        return
    d = dev if isinstance(dev, device) else device(dev)
    if d.type != "cpu":
        raise RuntimeError(
            f"tinyconv runs on the CPU only; got device '{d}' for {what}. Use 'cpu' (or "
            f"device = 'cuda' if tinyconv.cuda.is_available() else 'cpu'); to run the same "
            f"network on CUDA, use PyTorch: the examples' --backend torch and `python -m "
            f"parity` run it there.")
