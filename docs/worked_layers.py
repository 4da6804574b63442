"""Worked examples for linear.md, relu.md, dropout.md, pooling.md, sgd-momentum.md and fusion.md.

Each public function returns the text of one ``<!-- example: NAME -->`` block; they are
registered in docs/worked_examples.py (``EXAMPLES``), which writes the pages and which
``tests/test_docs.py`` compares with them. Every number comes from tinyconv's own code.
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np

import tinyconv
from tinyconv import nn
from tinyconv.autograd import _topological_order
from tinyconv.nn import functional as F


def fmt(a, indent=""):
    """An array as NumPy prints it, with numbers in %g form (1 rather than 1.); every line
    after ``indent``. (The one definition: worked_examples.py and worked_winograd.py use it.)"""
    a = np.asarray(a)
    one = lambda v: f"{v:.6g}" if v != 0 else "0"  # noqa: E731  (no "-0")
    width = max((len(one(v)) for v in a.flat), default=1) if a.ndim >= 2 else 0
    text = np.array2string(a, max_line_width=100, separator=" ",
                           formatter={"float_kind": lambda v: one(v).rjust(width)})
    return "\n".join(indent + line for line in text.splitlines())


def _t(a, grad=False):
    return tinyconv.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def central_differences(f, x, h=1e-6):
    """df/dx for a scalar function f of the array x, by (f(x + h) - f(x - h)) / 2h."""
    g = np.zeros_like(x)
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[k] += h
        xm.flat[k] -= h
        g.flat[k] = (f(xp) - f(xm)) / (2 * h)
    return g


# ---------------------------------------------------------------------------------------------
# linear.md


def linear_setup():
    """x (N=2, in=3), W (out=2, in=3), b (2,), and an upstream gradient gy (2, 2)."""
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    W = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    b = np.array([0.1, -0.2])
    gy = np.array([[1.0, -2.0], [0.5, 3.0]])
    return x, W, b, gy


def linear():
    x, W, b, gy = linear_setup()
    tx, tW, tb = _t(x, True), _t(W, True), _t(b, True)
    y = F.linear(tx, tW, tb)
    y.backward(_t(gy))
    loss = lambda x_, W_, b_: (gy * (x_ @ W_.T + b_)).sum()  # noqa: E731  L = sum(gy * y)
    nx = central_differences(lambda v: loss(v, W, b), x)
    nW = central_differences(lambda v: loss(x, v, b), W)
    nb = central_differences(lambda v: loss(x, W, v), b)
    r = lambda v: np.round(v, 6)  # noqa: E731
    return "\n".join([
        "x (N=2, in=3)", fmt(x), "W (out=2, in=3)", fmt(W), f"b = {fmt(b)}", "",
        "y = x @ W.T + b  (2, 2)   F.linear:", fmt(y.detach().numpy()),
        f"by hand equal: {np.array_equal(x @ W.T + b, y.detach().numpy())}", "",
        "gy = dL/dy (L = sum(gy * y))", fmt(gy), "",
        "gx = gy @ W  (2, 3)", fmt(gy @ W),
        "autograd x.grad", fmt(tx.grad.numpy()),
        "central differences", fmt(r(nx)), "",
        "gW = gy.T @ x  (2, 3)", fmt(gy.T @ x),
        "autograd W.grad", fmt(tW.grad.numpy()),
        "central differences", fmt(r(nW)), "",
        f"gb = gy.sum(axis=0) = {fmt(gy.sum(axis=0))}   autograd b.grad = {fmt(tb.grad.numpy())}"
        f"   central differences = {fmt(r(nb))}",
    ])


def linear_init():
    """nn.Linear(3136, 1000) (FashionCNN's fc1): the bound of its uniform initialisation."""
    tinyconv.manual_seed(0)
    fc1 = nn.Linear(64 * 7 * 7, 1000)
    fan_in = fc1.in_features
    gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    bound = math.sqrt(3.0) * gain / math.sqrt(fan_in)
    W, b = fc1.weight.detach().numpy(), fc1.bias.detach().numpy()
    x = np.random.default_rng(0).standard_normal((256, fan_in)).astype(np.float32)
    y = fc1(tinyconv.tensor(x)).detach().numpy()
    return "\n".join([
        f"fc1 = nn.Linear({fan_in}, 1000): fan_in = {fan_in}",
        f"gain = calculate_gain('leaky_relu', sqrt(5)) = sqrt(2 / (1 + 5)) = {gain:.6f}",
        f"bound = sqrt(3) * gain / sqrt(fan_in) = {bound:.6f};  1 / sqrt(fan_in) = "
        f"{1 / math.sqrt(fan_in):.6f}",
        f"max |W| = {np.abs(W).max():.6f}   std(W) = {W.std():.6f}   "
        f"(uniform: bound / sqrt(3) = {bound / math.sqrt(3):.6f})",
        f"max |b| = {np.abs(b).max():.6f}   (bias: uniform in +-1/sqrt(fan_in) too)",
        f"inputs of variance 1 -> var(y) = {y.var():.4f}   "
        f"(fan_in * var(W) + var(b) = {fan_in * W.var() + b.var():.4f}, about 1/3)",
    ])


# ---------------------------------------------------------------------------------------------
# relu.md


def relu():
    inf, nan = np.inf, np.nan
    x = np.array([-2.0, -0.0, 0.0, 0.5, 3.0, nan, inf, -inf])
    gy = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, inf])
    tx = _t(x, True)
    y = F.relu(tx)
    y.backward(_t(gy))
    with np.errstate(invalid="ignore"):
        multiplied = gy * (x > 0)
    return "\n".join([
        f"x            = {fmt(x)}",
        f"relu(x)      = {fmt(y.detach().numpy())}",
        f"gy           = {fmt(gy)}",
        f"x.grad       = {fmt(tx.grad.numpy())}   (gy where not y <= 0, else 0)",
        f"gy * (x > 0) = {fmt(multiplied)}   (a multiply: NaN unit 0, inf * 0 = nan)",
    ])


