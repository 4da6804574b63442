"""Per-kernel timings, tinyconv against PyTorch, at every layer shape of the seed networks.

    python benchmarks/kernels.py                          # every kernel and shape, batch 64
    python benchmarks/kernels.py --only conv2d --rounds 7 --threads 2
    python benchmarks/kernels.py --networks fashioncnn    # the layers of one network
    python benchmarks/kernels.py --only conv2d --coretype Haswell  # also on Haswell kernels

The layer shapes are collected, not listed by hand: each network (tinyconv.models'
SEED_NETWORKS and COLOUR_NETWORKS, i.e. the five seed networks and the CIFAR-10 LeNet and VGG;
all of them by default, ``--networks`` picks some) runs one training-mode forward pass twice:
with fusion off, while tinyconv.nn.functional's conv2d, max_pool2d, batch_norm and linear are
temporarily wrapped to record their arguments; and with fusion on, as training runs, while
tinyconv.nn.fusion.try_fused is wrapped to record the runs of modules that nn.Sequential computes
as one op. Shapes that occur in several networks are timed once; the networks column names every
network that has the layer. For each shape, float32 at batch 64 (``--batch``):

* conv2d, max_pool2d, batch_norm (train mode), linear, cross_entropy (batch x 10 logits):
  *forward* is one call of the functional op on tensors that require grad, so the graph
  bookkeeping is paid as in training; *backward* is ``out.backward(grad)`` on a graph kept with
  ``retain_graph=True``, giving the gradients of every input (input, weight and bias) at once;
  the ``.grad`` fields are reset to None before each call, as ``zero_grad()`` does.
  The ops are called through the public API, written once for both frameworks
  (``fw.nn.functional.conv2d(...)`` with ``fw`` either ``tinyconv`` or ``torch``).
* the fused ops that training uses (tinyconv/nn/fusion.py): conv+bn+relu+maxpool (FashionCNN's
  layers, VGG's layers before a pooling), conv+maxpool+relu (ConvModule's), conv+relu+maxpool
  (DeepFashionCNN's second conv of each block): an ``nn.Sequential`` of the network's modules,
  with the same weights on both sides, in train mode. tinyconv runs it as one op (checked: the
  output's graph node must be a Function of tinyconv.ops.fused), torch as its modules one by one.
  Forward and backward as above; backward gives the gradients of the input and of every
  parameter. bn+relu+maxpool: the same run without the convolution, at the shapes where the
  networks have it (there it runs inside the conv fusion; this row is the fused epilogue alone).
* im2col and col2im: tinyconv.kernels.conv.im2col / col2im against torch.nn.functional.unfold /
  fold, each in its own native layout: tinyconv's columns are (C*KH*KW, N*OH*OW) (the layout its
  GEMM wants), unfold's are (N, C*KH*KW, OH*OW). No transposition is timed on either side.
  torch's conv2d on CPU does not go through unfold, so these rows compare the copy kernels only.

Before timing, each shape is checked once: both sides must compute the same numbers (the
forward output and, for the backward rows, every gradient). Both frameworks run in this one
process in alternating rounds (tinyconv, torch, tinyconv, ...); each round starts with untimed
calls (they absorb the cost of switching thread pools, see _common.time_rounds) and then calls
the kernel often enough to take about 10 ms. The report gives the median milliseconds per call
and the ratio torch / tinyconv (above 1: tinyconv is faster), and ends with a summary: how many
conv rows (conv2d, and the fused conv ops) reach 1.0, forward and backward, and the worst three.
Threads are set equal on both sides, as in throughput.py. Writes JSON and a Markdown table
(``--out``, default benchmarks/results/).

OpenBLAS kernels: numpy's OpenBLAS runs tinyconv's matrix products (torch does not use it) and
picks its kernels for the CPU when numpy loads it; the report names them (threadpoolctl's
architecture, e.g. SkylakeX). ``--coretype Haswell`` also reruns the tinyconv side in a child
process started with OPENBLAS_CORETYPE=Haswell (read only when numpy loads, so only a fresh
process can change it) and adds two columns: its milliseconds and its ratio against this
process's torch times. The child reports the kernels it actually got (OpenBLAS ignores a name
it does not know), and checks its numbers against torch like the parent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*dropout2d.*")

import _common  # noqa: E402,F401  (first: sets OpenBLAS's thread timeout before numpy loads it)
import numpy as np  # noqa: E402
import torch  # noqa: E402  (imported before tinyconv: neither changes the other's threads)
from _common import (  # noqa: E402
    DEFAULT_OUT,
    command_line,
    machine_info,
    numpy_blas,
    same_threads,
    time_rounds,
    write_report,
)
from _kernels_report import markdown, summarize  # noqa: E402
from _shapes import NETWORKS, _is_fused, collect_layer_shapes, describe  # noqa: E402

import tinyconv  # noqa: E402
from tinyconv.kernels.conv import col2im, im2col  # noqa: E402

FRAMEWORKS = {"tinyconv": tinyconv, "torch": torch}
TARGET_ROUND_S = 0.01  # each round repeats a call until it takes about this long
NUM_CLASSES = 10


# ---------------------------------------------------------------------------------------------
# the ops, written once for both frameworks (fw is the tinyconv or the torch module)


def _leaves(fw, arrays):
    return [fw.tensor(a, requires_grad=True) for a in arrays]


def conv2d_op(key, batch, rng):
    _, item, out_channels, (kh, kw), stride, padding, dilation = key
    arrays = [rng.standard_normal((batch, *item), dtype=np.float32),
              rng.standard_normal((out_channels, item[0], kh, kw), dtype=np.float32) * 0.1,
              rng.standard_normal(out_channels, dtype=np.float32)]

    def build(fw):
        x, w, b = _leaves(fw, arrays)
        return (lambda: fw.nn.functional.conv2d(x, w, b, stride, padding, dilation)), [x, w, b]
    return build


def max_pool2d_op(key, batch, rng):
    _, item, kernel, stride, padding = key
    arrays = [rng.standard_normal((batch, *item), dtype=np.float32)]

    def build(fw):
        (x,) = _leaves(fw, arrays)
        return (lambda: fw.nn.functional.max_pool2d(x, kernel, stride, padding)), [x]
    return build


def batch_norm_op(key, batch, rng):
    item = key[1]
    channels = item[0]
    arrays = [rng.standard_normal((batch, *item), dtype=np.float32),
              1 + 0.1 * rng.standard_normal(channels, dtype=np.float32),
              0.1 * rng.standard_normal(channels, dtype=np.float32)]

    def build(fw):
        x, gamma, beta = _leaves(fw, arrays)
        running_mean, running_var = fw.zeros(channels), fw.ones(channels)
        return (lambda: fw.nn.functional.batch_norm(x, running_mean, running_var, gamma, beta,
                                                    training=True)), [x, gamma, beta]
    return build


def _module(fw, spec):
    """The module described by a spec of _module_spec, built with framework fw."""
    name, *args = spec
    if name == "Conv2d":
        in_channels, out_channels, kernel, stride, padding, dilation = args
        return fw.nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                            dilation=dilation)
    if name == "BatchNorm2d":
        num_features, eps, momentum = args
        return fw.nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
    if name == "ReLU":
        return fw.nn.ReLU(inplace=args[0])
    return fw.nn.MaxPool2d(2, 2)


def fused_op(key, batch, rng):
    """A run of modules as the network has it, e.g. nn.Sequential(Conv2d, BatchNorm2d, ReLU,
    MaxPool2d(2, 2)) in train mode: one fused op in tinyconv, its modules one by one in torch."""
    _, item, specs = key
    arrays = [rng.standard_normal((batch, *item), dtype=np.float32)]
    if specs[0][0] == "Conv2d":
        _, in_channels, out_channels, kernel, *_ = specs[0]
        arrays += [rng.standard_normal((out_channels, in_channels, *kernel),
                                       dtype=np.float32) * 0.1,
                   rng.standard_normal(out_channels, dtype=np.float32)]

    def build(fw):
        (x,) = _leaves(fw, arrays[:1])
        modules = [_module(fw, spec) for spec in specs]
        if len(arrays) == 3:  # the same convolution weights on both sides
            with fw.no_grad():
                modules[0].weight.copy_(fw.from_numpy(arrays[1]))
                modules[0].bias.copy_(fw.from_numpy(arrays[2]))
        block = fw.nn.Sequential(*modules)
        return (lambda: block(x)), [x, *block.parameters()]
    if specs[0][0] == "Conv2d" and specs[1][0] == "BatchNorm2d":
        # the conv bias's gradient (leaf 2) is zero: batch norm in training subtracts the mean
        build.vanishing = (2,)
    return build


def linear_op(key, batch, rng):
    _, in_features, out_features = key
    arrays = [rng.standard_normal((batch, in_features), dtype=np.float32),
              rng.standard_normal((out_features, in_features), dtype=np.float32) * 0.1,
              rng.standard_normal(out_features, dtype=np.float32)]

    def build(fw):
        x, w, b = _leaves(fw, arrays)
        return (lambda: fw.nn.functional.linear(x, w, b)), [x, w, b]
    return build


def cross_entropy_op(key, batch, rng):
    logits = rng.standard_normal((batch, NUM_CLASSES), dtype=np.float32)
    target = rng.integers(0, NUM_CLASSES, batch)

    def build(fw):
        (x,) = _leaves(fw, [logits])
        y = fw.tensor(target)
        return (lambda: fw.nn.functional.cross_entropy(x, y)), [x]
    return build


# ---------------------------------------------------------------------------------------------
# timing


def _as_numpy(t):
    return t.detach().numpy()


def check_same(name, tiny_out, torch_out, tol=1e-3, scaled=False):
    """Fail unless the two arrays are equal within ``tol`` (relative and absolute). ``scaled``:
    the absolute part scales with the largest value of torch's array (for gradients, float32
    sums of up to ~10^5 terms, whose rounding grows with their size)."""
    a, b = np.asarray(tiny_out), np.asarray(torch_out)
    atol = tol * max(1.0, float(np.abs(b).max(initial=0))) if scaled else tol
    if a.shape != b.shape or not np.allclose(a, b, rtol=tol, atol=atol):
        err = np.abs(a - b).max() if a.shape == b.shape else f"shapes {a.shape} {b.shape}"
        raise AssertionError(f"{name}: tinyconv and torch disagree (max difference {err})")


def auto_repeat(fns, target_s=TARGET_ROUND_S):
    """Calls per round so that the slowest side's round takes about target_s (same for both)."""
    slowest = 0.0
    for fn in fns.values():
        fn()  # first call: compilation, allocation
        start = time.perf_counter()
        fn()
        slowest = max(slowest, time.perf_counter() - start)
    return int(min(1000, max(1, round(target_s / max(slowest, 1e-9)))))


