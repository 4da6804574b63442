"""What the port corpus (tests/test_ports.py) found missing, each checked against torch."""

import numpy as np
import pytest
import torch

import tinyconv


@pytest.mark.parametrize("shape,k", [((4, 4), 0), ((3, 5), 1), ((5, 3), -2), ((4,), 0),
                                     ((3,), 2), ((3,), -1), ((2, 6), 4)])
def test_diag_matches_torch(shape, k):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape)
    ours = tinyconv.tensor(a, requires_grad=True)
    theirs = torch.tensor(a, requires_grad=True)
    y, y_t = tinyconv.diag(ours, k), torch.diag(theirs, k)
    np.testing.assert_array_equal(y.detach().numpy(), y_t.detach().numpy())
    gy = rng.standard_normal(y_t.shape)
    y.backward(tinyconv.tensor(gy))
    y_t.backward(torch.tensor(gy))
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())
    np.testing.assert_array_equal(ours.detach().diag(k).numpy(), theirs.detach().diag(k).numpy())


def test_diag_of_a_confusion_matrix_built_by_indexing():
    # The DeepFashionCNN tutorial's per-class accuracy: int64 counts, += through 0-d indices.
    targets, preds = [0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0]
    results = []
    for lib in (tinyconv, torch):
        confusion = lib.zeros(3, 3, dtype=lib.int64)
        for t, p in zip(lib.tensor(targets), lib.tensor(preds), strict=True):
            confusion[t.long(), p.long()] += 1
        results.append((confusion.diag().float() / confusion.sum(1).float()).tolist())
    assert results[0] == pytest.approx(results[1])


def test_diag_refuses_3d():
    with pytest.raises(RuntimeError, match="Supports 1D or 2D tensors. Got 3D"):
        tinyconv.zeros(2, 2, 2).diag()


def _onnx_model():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    tinyconv.manual_seed(0)
    model = tinyconv.nn.Sequential(tinyconv.nn.Conv2d(1, 4, 3), tinyconv.nn.ReLU(),
                                   tinyconv.nn.Flatten(), tinyconv.nn.Linear(4 * 6 * 6, 3))
    return model, ort


def test_onnx_export_takes_torchs_arguments(tmp_path):
    model, ort = _onnx_model()
    path = tmp_path / "m.onnx"
    tinyconv.onnx.export(model, (tinyconv.randn(1, 1, 8, 8),), str(path),
                         input_names=["pixels"], output_names=["logits"],
                         dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
                         dynamo=False)
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["pixels"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    x = np.random.default_rng(1).standard_normal((5, 1, 8, 8)).astype(np.float32)
    (out,) = session.run(None, {"pixels": x})
    np.testing.assert_allclose(out, model(tinyconv.tensor(x)).detach().numpy(), atol=1e-5)


def test_onnx_export_fixes_shapes_without_dynamic_axes_as_torch(tmp_path):
    model, ort = _onnx_model()
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 6 * 6, 3))
    shapes = []
    for lib, net in ((tinyconv, model), (torch, theirs)):
        path = tmp_path / f"{lib.__name__}.onnx"
        lib.onnx.export(net, lib.zeros(2, 1, 8, 8), str(path), input_names=["input"],
                        output_names=["output"], dynamo=False)
        shapes.append([d.dim_value or d.dim_param for d in
                       __import__("onnx").load(str(path)).graph.input[0].type.tensor_type.shape.dim])
    assert shapes[0] == shapes[1] == [2, 1, 8, 8]


@pytest.mark.parametrize("kwargs,match", [
    (dict(dynamic_axes={"input": {2: "h"}}), "only axis 0"),
    (dict(dynamic_axes={"images": {0: "b"}}), "neither the input"),
    (dict(input_names=["a", "b"]), "must hold one name"),
    (dict(export_params=False), "export_params=False"),
])
def test_onnx_export_says_what_it_cannot_do(tmp_path, kwargs, match):
    model, _ = _onnx_model()
    with pytest.raises(tinyconv.onnx.ExportError, match=match):
        tinyconv.onnx.export(model, tinyconv.zeros(1, 1, 8, 8), str(tmp_path / "m.onnx"),
                             **kwargs)


@pytest.mark.parametrize("name", ["sin", "cos"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sin_cos_match_torch(name, dtype):
    a = np.random.default_rng(2).uniform(-4, 4, (3, 5)).astype(dtype)
    ours = tinyconv.tensor(a, requires_grad=True)
    theirs = torch.tensor(a, requires_grad=True)
    y, y_t = getattr(tinyconv, name)(ours), getattr(torch, name)(theirs)
    assert y.dtype == (tinyconv.float32 if dtype == "float32" else tinyconv.float64)
    np.testing.assert_allclose(y.detach().numpy(), y_t.detach().numpy(), rtol=1e-6, atol=1e-7)
    gy = np.random.default_rng(3).standard_normal(a.shape).astype(dtype)
    (y * tinyconv.tensor(gy)).sum().backward()
    (y_t * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(getattr(ours, name)().detach().numpy(), y_t.detach().numpy(),
                               rtol=1e-6, atol=1e-7)


def test_sin_of_integers_is_float32_as_torch():
    assert tinyconv.sin(tinyconv.tensor([1, 2])).dtype == tinyconv.float32
    assert torch.sin(torch.tensor([1, 2])).dtype == torch.float32


def test_factories_take_the_device_argument():
    # torch.linspace(..., device=device, dtype=dtype) as the custom-Function tutorial writes it
    x = tinyconv.linspace(-1, 1, 5, device=tinyconv.device("cpu"), dtype=tinyconv.float64)
    np.testing.assert_array_equal(x.numpy(), torch.linspace(-1, 1, 5, dtype=torch.float64))
    assert tinyconv.eye(3, device="cpu").tolist() == torch.eye(3, device="cpu").tolist()
    with pytest.raises(Exception, match="cuda"):
        tinyconv.linspace(0, 1, 3, device="cuda")


def test_format_of_a_0d_tensor_is_its_number_as_torch():
    # The transfer-learning tutorial prints f"{epoch_acc:.4f}" and f"{best_acc:4f}".
    for value, spec in [(0.123456, ".4f"), (0.5, "4f"), (3, ">5d"), (2.5, "")]:
        assert format(tinyconv.tensor(value), spec) == format(torch.tensor(value), spec)
    assert format(tinyconv.tensor([1.0, 2.0]), "") == str(tinyconv.tensor([1.0, 2.0]))
    for lib in (tinyconv, torch):
        with pytest.raises(TypeError):
            format(lib.tensor([1.0, 2.0]), ".2f")
