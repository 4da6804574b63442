"""DataLoader, ArrayDataset and Subset, named after torch.utils.data.

Batches are fetched in one call, ``dataset.__getitems__(indices) -> (images, labels)`` with
NumPy arrays, so that transforms run on the whole batch; datasets without ``__getitems__`` are
read item by item and stacked. The two arrays then go through ``collate_fn(images, labels)``.

NOTE: unlike PyTorch, ``__getitems__`` returns the two stacked arrays and ``collate_fn`` takes
them as two arguments (PyTorch passes a list of samples). For the PyTorch backend use::

    DataLoader(ds, 64, collate_fn=lambda x, y: (torch.from_numpy(x), torch.from_numpy(y)))
"""

import math

import numpy as np

from tinyconv.data import _rng
from tinyconv.tensor import Tensor


def default_collate(images, labels):
    """Wrap the NumPy batch in tinyconv Tensors (no copy when the arrays are contiguous)."""
    return (Tensor._wrap(np.ascontiguousarray(images)),
            Tensor._wrap(np.ascontiguousarray(labels)))


def fetch_batch(dataset, indices):
    """Return ``(images, labels)`` for ``indices``, via ``__getitems__`` when available."""
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(indices)
    samples = [dataset[int(i)] for i in indices]
    images = np.stack([np.asarray(image) for image, _ in samples])
    labels = np.asarray([label for _, label in samples])
    return images, labels


class ArrayDataset:
    """A dataset over NumPy arrays ``images[i], labels[i]``, like torch's TensorDataset.

    ``transform`` is applied to single images in ``__getitem__`` and to whole batches in
    ``__getitems__``; labels are returned untouched (ints one by one, arrays for batches).
    """

    def __init__(self, images, labels, transform=None):
        self.images = np.asarray(images)
        self.labels = np.asarray(labels)
        if len(self.images) != len(self.labels):
            raise ValueError(f"images and labels differ in length: {len(self.images)} images, "
                             f"{len(self.labels)} labels")
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image, label = self.images[index], self.labels[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, label.item() if isinstance(label, np.generic) else label

    def __getitems__(self, indices):
        indices = np.asarray(indices, dtype=np.intp)
        images = self.images[indices]
        if self.transform is not None:
            images = self.transform(images)
        return images, self.labels[indices]


class Subset:
    """The part of ``dataset`` at ``indices``, in that order, like torch.utils.data.Subset."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.intp)
        if self.indices.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {self.indices.shape}")

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices):
        return fetch_batch(self.dataset, self.indices[np.asarray(indices, dtype=np.intp)])


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size``, optionally shuffled.

    Args:
        dataset: anything with ``__len__`` and ``__getitem__`` (better, ``__getitems__``).
        batch_size: samples per batch; the last batch is smaller unless ``drop_last``.
        shuffle: visit the samples in a fresh random order every epoch.
        drop_last: drop the last batch when it is incomplete.
        generator: the shuffle's randomness: an int seed (the same seed gives the same
            sequence of epochs), a ``numpy.random.Generator``, or None for the global
            generator (``tinyconv.random.default_generator`` when it exists, else a
            process-wide ``numpy.random.default_rng()``).
        collate_fn: ``collate_fn(images, labels)`` turns each NumPy batch into what the loop
            gets; the default makes tinyconv Tensors.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None,
                 collate_fn=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = _rng.make_generator(generator)
        self.collate_fn = default_collate if collate_fn is None else collate_fn

    def __len__(self):
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        # The order is drawn when iteration starts, so each epoch gets its own permutation.
        if self.shuffle:
            order = _rng.resolve(self.generator).permutation(n)
        else:
            order = np.arange(n)
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.collate_fn(*fetch_batch(self.dataset, indices))
