"""ResNet-18/34 (tinyconv.vision.models) against torchvision's, on the same weights.

Small inputs (batch 2, 3x64x64) keep every test fast; the network is the same at any size.
float64 values and gradients agree to 1e-9 (relative), float32 evaluation logits to 1e-4.
"""

import hashlib
import io
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

import tinyconv
from tinyconv import nn
from tinyconv.ops import conv as conv_ops
from tinyconv.vision import models
from tinyconv.vision.models import _api

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

TOL64 = 1e-9
SHAPE = (2, 3, 64, 64)


def pair(arch="resnet18", dtype=np.float64, seed=0, **kwargs):
    """(tinyconv model, torchvision model) holding the same (torchvision-drawn) weights."""
    torch.manual_seed(seed)
    theirs = getattr(torchvision.models, arch)(**kwargs)
    ours = getattr(models, arch)(**kwargs)
    ours.load_state_dict(theirs.state_dict())
    if dtype == np.float64:
        theirs.double()
        ours.double()
    return ours, theirs


def images(dtype=np.float64, seed=1, shape=SHAPE):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


# ---- structure and initialisation ------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_state_dict_keys_and_shapes_are_torchvisions(arch):
    ours = getattr(models, arch)()
    theirs = getattr(torchvision.models, arch)()
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(ref)
    for key, value in ref.items():
        assert tuple(mine[key].shape) == tuple(value.shape), key
        assert str(mine[key].dtype) == str(value.dtype).replace("torch.", ""), key
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in
                                                             theirs.parameters())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_initialisation_follows_torchvision():
    tinyconv.manual_seed(0)
    model = models.resnet34(num_classes=7)
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            w = m.weight.detach().numpy()
            assert m.bias is None
            if w.size >= 4096:  # enough draws for the sample std to be within 10%
                assert w.std() == pytest.approx(np.sqrt(2.0 / fan_out), rel=0.1), name
                assert abs(w.mean()) < 0.1 * np.sqrt(2.0 / fan_out), name
        if isinstance(m, nn.BatchNorm2d):
            assert (m.weight.detach().numpy() == 1).all() and (m.bias.detach().numpy() == 0).all()
    assert tuple(model.fc.weight.shape) == (7, 512)
    bound = 1 / np.sqrt(512)  # nn.Linear's own default initialisation
    assert np.abs(model.fc.weight.detach().numpy()).max() <= bound

    zeroed = models.resnet18(zero_init_residual=True)
    for m in zeroed.modules():
        if isinstance(m, models.BasicBlock):
            assert (m.bn2.weight.detach().numpy() == 0).all()
            assert (m.bn1.weight.detach().numpy() == 1).all()


def test_identity_blocks_at_zero_init_residual():
    # with bn2 zeroed every block computes relu(shortcut(x)); blocks without downsample: x
    model = models.resnet18(zero_init_residual=True).eval()
    block = model.layer1[0]
    x = tinyconv.tensor(np.abs(images(np.float32, shape=(1, 64, 8, 8))))
    with tinyconv.no_grad():
        np.testing.assert_array_equal(block(x).numpy(), x.numpy())


# ---- parity with torchvision -----------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_float64_training_forward_and_every_gradient(arch):
    ours, theirs = pair(arch)
    ours.train()
    theirs.train()
    x = images(shape=SHAPE if arch == "resnet18" else (2, 3, 48, 48))  # layer4: 2x2 both
    target = np.array([3, 917])
    loss = nn.functional.cross_entropy(ours(tinyconv.tensor(x)), tinyconv.tensor(target))
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)),
                                              torch.from_numpy(target))
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item(), rel=TOL64)
    mine = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        assert mine[name].grad is not None, name
        assert rel_err(mine[name].grad.numpy(), p.grad.numpy()) < TOL64, name
    # the running statistics moved the same way
    ref = theirs.state_dict()
    for key, value in ours.state_dict().items():
        if "running" in key or "num_batches" in key:
            assert rel_err(value.numpy(), ref[key].numpy()) < TOL64, key


def test_float64_input_gradient_through_stem_and_pooling():
    # the gradient reaching the input passes the 7x7/2 stem and the padded 3x3/2 max pool
    ours, theirs = pair()
    x = images(shape=(2, 3, 40, 40))
    xt = tinyconv.tensor(x, requires_grad=True)
    ours(xt).sum().backward()
    xr = torch.from_numpy(x).requires_grad_(True)
    theirs(xr).sum().backward()
    assert rel_err(xt.grad.numpy(), xr.grad.numpy()) < TOL64


