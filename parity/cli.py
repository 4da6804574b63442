"""``python -m parity compare | lockstep | accuracy``: tinyconv against its PyTorch twin.

Every command builds the seed network with tinyconv (``tinyconv.manual_seed(seed)``), makes its
torch twin with :func:`parity.to_torch` (same weights and buffers), feeds both the same real
batches (Fashion-MNIST for fashioncnn / deepfashioncnn, MNIST for the others, normalised as their
tutorials do) and shares dropout masks between them (:func:`parity.twins.shared_dropout`).

Differences are reported as ``max abs`` = max |tinyconv - torch| and ``rel`` = max abs divided
by max |torch| over the same tensor (a norm-wise relative error: element-wise ratios explode
where values cross zero). Tolerances on ``rel``: float64 1e-9, float32 2e-4 (see ``TOLERANCES``).

``lockstep --dtype float32`` is judged against exact arithmetic, not against torch: two float32
runs drift apart over many steps whatever their code (torch against itself with another thread
count drifts as far), so the reference is a float64 run from the same weights, batches and
masks, and tinyconv-float32 must stay as close to it as torch-float32 does (``FLOAT32_RULE``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch

import tinyconv
import tinyconv.data
from tinyconv.data import transforms as T
from tinyconv.models import SEED_NETWORKS
from tinyconv.nn import functional as F

from .convert import to_torch
from .twins import MaskSource, record_outputs, shared_dropout, shared_dropout_torch

# FashionCNN applies Dropout2d to fc1's 2-D output (as its tutorial does): both frameworks warn.
warnings.filterwarnings("ignore", message=".*dropout2d.*")

# Relative tolerances (max abs difference / max |torch value|) for compare's verdicts.
# float64: both compute the same formulas, differing only in summation order; measured gaps are
# 1e-16 .. 1e-13. float32: BatchNorm's backward sums over N*H*W values and torch's float32 itself
# is ~5e-5 away from float64 there (tests/test_models.py), so 2e-4.
TOLERANCES = {"float64": 1e-9, "float32": 2e-4}
# lockstep's target, float64: the relative gap between the two loss curves (issue #4). Both
# twins compute the same formulas in float64; only the order of their sums differs.
LOCKSTEP_TARGETS = {"float64": 1e-9}

# lockstep's rule, float32 (issue #16). Rounding at 2^-24 makes any float32 training run leave
# the exact trajectory, and Adam amplifies it: a parameter whose exact gradient is 0 (a conv bias
# before train-mode BatchNorm) gets rounding noise as its gradient, and Adam's update m/sqrt(v)
# turns noise comparable to its eps into steps of size lr. No float32 implementation can then stay
# within a fixed tolerance of another one for hundreds of steps; torch against itself does not.
# The reference is therefore a float64 run (rounding 2^-53: exact at this scale) from the same
# weights, batches and masks. A run's distance from it is its loss deviation, |loss - loss_float64|
# / |loss_float64| at each step: what training is about, and blind to the wandering of a bias
# that BatchNorm cancels (max |w - w_float64| is reported too, but such a bias dominates it).
# tinyconv-float32 passes when its largest deviation is at most FACTOR x torch-float32's largest
# deviation, or FLOOR:
# - FACTOR 4: two correct float32 implementations differ only in the order of their sums, which
#   moves the error by a small factor either way; a real bug (a wrong gradient, a lost term)
#   moves the loss by orders of magnitude more.
# - FLOOR 1e-6 (16 float32 roundings): when torch-float32 happens to stay almost exactly on the
#   float64 path (few steps, no amplified parameter), tinyconv is not asked to do better than
#   a handful of roundings.
FLOAT32_RULE = {"factor": 4.0, "floor": 1e-6}

# model -> (dataset, normalisation mean, std, loss): as in each network's tutorial
DATA = {
    "fashioncnn": ("FashionMNIST", 0.5, 0.5, "cross_entropy"),
    "deepfashioncnn": ("FashionMNIST", 0.5, 0.5, "cross_entropy"),
    "convmodule": ("MNIST", 0.5, 0.5, "cross_entropy"),
    "fc2layer": ("MNIST", 0.1307, 0.3081, "nll_loss"),
    "cnn": ("MNIST", 0.1307, 0.3081, "nll_loss"),
}


# ---------------------------------------------------------------------------------------------
# shared plumbing


def pick_device(device):
    """--device, else cuda when available, else cpu; TF32 off so that float32 means float32."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"error: --device {device}: CUDA is not available here")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(device)


