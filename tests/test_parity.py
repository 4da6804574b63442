"""parity/: to_torch / from_torch, shared dropout masks, and the ``python -m parity`` commands.

The hand-written twins in parity/models.py are the oracle for ``to_torch``; whole networks are
checked against torch in float64 (logits, loss, every gradient), and a short lockstep training
run must keep both loss curves within 1e-9 of each other. In float32 the lockstep judges both
frameworks against a float64 run: tinyconv must stay as close to it as torch does, and a bug of
1% in tinyconv's learning rate must fail that rule.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
import tinyconv.models
from tinyconv import nn
from tinyconv.models import SEED_NETWORKS
from tinyconv.nn import functional as F

torch = pytest.importorskip("torch")
parity = pytest.importorskip("parity")
from parity import cli, from_torch, harness, to_torch  # noqa: E402
from parity import models as parity_models  # noqa: E402
from parity.twins import MaskSource, record_outputs, shared_dropout  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*dropout2d")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.environ.get("TINYCONV_DATA") or "/work/shared/data"
NAMES = sorted(SEED_NETWORKS)
ORIGINALS = {name: ctor for name, (ctor, _) in parity_models.SEED_NETWORKS.items()}
TOL64 = 1e-9


def has_data(model):
    kind = cli.DATA[model][0]
    try:
        getattr(tinyconv.data, kind)(DATA_ROOT, train=False, download=False)
    except Exception:  # noqa: BLE001 - any reason the data is unavailable
        return False
    return True


def seeded(name, seed=0, dtype=np.float32):
    tinyconv.manual_seed(seed)
    return SEED_NETWORKS[name][0]().to(dtype)


# ---- to_torch / from_torch ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_to_torch_equals_the_hand_written_twin(name):
    ours = seeded(name)
    twin = to_torch(ours)
    original = ORIGINALS[name]()
    original.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in
                              ours.state_dict().items()})
    assert type(twin) is type(original)
    assert repr(twin) == repr(original)
    assert list(twin.state_dict()) == list(original.state_dict())
    for key, value in original.state_dict().items():
        assert twin.state_dict()[key].dtype == value.dtype, key
        assert torch.equal(twin.state_dict()[key], value), key
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((3, 1, 28, 28),
                                                                  dtype=np.float32))
    twin.eval()
    original.eval()
    with torch.no_grad():
        assert torch.equal(twin(x), original(x))


@pytest.mark.parametrize("name", NAMES)
def test_from_torch_of_to_torch_round_trips_bit_for_bit(name):
    for dtype in (np.float32, np.float64):
        ours = seeded(name, dtype=dtype)
        ours.eval()
        back = from_torch(to_torch(ours))
        assert type(back) is type(ours)
        assert repr(back) == repr(ours)
        assert not back.training
        sd, back_sd = ours.state_dict(), back.state_dict()
        assert list(back_sd) == list(sd)
        for key in sd:
            a, b = sd[key].numpy(), back_sd[key].numpy()
            assert a.dtype == b.dtype and a.shape == b.shape, key
            assert a.tobytes() == b.tobytes(), key


@pytest.mark.parametrize("name", NAMES)
def test_from_torch_of_a_hand_written_torch_network(name):
    torch.manual_seed(0)
    original = ORIGINALS[name]().double()
    ours = from_torch(original)
    assert type(ours) is getattr(tinyconv.models, type(original).__name__)
    for key, value in original.state_dict().items():
        assert np.array_equal(ours.state_dict()[key].numpy(), value.numpy()), key
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28))
    original.eval()
    ours.eval()
    with torch.no_grad():
        expected = original(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(tinyconv.tensor(x)).detach().numpy(), expected,
                               rtol=1e-12, atol=1e-12)


def test_to_torch_dtype_device_mode_and_random_state():
    ours = seeded("fashioncnn")
    ours.layer1.train(False)
    torch_state, tiny_state = torch.get_rng_state(), tinyconv.get_rng_state()
    twin = to_torch(ours, dtype="float64", device="cpu")
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert twin.fc1.weight.dtype == torch.float64
    assert twin.layer1[1].num_batches_tracked.dtype == torch.int64
    assert twin.training and not twin.layer1.training and not twin.layer1[1].training
    assert twin.layer2.training
    back = from_torch(twin, dtype=np.float32)
    assert tinyconv.get_rng_state() == tiny_state
    assert back.fc1.weight.dtype == np.float32
    assert np.array_equal(back.fc1.weight.detach().numpy(), ours.fc1.weight.detach().numpy())


def test_generic_containers_and_layers():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(3, eps=1e-3, momentum=None), nn.ReLU(),
                          nn.AvgPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d((2, 1)),
                          nn.Flatten(), nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Dropout(0.0),
                          nn.Softmax(dim=1))
    twin = to_torch(model)
    expected = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False),
                                   torch.nn.BatchNorm2d(3, eps=1e-3, momentum=None),
                                   torch.nn.ReLU(), torch.nn.AvgPool2d(2, ceil_mode=True),
                                   torch.nn.AdaptiveAvgPool2d((2, 1)), torch.nn.Flatten(),
                                   torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4),
                                   torch.nn.Dropout(0.0), torch.nn.Softmax(dim=1))
    assert repr(twin) == repr(expected)
    x = np.random.default_rng(0).standard_normal((5, 2, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(model(tinyconv.tensor(x)).detach().numpy(),
                               twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


class Scaled(nn.Module):
    """A user network: its own forward over F, a parameter of its own, a plain attribute."""

    def __init__(self):
        super().__init__()
        self.width = 4
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
        self.scale = nn.Parameter(np.full(4, 2.0, dtype=np.float32))

    def forward(self, x):
        return F.log_softmax(F.relu(self.body(x)) * self.scale, dim=1).view(-1, self.width)


def test_a_user_network_without_a_registered_twin():
    ours = Scaled()
    twin = to_torch(ours)
    assert isinstance(twin, torch.nn.Module) and type(twin).__name__ == "Scaled"
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in ours.named_parameters()]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(tinyconv.tensor(x)).detach().numpy(),
                               twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)
    back = from_torch(twin)  # the auto twin is registered nowhere: made on the fly again
    np.testing.assert_array_equal(back.scale.detach().numpy(), ours.scale.detach().numpy())
    np.testing.assert_allclose(back(tinyconv.tensor(x)).detach().numpy(),
                               ours(tinyconv.tensor(x)).detach().numpy(), rtol=1e-6)


def test_unsupported_modules_are_named():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.CrossEntropyLoss()))
    with pytest.raises(parity.UnsupportedModuleError, match=r"CrossEntropyLoss \(at '1\.1'\)"):
        to_torch(model)
    with pytest.raises(parity.UnsupportedModuleError, match="GELU"):
        from_torch(torch.nn.Sequential(torch.nn.GELU()))
    with pytest.raises(TypeError, match="tinyconv.nn.Module"):
        to_torch(torch.nn.ReLU())


# ---- shared dropout masks and recorded outputs ----------------------------------------------


def test_shared_dropout_applies_one_mask_to_both_and_restores_forward():
    ours = nn.Sequential(nn.Dropout(0.5), nn.Dropout2d(0.3))
    twin = to_torch(ours)
    x = np.ones((4, 6, 3, 3), dtype=np.float64)
    with shared_dropout(ours, twin, seed=3) as source:
        a = ours(tinyconv.tensor(x)).numpy()
        b = twin(torch.from_numpy(x)).numpy()
        a2 = ours(tinyconv.tensor(x)).numpy()
        b2 = twin(torch.from_numpy(x)).numpy()
    assert source.drawn == 4  # two modules, two calls each; each mask drawn once
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a, a2)
    assert set(np.unique(a)) <= {0.0, 1 / 0.5 / 0.7}
    assert "forward" not in vars(ours[0]) and "forward" not in vars(twin[0])
    ours.eval()
    twin.eval()
    with shared_dropout(ours, twin) as source:
        assert np.array_equal(ours(tinyconv.tensor(x)).numpy(), x)
    assert source.drawn == 0


def test_dropout2d_masks_drop_whole_channels():
    source = MaskSource(0)
    mask = source.mask("tinyconv", "d", (8, 5, 1, 1), 0.5, np.float32)
    assert mask.shape == (8, 5, 1, 1)
    assert source.mask("torch", "d", (8, 5, 1, 1), 0.5, np.float32) is mask


def test_record_outputs_numbers_repeated_calls():
    ours = seeded("convmodule", dtype=np.float64)
    twin = to_torch(ours)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    with record_outputs(ours, twin) as rec:
        ours(tinyconv.tensor(x))
        twin(torch.from_numpy(x))
    assert rec.names()[-4:] == ["relu", "fc2", "relu#2", "fc3"]
    # torch's ReLU(inplace=True) overwrote the pooled output after the hook had copied it
    assert np.any(rec.outputs["torch"]["conv2d.1"] < 0)
    for name in rec.names():
        np.testing.assert_allclose(rec.outputs["tinyconv"][name], rec.outputs["torch"][name],
                                   rtol=1e-12, atol=1e-12)


# ---- whole networks against torch, float64 ---------------------------------------------------


_TWINS = {}


def twins64(name):
    if name not in _TWINS:
        ours = seeded(name, dtype=np.float64)
        _TWINS[name] = (ours, to_torch(ours))
    return _TWINS[name]


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(NAMES), n=st.integers(1, 4), train=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_whole_networks_match_torch_in_float64(name, n, train, seed):
    ours, twin = twins64(name)
    ours.train(train)
    twin.train(train)
    ours.zero_grad()
    twin.zero_grad()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 28, 28))
    y = rng.integers(0, 10, n)
    _, tiny_loss_fn, torch_loss_fn = cli.losses(name)
    (tx, ty), (px, py) = cli.as_inputs(x, y, "float64", "cpu")
    with shared_dropout(ours, twin, seed=seed):
        tiny_logits, torch_logits = ours(tx), twin(px)
    tiny_loss, torch_loss = tiny_loss_fn(tiny_logits, ty), torch_loss_fn(torch_logits, py)
    tiny_loss.backward()
    torch_loss.backward()
    _, rel = cli.difference(tiny_logits.detach().numpy(), torch_logits.detach().numpy())
    assert rel <= TOL64, f"logits: rel {rel:.2e}"
    assert abs(tiny_loss.item() - torch_loss.item()) <= TOL64 * abs(torch_loss.item())
    for _, what, pname, _, _, diff, rel in cli.grad_rows("m", ours, twin, TOL64):
        assert rel <= TOL64, f"{what} {pname}: max abs {diff:.2e}, rel {rel:.2e}"
    # BatchNorm's running statistics moved identically (train mode) or not at all (eval)
    for key, value in twin.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-12,
                                   atol=1e-15, err_msg=key)


# ---- the commands ---------------------------------------------------------------------------


def test_lockstep_float64_agrees_to_1e9_for_20_steps(tmp_path):
    if not has_data("fashioncnn"):
        pytest.skip(f"no Fashion-MNIST under {DATA_ROOT}")
    rc = cli.main(["lockstep", "--model", "fashioncnn", "--steps", "20", "--batch-size", "16",
                   "--dtype", "float64", "--device", "cpu", "--data-dir", DATA_ROOT,
                   "--out", str(tmp_path)])
    report = json.loads((tmp_path / "lockstep.json").read_text())
    assert rc == 0
    assert len(report["history"]) == 20
    assert report["summary"]["max_rel_gap"] <= 1e-9
    assert report["summary"]["masks_shared"] == 20  # one Dropout2d call per step, shared
    assert (tmp_path / "lockstep.png").stat().st_size > 1000
    # the torch-against-torch baseline ran on the same batches; in float64 it is tiny too
    base = report["summary"]["torch_vs_torch"]
    assert base["threads"][0] == 1 and base["threads"][1] > 1
    assert 0 <= base["max_rel_gap"] <= 1e-9


def lockstep32(tmp_path, steps=10):
    """A CPU-cheap float32 lockstep (the small CNN, batch 16); returns (exit status, report)."""
    if not has_data("cnn"):
        pytest.skip(f"no MNIST under {DATA_ROOT}")
    rc = cli.main(["lockstep", "--model", "cnn", "--dtype", "float32", "--steps", str(steps),
                   "--batch-size", "16", "--device", "cpu", "--data-dir", DATA_ROOT,
                   "--out", str(tmp_path)])
    return rc, json.loads((tmp_path / "lockstep.json").read_text())


def test_lockstep_float32_is_judged_against_float64(tmp_path, capsys):
    rc, report = lockstep32(tmp_path)
    summary, history = report["summary"], report["history"]
    out = capsys.readouterr().out
    assert rc == 0 and summary["target_met"], out
    assert len(history) == 10 and summary["reference"] == "torch float64"
    rule = cli.FLOAT32_RULE
    assert summary["allowed"] == max(rule["factor"] * summary["max_loss_dev_torch"],
                                     rule["floor"])
    assert summary["max_loss_dev_tinyconv"] <= summary["allowed"]
    for h in history:  # both distances, every step
        for key in ("loss_dev_tinyconv", "loss_dev_torch", "dist_tinyconv", "dist_torch"):
            assert np.isfinite(h[key]) and h[key] >= 0, (key, h)
        assert h["loss_dev_tinyconv"] == abs(h["loss_tinyconv"] - h["loss_reference"]) / abs(
            h["loss_reference"])
        assert h["reference_twins_gap"] <= TOL64  # the float64 twins agree: a sound reference
    # Neither float32 run is the float64 one (so the comparison is not vacuous).
    assert summary["max_loss_dev_torch"] > 0 and summary["max_dist_tinyconv"] > 0
    assert "torch_vs_torch" not in summary  # the baseline is off by default in float32
    assert "verdict:" in out and ": met" in out
    assert (tmp_path / "lockstep.png").stat().st_size > 1000


def test_lockstep_float32_fails_a_one_percent_bug(tmp_path, monkeypatch, capsys):
    """tinyconv-float32 (only) steps with lr x 1.01: far more than rounding, so the rule fails."""
    real = harness.optimizer  # where the commands look it up (parity.cli re-exports it)

    def buggy(fw, name, model, lr, momentum=0.9):
        if fw is tinyconv and next(iter(model.parameters())).dtype == np.float32:
            lr = lr * 1.01
        return real(fw, name, model, lr, momentum)

    monkeypatch.setattr(harness, "optimizer", buggy)
    rc, report = lockstep32(tmp_path)
    summary = report["summary"]
    assert rc == 1 and not summary["target_met"], summary
    assert summary["reference_ok"]  # the float64 twins were untouched
    assert summary["max_loss_dev_tinyconv"] > summary["allowed"]
    assert "NOT met" in capsys.readouterr().out


def test_cli_compare_prints_a_table():
    if not has_data("cnn"):
        pytest.skip(f"no MNIST under {DATA_ROOT}")
    env = dict(os.environ, TINYCONV_DATA=DATA_ROOT)
    proc = subprocess.run([sys.executable, "-m", "parity", "compare", "--model", "cnn",
                           "--batch-size", "8", "--device", "cpu"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "dropout masks: shared" in out
    assert "tolerance on rel for float64: 1e-09" in out
    for row in ("train output conv1", "eval  loss   nll_loss", "train grad   fc2.bias"):
        assert row in out, row
    assert "FAIL" not in out
    assert "26 of 26 checks within tolerance" in out


@pytest.mark.slow
def test_accuracy_command_trains_both_and_reports_the_gap(capsys):
    if not has_data("cnn"):
        pytest.skip(f"no MNIST under {DATA_ROOT}")
    rc = cli.main(["accuracy", "--model", "cnn", "--epochs", "1", "--limit-train", "2048",
                   "--device", "cpu", "--data-dir", DATA_ROOT])
    out = capsys.readouterr().out
    assert rc == 0
    assert "2048 training images" in out and "dropout masks: shared" in out
    line = [s for s in out.splitlines() if s.startswith("final test accuracy")][0]
    ours, theirs = (float(v.rstrip("%,")) for v in line.split()[4:7:2])
    assert ours > 50 and theirs > 50 and abs(ours - theirs) < 2


def test_argmax_flips_are_found_and_name_the_layers_before_the_pool():
    # A window whose two candidates tie on one side and not on the other: the twins' maxima
    # agree in value but not in position, which the compare command must explain, not fail.
    from parity.cli import behind_flips
    from parity.twins import Recorder

    pool = tinyconv.nn.MaxPool2d(2)
    a = np.array([[[[0.5, 0.1], [0.5, 0.2]]]], dtype=np.float32)  # tie: first (0) wins
    b = a.copy()
    b[0, 0, 1, 0] = np.nextafter(np.float32(0.5), np.float32(1))  # the later one is larger
    rec = Recorder()
    rec.record_pool_input("tinyconv", "features.2", pool, tinyconv.from_numpy(a))
    rec.record_pool_input("torch", "features.2", pool, torch.from_numpy(b))
    rec.record_pool_input("tinyconv", "features.5", pool, tinyconv.from_numpy(a))
    rec.record_pool_input("torch", "features.5", pool, torch.from_numpy(a))
    assert rec.argmax_flips() == {"features.2": 1, "features.5": 0}
    model = tinyconv.nn.Module()
    model.features = tinyconv.nn.Sequential(tinyconv.nn.Conv2d(1, 1, 1), tinyconv.nn.ReLU(),
                                            pool, tinyconv.nn.Conv2d(1, 1, 1))
    assert behind_flips(model, {"features.2": 1}) == {"features.0.weight", "features.0.bias"}
