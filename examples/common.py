"""What the example scripts share: backends, the training loop, evaluation, plots, checkpoints.

The training loop below is written once, in PyTorch's idiom, and runs unchanged on both
backends: ``lib`` is either the ``tinyconv`` module or the ``torch`` module. That is the point
of tinyconv: the same code, a different import.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

# Before numpy loads OpenBLAS: its threads must not spin after each matrix product while numba's
# threads want the cores (see tinyconv/__init__.py).
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
                raise SystemExit("error: --backend torch needs PyTorch: pip install -e '.[torch]'")
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
    if limit_train:
        if limit_train < 1:
            raise SystemExit(f"error: --limit-train must be positive, got {limit_train}")
        order = np.random.default_rng(seed).permutation(len(train))[:limit_train]
        train = Subset(train, np.sort(order))
    if limit_test:
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
            for name, row in zip(class_names, confusion)]
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


def add_common_args(parser: argparse.ArgumentParser, default_epochs: int, models: list[str]):
    parser.add_argument("--backend", choices=["tinyconv", "torch"], default="tinyconv",
                        help="framework to train with (default: tinyconv)")
    parser.add_argument("--model", choices=models, default=models[0])
    parser.add_argument("--epochs", type=int, default=default_epochs,
                        help=f"total epochs to train (default: {default_epochs})")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="data root holding <root>/FashionMNIST/raw and <root>/MNIST/raw "
                             "(default: $TINYCONV_DATA, else ./data)")
    parser.add_argument("--limit-train", type=int, default=None, metavar="N",
                        help="train on a random subset of N images (quick runs)")
    parser.add_argument("--limit-test", type=int, default=None, metavar="N",
                        help="evaluate on the first N test images only (quick runs)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<name>)")
    parser.add_argument("--device", default=None,
                        help="torch backend: cuda or cpu (default: cuda when available)")
    parser.add_argument("--resume", default=None, metavar="CKPT",
                        help="continue training from a checkpoint written by this script")
    parser.add_argument("--evaluate", default=None, metavar="CKPT",
                        help="only evaluate a checkpoint (from either backend) on the test set")
    parser.add_argument("--augment", action="store_true",
                        help="random augmentation of the training images (see the example)")
    parser.add_argument("--scheduler", choices=["none", "cosine", "step"], default="none",
                        help="learning-rate schedule, stepped once per epoch (cosine: "
                             "CosineAnnealingLR(T_max=epochs); step: x0.1 every --step-size)")
    parser.add_argument("--step-size", type=int, default=5, help="epochs between StepLR decays")
    parser.add_argument("--export-onnx", default=None, metavar="PATH",
                        help="after training, export the model to ONNX (needs: pip install "
                             "'.[onnx]')")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (numba and torch); default: all cores")


def set_threads(backend, threads):
    if threads is None:
        return
    import numba
    numba.set_num_threads(threads)
    if backend.name == "torch":
        backend.lib.set_num_threads(threads)


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
        augmentations=None):
    """Train (or resume, or only evaluate) ``args.model`` and write everything to ``args.out``.

    ``augmentations(generator)`` returns the random transforms used with ``--augment``; they draw
    from one generator whose state is saved in the checkpoint, so a resumed run continues with
    the same random crops, flips and rotations.
    """
    backend = Backend(args.backend, args.device)
    set_threads(backend, args.threads)
    lib, device = backend.lib, backend.device
    augment_rng = np.random.default_rng(args.seed + 1)
    train_transform = None
    if getattr(args, "augment", False):
        if augmentations is None:
            raise SystemExit("error: --augment is not available for this example")
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
    out_dir = args.out or os.path.join("runs", f"{args.model}-{args.backend}")
    os.makedirs(out_dir, exist_ok=True)
    ckpt_path = os.path.join(out_dir, "checkpoint.npz")
    best_path = os.path.join(out_dir, "best.npz")

    if args.evaluate:
        ckpt = _load_checkpoint(args.evaluate)
        if "model" not in ckpt:  # a bare state_dict, e.g. tinyconv.save(model.state_dict(), p)
            ckpt = {"model": ckpt}
        try:
            backend.load_state(model, ckpt["model"])
        except (ValueError, RuntimeError, TypeError) as exc:
            print(f"error: {args.evaluate} does not hold a {args.model} state_dict: {exc}",
                  file=sys.stderr)
            raise SystemExit(2) from None
        test_loss, test_acc, confusion = evaluate(model, test_loader, criterion, lib, device)
        print(f"{args.evaluate} (written by the {ckpt.get('backend', '?')} backend), evaluated "
              f"with {args.backend}: test loss {test_loss:.4f}, test accuracy {test_acc:.2f}%")
        return {"test_loss": test_loss, "test_acc": test_acc}

    history, start_epoch = [], 1
    if args.resume:
        ckpt = _load_checkpoint(args.resume)
        missing = {"model", "optimizer", "epoch", "history", "rng", "loader_rng",
                   "augment_rng"} - set(ckpt)
        if missing:
            print(f"error: {args.resume} is not a training checkpoint of this script (missing "
                  f"{', '.join(sorted(missing))}); --evaluate reads bare state_dicts",
                  file=sys.stderr)
            raise SystemExit(2)
        backend.load_state(model, ckpt["model"])
        optimizer.load_state_dict(backend.optimizer_state_from_numpy(ckpt["optimizer"]))
        backend.set_rng_state(ckpt["rng"])
        train_loader.generator.bit_generator.state = ckpt["loader_rng"]
        augment_rng.bit_generator.state = ckpt["augment_rng"]
        if scheduler is not None:
            if ckpt.get("scheduler") is None:
                raise SystemExit(f"error: {args.resume} was written without --scheduler")
            scheduler.load_state_dict(ckpt["scheduler"])
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"]) + 1
        print(f"resumed from {args.resume} after epoch {ckpt['epoch']}")

    n_params = sum(p.nelement() for p in model.parameters())
    print(f"{title} on {args.backend} ({device}): {len(train_set):,} train / {len(test_set):,} "
          f"test images, {n_params:,} parameters, {args.optimizer} lr={args.lr}, batch "
          f"{args.batch_size}, epochs {start_epoch}..{args.epochs}")
    run_start = time.perf_counter()
    confusion = None
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
            tinyconv.save(state, ckpt_path)
            if test_acc >= max(h["test_acc"] for h in history):
                tinyconv.save(state, best_path)  # the best epoch so far, by test accuracy
    except KeyboardInterrupt:
        done = history[-1]["epoch"] if history else start_epoch - 1
        print(f"\ninterrupted; the last checkpoint (after epoch {done}) is intact: {ckpt_path}\n"
              f"continue with: --resume {ckpt_path}")
        raise SystemExit(130) from None
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(3) from None
    wall = time.perf_counter() - run_start

    if confusion is None:  # nothing left to train (resumed at the end): just evaluate
        _, _, confusion = evaluate(model, test_loader, criterion, lib, device)
    final = history[-1] if history else {}
    print(f"\nfinal test accuracy: {final.get('test_acc', float('nan')):.2f}% after "
          f"{len(history)} epochs ({wall / 60:.1f} min this run)")
    print(format_confusion(confusion, class_names))
    plots = save_plots(out_dir, history, confusion, class_names, f"{title} ({args.backend})")
    metrics = {"model": args.model, "backend": args.backend, "device": str(device),
               "args": vars(args), "history": history, "final_test_acc": final.get("test_acc"),
               "confusion_matrix": confusion.tolist(), "class_names": class_names,
               "wall_seconds_this_run": wall, "parameters": n_params}
    if args.export_onnx:
        export_onnx(backend, model, args.model, args.export_onnx)
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    print(f"wrote {ckpt_path}, {os.path.join(out_dir, 'metrics.json')}"
          + "".join(f", {p}" for p in plots))
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


def _load_checkpoint(path):
    try:
        ckpt = tinyconv.load(path)
        if not isinstance(ckpt, dict):
            raise tinyconv.CheckpointError(f"{path}: expected a dict, found "
                                           f"{type(ckpt).__name__}")
        return ckpt
    except (tinyconv.CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