def load_dataset(model, data_dir, train):
    """The model's data set (train or test split) as NumPy-batch-producing dataset."""
    name, mean, std, _ = DATA[model]
    transform = T.Compose([T.ToTensor(), T.Normalize((mean,), (std,))])
    try:
        return getattr(tinyconv.data, name)(data_dir, train=train, transform=transform,
                                            download=False)
    except tinyconv.data.DataError as exc:
        raise SystemExit(f"error: {exc}") from None


def loader(dataset, batch_size, shuffle=False, seed=0):
    """Batches of NumPy arrays (float32 images, int64 labels), in an order fixed by ``seed``."""
    batches = tinyconv.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=seed)
    return NumpyBatches(batches)


class NumpyBatches:
    """A tinyconv DataLoader whose batches come out as NumPy arrays (no copy)."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        for batch in self.loader:
            yield tuple(t.numpy() for t in batch)

    def __len__(self):
        return len(self.loader)


def make_twins(model, dtype, device, seed=0):
    """The tinyconv network (initialised with ``seed``) and its torch twin, same weights."""
    tinyconv.manual_seed(seed)
    tiny = SEED_NETWORKS[model][0]().to(np.dtype(dtype))
    return tiny, to_torch(tiny, dtype=dtype, device=device)


def losses(model):
    kind = DATA[model][3]
    tiny_fn = F.cross_entropy if kind == "cross_entropy" else F.nll_loss
    torch_fn = (torch.nn.functional.cross_entropy if kind == "cross_entropy"
                else torch.nn.functional.nll_loss)
    return kind, tiny_fn, torch_fn


def as_inputs(x, y, dtype, device):
    x = np.asarray(x, dtype=np.dtype(dtype))
    y = np.asarray(y, dtype=np.int64)
    return ((tinyconv.tensor(x), tinyconv.tensor(y)),
            (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)))


def to_np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t.detach().numpy())


def difference(a, b):
    """(max abs difference, max abs difference / max |b|) of two arrays of the same shape."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: tinyconv {a.shape}, torch {b.shape}")
    if a.size == 0:
        return 0.0, 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return diff, diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def weight_drift(tiny, theirs, with_name=False):
    """Max |w_tinyconv - w_torch| over every parameter of the twins (and where, on request)."""
    ours = dict(tiny.named_parameters())
    drift, where = max((float(np.max(np.abs(to_np(ours[n]).astype(np.float64)
                                            - to_np(p).astype(np.float64)))), n)
                       for n, p in theirs.named_parameters())
    return (drift, where) if with_name else drift


def optimizers(name, tiny, theirs, lr, momentum=0.9):
    """The same optimizer for each twin: (tinyconv's, torch's)."""
    return (optimizer(tinyconv, name, tiny, lr, momentum),
            optimizer(torch, name, theirs, lr, momentum))


def optimizer(fw, name, model, lr, momentum=0.9):
    """``fw.optim.Adam`` or ``fw.optim.SGD`` (with momentum) over the model's parameters."""
    if name == "adam":
        return fw.optim.Adam(model.parameters(), lr=lr)
    return fw.optim.SGD(model.parameters(), lr=lr, momentum=momentum)


