"""Tests for tinyconv.data: IDX files, MNIST/Fashion-MNIST, downloads, DataLoader, transforms.

Real data: the folder in $TINYCONV_DATA, else /work/shared/data (the development machines'
copy; only the tests know about it). Tests needing real data, torch or torchvision skip when
those are missing.
"""

import functools
import gzip
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyconv.data import (
    MNIST,
    ArrayDataset,
    Compose,
    DataError,
    DataLoader,
    FashionMNIST,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    Subset,
    ToTensor,
    default_collate,
    default_root,
    read_idx,
    write_idx,
)
from tinyconv.data import transforms
from tinyconv.data.idx import idx_bytes


def numpy_collate(samples):
    """torch's collate_fn convention: a list of (image, label) samples -> NumPy arrays."""
    images, labels = zip(*samples, strict=True)
    return np.stack(images), np.asarray(labels)


# ---- IDX ---------------------------------------------------------------------------------

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@settings(max_examples=60, deadline=None)
@given(
    array=st.sampled_from(IDX_DTYPES).flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0,
                                                         max_side=5))),
    compress=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / "array.idx"
    write_idx(path, array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)  # NaNs compare equal here
    assert back.flags.writeable


def test_idx_mnist_layout_and_gzip_detected_by_content(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    # The header MNIST's images start with: magic 0x00000803, then 3, 28, 28.
    assert idx_bytes(images)[:16] == bytes.fromhex("00000803" "00000003" "0000001c" "0000001c")
    # A gzipped file without .gz and a raw file named .gz both read: the name means nothing.
    write_idx(tmp_path / "images.bin", images, compress=True)
    write_idx(tmp_path / "images.gz", images, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "images.bin"), images)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "images.gz")), images)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


def _check_message(err, path, *fragments):
    """The message names the file and says what was expected and what was found."""
    message = str(err.value)
    assert str(path) in message
    assert "expected" in message and "found" in message
    for fragment in fragments:
        assert fragment in message, message


def test_idx_truncated_gzip(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError) as err:
        read_idx(path)
    _check_message(err, path, "truncated gzip")


def test_idx_corrupt_gzip(tmp_path):
    compressed = bytearray(gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32))))
    compressed[-6] ^= 0xFF  # inside the CRC32 trailer
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DataError) as err:
        read_idx(path)
    _check_message(err, path, "corrupt gzip")


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataError) as err:
        read_idx(path)
    _check_message(err, path, "magic", "0x89 0x50")


def test_idx_unknown_dtype_code(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 0x07, 1]) + (4).to_bytes(4, "big") + bytes(4))
    with pytest.raises(DataError) as err:
        read_idx(path)
    _check_message(err, path, "dtype code", "0x07")


def test_idx_truncated_header(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (60000).to_bytes(4, "big"))
    with pytest.raises(DataError) as err:
        read_idx(path)
    _check_message(err, path, "header", "16 bytes")


@pytest.mark.parametrize("delta, what", [(-1, "truncated file"), (+3, "trailing bytes")])
def test_idx_payload_length(tmp_path, delta, what):
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    data = data[:delta] if delta < 0 else data + bytes(delta)
    path = tmp_path / "images"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_idx(path)
    _check_message(err, path, what, "3136 bytes", "(4, 28, 28)", f"found {3136 + delta}")


# ---- synthetic MNIST-style data ----------------------------------------------------------

SMALL_COUNTS = {"train": 6, "t10k": 4}


