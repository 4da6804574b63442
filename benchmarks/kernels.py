"""Per-kernel timings, tinyconv against PyTorch, at every layer shape of the seed networks.

    python benchmarks/kernels.py                          # every kernel and shape, batch 64
    python benchmarks/kernels.py --only conv2d --rounds 7 --threads 2
    python benchmarks/kernels.py --only fashioncnn        # the layers of one network

The layer shapes are collected, not listed by hand: each network of tinyconv.models.SEED_NETWORKS
runs one forward pass while tinyconv.nn.functional's conv2d, max_pool2d, batch_norm and linear
are temporarily wrapped to record their arguments; shapes that occur in several networks are
timed once. For each shape, float32 at batch 64 (``--batch``):

* conv2d, max_pool2d, batch_norm (train mode), linear, cross_entropy (batch x 10 logits):
  *forward* is one call of the functional op on tensors that require grad, so the graph
  bookkeeping is paid as in training; *backward* is ``out.backward(grad)`` on a graph kept with
  ``retain_graph=True``, giving the gradients of every input (input, weight and bias) at once;
  the ``.grad`` fields are reset to None before each call, as ``zero_grad()`` does.
  The ops are called through the public API, written once for both frameworks
  (``fw.nn.functional.conv2d(...)`` with ``fw`` either ``tinyconv`` or ``torch``).
* im2col and col2im: tinyconv.kernels.conv.im2col / col2im against torch.nn.functional.unfold /
  fold, each in its own native layout: tinyconv's columns are (C*KH*KW, N*OH*OW) (the layout its
  GEMM wants), unfold's are (N, C*KH*KW, OH*OW). No transposition is timed on either side.
  torch's conv2d on CPU does not go through unfold, so these rows compare the copy kernels only.

Before timing, each shape is checked once: both sides must compute the same numbers. Both
frameworks run in this one process in alternating rounds (tinyconv, torch, tinyconv, ...); each
round starts with one untimed call (it absorbs the cost of switching thread pools, see
_common.time_rounds) and then calls the kernel often enough to take about 10 ms. The report
gives the median milliseconds per call and the ratio torch / tinyconv (above 1: tinyconv is
faster). Threads are set equal on both sides, as in throughput.py. Writes JSON and a Markdown
table (``--out``, default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
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
    machine_line,
    markdown_table,
    same_threads,
    time_rounds,
    write_report,
)

import tinyconv  # noqa: E402
from tinyconv import models as tiny_models  # noqa: E402
from tinyconv.kernels.conv import col2im, im2col  # noqa: E402
from tinyconv.nn import functional as TF  # noqa: E402

FRAMEWORKS = {"tinyconv": tinyconv, "torch": torch}
TARGET_ROUND_S = 0.01  # each round repeats a call until it takes about this long
NUM_CLASSES = 10


# ---------------------------------------------------------------------------------------------
# collecting the layer shapes of the seed networks


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


@contextlib.contextmanager
def recording_calls(module, names, calls):
    """Temporarily wrap ``module.<name>`` for each name, appending (name, args, kwargs) to calls."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name, fn):
        def recorder(*args, **kwargs):
            calls.append((name, args, kwargs))
            return fn(*args, **kwargs)
        return recorder

    for name, fn in originals.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def _layer_key(name, args, kwargs):
    """The shape of one recorded call, batch left out: a hashable tuple, or None to skip it."""
    def arg(i, key, default=None):
        return args[i] if len(args) > i else kwargs.get(key, default)

    x = arg(0, "input")
    item = tuple(x.shape[1:])  # one sample's shape
    if name == "conv2d":
        weight = arg(1, "weight")
        return ("conv2d", item, weight.shape[0], tuple(weight.shape[2:]),
                _pair(arg(3, "stride", 1)), _pair(arg(4, "padding", 0)),
                _pair(arg(5, "dilation", 1)))
    if name == "max_pool2d":
        kernel = _pair(arg(1, "kernel_size"))
        stride = arg(2, "stride")
        return ("max_pool2d", item, kernel, _pair(stride) if stride else kernel,
                _pair(arg(3, "padding", 0)))
    if name == "batch_norm":
        return ("batch_norm", item) if arg(5, "training", False) else None
    if name == "linear":
        weight = arg(1, "weight")
        return ("linear", item[-1], weight.shape[0])
    return None


