"""``tinyconv.summary(model, input_size)``: a table of a model's modules, output shapes and
parameter counts, from one forward pass on zeros (like torchinfo / Keras's ``model.summary()``).
"""

from __future__ import annotations

import numpy as np

from tinyconv.autograd import no_grad
from tinyconv.tensor import Tensor

__all__ = ["summary"]


def _shape_text(out):
    if isinstance(out, Tensor):
        return str(list(out.shape))
    if isinstance(out, (tuple, list)):
        return ", ".join(_shape_text(o) for o in out)
    return type(out).__name__


def _elements(out):
    if isinstance(out, Tensor):
        return out.numel(), out.element_size()
    if isinstance(out, (tuple, list)):
        parts = [_elements(o) for o in out]
        return sum(n for n, _ in parts), max((s for _, s in parts), default=4)
    return 0, 4


def summary(model, input_size, batch_size=1, dtype=np.float32, print_fn=print):
    """Print and return a table: one row per module of ``model.named_modules()`` (its
    state_dict-style name, type, output shape, parameters it owns), then the totals.

    ``input_size`` is one sample's shape, e.g. ``(1, 28, 28)``; the forward pass runs on zeros of
    shape ``(batch_size, *input_size)`` in eval mode without a graph, and the model's modes are
    restored afterwards. A module called twice shows its first output shape and "(x2)".
    The parameter column counts each module's own parameters (not its children's), so it sums
    to the total; "activations" is the size of every leaf module's outputs for that batch.
    """
    input_size = tuple(int(s) for s in input_size)
    rows = list(model.named_modules())
    outputs = {id(m): [] for _, m in rows}
    wrapped = []

    def record(module):
        bound = type(module).forward.__get__(module)

        def forward(*args, **kwargs):
            out = bound(*args, **kwargs)
            outputs[id(module)].append(out)
            return out
        return forward

    modes = {id(m): m.training for _, m in rows}
    try:
        for _, m in rows:
            if "forward" not in m.__dict__:
                m.__dict__["forward"] = record(m)
                wrapped.append(m)
        model.eval()
        x = Tensor(np.zeros((batch_size,) + input_size, dtype=dtype))
        with no_grad():
            model(x)
    finally:
        for m in wrapped:
            m.__dict__.pop("forward", None)
        for _, m in rows:
            object.__setattr__(m, "training", modes[id(m)])

    table = []
    activations = 0
    for name, m in rows:
        outs = outputs[id(m)]
        shape = _shape_text(outs[0]) if outs else "(not called)"
        if len(outs) > 1:
            shape += f" (x{len(outs)})"
        own = sum(p.nelement() for p in m.parameters(recurse=False))
        if not any(True for _ in m.children()):  # leaves: count what they produce
            for out in outs:
                n, size = _elements(out)
                activations += n * size
        label = name if name else "(model)"
        table.append((label, type(m).__name__, shape, f"{own:,}" if own else "-"))

    params = list(model.parameters())
    total = sum(p.nelement() for p in params)
    trainable = sum(p.nelement() for p in params if p.requires_grad)
    param_bytes = sum(p.nelement() * p.element_size() for p in params)
    input_bytes = int(np.prod((batch_size,) + input_size)) * np.dtype(dtype).itemsize

    head = ("Layer (state_dict name)", "Type", "Output shape", "Param #")
    widths = [max(len(r[i]) for r in table + [head]) for i in range(4)]
    line = "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in
                     enumerate(zip(head, widths, strict=True)))
    rule = "=" * len(line)
    lines = [rule, line, rule]
    for r in table:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    mb = 1024 ** 2
    lines += [rule,
              f"Total params: {total:,}",
              f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}",
              "-" * len(line),
              f"Input size (MB): {input_bytes / mb:.3f}  (batch {batch_size}, "
              f"{list(input_size)})",
              f"Forward pass activations (MB): {activations / mb:.3f}",
              f"Params size (MB): {param_bytes / mb:.3f}",
              f"Estimated total size (MB): {(input_bytes + activations + param_bytes) / mb:.3f}",
              rule]
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
