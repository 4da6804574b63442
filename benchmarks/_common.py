"""Pieces shared by the benchmark scripts: machine description, timing, threads, reports.

Nothing here imports torch or tinyconv at module level: memory.py and startup.py run child
processes of themselves that must import only the framework they measure (a tinyconv child must
not pay for torch's import, nor hold its memory). The functions that need a framework import it
when called.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time

# OpenBLAS's worker threads spin after each matrix product and take the cores from numba's
# threads (see tinyconv/_startup.py); OpenBLAS reads this when numpy loads it, so the scripts
# import this module before numpy, and child processes inherit it. It changes nothing on the
# torch side (torch's CPU matrix products do not go through numpy's OpenBLAS).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
DEFAULT_OUT = os.path.join(BENCH_DIR, "results")

# Seed networks that end in log_softmax: they train with NLLLoss, the others with CrossEntropyLoss.
LOG_PROB_MODELS = ("fc2layer", "cnn")

# Environment variables that fix the size of every thread pool a child process may start
# (numba, OpenMP inside torch, OpenBLAS inside numpy, MKL); see ``thread_env``.
THREAD_ENV_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                   "MKL_NUM_THREADS")


def add_repo_to_path():
    """Make ``import tinyconv`` and ``import parity`` work when a script runs from a checkout."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)


