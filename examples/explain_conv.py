"""A convolution worked through by hand, then a trained FashionCNN looked at from the inside.

    python examples/explain_conv.py                                   # trains briefly (~1 min)
    python examples/explain_conv.py --checkpoint runs/fashioncnn-tinyconv/checkpoint.npz

Part 1 prints the forward and backward pass of one 3x3 convolution (padding 1) on a 4x4 image:
the input, the im2col matrix, the matrix product and the output, then gy, the column gradient,
col2im's result and the weight and bias gradients. The numbers are the ones in
docs/conv2d-forward.md and docs/conv2d-backward.md (the same code prints both).

Part 2 writes pictures into ``--out`` (default runs/explain):

* ``im2col.png``: the 4x4 input, its im2col matrix and the output, every cell labelled;
* ``filters.png``: the 32 learned 3x3 filters of FashionCNN's first layer;
* ``feature_maps.png``: one test image after each stage of the two conv blocks;
* ``misclassified.png``: test images the network gets wrong, with true and predicted classes.

The network is read from ``--checkpoint`` (written by examples/fashion.py); without one it is
trained here for one epoch on a 2000-image subset (about 73% test accuracy instead of ~91%;
some 70 s on 2 cores), which the script says. Data: Fashion-MNIST from ``--data-dir``, else
$TINYCONV_DATA, else ./data.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import warnings

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "examples"))

from common import (  # noqa: E402
    check_writable,
    fail,
    load_checkpoint,
    load_datasets,
    mnist_transform,
    nonnegative_int,
    positive_int,
)

import tinyconv  # noqa: E402
from tinyconv.data import FashionMNIST  # noqa: E402
from tinyconv.kernels.conv import im2col  # noqa: E402
from tinyconv.models import FashionCNN  # noqa: E402

warnings.filterwarnings("ignore", message=".*dropout2d.*")


def worked_examples():
    """docs/worked_examples.py: the code that prints the numbers in the docs."""
    path = os.path.join(_ROOT, "docs", "worked_examples.py")
    spec = importlib.util.spec_from_file_location("worked_examples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# part 1: numbers


def print_worked_example(we):
    rule = "=" * 78
    print(rule)
    print("FORWARD: y = conv2d(x, W, b, padding=1) as im2col + one matrix product")
    print(rule)
    print(we.conv_forward())
    print()
    print(rule)
    print("BACKWARD: gb = sum(gY), gW = gY @ cols.T, gx = col2im(W.T @ gY)")
    print(rule)
    print(we.conv_backward())
    print()


# ---------------------------------------------------------------------------------------------
# part 2: pictures


def plot_im2col(we, path):
    import matplotlib.pyplot as plt

    x, W, b = we.conv_setup()
    cols = im2col(x, 3, 3, (1, 1), (1, 1), (1, 1))
    y = (W.reshape(1, -1) @ cols + b[:, None]).reshape(4, 4)
    fig = plt.figure(figsize=(17, 5.6), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[6, 16, 4.2])

    def annotated(ax, m, cmap, title, fontsize=11):
        lim = np.abs(m).max() or 1
        vmin = -lim if m.min() < 0 else 0
        ax.imshow(m, cmap=cmap, vmin=vmin, vmax=lim)
        for (i, j), v in np.ndenumerate(m):
            shade = (v - vmin) / (lim - vmin)
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=fontsize,
                    color="white" if shade > 0.6 or (vmin < 0 and shade < 0.2) else "black")
        ax.set_title(title, fontsize=12)

    ax = fig.add_subplot(grid[0])
    annotated(ax, np.pad(x[0, 0], 1), "Blues", "input x (4x4) inside its padding of zeros\n"
              "red: the patch of output (1, 2)")
    ax.add_patch(plt.Rectangle((0.5, 0.5), 4, 4, fill=False, edgecolor="black", linewidth=2.5))
    # the patch of column 6, output (1, 2): rows 0..2, columns 1..3 (shifted by the padding)
    ax.add_patch(plt.Rectangle((1.5, 0.5), 3, 3, fill=False, edgecolor="red", linewidth=2.5,
                               linestyle="--"))
    ax.set_xticks(range(6), range(-1, 5))
    ax.set_yticks(range(6), range(-1, 5))
    ax.set_xlabel("w")
    ax.set_ylabel("h")

    ax = fig.add_subplot(grid[1])
    annotated(ax, cols, "Blues", "cols = im2col(x)  (9 x 16): column p is the 3x3 patch "
              "centred on pixel (p // 4, p % 4),\nread row by row (0 = padding); "
              "row r meets kernel weight W[r // 3, r % 3]", fontsize=10)
    ax.add_patch(plt.Rectangle((5.5, -0.5), 1, 9, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_xticks(range(16), [f"{p}\n({p // 4},{p % 4})" for p in range(16)], fontsize=8)
    ax.set_xlabel("column p = (oh, ow)")
    ax.set_yticks(range(9), [f"W[{i},{j}] = {W[0, 0, i, j]:g}" for i in range(3)
                             for j in range(3)], fontsize=9)
    ax.set_ylabel("row r = (c, kh, kw), the weight it meets")

    ax = fig.add_subplot(grid[2])
    annotated(ax, y, "RdBu_r", "y = W.reshape(1, 9) @ cols + b\nreshaped to 4x4\n"
              "(W: Sobel kernel, b = 1)")
    ax.set_xticks(range(4))
    ax.set_yticks(range(4))
    ax.add_patch(plt.Rectangle((1.5, 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_xlabel("ow")
    ax.set_ylabel("oh")
    fig.suptitle("im2col: a 3x3 convolution with padding 1 becomes one matrix product "
                 "(1 x 9) @ (9 x 16)", fontsize=13)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_filters(model, path, caption):
    import matplotlib.pyplot as plt

    w = model.layer1[0].weight.detach().numpy()[:, 0]  # (32, 3, 3)
    fig, axes = plt.subplots(4, 8, figsize=(11, 6.4), layout="constrained")
    for k, ax in enumerate(axes.flat):
        lim = np.abs(w[k]).max()
        im = ax.imshow(w[k], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"filter {k}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    cbar = fig.colorbar(im, ax=axes, shrink=0.6, ticks=[])
    cbar.set_label("each filter scaled to its own largest |weight|:\nred positive, blue negative,"
                   " white 0", fontsize=9)
    fig.suptitle(f"FashionCNN layer1.0: the 32 learned 3x3 filters ({caption})", fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_feature_maps(model, image, label, class_names, path, n_maps=8):
    import matplotlib.pyplot as plt

    stages = []
    out = tinyconv.tensor(image[None])
    with tinyconv.no_grad():
        for block in ("layer1", "layer2"):
            for layer in getattr(model, block):
                out = layer(out)
                stages.append((f"{block}: {type(layer).__name__}", out.numpy()[0]))
        logits = model(tinyconv.tensor(image[None])).numpy()[0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()

    fig = plt.figure(figsize=(2 + 1.35 * n_maps, 1.45 * (len(stages) + 1) + 2.2),
                     layout="constrained")
    grid = fig.add_gridspec(len(stages) + 2, n_maps + 1, width_ratios=[1.6] + [1] * n_maps,
                            height_ratios=[1] * (len(stages) + 1) + [1.4])
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(image[0], cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"input: {class_names[label]}", fontsize=9)
    fig.add_subplot(grid[0, 0]).axis("off")
    for row, (name, maps) in enumerate(stages, start=1):
        label_ax = fig.add_subplot(grid[row, 0])
        label_ax.axis("off")
        label_ax.text(1.0, 0.5, f"{name}\n{maps.shape[0]} x {maps.shape[1]} x {maps.shape[2]}",
                      ha="right", va="center", fontsize=9, transform=label_ax.transAxes)
        for k in range(n_maps):
            ax = fig.add_subplot(grid[row, k + 1])
            ax.imshow(maps[k], cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 1:
                ax.set_title(f"channel {k}", fontsize=9)
    ax = fig.add_subplot(grid[-1, 1:])
    ax.barh(range(len(class_names)), probs, color="tab:blue")
    for k, p in enumerate(probs):
        ax.text(min(p, 0.9) + 0.01, k, f"{100 * p:.1f}%", va="center", fontsize=8,
                color="white" if p > 0.9 else "black")
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("softmax probability (fc1, dropout off, fc2)", fontsize=9)
    fig.suptitle("One test image through FashionCNN: the first 8 channels after each stage "
                 "(each map on its own colour scale, yellow high)\nBatchNorm only shifts and "
                 "scales a channel, so its maps look like the conv's; ReLU sets the negatives "
                 "to 0; MaxPool halves the size", fontsize=11)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_misclassified(images, labels, preds, probs, class_names, path, n=24):
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(preds != labels)[:n]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.3 * rows), layout="constrained")
    for ax in np.atleast_1d(axes).flat:
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).flat, wrong, strict=False):
        ax.imshow(images[i, 0], cmap="gray")
        ax.set_title(f"true: {class_names[labels[i]]}\npred: {class_names[preds[i]]} "
                     f"({100 * probs[i]:.0f}%)", fontsize=8.5, color="firebrick")
    fig.suptitle(f"The first {len(wrong)} misclassified test images "
                 f"({(preds != labels).sum()} of {len(labels)} wrong)", fontsize=12)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# the network


def train_briefly(train_set, n_images, seed):
    """One epoch of Adam on ``n_images`` training images: enough for filters to take shape."""
    tinyconv.manual_seed(seed)
    model = FashionCNN()
    criterion = tinyconv.nn.CrossEntropyLoss()
    optimizer = tinyconv.optim.Adam(model.parameters(), lr=1e-3)
    order = np.random.default_rng(seed).permutation(len(train_set))[:n_images]
    model.train()
    for start in range(0, n_images, 64):
        x, y = train_set.__getitems__(order[start:start + 64])
        loss = criterion(model(tinyconv.tensor(x)), tinyconv.tensor(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def predict(model, images, batch=1000):
    model.eval()
    probs = []
    with tinyconv.no_grad():
        for start in range(0, len(images), batch):
            logits = model(tinyconv.tensor(images[start:start + batch])).numpy()
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs.append(e / e.sum(axis=1, keepdims=True))
    probs = np.concatenate(probs)
    return probs.argmax(axis=1), probs.max(axis=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("runs", "explain"),
                    help="folder for the PNGs (default runs/explain)")
    ap.add_argument("--checkpoint", help="a checkpoint written by examples/fashion.py; "
                    "without one FashionCNN is trained briefly here")
    ap.add_argument("--train-images", type=positive_int, default=2000,
                    help="training images for the brief training without --checkpoint")
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST root (default: "
                    "$TINYCONV_DATA, else ./data)")
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--no-plots", action="store_true", help="print part 1 only")
    args = ap.parse_args(argv)
    checkpoint = load_checkpoint(args.checkpoint, "--checkpoint") if args.checkpoint else None
    if not args.no_plots:
        check_writable(args.out, "--out")

    we = worked_examples()
    print_worked_example(we)
    if args.no_plots:
        return 0

    import matplotlib
    matplotlib.use("Agg")
    os.makedirs(args.out, exist_ok=True)
    written = [os.path.join(args.out, "im2col.png")]
    plot_im2col(we, written[-1])

    train_set, test_set = load_datasets(FashionMNIST, args.data_dir, mnist_transform(0.5, 0.5),
                                        seed=args.seed)
    if args.checkpoint:
        model = FashionCNN()
        try:
            model.load_state_dict({k: np.asarray(v) for k, v in checkpoint["model"].items()})
        except (KeyError, AttributeError, TypeError, ValueError, RuntimeError) as exc:
            fail(f"--checkpoint {args.checkpoint} does not hold a FashionCNN: "
                 f"{' '.join(str(exc).split())}")
        caption = f"trained, from {os.path.basename(args.checkpoint)}"
        print(f"network: {args.checkpoint}")
    else:
        print(f"network: no --checkpoint given, so FashionCNN is trained here for one epoch on "
              f"{args.train_images} of the 60000 training images (a full run of "
              f"examples/fashion.py gives better filters and ~91% accuracy)")
        model = train_briefly(train_set, args.train_images, args.seed)
        caption = f"after 1 epoch on {args.train_images} images"
    model.eval()

    images, labels = test_set.__getitems__(np.arange(len(test_set)))
    preds, probs = predict(model, images)
    print(f"test accuracy: {100 * (preds == labels).mean():.2f}% on {len(labels)} images")
    names = list(FashionMNIST.classes)

    written.append(os.path.join(args.out, "filters.png"))
    plot_filters(model, written[-1], caption)
    written.append(os.path.join(args.out, "feature_maps.png"))
    plot_feature_maps(model, images[0], int(labels[0]), names, written[-1])
    written.append(os.path.join(args.out, "misclassified.png"))
    plot_misclassified(images, labels, preds, probs, names, written[-1])
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
