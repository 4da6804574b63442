"""Train the tutorial's Fashion-MNIST CNN on tinyconv or, with --backend torch, on PyTorch.

    python examples/fashion.py                      # FashionCNN on tinyconv, the default recipe
    python examples/fashion.py --backend torch      # the identical network in PyTorch
    python examples/fashion.py --limit-train 2000 --epochs 1   # a quick look

Recipe (the tutorial's): images scaled to [0, 1] and normalized with mean 0.5, std 0.5;
Adam(lr=1e-3); batch 64, shuffled; cross-entropy. Writes to --out (default runs/<model>-<backend>):
checkpoint.npz (last epoch), best.npz (best test accuracy), metrics.json, loss.png, accuracy.png,
confusion_matrix.png. A folder that holds a previous run is refused: --overwrite replaces it,
--resume runs/.../checkpoint.npz --epochs N continues it. Ctrl-C keeps the last finished epoch's
checkpoint. The DeepFashionCNN recipe adds augmentation and a cosine schedule:

    python examples/fashion.py --model deepfashioncnn --epochs 10 --augment --scheduler cosine
"""

import argparse

from common import add_common_args, mnist_transform, run

from tinyconv.data import FashionMNIST
from tinyconv.data import transforms as T

# Chosen so that the default run takes under 20 minutes on a 2-core laptop CPU; see README.
DEFAULT_EPOCHS = 12


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, DEFAULT_EPOCHS, ["fashioncnn", "deepfashioncnn"])
    args = parser.parse_args(argv)
    title = {"fashioncnn": "FashionCNN", "deepfashioncnn": "DeepFashionCNN"}[args.model]
    return run(args, title=title, dataset_cls=FashionMNIST, transform=mnist_transform(0.5, 0.5),
               augmentations=fashion_augmentations)


def fashion_augmentations(generator):
    """The DeepFashionCNN tutorial's augmentation: RandomRotation(10) + RandomHorizontalFlip."""
    return [T.RandomRotation(10, generator=generator),
            T.RandomHorizontalFlip(generator=generator)]


if __name__ == "__main__":
    main()
