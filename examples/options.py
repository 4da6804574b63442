"""The examples' command line: the argparse option types, the shared options, and ``fail``.

Every option is checked by its argparse ``type``, so that a bad value stops the script at once,
before anything is read, trained or written: exit status 2 and one line,
"fashion.py: error: argument --lr: expected a positive number, got '-1'". Checks that need more
than one option, or a file, stop with ``fail``: one line, "error: ...", and the same status.

Part of what common.py shares; import it from there (common.py prepares the process first).
"""

from __future__ import annotations

import argparse
import math
import re
import sys


def _parse_number(text, kind, expected):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _bounded(text, kind, expected, ok):
    """``text`` as ``kind`` when ``ok(value)``, else argparse's error "expected ..., got ..."."""
    value = _parse_number(text, kind, expected)
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _bounded(text, int, "a positive integer", lambda v: v >= 1)


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    return _bounded(text, int, "an integer >= 0", lambda v: v >= 0)


def positive_float(text):
    """argparse type: a finite number > 0."""
    return _bounded(text, float, "a positive number", lambda v: v > 0)


def nonnegative_float(text):
    """argparse type: a finite number >= 0."""
    return _bounded(text, float, "a number >= 0", lambda v: v >= 0)


def thread_count(text):
    """argparse type: 1 .. the number of threads numba can run here (its CPU count).

    More is refused rather than quietly lowered: a run that reports its speed must run with the
    threads it says it ran with.
    """
    import numba

    value = positive_int(text)
    limit = numba.config.NUMBA_NUM_THREADS
    if value > limit:
        raise argparse.ArgumentTypeError(f"at most {limit} on this machine (numba's thread pool "
                                         f"has {limit} threads), got {value}")
    return value


def device_name(text):
    """argparse type: cpu, cuda, cuda:N or mps (what torch.device accepts for a CPU or GPU)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def fail(message, status=2):
    """Stop with one line on stderr, ``error: <message>``, and exit status ``status``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def one_line(exc):
    """An exception's message on one line (torch's load_state_dict errors span several)."""
    return " ".join(str(exc).split())


DEFAULT_LR, DEFAULT_MOMENTUM = 1e-3, 0.9


def add_common_args(parser: argparse.ArgumentParser, default_epochs: int, models: list[str]):
    parser.add_argument("--backend", choices=["tinyconv", "torch"], default="tinyconv",
                        help="framework to train with (default: tinyconv)")
    parser.add_argument("--model", choices=models, default=models[0])
    parser.add_argument("--epochs", type=positive_int, default=default_epochs,
                        help=f"total epochs to train, counted from the first; a resumed run "
                             f"continues up to this number (default: {default_epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--test-batch-size", type=positive_int, default=1000)
    parser.add_argument("--lr", type=positive_float, default=None,
                        help=f"learning rate (default: {DEFAULT_LR:g}; with --resume the "
                             f"checkpoint's, and a different --lr is applied from the next "
                             f"epoch on)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--momentum", type=nonnegative_float, default=None,
                        help=f"SGD momentum (default: {DEFAULT_MOMENTUM:g}; with --resume the "
                             f"checkpoint's)")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="data root holding <root>/FashionMNIST/raw and <root>/MNIST/raw "
                             "(default: $TINYCONV_DATA, else ./data)")
    parser.add_argument("--limit-train", type=positive_int, default=None, metavar="N",
                        help="train on a random subset of N images (quick runs; default: all)")
    parser.add_argument("--limit-test", type=positive_int, default=None, metavar="N",
                        help="evaluate on the first N test images only (quick runs; default: all)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: runs/<model>-<backend>); a folder holding "
                             "a previous run is refused unless --overwrite, or --resume of its "
                             "checkpoint.npz")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous run in --out: its checkpoint.npz, best.npz, "
                             "metrics.json and plots are deleted before training starts")
    parser.add_argument("--device", type=device_name, default=None,
                        help="torch backend: cuda or cpu (default: cuda when available)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", default=None, metavar="CKPT",
                       help="continue training from a checkpoint written by this script (same "
                            "--model, --optimizer, --scheduler and --augment)")
    start.add_argument("--evaluate", default=None, metavar="CKPT",
                       help="only evaluate a checkpoint (from either backend) on the test set; "
                            "writes nothing")
    parser.add_argument("--augment", action="store_true",
                        help="random augmentation of the training images (see the example)")
    parser.add_argument("--scheduler", choices=["none", "cosine", "step"], default="none",
                        help="learning-rate schedule, stepped once per epoch (cosine: "
                             "CosineAnnealingLR(T_max=epochs); step: x0.1 every --step-size)")
    parser.add_argument("--step-size", type=positive_int, default=5,
                        help="epochs between StepLR decays")
    parser.add_argument("--export-onnx", default=None, metavar="PATH",
                        help="after training, export the model to ONNX (needs: pip install "
                             "'.[onnx]')")
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="CPU threads (numba and torch), at most the machine's CPU count; "
                             "default: all cores")
