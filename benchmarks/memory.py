"""Peak memory of training a seed network, tinyconv against PyTorch, each in a fresh process.

    python benchmarks/memory.py                           # fashioncnn and convmodule, 20 steps
    python benchmarks/memory.py --models fashioncnn --steps 50 --threads 2

For every network and framework this script starts a new Python process (itself, in a hidden
``--child FRAMEWORK MODEL`` mode) that imports only that framework, builds the network, Adam (lr
1e-3) and one random batch (64 by default), and trains ``--steps`` steps on it. The child reads
its peak resident set size (VmHWM; see ``peak_rss_mib`` for why not ru_maxrss) twice: right
after the imports and the construction, before the first step (the *baseline*: interpreter,
libraries, weights, the batch), and after the last step (the *peak*). Their difference is the
memory that training itself needs: activations kept for backward, gradients, Adam's moments,
temporaries. The tinyconv child checks that torch never got imported (``'torch' not in
sys.modules``; the report says so, and warns if it did). The report gives MiB and the ratio
tinyconv / torch: for memory, lower is better, so a ratio below 1 means tinyconv needs less.
Target (issue #5): peak memory of training at most 1.5x torch's. Thread pools are set to
``--threads`` in every child. Writes JSON and a Markdown table (``--out``, default
benchmarks/results/). Linux and macOS only (``resource``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Only the standard library and _common up to here: a child imports its framework itself.
from _common import (  # noqa: E402
    DEFAULT_OUT,
    build_training,
    check_model_names,
    command_line,
    import_framework,
    machine_info,
    machine_line,
    markdown_table,
    run_child,
    thread_env,
    tinyconv_threads,
    write_report,
)

FRAMEWORKS = ("tinyconv", "torch")
MARKER = "MEMORY-RESULT "
TARGET_PEAK_RATIO = 1.5


def peak_rss_mib():
    """The peak resident set size of this process so far, in MiB.

    On Linux this is VmHWM from /proc/self/status, the high-water mark of this program's own
    memory. ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the portable way, but Linux keeps
    ru_maxrss across fork and exec: a child started by subprocess begins with its parent's peak
    (here: a parent that has imported torch and tinyconv), which would hide the child's own
    figure. ru_maxrss is the fallback where /proc does not exist (macOS: bytes, not KiB).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # "VmHWM:  123456 kB"
    except OSError:
        pass
    return ru_maxrss_mib()


def ru_maxrss_mib():
    """getrusage's peak RSS in MiB (KiB on Linux, bytes on macOS); kept in the JSON to compare."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


CHILD_THREADS = {}  # framework -> how its child ran tinyconv's kernels (for the report)


def child(framework, name, steps, batch):
    """Runs in the child process: train, measure, print one MARKER line of JSON."""
    start = time.perf_counter()
    fw, models = import_framework(framework)
    step = build_training(fw, models, name, batch)
    baseline = peak_rss_mib()
    for _ in range(steps):
        loss = step()
    result = {"framework": framework, "model": name, "steps": steps, "batch": batch,
              "baseline_mib": baseline, "peak_mib": peak_rss_mib(),
              "ru_maxrss_mib": ru_maxrss_mib(),
              "torch_imported": "torch" in sys.modules, "threads": tinyconv_threads(),
              "final_loss": float(loss.item()),
              "seconds": time.perf_counter() - start}
    print(MARKER + json.dumps(result), flush=True)


def measure(framework, name, steps, batch, threads):
    script = os.path.abspath(__file__)
    args = [script, "--child", framework, name, "--steps", str(steps), "--batch", str(batch)]
    _, result = run_child(args, thread_env(threads), MARKER)
    if result.get("threads"):
        CHILD_THREADS[result["framework"]] = result["threads"]
    if framework == "tinyconv" and result["torch_imported"]:
        print(f"warning: the tinyconv child for {name} imported torch: its memory includes "
              f"torch's", file=sys.stderr)
    result["training_mib"] = result["peak_mib"] - result["baseline_mib"]
    return result


def bench_model(name, steps, batch, threads):
    runs = {fw: measure(fw, name, steps, batch, threads) for fw in FRAMEWORKS}
    tiny, torch_ = runs["tinyconv"], runs["torch"]
    row = {"model": name, "steps": steps, "batch": batch,
           "tinyconv_torch_imported": tiny["torch_imported"]}
    for what in ("peak", "baseline", "training"):
        row[f"{what}_tinyconv_mib"] = tiny[f"{what}_mib"]
        row[f"{what}_torch_mib"] = torch_[f"{what}_mib"]
        row[f"{what}_ratio"] = tiny[f"{what}_mib"] / torch_[f"{what}_mib"]
    row["children"] = runs  # everything each child reported, ru_maxrss included
    return row


def markdown(rows, info, command):
    lines = [f"Command: `{command}`  ", machine_line(info), "",
             "Peak resident memory (MiB) of a fresh process training with Adam; baseline = "
             "after imports and model construction, before the first step; training = peak - "
             "baseline. **Ratio = tinyconv / torch: lower is better** (below 1: tinyconv needs "
             f"less memory); target: peak ratio <= {TARGET_PEAK_RATIO}.", ""]
    lines += markdown_table(
        ["network", "steps", "batch", "peak tinyconv", "peak torch", "peak ratio (lower is "
         "better)", "baseline tinyconv", "baseline torch", "training tinyconv",
         "training torch", "training ratio (lower is better)"], "lrrrrrrrrrr",
        [[r["model"], r["steps"], r["batch"], f"{r['peak_tinyconv_mib']:.0f}",
          f"{r['peak_torch_mib']:.0f}", f"{r['peak_ratio']:.2f}",
          f"{r['baseline_tinyconv_mib']:.0f}", f"{r['baseline_torch_mib']:.0f}",
          f"{r['training_tinyconv_mib']:.0f}", f"{r['training_torch_mib']:.0f}",
          f"{r['training_ratio']:.2f}"] for r in rows])
    imported = any(r["tinyconv_torch_imported"] for r in rows)
    lines += ["", f"torch imported by a tinyconv child: {'YES' if imported else 'no'}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fashioncnn", "convmodule"],
                        help="names from tinyconv.models.SEED_NETWORKS")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "MODEL"),
                        help=argparse.SUPPRESS)  # internal: the measured process
    args = parser.parse_args(argv)

    if args.child:
        child(*args.child, args.steps, args.batch)
        return None
    check_model_names(parser, args.models)
    rows = []
    for name in args.models:
        row = bench_model(name, args.steps, args.batch, args.threads)
        rows.append(row)
        print(f"{name:>15}: peak {row['peak_tinyconv_mib']:6.0f} vs {row['peak_torch_mib']:6.0f} "
              f"MiB (ratio {row['peak_ratio']:.2f}) | training {row['training_tinyconv_mib']:6.0f}"
              f" vs {row['training_torch_mib']:6.0f} MiB (ratio {row['training_ratio']:.2f})",
              flush=True)
    # imports torch: only after the children have run
    info = machine_info(args.threads, CHILD_THREADS.get("tinyconv"))
    command = command_line("memory.py", argv)
    write_report(args.out, "memory", info, command, rows, markdown(rows, info, command),
                 target_peak_ratio=TARGET_PEAK_RATIO)
    return rows


if __name__ == "__main__":
    main()
