"""The run guard: a training run never loses or misreports an earlier run, nor its own.

Checked before any work is done: a run must not train for an hour and then find that it cannot
write, or quietly replace the results of an earlier run. The output folder (``check_out_dir``:
writable, not holding another run unless --overwrite or --resume of its checkpoint), a file
written at the end (``check_output_file``), the checkpoint to resume or evaluate
(``load_checkpoint``, ``check_resume``: readable, the same model, optimizer and schedule). And
Ctrl-C: ``finish_before_interrupt`` keeps the checkpoint writes whole, ``interrupted_message``
says what is left on disk.

Part of what common.py shares; import it from there (common.py prepares the process first).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading

from options import DEFAULT_LR, fail, one_line

import tinyconv

RUN_OUTPUTS = ("checkpoint.npz", "best.npz", "metrics.json", "loss.png", "accuracy.png",
               "confusion_matrix.png")
# The files that show a folder holds a previous run (plots alone are not worth a refusal).
RUN_MARKERS = ("checkpoint.npz", "best.npz", "metrics.json")


def check_writable(folder, option):
    """Stop unless ``folder`` can be created (if missing) and written; change nothing.

    The test is the real thing: a probe file is written and removed, in ``folder`` or, when it
    does not exist yet, in its nearest existing parent (the folder itself is made only when
    the run starts, so that a refused command line leaves no trace).
    """
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "this is a file" if existing == os.path.abspath(folder) else f"{existing} is a file"
        fail(f"{option} {folder}: {what}, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=existing)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        fail(f"{option} {folder}: cannot write there ({exc.strerror or one_line(exc)})")


def make_folder(folder, option):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        fail(f"{option} {folder}: cannot create it ({exc.strerror or one_line(exc)})")


def check_out_dir(out_dir, *, overwrite, resume=None, markers=RUN_MARKERS,
                  outputs=RUN_OUTPUTS):
    """Make sure ``out_dir`` may take this run's outputs; return the old ones to replace.

    A folder holding a previous run (any of ``markers``) is refused unless ``overwrite`` (its
    ``outputs`` are returned, for the caller to delete just before training) or this run
    continues it (``resume`` is a checkpoint inside it: nothing is deleted).
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        fail(f"--out {out_dir}: this is a file, not a folder")
    previous = [name for name in markers if os.path.isfile(os.path.join(out_dir, name))]
    continues = resume is not None and (os.path.realpath(os.path.dirname(os.path.abspath(resume)))
                                        == os.path.realpath(out_dir))
    if previous and not overwrite and not continues:
        ways = "pass --overwrite to replace it"
        if "checkpoint.npz" in previous:
            ways += f", or --resume {os.path.join(out_dir, 'checkpoint.npz')} to continue it"
        fail(f"--out {out_dir} holds a previous run ({', '.join(previous)}): {ways}")
    check_writable(out_dir, "--out")
    if continues:
        return []
    return [name for name in outputs if os.path.isfile(os.path.join(out_dir, name))]


def check_output_file(path, option, overwrite):
    """A file this run will write at the end (``--export-onnx``): writable, not a surprise."""
    if os.path.isdir(path):
        fail(f"{option} {path}: this is a folder; give a file name")
    if os.path.exists(path) and not overwrite:
        fail(f"{option} {path} exists: pass --overwrite to replace it, or choose another name")
    check_writable(os.path.dirname(os.path.abspath(path)), option)


