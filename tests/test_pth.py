"""PyTorch .pt/.pth checkpoints both ways, checked against real torch; damage is always refused."""

import collections
import io
import os
import pickle
import stat
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinyconv
from tinyconv import CheckpointError

torch = pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def as_numpy(x):
    if isinstance(x, tinyconv.Tensor):
        return x.detach().numpy()
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def assert_same(ours, theirs, where="checkpoint"):
    """Same structure, same container types, tensors equal bit for bit with the same dtype."""
    if isinstance(theirs, torch.Tensor) or isinstance(ours, tinyconv.Tensor):
        a, b = as_numpy(ours), as_numpy(theirs)
        assert a.dtype == b.dtype and a.shape == b.shape, (where, a.dtype, b.dtype)
        assert a.tobytes() == b.tobytes(), where
        assert bool(ours.requires_grad) == bool(theirs.requires_grad), where
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), where
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def rich_tinyconv_checkpoint():
    """Every dtype, a 0-d tensor, a non-contiguous array, nested plain values."""
    rng = np.random.default_rng(0)
    tensors = collections.OrderedDict()
    for name in DTYPES:
        values = rng.standard_normal((2, 3)) * 50
        tensors[name] = tinyconv.tensor(values.astype(name))
    tensors["scalar"] = tinyconv.tensor(np.int64(7).reshape(()))
    tensors["transposed"] = tinyconv.tensor(np.arange(12.0).reshape(3, 4).T)  # a strided view
    tensors["empty"] = tinyconv.tensor(np.zeros((0, 3), dtype=np.float32))
    tinyconv.manual_seed(0)
    model = tinyconv.models.FashionCNN()
    return {"tensors": tensors, "model": model.state_dict(), "epoch": 3, "lr": 0.1,
            "name": "fashion", "none": None, "flags": [True, False], "pair": (1, -2**40),
            "big": 2**70, "nested": {0: {"step": 5, "hist": [1.5, (2, "x")]}, "unicode": "é"}}


def test_tinyconv_pth_is_read_by_torch_bit_for_bit(tmp_path):
    ckpt = rich_tinyconv_checkpoint()
    path = tmp_path / "fashion_cnn.pth"
    tinyconv.save(ckpt, path)
    back = torch.load(path, weights_only=True)
    assert type(back["model"]) is collections.OrderedDict  # a state_dict, as torch's
    assert back["model"]["layer1.1.num_batches_tracked"].shape == ()
    assert_same(ckpt, back)
    # ... and it is torch's layout: records under "fashion_cnn/", stored, data 64-byte aligned.
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[0] == "fashion_cnn/data.pkl"
        assert {"fashion_cnn/byteorder", "fashion_cnn/version"} <= set(names)
        assert zf.read("fashion_cnn/byteorder") == b"little"
        raw = path.read_bytes()
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            start = info.header_offset
            name_len, extra_len = struct.unpack("<HH", raw[start + 26:start + 30])
            assert (start + 30 + name_len + extra_len) % 64 == 0, info.filename
    # torch's own memory-mapped loading computes storage offsets from miniz's layout.
    mapped = torch.load(path, weights_only=True, mmap=True)
    assert_same(ckpt["model"], mapped["model"])


def test_parameters_and_shared_tensors_keep_torchs_meaning(tmp_path):
    weight = tinyconv.nn.Parameter(tinyconv.ones(2, 2))
    tied = weight.detach()  # same array: one storage in the file, as torch's tied weights
    path = tmp_path / "p.pt"
    tinyconv.save({"w": weight, "tied": tied, "grad": tinyconv.ones(3, requires_grad=True)},
                  path)
    back = torch.load(path, weights_only=True)
    assert isinstance(back["w"], torch.nn.Parameter) and back["w"].requires_grad
    assert back["grad"].requires_grad and not back["tied"].requires_grad
    assert back["tied"].untyped_storage().data_ptr() == back["w"].untyped_storage().data_ptr()
    again = tinyconv.load(path)
    assert again["w"].requires_grad and not again["tied"].requires_grad


