"""Training and evaluation throughput of every seed network, tinyconv against PyTorch.

    python benchmarks/throughput.py                       # all networks, 2 threads
    python benchmarks/throughput.py --models fashioncnn --rounds 7 --threads 2
    python benchmarks/throughput.py --same-process        # both frameworks in this process
    python benchmarks/throughput.py --coretype Haswell    # numpy's OpenBLAS on Haswell kernels

Each framework runs in a process of its own (this script in a hidden ``--worker`` mode that
imports only that framework), on the same random batch and from the same initial weights, and
the script alternates rounds between the two (tinyconv, torch, tinyconv, ...; one runs while
the other waits), so that whatever else the machine does hits both alike; each round starts
with 0.3 s of untimed calls (``PROCESS_SETTLE_S``), so that the other side's last round has
passed before the timing starts. The report gives the
median of the rounds and the ratio tinyconv / torch (above 1: tinyconv is faster). Threads are
set equal on both sides: numba's thread count, the BLAS pool (threadpoolctl) and
``torch.set_num_threads``. Training is one forward, backward and Adam step at batch 64;
evaluation is a no-grad forward at batch 1000. Writes JSON and a Markdown table (``--out``,
default benchmarks/results/). The report names the OpenBLAS kernels that ran tinyconv's matrix
products, as the tinyconv worker found them (threadpoolctl's architecture, e.g. SkylakeX);
``--coretype NAME`` starts the workers with OPENBLAS_CORETYPE=NAME, which OpenBLAS reads when
numpy loads it (torch does not use numpy's OpenBLAS).

Why two processes: the frameworks share process-wide thread runtimes. A process has one GNU
OpenMP runtime (libgomp), and whoever loads it first fixes its wait policy for both: torch's
CPU ops are fastest with its threads spinning between parallel regions, tinyconv's kernels with
them asleep (tinyconv/_threads.py), so in one process one of the two runs in a setting it would
not have chosen. ``--same-process`` measures the earlier way, both in this process: torch is
imported first and keeps its setting, and tinyconv falls back to numba's workqueue threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", message=".*dropout2d.*")

# Only the standard library and _common up to here: a worker imports its framework itself.
# (_common first: it sets OpenBLAS's thread timeout before numpy loads it.)
from _common import (  # noqa: E402
    DEFAULT_OUT,
    LOG_PROB_MODELS,
    PROCESS_SETTLE_S,
    Worker,
    alternate_rounds,
    command_line,
    import_framework,
    machine_info,
    machine_line,
    numpy_blas,
    same_threads,
    serve,
    time_rounds,
    timed_for,
    timed_round,
    worker_framework,
    write_report,
)

SEED_NETWORKS = ("fashioncnn", "deepfashioncnn", "convmodule", "fc2layer", "cnn")
FRAMEWORKS = ("tinyconv", "torch")
MARKER = "THROUGHPUT-REPLY "
TRAIN_BATCH, EVAL_BATCH = 64, 1000


def batches(shape, train_batch=TRAIN_BATCH, eval_batch=EVAL_BATCH):
    """The same random training batch (x, y) and evaluation batch on both sides (NumPy)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((train_batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, train_batch)
    xe = rng.standard_normal((eval_batch,) + shape).astype(np.float32)
    return x, y, xe


def steps(fw, model, name, x, y, xe):
    """(train, evaluate): one Adam training step and one no-grad forward, written once for both
    frameworks (tinyconv copies torch's API)."""
    loss_fn = fw.nn.NLLLoss() if name in LOG_PROB_MODELS else fw.nn.CrossEntropyLoss()
    opt = fw.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty, txe = fw.from_numpy(x), fw.from_numpy(y), fw.from_numpy(xe)

    def train():
        model.train()
        opt.zero_grad()
        loss_fn(model(tx), ty).backward()
        opt.step()

    def evaluate():
        model.eval()
        with fw.no_grad():
            model(txe)
    return train, evaluate


# ---- one process per framework ---------------------------------------------------------------


def worker(framework, threads):
    """The hidden ``--worker`` mode: answer the parent's commands (see _common.serve)."""
    import numpy as np

    fw, layer = worker_framework(framework, threads)
    _, models = import_framework(framework)
    fns = {}

    def setup(cmd):  # build the network; tinyconv writes the initial weights
        name, path = cmd["model"], cmd["weights"]
        fw.manual_seed(0)
        model = models.SEED_NETWORKS[name][0]()
        if framework == "tinyconv":
            np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})
        else:
            with np.load(path) as saved:
                model.load_state_dict({k: fw.from_numpy(saved[k]) for k in saved.files})
        train, evaluate = steps(fw, model, name, *batches(models.SEED_NETWORKS[name][1]))
        fns.update(train=train, eval=evaluate)
        for fn in fns.values():  # warm-up (numba compilation, allocator)
            fn()
            fn()
        return {"layer": layer, "blas": numpy_blas().get("architecture")}

    def timed(cmd):
        return {"seconds": timed_round(fns[cmd["kind"]], cmd["repeat"], settle=PROCESS_SETTLE_S)}

    def timed_seconds(cmd):  # as many calls as fit in "seconds" (benchmarks/shared.py)
        return timed_for(fns[cmd["kind"]], cmd["seconds"], cmd.get("settle", 0.0))

    serve(MARKER, threads, {"setup": setup, "round": timed, "for": timed_seconds})


