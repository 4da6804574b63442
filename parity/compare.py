"""``python -m parity compare``: one batch, forward and backward, layer by layer.

Differences are reported as ``max abs`` = max |tinyconv - torch| and ``rel`` = max abs divided
by max |torch| over the same tensor (a norm-wise relative error: element-wise ratios explode
where values cross zero), and judged against ``TOLERANCES``.
"""

from __future__ import annotations

import math

import numpy as np

from .harness import (
    DATA,
    as_inputs,
    difference,
    load_dataset,
    loader,
    losses,
    make_twins,
    masks_note,
    pick_device,
    to_np,
)
from .twins import MaskSource, record_outputs, shared_dropout

# Relative tolerances (max abs difference / max |torch value|) for compare's verdicts.
# float64: both compute the same formulas, differing only in summation order; measured gaps are
# 1e-16 .. 1e-13. float32: BatchNorm's backward sums over N*H*W values and torch's float32 itself
# is ~5e-5 away from float64 there (tests/test_models.py), so 2e-4.
TOLERANCES = {"float64": 1e-9, "float32": 2e-4}


def compare(args):
    device = pick_device(args.device)
    dtype = args.dtype
    tol = TOLERANCES[dtype]
    test_set = load_dataset(args.model, args.data_dir, train=False)
    x, y = next(iter(loader(test_set, args.batch_size)))
    tiny, theirs = make_twins(args.model, dtype, device, args.seed)
    kind, tiny_fn, torch_fn = losses(args.model)
    print(f"parity compare: {args.model}, {dtype}, torch on {device}, one batch of "
          f"{len(y)} {DATA[args.model][0]} test images, loss {kind}")
    print(masks_note(args.seed))
    print(f"diff = max |tinyconv - torch|; rel = diff / max |torch| over the tensor; "
          f"tolerance on rel for {dtype}: {tol:g}")
    rows = []
    source = MaskSource(args.seed)
    for mode in ("train", "eval"):
        tiny.train(mode == "train")
        theirs.train(mode == "train")
        tiny.zero_grad()
        theirs.zero_grad()
        (tx, ty), (px, py) = as_inputs(x, y, dtype, device)
        with shared_dropout(tiny, theirs, source=source), record_outputs(tiny, theirs) as rec:
            tiny_loss = tiny_fn(tiny(tx), ty)
            torch_loss = torch_fn(theirs(px), py)
        tiny_loss.backward()
        torch_loss.backward()
        flipped = {name: n for name, n in rec.argmax_flips().items() if n}
        for name, n in flipped.items():
            print(f"{mode}: max-pool {name}: the twins pick different maxima in {n} window(s) "
                  f"(candidates equal to within {dtype} rounding)")
        for name in rec.names():
            a, b = rec.outputs["tinyconv"][name], rec.outputs["torch"][name]
            rows.append((mode, "output", name, b.shape, float(np.max(np.abs(b))),
                         *difference(a, b)))
        b = to_np(torch_loss)
        rows.append((mode, "loss", kind, (), float(abs(b)), *difference(to_np(tiny_loss), b)))
        rows += grad_rows(mode, tiny, theirs, tol, behind_flips(tiny, flipped))
    failures = print_table(rows, tol)
    print(f"\n{len(rows) - failures} of {len(rows)} checks within tolerance ({tol:g}); "
          f"{source.drawn} dropout mask(s) shared")
    if any(r[1] == "grad^" and r[6] > tol for r in rows):
        print("argmax: a gradient of a layer before a max-pool whose twins picked different "
              "maxima in some window (see above): that window's gradient reaches a different "
              "pixel on each side, so this gradient cannot agree to rounding; not counted as a "
              "failure. Compare in float64, where such near-ties do not flip.")
    if any(r[1] == "grad*" for r in rows):
        print(f"grad*: a gradient that is zero up to rounding (max |torch| < {tol:g} x the "
              f"network's largest gradient; e.g. a conv bias followed by BatchNorm in train "
              f"mode): its rel is measured against the network's largest gradient instead")
    return 1 if failures else 0


def behind_flips(tiny, flipped):
    """Names of the parameters computed before a max-pool in ``flipped`` (forward order)."""
    order = [name for name, _ in tiny.named_modules()]
    last = max((order.index(name) for name in flipped if name in order), default=-1)
    behind = set()
    for name, _ in tiny.named_parameters():
        owner = name.rsplit(".", 1)[0]
        if owner in order and order.index(owner) < last:
            behind.add(name)
    return behind


def grad_rows(mode, tiny, theirs, tol, behind=()):
    """Rows (mode, what, name, shape, max|torch|, max abs, rel) for every parameter gradient.

    A gradient below ``tol`` x the network's largest one is zero at this tolerance (a conv bias
    before train-mode BatchNorm: exactly zero in exact arithmetic); its own scale is rounding
    noise, so its difference is measured against the network's largest gradient ("grad*").
    Gradients named in ``behind`` come before a max-pool whose twins chose different maxima
    ("grad^", see :meth:`parity.twins.Recorder.argmax_flips`).
    """
    ours = dict(tiny.named_parameters())
    pairs = [(name, ours[name].grad, p.grad) for name, p in theirs.named_parameters()]
    largest = max((float(np.max(np.abs(to_np(b)))) for _, _, b in pairs if b is not None),
                  default=0.0)
    rows = []
    for name, a, b in pairs:
        if a is None or b is None:
            rows.append((mode, "grad", name, (), math.nan, math.nan, math.nan))
            continue
        a, b = to_np(a), to_np(b)
        scale = float(np.max(np.abs(b)))
        diff, rel = difference(a, b)
        what = "grad^" if name in behind else "grad"
        if scale < tol * largest:
            what, rel = "grad*", diff / largest
        rows.append((mode, what, name, b.shape, scale, diff, rel))
    return rows


def print_table(rows, tol):
    header = (f"{'mode':<5} {'what':<6} {'name':<22} {'shape':<18} {'max|torch|':>10} "
              f"{'max abs':>10} {'rel':>10}  verdict")
    print("\n" + header + "\n" + "-" * len(header))
    failures = 0
    for mode, what, name, shape, scale, diff, rel in rows:
        ok = rel <= tol
        verdict = "ok" if ok else ("argmax" if what == "grad^" else "FAIL")
        failures += verdict == "FAIL"
        shape = "x".join(map(str, shape)) or "scalar"
        print(f"{mode:<5} {what:<6} {name:<22} {shape:<18} {scale:>10.3e} {diff:>10.2e} "
              f"{rel:>10.2e}  {verdict}")
    return failures
