"""The training scripts never lose or misreport a run.

A bad command line is refused before anything is read, trained or written: exit status 2, the
last line of stderr names the option, and no file on disk changes (checked against a folder
holding a real previous run, the default ``runs/fashioncnn-tinyconv``). Good command lines that
used to misbehave do what they say (a new --lr on resume, --overwrite), and Ctrl-C keeps the last
finished epoch's checkpoint and says where it is.

The bad command lines run in-process (``fashion.main(argv)``: each one must stop inside the
argument checks, in milliseconds); two of them also run as a user runs them, in a subprocess.
"""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numba
import pytest
from helpers import default_sigint

import tinyconv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("TINYCONV_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
needs_data = pytest.mark.skipif(not os.path.isdir(os.path.join(DATA, "FashionMNIST", "raw")),
                                reason=f"Fashion-MNIST not found in {DATA}")
TINY = ["--limit-train", "64", "--limit-test", "64"]
PREVIOUS = os.path.join("runs", "fashioncnn-tinyconv")  # the default --out of fashion.py


def script(*args, cwd, **popen):
    env = dict(os.environ, TINYCONV_DATA=DATA, PYTHONWARNINGS="ignore",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, os.path.join(ROOT, "examples", "fashion.py"), *args]
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=env, text=True, **popen)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder as a user has it after one run of fashion.py (default --out), plus bad files."""
    if not os.path.isdir(os.path.join(DATA, "FashionMNIST", "raw")):
        pytest.skip(f"Fashion-MNIST not found in {DATA}")
    root = tmp_path_factory.mktemp("cli")
    proc = script(*TINY, "--epochs", "1", cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ckpt_path = root / PREVIOUS / "checkpoint.npz"
    ckpt = tinyconv.load(ckpt_path)
    bad = root / "bad"
    bad.mkdir()
    # One bit flipped in the middle of the file, inside the weights: the SHA-256 check fails.
    data = bytearray(ckpt_path.read_bytes())
    data[len(data) // 2] ^= 0x10
    (bad / "bitflip.npz").write_bytes(bytes(data))
    # Another model's training checkpoint, as mnist.py writes it ...
    tinyconv.manual_seed(0)
    other = dict(ckpt, model=tinyconv.models.ConvModule().state_dict(), model_name="convmodule",
                 args=dict(ckpt["args"], model="convmodule"))
    tinyconv.save(other, bad / "convmodule.npz")
    # ... and one that does not say which model it holds (its weights still do not fit).
    anonymous = {k: v for k, v in other.items() if k != "model_name"}
    anonymous["args"] = {k: v for k, v in other["args"].items() if k != "model"}
    tinyconv.save(anonymous, bad / "anonymous.npz")
    (bad / "a-file").write_text("not a folder")
    return root


def snapshot(root):
    """Every file and folder under ``root``: path -> (mtime in ns, bytes) or 'dir'."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            seen[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                seen[os.path.relpath(path, root)] = (os.stat(path).st_mtime_ns, f.read())
    return seen


def example(name):
    """An example script's module (examples/ on sys.path, as when the script runs)."""
    if os.path.join(ROOT, "examples") not in sys.path:
        sys.path.insert(0, os.path.join(ROOT, "examples"))
    return importlib.import_module(name)


def fashion_main():
    return example("fashion").main


RESUME = ["--resume", os.path.join(PREVIOUS, "checkpoint.npz")]
TOO_MANY_THREADS = str(numba.config.NUMBA_NUM_THREADS + 1)