def make_split(folder, split, n, seed=0, compress=True, n_labels=None, size=28, max_label=9):
    """Write a random ``split`` of n images to ``folder``; return {name: md5 uncompressed}."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, 28), dtype=np.uint8)
    labels = rng.integers(0, max_label + 1, n if n_labels is None else n_labels).astype(np.uint8)
    os.makedirs(folder, exist_ok=True)
    md5s = {}
    for name, array in [(f"{split}-images-idx3-ubyte", images),
                        (f"{split}-labels-idx1-ubyte", labels)]:
        data = idx_bytes(array)
        md5s[name] = hashlib.md5(data).hexdigest()
        path = os.path.join(folder, name + (".gz" if compress else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(data) if compress else data)
    return md5s


@pytest.fixture
def small_mnist(monkeypatch):
    """Shrink MNIST's expectations to tiny splits; tests fill in `resources` themselves."""
    for cls in (MNIST, FashionMNIST):
        monkeypatch.setattr(cls, "num_samples", dict(SMALL_COUNTS))
        monkeypatch.setattr(cls, "resources", {})
        monkeypatch.setattr(cls, "mirrors", [])
    # Keep a Debian-installed Fashion-MNIST out of tests that expect files to be missing.
    monkeypatch.setattr(FashionMNIST, "system_folders", ())
    return monkeypatch


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_loads_small_files(tmp_path, small_mnist, compress):
    raw = tmp_path / "MNIST" / "raw"
    MNIST.resources.update(make_split(raw, "train", 6, seed=1, compress=compress))
    MNIST.resources.update(make_split(raw, "t10k", 4, seed=2, compress=compress))
    train = MNIST(tmp_path, train=True, download=False)
    test = MNIST(str(tmp_path), train=False, download=False)
    assert train.data.shape == (6, 28, 28) and train.data.dtype == np.uint8
    assert train.targets.shape == (6,) and train.targets.dtype == np.int64
    assert len(test) == 4 and train.raw_folder == str(raw)
    suffix = ".gz" if compress else ""
    assert train.image_file == str(raw / f"train-images-idx3-ubyte{suffix}")
    np.testing.assert_array_equal(train.data, read_idx(train.image_file))

    image, label = train[2]
    assert isinstance(label, int) and label == train.targets[2]
    np.testing.assert_array_equal(image, train.data[2])

    train.transform = ToTensor()
    train.target_transform = lambda y: y + 100
    images, labels = train.__getitems__([5, 0, 5])
    assert images.shape == (3, 1, 28, 28) and images.dtype == np.float32
    np.testing.assert_array_equal(images[:, 0], train.data[[5, 0, 5]] / np.float32(255))
    np.testing.assert_array_equal(labels, train.targets[[5, 0, 5]] + 100)
    assert train[1][0].shape == (1, 28, 28) and train[1][1] == train.targets[1] + 100
    assert "Number of datapoints: 6" in repr(train)


def test_class_names_match_torchvision():
    assert MNIST.classes[0] == "0 - zero" and MNIST.classes[9] == "9 - nine"
    assert FashionMNIST.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert issubclass(FashionMNIST, MNIST) and issubclass(DataError, ValueError)
    assert FashionMNIST.system_folders == ("/usr/share/datasets/fashion-mnist",)


def test_default_root(monkeypatch, tmp_path, small_mnist):
    monkeypatch.delenv("TINYCONV_DATA", raising=False)
    assert default_root() == os.path.join(".", "data")
    monkeypatch.setenv("TINYCONV_DATA", str(tmp_path))
    assert default_root() == str(tmp_path)
    MNIST.resources.update(make_split(tmp_path / "MNIST" / "raw", "t10k", 4))
    assert MNIST(train=False, download=False).root == str(tmp_path)


