"""ResNet-18 at 224x224: training step, evaluation and peak memory, tinyconv against PyTorch.

    python benchmarks/resnet.py                              # batch 8, 3 rounds, 2 threads
    python benchmarks/resnet.py --batches 8 32 --rounds 5
    python benchmarks/resnet.py --profile                    # where tinyconv's step spends time

Method (as benchmarks/throughput.py and memory.py): each framework runs in a fresh process of
its own (this script in a hidden ``--worker`` mode that imports only that framework), with the
same thread count in every pool (numba, BLAS, torch), the same random batch and the same initial
weights (tinyconv draws them and the torch worker loads them). The parent alternates rounds
between the two processes, so that whatever else the machine does hits both alike, and reports
medians and ratios:

* training: forward, cross-entropy, backward and an Adam step (lr 1e-3), the fine-tuning
  recipe of examples/transfer.py (a 10-class head on ResNet-18, nothing frozen);
* evaluation: a forward pass under no_grad in eval mode;
* peak memory: VmHWM of the process (see memory.py's ``peak_rss_mib``) after the imports and
  the model (baseline) and after two training steps (peak); training memory = peak - baseline.
  Measured first thing in each worker, before any evaluation.

Speed ratio = torch time / tinyconv time (above 1: tinyconv is faster); memory ratio =
tinyconv / torch (below 1: tinyconv needs less). Targets (issue #19): training >= 0.8,
evaluation >= 1.0, peak memory <= 1.5. ``--profile`` adds one training step of tinyconv under
cProfile, summed by op (each autograd Function's forward and backward) and by kernel.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Only the standard library and _common up to here: a worker imports its framework itself.
from _common import (  # noqa: E402
    DEFAULT_OUT,
    Worker,
    alternate_rounds,
    command_line,
    machine_info,
    machine_line,
    markdown_table,
    serve,
    timed_round,
    worker_framework,
    write_report,
)
from memory import peak_rss_mib  # noqa: E402

FRAMEWORKS = ("tinyconv", "torch")
MARKER = "RESNET-REPLY "
TARGETS = {"train": 0.8, "eval": 1.0, "peak_memory": 1.5}


def build(fw, framework, batch, size, weights_path):
    """ResNet-18 with a 10-class head, Adam, a random batch: (train step, eval pass)."""
    import numpy as np

    if framework == "tinyconv":
        from tinyconv.vision.models import resnet18
        fw.manual_seed(0)
        model = resnet18()
        model.fc = fw.nn.Linear(model.fc.in_features, 10)
        np.savez(weights_path, **{k: v.numpy() for k, v in model.state_dict().items()})
    else:
        from torchvision.models import resnet18
        model = resnet18()
        model.fc = fw.nn.Linear(model.fc.in_features, 10)
        with np.load(weights_path) as saved:
            model.load_state_dict({k: fw.from_numpy(saved[k]) for k in saved.files})
    rng = np.random.default_rng(0)
    x = fw.from_numpy(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    y = fw.from_numpy(rng.integers(0, 10, batch))
    loss_fn = fw.nn.CrossEntropyLoss()
    optimizer = fw.optim.Adam(model.parameters(), lr=1e-3)

    def train():
        model.train()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    def evaluate():
        model.eval()
        with fw.no_grad():
            model(x)
    return train, evaluate


def worker(framework, threads):
    """The hidden ``--worker`` mode: answer the parent's commands (see _common.serve)."""
    fw, layer = worker_framework(framework, threads)
    fns = {}

    def setup(cmd):
        train, evaluate = build(fw, framework, cmd["batch"], cmd["size"], cmd["weights"])
        baseline = peak_rss_mib()
        train()
        train()  # the second step also holds Adam's moments
        peak = peak_rss_mib()
        evaluate()
        evaluate()  # warm-up (numba compilation, allocator)
        fns.update(train=train, eval=evaluate)
        return {"layer": layer, "baseline_mib": baseline, "peak_mib": peak,
                "torch_imported": "torch" in sys.modules}

    def timed(cmd):
        return {"seconds": timed_round(fns[cmd["kind"]], cmd["repeat"])}

    def profile(cmd):
        ops, leaves, total = profile_step(fns["train"])
        return {"ops": ops, "functions": leaves, "total_s": total}

    serve(MARKER, threads, {"setup": setup, "round": timed, "profile": profile})