@contextlib.contextmanager
def finish_before_interrupt():
    """Let a Ctrl-C that arrives inside the block wait until the block is done.

    Around the checkpoint writes: each write is atomic already (tinyconv.save), and this keeps
    checkpoint.npz and best.npz from the same epoch, so that "the checkpoint after epoch N" is
    exactly what is on disk when the run stops.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def load_checkpoint(path, option):
    """The checkpoint at ``path`` (a dict); else one line naming ``option`` and the problem."""
    try:
        ckpt = tinyconv.load(path)
    except (tinyconv.CheckpointError, OSError) as exc:
        message = one_line(exc)
        if message.startswith(f"{path}: "):  # CheckpointError's messages name the file too
            message = message[len(f"{path}: "):]
        fail(f"{option} {path}: {message}")
    if not isinstance(ckpt, dict):
        fail(f"{option} {path}: expected a checkpoint holding a dict, found "
             f"{type(ckpt).__name__}")
    return ckpt


def check_resume(args, ckpt):
    """Refuse a --resume that would not continue the checkpoint's run; fill in --lr, --momentum.

    The model, the optimizer (its state means nothing to another one), the schedule, the
    augmentation and SGD's momentum must be the checkpoint's: a different one is refused, naming
    both. --lr, when given and different, is applied from the next epoch on (returned as
    ``(old, new)``; not with a schedule, which sets the rate itself); when left out, the
    checkpoint's rate is used. --epochs must be more than the epochs the checkpoint holds.
    """
    path = args.resume
    missing = {"model", "optimizer", "epoch", "history", "rng", "loader_rng",
               "augment_rng"} - set(ckpt)
    if missing:
        fail(f"--resume {path} is not a training checkpoint of this script (missing "
             f"{', '.join(sorted(missing))}); --evaluate reads bare state_dicts")
    saved = ckpt.get("args") if isinstance(ckpt.get("args"), dict) else {}
    saved_model = ckpt.get("model_name", saved.get("model"))
    if saved_model is not None and saved_model != args.model:
        fail(f"--model {args.model}: --resume {path} holds a {saved_model} "
             f"(pass --model {saved_model} to continue it)")
    groups = ckpt["optimizer"].get("param_groups") or [{}]
    saved_optimizer = saved.get("optimizer") or ("sgd" if "momentum" in groups[0] else "adam")
    if saved_optimizer != args.optimizer:
        fail(f"--optimizer {args.optimizer}: --resume {path} was trained with "
             f"{saved_optimizer}, whose state {args.optimizer} cannot continue (pass "
             f"--optimizer {saved_optimizer})")
    saved_scheduler = saved.get("scheduler", "none" if ckpt.get("scheduler") is None else None)
    if saved_scheduler is not None and saved_scheduler != args.scheduler:
        fail(f"--scheduler {args.scheduler}: --resume {path} was trained with --scheduler "
             f"{saved_scheduler} (pass --scheduler {saved_scheduler})")
    if args.scheduler == "step" and saved.get("step_size", args.step_size) != args.step_size:
        fail(f"--step-size {args.step_size}: --resume {path} was trained with --step-size "
             f"{saved['step_size']} (pass --step-size {saved['step_size']})")
    if "augment" in saved and bool(saved["augment"]) != bool(args.augment):
        fail(f"--augment: --resume {path} was trained {'with' if saved['augment'] else 'without'}"
             f" --augment ({'add' if saved['augment'] else 'leave out'} --augment to continue it)")
    if args.optimizer == "sgd" and "momentum" in groups[0]:
        if args.momentum is None:
            args.momentum = float(groups[0]["momentum"])
        elif args.momentum != groups[0]["momentum"]:
            fail(f"--momentum {args.momentum:g}: --resume {path} was trained with momentum "
                 f"{groups[0]['momentum']:g} (leave --momentum out to continue it)")
    done = int(ckpt["epoch"])
    if args.epochs <= done:
        fail(f"--epochs {args.epochs}: --resume {path} already holds {done} epoch(s); pass "
             f"--epochs {done + 1} or more to train further (--evaluate {path} only evaluates "
             f"it)")
    current_lr = float(groups[0].get("lr", DEFAULT_LR))
    if args.lr is None or args.lr == current_lr:
        args.lr = current_lr
        return None
    if args.scheduler != "none":
        fail(f"--lr {args.lr:g}: --resume {path} continues a --scheduler {args.scheduler} "
             f"schedule, which sets the learning rate itself (now {current_lr:g}); leave --lr "
             f"out to continue it")
    return current_lr, args.lr


def interrupted_message(args, progress):
    """What a Ctrl-C left on disk, and how to continue."""
    saved, ckpt_path = progress["saved_epoch"], progress["checkpoint"]
    if saved is not None:
        return (f"interrupted; the last checkpoint (after epoch {saved}) is complete: "
                f"{ckpt_path}\ncontinue with: --resume {ckpt_path}")
    if args.resume:
        return (f"interrupted before an epoch finished; nothing was written, and {args.resume} "
                f"is unchanged (continue with: --resume {args.resume})")
    removed = progress["removed"]
    return ("interrupted before the first epoch finished; nothing was saved"
            + (f" (--overwrite had removed the previous run's {', '.join(removed)})"
               if removed else ""))
