"""The numbers printed in docs/*.md, produced by tinyconv's own kernels.

Each public function here returns the text of one block in the Markdown pages, between the
markers ``<!-- example: NAME -->`` and ``<!-- /example -->``. ``tests/test_docs.py`` calls every
function and checks that the page contains exactly that text, so the pages cannot drift from the
code. After changing a kernel or an example, rewrite the blocks with::

    python docs/worked_examples.py --write

and ``python docs/worked_examples.py conv_forward`` prints one block.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import tinyconv  # noqa: E402
from tinyconv.kernels.batchnorm import (  # noqa: E402
    batch_norm_backward_reference,
    batch_norm_forward_reference,
)
from tinyconv.kernels.conv import col2im, im2col  # noqa: E402
from tinyconv.kernels.naive import conv2d_naive, conv2d_naive_backward  # noqa: E402
from tinyconv.kernels.pool import maxpool2d_backward, maxpool2d_forward  # noqa: E402
from tinyconv.nn import functional as F  # noqa: E402

DOCS = os.path.dirname(os.path.abspath(__file__))
if DOCS not in sys.path:  # the other worked_*.py pages live beside this file
    sys.path.insert(0, DOCS)
from worked_layers import fmt  # noqa: E402


def table(m, row_labels, col_labels, width=4):
    """A matrix with labelled rows and columns (for im2col matrices)."""
    lw = max(len(s) for s in row_labels)
    lines = [" " * lw + " |" + "".join(f"{c:>{width}}" for c in col_labels)]
    lines.append("-" * len(lines[0]))
    for label, row in zip(row_labels, m, strict=True):
        lines.append(f"{label:>{lw}} |" + "".join(f"{v:>{width}.6g}" for v in row))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the convolution example: one 4x4 image, one 3x3 kernel, padding 1 (so OH = OW = 4)


def conv_setup():
    """x (1, 1, 4, 4) = 1..16, a Sobel kernel W (1, 1, 3, 3), bias 1, padding 1, float64."""
    x = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)
    W = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64).reshape(1, 1, 3, 3)
    b = np.array([1.0])
    return x, W, b


_ROWS = [f"({c},{i},{j})" for c in range(1) for i in range(3) for j in range(3)]
_COLS = [f"{p}" for p in range(16)]


def conv_forward():
    x, W, b = conv_setup()
    cols = im2col(x, 3, 3, (1, 1), (1, 1), (1, 1))
    W2 = W.reshape(1, -1)
    Y = W2 @ cols
    y = (Y + b[:, None]).reshape(1, 1, 4, 4)
    y_torchlike = F.conv2d(tinyconv.tensor(x), tinyconv.tensor(W), tinyconv.tensor(b),
                           padding=1).numpy()
    y_naive = conv2d_naive(x, W, b, padding=1)
    return "\n".join([
        "x[0, 0]  (N=1, C=1, H=4, W=4)",
        fmt(x[0, 0]),
        "",
        "W[0, 0]  (OC=1, C=1, KH=3, KW=3)",
        fmt(W[0, 0]),
        "",
        "cols = im2col(x, 3, 3, padding=(1, 1))  (C*KH*KW = 9, N*OH*OW = 16)",
        "rows (c,kh,kw), columns p = (n*OH + oh)*OW + ow:",
        table(cols, _ROWS, _COLS),
        "",
        "W.reshape(1, 9) = " + fmt(W2[0]),
        "",
        "Y = W.reshape(1, 9) @ cols  (1, 16)",
        fmt(Y[0]),
        "",
        "y = Y.reshape(1, 1, 4, 4) + b   (b = 1)",
        fmt(y[0, 0]),
        "",
        f"F.conv2d(x, W, b, padding=1) equal: {np.array_equal(y, y_torchlike)}",
        f"conv2d_naive(x, W, b, padding=1) equal: {np.array_equal(y, y_naive)}",
    ])


def conv_backward():
    x, W, b = conv_setup()
    cols = im2col(x, 3, 3, (1, 1), (1, 1), (1, 1))
    W2 = W.reshape(1, -1)
    gy = np.ones((1, 1, 4, 4))  # L = y.sum(), so dL/dy = 1 everywhere
    gY = gy.reshape(1, 16)
    gcols = W2.T @ gY
    gx = col2im(gcols, x.shape, 3, 3, (1, 1), (1, 1), (1, 1))
    gW = (gY @ cols.T).reshape(W.shape)
    gb = gY.sum(axis=1)
    ngx, ngW, ngb = conv2d_naive_backward(gy, x, W, padding=1)
    same = (np.array_equal(gx, ngx) and np.array_equal(gW, ngW) and np.array_equal(gb, ngb))
    return "\n".join([
        "loss L = y.sum(), so gy = dL/dy = 1 everywhere; gY = gy as (OC=1, N*OH*OW=16)",
        fmt(gy[0, 0]),
        "",
        "gcols = W.reshape(1, 9).T @ gY  (9, 16): column p is the kernel times gy at position p",
        table(gcols, _ROWS, _COLS),
        "",
        "gx = col2im(gcols)  (1, 1, 4, 4): each pixel sums the weights that touched it",
        fmt(gx[0, 0]),
        "",
        "gW = gY @ cols.T  (1, 9) -> (1, 1, 3, 3): each weight sums the pixels it touched",
        fmt(gW[0, 0]),
        "",
        f"gb = gY.sum(axis=1) = {fmt(gb)}   (one per output position)",
        "",
        f"conv2d_naive_backward gives the same gx, gW, gb: {same}",
    ])


# ---------------------------------------------------------------------------------------------
# max pooling


def maxpool_backward():
    x = np.array([[1, 3, 2, 1],
                  [4, 2, 0, 5],
                  [1, 8, 6, 2],
                  [7, 0, 3, 3]], dtype=np.float64).reshape(1, 1, 4, 4)
    y, idx = maxpool2d_forward(x, 2, 2, (2, 2), (0, 0), (1, 1), 2, 2)
    gy = np.array([[10, 20], [30, 40]], dtype=np.float64).reshape(1, 1, 2, 2)
    gx = maxpool2d_backward(gy, idx, x.shape)
    # overlapping windows: 2x2, stride 1 -> 3x3 outputs; a pixel can be the maximum of several
    y1, idx1 = maxpool2d_forward(x, 2, 2, (1, 1), (0, 0), (1, 1), 3, 3)
    gy1 = np.ones((1, 1, 3, 3))
    gx1 = maxpool2d_backward(gy1, idx1, x.shape)
    return "\n".join([
        "x[0, 0]",
        fmt(x[0, 0]),
        "",
        "max_pool2d(x, 2, stride=2): y and idx (flat position h*W + w of each maximum)",
        fmt(y[0, 0]),
        fmt(idx[0, 0]),
        "",
        "gy",
        fmt(gy[0, 0]),
        "gx: gy[oh, ow] lands on pixel idx[oh, ow], every other pixel gets 0",
        fmt(gx[0, 0]),
        "",
        "max_pool2d(x, 2, stride=1) (overlapping windows): y, idx",
        fmt(y1[0, 0]),
        fmt(idx1[0, 0]),
        "with gy = 1 everywhere, gx counts how many windows chose each pixel:",
        fmt(gx1[0, 0]),
    ])


# ---------------------------------------------------------------------------------------------
# batch norm


def bn_setup():
    """One channel, M = 4 values, gamma = 2, beta = 0.5, eps = 1e-5, and an upstream gradient."""
    x = np.array([1.0, 2.0, 4.0, 9.0]).reshape(4, 1)
    gamma, beta, eps = np.array([2.0]), np.array([0.5]), 1e-5
    gy = np.array([0.1, -0.2, 0.3, 0.4]).reshape(4, 1)
    return x, gamma, beta, eps, gy


def bn_numeric_gx(x, gamma, beta, eps, gy, h=1e-6):
    """dL/dx by central differences of L = sum(gy * y), y from the forward reference."""
    g = np.zeros_like(x)
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[k] += h
        xm.flat[k] -= h
        Lp = (gy * batch_norm_forward_reference(xp, gamma, beta, eps)[0]).sum()
        Lm = (gy * batch_norm_forward_reference(xm, gamma, beta, eps)[0]).sum()
        g.flat[k] = (Lp - Lm) / (2 * h)
    return g


def batchnorm_backward():
    x, gamma, beta, eps, gy = bn_setup()
    y, xhat, mu, var, invstd = batch_norm_forward_reference(x, gamma, beta, eps)
    gx, ggamma, gbeta = batch_norm_backward_reference(gy, xhat, gamma, invstd)
    M = x.shape[0]
    # the three-term formula, written out again element by element
    by_hand = gamma * invstd / M * (M * gy - gy.sum() - xhat * (gy * xhat).sum())
    numeric = bn_numeric_gx(x, gamma, beta, eps, gy)
    eps_term = (gamma * invstd * ggamma * eps / (var + eps))[0]
    r = lambda v: np.round(v, 6)  # noqa: E731
    return "\n".join([
        f"x = {fmt(x[:, 0])}   gamma = 2, beta = 0.5, eps = 1e-05, M = {M}",
        f"mu = {r(mu[0]):g}   var = {r(var[0]):g}   invstd = 1/sqrt(var + eps) = {r(invstd[0]):g}",
        f"xhat = (x - mu) * invstd = {fmt(r(xhat[:, 0]))}",
        f"y = gamma * xhat + beta  = {fmt(r(y[:, 0]))}",
        "",
        f"gy = {fmt(gy[:, 0])}",
        f"gbeta  = sum(gy)        = {r(gbeta[0]):g}",
        f"ggamma = sum(gy * xhat) = {r(ggamma[0]):g}",
        f"gx = gamma*invstd/M * (M*gy - gbeta - xhat*ggamma) = {fmt(r(gx[:, 0]))}",
        f"the same formula element by element               = {fmt(r(by_hand[:, 0]))}",
        f"central differences of sum(gy * y)                 = {fmt(r(numeric[:, 0]))}",
        "",
        f"sum(gx) = {abs(r(gx.sum())):g}   (shifting x changes nothing after normalization)",
        f"sum(gx * xhat) = {(gx * xhat).sum():.2g}   (0 but for eps: "
        f"= gamma*invstd*ggamma*eps/(var+eps) = {eps_term:.2g})",
    ])


# ---------------------------------------------------------------------------------------------
# cross-entropy


def cross_entropy():
    logits = np.array([[2.0, 1.0, 0.1],
                       [1000.0, 0.0, -1000.0]])
    target = np.array([0, 2])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(logits)
        naive = np.log(e / e.sum(axis=1, keepdims=True))
    m = logits.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    log_p = logits - lse
    loss = -log_p[np.arange(2), target].mean()
    p = np.exp(log_p)
    onehot = np.eye(3)[target]
    grad = (p - onehot) / 2

    x = tinyconv.tensor(logits, requires_grad=True)
    L = F.cross_entropy(x, tinyconv.tensor(target))
    L.backward()
    r = lambda v: np.round(v, 6)  # noqa: E731
    return "\n".join([
        "logits (N=2, C=3)          targets [0, 2]",
        fmt(logits),
        "",
        "naive log(exp(x) / sum(exp(x))): exp(1000) = inf, so inf/inf = nan and log(0) = -inf",
        fmt(naive),
        "",
        "log_softmax = x - m - log(sum(exp(x - m))), m = row max",
        fmt(r(log_p)),
        f"loss = mean of -log_softmax[n, t_n] = {r(loss):g}",
        f"F.cross_entropy                      = {r(L.item()):g}",
        "",
        "gradient (softmax - onehot) / N",
        fmt(r(grad)),
        "tinyconv autograd x.grad",
        fmt(r(x.grad.numpy())),
    ])


# ---------------------------------------------------------------------------------------------
# Adam


def adam_by_hand(p, grads, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam as written in the paper and in torch's docs, in float64: yields (t, m, v, mh, vh, p)."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        yield t, m, v, m_hat, v_hat, p


def adam_grads():
    """Three steps of gradients for a two-element parameter: one large, one tiny."""
    return [np.array([100.0, 0.001]), np.array([80.0, 0.002]), np.array([120.0, -0.001])]


def adam():
    p0 = np.array([1.0, -2.0])
    lines = ["p = [1 -2], lr = 0.001, betas = (0.9, 0.999), eps = 1e-08; gradients per step:",
             "  " + "   ".join(fmt(g) for g in adam_grads()), ""]
    r = lambda v: v  # noqa: E731  (fmt prints 6 significant digits)
    for t, m, v, mh, vh, p in adam_by_hand(p0, adam_grads()):
        lines += [f"step {t}: m = {fmt(r(m))}  v = {fmt(r(v))}",
                  f"        m_hat = m/(1-0.9^{t}) = {fmt(r(mh))}"
                  f"  v_hat = v/(1-0.999^{t}) = {fmt(r(vh))}",
                  f"        p = {fmt(r(p))}"]
    param = tinyconv.nn.Parameter(tinyconv.tensor(p0.copy()))
    opt = tinyconv.optim.Adam([param], lr=1e-3)
    for g in adam_grads():
        param.grad = tinyconv.tensor(g)
        opt.step()
    lines += ["", f"tinyconv.optim.Adam after 3 steps:  p = {fmt(r(param.detach().numpy()))}",
              "each step moves each element by about lr = 0.001, whatever the gradient's size"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the autograd engine (docs/autograd.md)


def autograd_order():
    """f = x * x + x at x = 3: two paths from x to f; the engine's steps, printed as it runs."""
    from tinyconv.autograd.engine import _topological_order

    x = tinyconv.tensor([3.0], dtype=tinyconv.float64, requires_grad=True)
    sq = x * x
    f = sq + x
    names = {id(x): "x", id(sq.grad_fn): "sq"}  # a leaf by itself, sq by the node that made it
    order = _topological_order(f.grad_fn)
    lines = ["x = 3;  sq = x * x;  f = sq + x",
             f"nodes in backward order: {' -> '.join(node.name() for node in order)}"]
    grads, total = {id(f.grad_fn): np.ones(1)}, np.zeros(1)
    for node in order:  # what tinyconv.autograd.backward does, one line per gradient
        gy = grads.pop(id(node))
        for t, parent, g in zip(node.inputs, node.edges, node.fn.backward(node.ctx, gy),
                                strict=False):
            lines.append(f"{node.name()}(gy = {fmt(gy)}) -> gradient {fmt(g)} for "
                         f"{names[id(t if parent is None else parent)]}")
            if parent is None:
                total = total + g
            else:
                grads[id(parent)] = grads.get(id(parent), 0) + g
    f.backward()
    return "\n".join(lines + [f"x.grad = sum of its three gradients = {fmt(total)} = "
                              f"{fmt(x.grad.numpy())}   (d/dx of x^2 + x = 2x + 1)"])


