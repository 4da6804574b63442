"""Shared test helpers: the PyTorch parity check, the finite-difference check, strategies.

The hypothesis strategies and ``noncontiguous`` are public, in ``tinyconv.testing`` (so users
test their own code with them); this file adds what needs PyTorch.

Two independent oracles for every differentiable op (STYLE.md, items 10-12):

* :func:`check_op` runs the same function in tinyconv and in PyTorch on the same NumPy arrays
  and compares the outputs and every input gradient;
* :func:`grad_check` compares tinyconv's backward with float64 central differences of tinyconv's
  own forward, so it does not depend on PyTorch at all.

Array *contents* come from a seeded NumPy generator rather than from hypothesis: hypothesis draws
the shapes, hyper-parameters, seed and memory layout (contiguous or not), which is what finds
bugs, while normal samples keep the values in a range where both libraries are well conditioned.
"""

from __future__ import annotations

import signal

import numpy as np
import torch

import tinyconv
from tinyconv.testing import noncontiguous
from tinyconv.testing import strategies as tst

# Tolerances used across the test files.
#
# float64: both libraries compute the same formula; they differ only in summation order (GEMM
# blocking, im2col vs direct convolution), which costs a few ulps times the accumulation length.
F64 = dict(rtol=1e-7, atol=1e-10)
# float32: the same reordering, but one ulp is 1.2e-7 and convolutions / matrix products sum up
# to a few hundred terms, so agreement is only to ~1e-5 relative; rtol 1e-4 leaves a margin of
# ten, atol 1e-5 covers outputs that cancel to near zero (their absolute error is ~ulp * terms).
F32 = dict(rtol=1e-4, atol=1e-5)
TOL = {np.float64: F64, np.float32: F32}

FLOAT_DTYPES = tst.float_dtypes


# ---------------------------------------------------------------------------------------------
# building inputs


def _is_float(arr):
    return np.asarray(arr).dtype.kind == "f"


def tiny_tensor(arr, requires_grad=None, contiguous=True):
    """A tinyconv leaf holding ``arr`` (float arrays require grad unless told otherwise)."""
    arr = np.asarray(arr)
    if requires_grad is None:
        requires_grad = _is_float(arr)
    if contiguous:
        t = tinyconv.tensor(arr)
    else:
        t = tinyconv.from_numpy(noncontiguous(arr))  # from_numpy keeps the layout
    return t.requires_grad_(requires_grad) if requires_grad else t


def torch_tensor(arr, requires_grad=None):
    arr = np.asarray(arr)
    if requires_grad is None:
        requires_grad = _is_float(arr)
    return torch.tensor(arr, requires_grad=requires_grad)


def as_numpy(t):
    """A tinyconv or torch tensor (or a Python number) as an ndarray, without the graph."""
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    if isinstance(t, tinyconv.Tensor):
        return t.detach().numpy()
    return np.asarray(t)


def assert_close(actual, expected, *, atol, rtol, what="value"):
    """``actual`` (tinyconv) equals ``expected`` (torch): same shape, dtype and values."""
    a, e = as_numpy(actual), as_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, torch has {e.shape}"
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype}, torch has {e.dtype}"
    if a.dtype.kind in "biu":
        np.testing.assert_array_equal(a, e, err_msg=what)
    else:
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=what)


