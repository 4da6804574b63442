"""Resuming from a checkpoint continues exactly where the run stopped.

Library level, float64: model, optimizer, scheduler and RNG state saved with tinyconv.save after
k steps and loaded into fresh objects give per-step losses bit-identical to the uninterrupted run
(dropout masks and shuffling included). End to end: a NaN loss stops examples/fashion.py with a
clear message naming the checkpoint it keeps (Ctrl-C: tests/test_cli_guard.py).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinyconv
from tinyconv.data import ArrayDataset, DataLoader
from tinyconv.models import FashionCNN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TINYCONV_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def make_run(seed=0):
    tinyconv.manual_seed(seed)
    model = FashionCNN().double()
    optimizer = tinyconv.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = tinyconv.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    rng = np.random.default_rng(1)
    data = ArrayDataset(rng.standard_normal((96, 1, 28, 28)), rng.integers(0, 10, 96))
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=5)
    return model, optimizer, scheduler, loader


def train(model, optimizer, scheduler, loader, epochs, losses):
    criterion = tinyconv.nn.CrossEntropyLoss()
    model.train()  # dropout on: its masks come from tinyconv's global generator
    for _ in range(epochs):
        for images, labels in loader:
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()


def test_resume_is_bit_identical_in_float64(tmp_path):
    straight = []
    train(*make_run(), epochs=4, losses=straight)

    first = []
    model, optimizer, scheduler, loader = make_run()
    train(model, optimizer, scheduler, loader, epochs=2, losses=first)
    tinyconv.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "rng": tinyconv.get_rng_state(),
                   "loader_rng": loader.generator.bit_generator.state, "epoch": 2},
                  tmp_path / "ckpt.npz")

    ckpt = tinyconv.load(tmp_path / "ckpt.npz")
    model, optimizer, scheduler, loader = make_run(seed=123)  # different weights and RNG
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    tinyconv.set_rng_state(ckpt["rng"])
    loader.generator.bit_generator.state = ckpt["loader_rng"]
    rest = []
    train(model, optimizer, scheduler, loader, epochs=2, losses=rest)

    assert len(first + rest) == len(straight) == 24
    assert first + rest == straight  # exactly equal floats, not approximately
    assert scheduler.get_last_lr() == [1e-3 * 0.5]


needs_data = pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "FashionMNIST", "raw")),
                                reason="needs Fashion-MNIST")


@needs_data
def test_a_nan_loss_stops_training_with_a_clear_message(tmp_path):
    env = dict(os.environ, TINYCONV_DATA=DATA, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "fashion.py"), "--optimizer", "sgd",
         "--lr", "1e8", "--limit-train", "640", "--limit-test", "100", "--epochs", "1",
         "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 3
    assert "the training loss became nan" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("nothing was saved")  # it stopped inside epoch 1
    assert not os.path.exists(tmp_path / "checkpoint.npz")
