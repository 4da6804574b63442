"""What the example scripts share: backends, the training loop, evaluation, plots, checkpoints.

The training loop below is written once, in PyTorch's idiom, and runs unchanged on both
backends: ``lib`` is either the ``tinyconv`` module or the ``torch`` module. That is the point
of tinyconv: the same code, a different import.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import threading
import time
import warnings

# Before numpy loads OpenBLAS: its threads must not spin after each matrix product while numba's
# threads want the cores (see tinyconv/_startup.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np

# Make `python examples/fashion.py` work from a clone without installing the package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# With the torch backend, torch's OpenMP runtime must be loaded before tinyconv's: a process has
# one, and whoever loads it first sets whether its threads sleep (tinyconv's choice) or spin
# (torch's, which runs its CPU ops faster); see tinyconv/_threads.py. tinyconv only reads the
# data here, so torch keeps its own setting.
if any(a in ("--backend=torch",) or (a == "torch" and i > 0 and sys.argv[i - 1] == "--backend")
       for i, a in enumerate(sys.argv)):
    try:
        import torch  # noqa: F401
    except ImportError:
        pass  # Backend() says what to install

import tinyconv  # noqa: E402
from tinyconv.data import DataError, DataLoader, Subset  # noqa: E402
from tinyconv.data import transforms as T  # noqa: E402

# FashionCNN applies Dropout2d to a 2-D tensor as the tutorial does; torch warns about it on
# every run and so does tinyconv. The behaviour (element-wise dropout) is intended here.
warnings.filterwarnings("ignore", message=".*dropout2d.*")


def networks(models):
    """name -> (constructor, input shape) of every network of a models module (either backend)."""
    return {**models.SEED_NETWORKS, **models.COLOUR_NETWORKS}


class TorchBatches:
    """A tinyconv DataLoader whose batches come out as torch tensors (sharing memory)."""

    def __init__(self, loader, torch):
        self.loader, self.torch = loader, torch

    def __iter__(self):
        for batch in self.loader:
            yield [self.torch.from_numpy(t.numpy()) for t in batch]

    def __getattr__(self, name):  # len(), .dataset, .generator: the loader's
        return getattr(self.loader, name)

    def __len__(self):
        return len(self.loader)


class Backend:
    """The framework the example runs on: its module (``lib``), models, device and data plumbing."""

    def __init__(self, name: str, device: str | None = None):
        self.name = name
        if name == "tinyconv":
            from tinyconv import models
            if device not in (None, "cpu"):
                raise SystemExit(f"error: --device {device!r}: the tinyconv backend runs on the "
                                 f"CPU only (use --backend torch for CUDA)")
            self.lib, self.models, self.device = tinyconv, models, "cpu"
        elif name == "torch":
            try:
                import torch
            except ImportError:
                raise SystemExit("error: --backend torch needs PyTorch: "
                                 "pip install -e '.[torch]'") from None
            from parity import models
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise SystemExit(f"error: --device {device}: CUDA is not available here")
            # Full float32 matmuls on GPUs, so both backends compute the same thing.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            self.lib, self.models, self.device = torch, models, device
        else:
            raise SystemExit(f"error: unknown backend {name!r}: choose tinyconv or torch")

    def loader(self, dataset, batch_size, shuffle=False, seed=None):
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=seed)
        return loader if self.name == "tinyconv" else TorchBatches(loader, self.lib)

    def build(self, model_name: str, seed: int):
        """The network, initialised by tinyconv with ``seed``; the torch twin gets those weights,
        so that both backends start from the same point."""
        tinyconv.manual_seed(seed)
        ctor, _ = networks(tinyconv.models)[model_name]
        reference = ctor()
        if self.name == "tinyconv":
            return reference
        self.lib.manual_seed(seed)
        twin = networks(self.models)[model_name][0]()
        self.load_state(twin, reference.state_dict())
        return twin.to(self.device)

    def load_state(self, model, state):
        """Load a state_dict of NumPy arrays (or tensors of either backend)."""
        state = {k: np.asarray(v) for k, v in state.items()}
        if self.name == "torch":
            state = {k: self.lib.from_numpy(np.array(v)) for k, v in state.items()}
        model.load_state_dict(state)

    def optimizer(self, name, params, lr, momentum=0.9):
        if name == "adam":
            return self.lib.optim.Adam(params, lr=lr)
        if name == "sgd":
            return self.lib.optim.SGD(params, lr=lr, momentum=momentum)
        raise SystemExit(f"error: unknown optimizer {name!r}: choose adam or sgd")

    def optimizer_state_from_numpy(self, state):
        if self.name != "torch":
            return state
        torch = self.lib
        return {"state": {int(k): {n: torch.tensor(v) if isinstance(v, (np.ndarray, float))
                                   else v for n, v in s.items()}
                          for k, s in state["state"].items()},
                "param_groups": state["param_groups"]}

    def rng_state(self):
        state = {"tinyconv": tinyconv.get_rng_state()}
        if self.name == "torch":
            state["torch"] = self.lib.get_rng_state().numpy()
        return state

    def set_rng_state(self, state):
        tinyconv.set_rng_state(state["tinyconv"])
        if self.name == "torch" and "torch" in state:
            self.lib.set_rng_state(self.lib.from_numpy(np.array(state["torch"])))


def mnist_transform(mean, std):
    """uint8 images -> float32 (N, 1, 28, 28) in [0, 1] -> normalized, on whole batches."""
    return T.Compose([T.ToTensor(), T.Normalize((mean,), (std,))])


def load_datasets(dataset_cls, data_dir, transform, limit_train=None, seed=0, limit_test=None,
                  train_transform=None):
    """Train and test sets; a clear message (no traceback) when the files can't be found.

    ``train_transform`` (e.g. with augmentation) replaces ``transform`` for the training set.
    """
    try:
        train = dataset_cls(root=data_dir, train=True, transform=train_transform or transform)
        test = dataset_cls(root=data_dir, train=False, transform=transform)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if limit_train is not None:  # None: all of them (the command line accepts only N >= 1)
        order = np.random.default_rng(seed).permutation(len(train))[:limit_train]
        train = Subset(train, np.sort(order))
    if limit_test is not None:
        test = Subset(test, np.arange(min(limit_test, len(test))))
    return train, test


def _progress(iterable, desc, total):
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, unit="batch", leave=False, dynamic_ncols=True,
                disable=None)


def train_epoch(model, loader, criterion, optimizer, lib, device, desc=""):
    """One pass over the training set; returns (mean loss, accuracy %, images per second)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = _progress(loader, desc, len(loader))
    for step, (images, labels) in enumerate(bar):
        images, labels = images.to(device), labels.to(device)
        outputs = model(images)
        loss = criterion(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        batch_loss = loss.item()
        if not math.isfinite(batch_loss):
            raise FloatingPointError(f"the training loss became {batch_loss} at step {step} "
                                     f"of {desc or 'the epoch'}; stopping (lower --lr?)")
        total_loss += batch_loss * labels.size(0)
        _, predicted = lib.max(outputs.data, 1)
        correct += (predicted == labels).sum().item()
        seen += labels.size(0)
        if hasattr(bar, "set_postfix") and step % 10 == 0:
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", img_s=f"{rate:,.0f}")
    elapsed = time.perf_counter() - start
    return total_loss / seen, 100.0 * correct / seen, seen / elapsed


def evaluate(model, loader, criterion, lib, device, n_classes=10):
    """Returns (mean loss, accuracy %, confusion matrix [true, predicted])."""
    model.eval()
    total_loss, seen = 0.0, 0
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    with lib.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            total_loss += criterion(outputs, labels).item() * labels.size(0)
            predicted = lib.argmax(outputs, 1)
            np.add.at(confusion, (labels.cpu().numpy(), predicted.cpu().numpy()), 1)
            seen += labels.size(0)
    accuracy = 100.0 * np.trace(confusion) / seen
    return total_loss / seen, accuracy, confusion


def format_confusion(confusion, class_names):
    width = max(5, *(len(n) for n in class_names))
    head = " " * (width + 2) + " ".join(f"{i:>5}" for i in range(len(class_names)))
    rows = [f"{name:>{width}} |" + " ".join(f"{v:>5}" for v in row)
            for name, row in zip(class_names, confusion, strict=True)]
    return "true \\ predicted\n" + head + "\n" + "\n".join(rows)


def save_plots(out_dir, history, confusion, class_names, title):
    """loss.png and accuracy.png (train and test per epoch) and confusion_matrix.png."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; skipping the plots (pip install matplotlib)")
        return []
    epochs = [h["epoch"] for h in history]
    written = []
    for key, label in (("loss", "Loss"), ("acc", "Accuracy (%)")):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"test_{key}"] for h in history], "s-", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{title}: {label.split(' ')[0].lower()}")
        ax.grid(alpha=0.3)
        ax.legend()
        path = os.path.join(out_dir, "loss.png" if key == "loss" else "accuracy.png")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = confusion.max() / 2
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if confusion[i, j] > threshold else "black")
    ax.set_title(f"{title}: confusion matrix (test)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = os.path.join(out_dir, "confusion_matrix.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
    return written


def write_json(path, obj):
    """Atomic JSON write (temporary file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The command line. Every option is checked by its argparse ``type``, so that a bad value stops
# the script at once, before anything is read, trained or written: exit status 2 and one line,
# "fashion.py: error: argument --lr: expected a positive number, got '-1'".


def _parse_number(text, kind, expected):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = _parse_number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    value = _parse_number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = _parse_number(text, float, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def nonnegative_float(text):
    """argparse type: a finite number >= 0."""
    value = _parse_number(text, float, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def thread_count(text):
    """argparse type: 1 .. the number of threads numba can run here (its CPU count).

    More is refused rather than quietly lowered: a run that reports its speed must run with the
    threads it says it ran with.
    """
    import numba

    value = positive_int(text)
    limit = numba.config.NUMBA_NUM_THREADS
    if value > limit:
        raise argparse.ArgumentTypeError(f"at most {limit} on this machine (numba's thread pool "
                                         f"has {limit} threads), got {value}")
    return value


def device_name(text):
    """argparse type: cpu, cuda, cuda:N or mps (what torch.device accepts for a CPU or GPU)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def fail(message, status=2):
    """Stop with one line on stderr, ``error: <message>``, and exit status ``status``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def _one_line(exc):
    """An exception's message on one line (torch's load_state_dict errors span several)."""
    return " ".join(str(exc).split())


DEFAULT_LR, DEFAULT_MOMENTUM = 1e-3, 0.9


def add_common_args(parser: argparse.ArgumentParser, default_epochs: int, models: list[str]):
    parser.add_argument("--backend", choices=["tinyconv", "torch"], default="tinyconv",
                        help="framework to train with (default: tinyconv)")
    parser.add_argument("--model", choices=models, default=models[0])
    parser.add_argument("--epochs", type=positive_int, default=default_epochs,
                        help=f"total epochs to train, counted from the first; a resumed run "
                             f"continues up to this number (default: {default_epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--test-batch-size", type=positive_int, default=1000)
    parser.add_argument("--lr", type=positive_float, default=None,
                        help=f"learning rate (default: {DEFAULT_LR:g}; with --resume the "
                             f"checkpoint's, and a different --lr is applied from the next "
                             f"epoch on)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--momentum", type=nonnegative_float, default=None,
                        help=f"SGD momentum (default: {DEFAULT_MOMENTUM:g}; with --resume the "
                             f"checkpoint's)")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="data root holding <root>/FashionMNIST/raw and <root>/MNIST/raw "
                             "(default: $TINYCONV_DATA, else ./data)")
    parser.add_argument("--limit-train", type=positive_int, default=None, metavar="N",
                        help="train on a random subset of N images (quick runs; default: all)")
    parser.add_argument("--limit-test", type=positive_int, default=None, metavar="N",
                        help="evaluate on the first N test images only (quick runs; default: all)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: runs/<model>-<backend>); a folder holding "
                             "a previous run is refused unless --overwrite, or --resume of its "
                             "checkpoint.npz")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous run in --out: its checkpoint.npz, best.npz, "
                             "metrics.json and plots are deleted before training starts")
    parser.add_argument("--device", type=device_name, default=None,
                        help="torch backend: cuda or cpu (default: cuda when available)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", default=None, metavar="CKPT",
                       help="continue training from a checkpoint written by this script (same "
                            "--model, --optimizer, --scheduler and --augment)")
    start.add_argument("--evaluate", default=None, metavar="CKPT",
                       help="only evaluate a checkpoint (from either backend) on the test set; "
                            "writes nothing")
    parser.add_argument("--augment", action="store_true",
                        help="random augmentation of the training images (see the example)")
    parser.add_argument("--scheduler", choices=["none", "cosine", "step"], default="none",
                        help="learning-rate schedule, stepped once per epoch (cosine: "
                             "CosineAnnealingLR(T_max=epochs); step: x0.1 every --step-size)")
    parser.add_argument("--step-size", type=positive_int, default=5,
                        help="epochs between StepLR decays")
    parser.add_argument("--export-onnx", default=None, metavar="PATH",
                        help="after training, export the model to ONNX (needs: pip install "
                             "'.[onnx]')")
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="CPU threads (numba and torch), at most the machine's CPU count; "
                             "default: all cores")


def set_threads(backend, threads):
    if threads is None:
        return
    import numba
    numba.set_num_threads(threads)
    if backend.name == "torch":
        backend.lib.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# The output folder. Checked before any work is done: a run must not train for an hour and then
# find that it cannot write, or quietly replace the results of an earlier run.

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
        fail(f"{option} {folder}: cannot write there ({exc.strerror or _one_line(exc)})")


def make_folder(folder, option):
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        fail(f"{option} {folder}: cannot create it ({exc.strerror or _one_line(exc)})")


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


def augmented(transform, augmentations):
    """``transform`` (a Compose starting with ToTensor) with ``augmentations`` after ToTensor."""
    steps = list(transform.transforms)
    return T.Compose(steps[:1] + list(augmentations) + steps[1:])


def make_scheduler(backend, name, optimizer, epochs, step_size):
    """One scheduler step per epoch: cosine over all epochs, or x0.1 every ``step_size``."""
    if name == "none":
        return None
    schedulers = backend.lib.optim.lr_scheduler
    if name == "cosine":
        return schedulers.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return schedulers.StepLR(optimizer, step_size=step_size, gamma=0.1)
    raise SystemExit(f"error: unknown scheduler {name!r}: choose none, cosine or step")


def run(args, *, title, dataset_cls, transform, criterion_name="cross_entropy",
        augmentations=None, extra_outputs=None):
    """Train (or resume, or only evaluate) ``args.model`` and write everything to ``args.out``.

    Everything that can be checked is checked before the data is read: the options (argparse),
    the checkpoint to resume or evaluate (readable, the same model, optimizer and schedule),
    the output folder (writable, not holding another run). Then training; Ctrl-C stops it with
    exit status 130, keeping the checkpoint of the last finished epoch and saying where it is.

    ``augmentations(generator)`` returns the random transforms used with ``--augment``; they draw
    from one generator whose state is saved in the checkpoint, so a resumed run continues with
    the same random crops, flips and rotations. ``extra_outputs(out_dir)`` writes files of the
    example's own (CIFAR-10's data set plots) once the folder is known to be writable.
    """
    out_dir = args.out or os.path.join("runs", f"{args.model}-{args.backend}")
    if args.evaluate:
        return _evaluate_checkpoint(args, title, dataset_cls, transform, criterion_name)
    progress = {"saved_epoch": None, "removed": [],
                "checkpoint": os.path.join(out_dir, "checkpoint.npz")}
    try:
        return _train(args, out_dir, progress, title=title, dataset_cls=dataset_cls,
                      transform=transform, criterion_name=criterion_name,
                      augmentations=augmentations, extra_outputs=extra_outputs)
    except KeyboardInterrupt:
        print("\n" + interrupted_message(args, progress), flush=True)
        raise SystemExit(130) from None


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


def _evaluate_checkpoint(args, title, dataset_cls, transform, criterion_name):
    """--evaluate: the test loss and accuracy of a checkpoint; writes nothing."""
    ckpt = load_checkpoint(args.evaluate, "--evaluate")
    if "model" not in ckpt:  # a bare state_dict, e.g. tinyconv.save(model.state_dict(), p)
        ckpt = {"model": ckpt}
    saved_model = ckpt.get("model_name")
    if saved_model is not None and saved_model != args.model:
        fail(f"--model {args.model}: {args.evaluate} holds a {saved_model} "
             f"(pass --model {saved_model})")
    backend = Backend(args.backend, args.device)
    set_threads(backend, args.threads)
    lib, device = backend.lib, backend.device
    _, test_set = load_datasets(dataset_cls, args.data_dir, transform, None, args.seed,
                                args.limit_test)
    model = backend.build(args.model, args.seed)
    try:
        backend.load_state(model, ckpt["model"])
    except (ValueError, RuntimeError, TypeError, KeyError, AttributeError) as exc:
        fail(f"--evaluate {args.evaluate} does not hold a {args.model} state_dict: "
             f"{_one_line(exc)}")
    criterion = (lib.nn.CrossEntropyLoss() if criterion_name == "cross_entropy"
                 else lib.nn.NLLLoss())
    test_loss, test_acc, _ = evaluate(model, backend.loader(test_set, args.test_batch_size),
                                      criterion, lib, device)
    print(f"{args.evaluate} (written by the {ckpt.get('backend', '?')} backend), evaluated "
          f"with {args.backend}: test loss {test_loss:.4f}, test accuracy {test_acc:.2f}%")
    return {"test_loss": test_loss, "test_acc": test_acc}


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


def _train(args, out_dir, progress, *, title, dataset_cls, transform, criterion_name,
           augmentations, extra_outputs):
    # 1. Everything that can be refused, before any work.
    ckpt, lr_change = None, None
    if args.resume:
        ckpt = load_checkpoint(args.resume, "--resume")
        lr_change = check_resume(args, ckpt)
    args.lr = DEFAULT_LR if args.lr is None else args.lr
    args.momentum = DEFAULT_MOMENTUM if args.momentum is None else args.momentum
    if getattr(args, "augment", False) and augmentations is None:
        fail("--augment is not available for this example")
    old_outputs = check_out_dir(out_dir, overwrite=args.overwrite, resume=args.resume)
    if args.export_onnx:
        check_output_file(args.export_onnx, "--export-onnx", args.overwrite)

    # 2. The run: backend, data, model, optimizer, schedule (and their state when resuming).
    backend = Backend(args.backend, args.device)
    set_threads(backend, args.threads)
    lib, device = backend.lib, backend.device
    augment_rng = np.random.default_rng(args.seed + 1)
    train_transform = None
    if getattr(args, "augment", False):
        train_transform = augmented(transform, augmentations(augment_rng))
    train_set, test_set = load_datasets(dataset_cls, args.data_dir, transform, args.limit_train,
                                        args.seed, args.limit_test, train_transform)
    class_names = list(dataset_cls.classes)
    model = backend.build(args.model, args.seed)
    criterion = (lib.nn.CrossEntropyLoss() if criterion_name == "cross_entropy"
                 else lib.nn.NLLLoss())
    optimizer = backend.optimizer(args.optimizer, model.parameters(), args.lr, args.momentum)
    scheduler = make_scheduler(backend, args.scheduler, optimizer, args.epochs, args.step_size)
    train_loader = backend.loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = backend.loader(test_set, args.test_batch_size)
    ckpt_path = os.path.join(out_dir, "checkpoint.npz")
    best_path = os.path.join(out_dir, "best.npz")

    history, start_epoch = [], 1
    if ckpt is not None:
        try:
            backend.load_state(model, ckpt["model"])
            optimizer.load_state_dict(backend.optimizer_state_from_numpy(ckpt["optimizer"]))
            if scheduler is not None:
                scheduler.load_state_dict(ckpt["scheduler"])
        except (ValueError, RuntimeError, TypeError, KeyError, AttributeError) as exc:
            fail(f"--resume {args.resume} does not fit this {args.model} run: {_one_line(exc)}")
        backend.set_rng_state(ckpt["rng"])
        train_loader.generator.bit_generator.state = ckpt["loader_rng"]
        augment_rng.bit_generator.state = ckpt["augment_rng"]
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"]) + 1
        print(f"resumed from {args.resume} after epoch {ckpt['epoch']}")
        if lr_change is not None:
            for group in optimizer.param_groups:
                group["lr"] = args.lr
            print(f"--lr {args.lr:g} replaces the checkpoint's learning rate {lr_change[0]:g} "
                  f"from epoch {start_epoch} on")

    # 3. The folder: the previous run's outputs go (--overwrite), the example's own files come.
    make_folder(out_dir, "--out")
    if args.export_onnx:
        make_folder(os.path.dirname(os.path.abspath(args.export_onnx)), "--export-onnx")
    for name in old_outputs:
        os.remove(os.path.join(out_dir, name))
    progress["removed"] = old_outputs
    if old_outputs:
        print(f"--overwrite: removed the previous run's {', '.join(old_outputs)} from {out_dir}")
    if extra_outputs is not None:
        extra_outputs(out_dir)

    # 4. Training, one checkpoint per epoch.
    n_params = sum(p.nelement() for p in model.parameters())
    print(f"{title} on {args.backend} ({device}): {len(train_set):,} train / {len(test_set):,} "
          f"test images, {n_params:,} parameters, {args.optimizer} "
          f"lr={optimizer.param_groups[0]['lr']:g}, batch {args.batch_size}, epochs "
          f"{start_epoch}..{args.epochs}, writing to {out_dir}", flush=True)
    run_start = time.perf_counter()
    try:
        for epoch in range(start_epoch, args.epochs + 1):
            t0 = time.perf_counter()
            train_loss, train_acc, img_s = train_epoch(
                model, train_loader, criterion, optimizer, lib, device,
                desc=f"epoch {epoch}/{args.epochs}")
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            test_loss, test_acc, confusion = evaluate(model, test_loader, criterion, lib, device)
            seconds = time.perf_counter() - t0
            history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                                test_loss=test_loss, test_acc=test_acc, seconds=seconds,
                                train_images_per_s=img_s, lr=lr))
            print(f"epoch {epoch:>3}/{args.epochs}  train loss {train_loss:.4f} acc "
                  f"{train_acc:6.2f}%  |  test loss {test_loss:.4f} acc {test_acc:6.2f}%  |  "
                  f"{seconds:5.1f} s ({img_s:,.0f} img/s)"
                  + (f"  lr {lr:.2e}" if scheduler is not None else ""), flush=True)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None,
                     "epoch": epoch, "history": history, "rng": backend.rng_state(),
                     "loader_rng": train_loader.generator.bit_generator.state,
                     "augment_rng": augment_rng.bit_generator.state,
                     "backend": args.backend, "model_name": args.model, "args": vars(args)}
            with finish_before_interrupt():
                tinyconv.save(state, ckpt_path)
                if test_acc >= max(h["test_acc"] for h in history):
                    tinyconv.save(state, best_path)  # the best epoch so far, by test accuracy
                progress["saved_epoch"] = epoch
    except FloatingPointError as exc:
        saved = progress["saved_epoch"]
        fail(f"{exc}" + (f"; the checkpoint after epoch {saved} is {ckpt_path}"
                         if saved is not None else "; nothing was saved"), status=3)
    wall = time.perf_counter() - run_start

    # 5. The report: metrics.json and the plots.
    final = history[-1]
    print(f"\nfinal test accuracy: {final['test_acc']:.2f}% after {len(history)} epochs "
          f"({wall / 60:.1f} min this run)")
    print(format_confusion(confusion, class_names))
    plots = save_plots(out_dir, history, confusion, class_names, f"{title} ({args.backend})")
    metrics = {"model": args.model, "backend": args.backend, "device": str(device),
               "args": vars(args), "history": history, "final_test_acc": final["test_acc"],
               "confusion_matrix": confusion.tolist(), "class_names": class_names,
               "wall_seconds_this_run": wall, "parameters": n_params}
    if args.export_onnx:
        export_onnx(backend, model, args.model, args.export_onnx)
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    best = [best_path] if os.path.isfile(best_path) else []
    print("wrote " + ", ".join([ckpt_path, *best, os.path.join(out_dir, "metrics.json"), *plots]))
    return metrics


