"""CIFAR-10, read from the official "python version" batches without letting them run code.

Layout (torchvision's, from ``cifar-10-python.tar.gz``)::

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   10,000 training images each
    <root>/cifar-10-batches-py/test_batch                        10,000 test images
    <root>/cifar-10-batches-py/batches.meta                      the class names

Each batch is a Python pickle of a dict: ``"data"`` a uint8 array (10000, 3072) holding the
red, green and blue 32x32 planes of each image in turn, ``"labels"`` a list of ints in 0..9.
A pickle can name any Python callable to run while loading, so these files are read with
:class:`RestrictedUnpickler`, which accepts exactly the few NumPy names an array needs and
refuses everything else: a doctored file raises :class:`DataError` instead of running code.

``data`` is uint8 (N, 32, 32, 3) (height, width, channel, as torchvision); ``targets`` int64.
The batch transforms of ``tinyconv.data.transforms`` work on channels-first float batches, so
put ``ToTensor()`` first: ``Compose([ToTensor(), RandomCrop(32, padding=4),
RandomHorizontalFlip(), Normalize(...)])``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile

import numpy as np

from tinyconv.data.download import DEFAULT_TIMEOUT
from tinyconv.data.download import download as download_url
from tinyconv.data.errors import DataError, DatasetNotFoundError
from tinyconv.data.mnist import ENV_VAR, default_root


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and NumPy arrays; refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),  # rebuilds an ndarray (NumPy 1 name)
        ("numpy._core.multiarray", "_reconstruct"),  # ... (NumPy 2 name)
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1'):
        # a pure conversion, needed to read files in the same format written today.
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR-10 "
                                     f"batch file")


def restricted_load(data: bytes, source: str):
    """Unpickle ``data`` (a CIFAR batch) with :class:`RestrictedUnpickler`."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, ImportError) as exc:
        raise DataError(f"{source}: not a valid CIFAR-10 batch ({type(exc).__name__}: {exc})"
                        ) from None
    # The official files come from Python 2, whose str keys arrive as bytes; files written by
    # Python 3 have str keys. Accept both, as str.
    if isinstance(obj, dict):
        obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    return obj