def autograd_broadcast():
    """a (2, 1) + b (3,) broadcasts to (2, 3); each gradient is summed back to its shape."""
    a = tinyconv.tensor([[1.0], [2.0]], dtype=tinyconv.float64, requires_grad=True)
    b = tinyconv.tensor([10.0, 20.0, 30.0], dtype=tinyconv.float64, requires_grad=True)
    y = a + b
    gy = np.arange(1.0, 7.0).reshape(2, 3)
    y.backward(tinyconv.tensor(gy))
    return "\n".join([
        f"a (2, 1) + b (3,) = y {tuple(y.shape)}, upstream gradient gy =",
        fmt(gy, "  "),
        "a was stretched along axis 1: ga = gy summed over axis 1, keepdims",
        fmt(a.grad.numpy(), "  "),
        "b gained axis 0 (and was stretched along it): gb = gy summed over axis 0",
        fmt(b.grad.numpy(), "  "),
    ])


def autograd_inplace():
    """An in-place op recorded in the graph, and one that backward must refuse."""
    x = tinyconv.tensor([1.0, 2.0], dtype=tinyconv.float64, requires_grad=True)
    h = x * 3
    h.mul_(0.5)
    h.sum().backward()
    lines = ["x = [1 2];  h = x * 3;  h.mul_(0.5);  h.sum().backward()",
             f"h = {fmt(h.detach().numpy())}, h.grad_fn = {h.grad_fn.name()}, "
             f"h._version = {h._version}",
             f"x.grad = {fmt(x.grad.numpy())}   (d(1.5 x)/dx)", ""]
    x = tinyconv.tensor([1.0, 2.0], dtype=tinyconv.float64, requires_grad=True)
    y = x.exp()
    y.add_(1)
    try:
        y.sum().backward()
    except RuntimeError as exc:
        message = str(exc).split(" Hint:")[0]
    lines += ["y = x.exp();  y.add_(1);  y.sum().backward()",
              "RuntimeError: " + message.replace(": [", ":\n  [").replace(", is at", ",\n  is at")]
    return "\n".join(lines)


