"""MNIST and Fashion-MNIST, read from torchvision's folder layout, as NumPy arrays.

Files live in ``<root>/<ClassName>/raw/`` with torchvision's names, each either gzipped
(``.gz``) or not::

    <root>/MNIST/raw/train-images-idx3-ubyte(.gz)     <root>/FashionMNIST/raw/...
    <root>/MNIST/raw/train-labels-idx1-ubyte(.gz)
    <root>/MNIST/raw/t10k-images-idx3-ubyte(.gz)
    <root>/MNIST/raw/t10k-labels-idx1-ubyte(.gz)

``root`` defaults to ``default_root()``: ``$TINYCONV_DATA``, else ``./data``. Fashion-MNIST is
also looked for in ``/usr/share/datasets/fashion-mnist``, where Debian's package
``dataset-fashion-mnist`` puts the same four ``.gz`` files, flat (no ``FashionMNIST/raw``).

Every load checks the IDX header, the shapes and counts, the label range, and the md5 of the
uncompressed bytes (the ``.gz`` files may have been recompressed, so their own md5 means
nothing). The md5 is recomputed on every load rather than cached: it costs ~0.06 s for the
47 MB training images, less than the unavoidable gunzip (~0.2 s), and a cache would need a
writable data folder (shared and system folders are read-only).
"""

import hashlib
import os

import numpy as np

from tinyconv.data.download import DEFAULT_TIMEOUT
from tinyconv.data.download import download as download_url
from tinyconv.data.errors import DataError, DatasetNotFoundError
from tinyconv.data.idx import parse_idx, read_uncompressed

ENV_VAR = "TINYCONV_DATA"


def default_root():
    """Return the data root used when none is given: ``$TINYCONV_DATA``, else ``./data``."""
    return os.environ.get(ENV_VAR) or os.path.join(".", "data")