def collect_layer_shapes():
    """{layer key: [names of the seed networks that use it]}, in order of first appearance."""
    shapes = {}
    for net_name, (constructor, input_shape) in tiny_models.SEED_NETWORKS.items():
        model = constructor()
        model.train()  # batch_norm records its training-mode shape
        calls = []
        # fusion off: nn.Sequential would run BatchNorm2d -> ReLU -> MaxPool2d as one op and
        # bypass the functions recorded here (the fused op has rows of its own)
        was_fusing = tinyconv.nn.fusion_enabled()
        tinyconv.nn.set_fusion(False)
        try:
            with recording_calls(TF, ("conv2d", "max_pool2d", "batch_norm", "linear"), calls):
                with tinyconv.no_grad():
                    model(tinyconv.zeros(2, *input_shape))
        finally:
            tinyconv.nn.set_fusion(was_fusing)
        for call in calls:
            key = _layer_key(*call)
            if key is not None:
                users = shapes.setdefault(key, [])
                if net_name not in users:
                    users.append(net_name)
    return shapes


def _size(shape):
    return "x".join(str(s) for s in shape)


def _short(pair):
    """(1, 1) -> '1', (2, 1) -> '2x1'."""
    return str(pair[0]) if pair[0] == pair[1] else _size(pair)


def describe(key):
    """A short readable label of a layer key, e.g. '32x14x14 -> 64, k3x3 s1 p1'."""
    kind = key[0]
    if kind == "conv2d":
        _, item, out_channels, kernel, stride, padding, dilation = key
        text = (f"{_size(item)} -> {out_channels}, k{_size(kernel)} s{_short(stride)} "
                f"p{_short(padding)}")
        return text + (f" d{_short(dilation)}" if dilation != (1, 1) else "")
    if kind == "max_pool2d":
        _, item, kernel, stride, padding = key
        return f"{_size(item)}, k{_size(kernel)} s{_short(stride)} p{_short(padding)}"
    if kind in ("batch_norm", "bn+relu+maxpool"):
        return _size(key[1])
    if kind == "linear":
        return f"{key[1]} -> {key[2]}"
    return str(key)


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


def bn_relu_pool_op(key, batch, rng):
    """nn.Sequential(BatchNorm2d, ReLU, MaxPool2d(2, 2)): one fused op in tinyconv, three in
    torch (train mode)."""
    item = key[1]
    arrays = [rng.standard_normal((batch, *item), dtype=np.float32)]

    def build(fw):
        (x,) = _leaves(fw, arrays)
        block = fw.nn.Sequential(fw.nn.BatchNorm2d(item[0]), fw.nn.ReLU(),
                                 fw.nn.MaxPool2d(2, 2))
        return (lambda: block(x)), [x, *block.parameters()]
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


def check_same(name, tiny_out, torch_out, tol=1e-3):
    a, b = np.asarray(tiny_out), np.asarray(torch_out)
    if a.shape != b.shape or not np.allclose(a, b, rtol=tol, atol=tol):
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


def time_pair(fns, rounds):
    """{'tinyconv': ms, 'torch': ms, 'repeat': n}: median milliseconds per call of each side."""
    repeat = auto_repeat(fns)
    medians = time_rounds(fns, rounds, repeat, settle=True)
    return {side: 1e3 * seconds for side, seconds in medians.items()} | {"repeat": repeat}


def bench_op(label, build, rounds, want):
    """Forward and backward timings of one op; want: which of 'forward'/'backward' to run."""
    forward, leaves, outputs = {}, {}, {}
    for side, fw in FRAMEWORKS.items():
        forward[side], leaves[side] = build(fw)
        outputs[side] = forward[side]()
    check_same(label, _as_numpy(outputs["tinyconv"]), _as_numpy(outputs["torch"]))
    results = {}
    if "forward" in want:
        results["forward"] = time_pair(forward, rounds)
    if "backward" in want:
        grad = np.random.default_rng(1).standard_normal(tuple(outputs["torch"].shape),
                                                        dtype=np.float32)
        backward = {side: _backward_fn(FRAMEWORKS[side], outputs[side], leaves[side], grad)
                    for side in FRAMEWORKS}
        results["backward"] = time_pair(backward, rounds)
    return results


def _backward_fn(fw, out, leaves, grad):
    gradient = None if out.dim() == 0 else fw.tensor(grad)

    def backward():
        for leaf in leaves:
            leaf.grad = None  # as zero_grad(): every call computes fresh gradients
        out.backward(gradient, retain_graph=True)
    return backward


def bench_im2col(key, batch, rounds, want):
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
            "torch": lambda: unfold(xt, (kh, kw), dilation, padding, stride)}, rounds)
    if "col2im" in want:
        size = item[1:]
        check_same("col2im", col2im(cols, x.shape, kh, kw, stride, padding, dilation),
                   fold(cols_t, size, (kh, kw), dilation, padding, stride).numpy())
        results["col2im"] = time_pair({
            "tinyconv": lambda: col2im(cols, x.shape, kh, kw, stride, padding, dilation),
            "torch": lambda: fold(cols_t, size, (kh, kw), dilation, padding, stride)}, rounds)
    return results