# ---------------------------------------------------------------------------------------------
# dropout.md


def dropout():
    x = np.arange(1.0, 9.0).reshape(2, 4)
    tinyconv.manual_seed(1)
    tx = _t(x, True)
    y = F.dropout(tx, p=0.5, training=True)
    y.backward(_t(np.ones_like(x)))
    y_eval = F.dropout(_t(x), p=0.5, training=False)
    tinyconv.manual_seed(2)
    big = F.dropout(tinyconv.ones(1_000_000), p=0.25).numpy()
    tinyconv.manual_seed(1)
    x4 = np.arange(1.0, 25.0).reshape(2, 3, 2, 2)
    y4 = F.dropout2d(_t(x4), p=0.5).numpy()
    kept = [[bool(y4[n, c].any()) for c in range(3)] for n in range(2)]
    return "\n".join([
        "x (2, 4)", fmt(x),
        "tinyconv.manual_seed(1); F.dropout(x, p=0.5, training=True): kept values * 1/(1-p) = 2",
        fmt(y.detach().numpy()),
        "x.grad for L = y.sum(): the mask itself (0 or 2)", fmt(tx.grad.numpy()),
        f"training=False returns x unchanged: {np.array_equal(y_eval.numpy(), x)}",
        "",
        f"one million ones, p = 0.25: {np.count_nonzero(big == 0)} zeros, the rest "
        f"{fmt(np.unique(big[big != 0]))}; mean = {big.mean():.4f}  (expected 1)",
        "",
        "tinyconv.manual_seed(1); F.dropout2d(x, p=0.5) on x = 1..24 as (N=2, C=3, H=2, W=2):",
        f"one draw per (sample, channel); kept: {kept}",
        fmt(y4),
    ])


# ---------------------------------------------------------------------------------------------
# pooling.md