def train_step(tiny, theirs, opts, loss_fns, batch, dtype, device):
    """One optimizer step of both twins on the same batch (dropout masks: the caller's context).

    Returns the two losses as floats.
    """
    (x, y), (tx, ty) = as_inputs(*batch, dtype, device)
    tiny_loss = loss_fns[0](tiny(x), y)
    torch_loss = loss_fns[1](theirs(tx), ty)
    for opt in opts:
        opt.zero_grad()
    tiny_loss.backward()
    torch_loss.backward()
    for opt in opts:
        opt.step()
    return float(tiny_loss.item()), float(torch_loss.item())


def masks_note(seed):
    return (f"dropout masks: shared; parity.twins.MaskSource draws each mask once with NumPy "
            f"(default_rng({seed}), keep = u >= p, scaled by 1/(1-p)) and both twins' Dropout "
            f"modules apply that same array")


# ---------------------------------------------------------------------------------------------
# compare


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


# ---------------------------------------------------------------------------------------------
# lockstep


def lockstep(args):
    """float64: the twins against each other (target 1e-9); float32: both against float64."""
    if args.dtype == "float32":
        return lockstep_float32(args)
    return lockstep_float64(args)


def lockstep_float64(args):
    device = pick_device(args.device)
    dtype = args.dtype
    train_set = load_dataset(args.model, args.data_dir, train=True)
    batches = loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    tiny, theirs = make_twins(args.model, dtype, device, args.seed)
    tiny.train()
    theirs.train()
    _, tiny_fn, torch_fn = losses(args.model)
    opts = optimizers(args.optimizer, tiny, theirs, args.lr)
    target = LOCKSTEP_TARGETS[dtype]
    print(f"parity lockstep: {args.model}, {dtype}, {args.optimizer} lr {args.lr:g}, batch "
          f"{args.batch_size}, {args.steps} steps, torch on {device}")
    print(masks_note(args.seed))
    print("rel gap = |loss_tinyconv - loss_torch| / |loss_torch|; drift = max |w_tinyconv - "
          "w_torch| over all parameters after the step\n")
    print(f"{'step':>5} {'loss tinyconv':>16} {'loss torch':>16} {'abs gap':>10} {'rel gap':>10} "
          f"{'drift':>10}  (largest in)")
    history = []
    source = MaskSource(args.seed)
    start = time.perf_counter()
    stream = _cycle(batches)
    with shared_dropout(tiny, theirs, source=source):
        for step in range(1, args.steps + 1):
            a, b = train_step(tiny, theirs, opts, (tiny_fn, torch_fn), next(stream), dtype,
                              device)
            gap = abs(a - b)
            drift, where = weight_drift(tiny, theirs, with_name=True)
            entry = dict(step=step, loss_tinyconv=a, loss_torch=b, abs_gap=gap,
                         rel_gap=gap / abs(b) if b else gap, drift=drift, drift_param=where)
            history.append(entry)
            if step in _report_steps(args.steps) or not math.isfinite(a + b):
                print(f"{step:>5} {a:>16.10f} {b:>16.10f} {gap:>10.2e} {entry['rel_gap']:>10.2e} "
                      f"{drift:>10.2e}  {where}")
            if not math.isfinite(a + b):
                print("a loss is not finite: stopping")
                break
    elapsed = time.perf_counter() - start
    summary = summarize(history, target)
    summary.update(model=args.model, dtype=dtype, optimizer=args.optimizer, lr=args.lr,
                   batch_size=args.batch_size, steps=len(history), device=str(device),
                   seed=args.seed, seconds=round(elapsed, 1), masks_shared=source.drawn)
    print(f"\nmax rel gap {summary['max_rel_gap']:.2e} (at step {summary['max_rel_gap_step']}); "
          f"max rel gap over steps 1-10: {summary['max_rel_gap_by_step'].get('10', math.nan):.2e}"
          f", final drift {summary['final_drift']:.2e}; target {target:g}: "
          f"{'met' if summary['target_met'] else 'NOT met'}")
    print("growth of the max rel gap so far: " + ", ".join(
        f"<= step {k}: {v:.2e}" for k, v in summary["max_rel_gap_by_step"].items()))
    if args.baseline and len(history) == args.steps:
        base = torch_baseline(args, dtype, device, len(history))
        summary["torch_vs_torch"] = base
        print(f"baseline, torch against itself ({base['threads'][0]} vs {base['threads'][1]} "
              f"threads; same weights, batches and masks): max rel gap "
              f"{base['max_rel_gap']:.2e}; growth: " + ", ".join(
                  f"<= step {k}: {v:.2e}" for k, v in base["max_rel_gap_by_step"].items()))
    out = args.out or os.path.join("runs", "parity", f"lockstep-{args.model}-{dtype}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "lockstep.json"), "w") as f:
        json.dump({"summary": summary, "history": history}, f, indent=1)
    plot_lockstep(history, summary, os.path.join(out, "lockstep.png"))
    print(f"wrote {out}/lockstep.json and {out}/lockstep.png ({elapsed:.0f} s)")
    return 0 if summary["target_met"] else 1


def lockstep_float32(args):
    """Three runs from the same weights, batches and dropout masks, judged by FLOAT32_RULE.

    tinyconv-float32 and torch-float32 are compared with the reference, torch-float64 (its
    tinyconv-float64 twin runs alongside: the two float64 runs must agree to 1e-9, which shows
    that the reference is the exact trajectory to float32's eyes, not one framework's quirk).
    Masks: each pair (float32 twins, float64 twins) draws from its own MaskSource(seed); both
    draw the same random numbers in the same order, so all four runs drop the same units.
    """
    device = pick_device(args.device)
    rule = FLOAT32_RULE
    train_set = load_dataset(args.model, args.data_dir, train=True)
    batches = loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    tiny32, torch32 = make_twins(args.model, "float32", device, args.seed)
    tiny64, torch64 = make_twins(args.model, "float64", device, args.seed)
    models = (tiny32, torch32, tiny64, torch64)
    for model in models:
        model.train()
    _, tiny_fn, torch_fn = losses(args.model)
    opts32 = optimizers(args.optimizer, tiny32, torch32, args.lr)
    opts64 = optimizers(args.optimizer, tiny64, torch64, args.lr)
    print(f"parity lockstep: {args.model}, float32 against float64, {args.optimizer} lr "
          f"{args.lr:g}, batch {args.batch_size}, {args.steps} steps, torch on {device}")
    print(masks_note(args.seed) + " (the float64 pair draws the same masks)")
    print(f"reference: torch float64 (its tinyconv twin: 'float64 twins' = their relative loss "
          f"gap)\ndev = |loss - loss_float64| / |loss_float64|, judged; weight dist = max |w - "
          f"w_float64| over all parameters after the step, reported\nrule: tinyconv-float32 "
          f"passes if its largest dev <= max({rule['factor']:g} x torch-float32's largest dev, "
          f"{rule['floor']:g}) (see FLOAT32_RULE)\n")
    print(f"{'step':>5} {'loss float64':>14} {'dev tinyconv':>13} {'dev torch':>10} "
          f"{'weight dist tinyconv':>21} {'weight dist torch':>18} {'float64 twins':>14}")
    history = []
    sources = (MaskSource(args.seed), MaskSource(args.seed))
    start = time.perf_counter()
    stream = _cycle(batches)
    with shared_dropout(tiny32, torch32, source=sources[0]), \
            shared_dropout(tiny64, torch64, source=sources[1]):
        for step in range(1, args.steps + 1):
            batch = next(stream)
            t32, p32 = train_step(tiny32, torch32, opts32, (tiny_fn, torch_fn), batch,
                                  "float32", device)
            t64, reference = train_step(tiny64, torch64, opts64, (tiny_fn, torch_fn), batch,
                                        "float64", device)
            dist_tiny, where_tiny = weight_drift(tiny32, torch64, with_name=True)
            dist_torch, where_torch = weight_drift(torch32, torch64, with_name=True)
            entry = dict(step=step, loss_reference=reference, loss_tinyconv=t32,
                         loss_torch=p32, loss_tinyconv64=t64,
                         loss_dev_tinyconv=abs(t32 - reference) / abs(reference),
                         loss_dev_torch=abs(p32 - reference) / abs(reference),
                         dist_tinyconv=dist_tiny, dist_tinyconv_param=where_tiny,
                         dist_torch=dist_torch, dist_torch_param=where_torch,
                         reference_twins_gap=abs(t64 - reference) / abs(reference))
            history.append(entry)
            finite = math.isfinite(t32 + p32 + reference)
            if step in _report_steps(args.steps) or not finite:
                print(f"{step:>5} {reference:>14.8f} {entry['loss_dev_tinyconv']:>13.2e} "
                      f"{entry['loss_dev_torch']:>10.2e} {dist_tiny:>21.2e} {dist_torch:>18.2e} "
                      f"{entry['reference_twins_gap']:>14.2e}")
            if not finite:
                print("a loss is not finite: stopping")
                break
    elapsed = time.perf_counter() - start
    summary = summarize_float32(history, rule)
    summary.update(model=args.model, dtype="float32", optimizer=args.optimizer, lr=args.lr,
                   batch_size=args.batch_size, steps=len(history), device=str(device),
                   seed=args.seed, seconds=round(elapsed, 1), masks_shared=sources[0].drawn,
                   reference="torch float64")
    print(f"\nlargest dev from float64: tinyconv-float32 {summary['max_loss_dev_tinyconv']:.2e} "
          f"(step {summary['max_loss_dev_tinyconv_step']}), torch-float32 "
          f"{summary['max_loss_dev_torch']:.2e} (step {summary['max_loss_dev_torch_step']})")
    print(f"largest weight dist: tinyconv-float32 {summary['max_dist_tinyconv']:.2e} "
          f"({summary['max_dist_tinyconv_param']}), torch-float32 {summary['max_dist_torch']:.2e} "
          f"({summary['max_dist_torch_param']})")
    print(f"float64 twins: largest relative loss gap {summary['max_reference_twins_gap']:.2e} "
          f"(<= {LOCKSTEP_TARGETS['float64']:g}: " + ("the reference is sound)"
                                                      if summary["reference_ok"]
                                                      else "NOT met: a bug, not rounding)"))
    print(f"verdict: {summary['max_loss_dev_tinyconv']:.2e} <= max({rule['factor']:g} x "
          f"{summary['max_loss_dev_torch']:.2e}, {rule['floor']:g}) = {summary['allowed']:.2e}: "
          f"{'met' if summary['target_met'] else 'NOT met'}")
    if args.baseline and len(history) == args.steps:
        base = torch_baseline(args, "float32", device, len(history))
        summary["torch_vs_torch"] = base
        print(f"baseline, torch-float32 against itself ({base['threads'][0]} vs "
              f"{base['threads'][1]} threads): max rel loss gap {base['max_rel_gap']:.2e}")
    out = args.out or os.path.join("runs", "parity", f"lockstep-{args.model}-float32")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "lockstep.json"), "w") as f:
        json.dump({"summary": summary, "history": history}, f, indent=1)
    plot_lockstep_float32(history, summary, os.path.join(out, "lockstep.png"))
    print(f"wrote {out}/lockstep.json and {out}/lockstep.png ({elapsed:.0f} s)")
    return 0 if summary["target_met"] else 1


