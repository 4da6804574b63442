"""``python -m parity accuracy``: train both twins, then compare their test accuracies."""

from __future__ import annotations

import time

import numpy as np
import torch

import tinyconv
import tinyconv.data

from .harness import (
    as_inputs,
    load_dataset,
    loader,
    losses,
    make_twins,
    masks_note,
    optimizers,
    pick_device,
    to_np,
    train_step,
    weight_drift,
)
from .twins import MaskSource, shared_dropout


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
