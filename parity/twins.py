"""Running a tinyconv model and its torch twin side by side: shared dropout masks, layer outputs.

``shared_dropout(tiny_model, torch_model, seed)`` makes the twins' Dropout / Dropout2d modules
use the SAME masks: inside the context each dropout module's ``forward`` is replaced (on the
instance only; the class and tinyconv's functional are untouched) by one that asks a
:class:`MaskSource` for its mask. The source draws each mask once, with NumPy
(``keep = rng.random(shape) >= p``, scaled by ``1 / (1 - p)`` in the model's dtype, exactly as
tinyconv's ``F.dropout`` builds its masks), and hands the same array to the twin module of the
other framework (matched by the module's dotted name; the n-th call on one side gets the n-th
mask drawn for that name). Dropout2d draws one value per (sample, channel), like both
frameworks. Dropout applied through the functional API inside a custom ``forward`` (``F.dropout``)
is not intercepted: no seed network does that.

``record_outputs(tiny_model, torch_model)`` records every submodule's output on both sides
(torch: forward hooks; tinyconv: the instance's ``forward`` wrapped), keyed by dotted name, with a
``#k`` suffix for its k-th call (k >= 2) when a module is called more than once
(ConvModule's ``relu``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict, deque

import numpy as np
import torch

from tinyconv import nn as tnn
from tinyconv.ops import dropout as dropout_ops

DROPOUT_TYPES = ("Dropout", "Dropout2d")


class MaskSource:
    """Draws each dropout mask once and serves it to both twins (queues per name and side)."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self._pending = {"tinyconv": defaultdict(deque), "torch": defaultdict(deque)}
        self.drawn = 0

    def mask(self, side, name, shape, p, dtype):
        """The next mask for module ``name`` on ``side`` ('tinyconv' or 'torch'), an ndarray."""
        queue = self._pending[side][name]
        if queue:
            return queue.popleft()
        dtype = np.dtype(dtype)
        if p == 1.0:
            mask = np.zeros(shape, dtype=dtype)
        else:
            keep = self.rng.random(shape, dtype=np.float32) >= p
            mask = keep.astype(dtype) / dtype.type(1.0 - p)
        other = "torch" if side == "tinyconv" else "tinyconv"
        self._pending[other][name].append(mask)
        self.drawn += 1
        return mask


def _noise_shape(kind, shape):
    if kind == "Dropout2d" and len(shape) > 2:
        return tuple(shape[:2]) + (1,) * (len(shape) - 2)
    return tuple(shape)  # Dropout; Dropout2d on a 2-D input drops single features


def _tiny_dropout_forward(module, name, kind, source):
    def forward(input):  # noqa: A002
        if not module.training or module.p == 0.0:
            return input
        mask = source.mask("tinyconv", name, _noise_shape(kind, input.shape), module.p,
                           input.dtype)
        return dropout_ops.Dropout.apply(input, mask)
    return forward


def _torch_dropout_forward(module, name, kind, source, side="torch"):
    def forward(input):  # noqa: A002
        if not module.training or module.p == 0.0:
            return input
        np_dtype = torch.empty((), dtype=input.dtype).numpy().dtype
        mask = source.mask(side, name, _noise_shape(kind, input.shape), module.p, np_dtype)
        return input * torch.from_numpy(mask).to(input.device)
    return forward


def _is_dropout(module, nn):
    return type(module).__name__ in DROPOUT_TYPES and getattr(
        nn, type(module).__name__, None) is type(module)


@contextlib.contextmanager
def _patched_forwards(patches):
    """Set instance-level ``forward``s; restore what was there (or nothing) on exit."""
    saved = []
    try:
        for module, make in patches:
            saved.append((module, module.__dict__.get("forward")))
            object.__setattr__(module, "forward", make(module.forward))
        yield
    finally:
        for module, previous in reversed(saved):
            if previous is None:
                module.__dict__.pop("forward", None)
            else:
                object.__setattr__(module, "forward", previous)


@contextlib.contextmanager
def shared_dropout(tiny_model, torch_model, seed=0, source=None):
    """Within the context, the twins' dropout modules apply the same masks (see module doc).

    Yields the :class:`MaskSource` (``.drawn`` counts the masks drawn).
    """
    source = source or MaskSource(seed)
    tiny = {n: m for n, m in tiny_model.named_modules() if _is_dropout(m, tnn)}
    theirs = {n: m for n, m in torch_model.named_modules() if _is_dropout(m, torch.nn)}
    if sorted(tiny) != sorted(theirs):
        raise ValueError(f"the twins' dropout modules differ: tinyconv {sorted(tiny)}, "
                         f"torch {sorted(theirs)}")
    patches = []
    for name, m in tiny.items():
        kind = type(m).__name__
        patches.append((m, lambda _f, m=m, n=name, k=kind: _tiny_dropout_forward(m, n, k, source)))
    for name, m in theirs.items():
        kind = type(m).__name__
        patches.append((m, lambda _f, m=m, n=name, k=kind: _torch_dropout_forward(m, n, k,
                                                                                  source)))
    with _patched_forwards(patches):
        yield source