def test_image_label_count_mismatch(tmp_path, small_mnist):
    raw = tmp_path / "MNIST" / "raw"
    MNIST.resources.update(make_split(raw, "train", 6, n_labels=5))
    with pytest.raises(DataError) as err:
        MNIST(tmp_path, download=False)
    _check_message(err, raw / "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                   "count mismatch", "6 images", "5 labels")


def test_wrong_split_size(tmp_path, small_mnist):
    raw = tmp_path / "MNIST" / "raw"
    MNIST.resources.update(make_split(raw, "t10k", 5))
    with pytest.raises(DataError) as err:
        MNIST(tmp_path, train=False, download=False)
    _check_message(err, raw / "t10k-images-idx3-ubyte.gz", "expected 4 images", "found 5")


def test_wrong_image_size(tmp_path, small_mnist):
    raw = tmp_path / "MNIST" / "raw"
    MNIST.resources.update(make_split(raw, "t10k", 4, size=29))
    with pytest.raises(DataError) as err:
        MNIST(tmp_path, train=False, download=False)
    _check_message(err, raw / "t10k-images-idx3-ubyte.gz", "(N, 28, 28)", "(4, 29, 28)")


def test_label_out_of_range(tmp_path, small_mnist):
    raw = tmp_path / "MNIST" / "raw"
    MNIST.resources.update(make_split(raw, "t10k", 4, seed=3, max_label=200))
    with pytest.raises(DataError) as err:
        MNIST(tmp_path, train=False, download=False)
    _check_message(err, raw / "t10k-labels-idx1-ubyte.gz", "0..9")


def test_checksum_mismatch(tmp_path, small_mnist):
    raw = tmp_path / "MNIST" / "raw"
    md5s = make_split(raw, "t10k", 4, compress=False)
    MNIST.resources.update(md5s)
    MNIST.resources["t10k-labels-idx1-ubyte"] = "0" * 32
    with pytest.raises(DataError) as err:
        MNIST(tmp_path, train=False, download=False)
    _check_message(err, raw / "t10k-labels-idx1-ubyte", "checksum mismatch", "0" * 32,
                   md5s["t10k-labels-idx1-ubyte"])


def test_missing_files_message(tmp_path, small_mnist):
    with pytest.raises(DataError) as err:
        FashionMNIST(tmp_path, train=False, download=False)
    message = str(err.value)
    for fragment in [str(tmp_path / "FashionMNIST" / "raw"), "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte", "TINYCONV_DATA", "--data-dir",
                     "apt-get install dataset-fashion-mnist", "internet", "download=False"]:
        assert fragment in message, message


def test_fashion_mnist_debian_layout(tmp_path, small_mnist):
    # Debian's dataset-fashion-mnist puts the four .gz files flat in one folder.
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    FashionMNIST.resources.update(make_split(debian, "t10k", 4))
    small_mnist.setattr(FashionMNIST, "system_folders", (str(debian),))
    dataset = FashionMNIST(tmp_path / "empty-root", train=False, download=False)
    assert dataset.image_file == str(debian / "t10k-images-idx3-ubyte.gz")


# ---- downloads from a local HTTP server ---------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/served on 127.0.0.1; yield (base URL, folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", served
    server.shutdown()
    server.server_close()


def _dead_url():
    """A URL on a local port with nothing listening (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_download_success(tmp_path, small_mnist, http_server):
    url, served = http_server
    MNIST.resources.update(make_split(served, "t10k", 4, seed=5))
    # The first mirror is down; the loader must fall back to the second.
    small_mnist.setattr(MNIST, "mirrors", [_dead_url(), url])
    root = tmp_path / "root"
    dataset = MNIST(root, train=False, download=True)
    raw = root / "MNIST" / "raw"
    assert sorted(os.listdir(raw)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert (raw / "t10k-images-idx3-ubyte.gz").read_bytes() == \
        (served / "t10k-images-idx3-ubyte.gz").read_bytes()
    assert len(dataset) == 4
    # Present files are not fetched again: with the server gone it still loads.
    small_mnist.setattr(MNIST, "mirrors", [_dead_url()])
    assert len(MNIST(root, train=False, download=True)) == 4


def test_download_checksum_mismatch_leaves_nothing(tmp_path, small_mnist, http_server):
    url, served = http_server
    MNIST.resources.update(make_split(served, "t10k", 4))
    MNIST.resources["t10k-images-idx3-ubyte"] = "f" * 32
    small_mnist.setattr(MNIST, "mirrors", [url])
    root = tmp_path / "root"
    with pytest.raises(DataError) as err:
        MNIST(root, train=False, download=True)
    message = str(err.value)
    assert "checksum mismatch" in message and "f" * 32 in message
    assert f"{url}t10k-images-idx3-ubyte.gz" in message
    raw = root / "MNIST" / "raw"
    # No partial or unverified file stays (and after the images failed, the labels file was
    # not attempted).
    assert os.listdir(raw) == []


def test_download_truncated_gzip_leaves_nothing(tmp_path, small_mnist, http_server):
    url, served = http_server
    MNIST.resources.update(make_split(served, "t10k", 4))
    path = served / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    small_mnist.setattr(MNIST, "mirrors", [url])
    with pytest.raises(DataError, match="truncated gzip"):
        MNIST(tmp_path / "root", train=False, download=True)
    assert "t10k-images-idx3-ubyte.gz" not in os.listdir(tmp_path / "root" / "MNIST" / "raw")
    assert not [f for f in os.listdir(tmp_path / "root" / "MNIST" / "raw") if "part" in f]


def test_download_server_down(tmp_path, small_mnist):
    dead = _dead_url()
    small_mnist.setattr(MNIST, "mirrors", [dead])
    root = tmp_path / "root"
    with pytest.raises(DataError) as err:
        MNIST(root, train=True, download=True)
    message = str(err.value)
    for fragment in [str(root / "MNIST" / "raw"), "train-images-idx3-ubyte",
                     "train-labels-idx1-ubyte", "Download failed", f"{dead}train-images",
                     "TINYCONV_DATA"]:
        assert fragment in message, message
    assert os.listdir(root / "MNIST" / "raw") == []


def test_download_times_out_instead_of_hanging(tmp_path, small_mnist):
    # A server that accepts connections but never answers.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        small_mnist.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{sock.getsockname()[1]}/"])
        small_mnist.setattr(MNIST, "download_timeout", 0.5)
        start = time.perf_counter()
        with pytest.raises(DataError, match="timed out"):
            MNIST(tmp_path, train=False, download=True)
    assert time.perf_counter() - start < 10


# ---- DataLoader ---------------------------------------------------------------------------


def index_dataset(n):
    """Image i is filled with i; label i is i % 10, so batches can be checked for pairing."""
    images = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None, None], (n, 2, 3)).copy()
    return ArrayDataset(images, np.arange(n) % 10)


def epoch_indices(loader):
    seen = []
    for images, labels in loader:
        ids = images[:, 0, 0]
        np.testing.assert_array_equal(labels, ids % 10)  # labels travel with their images
        assert (images == ids[:, None, None]).all()
        seen.append(ids)
    return np.concatenate(seen) if seen else np.array([], dtype=np.int64)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(),
       shuffle=st.booleans(), seed=st.integers(0, 2**32))
def test_dataloader_batches_cover_every_index_once(n, batch_size, drop_last, shuffle, seed):
    loader = DataLoader(index_dataset(n), batch_size, shuffle=shuffle, drop_last=drop_last,
                        generator=seed, collate_fn=numpy_collate)
    expected_len = n // batch_size if drop_last else -(-n // batch_size)
    assert len(loader) == expected_len
    sizes = [len(labels) for _, labels in loader]
    assert len(sizes) == expected_len and all(s == batch_size for s in sizes[:-1])
    seen = epoch_indices(loader)
    assert len(np.unique(seen)) == len(seen)
    if drop_last:
        assert len(seen) == expected_len * batch_size
    else:
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_dataloader_shuffle_reproducible_and_fresh_each_epoch():
    def two_epochs(generator):
        loader = DataLoader(index_dataset(100), 7, shuffle=True, generator=generator,
                            collate_fn=numpy_collate)
        return epoch_indices(loader), epoch_indices(loader)

    first, second = two_epochs(1234)
    again_first, again_second = two_epochs(1234)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, two_epochs(4321)[0])
    # A numpy Generator works the same way as its seed.
    np.testing.assert_array_equal(two_epochs(np.random.default_rng(1234))[0], first)
    # generator=None draws from the global generator: still a permutation.
    unseeded = epoch_indices(DataLoader(index_dataset(100), 7, shuffle=True,
                                        collate_fn=numpy_collate))
    np.testing.assert_array_equal(np.sort(unseeded), np.arange(100))


def test_dataloader_unseeded_shuffle_follows_global_seed():
    tinyconv_random = pytest.importorskip("tinyconv.random")
    loader = DataLoader(index_dataset(50), 8, shuffle=True, collate_fn=numpy_collate)
    tinyconv_random.manual_seed(7)
    first = epoch_indices(loader)
    tinyconv_random.manual_seed(7)
    np.testing.assert_array_equal(epoch_indices(loader), first)


def test_dataloader_without_getitems_and_subset():
    class PlainDataset:  # only the minimal map-style protocol
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return np.full((2, 2), i, dtype=np.float32), i % 3

    images, labels = next(iter(DataLoader(PlainDataset(), 4, collate_fn=numpy_collate)))
    assert images.shape == (4, 2, 2) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, [0, 1, 2, 0])

    for base in (PlainDataset(), index_dataset(10)):
        subset = Subset(base, [9, 2, 4])
        assert len(subset) == 3 and subset[1][1] == 2
        images, labels = next(iter(DataLoader(subset, 3, collate_fn=numpy_collate)))
        np.testing.assert_array_equal(images[:, 0, 0], [9, 2, 4])


def test_dataloader_rejects_bad_arguments():
    with pytest.raises(ValueError):
        DataLoader(index_dataset(3), batch_size=0)
    with pytest.raises(TypeError):
        DataLoader(index_dataset(3), shuffle=True, generator="seed")
    with pytest.raises(ValueError):
        ArrayDataset(np.zeros((3, 2)), np.zeros(2))


def test_default_collate_makes_tinyconv_tensors():
    from tinyconv.tensor import Tensor
    samples = [(np.full((1, 3, 3), i, np.float32), i) for i in range(2)]
    x, y = default_collate(samples)
    assert isinstance(x, Tensor) and isinstance(y, Tensor)
    assert x.shape == (2, 1, 3, 3) and y.tolist() == [0, 1]


def test_dataloader_torch_collate():
    torch = pytest.importorskip("torch")

    def to_torch(samples):  # torch's collate_fn convention: a list of samples
        images, labels = numpy_collate(samples)
        return torch.from_numpy(images), torch.from_numpy(labels)

    x, y = next(iter(DataLoader(index_dataset(5), 2, collate_fn=to_torch)))
    assert isinstance(x, torch.Tensor) and y.tolist() == [0, 1]


def test_import_does_not_import_torch():
    code = "import sys, tinyconv.data; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr


# ---- transforms ---------------------------------------------------------------------------


def test_to_tensor_shapes_and_scaling():
    batch = np.random.default_rng(0).integers(0, 256, (5, 4, 6), dtype=np.uint8)
    out = ToTensor()(batch)
    assert out.shape == (5, 1, 4, 6) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out[:, 0] * 255, batch)
    assert ToTensor()(batch[0]).shape == (1, 4, 6)
    rgb = np.random.default_rng(1).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    out = ToTensor()(rgb)
    assert out.shape == (2, 3, 4, 6)
    np.testing.assert_array_equal(out[1, 2], rgb[1, :, :, 2] / np.float32(255))
    # Non-uint8 input is not rescaled (torchvision's rule).
    np.testing.assert_array_equal(ToTensor()(np.full((2, 2), 7.0)), np.full((1, 2, 2), 7.0))


def test_normalize():
    x = np.random.default_rng(0).random((4, 3, 5, 5), dtype=np.float32)
    out = Normalize([0.1, 0.2, 0.3], [0.5, 2.0, 4.0])(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 1], (x[:, 1] - 0.2) / 2.0, rtol=1e-6)
    np.testing.assert_array_equal(Normalize(0.5, 0.5)(x[0]), (x[0] - 0.5) / np.float32(0.5))
    with pytest.raises(ValueError, match="channels"):
        Normalize([0.1, 0.2], [1.0, 1.0])(x)
    with pytest.raises(ValueError, match="same length"):
        Normalize([0.1, 0.2], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="non-zero"):
        Normalize(0.0, 0.0)
    with pytest.raises(TypeError, match="ToTensor"):
        Normalize(0.5, 0.5)(np.zeros((1, 2, 2), np.uint8))


def test_horizontal_flip():
    x = np.random.default_rng(0).random((64, 2, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x[0]), x[0, :, :, ::-1])
    out = RandomHorizontalFlip(p=0.5, generator=3)(x)
    flipped = (out == x[..., ::-1]).all(axis=(1, 2, 3))
    assert ((out == x).all(axis=(1, 2, 3)) | flipped).all()  # each image one or the other
    assert 10 < flipped.sum() < 54  # independent coins, not one for the batch
    np.testing.assert_array_equal(RandomHorizontalFlip(0.5, generator=3)(x), out)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=4, max_dims=4, min_side=1,
                                                max_side=9), elements=st.floats(0, 1, width=32)))
def test_rotate_by_zero_is_identity(x):
    np.testing.assert_array_equal(transforms.rotate(x, 0.0), x)
    np.testing.assert_array_equal(RandomRotation((0, 0))(x), x)


@pytest.mark.parametrize("size", [1, 2, 7, 28])
def test_rotate_quarter_turns_match_rot90(size):
    x = np.random.default_rng(size).random((3, 2, size, size))
    # Positive angles turn counter-clockwise, like np.rot90 and torchvision.
    for angle, k in [(90, 1), (180, 2), (-90, -1), (270, 3)]:
        np.testing.assert_array_equal(transforms.rotate(x, angle), np.rot90(x, k, axes=(2, 3)))
    np.testing.assert_array_equal(transforms.rotate(x[0], 90), np.rot90(x[0], 1, axes=(1, 2)))
    rect = np.random.default_rng(0).random((2, 1, 4, 6))
    np.testing.assert_array_equal(transforms.rotate(rect, 180), rect[:, :, ::-1, ::-1])


def test_random_rotation_per_image_angles_and_fill():
    x = np.ones((32, 2, 21, 21), dtype=np.float32)
    out = RandomRotation(45, generator=0, fill=(-1, -2))(x)
    # Pixels rotated in from outside the image take the fill of their channel.
    assert set(np.unique(out[:, 0])) == {1.0, -1.0}
    assert set(np.unique(out[:, 1])) == {1.0, -2.0}
    # Independent angles: the filled areas differ between the images of one batch.
    assert len({mask.tobytes() for mask in out[:, 0] == 1}) > 20
    np.testing.assert_array_equal(RandomRotation(45, generator=0, fill=(-1, -2))(x), out)
    assert RandomRotation(30)(x[0]).shape == (2, 21, 21)
    angle = 33.0
    np.testing.assert_array_equal(RandomRotation((angle, angle))(x), transforms.rotate(x, angle))


def test_random_crop_shapes_and_content():
    n, c, h, w = 50, 2, 6, 8
    x = np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w) + 1  # 0 = padding
    out = RandomCrop((4, 5), padding=2, generator=7)(x)
    assert out.shape == (n, c, 4, 5)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for i in range(n):  # find each window in the padded image: it must be an exact slice
        matches = [(t, l) for t in range(h + 4 - 4 + 1) for l in range(w + 4 - 5 + 1)
                   if np.array_equal(padded[i, :, t:t + 4, l:l + 5], out[i])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 10  # per-image offsets
    np.testing.assert_array_equal(RandomCrop((h, w))(x), x)  # the only window is the image
    assert RandomCrop(3)(x[0]).shape == (c, 3, 3)
    with pytest.raises(ValueError, match="larger"):
        RandomCrop(10)(x)


def test_compose():
    x = np.full((2, 3, 3), 255, dtype=np.uint8)
    out = Compose([ToTensor(), Normalize(0.5, 0.5), RandomHorizontalFlip(1.0)])(x)
    np.testing.assert_array_equal(out, np.ones((2, 1, 3, 3), np.float32))
    assert "Normalize" in repr(Compose([ToTensor(), Normalize(0.5, 0.5)]))


# ---- real MNIST and Fashion-MNIST ---------------------------------------------------------


def real_root():
    root = os.environ.get("TINYCONV_DATA") or "/work/shared/data"
    return root if os.path.isdir(root) else None


def have_real(cls):
    root = real_root()
    return root is not None and any(
        os.path.isfile(os.path.join(root, cls.__name__, "raw", "train-images-idx3-ubyte" + s))
        for s in ("", ".gz"))


@functools.lru_cache(maxsize=None)
def load_real(cls, train):
    if not have_real(cls):
        pytest.skip(f"no real {cls.__name__} under $TINYCONV_DATA or /work/shared/data")
    return cls(real_root(), train=train, download=False)


@functools.lru_cache(maxsize=None)
def torchvision_root(tmp_root):
    """Decompressed copies for torchvision, whose download=False path needs raw files."""
    for cls in (MNIST, FashionMNIST):
        raw = os.path.join(tmp_root, cls.__name__, "raw")
        os.makedirs(raw, exist_ok=True)
        for train in (True, False):
            dataset = load_real(cls, train)
            for path in (dataset.image_file, dataset.label_file):
                with open(path, "rb") as f:
                    data = f.read()
                name = os.path.basename(path).removesuffix(".gz")
                with open(os.path.join(raw, name), "wb") as f:
                    f.write(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return tmp_root


@pytest.fixture(scope="module")
def tv_root(tmp_path_factory):
    pytest.importorskip("torchvision")
    if not (have_real(MNIST) and have_real(FashionMNIST)):
        pytest.skip("real MNIST and Fashion-MNIST needed")
    return torchvision_root(str(tmp_path_factory.mktemp("torchvision")))


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
@pytest.mark.parametrize("train", [True, False])
def test_real_data(cls, train):
    dataset = load_real(cls, train)
    n = 60000 if train else 10000
    assert dataset.data.shape == (n, 28, 28) and dataset.data.dtype == np.uint8
    assert dataset.targets.shape == (n,) and dataset.targets.dtype == np.int64
    assert len(dataset) == n and dataset.classes == cls.classes and len(cls.classes) == 10
    # Every class occurs, and nothing outside 0..9 does.
    np.testing.assert_array_equal(np.unique(dataset.targets), np.arange(10))


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
@pytest.mark.parametrize("train", [True, False])
def test_real_data_matches_torchvision(tv_root, cls, train):
    import torchvision

    ours = load_real(cls, train)
    theirs = getattr(torchvision.datasets, cls.__name__)(tv_root, train=train, download=False)
    np.testing.assert_array_equal(ours.data, theirs.data.numpy())
    np.testing.assert_array_equal(ours.targets, theirs.targets.numpy())
    assert ours.classes == theirs.classes


def test_to_tensor_normalize_matches_torchvision(tv_root):
    import torchvision
    from torchvision import transforms as tvt

    tv_transform = tvt.Compose([tvt.ToTensor(), tvt.Normalize((0.5,), (0.5,))])
    theirs = torchvision.datasets.FashionMNIST(tv_root, train=False, transform=tv_transform)
    ours = FashionMNIST(tv_root, train=False, download=False,
                        transform=Compose([ToTensor(), Normalize(0.5, 0.5)]))
    picks = [0, 1, 17, 4242, 9999]
    batch, labels = ours.__getitems__(picks)
    for row, i in enumerate(picks):
        expected = theirs[i][0].numpy()
        # Same float32 operations in the same order: bit-identical, not just close.
        np.testing.assert_array_equal(ours[i][0], expected)
        np.testing.assert_array_equal(batch[row], expected)
        assert labels[row] == theirs[i][1] == ours[i][1]


def test_rotation_matches_torchvision():
    torch = pytest.importorskip("torch")
    tvf = pytest.importorskip("torchvision.transforms.functional")
    images = ToTensor()(load_real(FashionMNIST, False).data[:100])
    for angle in [0.0, 5.0, 17.0, -33.5, 45.0, 90.0, 123.4, -170.0]:
        ours = transforms.rotate(images, angle)
        theirs = tvf.rotate(torch.from_numpy(images), angle,
                            interpolation=tvf.InterpolationMode.NEAREST).numpy()
        # torchvision builds its sampling grid in float32 while we use float64, so a source
        # coordinate that lies within rounding error of a pixel boundary (x.5) can round the
        # other way: allow a tiny fraction of pixels to differ (none did when written).
        assert (ours != theirs).mean() < 1e-3, angle


def test_debian_fashion_mnist_install():
    folder = "/usr/share/datasets/fashion-mnist"
    if not os.path.isfile(os.path.join(folder, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    dataset = FashionMNIST("/nonexistent-root", train=False, download=False)
    assert dataset.image_file.startswith(folder)
    assert len(dataset) == 10000


def test_loader_epoch_speed(capsys):
    if not have_real(FashionMNIST):
        pytest.skip("no real Fashion-MNIST")
    dataset = FashionMNIST(real_root(), train=True, download=False,
                           transform=Compose([ToTensor(), Normalize(0.5, 0.5)]))
    loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=0)
    start = time.perf_counter()
    count = sum(len(labels) for _, labels in loader)
    elapsed = time.perf_counter() - start
    assert count == 60000
    with capsys.disabled():  # reported, not asserted: timings vary between machines
        print(f"\nFashionMNIST train epoch, batch 64, ToTensor+Normalize: {elapsed:.3f} s "
              f"({len(loader)} batches)")
