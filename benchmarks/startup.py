"""Start-up time: from process start to the first finished training step, tinyconv and PyTorch.

    python benchmarks/startup.py                          # FashionCNN, empty numba cache
    python benchmarks/startup.py --models fashioncnn cnn --threads 2

tinyconv's kernels are compiled by numba the first time they run, and kept in numba's on-disk
cache (``cache=True``) for the next process. So each network is measured in four fresh
processes (this script in a hidden ``--child FRAMEWORK MODEL`` mode), one after the other:

1. tinyconv with an empty numba cache (NUMBA_CACHE_DIR set to a new temporary directory): it
   compiles every kernel the training step needs;
2. tinyconv again with that same, now filled cache: the start-up a user sees every day;
3. and 4. torch twice, for comparison (nothing to compile; the second run may find its
   libraries in the operating system's file cache).

A child imports its framework, builds the network, Adam (lr 1e-3) and a random batch of 64, runs
one training step and prints a marker line. The *wall* time runs from just before the process
is spawned to the moment that line arrives; the child also reports its own times, measured with
time.perf_counter from the top of the script: framework import, construction, the first step
(compilation included). Wall minus the child's own total is the interpreter's start-up. The
number of files in the numba cache is counted after each tinyconv run, to check that the cache
is really written and used. The *compile time* is tinyconv's first wall time minus its second.
Target (issue #5): second-run start-up at most 3 s. ``--cache-dir DIR`` uses DIR as the numba
cache and keeps it (``--cache-dir default`` leaves numba's own cache location alone: the
__pycache__ folders beside tinyconv's sources, or $NUMBA_CACHE_DIR), so run 1 is only cold if
that cache is empty. Writes JSON and a Markdown table (``--out``, default benchmarks/results/).
"""

import time