def start_worker(framework, threads):
    """A ``--worker`` child of this script."""
    return Worker(__file__, framework, threads, MARKER)


def bench_batch(batch, size, rounds, threads, tmp):
    """One fresh pair of workers for this batch size (so that peak memory is this batch's)."""
    workers = {fw: start_worker(fw, threads) for fw in FRAMEWORKS}
    try:
        weights = os.path.join(tmp, f"resnet18-{batch}.npz")
        setup = {fw: workers[fw].ask(cmd="setup", batch=batch, size=size, weights=weights)
                 for fw in FRAMEWORKS}  # tinyconv first: it writes the weights
        med = alternate_rounds(workers, rounds, {"train": 1, "eval": 1})
    finally:
        for w in workers.values():
            w.close()
    row = {"batch": batch, "size": size, "rounds": rounds, "layer": setup["tinyconv"]["layer"],
           "tinyconv_torch_imported": setup["tinyconv"]["torch_imported"]}
    for kind in ("train", "eval"):
        for fw in FRAMEWORKS:
            row[f"{kind}_{fw}_s"] = med[kind][fw]
            row[f"{kind}_{fw}_img_s"] = batch / med[kind][fw]
        row[f"{kind}_ratio"] = med[kind]["torch"] / med[kind]["tinyconv"]
    for fw in FRAMEWORKS:
        row[f"peak_{fw}_mib"] = setup[fw]["peak_mib"]
        row[f"training_{fw}_mib"] = setup[fw]["peak_mib"] - setup[fw]["baseline_mib"]
    row["peak_ratio"] = row["peak_tinyconv_mib"] / row["peak_torch_mib"]
    row["training_memory_ratio"] = row["training_tinyconv_mib"] / row["training_torch_mib"]
    return row


# ---- where the time goes ---------------------------------------------------------------------


def profile_step(train):
    """One training step under cProfile: ([(op, seconds)], [(function, seconds)], total).

    Ops: each autograd Function's forward and backward (tinyconv/ops), with what they call;
    functions: each numba kernel, BLAS product and Python function by the time spent in it
    alone."""
    import cProfile
    import pstats

    from tinyconv.autograd import ArrayFunction

    names, todo = {}, list(ArrayFunction.__subclasses__())  # tinyconv's own ops
    while todo:  # every Function class: (file, line of forward/backward) -> "Class.forward"
        cls = todo.pop()
        todo += cls.__subclasses__()
        for method in ("forward", "backward"):
            code = getattr(cls.__dict__.get(method), "__func__", None)
            code = getattr(code, "__code__", None)
            if code is not None:
                names[code.co_filename, code.co_firstlineno] = f"{cls.__name__}.{method}"
    profiler = cProfile.Profile()
    profiler.enable()
    train()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, ..)
    ops, leaves, total = {}, {}, 0.0
    for (path, line, name), (_, _, tottime, cumtime, _) in stats.items():
        total += tottime
        where = os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.abspath(
            __file__)))) if path.startswith("/") else path
        if (path, line) in names:
            ops[f"{names[path, line]} ({where})"] = cumtime
        if tottime > 0.005:
            leaves[f"{where}:{line} {name}" if line else name] = tottime
    return (sorted(ops.items(), key=lambda kv: -kv[1]),
            sorted(leaves.items(), key=lambda kv: -kv[1]), total)


