"""The README's "Using tinyconv" code runs as written (on a small subset of the real data)."""

import os
import re

import numpy as np
import pytest

import tinyconv.data
from tinyconv.models import FashionCNN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TINYCONV_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def readme_python_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "FashionMNIST", "raw")),
                    reason="needs Fashion-MNIST")
def test_using_tinyconv_example_runs(tmp_path, monkeypatch, capsys):
    code = readme_python_blocks()[0]
    real = tinyconv.data.FashionMNIST

    def small_fashion_mnist(train=True, transform=None, **kwargs):
        # The README's code, on 256 images instead of 60,000, so that the test is quick.
        full = real(root=DATA, train=train, transform=transform)
        subset = tinyconv.data.Subset(full, np.arange(256))
        subset.classes = full.classes
        return subset

    monkeypatch.setattr(tinyconv.data, "FashionMNIST", small_fashion_mnist)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert re.search(r"epoch 2: test accuracy \d+\.\d\d%", out), out
    # The class written in the README is the library's FashionCNN, key for key.
    readme_model = namespace["FashionCNN"]()
    assert {k: tuple(v.shape) for k, v in readme_model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in FashionCNN().state_dict().items()}
    saved = tinyconv.load(tmp_path / "fashion_cnn.npz")
    assert list(saved) == list(readme_model.state_dict())


def test_parity_snippet_moves_weights_both_ways():
    torch = pytest.importorskip("torch")
    code = readme_python_blocks()[1]
    model = FashionCNN()
    namespace = {"model": model, "torch": torch}
    exec(compile(code, "README.md", "exec"), namespace)
    twin = namespace["twin"]
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