_T_TOP = time.perf_counter()  # the child's own clock starts here, before any other import

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Only the standard library and _common up to here: a child imports its framework itself.
from _common import (  # noqa: E402
    DEFAULT_OUT,
    REPO_ROOT,
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

MARKER = "FIRST-STEP-DONE "
TARGET_WARM_S = 3.0
DEFAULT_CACHE = "default"  # --cache-dir value that keeps numba's own cache location


CHILD_THREADS = {}  # framework -> how its child ran tinyconv's kernels (for the report)


def child(framework, name, batch):
    """Runs in the child process: import, build, one training step, then the marker line."""
    start = time.perf_counter()
    fw, models = import_framework(framework)
    imported = time.perf_counter()
    step = build_training(fw, models, name, batch)
    built = time.perf_counter()
    step()
    done = time.perf_counter()
    result = {"framework": framework, "model": name, "batch": batch,
              "import_s": imported - start, "build_s": built - imported,
              "first_step_s": done - built, "since_top_s": done - _T_TOP,
              "torch_imported": "torch" in sys.modules, "threads": tinyconv_threads()}
    print(MARKER + json.dumps(result), flush=True)


def count_cache_files(cache_dir):
    """Number of numba cache files (.nbi index, .nbc code) under cache_dir."""
    if cache_dir == DEFAULT_CACHE:  # numba's default: __pycache__ beside the sources
        cache_dir = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(REPO_ROOT, "tinyconv")
    count = 0
    for _, _, files in os.walk(cache_dir):
        count += sum(f.endswith((".nbi", ".nbc")) for f in files)
    return count


def measure(framework, name, batch, threads, cache_dir):
    env = thread_env(threads)
    if framework == "tinyconv" and cache_dir != DEFAULT_CACHE:
        env["NUMBA_CACHE_DIR"] = cache_dir
    args = [os.path.abspath(__file__), "--child", framework, name, "--batch", str(batch)]
    wall, result = run_child(args, env, MARKER)
    if result.get("threads"):
        CHILD_THREADS[result["framework"]] = result["threads"]
    if framework == "tinyconv" and result["torch_imported"]:
        print(f"warning: the tinyconv child for {name} imported torch: its start-up includes "
              f"torch's", file=sys.stderr)
    result["wall_s"] = wall
    result["interpreter_s"] = wall - result["since_top_s"]
    if framework == "tinyconv":
        result["cache_files"] = count_cache_files(cache_dir)
    return result


def bench_model(name, batch, threads, cache_dir):
    """The four runs of one network; returns (rows, summary)."""
    temporary = cache_dir is None
    if temporary:
        cache_dir = tempfile.mkdtemp(prefix="tinyconv-numba-cache-")
    try:
        before = count_cache_files(cache_dir)
        rows = []
        for framework, run in (("tinyconv", 1), ("tinyconv", 2), ("torch", 1), ("torch", 2)):
            result = measure(framework, name, batch, threads, cache_dir)
            if framework == "tinyconv":
                state = ("empty" if before == 0 else f"{before} files") if run == 1 else \
                    "from run 1"
                result["cache"] = f"{state} ({'temporary' if temporary else cache_dir})"
            else:
                result["cache"] = "-"
            result["run"] = run
            rows.append(result)
            print(f"{name:>15} {framework:>8} run {run}: first step after "
                  f"{result['wall_s']:6.2f} s (import {result['import_s']:.2f} s, first step "
                  f"{result['first_step_s']:.2f} s)", flush=True)
    finally:
        if temporary:
            shutil.rmtree(cache_dir, ignore_errors=True)
    tiny = [r for r in rows if r["framework"] == "tinyconv"]
    torch_ = [r for r in rows if r["framework"] == "torch"]
    summary = {"model": name, "tinyconv_cold_s": tiny[0]["wall_s"],
               "tinyconv_warm_s": tiny[1]["wall_s"],
               "compile_s": tiny[0]["wall_s"] - tiny[1]["wall_s"],
               "torch_s": min(r["wall_s"] for r in torch_),
               "cache_files_written": tiny[0]["cache_files"] - before,
               "cold_first_run": before == 0,
               "warm_target_s": TARGET_WARM_S,
               "warm_target_met": tiny[1]["wall_s"] <= TARGET_WARM_S}
    if summary["cache_files_written"] <= 0 and before == 0:
        print(f"warning: {name}: the first tinyconv run wrote no numba cache files",
              file=sys.stderr)
    return rows, summary


def markdown(rows, summaries, info, command):
    lines = [f"Command: `{command}`  ", machine_line(info), "",
             "Seconds from spawning a fresh process to its first finished training step "
             "(batch 64, Adam); lower is better. import, build and first step are the child's "
             "own times; interpreter = wall - the child's own total.", ""]
    lines += markdown_table(
        ["network", "framework", "run", "numba cache", "wall to first step", "interpreter",
         "import", "build", "first step", "cache files after"], "llrlrrrrrr",
        [[r["model"], r["framework"], r["run"], r["cache"], f"{r['wall_s']:.2f}",
          f"{r['interpreter_s']:.2f}", f"{r['import_s']:.2f}", f"{r['build_s']:.2f}",
          f"{r['first_step_s']:.2f}", r.get("cache_files", "-")] for r in rows])
    lines.append("")
    for s in summaries:
        met = "met" if s["warm_target_met"] else "NOT met"
        what = "compile time" if s["cold_first_run"] else \
            "difference (not a compile time: the cache was not empty before run 1)"
        lines.append(f"- {s['model']}: tinyconv {what} (run 1 - run 2) "
                     f"{s['compile_s']:.1f} s; second-run start-up {s['tinyconv_warm_s']:.2f} s "
                     f"(target <= {s['warm_target_s']:.0f} s: {met}); torch "
                     f"{s['torch_s']:.2f} s; numba cache files written by run 1: "
                     f"{s['cache_files_written']}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fashioncnn"],
                        help="names from tinyconv.models.SEED_NETWORKS")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default=None,
                        help="numba cache for the tinyconv runs, kept afterwards (default: a "
                             "new empty temporary directory, deleted afterwards; 'default': "
                             "numba's own cache location)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "MODEL"),
                        help=argparse.SUPPRESS)  # internal: the measured process
    args = parser.parse_args(argv)

    if args.child:
        child(*args.child, args.batch)
        return None
    check_model_names(parser, args.models)
    if args.cache_dir not in (None, DEFAULT_CACHE):
        args.cache_dir = os.path.abspath(args.cache_dir)
        os.makedirs(args.cache_dir, exist_ok=True)
    rows, summaries = [], []
    for name in args.models:
        model_rows, summary = bench_model(name, args.batch, args.threads, args.cache_dir)
        rows += model_rows
        summaries.append(summary)
    info = machine_info(args.threads, CHILD_THREADS.get("tinyconv"))
    command = command_line("startup.py", argv)
    write_report(args.out, "startup", info, command, rows,
                 markdown(rows, summaries, info, command), summaries=summaries)
    return rows, summaries


if __name__ == "__main__":
    main()
