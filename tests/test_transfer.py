"""examples/transfer.py end to end, on CIFAR-format files the test writes (a few images, small
inputs, so that it takes seconds), and its bilinear resize against torch's."""

import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from test_cifar import small_cifar, write_batches

import tinyconv
from tinyconv.vision import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import transfer  # noqa: E402

torch = pytest.importorskip("torch")


@pytest.fixture
def cifar(tmp_path):
    write_batches(tmp_path / "cifar-10-batches-py", n_per_batch=4)
    return tmp_path, small_cifar(tmp_path / "cifar-10-batches-py", n_per_batch=4)


@pytest.fixture
def pretrained(tmp_path):
    tinyconv.manual_seed(5)
    path = tmp_path / "imagenet.npz"
    tinyconv.save(models.resnet18().state_dict(), path)
    return path


def run(cifar, out, *extra):
    root, cls = cifar
    argv = ["--data-dir", str(root), "--out", str(out), "--epochs", "2", "--batch-size", "4",
            "--test-batch-size", "3", "--resize", "40", "--limit-train", "8", "--threads", "1",
            *extra]
    return transfer.main(argv, dataset_cls=cls)


@pytest.mark.parametrize("resize", [224, "none"])
def test_images_are_prepared_as_torchvision_does(resize):
    tv = pytest.importorskip("torchvision.transforms")
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    ours = transfer.image_transform(resize)(images)
    steps = [tv.ToTensor()] + ([tv.Resize((resize, resize))] if resize != "none" else [])
    steps.append(tv.Normalize(transfer.IMAGENET_MEAN, transfer.IMAGENET_STD))
    theirs = np.stack([tv.Compose(steps)(image).numpy() for image in images])
    size = 32 if resize == "none" else resize
    assert ours.shape == theirs.shape == (3, 3, size, size) and ours.dtype == np.float32
    # float32 sums in another order (up to ~60 ulp of values near 2); one uint8 level is
    # 1/255/0.225 = 0.017 after normalization, so any wrong pixel would show
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)


def test_fine_tunes_a_frozen_backbone_and_writes_everything(cifar, pretrained, tmp_path,
                                                           capsys):
    out = tmp_path / "run"
    metrics = run(cifar, out, "--pretrained", str(pretrained), "--freeze-backbone")
    for name in ("class_distribution.png", "samples.png", "checkpoint.npz", "best.npz",
                 "metrics.json", "loss.png", "accuracy.png", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert np.array(saved["confusion_matrix"]).sum() == 4  # the whole (tiny) test set
    assert saved["trained_parameters"] == 512 * 10 + 10 == metrics["trained_parameters"]
    assert all(h["train_images_per_s"] > 0 for h in saved["history"])
    # only the head moved: every backbone weight is still the pretrained one
    imagenet = tinyconv.load(pretrained)
    last = tinyconv.load(out / "checkpoint.npz")["model"]
    for key, value in imagenet.items():
        if key.startswith("fc."):
            assert last[key].shape != value.shape  # 10 classes, not 1000
        elif "running" not in key and "num_batches" not in key:
            np.testing.assert_array_equal(last[key], value, err_msg=key)
    best = tinyconv.load(out / "best.npz")
    assert best["epoch"] == saved["best_epoch"]
    # a second run into the same folder is refused, and nothing there changes ...
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(cifar, out, "--pretrained", str(pretrained), "--freeze-backbone")
    assert info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(SystemExit) as info:
        run(cifar, tmp_path / "other", "--epochs", "0")
    assert info.value.code == 2 and "--epochs" in capsys.readouterr().err
    # ... unless asked to replace it
    run(cifar, out, "--pretrained", str(pretrained), "--freeze-backbone", "--overwrite")
    assert json.loads((out / "metrics.json").read_text())["history"][-1]["epoch"] == 2


def test_both_backends_take_the_same_steps(cifar, pretrained, tmp_path):
    # SGD, whose update is linear in the gradient, so that the weights can be compared too:
    # Adam divides by each gradient's own size, and float32 noise in a near-zero gradient then
    # becomes a step of up to lr in either direction.
    common = ["--pretrained", str(pretrained), "--epochs", "1", "--resize", "48",
              "--optimizer", "sgd", "--lr", "0.01", "--scheduler", "none"]
    a = run(cifar, tmp_path / "tc", *common)
    b = run(cifar, tmp_path / "pt", *common, "--backend", "torch")
    # same initial weights, same batches; float32 rounding only, which depends on the BLAS
    # kernels: with OpenBLAS's SkylakeX kernels the train losses agreed to 1e-5, with its
    # Haswell kernels (an AVX2-only machine) 2.434310 against torch's 2.434358, 2.0e-5 apart,
    # with this session's code and with the code before it (850dd11) alike
    assert a["history"][0]["train_loss"] == pytest.approx(b["history"][0]["train_loss"],
                                                          rel=5e-5)
    assert a["history"][0]["test_loss"] == pytest.approx(b["history"][0]["test_loss"], rel=5e-5)
    ours = tinyconv.load(tmp_path / "tc" / "checkpoint.npz")["model"]
    theirs = tinyconv.load(tmp_path / "pt" / "checkpoint.npz")["model"]
    start = tinyconv.load(pretrained)
    assert list(ours) == list(theirs)
    for key in ("conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.weight"):
        # the two SGD steps' updates agree to 1% of their size (float32 gradients through
        # twenty batch norms of a 4-image batch; the float64 tests hold them to 1e-9)
        step, twin = ours[key] - start[key], theirs[key] - start[key]
        assert np.abs(step - twin).max() <= 1e-2 * np.abs(twin).max(), key
    assert np.abs(ours["fc.weight"] - theirs["fc.weight"]).max() <= 1e-6


def test_offline_download_and_wrong_weights_are_clear_errors(cifar, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.setenv("TINYCONV_HOME", str(tmp_path / "home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit) as info:
        run(cifar, tmp_path / "x", "--pretrained", "download")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in err
    assert str(tmp_path / "home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in err

    wrong = tmp_path / "resnet34.npz"
    tinyconv.save(models.resnet34().state_dict(), wrong)
    with pytest.raises(SystemExit):
        run(cifar, tmp_path / "y", "--pretrained", str(wrong))
    assert "do not fit resnet18" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(cifar, tmp_path / "z", "--pretrained", str(tmp_path / "absent.pth"))
    assert "absent.pth" in capsys.readouterr().err