def time_pair(fns, rounds, sides):
    """{side: ms, ..., 'repeat': n}: median milliseconds per call of each side in ``sides``."""
    fns = {side: fn for side, fn in fns.items() if side in sides}
    repeat = auto_repeat(fns)
    medians = time_rounds(fns, rounds, repeat, settle=True)
    return {side: 1e3 * seconds for side, seconds in medians.items()} | {"repeat": repeat}


def bench_op(label, build, rounds, want, sides):
    """Forward and backward timings of one op; want: which of 'forward'/'backward' to run."""
    forward, leaves, outputs = {}, {}, {}
    for side, fw in FRAMEWORKS.items():
        forward[side], leaves[side] = build(fw)
        outputs[side] = forward[side]()
    check_same(label, _as_numpy(outputs["tinyconv"]), _as_numpy(outputs["torch"]))
    if _is_fused(label.split()[0]):
        node = outputs["tinyconv"].grad_fn
        if node is None or node.fn.__module__ != "tinyconv.ops.fused":
            raise AssertionError(f"{label}: tinyconv did not run it as one fused op (its output "
                                 f"comes from {node and node.fn.__name__})")
    results = {}
    if "forward" in want:
        results["forward"] = time_pair(forward, rounds, sides)
    if "backward" in want:
        grad = np.random.default_rng(1).standard_normal(tuple(outputs["torch"].shape),
                                                        dtype=np.float32)
        backward = {side: _backward_fn(FRAMEWORKS[side], outputs[side], leaves[side], grad)
                    for side in FRAMEWORKS}
        for side in FRAMEWORKS:
            backward[side]()
        grads = {side: [_as_numpy(leaf.grad) for leaf in leaves[side]] for side in FRAMEWORKS}
        scale = max(float(np.abs(g).max(initial=0)) for g in grads["torch"])
        for i, (a, b) in enumerate(zip(grads["tinyconv"], grads["torch"], strict=True)):
            if i in getattr(build, "vanishing", ()):
                # zero in exact arithmetic: both must be rounding noise, small against the rest
                for side, g in (("tinyconv", a), ("torch", b)):
                    if np.abs(g).max() > 1e-3 * scale:
                        raise AssertionError(f"{label}: {side}'s gradient of input {i} should "
                                             f"vanish, it reaches {np.abs(g).max()}")
            else:
                check_same(f"{label}, gradient of input {i}", a, b, scaled=True)
        results["backward"] = time_pair(backward, rounds, sides)
    return results