def _outputs(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


# ---------------------------------------------------------------------------------------------
# the two oracles


def check_op(tiny_fn, torch_fn, arrays, *, atol, rtol, grad=True, grad_atol=None,
             grad_rtol=None, contiguous=True, seed=0):
    """Run ``tiny_fn`` and ``torch_fn`` on tensors built from the same ``arrays``; compare.

    Float arrays become leaves with ``requires_grad=True`` (integer arrays, e.g. class targets,
    do not). The outputs (a tensor or a tuple of them, like ``max(dim)``) must agree in shape,
    dtype and value. With ``grad``, the first floating output is back-propagated with the same
    random upstream gradient ``g`` in both libraries (``out.backward(g)``), and every input
    gradient must agree. ``contiguous=False`` hands tinyconv non-contiguous leaves.

    Returns the tinyconv and torch outputs, for further checks by the caller.
    """
    tiny_in = [tiny_tensor(a, contiguous=contiguous) for a in arrays]
    torch_in = [torch_tensor(a) for a in arrays]
    tiny_out, torch_out = tiny_fn(*tiny_in), torch_fn(*torch_in)
    tiny_outs, torch_outs = _outputs(tiny_out), _outputs(torch_out)
    assert len(tiny_outs) == len(torch_outs)
    for i, (a, e) in enumerate(zip(tiny_outs, torch_outs, strict=True)):
        assert_close(a, e, atol=atol, rtol=rtol, what=f"output {i}")
    if not grad:
        return tiny_out, torch_out

    k = next(i for i, e in enumerate(torch_outs) if e.dtype.is_floating_point)
    g = np.random.default_rng(seed).standard_normal(torch_outs[k].shape)
    g = g.astype(as_numpy(torch_outs[k]).dtype)
    tiny_outs[k].backward(tinyconv.tensor(g))
    torch_outs[k].backward(torch.tensor(g))
    grad_atol = atol if grad_atol is None else grad_atol
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    for i, (a, e) in enumerate(zip(tiny_in, torch_in, strict=True)):
        if not e.requires_grad:
            continue
        if e.grad is None:  # the input does not reach the output in torch's graph
            assert a.grad is None or not np.any(a.grad.numpy()), f"grad of input {i}"
            continue
        assert a.grad is not None, f"input {i} got no gradient; torch's is {e.grad}"
        assert_close(a.grad, e.grad, atol=grad_atol, rtol=grad_rtol, what=f"grad of input {i}")
    return tiny_out, torch_out


def grad_check(fn, arrays, eps=1e-6, *, atol=1e-7, rtol=1e-5, seed=0):
    """tinyconv's backward against float64 central differences of ``L = sum(fn(*x) * g)``.

    ``g`` is a fixed random upstream gradient (so that no output entry cancels another). Each
    input element costs two forward passes: keep the arrays small. Float arrays must be float64
    (central differences in float32 would have an error of ~1e-7 / eps, i.e. 10%).
    """
    arrays = [np.asarray(a) for a in arrays]
    assert all(a.dtype == np.float64 for a in arrays if _is_float(a)), "grad_check needs float64"
    inputs = [tiny_tensor(a) for a in arrays]
    out = _outputs(fn(*inputs))[0]
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(tinyconv.tensor(g))

    def loss(values):
        with tinyconv.no_grad():
            y = _outputs(fn(*[tiny_tensor(v, requires_grad=False) for v in values]))[0]
        return float(np.sum(y.numpy() * g))

    for i, a in enumerate(arrays):
        if not _is_float(a):
            continue
        numeric = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            plus, minus = [v.copy() for v in arrays], [v.copy() for v in arrays]
            plus[i][j] += eps
            minus[i][j] -= eps
            numeric[j] = (loss(plus) - loss(minus)) / (2 * eps)
        analytic = inputs[i].grad.numpy() if inputs[i].grad is not None else np.zeros_like(a)
        np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i} vs central differences")


# ---------------------------------------------------------------------------------------------
# hypothesis strategies: the public ones of tinyconv.testing.strategies, under the names the
# test files use


def randn(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


seeds = tst.seeds
shapes = tst.shapes
broadcastable_shapes = tst.broadcastable_shapes
conv_geometries = tst.conv2d_args
pool_geometries = tst.pool2d_args
draw_array = tst.draw_array


# ---------------------------------------------------------------------------------------------
# fused ops (tests/test_fusion.py, tests/test_conv_fusion.py)


def run_fused(model, x, fuse, train=True):
    """(output, input gradient, parameter gradients, state, output node name) of ``model`` on
    ``x`` with nn.Sequential's fusion on or off."""
    tinyconv.nn.set_fusion(fuse)
    model.train(train)
    x = x.detach().requires_grad_()
    out = model(x)
    (out * tinyconv.arange(out.numel()).reshape(out.shape).to(out.dtype)).sum().backward()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    return out.detach().numpy(), x.grad.numpy(), grads, state, out.grad_fn.name()


def eval_fused_and_not(fused, unfused, x):
    """Both models in evaluation mode under no_grad, the first fused, the second not."""
    fused.eval()
    unfused.eval()
    with tinyconv.no_grad():
        tinyconv.nn.set_fusion(True)
        out_f = fused(x)
        tinyconv.nn.set_fusion(False)
        out_u = unfused(x)
    tinyconv.nn.set_fusion(True)
    return out_f.numpy(), out_u.numpy()


def default_sigint():
    """``preexec_fn`` for a child that a test interrupts with SIGINT (Ctrl-C). A shell that
    starts a command in the background makes it ignore SIGINT, its children inherit that, and
    Python then installs no KeyboardInterrupt handler: the child gets the default back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
