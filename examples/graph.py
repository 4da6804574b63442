"""Draw the autograd graph of one FashionCNN training step's loss (Graphviz).

    python examples/graph.py                      # writes runs/graph/fashioncnn_step.{dot,png}
    python examples/graph.py --out graph.svg --batch-size 8

Each box is one recorded operation (its Function and output shape), each blue ellipse a
parameter or buffer under its state_dict name; the arrows follow the data from the images to
the loss. Needs Graphviz's `dot` for the picture (apt-get install graphviz); the .dot file is
always written. ``--fused`` draws the graph as training records it, with nn.Sequential's fused
ops (BatchNorm2d -> ReLU -> MaxPool2d as one node); by default every module is its own node.
"""

import argparse
import os
import sys

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import tinyconv  # noqa: E402
from tinyconv import nn  # noqa: E402
from tinyconv.models import SEED_NETWORKS  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import positive_int  # noqa: E402


def one_batch(batch_size, data_dir):
    """A real Fashion-MNIST batch when the data is there, else random images (same shapes)."""
    from tinyconv.data import DataError, FashionMNIST
    try:
        test = FashionMNIST(root=data_dir, train=False)
        images = np.asarray(test.data[:batch_size], dtype=np.float32) / 255.0
        labels = np.asarray(test.targets[:batch_size], dtype=np.int64)
    except (DataError, OSError):
        rng = np.random.default_rng(0)
        images = rng.random((batch_size, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, batch_size)
    x = tinyconv.from_numpy(((images - 0.5) / 0.5).reshape(batch_size, 1, 28, 28))
    return x, tinyconv.from_numpy(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SEED_NETWORKS), default="fashioncnn")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--out", default=os.path.join("runs", "graph", "fashioncnn_step.png"),
                        help="picture to write (.png, .svg or .pdf); the .dot goes beside it")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--fused", action="store_true",
                        help="keep nn.Sequential's fused ops (one node for BN -> ReLU -> pool)")
    args = parser.parse_args(argv)
    nn.set_fusion(args.fused)

    tinyconv.manual_seed(0)
    ctor, _ = SEED_NETWORKS[args.model]
    model = ctor()
    model.train()
    images, labels = one_batch(args.batch_size, args.data_dir)
    loss = nn.CrossEntropyLoss()(model(images), labels)

    # Buffers too, so that batch norm's running statistics are named rather than "input".
    named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    dot = tinyconv.viz.graph(loss, params=named)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    drawn = tinyconv.viz.render(dot, args.out)
    print(f"loss {loss.item():.4f}; graph of {dot.count(' -> ')} edges written to "
          f"{os.path.splitext(args.out)[0]}.dot" + (f" and {drawn}" if drawn else ""))


if __name__ == "__main__":
    main()
