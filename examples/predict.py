"""Classify your own pictures with a trained checkpoint (or an exported ONNX model).

    python examples/predict.py --checkpoint runs/fashioncnn-tinyconv/checkpoint.npz shoe.jpg
    python examples/predict.py --onnx fashioncnn.onnx shoe.jpg bag.png     # via onnxruntime
    python examples/predict.py --checkpoint CKPT --no-invert test_image.png

Each picture is made to look like a Fashion-MNIST image: grey, a light object on a dark ground
(a photo on a white background is inverted; the output says so; --no-invert turns this off),
the object cropped, scaled so its longer side is 28 pixels and centred on a 28x28 canvas (a
picture that already is 28x28 is used as it is), then normalized as in training. Prints the
top-3 classes with their probabilities. The checkpoint may come from either backend.
"""

import argparse
import os
import sys
import warnings

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import tinyconv  # noqa: E402
from tinyconv.data import MNIST, FashionMNIST  # noqa: E402
from tinyconv.models import SEED_NETWORKS  # noqa: E402

# FashionCNN applies Dropout2d to a 2-D tensor, as the tutorial does (see examples/common.py).
warnings.filterwarnings("ignore", message=".*dropout2d.*")

# The normalization each example script trains with: (mean, std) and the class names.
FASHION = ((0.5, 0.5), FashionMNIST.classes)
DIGITS = ((0.1307, 0.3081), MNIST.classes)
DATASET_OF = {"fashioncnn": FASHION, "deepfashioncnn": FASHION, "convmodule": DIGITS,
              "fc2layer": DIGITS, "cnn": DIGITS}


def positive_int(text):
    """argparse type: an integer >= 1 (as in examples/common.py, which this script does not
    import: it runs without the training scripts' plumbing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_image(path):
    """The picture at ``path`` as a float array (H, W) of grey levels 0..255."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        fail("reading pictures needs Pillow: pip install Pillow (or pip install -e '.[examples]')")
    if not os.path.isfile(path):
        fail(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "P"):
                # A transparent background counts as white, like a product photo's.
                rgba = img.convert("RGBA")
                ground = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(ground, rgba)
            grey = np.asarray(img.convert("L"), dtype=np.float32)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        fail(f"{path}: not a readable PNG/JPEG picture ({type(exc).__name__}: {exc})")
    if grey.ndim != 2 or min(grey.shape) < 1:
        fail(f"{path}: empty picture")
    return grey


def to_fashion_mnist(grey, invert=True):
    """(28x28 array in 0..1, notes): light object on dark ground, cropped and centred."""
    from PIL import Image

    notes = []
    h, w = grey.shape
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if invert and border.mean() > 127:
        grey = 255.0 - grey
        notes.append("inverted: light background")
    if (h, w) != (28, 28):
        # Crop to the object: pixels clearly above the background level.
        level = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
        mask = grey > level + 0.15 * max(grey.max() - level, 1.0)
        if mask.any():
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            grey = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        grey = np.clip(grey - level, 0, 255)  # the ground becomes black
        ch, cw = grey.shape
        scale = 28.0 / max(ch, cw)
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        small = Image.fromarray(grey.astype(np.uint8)).resize(size, Image.LANCZOS)
        canvas = np.zeros((28, 28), dtype=np.float32)
        top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
        canvas[top:top + size[1], left:left + size[0]] = np.asarray(small, dtype=np.float32)
        grey = canvas
        notes.append(f"cropped {h}x{w} -> 28x28")
    return grey / 255.0, notes


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def load_model(checkpoint, model_name):
    try:
        ckpt = tinyconv.load(checkpoint)
    except (tinyconv.CheckpointError, FileNotFoundError, OSError) as exc:
        fail(str(exc))
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        fail(f"{checkpoint}: a checkpoint without model weights (expected one written by "
             f"examples/fashion.py or examples/mnist.py)")
    name = model_name or ckpt.get("model_name") or "fashioncnn"
    if name not in SEED_NETWORKS:
        fail(f"{checkpoint}: unknown model {name!r}; pass --model")
    model = SEED_NETWORKS[name][0]()
    try:
        model.load_state_dict({k: np.asarray(v) for k, v in ckpt["model"].items()})
    except (tinyconv.ShapeError, TypeError, ValueError) as exc:
        fail(f"{checkpoint}: its weights do not fit {name} ({exc}); pass the right --model")
    model.eval()
    return model, name


def onnx_runner(path):
    try:
        import onnxruntime as ort
    except ImportError:
        fail("--onnx needs onnxruntime: pip install onnxruntime (or pip install -e '.[onnx]')")
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        fail(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})")
    input_name = session.get_inputs()[0].name
    return lambda x: session.run(None, {input_name: x})[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    parser.add_argument("--checkpoint", metavar="CKPT",
                        help="checkpoint.npz written by examples/fashion.py or mnist.py")
    parser.add_argument("--onnx", metavar="MODEL.onnx",
                        help="run this ONNX model with onnxruntime instead of a checkpoint")
    parser.add_argument("--model", choices=sorted(SEED_NETWORKS), default=None,
                        help="the network (default: the checkpoint's, else fashioncnn)")
    parser.add_argument("--no-invert", action="store_true",
                        help="never invert (for pictures that already are light on dark)")
    parser.add_argument("--top", type=positive_int, default=3,
                        help="how many classes to show (3)")
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.onnx:
        parser.error("give --checkpoint CKPT or --onnx MODEL.onnx")

    if args.onnx:
        run = onnx_runner(args.onnx)
        name, how = args.model or "fashioncnn", f"onnxruntime ({args.onnx})"
    else:
        model, name = load_model(args.checkpoint, args.model)
        how = f"tinyconv ({args.checkpoint})"

        def run(x):
            with tinyconv.no_grad():
                return model(tinyconv.from_numpy(x)).numpy()

    (mean, std), classes = DATASET_OF[name]
    pictures, notes = [], []
    for path in args.images:
        image, note = to_fashion_mnist(read_image(path), invert=not args.no_invert)
        pictures.append(image)
        notes.append(note)
    x = ((np.stack(pictures) - mean) / std).astype(np.float32)[:, None]
    probs = softmax(np.asarray(run(x), dtype=np.float64))  # log-probabilities work as well

    print(f"{name} via {how}")
    for path, note, p in zip(args.images, notes, probs, strict=True):
        print(f"{path}" + (f" ({'; '.join(note)})" if note else "") + ":")
        for rank, k in enumerate(np.argsort(-p)[:args.top], 1):
            print(f"  {rank}. {classes[k]:<12} {100 * p[k]:6.2f}%")
    return probs


if __name__ == "__main__":
    main()
