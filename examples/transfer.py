"""Transfer learning: torchvision's ImageNet ResNet-18 fine-tuned on CIFAR-10, on either backend.

    python examples/transfer.py                                  # the tutorial: 224x224, Adam 1e-3
    python examples/transfer.py --freeze-backbone                # train only the new head
    python examples/transfer.py --pretrained ~/resnet18-f37072fd.pth --resize none
    python examples/transfer.py --backend torch                  # the same in PyTorch

The tutorial: CIFAR-10's 32x32 images upsampled to 224x224 (the size the ImageNet weights were
trained at), normalized with ImageNet's mean and std, ``model.fc = nn.Linear(512, 10)``, Adam
(1e-3) for 5 epochs with a learning-rate schedule, keeping the best epoch's weights; it reports
90.2% test accuracy (on a GPU).

``--pretrained download`` (the default) fetches torchvision's published file once into the cache
(``$TINYCONV_HOME/hub/checkpoints``, else ``$TORCH_HOME/hub/checkpoints``, else
``~/.cache/torch/hub/checkpoints``) and checks its SHA-256; offline, the error says which file to
put where. ``--pretrained PATH`` reads a .pth (or tinyconv checkpoint) file; ``none`` starts
from a random initialisation. Both backends start from identical weights: the ImageNet ones and
a new head drawn by tinyconv with ``--seed``.

Writes to ``--out`` (default runs/transfer-<arch>-<backend>): class_distribution.png and
samples.png (the data exploration), checkpoint.npz (last epoch), best.npz (best test accuracy),
metrics.json, loss.png, accuracy.png and confusion_matrix.png.
"""

import os

# Before numpy loads OpenBLAS (see tinyconv/_startup.py and examples/common.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import sys
import time

import numpy as np
from common import (
    Backend,
    check_out_dir,
    evaluate,
    format_confusion,
    load_datasets,
    make_scheduler,
    nonnegative_float,
    positive_float,
    positive_int,
    save_plots,
    set_threads,
    thread_count,
    train_epoch,
    write_json,
)

import tinyconv
from tinyconv.data import CIFAR10
from tinyconv.data import transforms as T
from tinyconv.vision import models as vision_models

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
WEIGHTS = {"resnet18": vision_models.ResNet18_Weights.DEFAULT,
           "resnet34": vision_models.ResNet34_Weights.DEFAULT}


# ---- data --------------------------------------------------------------------------------------


def image_transform(resize):
    """uint8 CIFAR batches -> float32 (N, 3, size, size), normalized with ImageNet's statistics.

    ``resize``: upsample 32 -> resize x resize first (bilinear, as torchvision's Resize), or
    "none". The ImageNet weights were trained on 224x224 images: at CIFAR's own 32x32 the
    final feature map is 1x1 and accuracy suffers.
    """
    steps = [T.ToTensor()]
    if resize != "none":
        steps.append(T.Resize((resize, resize)))
    steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(steps)


# ---- data exploration ------------------------------------------------------------------------


def _base(dataset):
    """The dataset behind a Subset (its images and labels), and the indices used."""
    indices = getattr(dataset, "indices", None)
    base = getattr(dataset, "dataset", dataset)
    return base, np.arange(len(base)) if indices is None else np.asarray(indices)