class CIFAR10:
    """The CIFAR-10 images: 50,000 training and 10,000 test colour images, 32x32, 10 classes.

    Same arguments as ``torchvision.datasets.CIFAR10``; ``transform`` gets NumPy batches
    (B, 32, 32, 3) uint8 in ``__getitems__`` (what the DataLoader uses) and a batch of one in
    ``__getitem__``. ``resources`` (file -> md5), ``archive_md5`` and ``num_samples`` may be
    overridden, e.g. by tests that write small files in the same format.
    """

    base_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    archive_md5 = "c58f30108f718f92721af3b95e74349a"
    train_files = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                   "data_batch_5"]
    test_files = ["test_batch"]
    resources = {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    }
    num_samples = {"train": 50000, "test": 10000}
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    download_timeout = DEFAULT_TIMEOUT

    def __init__(self, root=None, train=True, transform=None, target_transform=None,
                 download=True):
        self.root = os.path.expanduser(os.fspath(default_root() if root is None else root))
        self.train = bool(train)
        self.split = "train" if self.train else "test"
        self.transform, self.target_transform = transform, target_transform
        names = (self.train_files if self.train else self.test_files) + ["batches.meta"]
        self._ensure_files(names, download)
        self.data, self.targets = self._load(names[:-1])
        meta = self._read(os.path.join(self.folder, "batches.meta"))
        label_names = meta.get("label_names") if isinstance(meta, dict) else None
        if isinstance(label_names, list) and len(label_names) == len(self.classes):
            self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in label_names]

    @property
    def folder(self):
        return os.path.join(self.root, self.base_folder)

    # ---- getting the files ------------------------------------------------------------------

    def _ensure_files(self, names, download):
        missing = [n for n in names if not os.path.isfile(os.path.join(self.folder, n))]
        if not missing:
            return
        failure = None
        if download:
            failure = self._download_and_extract()
        still = [n for n in missing if not os.path.isfile(os.path.join(self.folder, n))]
        if still:
            lines = [f"CIFAR10 ({self.split} split): data files not found.",
                     f"Searched folder:\n  {self.folder}", "Expected files:"]
            lines += [f"  {n}" for n in still]
            lines.append("Download was not attempted (download=False)." if not download else
                         f"Download failed:\n  {self.url}: {failure}")
            lines += ["To get them, either:",
                      f"  - point {ENV_VAR} (or root=) at a folder holding "
                      f"{self.base_folder}/<files> (extracted from cifar-10-python.tar.gz),",
                      "  - or run once with internet access and download=True."]
            raise DatasetNotFoundError("\n".join(lines))

    def _download_and_extract(self):
        """Download the archive (verified), extract the batch files; an error message or None."""
        archive = os.path.join(self.root, "cifar-10-python.tar.gz")
        try:
            if not os.path.isfile(archive):
                download_url(self.url, archive, verify=self._check_archive,
                             timeout=self.download_timeout)
            self._check_archive(archive)
            self._extract(archive)
        except (OSError, DataError, tarfile.TarError) as exc:
            return str(exc)
        return None

    def _check_archive(self, path):
        with open(path, "rb") as f:
            found = hashlib.md5(f.read()).hexdigest()
        if found != self.archive_md5:
            raise DataError(f"{path}: checksum mismatch: expected md5 {self.archive_md5}, "
                            f"found {found}")

    def _extract(self, archive):
        wanted = set(self.train_files + self.test_files + ["batches.meta"])
        os.makedirs(self.folder, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                # Only the known regular files of the batch folder, written by name: a path in
                # the archive can never point outside the data folder.
                folder, name = os.path.split(member.name)
                if member.isfile() and name in wanted and \
                        os.path.basename(folder) == self.base_folder:
                    data = tar.extractfile(member).read()
                    dest = os.path.join(self.folder, name)
                    tmp = dest + ".part"
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, dest)

    # ---- reading and checking -----------------------------------------------------------------

    def _read(self, path):
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
        expected = self.resources.get(name)
        found = hashlib.md5(data).hexdigest()
        if expected is not None and found != expected:
            raise DataError(f"{path}: checksum mismatch: expected md5 {expected}, found {found}. "
                            f"The file is corrupt or a different version; delete it to "
                            f"download a fresh copy.")
        return restricted_load(data, path)

    def _load(self, names):
        images, labels = [], []
        for name in names:
            path = os.path.join(self.folder, name)
            batch = self._read(path)
            if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
                keys = sorted(map(str, batch)) if isinstance(batch, dict) else \
                    type(batch).__name__
                raise DataError(f"{path}: expected a dict with keys 'data' and 'labels', "
                                f"found {keys}")
            data = batch["data"]
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                    or data.shape[1] != 3 * 32 * 32:
                desc = (f"{data.dtype} array of shape {data.shape}"
                        if isinstance(data, np.ndarray) else type(data).__name__)
                raise DataError(f"{path}: expected 'data' as uint8 (N, 3072), found {desc}")
            batch_labels = np.asarray(batch["labels"])
            if batch_labels.shape != (data.shape[0],) or batch_labels.dtype.kind not in "iu":
                raise DataError(f"{path}: expected {data.shape[0]} integer labels, found "
                                f"{batch_labels.dtype} array of shape {batch_labels.shape}")
            if len(batch_labels) and (batch_labels.min() < 0 or batch_labels.max() > 9):
                raise DataError(f"{path}: expected labels in 0..9, found "
                                f"{batch_labels.min()}..{batch_labels.max()}")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(batch_labels.astype(np.int64))
        data = np.ascontiguousarray(np.concatenate(images))
        targets = np.concatenate(labels)
        expected = self.num_samples[self.split]
        if len(data) != expected:
            raise DataError(f"{self.folder}: expected {expected} {self.split} images, found "
                            f"{len(data)}")
        return data, targets

    # ---- dataset protocol -----------------------------------------------------------------

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        image, label = self.__getitems__(np.array([index]))
        return image[0], int(label[0])

    def __getitems__(self, indices):
        indices = np.asarray(indices, dtype=np.intp)
        images, labels = self.data[indices], self.targets[indices]
        if self.transform is not None:
            images = self.transform(images)
        if self.target_transform is not None:
            labels = self.target_transform(labels)
        return images, labels

    def __repr__(self):
        return (f"Dataset CIFAR10\n    Number of datapoints: {len(self)}\n    Root location: "
                f"{self.root}\n    Split: {'Train' if self.train else 'Test'}")
