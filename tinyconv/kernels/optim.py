"""The Adam update as one pass over memory.

For every element of parameter p with gradient g, first moment m and second moment v (all of
one shape; scalars already cast to p's dtype by the caller)::

    g = g + wd * p                               (L2 weight decay; wd = 0 for none or AdamW)
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    vmax = max(vmax, v)                          (amsgrad only; then vmax replaces v below)
    p = p + (-step_size * m) / (sqrt(v) / bc2_sqrt + eps)

with step_size = lr / (1 - beta1**t) and bc2_sqrt = sqrt(1 - beta2**t). Written with NumPy this
is about ten passes over arrays of the parameter's size (each temporary is written and read
back); the numba loop reads and writes each array once. The operations and their order are the
same, so both give bit-identical results (the tests check this). docs/adam.md shows that this is
the textbook update with bias correction, m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t).
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange


def adam_update_reference(p, g, m, v, vmax, wd, one_minus_beta1, beta2, one_minus_beta2,
                          neg_step_size, bc2_sqrt, eps):
    """NumPy version, the formula line by line; updates p, m, v (and vmax) in place."""
    if wd != 0:
        g = g + wd * p
    m += one_minus_beta1 * (g - m)
    v *= beta2
    v += one_minus_beta2 * (g * g)
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    p += (neg_step_size * m) / (np.sqrt(v) / bc2_sqrt + eps)


_BLOCK = 1 << 14  # elements per task


def _adam_blocks(p, g, m, v, vmax, use_vmax, wd, one_minus_beta1, beta2, one_minus_beta2,
                neg_step_size, bc2_sqrt, eps):
    n = p.size
    for block in prange((n + _BLOCK - 1) // _BLOCK):
        # NOTE: slices first, then one index into all of them: indexing the whole arrays
        # directly keeps LLVM from vectorizing (it cannot rule out overlaps), 5-10x slower.
        lo, hi = block * _BLOCK, min(n, (block + 1) * _BLOCK)
        pb, gb, mb, vb, vmb = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi]
        for i in range(hi - lo):
            gi = gb[i]
            if wd != 0:
                gi = gi + wd * pb[i]
            mi = mb[i] + one_minus_beta1 * (gi - mb[i])
            vi = vb[i] * beta2 + one_minus_beta2 * (gi * gi)
            mb[i] = mi
            vb[i] = vi
            if use_vmax:
                if vi > vmb[i]:
                    vmb[i] = vi
                vi = vmb[i]
            pb[i] = pb[i] + (neg_step_size * mi) / (np.sqrt(vi) / bc2_sqrt + eps)


def _renamed(fn, name):
    """A copy of ``fn`` under another name.

    NOTE: numba names a function's cache files after it; two dispatchers of one function with
    cache=True overwrite each other's files, and every process then compiled again (it showed
    as FashionCNN training 20% slower).
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__,
                              fn.__closure__)
    copy.__qualname__ = name
    return copy


# The same loops compiled twice: split across numba's threads for large parameters, on the
# calling thread for small ones (a bias of 32 values: waking the threads costs more than the loop).
_adam_loops = njit(cache=True, parallel=True)(_adam_blocks)
_adam_loops_serial = njit(cache=True)(_renamed(_adam_blocks, "_adam_blocks_serial"))
PARALLEL_MIN = 1 << 16


def adam_update(p, g, m, v, vmax, wd, one_minus_beta1, beta2, one_minus_beta2, neg_step_size,
                bc2_sqrt, eps):
    """Fused Adam update of contiguous arrays, in place (see the module docstring)."""
    flat = [a.reshape(-1) for a in (p, g, m, v)]
    vm = vmax.reshape(-1) if vmax is not None else flat[3]
    loops = _adam_loops if p.size >= PARALLEL_MIN else _adam_loops_serial
    loops(*flat, vm, vmax is not None, wd, one_minus_beta1, beta2, one_minus_beta2,
                neg_step_size, bc2_sqrt, eps)