def profile_markdown(batch, size, ops, leaves, total):
    lines = ["", f"Profile of one tinyconv training step (batch {batch}, {size}x{size}, "
             f"cProfile, {total:.2f} s in all): per op (cumulative, forward and backward of each "
             f"autograd Function) and per function (own time, over 5 ms).", ""]
    lines += markdown_table(["op (tinyconv/ops)", "seconds", "share"], "lrr",
                            [[k, f"{v:.3f}", f"{100 * v / total:.0f}%"] for k, v in ops[:12]])
    lines += [""]
    lines += markdown_table(["function", "own seconds", "share"], "lrr",
                            [[k, f"{v:.3f}", f"{100 * v / total:.0f}%"] for k, v in leaves[:15]])
    return lines


# ---- report ----------------------------------------------------------------------------------


def markdown(rows, info, command):
    lines = [f"Command: `{command}`  ", machine_line(info), "",
             "ResNet-18 (10-class head), one process per framework. Speed ratio = torch time / "
             "tinyconv time (higher is better; targets: training >= 0.8, evaluation >= 1.0). "
             "Memory: peak resident MiB after two training steps; ratio = tinyconv / torch "
             "(lower is better; target <= 1.5).", ""]
    lines += markdown_table(
        ["batch", "size", "train s tinyconv", "train s torch", "train ratio",
         "eval s tinyconv", "eval s torch", "eval ratio", "peak MiB tinyconv", "peak MiB torch",
         "peak ratio", "training MiB tinyconv", "training MiB torch"], "rrrrrrrrrrrrr",
        [[r["batch"], r["size"], f"{r['train_tinyconv_s']:.3f}", f"{r['train_torch_s']:.3f}",
          f"{r['train_ratio']:.2f}", f"{r['eval_tinyconv_s']:.3f}", f"{r['eval_torch_s']:.3f}",
          f"{r['eval_ratio']:.2f}", f"{r['peak_tinyconv_mib']:.0f}",
          f"{r['peak_torch_mib']:.0f}", f"{r['peak_ratio']:.2f}",
          f"{r['training_tinyconv_mib']:.0f}", f"{r['training_torch_mib']:.0f}"] for r in rows])
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="+", type=int, default=[8])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="also profile one tinyconv training step (in this process)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.threads)
    if args.size < 32 or min(args.batches) < 2 or args.rounds < 1:
        parser.error("--size must be >= 32, every batch >= 2 (batch norm), --rounds >= 1")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:
            rows.append(bench_batch(batch, args.size, args.rounds, args.threads, tmp))
            r = rows[-1]
            print(f"batch {batch}: train {r['train_tinyconv_s']:.3f} vs {r['train_torch_s']:.3f}"
                  f" s (ratio {r['train_ratio']:.2f}) | eval {r['eval_tinyconv_s']:.3f} vs "
                  f"{r['eval_torch_s']:.3f} s (ratio {r['eval_ratio']:.2f}) | peak "
                  f"{r['peak_tinyconv_mib']:.0f} vs {r['peak_torch_mib']:.0f} MiB (ratio "
                  f"{r['peak_ratio']:.2f})", flush=True)
    info = machine_info(args.threads, rows[0]["layer"])
    info["processes"] = "one process each"
    command = command_line("resnet.py", argv)
    lines = markdown(rows, info, command)
    extra = {"targets": TARGETS}
    if args.profile:  # in a fresh tinyconv worker, which imports no torch
        worker_ = start_worker("tinyconv", args.threads)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                worker_.ask(cmd="setup", batch=args.batches[0], size=args.size,
                            weights=os.path.join(tmp, "w.npz"))
            reply = worker_.ask(cmd="profile")
        finally:
            worker_.close()
        ops, leaves, total = reply["ops"], reply["functions"], reply["total_s"]
        lines += profile_markdown(args.batches[0], args.size, ops, leaves, total)
        extra["profile"] = {"ops": ops, "functions": leaves, "total_s": total}
    write_report(args.out, "resnet", info, command, rows, "\n".join(lines) + "\n", **extra)
    return rows


if __name__ == "__main__":
    main()
