"""``torchvision.datasets`` for tinyconv: MNIST, FashionMNIST and CIFAR10.

The readers are ``tinyconv.data``'s (same files, same checks, same downloads); these classes
give them torchvision's signatures and items:

* ``MNIST(root, train=True, transform=None, target_transform=None, download=False)``, the files
  in ``root/MNIST/raw/`` (``root/FashionMNIST/raw/``, ``root/cifar-10-batches-py/``), as
  torchvision lays them out, so one folder serves both libraries.
* ``dataset[i]`` is ``(image, label)``: with no transform, the image is what
  ``np.asarray(pil_image)`` gives for torchvision's PIL image, uint8 ``(28, 28)`` for MNIST and
  ``(32, 32, 3)`` for CIFAR-10; ``transforms.ToTensor()`` makes it a float32 Tensor
  ``(C, H, W)`` in [0, 1]. The label is a Python int (after ``target_transform`` if given).
* ``.data``, ``.targets``, ``.classes``, ``.class_to_idx`` as torchvision: MNIST's ``data`` is a
  uint8 Tensor ``(N, 28, 28)`` and ``targets`` an int64 Tensor; CIFAR10's ``data`` a uint8
  ndarray ``(N, 32, 32, 3)`` and ``targets`` a list of ints. Assigning new ones (e.g. a
  subset, or relabelled targets) is seen by both access paths.

A ``DataLoader`` fetches whole batches through ``__getitems__``: when the transform pipeline
is made of ``tinyconv.vision.transforms`` only, it runs once on the whole batch (see that
module's docstring); otherwise item by item. Missing files raise ``DatasetNotFoundError`` (a
RuntimeError, as torchvision's, and a ``tinyconv.data.DataError``) saying which files to put
in which folder.
"""

import numpy as np

from tinyconv.data import cifar, mnist
from tinyconv.tensor import Tensor
from tinyconv.vision.transforms import apply_to_batch, is_batchable

__all__ = ["CIFAR10", "FashionMNIST", "MNIST"]


class _VisionDataset:
    """torchvision's item protocol over ``.data`` and ``.targets`` (read at every access)."""

    def _images(self):
        return np.asarray(self.data)

    def _target(self, index):
        return int(np.asarray(self.targets)[index])

    def _targets_at(self, indices):
        return np.asarray(self.targets)[indices]

    def __getitem__(self, index):
        """``(image, label)``: the transformed image and the (transformed) int label."""
        image = self._images()[index].copy()
        if self.transform is not None:
            image = self.transform(image)
        target = self._target(index)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __getitems__(self, indices):
        """``(images, labels)`` stacked for many indices (what the DataLoader asks for).

        The pipeline runs on the whole batch when it is batchable, else image by image; the
        ``target_transform`` always gets one int at a time, as in torchvision.
        """
        indices = np.asarray(indices, dtype=np.intp)
        if self.transform is None or is_batchable(self.transform):
            images = self._images()[indices]
            if self.transform is not None:
                images = apply_to_batch(self.transform, images)
        else:
            images = np.stack([np.asarray(self.transform(image))
                               for image in self._images()[indices]])
        targets = self._targets_at(indices)
        if self.target_transform is not None:
            targets = np.asarray([self.target_transform(int(t)) for t in targets])
        return images, targets


class MNIST(_VisionDataset, mnist.MNIST):
    """``torchvision.datasets.MNIST``: 60,000 training and 10,000 test digits, 28x28 uint8.

    Files: ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (each may be
    gzipped); ``download=True`` fetches missing ones from torchvision's mirrors, verified by
    md5. See the module docstring for items and attributes.
    """

    def __init__(self, root, train=True, transform=None, target_transform=None,
                 download=False):
        super().__init__(root, train=train, transform=transform,
                         target_transform=target_transform, download=download)
        self.data = Tensor._wrap(self.data)
        self.targets = Tensor._wrap(self.targets)


class FashionMNIST(MNIST, mnist.FashionMNIST):
    """``torchvision.datasets.FashionMNIST``: MNIST's format and API, ten clothing classes.

    Files: ``root/FashionMNIST/raw/...`` (or Debian's ``/usr/share/datasets/fashion-mnist``).
    """


class CIFAR10(_VisionDataset, cifar.CIFAR10):
    """``torchvision.datasets.CIFAR10``: 50,000 training and 10,000 test colour images, 32x32.

    Files: ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``;
    ``download=True`` fetches and checks ``cifar-10-python.tar.gz`` and extracts them.
    """

    def __init__(self, root, train=True, transform=None, target_transform=None,
                 download=False):
        super().__init__(root, train=train, transform=transform,
                         target_transform=target_transform, download=download)
        self.targets = self.targets.tolist()

    def _target(self, index):
        return int(self.targets[index])

    def _targets_at(self, indices):
        # A list lookup per label (microseconds per batch): the list may have been edited.
        return np.asarray([self.targets[i] for i in indices], dtype=np.int64)