# (command line, words the last line of stderr must hold); paths are relative to the workspace.
BAD = {
    "reuse-default-out": (["--epochs", "1"], [f"--out {PREVIOUS}", "--overwrite",
                                              f"--resume {PREVIOUS}/checkpoint.npz"]),
    "reuse-out": (["--out", PREVIOUS, "--epochs", "1"], ["--out", "--overwrite", "--resume"]),
    "epochs-0": (["--epochs", "0"], ["--epochs", "'0'"]),
    "epochs-negative": (["--epochs", "-3"], ["--epochs", "'-3'"]),
    "epochs-not-a-number": (["--epochs", "two"], ["--epochs", "'two'"]),
    "resume-epochs-done": (RESUME + ["--epochs", "1"], ["--epochs 1", "already holds 1"]),
    "resume-other-optimizer": (RESUME + ["--epochs", "2", "--optimizer", "sgd"],
                               ["--optimizer sgd", "adam"]),
    "resume-other-model": (RESUME + ["--epochs", "2", "--model", "deepfashioncnn"],
                           ["--model deepfashioncnn", "fashioncnn"]),
    "resume-other-models-checkpoint": (["--resume", "bad/convmodule.npz", "--epochs", "2",
                                        "--out", "new"], ["--model fashioncnn", "convmodule"]),
    "resume-unnamed-other-model": (["--resume", "bad/anonymous.npz", "--epochs", "2", "--out",
                                    "new"], ["--resume bad/anonymous.npz", "fashioncnn"]),
    "resume-other-scheduler": (RESUME + ["--epochs", "2", "--scheduler", "cosine"],
                               ["--scheduler cosine", "none"]),
    "resume-augment": (RESUME + ["--epochs", "2", "--augment"], ["--augment"]),
    "resume-and-evaluate": (RESUME + ["--evaluate", "x.npz"], ["--evaluate", "--resume"]),
    "resume-bitflip": (["--resume", "bad/bitflip.npz", "--epochs", "2", "--out", "new"],
                       ["--resume bad/bitflip.npz"]),
    "evaluate-bitflip": (["--evaluate", "bad/bitflip.npz"], ["--evaluate bad/bitflip.npz"]),
    "evaluate-other-model": (["--evaluate", "bad/convmodule.npz"], ["--model fashioncnn",
                                                                    "convmodule"]),
    "limit-train-0": (["--limit-train", "0"], ["--limit-train", "'0'"]),
    "limit-test-0": (["--limit-test", "0"], ["--limit-test", "'0'"]),
    "limit-test-negative": (["--limit-test", "-1"], ["--limit-test", "'-1'"]),
    "out-is-a-file": (["--out", "bad/a-file"], ["--out bad/a-file", "not a folder"]),
    "out-under-a-file": (["--out", "bad/a-file/run"], ["--out bad/a-file/run", "a-file is a file"]),
    "batch-size-0": (["--batch-size", "0"], ["--batch-size", "'0'"]),
    "batch-size-negative": (["--batch-size", "-8"], ["--batch-size", "'-8'"]),
    "test-batch-size-0": (["--test-batch-size", "0"], ["--test-batch-size", "'0'"]),
    "threads-0": (["--threads", "0"], ["--threads", "'0'"]),
    "threads-too-many": (["--threads", TOO_MANY_THREADS], ["--threads", "at most"]),
    "step-size-0": (["--scheduler", "step", "--step-size", "0"], ["--step-size", "'0'"]),
    "lr-negative": (["--lr", "-1"], ["--lr", "'-1'"]),
    "lr-0": (["--lr", "0"], ["--lr", "'0'"]),
    "lr-nan": (["--lr", "nan"], ["--lr", "'nan'"]),
    "momentum-negative": (["--optimizer", "sgd", "--momentum", "-0.5"], ["--momentum"]),
    "seed-negative": (["--seed", "-1"], ["--seed", "'-1'"]),
    "device-unknown": (["--device", "gpu0"], ["--device", "'gpu0'"]),
    "export-onnx-existing": (["--out", "new", "--export-onnx", "bad/a-file"],
                             ["--export-onnx bad/a-file", "--overwrite"]),
}
if sys.platform.startswith("linux") and os.path.isdir("/sys"):
    # sysfs takes no new files, even from root (for whom a chmod'ed folder stays writable).
    BAD["out-not-writable"] = (["--out", "/sys/tinyconv-run"],
                               ["--out /sys/tinyconv-run", "cannot write there"])


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_command_line_is_refused_before_anything_runs(case, workspace, monkeypatch,
                                                             capsys):
    argv, words = BAD[case]
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("TINYCONV_DATA", DATA)
    before = snapshot(workspace)
    start = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        fashion_main()([*TINY, *argv])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert stop.value.code == 2, (out, err)
    last = err.strip().splitlines()[-1]
    assert "error" in last and all(word in last for word in words), last
    assert "Traceback" not in err
    assert "epoch   1/" not in out  # no training began
    assert snapshot(workspace) == before  # not one file created, changed or removed
    assert seconds < 10, f"refused only after {seconds:.1f} s"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_out_is_refused_before_training(workspace, monkeypatch, capsys):
    folder = workspace / "read-only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    try:
        with pytest.raises(SystemExit) as stop:
            fashion_main()([*TINY, "--out", "read-only/run"])
        with pytest.raises(SystemExit):
            fashion_main()([*TINY, "--out", "read-only"])
    finally:
        folder.chmod(0o755)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.strip().splitlines()[-1].startswith("error: --out read-only")
    assert "cannot write there" in err and "Traceback" not in err
    assert snapshot(workspace) == before


@pytest.mark.parametrize("case", ["reuse-default-out", "epochs-0"])
def test_refusals_as_a_user_sees_them(case, workspace):
    """In a subprocess: exit status 2, one line on stderr, no traceback, nothing changed."""
    argv, words = BAD[case]
    before = snapshot(workspace)
    proc = script(*TINY, *argv, cwd=workspace)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert all(word in lines[-1] for word in words), proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in lines if "error" in line]) == 1
    assert snapshot(workspace) == before


