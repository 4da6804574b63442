"""One epoch of training, one evaluation, and what is written about them (tables, plots, JSON).

Written once in PyTorch's idiom: ``lib`` is the ``tinyconv`` or the ``torch`` module (see
backend.py). Part of what common.py shares; import it from there (common.py prepares the process
first).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

from tinyconv.data import DataError, Subset
from tinyconv.data import transforms as T


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
