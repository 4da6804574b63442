"""examples/predict.py, run as a user runs it: agrees with direct evaluation, clear errors."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import tinyconv
from tinyconv.data import FashionMNIST
from tinyconv.models import SEED_NETWORKS

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TINYCONV_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def predict(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", "predict.py"), *args],
                          capture_output=True, text=True, timeout=300)


def top1(stdout):
    """The first-ranked class of each picture, in order."""
    return re.findall(r"^  1\. (.+?)\s+[\d.]+%$", stdout, re.M)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A checkpoint like examples/fashion.py's, and four test images as PNG files."""
    tmp = tmp_path_factory.mktemp("predict")
    tinyconv.manual_seed(0)
    model = SEED_NETWORKS["fashioncnn"][0]()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    trained = "/tmp/results/fashioncnn-tinyconv/checkpoint.npz"
    if os.path.exists(trained):  # a trained network, when this machine has one
        state = tinyconv.load(trained)["model"]
        model.load_state_dict(state)
    ckpt = tmp / "checkpoint.npz"
    tinyconv.save({"model": state, "model_name": "fashioncnn", "backend": "tinyconv"}, ckpt)
    try:
        images = np.asarray(FashionMNIST(root=DATA, train=False).data[:4])
    except Exception:  # noqa: BLE001 - no data here: any 28x28 pictures do
        images = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    paths = []
    for i, img in enumerate(images):
        paths.append(str(tmp / f"test{i}.png"))
        Image.fromarray(img).save(paths[-1])
    x = ((images.astype(np.float32) / 255 - 0.5) / 0.5)[:, None]
    model.eval()
    with tinyconv.no_grad():
        expected = [FashionMNIST.classes[k] for k in model(tinyconv.from_numpy(x)).numpy()
                    .argmax(1)]
    return model, ckpt, paths, expected, tmp


def test_test_images_are_classified_as_direct_evaluation(setup):
    _, ckpt, paths, expected, _ = setup
    proc = predict("--checkpoint", str(ckpt), "--no-invert", *paths)
    assert proc.returncode == 0, proc.stderr
    assert top1(proc.stdout) == expected
    assert "inverted" not in proc.stdout
    assert len(re.findall(r"^  [123]\. ", proc.stdout, re.M)) == 3 * len(paths)


def test_a_photo_on_white_is_inverted_cropped_and_said_so(setup):
    _, ckpt, paths, _, tmp = setup
    img = 255 - np.asarray(Image.open(paths[0]))
    photo = Image.new("L", (120, 90), 255)
    photo.paste(Image.fromarray(img).resize((56, 56)), (30, 20))
    path = str(tmp / "photo.jpg")
    photo.convert("RGB").save(path)
    proc = predict("--checkpoint", str(ckpt), path)
    assert proc.returncode == 0, proc.stderr
    assert "inverted: light background" in proc.stdout and "90x120 -> 28x28" in proc.stdout


def test_onnx_model_gives_the_same_answers(setup):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import tinyconv.onnx
    model, _, paths, expected, tmp = setup
    path = tmp / "model.onnx"
    tinyconv.onnx.export(model, tinyconv.zeros(1, 1, 28, 28), path)
    proc = predict("--onnx", str(path), "--no-invert", *paths)
    assert proc.returncode == 0, proc.stderr
    assert top1(proc.stdout) == expected


def test_bad_files_give_a_clear_error_and_exit_code_2(setup):
    _, ckpt, paths, _, tmp = setup
    text = tmp / "notes.txt"
    text.write_text("not a picture")
    corrupt = tmp / "corrupt.png"
    corrupt.write_bytes(open(paths[0], "rb").read()[:40])  # a truncated PNG
    cases = [("--checkpoint", str(ckpt), str(tmp / "missing.png")),
             ("--checkpoint", str(ckpt), str(text)),
             ("--checkpoint", str(ckpt), str(corrupt)),
             ("--checkpoint", str(tmp / "missing.npz"), paths[0]),
             ("--checkpoint", str(text), paths[0])]
    for args in cases:
        proc = predict(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr
