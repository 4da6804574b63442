"""Fetching one batch from a dataset: the samples at a list of indices, by ``__getitems__``
when the dataset has it (tinyconv's datasets return the whole batch already stacked: the fast
path of tinyconv/data/dataloader.py), else item by item, then collated. The fetchers run in
the main process or in a worker (tinyconv/data/_worker.py).
"""

import itertools

import numpy as np

from tinyconv.data.collate import _unstack, default_collate
from tinyconv.tensor import Tensor


def _fetch_batch(dataset, indices, collate_fn):
    """One batch: the samples at ``indices``, collated (the fast path: see the module doc)."""
    if hasattr(dataset, "__getitems__"):
        samples = dataset.__getitems__(indices)
        if isinstance(samples, list):  # torch's convention: a list of samples
            return collate_fn(samples)
        if collate_fn is default_collate:  # tinyconv's: a tuple of stacked fields
            return [Tensor._wrap(np.ascontiguousarray(field)) for field in samples]
        return collate_fn(_unstack(samples))
    return collate_fn([dataset[i] for i in indices])


class _Fetcher:
    """``fetcher(dataset, indices)``: a batch (or, without batching, one converted sample).

    A plain class, so that it pickles for the "spawn" start method when ``collate_fn`` does.
    """

    def __init__(self, collate_fn, auto_collation):
        self.collate_fn, self.auto_collation = collate_fn, auto_collation

    def __call__(self, dataset, indices):
        if self.auto_collation:
            return _fetch_batch(dataset, indices, self.collate_fn)
        return self.collate_fn(dataset[indices])


class _IterableFetcher:
    """For an ``IterableDataset``: the next samples of this process's pass over it.

    ``start_epoch`` begins a new pass; a call asks for as many samples as there are (dummy)
    indices and raises StopIteration when the pass is over (or, with ``drop_last``, when
    only an incomplete batch is left), as torch's fetcher does.
    """

    def __init__(self, collate_fn, auto_collation, drop_last):
        self.collate_fn, self.auto_collation = collate_fn, auto_collation
        self.drop_last = drop_last
        self.samples = None

    def start_epoch(self, dataset):
        self.samples = iter(dataset)

    def __call__(self, dataset, indices):
        if not self.auto_collation:
            return self.collate_fn(next(self.samples))
        batch = list(itertools.islice(self.samples, len(indices)))
        if not batch or (self.drop_last and len(batch) < len(indices)):
            raise StopIteration
        return self.collate_fn(batch)


def fetch_batch(dataset, indices):
    """Return ``(images, labels)`` NumPy arrays for ``indices``, via ``__getitems__`` when the
    dataset has tinyconv's stacked one, else stacking ``dataset[i]`` sample by sample."""
    if hasattr(dataset, "__getitems__"):
        stacked = dataset.__getitems__(indices)
        if not isinstance(stacked, list):
            return stacked
        samples = stacked
    else:
        samples = [dataset[int(i)] for i in indices]
    images = np.stack([np.asarray(image) for image, _ in samples])
    labels = np.asarray([np.asarray(label) for _, label in samples])
    return images, labels