def avg_pool():
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    lines = ["x[0, 0]", fmt(x[0, 0]), ""]
    for kw in (dict(count_include_pad=True), dict(count_include_pad=False),
               dict(count_include_pad=False, ceil_mode=True)):
        y = F.avg_pool2d(_t(x), 3, stride=2, padding=1, **kw).numpy()
        args = ", ".join(f"{k}={v}" for k, v in kw.items())
        lines += [f"avg_pool2d(x, 3, stride=2, padding=1, {args})  {tuple(y.shape[2:])}",
                  fmt(y[0, 0])]
    tx = _t(x, True)
    F.avg_pool2d(tx, 2, stride=1).sum().backward()
    lines += ["", "avg_pool2d(x, 2, stride=1).sum(): each window sends 1/4 to each of its "
              "4 pixels; x.grad =", fmt(tx.grad.numpy()[0, 0])]
    return "\n".join(lines)


def adaptive_pool():
    from tinyconv.ops.pool import adaptive_bins

    x = np.arange(1.0, 26.0).reshape(1, 1, 5, 5)
    tx = _t(x, True)
    y = F.adaptive_avg_pool2d(tx, 3)
    y.sum().backward()
    bins = adaptive_bins(5, 3)
    return "\n".join([
        "x[0, 0] (5 x 5)", fmt(x[0, 0]),
        f"adaptive_bins(5, 3) = {bins}   [floor(i*5/3), ceil((i+1)*5/3)): rows 1 and 3 are in "
        "two windows", "",
        "adaptive_avg_pool2d(x, 3)", fmt(y.detach().numpy()[0, 0]),
        "x.grad for L = y.sum(): the sum over the windows containing each pixel of 1/area",
        fmt(tx.grad.numpy()[0, 0]),
    ])


# ---------------------------------------------------------------------------------------------
# sgd-momentum.md


def sgd_grads():
    """Three steps of gradients for a two-element parameter."""
    return [np.array([1.0, -2.0]), np.array([0.5, -1.0]), np.array([-1.0, 0.5])]


