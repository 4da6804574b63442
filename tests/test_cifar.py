"""CIFAR-10 reader, on small files in the official format written by the tests themselves
(CIFAR-10 cannot be downloaded on these machines)."""

import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from tinyconv.data import CIFAR10, DataError, DataLoader
from tinyconv.data import transforms as T
from tinyconv.data.cifar import restricted_load

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def write_batches(folder, n_per_batch=6, seed=0):
    """Write data_batch_1..5, test_batch and batches.meta as CIFAR's Python-2 era pickles."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        # str keys for the train batches (as Python 3 writes them), bytes keys for the test
        # batch (as the official Python 2 files read with encoding='bytes'): both must load.
        key = (lambda k: k.encode()) if name == "test_batch" else (lambda k: k)
        batch = {key("batch_label"): name.encode(), key("labels"): labels, key("data"): data,
                 key("filenames"): [f"img{i}.png".encode() for i in range(n_per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (data, labels)
    meta = {"label_names": list(CLASSES), "num_cases_per_batch": n_per_batch,
            "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def small_cifar(folder, n_per_batch=6):
    """CIFAR10 with the checksum table and sizes of the files written in ``folder``."""
    resources = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    class SmallCIFAR10(CIFAR10):
        pass

    SmallCIFAR10.resources = resources
    SmallCIFAR10.num_samples = {"train": 5 * n_per_batch, "test": n_per_batch}
    return SmallCIFAR10


def test_reads_train_and_test_in_torchvision_layout(tmp_path):
    written = write_batches(tmp_path / "cifar-10-batches-py")
    cls = small_cifar(tmp_path / "cifar-10-batches-py")
    train, test = cls(tmp_path, train=True), cls(tmp_path, train=False)
    assert train.data.shape == (30, 32, 32, 3) and train.data.dtype == np.uint8
    assert test.data.shape == (6, 32, 32, 3) and test.targets.dtype == np.int64
    assert train.classes == CLASSES
    data, labels = written["data_batch_2"]
    # image 0 of batch 2 is image 6 of the train set; its first 1024 bytes are the red plane
    np.testing.assert_array_equal(train.data[6][:, :, 0], data[0, :1024].reshape(32, 32))
    np.testing.assert_array_equal(train.data[6][:, :, 2], data[0, 2048:].reshape(32, 32))
    assert train.targets[6] == labels[0]


def test_equals_torchvision_reader(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    import torchvision.datasets.cifar as tv_cifar

    write_batches(tmp_path / "cifar-10-batches-py")
    cls = small_cifar(tmp_path / "cifar-10-batches-py")
    # torchvision checks the files against the real data set's md5s; these are test files.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    # The train split only: write_batches gives test_batch bytes keys, which the official
    # files never have once read with torchvision's encoding='latin1'.
    ours = cls(tmp_path, train=True)
    theirs = tv_cifar.CIFAR10(str(tmp_path), train=True, download=False)
    np.testing.assert_array_equal(ours.data, theirs.data)
    np.testing.assert_array_equal(ours.targets, theirs.targets)
    assert ours.classes == theirs.classes


def test_batches_and_transforms(tmp_path):
    write_batches(tmp_path / "cifar-10-batches-py")
    cls = small_cifar(tmp_path / "cifar-10-batches-py")
    tf = T.Compose([T.ToTensor(), T.RandomCrop(32, padding=4, generator=0),
                    T.RandomHorizontalFlip(generator=1), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    train = cls(tmp_path, train=True, transform=tf)
    images, labels = next(iter(DataLoader(train, batch_size=8, shuffle=True, generator=0)))
    assert tuple(images.shape) == (8, 3, 32, 32) and tuple(labels.shape) == (8,)
    assert -1.0 <= images.numpy().min() and images.numpy().max() <= 1.0
    image, label = train[3]
    assert image.shape == (3, 32, 32) and isinstance(label, int)


def test_a_malicious_batch_is_never_executed(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    cls = small_cifar(folder)  # checksums of the doctored file included: only the unpickler
    with pytest.raises(DataError, match=r"data_batch_3: not a valid CIFAR-10 batch .*"
                                        r"open' is not allowed"):
        cls(tmp_path, train=True)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["checksum", "labels", "shape", "truncated", "count"])
def test_damaged_files_give_clear_errors(tmp_path, damage):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    cls = small_cifar(folder)
    path = folder / "test_batch"
    if damage == "checksum":
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")
        match = "test_batch: checksum mismatch"
    else:
        if damage == "labels":
            batch = {b"data": np.zeros((6, 3072), np.uint8), b"labels": [0, 1, 2, 3, 4, 12]}
            match = r"labels in 0..9, found 0..12"
        elif damage == "shape":
            batch = {b"data": np.zeros((6, 100), np.uint8), b"labels": [0] * 6}
            match = r"uint8 \(N, 3072\), found uint8 array of shape \(6, 100\)"
        elif damage == "count":
            batch = {b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 5}
            match = r"expected 6 test images, found 5"
        else:
            batch = None
            match = "not a valid CIFAR-10 batch"
        data = pickle.dumps(batch, protocol=2) if batch is not None else \
            pickle.dumps({b"data": np.zeros((6, 3072), np.uint8)}, protocol=2)[:200]
        path.write_bytes(data)
        cls = small_cifar(folder)
    with pytest.raises(DataError, match=match):
        cls(tmp_path, train=False)


def test_missing_files_offline_give_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.setattr(CIFAR10, "download_timeout", 2)
    with pytest.raises(DataError) as info:
        CIFAR10(tmp_path, train=False)
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "test_batch" in message
    assert "Download failed" in message and "TINYCONV_DATA" in message
    assert not any(p.suffix == ".part" for p in tmp_path.rglob("*"))


def test_extracts_a_verified_archive_and_ignores_paths_outside(tmp_path, monkeypatch):
    src = tmp_path / "src" / "cifar-10-batches-py"
    write_batches(src)
    archive = tmp_path / "root" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(src.iterdir()):
            tar.add(p, arcname=f"cifar-10-batches-py/{p.name}")
        evil = b"should never be written"
        info = tarfile.TarInfo("../../escaped_file")
        info.size = len(evil)
        tar.addfile(info, io.BytesIO(evil))
    cls = small_cifar(src)
    cls.archive_md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    test = cls(tmp_path / "root", train=False)  # files missing: extracted from the archive
    assert len(test) == 6
    assert not (tmp_path / "escaped_file").exists()
    assert not os.path.exists(tmp_path.parent / "escaped_file")


def test_restricted_load_accepts_plain_structures():
    blob = pickle.dumps({b"a": [1, 2.5, b"x"], b"arr": np.arange(3, dtype=np.uint8)}, protocol=2)
    out = restricted_load(blob, "mem")  # bytes keys come back as str
    assert out["a"] == [1, 2.5, b"x"]
    np.testing.assert_array_equal(out["arr"], [0, 1, 2])


def test_cifar10_example_trains_both_backends_on_generated_files(tmp_path, monkeypatch):
    """examples/cifar10.py end to end on small files (the real set can't be downloaded here)."""
    import json
    import sys

    folder = tmp_path / "data" / "cifar-10-batches-py"
    write_batches(folder, n_per_batch=40)
    resources = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(CIFAR10, "resources", resources)
    monkeypatch.setattr(CIFAR10, "num_samples", {"train": 200, "test": 40})
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples")
    monkeypatch.syspath_prepend(examples)
    sys.modules.pop("cifar10", None)
    import cifar10

    backends = ["tinyconv"] + (["torch"] if _has_torch() else [])
    for backend in backends:
        out = tmp_path / backend
        cifar10.main(["--backend", backend, "--device", "cpu", "--epochs", "1", "--augment",
                      "--data-dir", str(tmp_path / "data"), "--out", str(out),
                      "--test-batch-size", "16"])
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["model"] == "lenet" and len(metrics["history"]) == 1
        assert np.array(metrics["confusion_matrix"]).sum() == 40
        for name in ("class_distribution.png", "samples.png", "checkpoint.npz", "best.npz"):
            assert (out / name).stat().st_size > 0, name


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
