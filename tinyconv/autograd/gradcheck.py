"""Check a backward against finite differences: PyTorch's ``torch.autograd.gradcheck``.

For a function ``func(*inputs)`` returning one Tensor or a tuple of them, the Jacobian of output
``k`` with respect to input ``i`` is the matrix ``J[r, c] = d out_k.flat[r] / d x_i.flat[c]``.

* the *numerical* Jacobian perturbs one input element at a time by ``eps`` either way and takes
  central differences, ``(f(x + eps) - f(x - eps)) / (2 eps)``, whose error is O(eps**2) plus
  the rounding of f divided by eps: about 1e-16 / 1e-6 = 1e-10 in float64;
* the *analytical* Jacobian runs backward once per output element, with a one-hot gradient,
  and reads row ``r`` from the inputs' ``.grad``.

They must agree entry by entry as ``|analytical - numerical| <= atol + rtol * |numerical|``.
Every input element that requires a gradient costs two calls of ``func`` and every output
element one backward, so keep the inputs small (a few dozen elements).

tinyconv has no double backward (backward never records a graph), so there is no
``gradgradcheck``: checking second derivatives needs gradients that are themselves
differentiable, which this engine does not build.
"""

from __future__ import annotations

import numpy as np

from tinyconv import autograd

__all__ = ["GradcheckError", "gradcheck", "numerical_jacobian", "analytical_jacobian"]


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when the analytical and numerical Jacobians differ."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _name(func) -> str:
    owner = getattr(func, "__self__", None)
    if isinstance(owner, type):
        return f"{owner.__name__}.{func.__name__}"  # MyFunction.apply
    return getattr(func, "__qualname__", None) or repr(func)


def _differentiable_inputs(inputs) -> list[int]:
    """Indices of the inputs that require a gradient, after checking they are float64."""
    from tinyconv.tensor import Tensor

    wanted = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wanted:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of them have requires_grad=True.")
    for i in wanted:
        dtype = inputs[i].dtype
        if dtype != np.float64:
            raise ValueError(
                f"gradcheck: inputs[{i}] requires grad and has dtype {dtype}, not float64. "
                f"Central differences with eps=1e-6 need float64: float32 resolves only about "
                f"1e-7 of a value, so f(x + eps) - f(x - eps) keeps one or two significant "
                f"digits and the numerical gradient is noise. Pass inputs[{i}].double() (and "
                f"make the function compute in float64).")
    return wanted


def _evaluate(func, inputs) -> list:
    """The outputs of ``func(*inputs)`` as a list of Tensors (checked)."""
    from tinyconv.tensor import Tensor

    outs = _as_tuple(func(*inputs))
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: {_name(func)} returned a {type(o).__name__} as output "
                            f"{k}; expected a Tensor or a tuple of Tensors")
    return list(outs)


def numerical_jacobian(func, inputs, eps: float = 1e-6) -> list[list]:
    """``J[k][i]``: d output k / d input i by central differences (None if input i needs no
    gradient), a float64 matrix of shape (output k's numel, input i's numel)."""
    from tinyconv.tensor import Tensor

    inputs = _as_tuple(inputs)
    wanted = _differentiable_inputs(inputs)
    with autograd.no_grad():
        outs = _evaluate(func, inputs)
        jac = [[None] * len(inputs) for _ in outs]
        for i in wanted:
            work = inputs[i]._data.copy()
            flat = work.reshape(-1)  # a view: writing flat[c] changes work
            args = list(inputs)
            args[i] = Tensor._wrap(work)
            cols = [np.zeros((o.numel(), flat.size)) for o in outs]
            for c in range(flat.size):
                orig = flat[c]
                flat[c] = orig + eps
                plus = [o._data.astype(np.float64).ravel() for o in _evaluate(func, args)]
                flat[c] = orig - eps
                minus = [o._data.astype(np.float64).ravel() for o in _evaluate(func, args)]
                flat[c] = orig
                for k in range(len(outs)):
                    cols[k][:, c] = (plus[k] - minus[k]) / (2 * eps)
            for k in range(len(outs)):
                jac[k][i] = cols[k]
    return jac