class MNIST:
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 uint8.

    Mirrors ``torchvision.datasets.MNIST`` but keeps NumPy arrays: ``data`` is uint8
    ``(N, 28, 28)``, ``targets`` int64 ``(N,)``. ``transform`` is called on NumPy images: a
    single ``(28, 28)`` image in ``__getitem__`` and a ``(B, 28, 28)`` batch in
    ``__getitems__`` (which the DataLoader uses), so it must accept both, as the transforms of
    ``tinyconv.data.transforms`` do. ``target_transform`` likewise gets an int or an int64 array.

    Args:
        root: folder holding ``MNIST/raw/``; None means ``default_root()``.
        train: the training split if true, else the test split.
        transform, target_transform: optional callables, see above.
        download: fetch missing files from ``mirrors`` (only missing ones; a present but
            corrupt file is an error, never silently replaced).

    The class attributes ``mirrors``, ``resources`` (file name -> md5 of the uncompressed
    bytes), ``num_samples`` and ``system_folders`` may be overridden, e.g. in tests.
    """

    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    # md5 of the UNCOMPRESSED files. Sizes: images 16 + N*784 bytes, labels 8 + N bytes
    # (47040016 / 60008 for train, 7840016 / 10008 for t10k).
    resources = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    num_samples = {"train": 60000, "t10k": 10000}
    image_size = (28, 28)
    classes = [
        "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
        "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
    ]
    # Folders searched after <root>/<ClassName>/raw, holding the files directly.
    system_folders = ()
    # Extra advice printed when the files are missing.
    install_hint = None
    download_timeout = DEFAULT_TIMEOUT

    def __init__(self, root=None, train=True, transform=None, target_transform=None,
                 download=True):
        self.root = os.path.expanduser(os.fspath(default_root() if root is None else root))
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        self.split = "train" if self.train else "t10k"
        image_name = f"{self.split}-images-idx3-ubyte"
        label_name = f"{self.split}-labels-idx1-ubyte"
        self._ensure_files([image_name, label_name], download)
        # The paths actually read, e.g. for error reports.
        self.image_file = self._locate(image_name)
        self.label_file = self._locate(label_name)
        self.data, self.targets = self._load(image_name, label_name)

    # ---- locating and downloading ------------------------------------------------------

    @property
    def raw_folder(self):
        """``<root>/<ClassName>/raw``: where files are looked for first and downloaded to."""
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def search_folders(self):
        return [self.raw_folder, *self.system_folders]

    def _locate(self, name):
        """Return the first existing ``name`` or ``name.gz`` in the search folders, or None."""
        for folder in self.search_folders:
            # The uncompressed file wins: it loads faster.
            for candidate in (name, name + ".gz"):
                path = os.path.join(folder, candidate)
                if os.path.isfile(path):
                    return path
        return None

    def _ensure_files(self, names, download):
        missing = [name for name in names if self._locate(name) is None]
        if not missing:
            return
        failures = []
        if download:
            for name in missing:
                failures = self._download(name)
                if failures:
                    # The others would most likely fail the same way; don't wait for them too.
                    break
        still_missing = [name for name in missing if self._locate(name) is None]
        if still_missing:
            raise DatasetNotFoundError(self._missing_message(still_missing, download, failures))

    def _download(self, name):
        """Try each mirror for ``name``.gz; return a list of "url: error" lines (empty = ok)."""
        dest = os.path.join(self.raw_folder, name + ".gz")
        failures = []
        for mirror in self.mirrors:
            url = f"{mirror}{name}.gz"
            try:
                download_url(url, dest, verify=lambda tmp, url=url: self._check_md5(name, tmp, url),
                             timeout=self.download_timeout)
                return []
            except (OSError, DataError) as err:  # URLError and timeouts are OSErrors
                failures.append(f"{url}: {err}")
        return failures

    def _missing_message(self, missing, download, failures):
        name = type(self).__name__
        lines = [f"{name} ({self.split} split): data files not found.", "Searched folders:"]
        lines += [f"  {folder}" for folder in self.search_folders]
        lines.append("Expected files (each may be gzipped, with a .gz suffix):")
        lines += [f"  {file}" for file in missing]
        if not download:
            lines.append("Download was not attempted (download=False).")
        elif failures:
            lines.append("Download failed:")
            lines += [f"  {line}" for line in failures]
        lines += [
            "To get them, either:",
            f"  - point {ENV_VAR} (or --data-dir, or root=) at a folder holding "
            f"{name}/raw/<files>,",
        ]
        if self.install_hint:
            lines.append(f"  - {self.install_hint},")
        lines.append("  - or run once with internet access and download=True.")
        return "\n".join(lines)

    # ---- loading and checking ------------------------------------------------------------

    def _check_md5(self, name, path, source=None):
        """Raise DataError unless the md5 of ``path``'s uncompressed bytes matches the table."""
        data = read_uncompressed(path)
        self._compare_md5(name, data, source or path)
        return data

    def _compare_md5(self, name, data, source):
        expected = self.resources[name]
        found = hashlib.md5(data).hexdigest()
        if found != expected:
            raise DataError(
                f"{source}: checksum mismatch for {name}: expected md5 {expected} of the "
                f"uncompressed bytes, found {found} ({len(data)} bytes). The file is corrupt or "
                f"a different version; delete it to download a fresh copy."
            )

    def _load(self, image_name, label_name):
        image_file, label_file = self.image_file, self.label_file
        image_bytes = read_uncompressed(image_file)
        label_bytes = read_uncompressed(label_file)
        images = parse_idx(image_bytes, image_file)
        labels = parse_idx(label_bytes, label_file)
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != self.image_size:
            raise DataError(
                f"{image_file}: expected uint8 images of shape (N, {self.image_size[0]}, "
                f"{self.image_size[1]}), found {images.dtype} array of shape {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DataError(
                f"{label_file}: expected uint8 labels of shape (N,), found {labels.dtype} "
                f"array of shape {labels.shape}"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{image_file} and {label_file}: image/label count mismatch: expected equal "
                f"counts, found {len(images)} images and {len(labels)} labels"
            )
        expected = self.num_samples[self.split]
        if len(images) != expected:
            raise DataError(
                f"{image_file}: expected {expected} images for the {self.split} split, "
                f"found {len(images)}"
            )
        if len(labels) and labels.max() >= len(self.classes):
            raise DataError(
                f"{label_file}: expected labels in 0..{len(self.classes) - 1}, found "
                f"{labels.max()}"
            )
        # Last, so that the structural errors above, which say more, win.
        self._compare_md5(image_name, image_bytes, image_file)
        self._compare_md5(label_name, label_bytes, label_file)
        return images, labels.astype(np.int64)

    # ---- dataset protocol ----------------------------------------------------------------

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        """Return ``(image, label)``: the transformed ``(28, 28)`` uint8 image and an int."""
        image, target = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __getitems__(self, indices):
        """Return ``(images, labels)`` for many indices at once, transforming the whole batch.

        ``images`` is the transformed ``(B, 28, 28)`` uint8 batch, ``labels`` int64 ``(B,)``.
        """
        indices = np.asarray(indices, dtype=np.intp)
        images, targets = self.data[indices], self.targets[indices]
        if self.transform is not None:
            images = self.transform(images)
        if self.target_transform is not None:
            targets = self.target_transform(targets)
        return images, targets

    def __repr__(self):
        lines = [
            f"Dataset {type(self).__name__}",
            f"    Number of datapoints: {len(self)}",
            f"    Root location: {self.root}",
            f"    Split: {'Train' if self.train else 'Test'}",
        ]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        return "\n".join(lines)


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: same format, sizes and API as MNIST, ten clothing classes.

    Besides ``<root>/FashionMNIST/raw`` it looks in ``/usr/share/datasets/fashion-mnist``,
    where Debian's ``dataset-fashion-mnist`` installs the four ``.gz`` files.
    """

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }
    classes = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    system_folders = ("/usr/share/datasets/fashion-mnist",)
    install_hint = ("on Debian/Ubuntu: apt-get install dataset-fashion-mnist "
                    "(installs /usr/share/datasets/fashion-mnist)")