def export_onnx(backend, model, model_name, path):
    """Write ``model`` as ONNX with tinyconv's own exporter (a torch model is copied first)."""
    try:
        import tinyconv.onnx
    except ImportError as exc:
        print(f"error: --export-onnx needs the onnx package ({exc}); pip install -e '.[onnx]'",
              file=sys.stderr)
        raise SystemExit(2) from None
    ctor, shape = networks(tinyconv.models)[model_name]
    twin = model
    if backend.name != "tinyconv":
        twin = ctor()
        twin.load_state_dict({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    tinyconv.onnx.export(twin, tinyconv.zeros(1, *shape), path)
    print(f"exported ONNX model to {path}")


def load_checkpoint(path, option):
    """The checkpoint at ``path`` (a dict); else one line naming ``option`` and the problem."""
    try:
        ckpt = tinyconv.load(path)
    except (tinyconv.CheckpointError, OSError) as exc:
        message = _one_line(exc)
        if message.startswith(f"{path}: "):  # CheckpointError's messages name the file too
            message = message[len(f"{path}: "):]
        fail(f"{option} {path}: {message}")
    if not isinstance(ckpt, dict):
        fail(f"{option} {path}: expected a checkpoint holding a dict, found "
             f"{type(ckpt).__name__}")
    return ckpt