def analytical_jacobian(func, inputs) -> list[list]:
    """``J[k][i]``: d output k / d input i from backward, one call per output element, on
    copies of the inputs (their own ``.grad`` is left alone)."""
    from tinyconv.tensor import Tensor

    inputs = _as_tuple(inputs)
    wanted = _differentiable_inputs(inputs)
    leaves = list(inputs)
    for i in wanted:
        leaves[i] = Tensor._wrap(inputs[i]._data.copy()).requires_grad_(True)
    with autograd.enable_grad():
        outs = _evaluate(func, leaves)
    jac = [[None] * len(inputs) for _ in outs]
    for k, out in enumerate(outs):
        for i in wanted:
            jac[k][i] = np.zeros((out.numel(), leaves[i].numel()))
        if not out.requires_grad:
            continue  # does not depend on any input: its rows stay zero
        for r in range(out.numel()):
            for i in wanted:
                leaves[i].grad = None
            one_hot = np.zeros(out._data.shape, dtype=out._data.dtype)
            one_hot.flat[r] = 1
            out.backward(Tensor._wrap(one_hot), retain_graph=True)
            for i in wanted:
                if leaves[i].grad is not None:
                    jac[k][i][r, :] = leaves[i].grad._data.ravel()
    return jac


def _index(shape, flat_index) -> tuple:
    return tuple(int(v) for v in np.unravel_index(flat_index, shape)) if shape else ()


def _mismatch_report(name, k, i, out_shape, in_shape, a, n, atol, rtol) -> str:
    """Which entries of J[k][i] fail, and the worst one spelled out."""
    diff = np.abs(a - n)
    allowed = atol + rtol * np.abs(n)
    bad = ~(diff <= allowed)  # NaN counts as a mismatch
    with np.errstate(divide="ignore", invalid="ignore"):  # allowed is 0 where atol = n = 0
        ratio = np.where(diff == 0, 0.0, diff / allowed)
    ratio = np.where(np.isnan(diff), np.inf, ratio)
    r, c = np.unravel_index(int(np.argmax(ratio)), a.shape)
    lines = [
        f"Jacobian mismatch for output {k} with respect to input {i} in {name}:",
        f"{int(bad.sum())} of {bad.size} entries differ by more than atol + rtol * |numerical| "
        f"(atol={atol:g}, rtol={rtol:g}).",
        f"Worst entry: d output[{k}]{list(_index(out_shape, r))} / "
        f"d input[{i}]{list(_index(in_shape, c))}",
        f"  analytical (backward)      {a[r, c]:.10g}",
        f"  numerical (finite diff.)   {n[r, c]:.10g}",
        f"  difference                 {diff[r, c]:.3g} (allowed {allowed[r, c]:.3g})",
    ]
    if a.size <= 64:
        with np.printoptions(precision=6, suppress=True, linewidth=100):
            lines += ["numerical:", str(n), "analytical:", str(a)]
    return "\n".join(lines)


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0) -> bool:
    """Check the gradients ``func``'s backward computes against central differences.

    Args:
        func: takes Tensors, returns a Tensor or a tuple of Tensors (e.g. ``MyFunction.apply``).
        inputs: a Tensor or a tuple of arguments for ``func``; every Tensor with
            ``requires_grad=True`` is checked and must be float64 (float32 is refused: its
            finite differences at eps=1e-6 are noise).
        eps: the perturbation of each input element.
        atol, rtol: an entry passes if ``|analytical - numerical| <= atol + rtol * |numerical|``.
        raise_exception: raise :class:`GradcheckError` on a mismatch (default) or return False.
        nondet_tol: how far two runs of backward may differ (0: backward must be reproducible).

    Returns True when every Jacobian matches. The error names the output and input, the number
    of failing entries, and the worst entry with its indices, analytical and numerical values.
    """
    inputs = _as_tuple(inputs)
    name = _name(func)
    numerical = numerical_jacobian(func, inputs, eps)
    analytical = analytical_jacobian(func, inputs)
    outs_shape = [tuple(o.shape) for o in _evaluate_no_grad(func, inputs)]
    failures = []
    for k, row in enumerate(numerical):
        for i, n in enumerate(row):
            if n is None:
                continue
            a = analytical[k][i]
            if not np.all(np.abs(a - n) <= atol + rtol * np.abs(n)):
                failures.append(_mismatch_report(name, k, i, outs_shape[k],
                                                 tuple(inputs[i].shape), a, n, atol, rtol))
    if not failures:
        again = analytical_jacobian(func, inputs)
        for k, row in enumerate(analytical):
            for i, a in enumerate(row):
                if a is not None and not np.all(np.abs(again[k][i] - a) <= nondet_tol):
                    failures.append(
                        f"Backward is not reentrant in {name}: two runs of backward gave "
                        f"d output[{k}] / d input[{i}] differing by up to "
                        f"{np.max(np.abs(again[k][i] - a)):.3g}, more than nondet_tol="
                        f"{nondet_tol:g}")
    if failures:
        if raise_exception:
            raise GradcheckError("\n\n".join(failures))
        return False
    return True


def _evaluate_no_grad(func, inputs) -> list:
    with autograd.no_grad():
        return _evaluate(func, inputs)