def machine_info(threads, tinyconv_threads=None):
    """CPU, library versions, BLAS (and which kernels it picked), thread count: for the report.

    Imports numpy, numba, torch and tinyconv: call it in the parent process, not in a child
    whose imports are being measured. ``tinyconv_threads``: how the process that ran tinyconv
    runs its parallel kernels (tinyconv._threads.DESCRIPTION there), if not this process.
    """
    import numba
    import numpy as np
    import torch

    add_repo_to_path()
    import tinyconv

    info = {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "tinyconv": tinyconv.__version__, "threads": threads,
            "cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        # numpy's BLAS does tinyconv's matrix products; scipy (loaded by numba) may bring a
        # second OpenBLAS, listed in an unpredictable order, so pick numpy's by its path
        blas.sort(key=lambda p: "numpy" not in p.get("filepath", ""))
        if blas:
            info["blas"] = (f"{blas[0].get('internal_api')} {blas[0].get('version')} "
                            f"({blas[0].get('architecture')} kernels)")
    except ImportError:
        info["blas"] = "unknown (pip install threadpoolctl)"
    info["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE", "")
    info["openblas_thread_timeout"] = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
    info["numba"] = numba.__version__
    from tinyconv import _threads
    info["numba_threading_layer"] = tinyconv_threads or _threads.DESCRIPTION
    return info


def numpy_blas():
    """threadpoolctl's entry for numpy's BLAS in this process ({} if none is found): its
    ``architecture`` names the OpenBLAS kernels in use (e.g. SkylakeX, Haswell), chosen when
    numpy loaded it (``OPENBLAS_CORETYPE`` overrides the choice, read only at that moment)."""
    import numpy  # noqa: F401  (loads the BLAS)
    from threadpoolctl import threadpool_info

    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    blas.sort(key=lambda p: "numpy" not in p.get("filepath", ""))  # as in machine_info
    return blas[0] if blas else {}


def tinyconv_threads():
    """How this process runs tinyconv's parallel kernels (None if it has not imported tinyconv);
    a child reports it, for ``machine_info(threads, tinyconv_threads=...)`` in the parent."""
    module = sys.modules.get("tinyconv._threads")
    return module.DESCRIPTION if module else None


def machine_line(info):
    """The one-line machine description printed under each table."""
    line = (f"CPU: {info['cpu']}, {info['threads']} threads; BLAS: {info.get('blas')}; "
            f"numpy {info['numpy']}, numba {info['numba']} ({info['numba_threading_layer']}), "
            f"torch {info['torch']}")
    if info.get("openblas_coretype"):
        line += f"; OPENBLAS_CORETYPE={info['openblas_coretype']}"
    if info.get("openblas_thread_timeout"):
        line += f"; OPENBLAS_THREAD_TIMEOUT={info['openblas_thread_timeout']}"
    if info.get("processes"):
        line += f"; frameworks: {info['processes']}"
    return line


@contextlib.contextmanager
def same_threads(threads):
    """Run the block with ``threads`` threads on both sides, then restore the previous counts.

    Three pools matter: numba's (tinyconv's kernels), the BLAS pool behind numpy's matmul (and
    torch's, if it uses one; set through threadpoolctl) and torch's intra-op pool.
    """
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(before[0])
        torch.set_num_threads(before[1])


def thread_env(threads, env=None):
    """A copy of ``env`` (default: os.environ) with every thread pool of a child set to ``threads``.

    Environment variables act before the first import, so a child needs no threadpoolctl and
    starts no pool larger than asked for.
    """
    env = dict(os.environ if env is None else env)
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    return env


SETTLE_S = 0.02  # untimed calls at the start of each round (time_rounds' settle)
# The same in a worker process whose rounds alternate with another framework's process
# (throughput.py). 0.02 s was too short there: FC2Layer's evaluation (~0.68 ms a call, one
# timed call a round) measured 963 us in tinyconv's worker right after torch's training round,
# 676 us with 0.3 s of settling (torch's worker: 623 and 654 us; `throughput.py --models
# fc2layer --rounds 5`, one run each); the same calls in one process take 670-680 us. Something
# of the other process's round lingers for tens of milliseconds; 0.3 s lets it pass, for both.
PROCESS_SETTLE_S = 0.3


def time_rounds(fns, rounds, repeat, settle=False):
    """Median seconds per call of each function, rounds alternating between them.

    Each function is called twice first (numba compilation, allocator warm-up). Then, ``rounds``
    times, each function in turn runs ``repeat`` calls in a row (see ``timed_round``); one
    round's time divided by ``repeat`` is one sample, and the median of the samples is
    returned: {key: seconds}.
    """
    for fn in fns.values():
        fn()
        fn()  # warm-up (numba compilation, allocator)
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            samples[key].append(timed_round(fn, repeat, settle))
    return {k: statistics.median(v) for k, v in samples.items()}


def timed_round(fn, repeat, settle=False):
    """Seconds per call of ``fn`` over ``repeat`` calls in a row.

    ``settle=True`` makes untimed calls first, for at least ``SETTLE_S`` seconds (a number:
    that many seconds; see ``PROCESS_SETTLE_S`` for workers in separate processes). Switching
    frameworks has a price that neither pays in a real program: the thread pools of the side
    that just ran keep spinning for a while and take the cores from the other side's threads
    (torch's OpenMP threads spin for several milliseconds after each parallel region;
    OpenBLAS's, unless told otherwise, for longer). That swamps a kernel of 0.3 ms timed a few
    calls at a time; the untimed calls absorb it.
    """
    if settle:
        until = time.perf_counter() + (SETTLE_S if settle is True else settle)
        fn()
        while time.perf_counter() < until:
            fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def timed_for(fn, seconds, settle=0.0):
    """Call ``fn`` for ``settle`` seconds untimed, then as often as fits in ``seconds``:
    {"calls": n, "seconds": the time those n calls took}."""
    until = time.perf_counter() + settle
    while time.perf_counter() < until:
        fn()
    start = time.perf_counter()
    calls, now = 0, start
    while now - start < seconds:
        fn()
        calls += 1
        now = time.perf_counter()
    return {"calls": calls, "seconds": now - start}


def command_line(script, argv):
    """The command that reproduces this run, e.g. ``python benchmarks/kernels.py --rounds 3``."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join([f"python benchmarks/{script}", *args]).strip()


def write_report(out_dir, name, info, command, rows, table, **extra):
    """Print the Markdown table; write ``name``.json and ``name``.md into ``out_dir``.

    Returns the paths of the two files.
    """
    print("\n" + table)
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{name}.json")
    md_path = os.path.join(out_dir, f"{name}.md")
    with open(json_path, "w") as f:
        json.dump({"machine": info, "command": command, **extra, "rows": rows}, f, indent=2)
    with open(md_path, "w") as f:
        f.write(table)
    return json_path, md_path


def markdown_table(header, align, rows):
    """A Markdown table: ``header`` the column titles, ``align`` one of 'l'/'r' per column."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def check_model_names(parser, names):
    """Stop with an argparse error unless every name is in tinyconv.models.SEED_NETWORKS.

    (Checked after parsing, in the parent only: a child must not import tinyconv for nothing.)
    """
    add_repo_to_path()
    from tinyconv.models import SEED_NETWORKS

    unknown = [n for n in names if n not in SEED_NETWORKS]
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(SEED_NETWORKS)}")


def import_framework(framework):
    """(framework module, its seed-network module): (tinyconv, tinyconv.models) or
    (torch, parity.models). Imports nothing of the other framework."""
    add_repo_to_path()
    if framework == "tinyconv":
        import tinyconv
        from tinyconv import models
        return tinyconv, models
    if framework == "torch":
        import torch

        from parity import models
        return torch, models
    raise ValueError(f"unknown framework {framework!r}: 'tinyconv' or 'torch'")


def build_training(fw, models, name, batch, lr=1e-3, seed=0):
    """One training step of a seed network on a random batch, written once for both frameworks.

    ``fw`` is the tinyconv or the torch module, ``models`` its seed-network module (see
    ``import_framework``); the code is the same for both because tinyconv copies torch's API.
    Returns a function that runs forward, backward and an Adam step and returns the loss.
    """
    import warnings
    warnings.filterwarnings("ignore", message=".*dropout2d.*")
    fw.manual_seed(seed)
    constructor, input_shape = models.SEED_NETWORKS[name]
    model = constructor()
    model.train()
    loss_fn = fw.nn.NLLLoss() if name in LOG_PROB_MODELS else fw.nn.CrossEntropyLoss()
    optimizer = fw.optim.Adam(model.parameters(), lr=lr)
    x = fw.randn(batch, *input_shape)
    y = fw.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


