"""Samplers: which sample indices a DataLoader visits, and in which order (torch's names).

A sampler is any iterable of indices into a map-style dataset; a batch sampler is an iterable
of lists of indices. ``DataLoader(shuffle=True)`` uses ``RandomSampler``, otherwise
``SequentialSampler``, and wraps either in a ``BatchSampler`` of ``batch_size``.

Random samplers take ``generator`` as everything random in tinyconv.data does: an int seed, a
``numpy.random.Generator``, or None for the global generator (``tinyconv.manual_seed``), see
``tinyconv.data._rng``. Each pass over a random sampler draws a fresh order.
"""

import numbers

import numpy as np

from tinyconv.data import _rng


def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


class Sampler:
    """Base class: subclasses define ``__iter__`` (indices) and usually ``__len__``."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices into ``data_source``.

    Without ``replacement``: a random permutation of all indices (``num_samples`` longer than
    the dataset chains several permutations, the last one cut short). With ``replacement``:
    ``num_samples`` independent uniform draws. ``num_samples`` defaults to ``len(data_source)``.
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={replacement}")
        if num_samples is not None and not _positive_int(num_samples):
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = _rng.make_generator(generator)

    @property
    def num_samples(self):
        # Read at every pass: the dataset's size may change between epochs.
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def __iter__(self):
        # NOTE: the order is drawn here, when iteration starts (not lazily at the first index),
        # so that the DataLoader's draws from the same generator come in a fixed order.
        n, count = len(self.data_source), self.num_samples
        rng = _rng.resolve(self.generator)
        if self.replacement:
            order = rng.integers(0, n, size=count)
        else:
            whole, rest = divmod(count, n) if n else (0, 0)
            parts = [rng.permutation(n) for _ in range(whole)]
            if rest:
                parts.append(rng.permutation(n)[:rest])
            order = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        return iter(order.tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices``, in a random order drawn at every pass."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = _rng.make_generator(generator)

    def __iter__(self):
        order = _rng.resolve(self.generator).permutation(len(self.indices))
        return iter([self.indices[i] for i in order])

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices ``i`` in ``[0, len(weights))`` drawn with probability
    ``weights[i] / sum(weights)`` (the weights need not sum to 1), with or without
    replacement."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not _positive_int(num_samples):
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got "
                             f"replacement={replacement}")
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{weights.shape}")
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise ValueError(f"cannot draw num_samples={num_samples} without replacement from "
                             f"{np.count_nonzero(weights)} non-zero weights")
        self.weights = weights
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = _rng.make_generator(generator)

    def __iter__(self):
        rng = _rng.resolve(self.generator)
        order = rng.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                           p=self.weights / self.weights.sum())
        return iter(order.tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size``; the last list is shorter
    unless ``drop_last``. ``list(BatchSampler(SequentialSampler(range(5)), 2, False))`` is
    ``[[0, 1], [2, 3], [4]]``."""

    def __init__(self, sampler, batch_size, drop_last):
        if not _positive_int(batch_size):
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return -(-len(self.sampler) // self.batch_size)
