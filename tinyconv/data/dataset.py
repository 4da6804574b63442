"""The dataset classes of torch.utils.data: ``Dataset`` (map-style: ``__getitem__`` and
``__len__``), ``IterableDataset`` (``__iter__``), ``ArrayDataset`` (arrays indexed together,
with the stacked fast path) and ``Subset``.
"""


import numpy as np


class Dataset:
    """Base class of map-style datasets: define ``__getitem__(index)`` and ``__len__``
    (optionally ``__getitems__(indices)``, see the module docstring)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class IterableDataset(Dataset):
    """Base class of iterable-style datasets: define ``__iter__``, yielding samples.

    The loader batches the samples in the order they come (no sampler, no shuffle). With
    workers, every worker iterates its own copy of the dataset: split the work in ``__iter__``
    with ``get_worker_info()`` (``id``, ``num_workers``), or each sample comes once per worker.
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class ArrayDataset(Dataset):
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


class Subset(Dataset):
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
        chosen = self.indices[np.asarray(indices, dtype=np.intp)]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(chosen)
        return [self.dataset[int(i)] for i in chosen]