def run_child(args, env, marker):
    """Run ``python args...`` and return (seconds from spawn to the ``marker`` line, its payload).

    The child prints ``marker`` followed by a JSON object on one line; the time is taken when
    that line arrives, before the child has finished exiting.
    """
    import subprocess

    start = time.perf_counter()
    # stderr joins stdout: one pipe read to the end cannot block on the other filling up
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    elapsed, payload, other = None, None, []
    for line in proc.stdout:
        if line.startswith(marker):
            elapsed = time.perf_counter() - start
            payload = json.loads(line[len(marker):])
        else:
            other.append(line)
    if proc.wait() != 0 or payload is None:
        raise RuntimeError(f"child {' '.join(args)} failed (exit code {proc.returncode}):\n"
                           f"{''.join(other)[-3000:]}")
    return elapsed, payload


# ---- one process per framework: the worker harness of throughput.py and resnet.py ----------
#
# A script runs itself twice more, in a hidden ``--worker FRAMEWORK`` mode that imports only that
# framework, and talks to each child through a pipe: one JSON command a line on the child's stdin
# ("setup", "round", ...), one JSON reply a line on its stdout, marked with the script's marker so
# that anything else the child prints is skipped. The parent alternates rounds between the two
# children (``alternate_rounds``), so that whatever else the machine does hits both alike.


def worker_framework(framework, threads):
    """In a worker: import ``framework`` alone and run its parallel work on ``threads`` threads.

    Returns (the tinyconv or torch module, how tinyconv runs its parallel kernels; None for
    torch). The BLAS pool is limited by ``serve``.
    """
    if framework == "tinyconv":
        import numba

        import tinyconv
        from tinyconv import _threads
        numba.set_num_threads(threads)
        return tinyconv, _threads.DESCRIPTION
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
        return torch, None
    raise ValueError(f"unknown framework {framework!r}: 'tinyconv' or 'torch'")


def serve(marker, threads, handlers):
    """A worker's command loop: for each JSON line on stdin, ``handlers[cmd["cmd"]](cmd)`` gives
    the reply, printed as ``marker`` + JSON on one line; an unknown command ("quit") ends it.

    Runs with the BLAS pool (threadpoolctl) limited to ``threads``.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"):
        for line in sys.stdin:
            cmd = json.loads(line)
            handler = handlers.get(cmd["cmd"])
            if handler is None:
                return
            print(marker + json.dumps(handler(cmd)), flush=True)


class Worker:
    """A ``--worker`` child process of ``script`` and its command pipe (see ``serve``).

    tinyconv's threads do not follow the machine's load there (``TINYCONV_ADAPTIVE_THREADS=0``)
    unless ``follow_load``: the workers of throughput.py and resnet.py take turns, and torch's
    threads, which spin on after its round, crowd tinyconv's at the start of the next; tinyconv
    then read the machine as shared and ran some rounds on one thread (throughput.py, FashionCNN:
    train 1,372-1,710 img/s instead of ~2,100, eval about half, in 2 of 5 runs; see
    tinyconv/_load.py). Speed on an idle machine is measured with the threads fixed;
    benchmarks/shared.py measures sharing, with ``follow_load``.
    """

    def __init__(self, script, framework, threads, marker, coretype=None, follow_load=False):
        import subprocess

        self.marker = marker
        env = thread_env(threads)
        env["PYTHONWARNINGS"] = "ignore"
        if not follow_load:
            env["TINYCONV_ADAPTIVE_THREADS"] = "0"
        if coretype:  # OpenBLAS's kernels: read when numpy loads it, so set before the start
            env["OPENBLAS_CORETYPE"] = coretype
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(script), "--worker", framework,
             "--threads", str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, text=True)

    def ask(self, **cmd):
        self.send(**cmd)
        return self.receive()

    def send(self, **cmd):
        """Send a command without waiting for the reply (``receive`` reads it): several workers
        can then work at the same time."""
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def receive(self):
        for line in self.proc.stdout:
            if line.startswith(self.marker):
                return json.loads(line[len(self.marker):])
        raise RuntimeError(f"benchmark worker stopped (exit code {self.proc.wait()}); "
                           f"its error is printed above")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait()


def alternate_rounds(workers, rounds, repeats):
    """Median seconds per call: {kind: {framework: seconds}}.

    ``rounds`` times, each kind of ``repeats`` ({kind: calls in a row}) in turn, each worker of
    ``workers`` ({framework: Worker}) in turn runs one timed round of ``repeat`` calls ("round"
    command).
    """
    samples = {(kind, fw): [] for kind in repeats for fw in workers}
    for _ in range(rounds):
        for kind, repeat in repeats.items():
            for fw, worker in workers.items():
                samples[kind, fw].append(worker.ask(cmd="round", kind=kind,
                                                    repeat=repeat)["seconds"])
    return {kind: {fw: statistics.median(samples[kind, fw]) for fw in workers}
            for kind in repeats}
