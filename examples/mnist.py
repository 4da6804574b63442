"""MNIST with either backend: the ConvModule tutorial, and the FC-vs-CNN experiment.

    python examples/mnist.py                                  # ConvModule, Adam 1e-3, batch 64
    python examples/mnist.py --backend torch                  # the same in PyTorch
    python examples/mnist.py --experiment fc-vs-cnn           # FC2Layer vs CNN, 6.4k weights each
    python examples/mnist.py --experiment fc-vs-cnn --permute-pixels   # ... and on shuffled pixels

The experiment is the tutorial's lesson: with the same number of parameters a small CNN beats a
fully connected net, and after one fixed random permutation of the 784 pixels (applied to every
image) the fully connected net does as well as before while the CNN loses its advantage,
because convolution relies on neighbouring pixels being related.
"""

import os

# Before numpy loads OpenBLAS (see tinyconv/_startup.py and examples/common.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import time

import numpy as np
from common import (
    Backend,
    add_common_args,
    check_out_dir,
    evaluate,
    fail,
    load_datasets,
    mnist_transform,
    run,
    set_threads,
    train_epoch,
    write_json,
)

from tinyconv.data import MNIST
from tinyconv.data import transforms as T

DEFAULT_EPOCHS = 5


class PermutePixels:
    """Apply one fixed permutation to the H*W pixels of every image in a (N, C, H, W) batch."""

    def __init__(self, n_pixels, seed):
        self.perm = np.random.default_rng(seed).permutation(n_pixels)

    def __call__(self, x):
        flat = x.reshape(x.shape[:-2] + (-1,))
        return flat[..., self.perm].reshape(x.shape)

    def __repr__(self):
        return f"PermutePixels(n={len(self.perm)})"


def fc_vs_cnn(args):
    """Train FC2Layer(784, 8, 10) and CNN(6) one epoch each (the tutorial's recipe)."""
    for option in ("resume", "evaluate", "export_onnx"):
        if getattr(args, option):
            fail(f"--{option.replace('_', '-')} does not apply to --experiment fc-vs-cnn "
                 f"(it trains four networks from scratch and keeps only their scores)")
    out_dir = args.out or os.path.join("runs", f"fc-vs-cnn-{args.backend}")
    old = check_out_dir(out_dir, overwrite=args.overwrite, markers=("metrics.json",),
                        outputs=("metrics.json",))
    try:
        return _fc_vs_cnn(args, out_dir, old)
    except KeyboardInterrupt:
        print("\ninterrupted; fc-vs-cnn writes its metrics.json only at the end, so nothing "
              "was saved", flush=True)
        raise SystemExit(130) from None


def _fc_vs_cnn(args, out_dir, old_outputs):
    os.makedirs(out_dir, exist_ok=True)
    for name in old_outputs:  # --overwrite
        os.remove(os.path.join(out_dir, name))
    backend = Backend(args.backend, args.device)
    set_threads(backend, args.threads)
    lib, device = backend.lib, backend.device
    settings = [("original", None)]
    if args.permute_pixels:
        settings.append(("permuted", PermutePixels(28 * 28, args.seed)))
    results = []
    for setting, permute in settings:
        steps = [T.ToTensor(), T.Normalize((0.1307,), (0.3081,))] + ([permute] if permute else [])
        train_set, test_set = load_datasets(MNIST, args.data_dir, T.Compose(steps),
                                            args.limit_train, args.seed, args.limit_test)
        for name in ("fc2layer", "cnn"):
            model = backend.build(name, args.seed)
            n_params = sum(p.nelement() for p in model.parameters())
            optimizer = backend.optimizer("sgd", model.parameters(), lr=0.01, momentum=0.5)
            criterion = lib.nn.NLLLoss()
            train_loader = backend.loader(train_set, 64, shuffle=True, seed=args.seed)
            test_loader = backend.loader(test_set, 1000)
            t0 = time.perf_counter()
            for epoch in range(1, args.epochs + 1):
                train_epoch(model, train_loader, criterion, optimizer, lib, device,
                            desc=f"{name} {setting} epoch {epoch}")
            test_loss, test_acc, _ = evaluate(model, test_loader, criterion, lib, device)
            print(f"{name:>8} ({n_params:,} parameters), {setting} pixels: test loss "
                  f"{test_loss:.4f}, accuracy {test_acc:.2f}%  ({time.perf_counter() - t0:.1f} s)",
                  flush=True)
            results.append(dict(model=name, parameters=n_params, pixels=setting,
                                test_loss=test_loss, test_acc=test_acc))
    acc = {(r["model"], r["pixels"]): r["test_acc"] for r in results}
    print("\n| model | parameters | " + " | ".join(f"{s} pixels" for s, _ in settings) + " |")
    print("|---|---|" + "---|" * len(settings))
    for name, label in (("fc2layer", "FC2Layer(784, 8, 10)"), ("cnn", "CNN(6)")):
        n = next(r["parameters"] for r in results if r["model"] == name)
        print(f"| {label} | {n:,} | "
              + " | ".join(f"{acc[(name, s)]:.2f}%" for s, _ in settings) + " |")
    cnn_wins = acc[("cnn", "original")] > acc[("fc2layer", "original")]
    print(f"\nlesson 1 (same parameter count, the CNN is more accurate): "
          f"{'holds' if cnn_wins else 'does NOT hold in this run'}")
    if args.permute_pixels:
        fc_drop = acc[("fc2layer", "original")] - acc[("fc2layer", "permuted")]
        cnn_drop = acc[("cnn", "original")] - acc[("cnn", "permuted")]
        holds = cnn_drop > fc_drop
        print(f"lesson 2 (permuting pixels hurts the CNN, not the FC net): FC changes by "
              f"{-fc_drop:+.2f} pp, CNN by {-cnn_drop:+.2f} pp: "
              f"{'holds' if holds else 'does NOT hold in this run'}")
    write_json(os.path.join(out_dir, "metrics.json"), {"args": vars(args), "results": results})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, DEFAULT_EPOCHS, ["convmodule"])
    parser.add_argument("--experiment", choices=["convmodule", "fc-vs-cnn"],
                        default="convmodule")
    parser.add_argument("--permute-pixels", action="store_true",
                        help="fc-vs-cnn: also train on pixels shuffled by one fixed permutation")
    args = parser.parse_args(argv)
    if args.experiment == "fc-vs-cnn":
        if args.epochs == DEFAULT_EPOCHS:
            args.epochs = 1  # the tutorial trains each network for one epoch
        return fc_vs_cnn(args)
    return run(args, title="ConvModule", dataset_cls=MNIST, transform=mnist_transform(0.5, 0.5))


if __name__ == "__main__":
    main()
