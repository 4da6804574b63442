"""``python -m parity lockstep``: both twins trained step by step, on the same batches.

float64: the twins against each other (``LOCKSTEP_TARGETS``). float32: judged against exact
arithmetic, not against torch: two float32 runs drift apart over many steps whatever their code
(torch against itself with another thread count drifts as far), so the reference is a float64
run from the same weights, batches and masks, and tinyconv-float32 must stay as close to it as
torch-float32 does (``FLOAT32_RULE``; both in targets.py).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .harness import (
    as_inputs,
    cycle,
    load_dataset,
    loader,
    losses,
    make_twins,
    masks_note,
    optimizer,
    optimizers,
    pick_device,
    train_step,
    weight_drift,
)
from .report import plot_lockstep, plot_lockstep_float32, write_lockstep
from .targets import FLOAT32_RULE, LOCKSTEP_TARGETS, report_steps, summarize, summarize_float32
from .twins import MaskSource, shared_dropout, shared_dropout_torch


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
    stream = cycle(batches)
    with shared_dropout(tiny, theirs, source=source):
        for step in range(1, args.steps + 1):
            a, b = train_step(tiny, theirs, opts, (tiny_fn, torch_fn), next(stream), dtype,
                              device)
            gap = abs(a - b)
            drift, where = weight_drift(tiny, theirs, with_name=True)
            entry = dict(step=step, loss_tinyconv=a, loss_torch=b, abs_gap=gap,
                         rel_gap=gap / abs(b) if b else gap, drift=drift, drift_param=where)
            history.append(entry)
            if step in report_steps(args.steps) or not math.isfinite(a + b):
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
    write_lockstep(args.out, args.model, dtype, history, summary, plot_lockstep, elapsed)
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
    stream = cycle(batches)
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
            if step in report_steps(args.steps) or not finite:
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
    write_lockstep(args.out, args.model, "float32", history, summary, plot_lockstep_float32,
                   elapsed)
    return 0 if summary["target_met"] else 1


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
    rel, stream = [], cycle(batches)
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
                                     for k in sorted(report_steps(steps))})