# ---------------------------------------------------------------------------------------------
# the list of everything to time


# the table groups the rows by kernel, in this order (shapes in order of first appearance)
TABLE_ORDER = {"conv2d": 0, "im2col": 1, "col2im": 1, "max_pool2d": 2, "batch_norm": 3,
               "bn+relu+maxpool": 4, "linear": 5, "cross_entropy": 6}
OPS = {"conv2d": conv2d_op, "max_pool2d": max_pool2d_op, "batch_norm": batch_norm_op,
       "bn+relu+maxpool": bn_relu_pool_op, "linear": linear_op,
       "cross_entropy": cross_entropy_op}


def benchmark_items(batch):
    """[(kernel name, shape label, networks, layer key)] for every kernel and shape."""
    items = []
    for key, networks in collect_layer_shapes().items():
        kind, shape = key[0], describe(key)
        parts = ["forward", "backward"] + (["im2col", "col2im"] if kind == "conv2d" else [])
        items += [(f"{kind} {part}" if part in ("forward", "backward") else part, shape,
                   networks, key) for part in parts]
        if kind == "batch_norm" and key[1][1] % 2 == 0 and key[1][2] % 2 == 0:
            # FashionCNN's BatchNorm2d is followed by ReLU and MaxPool2d(2, 2): fused in tinyconv
            fused_key = ("bn+relu+maxpool", key[1])
            items += [(f"bn+relu+maxpool {part}", shape, networks, fused_key)
                      for part in ("forward", "backward")]
    shape = f"{batch}x{NUM_CLASSES} logits"
    items += [(f"cross_entropy {part}", shape, ["all"], ("cross_entropy",))
              for part in ("forward", "backward")]
    return sorted(items, key=lambda item: TABLE_ORDER[item[0].split()[0]])  # stable: by kind


def run(items, batch, rounds):
    """Time the items; the ops of one shape share their tensors. Returns the table rows."""
    rows = []
    by_key = {}
    for kernel, shape, networks, key in items:
        by_key.setdefault(key, []).append((kernel, shape, networks))
    for key, entries in by_key.items():
        want = [kernel.split()[-1] for kernel, _, _ in entries]  # forward/backward/im2col/col2im
        if key[0] == "conv2d" and ({"im2col", "col2im"} & set(want)):
            results = bench_im2col(key, batch, rounds, want)
        else:
            results = {}
        if {"forward", "backward"} & set(want):
            build = OPS[key[0]](key, batch, np.random.default_rng(0))
            results |= bench_op(f"{key[0]} {entries[0][1]}", build, rounds, want)
        for kernel, shape, networks in entries:
            timing = results[kernel.split()[-1]]
            row = {"kernel": kernel, "shape": shape, "batch": batch, "networks": networks,
                   "tinyconv_ms": timing["tinyconv"], "torch_ms": timing["torch"],
                   "ratio": timing["torch"] / timing["tinyconv"], "repeat": timing["repeat"]}
            rows.append(row)
            print(f"{kernel:>18} {shape:<28} tinyconv {row['tinyconv_ms']:8.3f} ms  torch "
                  f"{row['torch_ms']:8.3f} ms  ratio {row['ratio']:5.2f}", flush=True)
    return rows


def markdown(rows, info, command):
    lines = [f"Command: `{command}`  ", machine_line(info), "",
             "Median milliseconds per call, float32; ratio = torch / tinyconv (above 1: "
             "tinyconv is faster).", ""]
    lines += markdown_table(
        ["kernel", "shape (one sample)", "batch", "tinyconv ms", "torch ms", "ratio",
         "networks"], "llrrrrl",
        [[r["kernel"], r["shape"], r["batch"], f"{r['tinyconv_ms']:.3f}",
          f"{r['torch_ms']:.3f}", f"{r['ratio']:.2f}", ", ".join(r["networks"])] for r in rows])
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", default="",
                        help="time only the items whose kernel name, shape or network names "
                             "contain this text, e.g. 'conv2d backward', 'im2col', '32x14x14', "
                             "'convmodule'")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    items = [(kernel, shape, networks, key)
             for kernel, shape, networks, key in benchmark_items(args.batch)
             if args.only.lower() in f"{kernel} {shape} {' '.join(networks)}".lower()]
    if not items:
        parser.error(f"--only {args.only!r} matches no kernel")
    info = machine_info(args.threads)
    with same_threads(args.threads):
        rows = run(items, args.batch, args.rounds)
    command = command_line("kernels.py", argv)
    write_report(args.out, "kernels", info, command, rows, markdown(rows, info, command))
    return rows


if __name__ == "__main__":
    main()