def sgd_by_hand(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """torch's SGD written out in float64: yields (t, g, buf, p) after each step."""
    buf = None
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        if momentum != 0:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        yield t, g, buf, p


def _tinyconv_sgd(p0, grads, **hyper):
    param = nn.Parameter(tinyconv.tensor(p0.copy()))
    opt = tinyconv.optim.SGD([param], **hyper)
    for g in grads:
        param.grad = tinyconv.tensor(g)
        opt.step()
    return param.detach().numpy()


def sgd():
    p0 = np.array([1.0, 1.0])
    hyper = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
    lines = ["p = [1 1], lr = 0.1, momentum = 0.9, weight_decay = 0.01; gradients per step:",
             "  " + "   ".join(fmt(g) for g in sgd_grads()), ""]
    for t, _, buf, p in sgd_by_hand(p0, sgd_grads(), **hyper):
        lines.append(f"step {t}: g + wd*p -> buf = {fmt(buf)}   p = {fmt(p)}")
    mine = _tinyconv_sgd(p0, sgd_grads(), **hyper)
    lines.append(f"tinyconv.optim.SGD:                 p = {fmt(mine)}")
    lines.append("")
    for name, extra in (("dampening=0.5", dict(dampening=0.5)),
                        ("nesterov=True", dict(nesterov=True))):
        *_, (_, _, _, p) = sgd_by_hand(p0, sgd_grads(), **hyper, **extra)
        mine = _tinyconv_sgd(p0, sgd_grads(), **hyper, **extra)
        lines.append(f"{name:14s} by hand p = {fmt(p)}   tinyconv p = {fmt(mine)}")
    # "lr inside": v = mu v + lr g; p -= v. Equal to torch's form while lr is constant
    lrs = [0.1, 0.1, 0.01]
    p_torch, p_inside, v, buf = p0.copy(), p0.copy(), np.zeros(2), None
    for lr, g in zip(lrs, sgd_grads(), strict=True):
        buf = g.copy() if buf is None else 0.9 * buf + g
        p_torch = p_torch - lr * buf
        v = 0.9 * v + lr * g
        p_inside = p_inside - v
    lines += ["", "lr = 0.1, 0.1, then 0.01 at step 3 (momentum 0.9, no weight decay):",
              f"  torch's form     v = mu*v + g;    p -= lr*v   ->  p = {fmt(p_torch)}",
              f"  'lr inside' form v = mu*v + lr*g; p -= v      ->  p = {fmt(p_inside)}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# fusion.md


def _fashion_step(fused, batch=8, seed=0):
    """One training step's forward and backward of a seeded FashionCNN; returns (output,
    loss, {name: grad}, {name: buffer}, node names in backward order)."""
    from tinyconv.models import FashionCNN

    previous = nn.fusion_enabled()
    nn.set_fusion(fused)
    try:
        tinyconv.manual_seed(seed)
        model = FashionCNN()
        rng = np.random.default_rng(seed)
        x = tinyconv.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
        t = tinyconv.tensor(rng.integers(0, 10, batch))
        tinyconv.manual_seed(seed + 1)  # the same dropout mask both times
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Dropout2d on fc1's 2-D output warns, as torch
            out = model(x)
        loss = F.cross_entropy(out, t)
        names = [node.name() for node in _topological_order(loss.grad_fn)]
        loss.backward()
        grads = {k: p.grad.numpy() for k, p in model.named_parameters()}
        buffers = {k: b.numpy() for k, b in model.named_buffers() if b.dtype.kind == "f"}
        return out.detach().numpy(), loss.item(), grads, buffers, names
    finally:
        nn.set_fusion(previous)


def fusion_graph():
    *_, fused = _fashion_step(True, batch=2)
    *_, unfused = _fashion_step(False, batch=2)
    return "\n".join([
        f"fusion on  (the default): {len(fused)} nodes, backward order",
        "  " + " -> ".join(fused),
        f"tinyconv.nn.set_fusion(False): {len(unfused)} nodes",
        "  " + " -> ".join(unfused),
    ]).replace(" -> ", "\n  -> ")


NOISE = 1e-7  # fusion_equal: below this, a float32 gradient of about 1 is rounding noise


def fusion_equal():
    out_f, loss_f, g_f, b_f, _ = _fashion_step(True)
    out_u, loss_u, g_u, b_u, _ = _fashion_step(False)
    lines = ["FashionCNN, seeded batch of 8, float32, training mode; max |fused - unfused|:",
             f"  output (8, 10)          {np.abs(out_f - out_u).max():.3g}",
             f"  loss                    {abs(loss_f - loss_u):.3g}"]
    for k in g_f:
        diff, largest = np.abs(g_f[k] - g_u[k]).max(), np.abs(g_u[k]).max()
        if diff and largest < NOISE:  # a gradient that is 0 in exact arithmetic: its rounding
            # noise depends on the BLAS kernels of the machine, so only its bound is printed
            text = f"< {NOISE:.0e}   (largest |grad| < {NOISE:.0e}: 0 in exact arithmetic)"
        else:
            text = f"{diff:.3g}" + (f"   (largest |grad| {largest:.3g})" if diff else "")
        lines.append(f"  {k + '.grad':23s} {text}")
    for k in b_f:
        lines.append(f"  {k:23s} {np.abs(b_f[k] - b_u[k]).max():.3g}")
    return "\n".join(lines)


def _nbytes(a):
    return a.nbytes if isinstance(a, np.ndarray) else 0


def layer_traffic(fused, batch=64):
    """FashionCNN's layer1 on a batch: [(node, bytes its forward writes and keeps, bytes of the
    gradients its backward returns)]. Forward: the output plus every array the node keeps for
    its backward that is not one of its inputs or its output (counted once)."""
    from tinyconv.models import FashionCNN

    previous = nn.fusion_enabled()
    nn.set_fusion(fused)
    try:
        tinyconv.manual_seed(0)
        layer1 = FashionCNN().layer1
        rng = np.random.default_rng(0)
        x = tinyconv.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
        y = layer1(x)
        order = _topological_order(y.grad_fn)
        rows, gy = [], {id(y.grad_fn): np.ones(y.shape, dtype=np.float32)}
        for node in order:
            # a node holds its leaf inputs (an InputRef, without values, for the others)
            inputs = {id(t._data) for t in node.inputs if getattr(t, "_data", None) is not None}
            out_bytes = int(np.prod(node.out_shape)) * np.dtype(node.out_dtype).itemsize
            seen, kept = set(), 0
            for a in list(node.ctx.__dict__.values()) + list(getattr(node.ctx, "saved_tensors",
                                                                      ()) or ()):
                for arr in a if isinstance(a, (tuple, list)) else (a,):
                    if (isinstance(arr, np.ndarray) and id(arr) not in inputs
                            and id(arr) not in seen and arr.size > 1024):
                        seen.add(id(arr))
                        kept += arr.nbytes
            grads = node.fn.backward(node.ctx, gy.pop(id(node)))
            grads = grads if isinstance(grads, tuple) else (grads,)
            # strict=False: trailing non-tensor arguments (stride...) may get no gradient
            for parent, g in zip(node.edges, grads, strict=False):
                if parent is not None:
                    gy[id(parent)] = g
            rows.append((node.name(), out_bytes + kept, sum(_nbytes(g) for g in grads)))
        return rows
    finally:
        nn.set_fusion(previous)


def fusion_traffic():
    lines = ["FashionCNN.layer1 on a batch of 64 (1 x 28 x 28 -> 32 x 14 x 14), float32, in MB",
             "(10^6 bytes). forward: the arrays each node writes and keeps (its output, what it",
             "saves for backward); backward: the gradients it hands to the next node (the image",
             "needs none). Temporaries freed inside a node are not counted.", ""]
    totals = {}
    for fused in (True, False):
        rows = layer_traffic(fused)
        lines.append("fused" if fused else "unfused (set_fusion(False))")
        for name, fwd, bwd in rows:
            lines.append(f"  {name:38s} forward {fwd / 1e6:7.2f}   backward {bwd / 1e6:7.2f}")
        totals[fused] = (sum(r[1] for r in rows), sum(r[2] for r in rows))
        lines.append(f"  {'total':38s} forward {totals[fused][0] / 1e6:7.2f}   backward "
                     f"{totals[fused][1] / 1e6:7.2f}")
    saved = (totals[False][0] + totals[False][1]) - (totals[True][0] + totals[True][1])
    lines += ["", f"fusion writes {saved / 1e6:.2f} MB less per step in this layer "
              f"({saved / (totals[False][0] + totals[False][1]):.0%})"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the reading guide: which tinyconv functions one training step calls

_PKG = os.path.dirname(os.path.abspath(tinyconv.__file__))
# the thread count's look at the machine's load (tinyconv/_load.py): left out with all it calls,
# which depends on the time since its last look
_LOAD = os.path.join(_PKG, "_load.py")
# helpers that only check arguments or do bookkeeping: left out of the trace to keep it readable
_QUIET = ("_check", "_pair", "_same_dtype", "__getattr__", "_has_hooks", "_wrap", "_root",
          "_saved_versions", "_entry", "_share_version", "_shape_arg", "_axis", "_flat", "_pre",
          "_unpatched", "_tiling_pool", "_is_same_conv", "__init__", "__enter__", "__exit__",
          "unbroadcast", "_collect", "_as_ncl", "_use_loops", "_softmax_dim", "_stats_args",
          "_batch_norm_args", "affine_or_default", "conv_out_size", "output_size",
          "_conv2d_args", "_pool_geometry", "_batch_norm_fits", "_pool_and_relu", "_vector")
_PROPERTIES = {"ndim", "dtype", "numel", "shape", "requires_grad", "size", "is_leaf", "data",
               "grad", "grad_fn", "dim", "device", "training"}


def _qualname(code, module_globals):
    """``Class.method`` or ``function`` for a code object (Python 3.11 knows it; on 3.10 the
    classes of the function's module are searched for it)."""
    if hasattr(code, "co_qualname"):
        return code.co_qualname
    for obj in list(module_globals.values()):
        if isinstance(obj, type):
            for attr, value in vars(obj).items():  # methods, static/class methods, properties
                for func in (value, getattr(value, "__func__", None),
                             getattr(value, "fget", None), getattr(value, "fset", None)):
                    if getattr(func, "__code__", None) is code:
                        return f"{obj.__qualname__}.{attr}"
    return code.co_name


def trace_calls(fn):
    """(depth, file, function) of every tinyconv function ``fn()`` calls, nested as called,
    from ``sys.setprofile``; argument checks and bookkeeping helpers are left out."""
    rows, stack = [], []
    top = os.path.dirname(_PKG)

    def profile(frame, event, arg):
        code = frame.f_code
        if not code.co_filename.startswith(_PKG) or code.co_filename == _LOAD:
            return
        if event == "call":
            name = _qualname(code, frame.f_globals)
            last = name.rsplit(".", 1)[-1]
            keep = not (last.startswith(_QUIET) or "<" in name or last in _PROPERTIES)
            if keep:
                path = os.path.relpath(code.co_filename, top).replace(os.sep, "/")
                rows.append((sum(stack), path, name))
            stack.append(1 if keep else 0)
        elif event == "return" and stack:
            stack.pop()

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return rows


def _blocks(rows):
    """Split rows into blocks: one call and the calls nested in it."""
    blocks, i = [], 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and rows[j][0] > rows[i][0]:
            j += 1
        blocks.append(rows[i:j])
        i = j
    return blocks


def _compress(rows):
    """The trace as text; a call repeated with identical callees is printed once, with a
    count, at every level."""
    runs = []
    for block in _blocks(rows):
        if runs and runs[-1][0] == block:
            runs[-1][1] += 1
        else:
            runs.append([block, 1])
    lines = []
    for block, count in runs:
        depth, path, name = block[0]
        lines.append("  " * depth + f"{path}: {name}" + (f"   (x{count})" if count > 1 else ""))
        lines += _compress(block[1:])
    return lines


def reading_trace(fused):
    from tinyconv.models import FashionCNN

    previous = nn.fusion_enabled()
    nn.set_fusion(fused)
    try:
        tinyconv.manual_seed(0)
        model = FashionCNN()
        opt = tinyconv.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(0)
        x = tinyconv.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
        t = tinyconv.tensor(rng.integers(0, 10, 64))
        state = {}

        def forward():
            state["loss"] = F.cross_entropy(model(x), t)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(2):  # the second step is traced: every kernel already compiled
                opt.zero_grad()
                rows = trace_calls(forward)
                rows += trace_calls(lambda: state["loss"].backward())
                rows += trace_calls(opt.step)
        return "\n".join(_compress(rows))
    finally:
        nn.set_fusion(previous)


def trace_fused():
    return reading_trace(True)


def trace_unfused():
    return reading_trace(False)


EXAMPLES = {f.__name__: f for f in (linear, linear_init, relu, dropout, avg_pool, adaptive_pool,
                                    sgd, fusion_graph, fusion_equal, fusion_traffic,
                                    trace_fused, trace_unfused)}


# ---------------------------------------------------------------------------------------------
# conv2d-forward.md: what each way of computing a convolution costs, counted (not timed)


def conv_cost():
    """For the cases of benchmarks/naive_vs_im2col.py: multiply-adds, the Python-level loop
    iterations of conv2d_naive, and the memory im2col + GEMM pays instead."""
    import importlib.util

    from tinyconv.kernels.conv import conv_out_size

    path = os.path.join(os.path.dirname(_PKG), "benchmarks", "naive_vs_im2col.py")
    spec = importlib.util.spec_from_file_location("naive_vs_im2col", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    lines = []
    for name, ((N, C, H, W), (OC, _, KH, KW), pad) in bench.CASES.items():
        OH, OW = conv_out_size(H, KH, 1, pad, 1), conv_out_size(W, KW, 1, pad, 1)
        levels = [N, OC, OH, OW, C, KH, KW]  # conv2d_naive's loops, outermost first
        iterations = sum(math.prod(levels[:k + 1]) for k in range(len(levels)))
        macs = math.prod(levels)
        K, P = C * KH * KW, N * OH * OW
        lines += [f"{name}:",
                  f"  multiply-adds N*OC*OH*OW*C*KH*KW = {macs:,}",
                  f"  conv2d_naive: {iterations:,} Python loop iterations, {macs:,} of them "
                  f"one multiply-add each",
                  f"  im2col + GEMM: cols ({K}, {P}) = {K * P * 4:,} bytes in float32 "
                  f"(the input: {N * C * H * W * 4:,}), then one ({OC}, {K}) @ ({K}, {P}) "
                  f"BLAS call"]
    return "\n".join(lines)


EXAMPLES["conv_cost"] = conv_cost