def _backward_fn(fw, out, leaves, grad):
    gradient = None if out.dim() == 0 else fw.tensor(grad)

    def backward():
        for leaf in leaves:
            leaf.grad = None  # as zero_grad(): every call computes fresh gradients
        out.backward(gradient, retain_graph=True)
    return backward


def bench_im2col(key, batch, rounds, want, sides):
    """im2col vs unfold and col2im vs fold, each framework in its native column layout."""
    _, item, _, (kh, kw), stride, padding, dilation = key
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *item), dtype=np.float32)
    xt = torch.from_numpy(x)
    cols = im2col(x, kh, kw, stride, padding, dilation)  # (K, N*L)
    K, NL = cols.shape
    cols_t = torch.from_numpy(np.ascontiguousarray(                          # (N, K, L)
        cols.reshape(K, batch, NL // batch).transpose(1, 0, 2)))
    unfold = torch.nn.functional.unfold
    fold = torch.nn.functional.fold
    results = {}
    if "im2col" in want:
        check_same("im2col", cols, unfold(xt, (kh, kw), dilation, padding, stride).numpy()
                   .transpose(1, 0, 2).reshape(K, NL))
        results["im2col"] = time_pair({
            "tinyconv": lambda: im2col(x, kh, kw, stride, padding, dilation),
            "torch": lambda: unfold(xt, (kh, kw), dilation, padding, stride)}, rounds, sides)
    if "col2im" in want:
        size = item[1:]
        check_same("col2im", col2im(cols, x.shape, kh, kw, stride, padding, dilation),
                   fold(cols_t, size, (kh, kw), dilation, padding, stride).numpy())
        results["col2im"] = time_pair({
            "tinyconv": lambda: col2im(cols, x.shape, kh, kw, stride, padding, dilation),
            "torch": lambda: fold(cols_t, size, (kh, kw), dilation, padding, stride)}, rounds,
            sides)
    return results


# ---------------------------------------------------------------------------------------------
# the list of everything to time


# the table groups the rows by kernel, in this order (shapes in order of first appearance)
TABLE_ORDER = {"conv2d": 0, "conv+bn+relu+maxpool": 1, "conv+maxpool+relu": 2,
               "conv+relu+maxpool": 3, "im2col": 4, "col2im": 4, "max_pool2d": 5,
               "batch_norm": 6, "bn+relu+maxpool": 7, "linear": 8, "cross_entropy": 9}
OPS = {"conv2d": conv2d_op, "max_pool2d": max_pool2d_op, "batch_norm": batch_norm_op,
       "linear": linear_op, "cross_entropy": cross_entropy_op}


def _order(kind):
    return TABLE_ORDER.get(kind, len(TABLE_ORDER))  # a fused run not listed: after the others


def benchmark_items(batch, networks=None):
    """[(kernel name, shape label, networks, layer key)] for every kernel and shape."""
    items = []
    for key, users in collect_layer_shapes(networks).items():
        kind, shape = key[0], describe(key)
        parts = ["forward", "backward"] + (["im2col", "col2im"] if kind == "conv2d" else [])
        items += [(f"{kind} {part}" if part in ("forward", "backward") else part, shape,
                   users, key) for part in parts]
    shape = f"{batch}x{NUM_CLASSES} logits"
    items += [(f"cross_entropy {part}", shape, ["all"], ("cross_entropy",))
              for part in ("forward", "backward")]
    return sorted(items, key=lambda item: _order(item[0].split()[0]))  # stable: by kind


def run(items, batch, rounds, sides=tuple(FRAMEWORKS)):
    """Time the items (on ``sides``: both frameworks, or tinyconv alone); the ops of one shape
    share their tensors. Returns the table rows (torch_ms and ratio None if torch is not timed).
    """
    rows = []
    by_key = {}
    for kernel, shape, networks, key in items:
        by_key.setdefault(key, []).append((kernel, shape, networks))
    for key, entries in by_key.items():
        want = [kernel.split()[-1] for kernel, _, _ in entries]  # forward/backward/im2col/col2im
        if key[0] == "conv2d" and ({"im2col", "col2im"} & set(want)):
            results = bench_im2col(key, batch, rounds, want, sides)
        else:
            results = {}
        if {"forward", "backward"} & set(want):
            build = OPS.get(key[0], fused_op)(key, batch, np.random.default_rng(0))
            results |= bench_op(f"{key[0]} {entries[0][1]}", build, rounds, want, sides)
        for kernel, shape, networks in entries:
            timing = results[kernel.split()[-1]]
            torch_ms = timing.get("torch")
            row = {"kernel": kernel, "shape": shape, "batch": batch, "networks": networks,
                   "tinyconv_ms": timing["tinyconv"], "torch_ms": torch_ms,
                   "ratio": torch_ms / timing["tinyconv"] if torch_ms else None,
                   "repeat": timing["repeat"]}
            rows.append(row)
            against = (f"torch {torch_ms:8.3f} ms  ratio {row['ratio']:5.2f}" if torch_ms
                       else "(tinyconv only)")
            print(f"{kernel:>26} {shape:<40} tinyconv {row['tinyconv_ms']:8.3f} ms  {against}",
                  flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# the same tinyconv timings under other OpenBLAS kernels (--coretype), in a child process


def rerun_tinyconv(args, coretype):
    """Run this script's tinyconv side again in a child with OPENBLAS_CORETYPE=coretype; returns
    the child's {'architecture', 'blas', 'rows'}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.json")
        argv = ["--rounds", str(args.rounds), "--threads", str(args.threads),
                "--batch", str(args.batch), "--only", args.only, "--networks", *args.networks,
                "--tinyconv-only", path]
        print(f"\ntinyconv again with OPENBLAS_CORETYPE={coretype} (child process)", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), *argv], check=True,
                       env=dict(os.environ, OPENBLAS_CORETYPE=coretype))
        with open(path) as f:
            return json.load(f)


def merge_coretype(rows, child):
    """Add the child's tinyconv times to rows (matched by kernel and shape), with their ratios
    against this process's torch times."""
    theirs = {(r["kernel"], r["shape"]): r["tinyconv_ms"] for r in child["rows"]}
    for row in rows:
        ms = theirs[(row["kernel"], row["shape"])]
        row["coretype_tinyconv_ms"] = ms
        row["coretype_ratio"] = row["torch_ms"] / ms


# ---------------------------------------------------------------------------------------------
# the report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS),
                        metavar="NAME",
                        help=f"the networks whose layers are timed (default: all of "
                             f"{', '.join(NETWORKS)})")
    parser.add_argument("--only", default="",
                        help="time only the items whose kernel name, shape or network names "
                             "contain this text, e.g. 'conv2d backward', 'im2col', '32x14x14', "
                             "'convmodule', 'conv+'")
    parser.add_argument("--coretype", metavar="NAME",
                        help="also time the tinyconv side under these OpenBLAS kernels (e.g. "
                             "Haswell), in a child process with OPENBLAS_CORETYPE=NAME")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--tinyconv-only", metavar="PATH", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)

    items = [(kernel, shape, networks, key)
             for kernel, shape, networks, key in benchmark_items(args.batch, args.networks)
             if args.only.lower() in f"{kernel} {shape} {' '.join(networks)}".lower()]
    if not items:
        parser.error(f"--only {args.only!r} matches no kernel of --networks "
                     f"{' '.join(args.networks)}")
    info = machine_info(args.threads)
    info["blas_architecture"] = numpy_blas().get("architecture", "unknown")
    if args.tinyconv_only:
        with same_threads(args.threads):
            rows = run(items, args.batch, args.rounds, sides=("tinyconv",))
        with open(args.tinyconv_only, "w") as f:
            json.dump({"architecture": info["blas_architecture"], "blas": info["blas"],
                       "rows": rows}, f)
        return rows
    with same_threads(args.threads):
        rows = run(items, args.batch, args.rounds)
    coretype = None
    summary = {"default": summarize(rows)}
    if args.coretype:
        child = rerun_tinyconv(args, args.coretype)
        merge_coretype(rows, child)
        coretype = {"requested": args.coretype, "architecture": child["architecture"],
                    "blas": child["blas"]}
        summary["coretype"] = summarize(rows, "coretype_ratio")
    command = command_line("kernels.py", argv)
    write_report(args.out, "kernels", info, command, rows,
                 markdown(rows, info, command, summary, coretype), coretype=coretype,
                 summary=summary)
    return rows


if __name__ == "__main__":
    main()
