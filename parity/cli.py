"""``python -m parity compare | lockstep | accuracy``: tinyconv against its PyTorch twin.

Every command builds the seed network with tinyconv (``tinyconv.manual_seed(seed)``), makes its
torch twin with :func:`parity.to_torch` (same weights and buffers), feeds both the same real
batches (Fashion-MNIST for fashioncnn / deepfashioncnn, MNIST for the others, normalised as their
tutorials do) and shares dropout masks between them (:func:`parity.twins.shared_dropout`).

Differences are reported as ``max abs`` = max |tinyconv - torch| and ``rel`` = max abs divided
by max |torch| over the same tensor (a norm-wise relative error: element-wise ratios explode
where values cross zero). Tolerances on ``rel``: float64 1e-9, float32 2e-4 (see ``TOLERANCES``
in compare.py).

``lockstep --dtype float32`` is judged against exact arithmetic, not against torch: two float32
runs drift apart over many steps whatever their code (torch against itself with another thread
count drifts as far), so the reference is a float64 run from the same weights, batches and
masks, and tinyconv-float32 must stay as close to it as torch-float32 does (``FLOAT32_RULE`` in
targets.py).

This file is the command line (its options, and which command runs); the commands live one to a
file: compare.py, lockstep.py (judged by targets.py, written out by report.py) and accuracy.py,
on what harness.py gives them all (the data, the twins, one training step of both).
"""

from __future__ import annotations

import argparse
import math
import sys

from tinyconv.models import SEED_NETWORKS

from .accuracy import accuracy, evaluate
from .compare import TOLERANCES, behind_flips, compare, grad_rows, print_table
from .harness import (
    DATA,
    NumpyBatches,
    as_inputs,
    difference,
    load_dataset,
    loader,
    losses,
    make_twins,
    masks_note,
    optimizer,
    optimizers,
    pick_device,
    to_np,
    train_step,
    weight_drift,
)
from .lockstep import lockstep, lockstep_float32, lockstep_float64, torch_baseline
from .report import plot_lockstep, plot_lockstep_float32
from .targets import FLOAT32_RULE, LOCKSTEP_TARGETS, summarize, summarize_float32

# Everything the commands are made of, under the names it had when it all lived in this file
# (the tests reach it as parity.cli.<name>).
__all__ = [
    "main", "build_parser", "positive_int", "positive_float", "LOCKSTEP_HELP",
    "DATA", "NumpyBatches", "as_inputs", "difference", "load_dataset", "loader", "losses",
    "make_twins", "masks_note", "optimizer", "optimizers", "pick_device", "to_np", "train_step",
    "weight_drift",
    "TOLERANCES", "behind_flips", "compare", "grad_rows", "print_table",
    "lockstep", "lockstep_float32", "lockstep_float64", "torch_baseline",
    "FLOAT32_RULE", "LOCKSTEP_TARGETS", "summarize", "summarize_float32",
    "plot_lockstep", "plot_lockstep_float32",
    "accuracy", "evaluate",
]


def positive_int(text):
    """argparse type: an integer >= 1 (examples/options.py has the same, for the scripts)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


LOCKSTEP_HELP = f"""\
Train the tinyconv network and its torch twin step by step on the same batches, with the same
optimizer and dropout masks.

float64 (the default): the twins against each other; the relative gap between their loss curves
must stay <= {LOCKSTEP_TARGETS['float64']:g} (same formulas; only the order of sums differs).

float32: judged against exact arithmetic. Two float32 runs drift apart over many steps whatever
their code (Adam turns the rounding noise in a gradient that is exactly 0 into steps of size
lr), so no fixed tolerance between tinyconv and torch can hold. The reference is a float64 run
(torch, from the same weights, batches and masks; its tinyconv twin must agree with it to
{LOCKSTEP_TARGETS['float64']:g}). Per step, each float32 run's dev = |loss - loss_float64| /
|loss_float64| is reported, with its weight distance max |w - w_float64|. tinyconv-float32
passes when its largest dev <= max({FLOAT32_RULE['factor']:g} x torch-float32's largest dev, \
{FLOAT32_RULE['floor']:g}): a small factor because
two correct implementations differ only in the order of their roundings, a floor for when torch
happens to stay on the float64 path. Exit status 1 when the target or the rule is not met."""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m parity", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, dtype_default):
        p.add_argument("--model", choices=sorted(SEED_NETWORKS), default="fashioncnn")
        p.add_argument("--dtype", choices=["float32", "float64"], default=dtype_default)
        p.add_argument("--device", default=None,
                       help="torch side: cuda or cpu (default: cuda when available)")
        p.add_argument("--batch-size", type=positive_int, default=64)
        p.add_argument("--data-dir", default=None,
                       help="data root (default: $TINYCONV_DATA, else ./data)")
        p.add_argument("--seed", type=int, default=0,
                       help="initial weights (tinyconv), batch order and dropout masks")

    def training(p):
        p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
        p.add_argument("--lr", type=positive_float, default=1e-3)

    p = sub.add_parser("compare", help="one batch, forward and backward, layer by layer")
    common(p, "float64")
    p = sub.add_parser("lockstep", help="train both twins step by step; loss gap and drift "
                       "(float32: both against a float64 run)", description=LOCKSTEP_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common(p, "float64")
    training(p)
    p.add_argument("--steps", type=positive_int, default=200)
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                   help="also run torch against itself (1 thread vs several) on the same "
                        "batches: how far rounding alone moves two runs apart (default: on in "
                        "float64, off in float32, where torch-float32's distance from float64 "
                        "is the yardstick)")
    p.add_argument("--out", default=None,
                   help="folder for lockstep.json and lockstep.png "
                        "(default runs/parity/lockstep-MODEL-DTYPE)")
    p = sub.add_parser("accuracy", help="train both, then compare test accuracies")
    common(p, "float32")
    training(p)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--limit-train", type=positive_int, default=None, metavar="N",
                   help="train on a random subset of N images")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "baseline", False) is None:
        args.baseline = args.dtype == "float64"
    command = {"compare": compare, "lockstep": lockstep, "accuracy": accuracy}[args.command]
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
