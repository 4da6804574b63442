"""Turning a list of samples into a batch, as torch.utils.data's: ``default_collate`` stacks
arrays, numbers and tinyconv Tensors into Tensors field by field; ``default_convert`` (the
loader's ``collate_fn`` when ``batch_size=None``) only turns arrays into Tensors.
"""

import collections.abc
import numbers

import numpy as np

from tinyconv.tensor import Tensor

_COLLATE_HELP = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
                 "lists; found {}")


def _is_text_array(array):
    return array.dtype.kind in "SaUO"  # strings and objects: nothing to stack


def default_collate(batch):
    """Merge a list of samples into a batch, field by field, as torch's ``default_collate``.

    Given the list ``batch`` of B samples, whose first element is ``elem``:

    * tinyconv Tensors or NumPy arrays of one shape -> one Tensor, shape ``(B, *shape)``;
    * NumPy scalars -> a Tensor of their dtype; Python ints -> int64; floats -> float64;
      bools -> bool;
    * strings -> the list unchanged;
    * dicts -> a dict of collated values, key by key;
    * tuples and lists (all of one length) -> a list (a namedtuple: the same namedtuple) of the
      collated fields: ``[(x0, y0), (x1, y1)] -> [stack(x0, x1), tensor([y0, y1])]``.
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor._wrap(np.stack([sample.detach().numpy() for sample in batch]))
    if isinstance(elem, np.ndarray):
        if _is_text_array(elem):
            raise TypeError(_COLLATE_HELP.format(elem.dtype))
        return Tensor._wrap(np.stack(batch))
    if isinstance(elem, np.generic):
        if _is_text_array(np.asarray(elem)):
            return list(batch)
        return Tensor._wrap(np.asarray(batch))
    if isinstance(elem, bool):
        return Tensor._wrap(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        return Tensor._wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return Tensor._wrap(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([sample[key] for sample in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:  # a mapping type that cannot be built from a dict
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch, strict=True)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(field)) for field in zip(*batch, strict=True)]
        if isinstance(elem, tuple):
            return fields  # a list, as torch does
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_COLLATE_HELP.format(type(elem)))


def default_convert(data):
    """What the loader does to each sample when ``batch_size=None`` (no batching): NumPy
    arrays and scalars become Tensors, inside dicts, tuples and lists too; all else stays."""
    if isinstance(data, np.ndarray) or (isinstance(data, np.generic)
                                        and not _is_text_array(np.asarray(data))):
        return data if _is_text_array(np.asarray(data)) else Tensor._wrap(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return type(data)({key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, (tuple, list)):
        return type(data)(default_convert(value) for value in data)
    return data


def _unstack(stacked):
    """The samples of a stacked batch: ``(images, labels) -> [(images[0], labels[0]), ...]``."""
    return list(zip(*stacked, strict=True))