def test_saving_never_imports_torch(tmp_path):
    script = ("import sys, tinyconv\n"
              f"p = {str(tmp_path / 'x.pth')!r}\n"
              "tinyconv.save({'a': tinyconv.ones(2, 3), 'b': [1, 'x']}, p)\n"
              "back = tinyconv.load(p)\n"
              "assert back['b'] == [1, 'x'] and back['a'].shape == (2, 3)\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def torch_views():
    base = torch.arange(24, dtype=torch.float32)
    grid = base.reshape(4, 6)
    return {"every_other": base[::2], "tail": base[5:], "transposed": grid.t(),
            "column": grid[:, 3], "expanded": torch.tensor([1.0, 2.0]).expand(3, 2),
            "whole": grid, "slice_of_int": torch.arange(10, dtype=torch.int16)[3:7]}


def adam_state_dict():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 3)).square().sum().backward()
    optimizer.step()
    return optimizer.state_dict()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save_is_read_by_tinyconv(tmp_path, legacy):
    from parity.models import FashionCNN as TorchFashionCNN

    torch.manual_seed(0)
    everything = {"model": TorchFashionCNN().state_dict(), "views": torch_views(),
                  "optimizer": adam_state_dict(),
                  "dtypes": {name: (torch.arange(-3, 3) * 7).to(getattr(torch, name))
                             for name in DTYPES},
                  "parameter": torch.nn.Parameter(torch.ones(2)),
                  "unsigned": torch.tensor([0, 1000, 65535], dtype=torch.uint16),  # tensor_v3
                  "bytes": b"\x00\xffraw",
                  "scalars": (1, 2.5, "s", None, True, [torch.tensor(3)])}
    if legacy:
        del everything["unsigned"]  # torch itself cannot read uint16 back from a legacy file
    path = tmp_path / "from_torch.pth"
    torch.save(everything, path, _use_new_zipfile_serialization=not legacy)
    back = tinyconv.load(path)
    assert_same(back, torch.load(path, weights_only=True))
    for value in back["views"].values():  # views come back as tensors owning their memory
        assert value.numpy().base is None or value.numpy().flags.owndata


def test_torchvision_resnet18_state_dict(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    assert_same(tinyconv.load(tmp_path / "resnet18.pth"), state)


def test_a_tinyconv_model_runs_torch_saved_weights_like_torch(tmp_path):
    from parity.models import FashionCNN as TorchFashionCNN

    torch.manual_seed(0)
    twin = TorchFashionCNN().double().eval()
    with torch.no_grad():  # make the batch-norm statistics nontrivial
        for bn in (twin.layer1[1], twin.layer2[1]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    torch.save(twin.state_dict(), tmp_path / "fashion_cnn.pth")
    model = tinyconv.models.FashionCNN().double().eval()
    model.load_state_dict(tinyconv.load(tmp_path / "fashion_cnn.pth"))
    x = np.random.default_rng(2).standard_normal((2, 1, 28, 28))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(tinyconv.tensor(x)).detach().numpy(), expected,
                               rtol=1e-12, atol=1e-12)


# ----- nothing in a file runs ------------------------------------------------------------------

class WritesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["zip", "legacy", "bare pickle"])
def test_a_malicious_pickle_is_refused_and_never_run(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if how == "bare pickle":
        path.write_bytes(pickle.dumps({"payload": WritesMarker(marker)}, protocol=2))
    else:
        evil = {"weight": torch.ones(2), "payload": WritesMarker(marker)}
        torch.save(evil, path, _use_new_zipfile_serialization=how == "zip")
    with pytest.raises(CheckpointError, match=r"evil\.pth.*refused global '(posix|os)\.system'"):
        tinyconv.load(path)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused_with_advice(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"torch\.nn\.modules.*state_dict"):
        tinyconv.load(tmp_path / "model.pt")


def test_weights_only_false_and_other_devices_are_refused(tmp_path):
    tinyconv.save({"a": tinyconv.ones(1)}, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="weights_only"):
        tinyconv.load(tmp_path / "a.pt", weights_only=False)
    with pytest.raises(ValueError, match="map_location"):
        tinyconv.load(tmp_path / "a.pt", map_location="cuda")
    assert tinyconv.load(tmp_path / "a.pt", map_location="cpu")["a"].shape == (1,)


# ----- damage is always a CheckpointError --------------------------------------------------------

def write_torch_zip(path, obj, storages, storage_type="FloatStorage", byteorder="little"):
    """A torch-format zip whose pickle and storages we choose (to build inconsistent files)."""
    class Storage:
        def __init__(self, key, numel):
            self.key, self.numel = key, numel

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, Storage):
                return ("storage", getattr(torch, storage_type), value.key, "cpu", value.numel)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj(Storage))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buffer.getvalue())
        zf.writestr("archive/byteorder", byteorder)
        for key, data in storages.items():
            zf.writestr(f"archive/data/{key}", data)
        zf.writestr("archive/version", "3\n")


