"""What a trained FashionCNN sees: its feature maps through forward hooks, and the pixels its
decision depends on through a gradient hook.

    python examples/feature_maps.py --checkpoint runs/fashioncnn-tinyconv/checkpoint.npz
    python examples/feature_maps.py --train-steps 300          # no checkpoint: train briefly
    python examples/feature_maps.py --checkpoint CKPT --index 7 --out shoe_maps.png

``module.register_forward_hook(hook)`` calls ``hook(module, inputs, output)`` every time the
module runs; here the hooks copy the outputs of the first convolution and of each block's ReLU.
``tensor.register_hook(hook)`` calls ``hook(grad)`` when backward reaches the tensor; on the
input image it gives d(winning logit)/d(pixel), a "saliency map". A module with a hook is never
fused with its neighbours (nn.Sequential would otherwise run conv-BN-ReLU-pool as one op), so
the hooks see exactly what the module computed.

Writes one PNG (refuses to replace an existing file unless --overwrite) and prints, per hooked
layer, the output shape and the share of zero activations.
"""

import argparse
import os
import sys
import tempfile
import warnings

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import tinyconv  # noqa: E402
from tinyconv import nn  # noqa: E402
from tinyconv.data import DataLoader, FashionMNIST, transforms  # noqa: E402
from tinyconv.models import FashionCNN  # noqa: E402

warnings.filterwarnings("ignore", message=".*dropout2d.*")  # FashionCNN's Dropout2d on 2-D input


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got "
                                             f"{text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


positive_int, nonnegative_int = _int_at_least(1), _int_at_least(0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", metavar="CKPT",
                        help="a FashionCNN checkpoint written by examples/fashion.py")
    parser.add_argument("--train-steps", type=positive_int, default=300,
                        help="without --checkpoint: Adam steps of batch 64 to train first (300)")
    parser.add_argument("--data-dir", default=None,
                        help="Fashion-MNIST folder (default: $TINYCONV_DATA or ./data)")
    parser.add_argument("--index", type=nonnegative_int, default=0,
                        help="which test image to show (0)")
    parser.add_argument("--out", default="feature_maps.png", help="the PNG to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def trained_model(args, train_set):
    model = FashionCNN()
    if args.checkpoint:
        try:
            ckpt = tinyconv.load(args.checkpoint)
            model.load_state_dict(ckpt["model"] if "model" in ckpt else ckpt)
        except (tinyconv.CheckpointError, OSError, KeyError, ValueError, TypeError) as exc:
            fail(f"{args.checkpoint}: cannot load FashionCNN weights ({exc})")
        return model
    optimizer = tinyconv.optim.Adam(model.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=args.seed)
    steps = 0
    while steps < args.train_steps:
        for images, labels in loader:
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == args.train_steps:
                break
    print(f"trained FashionCNN for {steps} steps (last batch loss {loss.item():.3f})")
    return model


def look_inside(model, image):
    """Run one image with hooks: (feature maps by layer name, saliency map, logits)."""
    maps = {}

    def keep(name):
        def hook(module, inputs, output):
            maps[name] = output.detach().numpy()[0].copy()
        return hook

    handles = [model.layer1[0].register_forward_hook(keep("layer1 conv")),
               model.layer1[2].register_forward_hook(keep("layer1 ReLU")),
               model.layer2[2].register_forward_hook(keep("layer2 ReLU"))]
    saliency = {}
    x = tinyconv.tensor(image[None], requires_grad=True)

    def keep_gradient(grad):  # returns None: the gradient itself is left as it is
        saliency["input"] = np.abs(grad.numpy()[0, 0])

    x.register_hook(keep_gradient)
    model.eval()
    logits = model(x)
    logits[0, int(logits.argmax())].backward()
    for handle in handles:
        handle.remove()
    return maps, saliency["input"], logits.detach().numpy()[0]


def draw(path, image, maps, saliency, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("input", [image[0]]), ("saliency |d logit / d pixel|", [saliency])]
    rows += [(f"{name} ({m.shape[0]} maps {m.shape[1]}x{m.shape[2]}, first 16)", list(m[:16]))
             for name, m in maps.items()]
    fig, axes = plt.subplots(len(rows), 16, figsize=(16, 1.3 * len(rows) + 0.6))
    for r, (label, panels) in enumerate(rows):
        for c in range(16):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(panels):
                ax.imshow(panels[c], cmap="gray" if r != 1 else "hot")
        axes[r, 0].set_title(label, loc="left", fontsize=9)
    fig.suptitle(title)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None):
    args = parse_args(argv)
    if os.path.exists(args.out) and not args.overwrite:
        fail(f"--out {args.out} exists; pass --overwrite to replace it, or choose another --out")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        fail(f"--out {args.out}: folder {out_dir} does not exist or is not writable")
    tinyconv.manual_seed(args.seed)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])
    train_set = None if args.checkpoint else FashionMNIST(args.data_dir, train=True, transform=tf)
    test_set = FashionMNIST(args.data_dir, train=False, transform=tf)
    if args.index >= len(test_set):
        fail(f"--index {args.index}: the test set has {len(test_set)} images")
    model = trained_model(args, train_set)
    image, label = test_set[args.index]
    maps, saliency, logits = look_inside(model, np.asarray(image, dtype=np.float32))
    predicted = int(np.argmax(logits))
    for name, m in maps.items():
        print(f"{name}: {m.shape[0]} maps of {m.shape[1]}x{m.shape[2]}, "
              f"{100 * np.mean(m == 0):.0f}% zeros")
    title = (f"test image {args.index}: {FashionMNIST.classes[label]}, predicted "
             f"{FashionMNIST.classes[predicted]}")
    print(title)
    draw(args.out, image, maps, saliency, title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