@pytest.mark.parametrize("fusion", [True, False])
def test_float32_eval_logits(fusion):
    nn.set_fusion(fusion)
    ours, theirs = pair(dtype=np.float32)
    ours.eval()
    theirs.eval()
    x = images(np.float32)
    with tinyconv.no_grad():
        y = ours(tinyconv.tensor(x)).numpy()
    with torch.no_grad():
        ref = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_fusion_never_changes_resnet():
    # nn.Sequential's fused patterns must not fire on ResNet's layers (blocks, not conv/bn runs)
    results = []
    for fusion in (True, False):
        nn.set_fusion(fusion)
        ours, _ = pair(dtype=np.float32)
        x = tinyconv.tensor(images(np.float32), requires_grad=True)
        ours(x).sum().backward()
        results.append((x.grad.numpy(), [p.grad.numpy() for p in ours.parameters()]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_lockstep_adam_training_in_float64():
    ours, theirs = pair()
    ours.fc = nn.Linear(ours.fc.in_features, 10).double()
    theirs.fc = torch.nn.Linear(theirs.fc.in_features, 10).double()
    with torch.no_grad():
        theirs.fc.weight.copy_(torch.from_numpy(ours.fc.weight.detach().numpy()))
        theirs.fc.bias.copy_(torch.from_numpy(ours.fc.bias.detach().numpy()))
    opt = tinyconv.optim.Adam(ours.parameters(), lr=1e-3)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    ours.train()
    theirs.train()
    for step in range(3):
        x, target = images(seed=10 + step, shape=(2, 3, 48, 48)), np.array([step, 9 - step])
        loss = nn.functional.cross_entropy(ours(tinyconv.tensor(x)), tinyconv.tensor(target))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)),
                                                  torch.from_numpy(target))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=TOL64), step
    ref = theirs.state_dict()
    for key, value in ours.state_dict().items():
        # NOTE: Adam divides each gradient by its own running magnitude, so a coordinate whose
        # gradient is tiny still takes a step of up to lr, and its rounding differences come
        # with it: parameters are compared on the scale of the steps (3 steps of at most
        # lr = 1e-3), to one millionth of it.
        if "running" in key or "num_batches" in key:  # relative to the tensor's scale
            assert rel_err(value.numpy(), ref[key].numpy()) < TOL64, key
        else:
            np.testing.assert_allclose(value.numpy(), ref[key].numpy(), rtol=0, atol=1e-9,
                                       err_msg=key)


# ---- transfer learning: a new head, a frozen backbone ------------------------------------------


