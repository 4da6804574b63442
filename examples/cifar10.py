"""CIFAR-10 with either backend: the course's LeNet-style and VGG-style colour networks.

    python examples/cifar10.py                                   # LeNet, Adam 1e-3, 10 epochs
    python examples/cifar10.py --model vgg --augment --scheduler cosine
    python examples/cifar10.py --backend torch                   # the same in PyTorch

Data: the official "python version" batches in <root>/cifar-10-batches-py (root: --data-dir,
else $TINYCONV_DATA, else ./data), downloaded and checked when missing and online. Images are
scaled to [0, 1] and normalized with mean 0.5, std 0.5 per channel; --augment adds
RandomCrop(32, padding=4) + RandomHorizontalFlip. Besides what fashion.py writes, the output
folder gets class_distribution.png and samples.png (a grid of training images with their class).
"""

import os

# Before numpy loads OpenBLAS (see tinyconv/_startup.py and examples/common.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse

import numpy as np
from common import add_common_args, run

from tinyconv.data import CIFAR10, DataError
from tinyconv.data import transforms as T

DEFAULT_EPOCHS = 10


def cifar_augmentations(generator):
    return [T.RandomCrop(32, padding=4, generator=generator),
            T.RandomHorizontalFlip(generator=generator)]


def plot_dataset(data_dir, out_dir):
    """class_distribution.png (images per class, train and test) and samples.png."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; skipping the data set plots")
        return
    try:
        train, test = CIFAR10(data_dir, train=True), CIFAR10(data_dir, train=False)
    except DataError:
        return  # run() reports the missing files
    os.makedirs(out_dir, exist_ok=True)
    names = train.classes
    fig, ax = plt.subplots(figsize=(9, 4))
    positions = np.arange(len(names))
    for offset, split, label in ((-0.2, train, "train"), (0.2, test, "test")):
        counts = np.bincount(split.targets, minlength=len(names))
        ax.bar(positions + offset, counts, width=0.4, label=f"{label} ({len(split):,})")
    ax.set_xticks(positions, names, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title("CIFAR-10: images per class")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "class_distribution.png"), dpi=110)
    plt.close(fig)

    rng = np.random.default_rng(0)
    picks = rng.choice(len(train), size=min(32, len(train)), replace=False)
    cols = 8
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6))
    for ax, i in zip(np.atleast_1d(axes).ravel(), picks, strict=False):
        ax.imshow(train.data[i], interpolation="nearest")
        ax.set_title(names[train.targets[i]], fontsize=8)
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    fig.suptitle("CIFAR-10 training images")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "samples.png"), dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, DEFAULT_EPOCHS, ["lenet", "vgg"])
    args = parser.parse_args(argv)
    title = {"lenet": "LeNet", "vgg": "VGG11"}[args.model]
    transform = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return run(args, title=f"{title} (CIFAR-10)", dataset_cls=CIFAR10, transform=transform,
               augmentations=cifar_augmentations,
               extra_outputs=lambda out_dir: plot_dataset(args.data_dir, out_dir))


if __name__ == "__main__":
    main()