def start_worker(framework, threads, coretype=None, follow_load=False):
    """A ``--worker`` child of this script (``coretype``: OPENBLAS_CORETYPE in its environment;
    ``follow_load``: see ``_common.Worker``)."""
    return Worker(__file__, framework, threads, MARKER, coretype, follow_load)


def bench_model_processes(name, rounds, workers, weights):
    """Alternating rounds between the two worker processes: ({kind: {framework: seconds}},
    the tinyconv worker's setup reply)."""
    setup = workers["tinyconv"].ask(cmd="setup", model=name, weights=weights)
    workers["torch"].ask(cmd="setup", model=name, weights=weights)
    med = {**alternate_rounds(workers, rounds, {"train": 5}),
           **alternate_rounds(workers, rounds, {"eval": 1})}
    return med, setup


# ---- both frameworks in this process (--same-process) ----------------------------------------


def bench_model_same_process(name, rounds):
    """Both frameworks in this process (torch imported first): {kind: {framework: seconds}}."""
    import numpy as np
    import torch  # first: it keeps its own OpenMP setting, tinyconv takes numba's workqueue

    import tinyconv
    from parity import models as torch_models
    from tinyconv import models as tiny_models

    tinyconv.manual_seed(0)
    tiny = tiny_models.SEED_NETWORKS[name][0]()
    twin = torch_models.SEED_NETWORKS[name][0]()
    twin.load_state_dict({k: torch.from_numpy(np.array(v.numpy()))
                          for k, v in tiny.state_dict().items()})
    data = batches(tiny_models.SEED_NETWORKS[name][1])
    fns = {"tinyconv": steps(tinyconv, tiny, name, *data), "torch": steps(torch, twin, name, *data)}
    return {kind: time_rounds({fw: fns[fw][i] for fw in FRAMEWORKS}, rounds, repeat=repeat,
                              settle=True)
            for i, (kind, repeat) in enumerate((("train", 5), ("eval", 1)))}


def row_of(name, med):
    row = {"model": name}
    for kind, batch in (("train", TRAIN_BATCH), ("eval", EVAL_BATCH)):
        for fw in FRAMEWORKS:
            row[f"{kind}_{fw}_img_s"] = batch / med[kind][fw]
        row[f"{kind}_ratio"] = med[kind]["torch"] / med[kind]["tinyconv"]
    return row


def markdown(rows, info, command):
    lines = [f"Command: `{command}`  ",
             machine_line(info), "",
             "| network | train img/s tinyconv | train img/s torch | train ratio | "
             "eval img/s tinyconv | eval img/s torch | eval ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['train_tinyconv_img_s']:,.0f} | "
                     f"{r['train_torch_img_s']:,.0f} | {r['train_ratio']:.2f} | "
                     f"{r['eval_tinyconv_img_s']:,.0f} | {r['eval_torch_img_s']:,.0f} | "
                     f"{r['eval_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SEED_NETWORKS), choices=SEED_NETWORKS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--same-process", action="store_true",
                        help="run both frameworks in this process (see the module docstring)")
    parser.add_argument("--coretype", metavar="NAME",
                        help="start the worker processes with OPENBLAS_CORETYPE=NAME (e.g. "
                             "Haswell): the OpenBLAS kernels of tinyconv's matrix products")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.threads)
    if args.coretype and args.same_process:
        parser.error("--coretype needs the worker processes (OpenBLAS reads OPENBLAS_CORETYPE "
                     "when numpy loads, before this process could set it); drop --same-process")

    info = machine_info(args.threads)
    info["processes"] = "both in one process" if args.same_process else "one process each"
    rows = []
    if args.same_process:
        with same_threads(args.threads):
            for name in args.models:
                rows.append(row_of(name, bench_model_same_process(name, args.rounds)))
                _print(rows[-1])
    else:
        workers = {fw: start_worker(fw, args.threads, args.coretype) for fw in FRAMEWORKS}
        if args.coretype:
            info["openblas_coretype"] = f"{args.coretype} (worker processes)"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for name in args.models:
                    med, setup = bench_model_processes(name, args.rounds, workers,
                                                       os.path.join(tmp, f"{name}.npz"))
                    info["numba_threading_layer"] = setup["layer"]
                    blas = numpy_blas()  # this process's library; the kernels: the worker's
                    info["blas"] = (f"{blas.get('internal_api')} {blas.get('version')} "
                                    f"({setup['blas']} kernels in the tinyconv worker)")
                    rows.append(row_of(name, med))
                    _print(rows[-1])
        finally:
            for w in workers.values():
                w.close()
    command = command_line("throughput.py", argv)
    write_report(args.out, "throughput", info, command, rows, markdown(rows, info, command))


def _print(row):
    print(f"{row['model']:>15}: train {row['train_tinyconv_img_s']:7,.0f} vs "
          f"{row['train_torch_img_s']:7,.0f} img/s (ratio {row['train_ratio']:.2f}) | "
          f"eval {row['eval_tinyconv_img_s']:7,.0f} vs {row['eval_torch_img_s']:7,.0f} "
          f"img/s (ratio {row['eval_ratio']:.2f})", flush=True)


if __name__ == "__main__":
    main()
