"""Winograd F(2x2, 3x3) against im2col + GEMM and PyTorch, at the seed networks' 3x3 layers
and ResNet-18's.

    python benchmarks/winograd.py                    # seed layers at batch 64, ResNet's at 8, 32
    python benchmarks/winograd.py --batch 8 --resnet-batches 8 --rounds 3

For each 3x3, stride-1, padding-1 layer shape of the seed networks (at ``--batch``) and of
ResNet-18 (at each of ``--resnet-batches``), float32:

* forward: ``winograd_conv2d`` (tinyconv/ops/winograd.py) against tinyconv's convolution as it
  runs today, ``F.conv2d`` under ``no_grad`` (im2col + GEMM, in chunks of samples, nothing kept)
  and with a weight that requires grad (the training forward: the whole column matrix is kept
  for backward), and against ``torch.nn.functional.conv2d``;
* input gradient: ``winograd_conv2d_input_grad`` against im2col's gx = col2im(W2ᵀ @ gY) (gY in
  the GEMM's layout, as Conv2d.backward has it), and against torch's gx alone
  (``torch.autograd.grad`` with respect to the input).

"im2col" here is the im2col path itself (``WINOGRAD`` off in tinyconv/ops/conv.py while it is
timed): tinyconv's convolution goes by Winograd where ``uses_winograd`` says so, and the
report's "rule" column says which layers do. A second table splits Winograd's forward time
into its parts (filter transform, input transform, the 16 GEMMs, output transform).

Each side is checked against torch first. Rounds alternate between the sides (see
_common.time_rounds); the report gives median milliseconds per call and torch / Winograd and
im2col / Winograd ratios (above 1: Winograd is faster).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402,F401  (first: sets OpenBLAS's thread timeout before numpy loads it)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import (  # noqa: E402
    DEFAULT_OUT,
    command_line,
    machine_info,
    machine_line,
    markdown_table,
    same_threads,
    time_rounds,
    write_report,
)

import tinyconv  # noqa: E402
from tinyconv.kernels.conv import col2im  # noqa: E402
from tinyconv.kernels.winograd import (  # noqa: E402
    tile_counts,
    winograd_filter_transform,
    winograd_input_transform,
    winograd_output_transform,
)
from tinyconv.nn import functional as F  # noqa: E402
from tinyconv.ops import conv as conv_ops  # noqa: E402
from tinyconv.ops.winograd import (  # noqa: E402
    chunk_samples,
    winograd_conv2d,
    winograd_conv2d_input_grad,
)

# (C, H, W) -> OC: the 3x3 layers of FashionCNN, DeepFashionCNN and ConvModule (padding 1)
SHAPES = [((1, 28, 28), 32), ((32, 28, 28), 32), ((32, 14, 14), 64), ((64, 14, 14), 64)]
# ResNet-18's 3x3 stride-1 layers (224x224 input)
RESNET_SHAPES = [((64, 56, 56), 64), ((128, 28, 28), 128), ((256, 14, 14), 256),
                 ((512, 7, 7), 512)]


def im2col_only(fn):
    """fn with tinyconv's Winograd path switched off while it runs."""
    def run():
        saved, conv_ops.WINOGRAD = conv_ops.WINOGRAD, False
        try:
            return fn()
        finally:
            conv_ops.WINOGRAD = saved
    return run


def layer(batch, item, oc, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *item)).astype(np.float32)
    W = (rng.standard_normal((oc, item[0], 3, 3)) / np.sqrt(9 * item[0])).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    gy = rng.standard_normal((batch, oc, *item[1:])).astype(np.float32)
    return x, W, b, gy


def forward_fns(x, W, b):
    tx, tW, tb = tinyconv.tensor(x), tinyconv.tensor(W), tinyconv.tensor(b)
    tW_grad = tinyconv.tensor(W, requires_grad=True)
    px, pW, pb = torch.tensor(x), torch.tensor(W), torch.tensor(b)

    def im2col_eval():
        with tinyconv.no_grad():
            return F.conv2d(tx, tW, tb, padding=1).numpy()

    return {"winograd": lambda: winograd_conv2d(x, W, b, 1),
            "im2col (no_grad)": im2col_only(im2col_eval),
            "im2col (training)": im2col_only(
                lambda: F.conv2d(tx, tW_grad, tb, padding=1).detach().numpy()),
            "torch": lambda: torch.nn.functional.conv2d(px, pW, pb, padding=1).numpy()}


def input_grad_fns(x, W, gy):
    OC = W.shape[0]
    gY = np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(OC, -1)
    W2T = np.ascontiguousarray(W.reshape(OC, -1).T)
    geometry = (3, 3, (1, 1), (1, 1), (1, 1))
    px, pW, pgy = torch.tensor(x, requires_grad=True), torch.tensor(W), torch.tensor(gy)
    py = torch.nn.functional.conv2d(px, pW, padding=1)
    return {"winograd": lambda: winograd_conv2d_input_grad(gy, W, 1),
            "im2col": lambda: col2im(W2T @ gY, x.shape, *geometry),
            "torch": lambda: torch.autograd.grad(py, px, pgy, retain_graph=True)[0].numpy()}


