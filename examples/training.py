"""``run``: a whole training run of an example, or the evaluation of a checkpoint.

Everything that can be refused is refused first (run_guard.py), then the backend, the data, the
model, the optimizer and the schedule are built (or restored from a checkpoint), then the epochs
run (epochs.py), one checkpoint each, and the report is written.

Part of what common.py shares; import it from there (common.py prepares the process first).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from backend import Backend, networks, set_threads
from epochs import evaluate, format_confusion, load_datasets, save_plots, train_epoch, write_json
from options import DEFAULT_LR, DEFAULT_MOMENTUM, fail, one_line
from run_guard import (
    check_out_dir,
    check_output_file,
    check_resume,
    finish_before_interrupt,
    interrupted_message,
    load_checkpoint,
    make_folder,
)

import tinyconv
from tinyconv.data import transforms as T


def augmented(transform, augmentations):
    """``transform`` (a Compose starting with ToTensor) with ``augmentations`` after ToTensor."""
    steps = list(transform.transforms)
    return T.Compose(steps[:1] + list(augmentations) + steps[1:])


def make_scheduler(backend, name, optimizer, epochs, step_size):
    """One scheduler step per epoch: cosine over all epochs, or x0.1 every ``step_size``."""
    if name == "none":
        return None
    schedulers = backend.lib.optim.lr_scheduler
    if name == "cosine":
        return schedulers.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return schedulers.StepLR(optimizer, step_size=step_size, gamma=0.1)
    raise SystemExit(f"error: unknown scheduler {name!r}: choose none, cosine or step")


def run(args, *, title, dataset_cls, transform, criterion_name="cross_entropy",
        augmentations=None, extra_outputs=None):
    """Train (or resume, or only evaluate) ``args.model`` and write everything to ``args.out``.

    Everything that can be checked is checked before the data is read: the options (argparse),
    the checkpoint to resume or evaluate (readable, the same model, optimizer and schedule),
    the output folder (writable, not holding another run). Then training; Ctrl-C stops it with
    exit status 130, keeping the checkpoint of the last finished epoch and saying where it is.

    ``augmentations(generator)`` returns the random transforms used with ``--augment``; they draw
    from one generator whose state is saved in the checkpoint, so a resumed run continues with
    the same random crops, flips and rotations. ``extra_outputs(out_dir)`` writes files of the
    example's own (CIFAR-10's data set plots) once the folder is known to be writable.
    """
    out_dir = args.out or os.path.join("runs", f"{args.model}-{args.backend}")
    if args.evaluate:
        return _evaluate_checkpoint(args, title, dataset_cls, transform, criterion_name)
    progress = {"saved_epoch": None, "removed": [],
                "checkpoint": os.path.join(out_dir, "checkpoint.npz")}
    try:
        return _train(args, out_dir, progress, title=title, dataset_cls=dataset_cls,
                      transform=transform, criterion_name=criterion_name,
                      augmentations=augmentations, extra_outputs=extra_outputs)
    except KeyboardInterrupt:
        print("\n" + interrupted_message(args, progress), flush=True)
        raise SystemExit(130) from None


def _evaluate_checkpoint(args, title, dataset_cls, transform, criterion_name):
    """--evaluate: the test loss and accuracy of a checkpoint; writes nothing."""
    ckpt = load_checkpoint(args.evaluate, "--evaluate")
    if "model" not in ckpt:  # a bare state_dict, e.g. tinyconv.save(model.state_dict(), p)
        ckpt = {"model": ckpt}
    saved_model = ckpt.get("model_name")
    if saved_model is not None and saved_model != args.model:
        fail(f"--model {args.model}: {args.evaluate} holds a {saved_model} "
             f"(pass --model {saved_model})")
    backend = Backend(args.backend, args.device)
    set_threads(backend, args.threads)
    lib, device = backend.lib, backend.device
    _, test_set = load_datasets(dataset_cls, args.data_dir, transform, None, args.seed,
                                args.limit_test)
    model = backend.build(args.model, args.seed)
    try:
        backend.load_state(model, ckpt["model"])
    except (ValueError, RuntimeError, TypeError, KeyError, AttributeError) as exc:
        fail(f"--evaluate {args.evaluate} does not hold a {args.model} state_dict: "
             f"{one_line(exc)}")
    criterion = (lib.nn.CrossEntropyLoss() if criterion_name == "cross_entropy"
                 else lib.nn.NLLLoss())
    test_loss, test_acc, _ = evaluate(model, backend.loader(test_set, args.test_batch_size),
                                      criterion, lib, device)
    print(f"{args.evaluate} (written by the {ckpt.get('backend', '?')} backend), evaluated "
          f"with {args.backend}: test loss {test_loss:.4f}, test accuracy {test_acc:.2f}%")
    return {"test_loss": test_loss, "test_acc": test_acc}


def _train(args, out_dir, progress, *, title, dataset_cls, transform, criterion_name,
           augmentations, extra_outputs):
    # 1. Everything that can be refused, before any work.
    ckpt, lr_change = None, None
    if args.resume:
        ckpt = load_checkpoint(args.resume, "--resume")
        lr_change = check_resume(args, ckpt)
    args.lr = DEFAULT_LR if args.lr is None else args.lr
    args.momentum = DEFAULT_MOMENTUM if args.momentum is None else args.momentum
    if getattr(args, "augment", False) and augmentations is None:
        fail("--augment is not available for this example")
    old_outputs = check_out_dir(out_dir, overwrite=args.overwrite, resume=args.resume)
    if args.export_onnx:
        check_output_file(args.export_onnx, "--export-onnx", args.overwrite)

    # 2. The run: backend, data, model, optimizer, schedule (and their state when resuming).
    backend = Backend(args.backend, args.device)
    set_threads(backend, args.threads)
    lib, device = backend.lib, backend.device
    augment_rng = np.random.default_rng(args.seed + 1)
    train_transform = None
    if getattr(args, "augment", False):
        train_transform = augmented(transform, augmentations(augment_rng))
    train_set, test_set = load_datasets(dataset_cls, args.data_dir, transform, args.limit_train,
                                        args.seed, args.limit_test, train_transform)
    class_names = list(dataset_cls.classes)
    model = backend.build(args.model, args.seed)
    criterion = (lib.nn.CrossEntropyLoss() if criterion_name == "cross_entropy"
                 else lib.nn.NLLLoss())
    optimizer = backend.optimizer(args.optimizer, model.parameters(), args.lr, args.momentum)
    scheduler = make_scheduler(backend, args.scheduler, optimizer, args.epochs, args.step_size)
    train_loader = backend.loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = backend.loader(test_set, args.test_batch_size)
    ckpt_path = os.path.join(out_dir, "checkpoint.npz")
    best_path = os.path.join(out_dir, "best.npz")

    history, start_epoch = [], 1
    if ckpt is not None:
        try:
            backend.load_state(model, ckpt["model"])
            optimizer.load_state_dict(backend.optimizer_state_from_numpy(ckpt["optimizer"]))
            if scheduler is not None:
                scheduler.load_state_dict(ckpt["scheduler"])
        except (ValueError, RuntimeError, TypeError, KeyError, AttributeError) as exc:
            fail(f"--resume {args.resume} does not fit this {args.model} run: {one_line(exc)}")
        backend.set_rng_state(ckpt["rng"])
        train_loader.generator.bit_generator.state = ckpt["loader_rng"]
        augment_rng.bit_generator.state = ckpt["augment_rng"]
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"]) + 1
        print(f"resumed from {args.resume} after epoch {ckpt['epoch']}")
        if lr_change is not None:
            for group in optimizer.param_groups:
                group["lr"] = args.lr
            print(f"--lr {args.lr:g} replaces the checkpoint's learning rate {lr_change[0]:g} "
                  f"from epoch {start_epoch} on")

    # 3. The folder: the previous run's outputs go (--overwrite), the example's own files come.
    make_folder(out_dir, "--out")
    if args.export_onnx:
        make_folder(os.path.dirname(os.path.abspath(args.export_onnx)), "--export-onnx")
    for name in old_outputs:
        os.remove(os.path.join(out_dir, name))
    progress["removed"] = old_outputs
    if old_outputs:
        print(f"--overwrite: removed the previous run's {', '.join(old_outputs)} from {out_dir}")
    if extra_outputs is not None:
        extra_outputs(out_dir)

    # 4. Training, one checkpoint per epoch.
    n_params = sum(p.nelement() for p in model.parameters())
    print(f"{title} on {args.backend} ({device}): {len(train_set):,} train / {len(test_set):,} "
          f"test images, {n_params:,} parameters, {args.optimizer} "
          f"lr={optimizer.param_groups[0]['lr']:g}, batch {args.batch_size}, epochs "
          f"{start_epoch}..{args.epochs}, writing to {out_dir}", flush=True)
    run_start = time.perf_counter()
    try:
        for epoch in range(start_epoch, args.epochs + 1):
            t0 = time.perf_counter()
            train_loss, train_acc, img_s = train_epoch(
                model, train_loader, criterion, optimizer, lib, device,
                desc=f"epoch {epoch}/{args.epochs}")
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            test_loss, test_acc, confusion = evaluate(model, test_loader, criterion, lib, device)
            seconds = time.perf_counter() - t0
            history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                                test_loss=test_loss, test_acc=test_acc, seconds=seconds,
                                train_images_per_s=img_s, lr=lr))
            print(f"epoch {epoch:>3}/{args.epochs}  train loss {train_loss:.4f} acc "
                  f"{train_acc:6.2f}%  |  test loss {test_loss:.4f} acc {test_acc:6.2f}%  |  "
                  f"{seconds:5.1f} s ({img_s:,.0f} img/s)"
                  + (f"  lr {lr:.2e}" if scheduler is not None else ""), flush=True)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None,
                     "epoch": epoch, "history": history, "rng": backend.rng_state(),
                     "loader_rng": train_loader.generator.bit_generator.state,
                     "augment_rng": augment_rng.bit_generator.state,
                     "backend": args.backend, "model_name": args.model, "args": vars(args)}
            with finish_before_interrupt():
                tinyconv.save(state, ckpt_path)
                if test_acc >= max(h["test_acc"] for h in history):
                    tinyconv.save(state, best_path)  # the best epoch so far, by test accuracy
                progress["saved_epoch"] = epoch
    except FloatingPointError as exc:
        saved = progress["saved_epoch"]
        fail(f"{exc}" + (f"; the checkpoint after epoch {saved} is {ckpt_path}"
                         if saved is not None else "; nothing was saved"), status=3)
    wall = time.perf_counter() - run_start

    # 5. The report: metrics.json and the plots.
    final = history[-1]
    print(f"\nfinal test accuracy: {final['test_acc']:.2f}% after {len(history)} epochs "
          f"({wall / 60:.1f} min this run)")
    print(format_confusion(confusion, class_names))
    plots = save_plots(out_dir, history, confusion, class_names, f"{title} ({args.backend})")
    metrics = {"model": args.model, "backend": args.backend, "device": str(device),
               "args": vars(args), "history": history, "final_test_acc": final["test_acc"],
               "confusion_matrix": confusion.tolist(), "class_names": class_names,
               "wall_seconds_this_run": wall, "parameters": n_params}
    if args.export_onnx:
        export_onnx(backend, model, args.model, args.export_onnx)
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    best = [best_path] if os.path.isfile(best_path) else []
    print("wrote " + ", ".join([ckpt_path, *best, os.path.join(out_dir, "metrics.json"), *plots]))
    return metrics


def export_onnx(backend, model, model_name, path):
    """Write ``model`` as ONNX with tinyconv's own exporter (a torch model is copied first)."""
    try:
        import tinyconv.onnx
    except ImportError as exc:
        print(f"error: --export-onnx needs the onnx package ({exc}); pip install -e '.[onnx]'",
              file=sys.stderr)
        raise SystemExit(2) from None
    ctor, shape = networks(tinyconv.models)[model_name]
    twin = model
    if backend.name != "tinyconv":
        twin = ctor()
        twin.load_state_dict({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    tinyconv.onnx.export(twin, tinyconv.zeros(1, *shape), path)
    print(f"exported ONNX model to {path}")
