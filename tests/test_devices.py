"""Devices: PyTorch's device-selection lines run on tinyconv and pick the CPU; moving anything
to a GPU fails with one clear line. Each case is compared with what torch answers on a machine
without CUDA (this one, and CI's)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import tinyconv
from tinyconv import nn

NO_GPU = "tinyconv runs on the CPU only; got device"


def test_availability_matches_torch_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: torch's answers differ from tinyconv's by design")
    assert tinyconv.cuda.is_available() is torch.cuda.is_available() is False
    assert tinyconv.cuda.device_count() == torch.cuda.device_count() == 0
    assert tinyconv.backends.mps.is_available() is False
    assert tinyconv.accelerator.is_available() is False
    assert tinyconv.accelerator.current_accelerator() is None
    tinyconv.cuda.manual_seed(0)
    tinyconv.cuda.manual_seed_all(0)
    tinyconv.backends.cudnn.benchmark = True  # accepted, changes nothing
    tinyconv.backends.cudnn.benchmark = False


@pytest.mark.parametrize("args", [("cpu",), ("cuda",), ("cuda:0",), ("cuda", 1), ("mps",),
                                  (0,), ("cpu", 0)])
def test_device_objects_match_torch(args):
    mine, theirs = tinyconv.device(*args), torch.device(*args)
    assert (mine.type, mine.index) == (theirs.type, theirs.index)
    assert str(mine) == str(theirs) and repr(mine) == repr(theirs)
    assert mine == tinyconv.device(str(theirs)) and hash(mine) == hash(tinyconv.device(mine))


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda:-1"])
def test_bad_device_strings_are_refused_like_torch(bad):
    with pytest.raises(RuntimeError):
        torch.device(bad)
    with pytest.raises(RuntimeError, match="device"):
        tinyconv.device(bad)


def test_tutorial_device_lines_pick_the_cpu():
    device = tinyconv.device("cuda:0" if tinyconv.cuda.is_available() else "cpu")
    device2 = (tinyconv.accelerator.current_accelerator().type
               if tinyconv.accelerator.is_available() else "cpu")
    model = nn.Linear(3, 2).to(device)
    x = tinyconv.ones(4, 3).to(device2)
    assert model(x).device == device == "cpu"
    assert tinyconv.zeros(2, device=device).device == device


@pytest.mark.parametrize("target", ["cuda", "cuda:0", tinyconv.device("cuda", 0), 0, "mps"])
def test_moving_to_a_gpu_fails_with_one_clear_line(target):
    model, x = nn.Linear(3, 2), tinyconv.ones(2, 3)
    before = model.weight.detach().numpy().copy()
    for call in (lambda: model.to(target), lambda: x.to(target), lambda: x.to(device=target),
                 lambda: tinyconv.zeros(2, device=target), lambda: tinyconv.tensor([1.0],
                                                                                   device=target)):
        with pytest.raises(RuntimeError, match=NO_GPU) as info:
            call()
        assert "\n" not in str(info.value) and "python -m parity" in str(info.value)
    for call in (model.cuda, x.cuda, tinyconv.cuda.current_device, tinyconv.cuda.synchronize):
        with pytest.raises(RuntimeError, match=NO_GPU):
            call()
    np.testing.assert_array_equal(model.weight.detach().numpy(), before)


def test_onnx_and_vision_are_reachable_after_import_tinyconv_without_importing_them():
    code = ("import sys, tinyconv; assert 'onnx' not in sys.modules; "
            "assert 'tinyconv.vision' not in sys.modules; f = tinyconv.onnx.export; "
            "v = tinyconv.vision.datasets.MNIST; assert 'onnx' not in sys.modules; "
            "assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        tinyconv.nonexistent  # noqa: B018
