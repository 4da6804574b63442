"""examples/feature_maps.py: feature maps through forward hooks, saliency through a tensor hook."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "feature_maps.py")


def _run(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture
def data_dir():
    root = os.environ.get("TINYCONV_DATA")
    if not root or not os.path.isdir(os.path.join(root, "FashionMNIST")):
        pytest.skip("needs Fashion-MNIST in $TINYCONV_DATA")
    return root


def test_feature_maps_writes_a_picture_and_guards_it(tmp_path, data_dir):
    pytest.importorskip("matplotlib")
    out = tmp_path / "maps.png"
    done = _run("--train-steps", "3", "--data-dir", data_dir, "--out", str(out), "--index", "5",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "layer1 conv: 32 maps of 28x28" in done.stdout
    assert "layer2 ReLU: 64 maps of 14x14" in done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = out.read_bytes()
    again = _run("--train-steps", "3", "--data-dir", data_dir, "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr.strip().splitlines()[-1]
    assert out.read_bytes() == before
    bad = _run("--train-steps", "0", "--out", str(tmp_path / "x.png"), cwd=tmp_path)
    assert bad.returncode == 2 and "--train-steps" in bad.stderr