def plot_data_exploration(train, test, out_dir):
    """class_distribution.png (images per class, train and test) and samples.png (a grid)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; skipping the data set plots")
        return []
    (train_base, train_idx), (test_base, test_idx) = _base(train), _base(test)
    names = list(train_base.classes)
    fig, ax = plt.subplots(figsize=(9, 4))
    positions = np.arange(len(names))
    for offset, base, idx, label in ((-0.2, train_base, train_idx, "train"),
                                     (0.2, test_base, test_idx, "test")):
        counts = np.bincount(np.asarray(base.targets)[idx], minlength=len(names))
        ax.bar(positions + offset, counts, width=0.4, label=f"{label} ({len(idx):,})")
    ax.set_xticks(positions, names, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title("CIFAR-10: images per class")
    ax.legend()
    fig.tight_layout()
    written = [os.path.join(out_dir, "class_distribution.png")]
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    picks = np.random.default_rng(0).choice(train_idx, size=min(32, len(train_idx)),
                                            replace=False)
    cols = 8
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6), squeeze=False)
    for ax, i in zip(axes.ravel(), picks, strict=False):  # the last row may have blanks
        ax.imshow(train_base.data[i], interpolation="nearest")
        ax.set_title(names[int(train_base.targets[i])], fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("CIFAR-10 training images")
    fig.tight_layout()
    written.append(os.path.join(out_dir, "samples.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


# ---- the model -------------------------------------------------------------------------------


def pretrained_state(arch, source):
    """The ImageNet state_dict (name -> array) for ``--pretrained``, or None for 'none'."""
    if source == "none":
        return None
    try:
        if source == "download":
            return WEIGHTS[arch].get_state_dict(progress=True)
        return vision_models.load_state_dict_file(source)
    except vision_models.WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def build_model(backend, arch, state, n_classes, seed, freeze_backbone):
    """The network on ``backend``: pretrained backbone (if ``state``), a new head of
    ``n_classes`` drawn by tinyconv with ``seed`` (copied into the torch twin), the backbone
    frozen if asked. Returns (model, the parameters to optimize)."""
    tinyconv.manual_seed(seed)
    reference = getattr(vision_models, arch)()
    if state is not None:
        try:
            reference.load_state_dict(state)
        except (ValueError, TypeError) as exc:  # ShapeError is a ValueError
            print(f"error: the pretrained weights do not fit {arch}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    # The tutorial's one line: a new last layer for the 10 classes
    reference.fc = tinyconv.nn.Linear(reference.fc.in_features, n_classes)
    if backend.name == "tinyconv":
        model = reference
    else:
        import torchvision
        backend.lib.manual_seed(seed)
        model = getattr(torchvision.models, arch)()
        model.fc = backend.lib.nn.Linear(model.fc.in_features, n_classes)
        backend.load_state(model, {k: v.numpy() for k, v in reference.state_dict().items()})
        model = model.to(backend.device)
    if freeze_backbone:
        # Feature extraction: no gradient (and no saved activations) below the head
        model.requires_grad_(False)
        model.fc.requires_grad_(True)
        return model, list(model.fc.parameters())
    return model, list(model.parameters())


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["tinyconv", "torch"], default="tinyconv")
    parser.add_argument("--arch", choices=sorted(WEIGHTS), default="resnet18")
    parser.add_argument("--pretrained", default="download", metavar="PATH|download|none",
                        help="ImageNet weights: download torchvision's file (default), read a "
                             "file, or none (random initialisation)")
    parser.add_argument("--freeze-backbone", action="store_true",
                        help="train only the new fc layer (feature extraction)")
    parser.add_argument("--resize", default="224", metavar="SIZE|none",
                        help="upsample the 32x32 images to SIZE x SIZE (default 224), or none")
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--test-batch-size", type=positive_int, default=100)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--momentum", type=nonnegative_float, default=0.9)
    parser.add_argument("--scheduler", choices=["none", "cosine", "step"], default="step",
                        help="stepped once per epoch (default step: x0.1 every --step-size)")
    parser.add_argument("--step-size", type=positive_int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="root holding cifar-10-batches-py (default: $TINYCONV_DATA, else "
                             "./data)")
    parser.add_argument("--limit-train", type=positive_int, default=None, metavar="N")
    parser.add_argument("--limit-test", type=positive_int, default=None, metavar="N")
    parser.add_argument("--out", default=None,
                        help="the run's folder (default runs/transfer-ARCH-BACKEND); a folder "
                             "holding a previous run is refused unless --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous run in --out")
    parser.add_argument("--device", default=None, help="torch backend: cuda or cpu")
    parser.add_argument("--threads", type=thread_count, default=None)
    args = parser.parse_args(argv)
    if args.resize != "none":
        try:
            args.resize = int(args.resize)
        except ValueError:
            parser.error(f"--resize: expected a size (e.g. 224) or none, got {args.resize!r}")
        if args.resize < 32:
            parser.error(f"--resize: ResNet needs at least 32x32 inputs, got {args.resize}")
    return args


def main(argv=None, dataset_cls=CIFAR10):
    args = parse_args(argv)
    backend = Backend(args.backend, args.device)
    set_threads(backend, args.threads)
    lib, device = backend.lib, backend.device

    out_dir = args.out or os.path.join("runs", f"transfer-{args.arch}-{args.backend}")
    replaced = check_out_dir(out_dir, overwrite=args.overwrite)  # before any work is done
    transform = image_transform(args.resize)
    train_set, test_set = load_datasets(dataset_cls, args.data_dir, transform, args.limit_train,
                                        args.seed, args.limit_test)
    class_names = list(dataset_cls.classes)
    os.makedirs(out_dir, exist_ok=True)
    for name in replaced:  # --overwrite: the previous run's outputs go now, ours come
        os.remove(os.path.join(out_dir, name))
    plot_data_exploration(train_set, test_set, out_dir)

    state = pretrained_state(args.arch, args.pretrained)
    model, params = build_model(backend, args.arch, state, len(class_names), args.seed,
                                args.freeze_backbone)
    criterion = lib.nn.CrossEntropyLoss()
    optimizer = backend.optimizer(args.optimizer, params, args.lr, args.momentum)
    scheduler = make_scheduler(backend, args.scheduler, optimizer, args.epochs, args.step_size)
    train_loader = backend.loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = backend.loader(test_set, args.test_batch_size)
    ckpt_path, best_path = (os.path.join(out_dir, "checkpoint.npz"),
                            os.path.join(out_dir, "best.npz"))

    size = "32x32" if args.resize == "none" else f"{args.resize}x{args.resize}"
    n_train = sum(p.nelement() for p in params)
    print(f"{args.arch} ({'pretrained: ' + args.pretrained if state is not None else 'random'}"
          f") on {args.backend} ({device}): {len(train_set):,} train / {len(test_set):,} test "
          f"images at {size}, training {n_train:,} of "
          f"{sum(p.nelement() for p in model.parameters()):,} parameters, {args.optimizer} "
          f"lr={args.lr}, batch {args.batch_size}, {args.epochs} epochs", flush=True)
    history, best = [], None
    run_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        train_loss, train_acc, img_s = train_epoch(model, train_loader, criterion, optimizer,
                                                   lib, device, desc=f"epoch {epoch}/{args.epochs}")
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        test_loss, test_acc, confusion = evaluate(model, test_loader, criterion, lib, device,
                                                  len(class_names))
        seconds = time.perf_counter() - t0
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                            test_loss=test_loss, test_acc=test_acc, seconds=seconds,
                            train_images_per_s=img_s, lr=lr))
        print(f"epoch {epoch:>2}/{args.epochs}  train loss {train_loss:.4f} acc "
              f"{train_acc:6.2f}%  |  test loss {test_loss:.4f} acc {test_acc:6.2f}%  |  "
              f"{seconds:6.1f} s ({img_s:,.1f} img/s)  lr {lr:.1e}", flush=True)
        weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        checkpoint = {"model": weights, "epoch": epoch, "history": history,
                      "backend": args.backend, "arch": args.arch, "args": vars(args)}
        tinyconv.save(checkpoint, ckpt_path)
        if best is None or test_acc > best["test_acc"]:
            best = dict(history[-1], confusion=confusion)
            tinyconv.save(checkpoint, best_path)  # the tutorial keeps the best epoch's weights
    wall = time.perf_counter() - run_start

    print(f"\nbest test accuracy {best['test_acc']:.2f}% (epoch {best['epoch']}), last "
          f"{history[-1]['test_acc']:.2f}%, {wall / 60:.1f} min; confusion matrix of the best "
          f"epoch:")
    print(format_confusion(best["confusion"], class_names))
    title = f"{args.arch} transfer (CIFAR-10, {args.backend})"
    plots = save_plots(out_dir, history, best["confusion"], class_names, title)
    metrics = {"arch": args.arch, "backend": args.backend, "device": str(device),
               "args": vars(args), "history": history, "final_test_acc": history[-1]["test_acc"],
               "best_test_acc": best["test_acc"], "best_epoch": best["epoch"],
               "confusion_matrix": best["confusion"].tolist(), "class_names": class_names,
               "trained_parameters": n_train, "wall_seconds": wall}
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    print(f"wrote {ckpt_path}, {best_path}, {os.path.join(out_dir, 'metrics.json')}"
          + "".join(f", {p}" for p in plots))
    return metrics


if __name__ == "__main__":
    main()
