"""Check every built-in differentiable op of tinyconv against finite differences.

    python examples/check_op.py            # every op and argument set, 2 random inputs each
    python examples/check_op.py --quick    # 1 random input each (what the tests run)

Each row runs ``tinyconv.autograd.gradcheck`` (float64 central differences against the Jacobian
that backward computes, atol 1e-5, rtol 1e-3) on small random float64 inputs and prints:

* op: the function checked, with its arguments;
* inputs: the shapes of its tensor inputs (every one requires grad);
* tries: how many random draws of those inputs were checked;
* worst rel. error: the largest ``|analytical - numerical| / max(|numerical|, 1)`` over every
  entry of every Jacobian: relative for large entries, absolute for small ones.

Ops with kinks (relu, abs, max, max pooling) are checked on normal samples, which lie far
(> eps) from the kinks with probability close to one; dropout is checked with a fixed mask (the
generator is reseeded before each call). The script exits with status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

import tinyconv  # noqa: E402
from tinyconv.autograd.gradcheck import (  # noqa: E402
    GradcheckError,
    analytical_jacobian,
    gradcheck,
    numerical_jacobian,
)
from tinyconv.nn import functional as F  # noqa: E402
from tinyconv.nn import fusion  # noqa: E402


def _bn_stats(C):
    return tinyconv.zeros(C, dtype=tinyconv.float64), tinyconv.ones(C, dtype=tinyconv.float64)


def _dropout(x):
    tinyconv.manual_seed(0)  # the same mask on every call
    return F.dropout(x, p=0.4, training=True)


def _conv(stride, padding, dilation):
    return lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)


def _bn_eval(x, w, b):
    running_mean = tinyconv.tensor(np.array([0.3, -0.2]))
    running_var = tinyconv.tensor(np.array([1.5, 0.7]))
    return F.batch_norm(x, running_mean, running_var, w, b, training=False)


def _fused_conv_pool_relu(x, w, b):
    conv_args = F._conv2d_args(x, w, b, 1, 1, 1, 1)
    return fusion.conv2d_max_pool2d_relu(x, conv_args, w, b)


def _fused_conv_bn_relu_pool(x, w, b, gamma, beta):
    conv_args = F._conv2d_args(x, w, b, 1, 1, 1, 1)
    running_mean, running_var = _bn_stats(w.shape[0])
    return fusion.conv2d_batch_norm_relu_max_pool2d(
        x, conv_args, w, b, (running_mean, running_var, gamma, beta, True, 0.1, 1e-5))


def _fused_bn_relu_pool(x, gamma, beta):
    running_mean, running_var = _bn_stats(x.shape[1])
    return fusion.batch_norm_relu_max_pool2d(x, running_mean, running_var, gamma, beta, True,
                                             0.1, 1e-5)


TARGETS = np.array([2, 0, 1])

# (name, function of the tensor inputs, their shapes, positive inputs?)
def _mul_inplace(a, b):
    y = a * 1  # a non-leaf, so the in-place op is recorded in the graph
    y.mul_(b)
    return y


def _setitem(a, b):
    y = a * 1
    y[0] = b[0] * 2
    return y * a


def _view_mul_inplace(a, b):
    y = a * 1
    y[1:].mul_(b[1:])  # written through the view into y
    return y


def _copy_fill(a, b):
    y = a * 1
    y.copy_(b)
    y[:, 0].fill_(0.5)
    return y * a


CASES = [
    ("a + b (broadcast)", lambda a, b: a + b, [(2, 3), (3,)], False),
    ("a - b", lambda a, b: a - b, [(2, 3), (2, 1)], False),
    ("a * b", lambda a, b: a * b, [(2, 3), (2, 3)], False),
    ("a / b", lambda a, b: a / b, [(2, 3), (3,)], True),
    ("a ** b", lambda a, b: a ** b, [(2, 3), (2, 3)], True),
    ("-a", lambda a: -a, [(4,)], False),
    ("exp", lambda a: a.exp(), [(2, 3)], False),
    ("log", lambda a: a.log(), [(2, 3)], True),
    ("sqrt", lambda a: a.sqrt(), [(2, 3)], True),
    ("abs", lambda a: a.abs(), [(2, 3)], False),
    ("maximum", lambda a, b: tinyconv.maximum(a, b), [(2, 3), (2, 3)], False),
    ("clamp(-0.5, 0.5)", lambda a: a.clamp(-0.5, 0.5), [(2, 3)], False),
    ("where(a > 0, a, b)", lambda a, b: tinyconv.where(a > 0, a, b), [(2, 3), (2, 3)], False),
    ("relu", F.relu, [(2, 3)], False),
    ("sigmoid", F.sigmoid, [(2, 3)], False),
    ("tanh", F.tanh, [(2, 3)], False),
    ("sum()", lambda a: a.sum(), [(2, 3)], False),
    ("sum(dim=1, keepdim)", lambda a: a.sum(1, keepdim=True), [(2, 3, 2)], False),
    ("mean(dim=(0, 2))", lambda a: a.mean((0, 2)), [(2, 3, 2)], False),
    ("max()", lambda a: a.max(), [(2, 3)], False),
    ("max(dim=1).values", lambda a: a.max(1).values, [(2, 3)], False),
    ("min(dim=0).values", lambda a: a.min(0).values, [(2, 3)], False),
    ("matmul (2-D)", lambda a, b: a @ b, [(2, 3), (3, 4)], False),
    ("matmul (batched)", lambda a, b: a @ b, [(2, 2, 3), (3, 2)], False),
    ("linear", F.linear, [(2, 3), (4, 3), (4,)], False),
    ("reshape / permute", lambda a: a.reshape(3, 2).permute(1, 0) * 1, [(2, 3)], False),
    ("getitem a[:, 1:]", lambda a: a[:, 1:], [(2, 3)], False),
    ("expand", lambda a: a.expand(3, 2, 2), [(2, 1)], False),
    ("cat / stack", lambda a, b: tinyconv.stack([tinyconv.cat([a, b]), tinyconv.cat([b, a])]),
     [(2,), (3,)], False),
    ("conv2d stride 1 pad 0", _conv(1, 0, 1), [(1, 2, 4, 4), (2, 2, 3, 3), (2,)], False),
    ("conv2d stride 2 pad 1", _conv(2, 1, 1), [(2, 1, 5, 5), (2, 1, 3, 3), (2,)], False),
    ("conv2d dilation 2 pad (1, 0)", _conv(1, (1, 0), 2), [(1, 2, 5, 6), (1, 2, 2, 3), (1,)],
     False),
    ("conv2d 1x1 kernel", _conv(1, 0, 1), [(2, 3, 2, 2), (2, 3, 1, 1), (2,)], False),
    ("max_pool2d(2)", lambda x: F.max_pool2d(x, 2), [(1, 2, 4, 4)], False),
    ("max_pool2d(3, 2, pad 1)", lambda x: F.max_pool2d(x, 3, 2, 1), [(1, 1, 5, 5)], False),
    ("avg_pool2d(2)", lambda x: F.avg_pool2d(x, 2), [(1, 2, 4, 4)], False),
    ("avg_pool2d(3, 2, pad 1)", lambda x: F.avg_pool2d(x, 3, 2, 1), [(1, 1, 5, 5)], False),
    ("adaptive_avg_pool2d(2)", lambda x: F.adaptive_avg_pool2d(x, 2), [(1, 2, 5, 3)], False),
    ("batch_norm (train)", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     [(3, 2, 2, 2), (2,), (2,)], False),
    ("batch_norm (eval)", _bn_eval, [(3, 2, 2, 2), (2,), (2,)], False),
    ("softmax(dim=1)", lambda a: F.softmax(a, dim=1), [(2, 4)], False),
    ("log_softmax(dim=1)", lambda a: F.log_softmax(a, dim=1), [(2, 4)], False),
    ("cross_entropy", lambda a: F.cross_entropy(a, tinyconv.tensor(TARGETS)), [(3, 4)], False),
    ("cross_entropy (label smoothing, sum)",
     lambda a: F.cross_entropy(a, tinyconv.tensor(TARGETS), reduction="sum",
                               label_smoothing=0.1), [(3, 4)], False),
    ("nll_loss", lambda a: F.nll_loss(a, tinyconv.tensor(TARGETS)), [(3, 4)], False),
    ("dropout(p=0.4), fixed mask", _dropout, [(3, 4)], False),
    ("fused conv2d+maxpool+relu", _fused_conv_pool_relu, [(1, 2, 4, 4), (2, 2, 3, 3), (2,)],
     False),
    ("fused conv2d+bn+relu+maxpool", _fused_conv_bn_relu_pool,
     [(2, 1, 4, 4), (2, 1, 3, 3), (2,), (2,), (2,)], False),
    ("fused bn+relu+maxpool", _fused_bn_relu_pool, [(2, 2, 4, 4), (2,), (2,)], False),
    ("sin / cos", lambda a: a.sin() * a.cos(), [(2, 3)], False),
    ("diag", lambda a: a.diag(), [(3, 3)], False),
    ("in place: mul_(b)", _mul_inplace, [(2, 3), (2, 3)], False),
    ("in place: y[0] = b[0] * 2", _setitem, [(2, 3), (2, 3)], False),
    ("in place on a view: y[1:].mul_(b[1:])", _view_mul_inplace, [(3, 2), (3, 2)], False),
    ("in place: copy_(b), fill_ of a part", _copy_fill, [(2, 3), (2, 3)], False),
]


def inputs_for(shapes, positive, rng):
    """Float64 leaves that require grad; positive ones in [0.5, 2) (log, sqrt, pow, divide)."""
    arrays = [rng.uniform(0.5, 2.0, s) if positive else rng.standard_normal(s) for s in shapes]
    return tuple(tinyconv.tensor(a, requires_grad=True) for a in arrays)


def worst_relative_error(fn, inputs) -> float:
    numerical = numerical_jacobian(fn, inputs)
    analytical = analytical_jacobian(fn, inputs)
    worst = 0.0
    for num_row, ana_row in zip(numerical, analytical, strict=True):
        for n, a in zip(num_row, ana_row, strict=True):
            if n is not None:
                worst = max(worst, float(np.max(np.abs(a - n) / np.maximum(np.abs(n), 1.0))))
    return worst


def check(name, fn, shapes, positive, tries, seed=0):
    """One table row: (name, shapes text, tries, worst error, passed, first failure or '')."""
    rng = np.random.default_rng(seed)
    worst, failure = 0.0, ""
    for _ in range(tries):
        inputs = inputs_for(shapes, positive, rng)
        try:
            gradcheck(fn, inputs)
        except GradcheckError as err:
            failure = failure or str(err)
        worst = max(worst, worst_relative_error(fn, inputs))
    shapes_text = ", ".join("x".join(map(str, s)) for s in shapes)
    return name, shapes_text, tries, worst, not failure, failure


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one random input per op")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    args = parser.parse_args(argv)
    tries = 1 if args.quick else 2
    start = time.perf_counter()
    rows = [check(name, fn, shapes, positive, tries, args.seed)
            for name, fn, shapes, positive in CASES]
    width = max(len(r[0]) for r in rows)
    shape_width = max(len(r[1]) for r in rows)
    print(f"{'op':<{width}}  {'inputs':<{shape_width}}  tries  worst rel. error  result")
    print("-" * (width + shape_width + 34))
    for name, shapes_text, n, worst, ok, _ in rows:
        print(f"{name:<{width}}  {shapes_text:<{shape_width}}  {n:>5}  {worst:>16.2e}  "
              f"{'ok' if ok else 'FAILED'}")
    failed = [r for r in rows if not r[4]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} ops pass gradcheck "
          f"({time.perf_counter() - start:.1f} s)")
    for name, *_, failure in failed:
        print(f"\n{name}:\n{failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
