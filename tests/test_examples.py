"""End-to-end checks of the example scripts, run as a user runs them (subprocesses).

The long ones are marked slow: CI runs them in its second pytest call (``pytest -m slow``).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import default_sigint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TINYCONV_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
HAVE_FASHION = os.path.isdir(os.path.join(DATA, "FashionMNIST", "raw"))
needs_data = pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST not found in {DATA}")


def run_example(script, *args, env_extra=None, check=True):
    env = dict(os.environ, TINYCONV_DATA=DATA, PYTHONWARNINGS="ignore")
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args],
                          capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_missing_data_gives_a_clear_message_not_a_traceback(tmp_path):
    # MNIST, not Fashion-MNIST: the latter may also be found in Debian's system folder.
    proc = run_example("mnist.py", "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1",
                       "--limit-train", "64", "--limit-test", "64", "--out", str(tmp_path),
                       env_extra={"TINYCONV_DATA": str(tmp_path / "nowhere")}, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "not found" in proc.stderr and "nowhere" in proc.stderr
    assert "train-images-idx3-ubyte" in proc.stderr


def test_corrupt_checkpoint_is_refused_clearly(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x80\x04not really a pickle")
    proc = run_example("fashion.py", "--evaluate", str(bad), "--out", str(tmp_path),
                       check=False)
    if not HAVE_FASHION:
        pytest.skip("needs the data to get as far as the checkpoint")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pickle" in proc.stderr


@needs_data
def test_quick_run_writes_every_output_and_resume_continues(tmp_path):
    common = ["--limit-train", "640", "--limit-test", "500", "--seed", "3"]
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    run_example("fashion.py", *common, "--epochs", "2", "--out", str(out_a))
    for name in ("checkpoint.npz", "metrics.json", "loss.png", "accuracy.png",
                 "confusion_matrix.png"):
        assert (out_a / name).stat().st_size > 0, name
    metrics = json.loads((out_a / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert np.array(metrics["confusion_matrix"]).sum() == 500

    # One epoch, then --resume for the second: the same history as the uninterrupted run.
    run_example("fashion.py", *common, "--epochs", "1", "--out", str(out_b))
    run_example("fashion.py", *common, "--epochs", "2", "--out", str(out_b),
                "--resume", str(out_b / "checkpoint.npz"))
    resumed = json.loads((out_b / "metrics.json").read_text())["history"]
    for a, b in zip(metrics["history"], resumed, strict=True):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (key, a, b)


@pytest.mark.slow
@needs_data
def test_both_backends_learn_agree_and_exchange_checkpoints(tmp_path):
    """A few hundred steps on a subset: both backends learn, agree, and read each other's files."""
    pytest.importorskip("torch")
    common = ["--limit-train", "19200", "--epochs", "1", "--seed", "1", "--limit-test", "2000"]
    accuracy = {}
    for backend in ("tinyconv", "torch"):
        out = tmp_path / backend
        run_example("fashion.py", *common, "--backend", backend, "--out", str(out),
                    "--device", "cpu")
        accuracy[backend] = json.loads((out / "metrics.json").read_text())["final_test_acc"]
    assert accuracy["tinyconv"] > 80.0 and accuracy["torch"] > 80.0, accuracy
    # Same initial weights and data order; only dropout masks and rounding differ.
    assert abs(accuracy["tinyconv"] - accuracy["torch"]) < 3.0, accuracy
    for writer, reader in (("tinyconv", "torch"), ("torch", "tinyconv")):
        proc = run_example("fashion.py", "--backend", reader, "--device", "cpu",
                           "--limit-test", "2000", "--out", str(tmp_path / "eval"),
                           "--evaluate", str(tmp_path / writer / "checkpoint.npz"))
        read_acc = float(proc.stdout.split("test accuracy ")[1].split("%")[0])
        assert abs(read_acc - accuracy[writer]) <= 0.1, (writer, reader, read_acc, accuracy)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "MNIST", "raw")), reason="no MNIST")
def test_fc_vs_cnn_experiment_runs_and_prints_the_table(tmp_path):
    proc = run_example("mnist.py", "--experiment", "fc-vs-cnn", "--permute-pixels",
                       "--limit-train", "6000", "--out", str(tmp_path))
    assert "| FC2Layer(784, 8, 10) | 6,442 |" in proc.stdout
    assert "| CNN(6) | 6,422 |" in proc.stdout
    results = json.loads((tmp_path / "metrics.json").read_text())["results"]
    assert len(results) == 4


@needs_data
def test_augment_and_scheduler_resume_exactly_and_keep_the_best(tmp_path):
    common = ["--model", "deepfashioncnn", "--augment", "--scheduler", "cosine",
              "--limit-train", "320", "--limit-test", "200", "--seed", "2", "--epochs", "3"]
    run_example("fashion.py", *common, "--out", str(tmp_path / "a"))
    straight = json.loads((tmp_path / "a" / "metrics.json").read_text())["history"]
    assert [round(h["lr"], 12) for h in straight] == [1e-3, 7.5e-4, 2.5e-4]  # cosine, T_max 3
    best = tinyconv_load(tmp_path / "a" / "best.npz")
    assert best["history"][-1]["test_acc"] == max(h["test_acc"] for h in straight)

    # Interrupt the same 3-epoch run (Ctrl-C) once its first checkpoint exists, then resume:
    # the schedule (T_max 3) and the augmentation's random state continue where they were.
    out_b = tmp_path / "b"
    env = dict(os.environ, TINYCONV_DATA=DATA, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "fashion.py"),
                             *common, "--out", str(out_b)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_sigint)
    while not (out_b / "checkpoint.npz").exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    run_example("fashion.py", *common, "--out", str(out_b), "--resume",
                str(out_b / "checkpoint.npz"))
    resumed = json.loads((out_b / "metrics.json").read_text())["history"]
    for a, b in zip(straight, resumed, strict=True):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (key, a, b)


def tinyconv_load(path):
    import tinyconv
    return tinyconv.load(path)