def autograd_hooks():
    """Tensor hooks see (and may change) a gradient; autograd.grad returns one."""
    x = tinyconv.tensor([1.0, -2.0], dtype=tinyconv.float64, requires_grad=True)
    y = x * x
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    x.register_hook(lambda g: g * 10)
    (y * 2).sum().backward()
    x2 = tinyconv.tensor([1.0, -2.0], dtype=tinyconv.float64, requires_grad=True)
    (g,) = tinyconv.autograd.grad((x2 * x2).sum(), x2)
    return "\n".join([
        "x = [1 -2];  y = x * x;  loss = (y * 2).sum()",
        "y.register_hook(record)      # sees dloss/dy",
        "x.register_hook(lambda g: g * 10)   # replaces dloss/dx before it reaches x.grad",
        f"record saw dloss/dy = {fmt(seen[0])}",
        f"x.grad = 10 * 4x = {fmt(x.grad.numpy())}",
        f"tinyconv.autograd.grad((x * x).sum(), x) = {fmt(g.numpy())}   (x.grad untouched: "
        f"{x2.grad})",
    ])



# ---------------------------------------------------------------------------------------------
# docs/your-own-op.md: the page's own code blocks, run in order in one namespace


RUN = re.compile(r"<!-- run: (\w+) -->\n```python\n(.*?)```", re.S)
OWN_OP_PAGE = os.path.join(DOCS, "your-own-op.md")


