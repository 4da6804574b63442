"""Training throughput on a shared machine: alone, beside a busy core, and two copies at once.

    python benchmarks/shared.py                      # FashionCNN, 2 threads, 5 s per case
    python benchmarks/shared.py --seconds 10 --model convmodule
    python benchmarks/shared.py --smoke              # a few tenths of a second per case

A training process rarely has the machine to itself: another training run, a data loader, an
editor compiling. This script measures how much of its idle speed a training loop keeps when it
does not. For each framework (tinyconv, then PyTorch) it starts two copies of the same training
(benchmarks/throughput.py's ``--worker`` processes: a forward, backward and Adam step at batch
64 on a random batch, ``--threads`` threads each) and measures, in this order:

1. alone: each copy trains alone (the other waits);
2. beside a busy core: copy 1 trains while a separate pure-Python process spins (``while True:
   pass``, one busy core, as an unrelated program would);
3. two copies: both copies train at the same moment.

Each measurement trains for ``--settle`` seconds untimed (thread pools wake up, tinyconv adapts
its thread count), then counts the steps that fit in ``--seconds``. The report gives img/s for
each copy and its fraction of that copy's speed alone (1.0: sharing cost nothing). Writes JSON
and a Markdown table (``--out``, default benchmarks/results/shared.{json,md}).

The figures need the machine to themselves apart from what the script starts: anything else
running counts as one more sharer. tinyconv's numba threads follow the load (tinyconv/_load.py)
unless the environment says ``TINYCONV_ADAPTIVE_THREADS=0``; with ``=all`` OpenBLAS's threads
follow it too (results then vary in their last bits with the load): the workers inherit it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Only the standard library and the other scripts up to here (_common first: it sets OpenBLAS's
# thread timeout before numpy loads it); the workers import their framework themselves.
from _common import DEFAULT_OUT, command_line, machine_info, machine_line, write_report  # noqa: E402
from throughput import FRAMEWORKS, SEED_NETWORKS, TRAIN_BATCH, start_worker  # noqa: E402

CASES = ("alone", "beside a busy core", "two copies")
SPIN = "while True:\n    pass\n"


def spinner():
    """A separate process that keeps one core busy with pure Python until it is killed."""
    return subprocess.Popen([sys.executable, "-c", SPIN])


def train_for(workers, seconds, settle):
    """Train on all ``workers`` at the same moment; img/s of each."""
    for w in workers:
        w.send(cmd="for", kind="train", seconds=seconds, settle=settle)
    replies = [w.receive() for w in workers]
    return [TRAIN_BATCH * r["calls"] / r["seconds"] for r in replies]


def bench_framework(framework, model, threads, seconds, settle, weights):
    """The three cases for one framework: rows {framework, case, copy, img_s, fraction}."""
    copies = [start_worker(framework, threads, follow_load=True) for _ in range(2)]
    try:
        layer = None
        for w in copies:
            layer = w.ask(cmd="setup", model=model, weights=weights)["layer"] or layer
        alone = [train_for([w], seconds, settle)[0] for w in copies]
        spin = spinner()
        try:
            time.sleep(0.2)  # the spinner is running before the training starts
            busy = train_for(copies[:1], seconds, settle)
        finally:
            spin.kill()
            spin.wait()
        both = train_for(copies, seconds, settle)
    finally:
        for w in copies:
            w.close()
    rows = []
    for case, speeds in zip(CASES, (alone, busy, both), strict=True):
        for copy, img_s in enumerate(speeds, 1):
            rows.append({"framework": framework, "case": case, "copy": copy, "img_s": img_s,
                         "fraction": img_s / alone[copy - 1]})
            _print(rows[-1])
    return rows, layer


def markdown(rows, info, command, model, seconds, settle):
    lines = [f"Command: `{command}`  ",
             machine_line(info), "",
             f"{model}: training steps (batch {TRAIN_BATCH}, Adam) counted over {seconds:g} s "
             f"after {settle:g} s untimed; fraction: of the same copy's speed alone (higher is "
             f"better).",
             "", "| framework | case | copy | img/s | fraction of idle speed |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['framework']} | {r['case']} | {r['copy']} | {r['img_s']:,.0f} | "
                     f"{r['fraction']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashioncnn", choices=SEED_NETWORKS)
    parser.add_argument("--threads", type=int, default=2, help="threads of each copy")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per case")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="untimed seconds of training before each timed case")
    parser.add_argument("--smoke", action="store_true",
                        help="0.3 s per case after 0.1 s untimed (for the tests)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.settle = 0.3, 0.1
    if args.seconds <= 0 or args.settle < 0:
        parser.error(f"--seconds must be > 0 and --settle >= 0, got {args.seconds} and "
                     f"{args.settle}")

    info = machine_info(args.threads)
    info["processes"] = "one process per copy"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, f"{args.model}.npz")  # tinyconv's setup writes it first
        for framework in FRAMEWORKS:
            got, layer = bench_framework(framework, args.model, args.threads, args.seconds,
                                         args.settle, weights)
            rows += got
            if layer:
                info["numba_threading_layer"] = layer
    command = command_line("shared.py", argv)
    write_report(args.out, "shared", info, command, rows,
                 markdown(rows, info, command, args.model, args.seconds, args.settle),
                 model=args.model, seconds=args.seconds, settle=args.settle)
    return rows


def _print(row):
    print(f"{row['framework']:>8} {row['case']:>18} copy {row['copy']}: {row['img_s']:7,.0f} "
          f"img/s ({row['fraction']:.2f} of alone)", flush=True)


if __name__ == "__main__":
    main()