def test_resume_with_a_new_lr_applies_it_says_so_and_records_it(workspace, tmp_path):
    shutil.copytree(workspace / PREVIOUS, tmp_path / PREVIOUS)
    proc = script(*TINY, *RESUME, "--epochs", "2", "--lr", "0.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--lr 0.5 replaces the checkpoint's learning rate 0.001 from epoch 2 on" in proc.stdout
    assert "adam lr=0.5," in proc.stdout
    metrics = json.loads((tmp_path / PREVIOUS / "metrics.json").read_text())
    assert [h["lr"] for h in metrics["history"]] == [0.001, 0.5]
    assert metrics["args"]["lr"] == 0.5
    saved = tinyconv.load(tmp_path / PREVIOUS / "checkpoint.npz")
    assert saved["epoch"] == 2 and saved["optimizer"]["param_groups"][0]["lr"] == 0.5



def test_overwrite_replaces_the_previous_run_and_says_so(workspace, tmp_path):
    shutil.copytree(workspace / PREVIOUS, tmp_path / PREVIOUS)
    old_best = tinyconv.load(tmp_path / PREVIOUS / "best.npz")
    proc = script(*TINY, "--epochs", "1", "--seed", "5", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--overwrite: removed the previous run's checkpoint.npz, best.npz, metrics.json" \
           in proc.stdout and PREVIOUS in proc.stdout
    best = tinyconv.load(tmp_path / PREVIOUS / "best.npz")
    assert best["args"]["seed"] == 5 and old_best["args"]["seed"] == 0
    metrics = json.loads((tmp_path / PREVIOUS / "metrics.json").read_text())
    assert metrics["args"]["seed"] == 5 and len(metrics["history"]) == 1


@needs_data
def test_ctrl_c_keeps_the_last_finished_epoch_and_says_where(tmp_path):
    ckpt = tmp_path / "run" / "checkpoint.npz"
    proc = script("--limit-train", "640", "--limit-test", "200", "--epochs", "50", "--out",
                  str(tmp_path / "run"), cwd=tmp_path, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, preexec_fn=default_sigint)
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), "no checkpoint was written"
    time.sleep(0.5)  # inside a later epoch, or inside a checkpoint write: either is fine
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    saved = tinyconv.load(ckpt)  # complete and verified
    assert set(saved) >= {"model", "optimizer", "rng", "history"}
    assert (f"interrupted; the last checkpoint (after epoch {saved['epoch']}) is complete: "
            f"{ckpt}\ncontinue with: --resume {ckpt}") in out
    assert len(saved["history"]) == saved["epoch"] >= 1
    best = tinyconv.load(ckpt.parent / "best.npz")
    assert best["epoch"] <= saved["epoch"]
    assert not [p for p in os.listdir(ckpt.parent) if p.endswith(".tmp")]


@needs_data
def test_ctrl_c_before_the_first_epoch_ends_claims_no_checkpoint(tmp_path):
    proc = script("--limit-train", "3000", "--limit-test", "64", "--epochs", "1", "--out",
                  str(tmp_path / "run"), cwd=tmp_path, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, preexec_fn=default_sigint)
    banner = proc.stdout.readline()  # printed just before the first batch
    assert "FashionCNN on tinyconv" in banner, banner + proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted before the first epoch finished; nothing was saved" in out
    assert "Traceback" not in err
    assert os.listdir(tmp_path / "run") == []


def test_a_ctrl_c_during_a_checkpoint_write_waits_for_it():
    common = example("common")
    # Python's own handler, as in a program started from a terminal (a shell's background job,
    # a CI script's for one, ignores SIGINT instead)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        finished = []
        with pytest.raises(KeyboardInterrupt):
            with common.finish_before_interrupt():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the signal is delivered here, and must not stop the block
                finished.append(True)
        assert finished == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("kind, good, bad", [
    ("positive_int", {"1": 1, "64": 64}, ["0", "-3", "1.5", "x", ""]),
    ("nonnegative_int", {"0": 0, "7": 7}, ["-1", "2.0", "x"]),
    ("positive_float", {"1e-3": 1e-3, "2": 2.0}, ["0", "-1", "inf", "nan", "x"]),
    ("nonnegative_float", {"0": 0.0, "0.9": 0.9}, ["-0.5", "nan", "-inf"]),
])
def test_the_option_types(kind, good, bad):
    import argparse

    check = getattr(example("common"), kind)
    for text, value in good.items():
        assert check(text) == value and type(check(text)) is type(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
            check(text)