def test_new_head_and_frozen_backbone_train_only_fc(monkeypatch):
    ours, theirs = pair(dtype=np.float32)
    ours.requires_grad_(False)
    ours.fc = nn.Linear(ours.fc.in_features, 10)
    theirs.requires_grad_(False)
    theirs.fc = torch.nn.Linear(theirs.fc.in_features, 10)
    with torch.no_grad():
        theirs.fc.weight.copy_(torch.from_numpy(ours.fc.weight.detach().numpy()))
        theirs.fc.bias.copy_(torch.from_numpy(ours.fc.bias.detach().numpy()))
    assert [n for n, p in ours.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    before = snapshot(ours)

    recording = []
    original = conv_ops.Conv2d.forward

    def watched(ctx, *args):
        recording.append(ctx.recording)
        return original(ctx, *args)

    monkeypatch.setattr(conv_ops.Conv2d, "forward", staticmethod(watched))
    opt = tinyconv.optim.Adam(ours.fc.parameters(), lr=1e-3)
    topt = torch.optim.Adam(theirs.fc.parameters(), lr=1e-3)
    ours.train()
    theirs.train()
    x, target = images(np.float32), np.array([1, 2])
    out = ours(tinyconv.tensor(x))
    # the graph starts at fc: nothing below it was recorded or kept for backward
    assert out.grad_fn is not None and out.grad_fn.inputs[0].grad_fn is None
    assert recording == [False] * 20  # 17 convolutions + 3 downsample projections
    loss = nn.functional.cross_entropy(out, tinyconv.tensor(target))
    opt.zero_grad()
    loss.backward()
    opt.step()
    tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)),
                                              torch.from_numpy(target))
    topt.zero_grad()
    tloss.backward()
    topt.step()
    after, ref = snapshot(ours), theirs.state_dict()
    for key, value in after.items():
        if key.startswith("fc."):
            assert not np.array_equal(value, before[key]), key
        elif "running" not in key and "num_batches" not in key:  # train mode updates BN stats
            np.testing.assert_array_equal(value, before[key], err_msg=key)
        np.testing.assert_allclose(value, ref[key].numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


def test_pretrained_keyword_and_weights_names(monkeypatch):
    # offline: pretrained=True asks for torchvision's file and says where to put it
    monkeypatch.setenv("TINYCONV_HOME", "/nonexistent-tinyconv-home")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.warns(UserWarning, match="pretrained"):
        with pytest.raises(_api.WeightsError) as info:
            models.resnet18(pretrained=True)
    message = str(info.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "/nonexistent-tinyconv-home/hub/checkpoints/resnet18-f37072fd.pth" in message
    with pytest.warns(UserWarning, match="pretrained"):
        assert isinstance(models.resnet18(pretrained=False), models.ResNet)
    assert models.ResNet18_Weights.DEFAULT is models.ResNet18_Weights.IMAGENET1K_V1
    assert models.ResNet34_Weights.verify("IMAGENET1K_V1").url.endswith("resnet34-b627a593.pth")
    assert (models.ResNet18_Weights.IMAGENET1K_V1.url
            == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    assert (models.ResNet34_Weights.IMAGENET1K_V1.url
            == torchvision.models.ResNet34_Weights.IMAGENET1K_V1.url)
    with pytest.raises(ValueError, match="num_classes"):
        models.resnet18(weights="DEFAULT", num_classes=10)
    with pytest.raises(ValueError, match="IMAGENET1K_V2"):
        models.resnet18(weights="IMAGENET1K_V2")


# ---- bad input ---------------------------------------------------------------------------------


def test_a_failed_load_changes_nothing_and_names_the_keys():
    model = models.resnet18()
    before = snapshot(model)
    with pytest.raises(tinyconv.ShapeError, match=r'Unexpected key\(s\).*"layer1\.2\.conv1'):
        model.load_state_dict(torchvision.models.resnet34().state_dict())
    head10 = models.resnet18(num_classes=10)
    before10 = snapshot(head10)
    with pytest.raises(tinyconv.ShapeError,
                       match=r"size mismatch for fc\.weight.*\(1000, 512\).*\(10, 512\)"):
        head10.load_state_dict(torchvision.models.resnet18().state_dict())
    partial = dict(torchvision.models.resnet18().state_dict())
    del partial["layer4.1.bn2.running_var"]
    with pytest.raises(tinyconv.ShapeError, match=r"Missing key.*layer4\.1\.bn2\.running_var"):
        model.load_state_dict(partial)
    for m, ref in ((model, before), (head10, before10)):
        for key, value in snapshot(m).items():
            np.testing.assert_array_equal(value, ref[key], err_msg=key)


def test_grey_images_into_the_colour_stem():
    model = models.resnet18()
    with pytest.raises(tinyconv.ShapeError, match=r"\[64, 3, 7, 7\].*3 channels.*1 channels"):
        model(tinyconv.zeros(2, 1, 32, 32))


# ---- weight files: cache, download, hash check --------------------------------------------------


def weights_for(tmp_path, payload_path, name="resnet18"):
    """A WeightsEnum whose published hash prefix is that of ``payload_path``."""
    prefix = hashlib.sha256(payload_path.read_bytes()).hexdigest()[:8]

    class TestWeights(_api.WeightsEnum):
        V1 = _api.Weights(url=f"https://example.invalid/models/{name}-{prefix}.pth",
                          transforms=None, meta={"num_categories": 1000})

    return TestWeights.V1


def serve(monkeypatch, payload, calls):
    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return Response(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def test_download_verifies_caches_and_reuses(tmp_path, monkeypatch):
    source = models.resnet18()
    payload_path = tmp_path / "payload.pth"
    tinyconv.save(source.state_dict(), payload_path)
    weights = weights_for(tmp_path, payload_path)
    monkeypatch.setenv("TINYCONV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # TINYCONV_HOME wins
    calls = []
    serve(monkeypatch, payload_path.read_bytes(), calls)
    loaded = models.resnet18()
    loaded.load_state_dict(weights.get_state_dict(progress=False))
    cached = tmp_path / "home" / "hub" / "checkpoints" / weights.file_name
    assert cached.read_bytes() == payload_path.read_bytes()
    assert os.listdir(cached.parent) == [weights.file_name]  # no temporary file left
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key].numpy(), value.numpy())
    weights.get_state_dict(progress=False)
    assert len(calls) == 1  # the second time comes from the cache

    # a cached file altered afterwards is refused before use
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(_api.WeightsError, match=f"{cached}.*SHA-256.*does not start"):
        weights.get_state_dict(progress=False)


def test_torch_home_is_used_without_tinyconv_home(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYCONV_HOME", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert _api.checkpoint_dir() == str(tmp_path / "th" / "hub" / "checkpoints")
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _api.checkpoint_dir() == str(tmp_path / "xdg" / "torch" / "hub" / "checkpoints")


def test_a_doctored_download_is_refused_and_not_cached(tmp_path, monkeypatch):
    payload_path = tmp_path / "payload.pth"
    tinyconv.save(models.resnet18().state_dict(), payload_path)
    weights = weights_for(tmp_path, payload_path)
    monkeypatch.setenv("TINYCONV_HOME", str(tmp_path / "home"))
    doctored = bytearray(payload_path.read_bytes())
    doctored[100] ^= 0x01
    serve(monkeypatch, bytes(doctored), [])
    with pytest.raises(_api.WeightsError, match="does not start with"):
        weights.get_state_dict(progress=False)
    assert os.listdir(tmp_path / "home" / "hub" / "checkpoints") == []


def test_offline_error_says_which_file_goes_where(tmp_path, monkeypatch):
    payload_path = tmp_path / "payload.pth"
    tinyconv.save(models.resnet18().state_dict(), payload_path)
    weights = weights_for(tmp_path, payload_path)
    monkeypatch.setenv("TINYCONV_HOME", str(tmp_path / "home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    expected = tmp_path / "home" / "hub" / "checkpoints" / weights.file_name
    with pytest.raises(_api.WeightsError) as info:
        weights.get_state_dict(progress=False)
    assert weights.url in str(info.value) and str(expected) in str(info.value)
    # the file put there by hand is then used offline
    expected.write_bytes(payload_path.read_bytes())
    assert set(weights.get_state_dict(progress=False)) == set(models.resnet18().state_dict())


@pytest.mark.parametrize("damage", ["truncated", "not a state_dict", "missing"])
def test_bad_weight_files_name_the_file(tmp_path, damage):
    path = tmp_path / "weights.pth"
    tinyconv.save(models.resnet18().state_dict(), path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "not a state_dict":
        tinyconv.save([1, 2, 3], path)
    else:
        path = tmp_path / "absent.pth"
    with pytest.raises(_api.WeightsError, match=str(path)):
        models.load_state_dict_file(path)


def test_torchvision_pth_file_loads_key_for_key(tmp_path):
    theirs = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(theirs.state_dict(), path)
    ours = models.resnet18()
    ours.load_state_dict(models.load_state_dict_file(path))
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy())
    # the same file as torch.hub names it, found in the cache folder and checked by its hash
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    (tmp_path / f"resnet18-{prefix}.pth").write_bytes(path.read_bytes())
    via_hub = models.resnet18()
    via_hub.load_state_dict(models.load_state_dict_from_url(
        f"https://example.invalid/resnet18-{prefix}.pth", model_dir=str(tmp_path),
        progress=False))
    np.testing.assert_array_equal(via_hub.fc.weight.detach().numpy(),
                                  theirs.fc.weight.detach().numpy())
    path.write_bytes(path.read_bytes()[:-4096])  # truncated
    with pytest.raises(_api.WeightsError, match=str(path)):
        models.load_state_dict_file(path)


# ---- benchmarks/resnet.py ----------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_script_smallest_settings(tmp_path):
    pytest.importorskip("threadpoolctl")
    import importlib.util
    import json
    import sys

    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "benchmarks")
    sys.path.insert(0, bench)
    spec = importlib.util.spec_from_file_location("bench_resnet", os.path.join(bench,
                                                                               "resnet.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--batches", "2", "--size", "32", "--rounds", "1", "--threads", "1",
                 "--profile", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "resnet.json").read_text())
    (row,) = data["rows"]
    assert row["tinyconv_torch_imported"] is False
    for key in ("train_ratio", "eval_ratio", "peak_ratio", "train_tinyconv_s", "eval_torch_s"):
        assert row[key] > 0, key
    ops = dict(data["profile"]["ops"])
    assert any(name.startswith("Conv2d.backward") for name in ops)
    assert "Conv2d.forward" in (tmp_path / "resnet.md").read_text()


# ---- the weights' preprocessing preset ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["float", "uint8"])
def test_weights_transforms_equal_torchvisions(kind):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 240, 300), dtype=np.uint8)
    if kind == "float":
        image = image.astype(np.float32) / 255
    preset = models.ResNet18_Weights.DEFAULT.transforms()
    ours = preset(image)
    theirs = torchvision.models.ResNet18_Weights.DEFAULT.transforms()(
        torch.from_numpy(image)).numpy()
    assert ours.shape == theirs.shape == (3, 224, 224) and ours.dtype == np.float32
    # uint8 images are resized in uint8, rounded: a value may land one step (1/255) apart
    atol = 1e-5 if kind == "float" else 1.01 / 255 / min(_api.ImageClassification(
        crop_size=224).std)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol)
    if kind == "uint8":
        assert np.mean(np.abs(ours - theirs) > 1e-5) < 0.01
    batch = preset(tinyconv.tensor(np.stack([image, image])))
    assert isinstance(batch, tinyconv.Tensor) and tuple(batch.shape) == (2, 3, 224, 224)
    with pytest.raises(ValueError, match="channels-first"):
        preset(np.zeros((240, 300), dtype=np.uint8))