def parts(x, W, b, rounds, repeat):
    """Median ms of Winograd's forward parts over the batch (its own chunks, as winograd_conv2d
    runs them): filter transform, input transform, the 16 GEMMs, output transform."""
    N, C, H, Wd = x.shape
    OC = W.shape[0]
    T = np.prod(tile_counts(H, Wd))
    k = min(N, chunk_samples(C, OC, T))
    U = winograd_filter_transform(W)
    V = np.empty((16, C, k * T), np.float32)
    M = np.empty((16, OC, k * T), np.float32)
    y = np.empty((k, OC, H, Wd), np.float32)
    fns = {"filter": lambda: winograd_filter_transform(W),
           "input": lambda: winograd_input_transform(x[:k], (1, 1), out=V),
           "gemm": lambda: np.matmul(U, V, out=M),
           "output": lambda: winograd_output_transform(M, b, y)}
    ms = time_rounds(fns, rounds, repeat, settle=True)
    return {name: v * 1e3 * (1 if name == "filter" else N / k) for name, v in ms.items()}


def check(fns, tol):
    """Every side's result equals torch's (float32: to ``tol`` relative to the largest value)."""
    want = fns["torch"]()
    for name, fn in fns.items():
        got = fn()
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < tol, f"{name}: relative error {err:.2e} against torch"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64, help="batch of the seed layers")
    ap.add_argument("--resnet-batches", type=int, nargs="*", default=[8, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5, help="calls per round")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    rows, table_rows, part_rows = [], [], []
    cases = [(args.batch, item, oc) for item, oc in SHAPES]
    cases += [(batch, item, oc) for batch in args.resnet_batches for item, oc in RESNET_SHAPES]
    with same_threads(args.threads):
        for batch, item, oc in cases:
            x, W, b, gy = layer(batch, item, oc)
            shape = f"{'x'.join(map(str, item))} -> {oc}"
            rule = conv_ops.uses_winograd(x.shape, W.shape, (1, 1), (1, 1), (1, 1))
            for pass_name, fns in (("forward", forward_fns(x, W, b)),
                                   ("input grad", input_grad_fns(x, W, gy))):
                check(fns, 1e-5)
                ms = {k: v * 1e3 for k, v in
                      time_rounds(fns, args.rounds, args.repeat, settle=True).items()}
                rows.append({"pass": pass_name, "shape": shape, "batch": batch, "ms": ms,
                             "rule": rule})
                im2col = [k for k in ms if k.startswith("im2col")]
                table_rows.append(
                    [pass_name, shape, str(batch), "winograd" if rule else "im2col",
                     f"{ms['winograd']:.2f}",
                     " / ".join(f"{ms[k]:.2f}" for k in im2col), f"{ms['torch']:.2f}",
                     " / ".join(f"{ms[k] / ms['winograd']:.2f}" for k in im2col),
                     f"{ms['torch'] / ms['winograd']:.2f}"])
                print(shape, batch, pass_name, {k: round(v, 3) for k, v in ms.items()},
                      flush=True)
            if (item, oc) in RESNET_SHAPES:
                p = parts(x, W, b, args.rounds, args.repeat)
                rows.append({"pass": "forward parts", "shape": shape, "batch": batch, "ms": p})
                total = sum(p.values())
                part_rows.append([shape, str(batch)] + [f"{p[k]:.2f}" for k in p]
                                 + [f"{100 * (total - p['gemm']) / total:.0f}%"])
    info = machine_info(args.threads)
    command = command_line("winograd.py", argv)
    header = ["pass", "shape (one sample), k3x3 s1 p1", "batch", "rule", "winograd ms",
              "im2col ms (forward: no_grad / training)", "torch ms",
              "im2col / winograd", "torch / winograd"]
    part_header = ["shape", "batch", "filter transform ms", "input transform ms",
                   "16 GEMMs ms", "output transform ms", "transforms' share"]
    table = "\n".join([f"Command: `{command}`  ", machine_line(info), "",
                       "Median milliseconds per call, float32; ratios above 1: Winograd is "
                       "faster. rule: the path tinyconv's Conv2d takes (tinyconv/ops/conv.py, "
                       "uses_winograd).", "",
                       *markdown_table(header, "llrlrrrrr", table_rows), "",
                       "Winograd's forward by parts (median ms, the whole batch):", "",
                       *markdown_table(part_header, "lrrrrrr", part_rows), ""])
    return write_report(args.out, "winograd", info, command, rows, table)


if __name__ == "__main__":
    main()