@contextlib.contextmanager
def shared_dropout_torch(first, second, seed=0):
    """``shared_dropout`` for two torch models (the lockstep's torch-against-torch baseline)."""
    source = MaskSource(seed)
    patches = []
    for side, model in (("tinyconv", first), ("torch", second)):  # the source's two queues
        for name, m in model.named_modules():
            if _is_dropout(m, torch.nn):
                # the defaults bind this module's values now, not the loop's last ones
                patches.append((m, lambda _f, m=m, n=name, k=type(m).__name__, s=side:  # noqa: B008
                                _torch_dropout_forward(m, n, k, source, s)))
    with _patched_forwards(patches):
        yield source


class Recorder:
    """Outputs of every submodule, in call order: ``outputs[side]`` maps name -> ndarray."""

    def __init__(self):
        self.outputs = {"tinyconv": {}, "torch": {}}
        # inputs of the MaxPool2d modules, to find windows where the twins pick different maxima
        self.pool_inputs = {"tinyconv": {}, "torch": {}}
        self._calls = {"tinyconv": defaultdict(int), "torch": defaultdict(int)}

    def clear(self):
        for side in self.outputs:
            self.outputs[side].clear()
            self._calls[side].clear()

    def record(self, side, name, value):
        if isinstance(value, (tuple, list)):
            value = value[0]
        k = self._calls[side][name]
        self._calls[side][name] += 1
        key = name if k == 0 else f"{name}#{k + 1}"
        if isinstance(value, torch.Tensor):
            arr = value.detach().cpu().numpy().copy()  # copy: a later in-place ReLU changes it
        else:
            arr = np.array(value.detach().numpy(), copy=True)
        self.outputs[side][key] = arr

    def names(self):
        """Names present on both sides, in tinyconv's call order."""
        return [n for n in self.outputs["tinyconv"] if n in self.outputs["torch"]]

    def record_pool_input(self, side, name, module, value):
        arr = (value.detach().cpu().numpy() if isinstance(value, torch.Tensor)
               else value.detach().numpy())
        self.pool_inputs[side][name] = (np.array(arr, copy=True), module)

    def argmax_flips(self):
        """{pool name: number of windows whose arg-max differs between the twins}.

        The pooled values agree, but where two candidates of a window are equal to within
        float32 rounding, each side's rounding may make a different one the larger: the gradient
        then goes to a different pixel, and every gradient computed from it (the layers before
        the pool) differs by far more than rounding, in either framework against float64 too.
        """
        flips = {}
        for name, (a, m) in self.pool_inputs["tinyconv"].items():
            if name not in self.pool_inputs["torch"]:
                continue
            b = self.pool_inputs["torch"][name][0]
            args = (m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
            _, ia = torch.nn.functional.max_pool2d(torch.from_numpy(a), *args,
                                                   return_indices=True)
            _, ib = torch.nn.functional.max_pool2d(torch.from_numpy(b), *args,
                                                   return_indices=True)
            flips[name] = int((ia != ib).sum())
        return flips


@contextlib.contextmanager
def record_outputs(tiny_model, torch_model):
    """Record every named submodule's output on both sides; yields a :class:`Recorder`."""
    recorder = Recorder()
    patches = []
    for name, m in tiny_model.named_modules():
        if name:
            patches.append((m, lambda f, n=name, m=m: _recording(f, recorder, n, m)))
    handles = []
    try:
        for name, m in torch_model.named_modules():
            if name:
                handles.append(m.register_forward_hook(
                    lambda _m, _i, out, n=name: recorder.record("torch", n, out)))
            if isinstance(m, torch.nn.MaxPool2d):
                handles.append(m.register_forward_pre_hook(
                    lambda _m, inp, n=name: recorder.record_pool_input("torch", n, _m, inp[0])))
        with _patched_forwards(patches):
            yield recorder
    finally:
        for h in handles:
            h.remove()


def _recording(forward, recorder, name, module):
    is_pool = isinstance(module, tnn.MaxPool2d)

    def wrapped(*args, **kwargs):
        if is_pool:
            recorder.record_pool_input("tinyconv", name, module, args[0])
        out = forward(*args, **kwargs)
        recorder.record("tinyconv", name, out)
        return out
    return wrapped