def own_op_code():
    """{name: source} of every ``<!-- run: name -->`` code block of docs/your-own-op.md."""
    with open(OWN_OP_PAGE, encoding="utf-8") as fh:
        return dict(RUN.findall(fh.read()))


_own_op_cache = {}


def own_op_outputs():
    """{name: what the block printed}, running the page's blocks in order (once per process)."""
    code = own_op_code()
    key = tuple(code.items())
    if key not in _own_op_cache:
        namespace = {"__name__": "your_own_op"}
        outputs = {}
        tinyconv.manual_seed(0)  # the Legendre block draws gradcheck's input
        for name, source in code.items():
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(source, f"docs/your-own-op.md:{name}", "exec"), namespace)
            outputs[name] = buffer.getvalue().rstrip("\n")
        _own_op_cache.clear()
        _own_op_cache[key] = outputs
    return _own_op_cache[key]


def own_op_swish_define():
    return own_op_outputs()["swish_define"]


def own_op_swish_gradcheck():
    return own_op_outputs()["swish_gradcheck"]


def own_op_swish_property():
    return own_op_outputs()["swish_property"]


def own_op_swish_broken():
    return own_op_outputs()["swish_broken"]


def own_op_legendre():
    return own_op_outputs()["legendre"]


EXAMPLES = {f.__name__: f for f in (conv_forward, conv_backward, maxpool_backward,
                                     batchnorm_backward, cross_entropy, adam, autograd_order,
                                     autograd_broadcast, autograd_inplace, autograd_hooks,
                                     own_op_swish_define, own_op_swish_gradcheck,
                                     own_op_swish_property, own_op_swish_broken,
                                     own_op_legendre)}

