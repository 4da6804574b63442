"""ONNX export: the checker accepts the files and onnxruntime computes what tinyconv computes.

Skipped when onnx or onnxruntime is not installed (pip install -e '.[onnx]').
"""

import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import tinyconv  # noqa: E402
import tinyconv.onnx  # noqa: E402
from tinyconv import nn  # noqa: E402
from tinyconv.models import SEED_NETWORKS  # noqa: E402
from tinyconv.nn import functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TINYCONV_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def real_batch():
    """64 real test images (normalized as in training), or noise when the data is absent."""
    try:
        from tinyconv.data import FashionMNIST
        images = np.asarray(FashionMNIST(root=DATA, train=False).data[:64], dtype=np.float32)
    except Exception:  # noqa: BLE001 - any data problem: fall back to noise
        images = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32) * 255
    return ((images / 255 - 0.5) / 0.5).reshape(64, 1, 28, 28)


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def randomize_batch_norm(model, seed=0):
    """Non-trivial running statistics, so that eval-mode batch norm is really exercised."""
    rng = np.random.default_rng(seed)
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b._data[...] = rng.normal(0, 0.2, b.shape)
        elif name.endswith("running_var"):
            b._data[...] = rng.uniform(0.5, 2.0, b.shape)


@pytest.mark.parametrize("name", sorted(SEED_NETWORKS))
def test_seed_networks_match_onnxruntime_at_batch_1_and_64(name, tmp_path):
    tinyconv.manual_seed(0)
    ctor, shape = SEED_NETWORKS[name]
    model = ctor()
    randomize_batch_norm(model)
    model.train()
    path = tmp_path / f"{name}.onnx"
    tinyconv.onnx.export(model, tinyconv.zeros(1, *shape), path)
    assert model.training  # the mode is restored
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    model.eval()
    x = real_batch()
    for n in (1, 64):
        with tinyconv.no_grad():
            expected = model(tinyconv.from_numpy(x[:n].copy())).numpy()
        got = run_onnx(path, x[:n])
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_fashioncnn_graph_uses_the_expected_onnx_ops(tmp_path):
    proto = tinyconv.onnx.export(SEED_NETWORKS["fashioncnn"][0](), tinyconv.zeros(2, 1, 28, 28),
                                 tmp_path / "f.onnx")
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["Conv", "BatchNormalization", "Relu", "MaxPool"] * 2 + ["Flatten", "Gemm",
                                                                         "Gemm"]
    inits = {i.name for i in proto.graph.initializer}
    assert {"layer1.0.weight", "layer1.1.running_var", "fc2.bias"} <= inits
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]


def test_more_modules_and_functional_calls(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding="same")
            self.bn = nn.BatchNorm2d(4, affine=False)
            self.pool = nn.AvgPool2d(2)
            self.adapt = nn.AdaptiveAvgPool2d(7)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(4 * 7 * 7, 6, bias=False)
            self.head = nn.Sequential(nn.Sigmoid(), nn.Dropout(0.3), nn.Linear(6, 5), nn.Tanh(),
                                      nn.Softmax(dim=1))

        def forward(self, x):
            y = self.bn(self.conv(x))
            y = F.max_pool2d(y.relu(), 1) + y  # a residual Add
            y = self.flat(self.adapt(self.pool(y)))
            return self.head(self.fc(y))

    model = Net()
    randomize_batch_norm(model)
    path = tmp_path / "net.onnx"
    tinyconv.onnx.export(model, tinyconv.zeros(3, 1, 14, 14), path)
    x = np.random.default_rng(1).normal(size=(5, 1, 14, 14)).astype(np.float32)
    model.eval()
    with tinyconv.no_grad():
        expected = model(tinyconv.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(path, x), expected, atol=1e-5)


def test_static_batch(tmp_path):
    model = SEED_NETWORKS["cnn"][0]()
    proto = tinyconv.onnx.export(model, tinyconv.zeros(4, 1, 28, 28), tmp_path / "c.onnx",
                                 dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_unsupported_op_and_module_are_named(tmp_path):
    class Doubles(nn.Module):
        def forward(self, x):
            return nn.Linear(3, 2)(x) * 2  # Mul is not exported

    with pytest.raises(tinyconv.onnx.ExportError, match="Mul"):
        tinyconv.onnx.export(Doubles(), tinyconv.zeros(1, 3), tmp_path / "x.onnx")

    class Exp(nn.Module):
        def forward(self, x):
            return x.exp()

    model = nn.Sequential(nn.Linear(3, 3), Exp(), nn.ReLU())
    with pytest.raises(tinyconv.onnx.ExportError, match=r"'1' \(Exp\).*Exp"):
        tinyconv.onnx.export(model, tinyconv.zeros(1, 3), tmp_path / "y.onnx")
    # nothing stays patched after a failed export
    assert "forward" not in model[1].__dict__
    assert F.relu.__name__ == "relu" and tinyconv.Tensor.view.__name__ == "view"


def test_import_tinyconv_imports_neither_onnx_nor_torch():
    code = ("import sys, tinyconv, tinyconv.onnx; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_linear_on_3d_input_batch_norm_1d_and_reshapes(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 4)
            self.bn = nn.BatchNorm1d(8)
            self.out = nn.Linear(4, 3)

        def forward(self, x):                        # (N, 2, 5)
            y = self.fc(x).reshape(x.size(0), -1)    # MatMul + Add, then (N, 8)
            return self.out(self.bn(y).view(-1, 2, 4))

    model = Net()
    randomize_batch_norm(model)
    path = tmp_path / "net.onnx"
    tinyconv.onnx.export(model, tinyconv.zeros(2, 2, 5), path)
    x = np.random.default_rng(2).normal(size=(7, 2, 5)).astype(np.float32)
    model.eval()
    with tinyconv.no_grad():
        expected = model(tinyconv.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(path, x), expected, atol=1e-5)


def test_a_reshape_across_the_batch_needs_a_static_batch(tmp_path):
    class Flat(nn.Module):
        def forward(self, x):
            return x.view(-1)

    with pytest.raises(tinyconv.onnx.ExportError, match="dynamic_batch=False"):
        tinyconv.onnx.export(Flat(), tinyconv.zeros(2, 5), tmp_path / "f.onnx")
    path = tmp_path / "g.onnx"
    tinyconv.onnx.export(Flat(), tinyconv.zeros(2, 5), path, dynamic_batch=False)
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_array_equal(run_onnx(path, x), x.reshape(-1))
