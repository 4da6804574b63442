"""tinyconv.save / tinyconv.load: round trips, and every kind of bad file refused clearly."""

import os
import pickle
import zipfile

import numpy as np
import pytest

import tinyconv
from tinyconv import CheckpointError
from tinyconv.models import FashionCNN


def make_checkpoint():
    tinyconv.manual_seed(0)
    model = FashionCNN()
    optimizer = tinyconv.optim.Adam(model.parameters())
    loss = tinyconv.nn.functional.cross_entropy(model(tinyconv.randn(4, 1, 28, 28)),
                                                tinyconv.tensor([1, 2, 3, 4]))
    loss.backward()
    optimizer.step()
    return model, optimizer, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "epoch": 3, "name": "x", "none": None, "pair": (1, 2.5),
                              "rng": tinyconv.get_rng_state()}


def test_round_trip_restores_model_optimizer_and_plain_values(tmp_path):
    model, optimizer, ckpt = make_checkpoint()
    path = tmp_path / "c.npz"
    tinyconv.save(ckpt, path)
    back = tinyconv.load(path)
    assert back["epoch"] == 3 and back["name"] == "x" and back["none"] is None
    assert back["pair"] == (1, 2.5)
    assert back["rng"] == ckpt["rng"]
    assert list(back["model"]) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert back["model"][key].dtype == value.dtype
        np.testing.assert_array_equal(back["model"][key], value.numpy())
    fresh = FashionCNN()
    fresh.load_state_dict(back["model"])
    opt2 = tinyconv.optim.Adam(fresh.parameters())
    opt2.load_state_dict(back["optimizer"])
    for p, q in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(optimizer.state[p]["exp_avg"], opt2.state[q]["exp_avg"])
        assert optimizer.state[p]["step"] == opt2.state[q]["step"]


def test_a_malicious_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(CheckpointError, match="pickle"):
        tinyconv.load(path)
    assert not marker.exists()
    # A pickle hidden inside a zip (as torch.save writes) is refused as well.
    zpath = tmp_path / "evil_zip.npz"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("data.pkl", pickle.dumps({"model": Evil()}))
    with pytest.raises(CheckpointError, match="__tinyconv__"):
        tinyconv.load(zpath)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "random", "flip", "empty"])
def test_damaged_files_are_refused(tmp_path, damage):
    _, _, ckpt = make_checkpoint()
    path = tmp_path / "c.npz"
    tinyconv.save(ckpt, path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "random":
        data = bytearray(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
    elif damage == "flip":
        data[len(data) // 3] ^= 0xFF  # inside some array's bytes
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=str(path.name)):
        tinyconv.load(path)


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        tinyconv.load(tmp_path / "nope.npz")


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path):
    _, _, ckpt = make_checkpoint()
    path = tmp_path / "c.npz"
    tinyconv.save(ckpt, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="object"):
        tinyconv.save({"model": ckpt["model"], "bad": object()}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind


def test_wrong_keys_are_refused_by_load_state_dict(tmp_path):
    _, _, ckpt = make_checkpoint()
    state = dict(ckpt["model"])
    state["fc9.weight"] = state.pop("fc1.weight")
    model = FashionCNN()
    before = model.fc2.weight.detach().numpy().copy()
    with pytest.raises(ValueError, match=r'Missing key\(s\).*"fc1.weight"'):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.fc2.weight.detach().numpy(), before)  # nothing half-loaded


def test_torch_tensors_can_be_saved_and_loaded_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from parity.models import FashionCNN as TorchFashionCNN

    twin = TorchFashionCNN()
    tinyconv.save({"model": twin.state_dict()}, tmp_path / "t.npz")
    state = tinyconv.load(tmp_path / "t.npz")["model"]
    model = FashionCNN()
    model.load_state_dict(state)
    back = TorchFashionCNN()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    for (k, a), b in zip(twin.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), k


def test_every_flipped_bit_of_a_checkpoint_is_refused_or_harmless(tmp_path):
    """A training checkpoint (model, numbers, history) with any one byte changed: loading it
    raises CheckpointError or gives exactly the saved values (the byte was unused metadata, such
    as a timestamp). Never another exception, never different values."""
    tinyconv.manual_seed(0)
    model = tinyconv.nn.Linear(2, 2)
    path = tmp_path / "ck.npz"
    tinyconv.save({"model": model.state_dict(), "epoch": 3, "history": {"loss": [1.0, 0.5]}},
                  path)
    raw = path.read_bytes()
    saved = tinyconv.load(path)
    damaged = tmp_path / "damaged.npz"
    for i in range(len(raw)):
        for bits in (0x01, 0x11, 0x80):
            data = bytearray(raw)
            data[i] ^= bits
            damaged.write_bytes(bytes(data))
            try:
                loaded = tinyconv.load(damaged)
            except tinyconv.CheckpointError as exc:
                assert str(damaged) in str(exc)
                continue
            assert loaded["epoch"] == saved["epoch"] and loaded["history"] == saved["history"]
            for key, value in saved["model"].items():
                np.testing.assert_array_equal(np.asarray(loaded["model"][key]),
                                              np.asarray(value))


def test_a_damaged_array_header_with_a_valid_crc_is_a_checkpoint_error(tmp_path):
    """The .npy header of a member parsed by numpy's tokenizer: damage written before the zip's
    CRC was computed (so zipfile cannot notice) still ends as a CheckpointError."""
    path = tmp_path / "ck.npz"
    tinyconv.save({"w": np.arange(3.0), "epoch": 1}, path)
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    for k, (info, data) in enumerate(members):
        opening = data.index(b"(")  # the shape tuple in the header dict
        for bad in (b"[", b"{", b"\n"):
            damaged = tmp_path / f"damaged{k}.npz"
            with zipfile.ZipFile(damaged, "w") as z:
                for other, other_data in members:
                    z.writestr(other, data[:opening] + bad + data[opening + 1:]
                               if other is info else other_data)
            with pytest.raises(tinyconv.CheckpointError, match="damaged"):
                tinyconv.load(damaged)
