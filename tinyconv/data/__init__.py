"""Data loading for tinyconv: IDX files, MNIST / Fashion-MNIST, a DataLoader, batch transforms.

Everything here works on NumPy arrays and never imports torch; only the DataLoader's default
``collate_fn`` turns batches into tinyconv Tensors. ``tinyconv.utils.data`` has the same names,
as ``torch.utils.data``. Typical use::

    from tinyconv.data import DataLoader, FashionMNIST, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])
    train = FashionMNIST(train=True, transform=tf)          # root: $TINYCONV_DATA or ./data
    for images, labels in DataLoader(train, batch_size=64, shuffle=True, generator=0):
        ...                                                 # images (64, 1, 28, 28) float32
"""

from tinyconv.data import transforms
from tinyconv.data._worker import WorkerInfo, get_worker_info
from tinyconv.data.cifar import CIFAR10
from tinyconv.data.dataloader import (
    ArrayDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    Subset,
    default_collate,
    default_convert,
    fetch_batch,
)
from tinyconv.data.errors import DataError, DatasetNotFoundError
from tinyconv.data.idx import parse_idx, read_idx, read_uncompressed, write_idx
from tinyconv.data.mnist import MNIST, FashionMNIST, default_root
from tinyconv.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from tinyconv.data.transforms import (
    CenterCrop,
    Compose,
    Grayscale,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
    ToTensor,
)

__all__ = [
    "ArrayDataset",
    "BatchSampler",
    "CIFAR10",
    "CenterCrop",
    "Compose",
    "DataError",
    "DatasetNotFoundError",
    "DataLoader",
    "Dataset",
    "FashionMNIST",
    "Grayscale",
    "IterableDataset",
    "MNIST",
    "Normalize",
    "RandomCrop",
    "RandomSampler",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomVerticalFlip",
    "Resize",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "ToTensor",
    "WeightedRandomSampler",
    "WorkerInfo",
    "default_collate",
    "default_convert",
    "default_root",
    "fetch_batch",
    "get_worker_info",
    "parse_idx",
    "read_idx",
    "read_uncompressed",
    "transforms",
    "write_idx",
]