def summarize_float32(history, rule):
    """The largest deviations of both float32 runs from float64, and FLOAT32_RULE's verdict."""
    summary = {}
    for key in ("dist_tinyconv", "dist_torch", "loss_dev_tinyconv", "loss_dev_torch",
                "reference_twins_gap"):
        values = np.array([h[key] for h in history])
        worst = int(np.argmax(values))
        summary[f"max_{key}"] = float(values[worst])
        summary[f"max_{key}_step"] = worst + 1
        if key.startswith("dist_"):
            summary[f"max_{key}_param"] = history[worst][f"{key}_param"]
    allowed = max(rule["factor"] * summary["max_loss_dev_torch"], rule["floor"])
    reference_ok = summary["max_reference_twins_gap"] <= LOCKSTEP_TARGETS["float64"]
    summary.update(rule=dict(rule), allowed=allowed, target=allowed, reference_ok=reference_ok,
                   target_met=bool(summary["max_loss_dev_tinyconv"] <= allowed and reference_ok))
    return summary


def plot_lockstep_float32(history, summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [h["step"] for h in history]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    top.plot(steps, [h["loss_reference"] for h in history], label="float64 (reference)")
    top.plot(steps, [h["loss_tinyconv"] for h in history], "--", label="tinyconv float32")
    top.plot(steps, [h["loss_torch"] for h in history], ":", label="torch float32")
    top.set_ylabel("training loss")
    top.set_title(f"lockstep {summary['model']}: float32 against float64 ({summary['optimizer']})")
    top.legend()
    top.grid(alpha=0.3)
    for key, label in (("loss_dev_tinyconv", "tinyconv float32"),
                       ("loss_dev_torch", "torch float32")):
        bottom.semilogy(steps, [h[key] if h[key] > 0 else math.nan for h in history],
                        label=f"{label}: |loss - loss_float64| / |loss_float64|")
    bottom.axhline(summary["allowed"], color="grey", ls=":",
                   label=f"allowed for tinyconv {summary['allowed']:.1e}")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def torch_baseline(args, dtype, device, steps):
    """The lockstep run again with torch on both sides, one with a single thread.

    The two differ only in the order in which torch's kernels add up (thread count decides how
    sums are split), which shows how far float32 rounding alone moves two runs of the same
    framework apart in this recipe: the yardstick for the tinyconv-torch gap.
    """
    threads = torch.get_num_threads()
    pair = (1, threads) if threads > 1 else (1, 2)
    batches = loader(load_dataset(args.model, args.data_dir, train=True), args.batch_size,
                     shuffle=True, seed=args.seed)
    _, first = make_twins(args.model, dtype, device, args.seed)
    _, second = make_twins(args.model, dtype, device, args.seed)
    first.train()
    second.train()
    _, _, loss_fn = losses(args.model)
    opts = [optimizer(torch, args.optimizer, m, args.lr) for m in (first, second)]
    rel, stream = [], _cycle(batches)
    try:
        with shared_dropout_torch(first, second, seed=args.seed):
            for _ in range(steps):
                _, (tx, ty) = as_inputs(*next(stream), dtype, device)
                pair_losses = []
                for model, opt, n in zip((first, second), opts, pair, strict=True):
                    torch.set_num_threads(n)
                    loss = loss_fn(model(tx), ty)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    pair_losses.append(float(loss.item()))
                a, b = pair_losses
                rel.append(abs(a - b) / abs(b) if b else abs(a - b))
    finally:
        torch.set_num_threads(threads)
    rel = np.array(rel)
    return dict(threads=list(pair), max_rel_gap=float(rel.max()),
                max_rel_gap_by_step={str(k): float(np.max(rel[:k]))
                                     for k in sorted(_report_steps(steps))})


def _cycle(batches):
    while True:
        yield from batches


def _report_steps(steps):
    marks = {1, 2, 5, steps}
    for k in (10, 20, 50, 100, 150, 200, 300, 500, 1000):
        marks.add(k)
    return {s for s in marks if s <= steps}


def summarize(history, target):
    rel = np.array([h["rel_gap"] for h in history])
    by_step = {}
    for k in sorted(_report_steps(len(history))):
        by_step[str(k)] = float(np.max(rel[:k]))
    worst = int(np.argmax(rel))
    return dict(max_rel_gap=float(rel.max()), max_rel_gap_step=worst + 1,
                max_abs_gap=float(max(h["abs_gap"] for h in history)),
                final_drift=history[-1]["drift"], max_drift=max(h["drift"] for h in history),
                max_rel_gap_by_step=by_step, target=target,
                target_met=bool(rel.max() <= target))


def plot_lockstep(history, summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [h["step"] for h in history]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    top.plot(steps, [h["loss_tinyconv"] for h in history], label="tinyconv")
    top.plot(steps, [h["loss_torch"] for h in history], "--", label="torch")
    top.set_ylabel("training loss")
    top.set_title(f"lockstep {summary['model']} {summary['dtype']} ({summary['optimizer']})")
    top.legend()
    top.grid(alpha=0.3)
    def positive(key):  # a gap of exactly 0 has no place on a log scale: leave it out
        return [h[key] if h[key] > 0 else math.nan for h in history]

    bottom.semilogy(steps, positive("rel_gap"), label="rel loss gap")
    bottom.semilogy(steps, positive("drift"), label="weight drift (max abs)")
    bottom.axhline(summary["target"], color="grey", ls=":", label=f"target {summary['target']:g}")
    bottom.set_xlabel("step")
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# accuracy


def accuracy(args):
    device = pick_device(args.device)
    dtype = args.dtype
    train_set = load_dataset(args.model, args.data_dir, train=True)
    test_set = load_dataset(args.model, args.data_dir, train=False)
    if args.limit_train:
        order = np.random.default_rng(args.seed).permutation(len(train_set))[:args.limit_train]
        train_set = tinyconv.data.Subset(train_set, np.sort(order))
    batches = loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    tiny, theirs = make_twins(args.model, dtype, device, args.seed)
    _, tiny_fn, torch_fn = losses(args.model)
    opts = optimizers(args.optimizer, tiny, theirs, args.lr)
    print(f"parity accuracy: {args.model}, {dtype}, {args.optimizer} lr {args.lr:g}, batch "
          f"{args.batch_size}, {args.epochs} epoch(s) on {len(train_set)} training images, "
          f"torch on {device}; same initial weights (seed {args.seed}), same batch order")
    print(masks_note(args.seed))
    source = MaskSource(args.seed)
    results = []
    for epoch in range(1, args.epochs + 1):
        tiny.train()
        theirs.train()
        sums, seen, start = np.zeros(2), 0, time.perf_counter()
        with shared_dropout(tiny, theirs, source=source):
            for batch in batches:
                a, b = train_step(tiny, theirs, opts, (tiny_fn, torch_fn), batch, dtype, device)
                sums += np.array([a, b]) * len(batch[1])
                seen += len(batch[1])
        acc, agree = evaluate(tiny, theirs, test_set, dtype, device)
        train_loss = sums / seen
        results.append(dict(epoch=epoch, train_loss_tinyconv=train_loss[0],
                            train_loss_torch=train_loss[1], test_acc_tinyconv=acc[0],
                            test_acc_torch=acc[1], prediction_agreement=agree,
                            drift=weight_drift(tiny, theirs)))
        print(f"epoch {epoch}: train loss tinyconv {train_loss[0]:.4f} torch {train_loss[1]:.4f}"
              f"; test accuracy tinyconv {acc[0]:.2f}% torch {acc[1]:.2f}% (gap "
              f"{acc[0] - acc[1]:+.2f} points); same prediction on {agree:.2f}% of the test "
              f"images; weight drift {results[-1]['drift']:.2e} "
              f"({time.perf_counter() - start:.0f} s)")
    ours, theirs = results[-1]["test_acc_tinyconv"], results[-1]["test_acc_torch"]
    print(f"\nfinal test accuracy: tinyconv {ours:.2f}%, torch {theirs:.2f}%, gap "
          f"{ours - theirs:+.2f} points")
    return 0


def evaluate(tiny, theirs, test_set, dtype, device):
    tiny.eval()
    theirs.eval()
    correct, agree, seen = np.zeros(2), 0, 0
    with tinyconv.no_grad(), torch.no_grad():
        for x, y in loader(test_set, 1000):
            (tx, _), (px, _) = as_inputs(x, y, dtype, device)
            p1 = np.argmax(to_np(tiny(tx)), 1)
            p2 = np.argmax(to_np(theirs(px)), 1)
            correct += [np.sum(p1 == y), np.sum(p2 == y)]
            agree += int(np.sum(p1 == p2))
            seen += len(y)
    return 100.0 * correct / seen, 100.0 * agree / seen


# ---------------------------------------------------------------------------------------------
# argument parsing


def positive_int(text):
    """argparse type: an integer >= 1 (examples/common.py has the same, for the scripts)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


LOCKSTEP_HELP = f"""\
Train the tinyconv network and its torch twin step by step on the same batches, with the same
optimizer and dropout masks.

float64 (the default): the twins against each other; the relative gap between their loss curves
must stay <= {LOCKSTEP_TARGETS['float64']:g} (same formulas; only the order of sums differs).

float32: judged against exact arithmetic. Two float32 runs drift apart over many steps whatever
their code (Adam turns the rounding noise in a gradient that is exactly 0 into steps of size
lr), so no fixed tolerance between tinyconv and torch can hold. The reference is a float64 run
(torch, from the same weights, batches and masks; its tinyconv twin must agree with it to
{LOCKSTEP_TARGETS['float64']:g}). Per step, each float32 run's dev = |loss - loss_float64| /
|loss_float64| is reported, with its weight distance max |w - w_float64|. tinyconv-float32
passes when its largest dev <= max({FLOAT32_RULE['factor']:g} x torch-float32's largest dev, \
{FLOAT32_RULE['floor']:g}): a small factor because
two correct implementations differ only in the order of their roundings, a floor for when torch
happens to stay on the float64 path. Exit status 1 when the target or the rule is not met."""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m parity", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, dtype_default):
        p.add_argument("--model", choices=sorted(SEED_NETWORKS), default="fashioncnn")
        p.add_argument("--dtype", choices=["float32", "float64"], default=dtype_default)
        p.add_argument("--device", default=None,
                       help="torch side: cuda or cpu (default: cuda when available)")
        p.add_argument("--batch-size", type=positive_int, default=64)
        p.add_argument("--data-dir", default=None,
                       help="data root (default: $TINYCONV_DATA, else ./data)")
        p.add_argument("--seed", type=int, default=0,
                       help="initial weights (tinyconv), batch order and dropout masks")

    def training(p):
        p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
        p.add_argument("--lr", type=positive_float, default=1e-3)

    p = sub.add_parser("compare", help="one batch, forward and backward, layer by layer")
    common(p, "float64")
    p = sub.add_parser("lockstep", help="train both twins step by step; loss gap and drift "
                       "(float32: both against a float64 run)", description=LOCKSTEP_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common(p, "float64")
    training(p)
    p.add_argument("--steps", type=positive_int, default=200)
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                   help="also run torch against itself (1 thread vs several) on the same "
                        "batches: how far rounding alone moves two runs apart (default: on in "
                        "float64, off in float32, where torch-float32's distance from float64 "
                        "is the yardstick)")
    p.add_argument("--out", default=None,
                   help="folder for lockstep.json and lockstep.png "
                        "(default runs/parity/lockstep-MODEL-DTYPE)")
    p = sub.add_parser("accuracy", help="train both, then compare test accuracies")
    common(p, "float32")
    training(p)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--limit-train", type=positive_int, default=None, metavar="N",
                   help="train on a random subset of N images")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "baseline", False) is None:
        args.baseline = args.dtype == "float64"
    command = {"compare": compare, "lockstep": lockstep, "accuracy": accuracy}[args.command]
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