# the pages linear.md, relu.md, dropout.md, pooling.md, sgd-momentum.md, fusion.md
import worked_layers  # noqa: E402
import worked_winograd  # noqa: E402  (winograd.md)

EXAMPLES.update(worked_layers.EXAMPLES)
EXAMPLES.update(worked_winograd.EXAMPLES)

BLOCK = re.compile(r"(<!-- example: (\w+) -->\n)(.*?)(<!-- /example -->)", re.S)


def render(name):
    """The Markdown between the markers of block ``name``: the text in a fenced block."""
    return "```text\n" + EXAMPLES[name]() + "\n```\n"


def pages():
    return sorted(os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith(".md"))


def rewrite(path):
    """Regenerate every example block of one page; True if the file changed."""
    with open(path, encoding="utf-8") as fh:
        old = fh.read()
    new = BLOCK.sub(lambda mt: mt.group(1) + render(mt.group(2)) + mt.group(4), old)
    if new != old:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(new)
    return new != old


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="blocks to print (default: all)")
    ap.add_argument("--write", action="store_true", help="rewrite the blocks in docs/*.md")
    args = ap.parse_args()
    if args.write:
        for path in pages():
            if rewrite(path):
                print(f"updated {os.path.relpath(path)}")
        return
    for name in args.names or EXAMPLES:
        print(f"<!-- example: {name} -->\n{render(name)}<!-- /example -->\n")


if __name__ == "__main__":
    main()