class Rebuild:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def test_crafted_file_matches_torch_then_inconsistent_ones_are_refused(tmp_path):
    data = np.arange(6, dtype="<f4").tobytes()
    good = tmp_path / "good.pt"
    write_torch_zip(good, lambda S: {"t": Rebuild(S("0", 6), 1, (2, 2), (1, 2))}, {"0": data})
    assert_same(tinyconv.load(good), torch.load(good, weights_only=True))  # the helper is sound

    cases = {
        "short storage": (lambda S: {"t": Rebuild(S("0", 6), 0, (6,), (1,))}, {"0": data[:20]},
                          "holds 20 bytes"),
        "view past the end": (lambda S: {"t": Rebuild(S("0", 6), 3, (2, 2), (2, 1))},
                              {"0": data}, "needs 7 elements"),
        "missing storage": (lambda S: {"t": Rebuild(S("1", 6), 0, (6,), (1,))}, {"0": data},
                            "missing"),
    }
    for name, (obj, storages, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        write_torch_zip(path, obj, storages)
        with pytest.raises(CheckpointError, match=message) as info:
            tinyconv.load(path)
        assert path.name in str(info.value), name


def test_big_endian_storages_and_torch_size(tmp_path):
    path = tmp_path / "big.pt"
    data = np.arange(6, dtype=">i8").tobytes()
    write_torch_zip(path, lambda S: {"t": Rebuild(S("0", 6), 0, (3, 2), (2, 1)),
                                     "shape": torch.Size([3, 2])},
                    {"0": data}, storage_type="LongStorage", byteorder="big")
    ours, theirs = tinyconv.load(path), torch.load(path, weights_only=True)
    assert_same(ours["t"], theirs["t"])
    assert ours["t"].numpy().dtype == np.dtype("=i8")  # native order, values right
    assert ours["shape"] == (3, 2) and type(ours["shape"]) is tuple


def test_legacy_storage_views_match_torch(tmp_path):
    """Files from torch < 1.6 may name a slice of a storage; torch still reads them."""
    class Storage:
        def __init__(self, pid):
            self.pid = pid

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            return value.pid if isinstance(value, Storage) else None

    root = ("storage", torch.FloatStorage, "100", "cpu", 8, None)
    view = ("storage", torch.FloatStorage, "100", "cpu", 8, ("101", 3, 4))
    obj = {"whole": Rebuild(Storage(root), 0, (8,), (1,)),
           "view": Rebuild(Storage(view), 1, (2,), (2,))}
    buffer = io.BytesIO()
    for item in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(item, buffer, protocol=2)
    Pickler(buffer, protocol=2).dump(obj)
    pickle.dump(["100"], buffer, protocol=2)
    buffer.write(struct.pack("<q", 8) + np.arange(8, dtype="<f4").tobytes())
    path = tmp_path / "old.pt"
    path.write_bytes(buffer.getvalue())
    theirs = torch.load(path, weights_only=True)
    assert theirs["view"].tolist() == [4.0, 6.0]  # the view starts 3 elements in, then 1 more
    assert_same(tinyconv.load(path), theirs)


def test_unsupported_dtypes_are_named(tmp_path):
    torch.save({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "bf16.pt")
    with pytest.raises(CheckpointError, match=r"bf16\.pt.*BFloat16Storage"):
        tinyconv.load(tmp_path / "bf16.pt")
    torch.save({"w": torch.ones(2, dtype=torch.complex64)}, tmp_path / "c64.pt")
    with pytest.raises(CheckpointError, match="ComplexFloatStorage"):
        tinyconv.load(tmp_path / "c64.pt")


def small_state():
    return collections.OrderedDict(w=torch.arange(6.0).reshape(2, 3), n=torch.tensor(7),
                                   v=torch.arange(8, dtype=torch.int16)[1::3])


def save_small(path, fmt):
    if fmt == "npz":
        tinyconv.save({k: v.numpy() for k, v in small_state().items()}, path)
    elif fmt == "tinyconv pth":
        tinyconv.save(small_state(), path)
    else:
        torch.save(small_state(), path, _use_new_zipfile_serialization=fmt != "legacy")


def record_data_ranges(raw):
    """(start, end) of every record's bytes (local header + data) and the central directory."""
    ranges = []
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:
                                                           info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            ranges.append((start, start + info.compress_size))
        directory = zf.start_dir
    return ranges, directory


@pytest.mark.parametrize("fmt", ["torch pth", "tinyconv pth", "npz"])
def test_every_flipped_byte_is_refused_or_harmless(tmp_path, fmt):
    """Flip each byte in turn: the load fails with CheckpointError or gives identical values.

    Some bytes carry nothing the content depends on (the local headers' copies of what the
    central directory says, alignment padding, timestamps); every byte of every record's data
    and every flip that changes a value must be refused.
    """
    suffix = ".npz" if fmt == "npz" else ".pth"
    path = tmp_path / f"small{suffix}"
    save_small(path, fmt)
    expected = tinyconv.load(path)
    raw = path.read_bytes()
    data_ranges, directory = record_data_ranges(raw)
    refused = collections.Counter()
    damaged = tmp_path / f"damaged{suffix}"
    for position in range(len(raw)):
        flipped = bytearray(raw)
        flipped[position] ^= 0x11  # bits 0 and 4: sets the "encrypted" flag, for one
        damaged.write_bytes(flipped)
        in_data = any(start <= position < end for start, end in data_ranges)
        try:
            back = tinyconv.load(damaged)
        except CheckpointError as exc:
            assert damaged.name in str(exc)
            refused["data" if in_data else "directory" if position >= directory else "local"] += 1
            continue
        assert not in_data, f"flip at byte {position} inside a record's data loaded silently"
        if fmt == "npz":
            assert back.keys() == expected.keys()
            for key in expected:
                assert back[key].dtype == expected[key].dtype
                assert back[key].tobytes() == expected[key].tobytes()
        else:
            assert_same(back, expected, f"flip at byte {position}")
    assert refused["data"] == sum(end - start for start, end in data_ranges)
    assert refused["directory"] > 0  # damage in the central directory is caught too


@pytest.mark.parametrize("fmt", ["torch pth", "tinyconv pth", "npz", "legacy"])
def test_every_truncation_is_refused(tmp_path, fmt):
    suffix = ".npz" if fmt == "npz" else ".pth"
    path = tmp_path / f"small{suffix}"
    save_small(path, fmt)
    raw = path.read_bytes()
    damaged = tmp_path / f"cut{suffix}"
    for length in range(0, len(raw), 7 if fmt != "legacy" else 1):
        damaged.write_bytes(raw[:length])
        with pytest.raises(CheckpointError, match=damaged.name):
            tinyconv.load(damaged)


# ----- files land where open() would put them, with its mode ------------------------------------

@pytest.mark.parametrize("suffix", [".pth", ".npz"])
def test_new_files_follow_the_umask_and_existing_ones_keep_their_mode(tmp_path, suffix):
    state = {"w": tinyconv.ones(2)}
    for umask in (0o022, 0o077, 0o002):
        old = os.umask(umask)
        try:
            path = tmp_path / f"u{umask:o}{suffix}"
            tinyconv.save(state, path)
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    tinyconv.save(state, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("suffix", [".pth", ".npz"])
def test_saving_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, suffix):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / f"weights{suffix}"
    link = tmp_path / f"latest{suffix}"
    tinyconv.save({"w": tinyconv.zeros(2)}, target)
    link.symlink_to(target)
    tinyconv.save({"w": tinyconv.ones(2)}, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.array_equal(as_numpy(tinyconv.load(target)["w"]), np.ones(2, np.float32))
    assert sorted(os.listdir(real_dir)) == [target.name]  # no temporary file left
    # A dangling link: the file is created where the link points, as open(path, "wb") does.
    dangling = tmp_path / f"dangling{suffix}"
    dangling.symlink_to(real_dir / f"new{suffix}")
    tinyconv.save({"w": tinyconv.ones(1)}, dangling)
    assert dangling.is_symlink() and (real_dir / f"new{suffix}").exists()


def test_a_failed_pth_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "c.pth"
    tinyconv.save({"w": tinyconv.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"checkpoint\['bad'\]"):
        tinyconv.save({"w": tinyconv.ones(2), "bad": object()}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pth"]


def test_the_format_is_told_by_content_not_suffix(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "torch_made.npz")
    assert isinstance(tinyconv.load(tmp_path / "torch_made.npz")["w"], tinyconv.Tensor)
    tinyconv.save({"w": tinyconv.ones(2)}, tmp_path / "ours.ckpt")  # not .pt/.pth: tinyconv's
    (tmp_path / "ours.ckpt").rename(tmp_path / "renamed.pth")
    assert isinstance(tinyconv.load(tmp_path / "renamed.pth")["w"], np.ndarray)
    with zipfile.ZipFile(tmp_path / "renamed.pth") as zf:
        assert "__tinyconv__.npy" in zf.namelist()
