"""Training and evaluation throughput of every seed network, tinyconv against PyTorch.

    python benchmarks/throughput.py                       # all networks, 2 threads
    python benchmarks/throughput.py --models fashioncnn --rounds 7 --threads 2

Both frameworks run in this one process on the same random batch, starting from the same
weights, in alternating rounds (tinyconv, torch, tinyconv, ...), so that whatever else the
machine does hits both alike; the report gives the median of the rounds and the ratio
tinyconv / torch (above 1: tinyconv is faster). Threads are set equal on both sides: numba's
thread count, the BLAS pool (threadpoolctl) and ``torch.set_num_threads``. Training is one
forward, backward and Adam step at batch 64; evaluation is a no-grad forward at batch 1000.
Writes JSON and a Markdown table (``--out``, default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*dropout2d.*")

import _common  # noqa: E402,F401  (first: sets OpenBLAS's thread timeout before numpy loads it)
import numpy as np  # noqa: E402
import torch  # noqa: E402  (imported before tinyconv: neither changes the other's threads)
from _common import (  # noqa: E402
    DEFAULT_OUT,
    LOG_PROB_MODELS,
    command_line,
    machine_info,
    machine_line,
    same_threads,
    time_rounds,
    write_report,
)

import tinyconv  # noqa: E402
from parity import models as torch_models  # noqa: E402
from tinyconv import models as tiny_models  # noqa: E402


def make_pair(name, seed=0):
    tinyconv.manual_seed(seed)
    tiny = tiny_models.SEED_NETWORKS[name][0]()
    twin = torch_models.SEED_NETWORKS[name][0]()
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                          for k, v in tiny.state_dict().items()})
    return tiny, twin


def bench_model(name, rounds, train_batch=64, eval_batch=1000):
    tiny, twin = make_pair(name)
    shape = tiny_models.SEED_NETWORKS[name][1]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((train_batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, train_batch)
    xe = rng.standard_normal((eval_batch,) + shape).astype(np.float32)
    log_probs = name in LOG_PROB_MODELS  # these end in log_softmax: use nll_loss
    t_loss = tinyconv.nn.NLLLoss() if log_probs else tinyconv.nn.CrossEntropyLoss()
    p_loss = torch.nn.NLLLoss() if log_probs else torch.nn.CrossEntropyLoss()
    t_opt = tinyconv.optim.Adam(tiny.parameters(), lr=1e-3)
    p_opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    tx, ty, txe = tinyconv.from_numpy(x), tinyconv.from_numpy(y), tinyconv.from_numpy(xe)
    px, py, pxe = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xe)

    def tiny_train():
        t_opt.zero_grad()
        t_loss(tiny(tx), ty).backward()
        t_opt.step()

    def torch_train():
        p_opt.zero_grad()
        p_loss(twin(px), py).backward()
        p_opt.step()

    def tiny_eval():
        with tinyconv.no_grad():
            tiny(txe)

    def torch_eval():
        with torch.no_grad():
            twin(pxe)

    tiny.train()
    twin.train()
    train = time_rounds({"tinyconv": tiny_train, "torch": torch_train}, rounds, repeat=5,
                        settle=True)
    tiny.eval()
    twin.eval()
    evals = time_rounds({"tinyconv": tiny_eval, "torch": torch_eval}, rounds, repeat=1,
                        settle=True)
    row = {"model": name}
    for kind, med, batch in (("train", train, train_batch), ("eval", evals, eval_batch)):
        for fw in ("tinyconv", "torch"):
            row[f"{kind}_{fw}_img_s"] = batch / med[fw]
        row[f"{kind}_ratio"] = med["torch"] / med["tinyconv"]
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
    parser.add_argument("--models", nargs="+", default=list(tiny_models.SEED_NETWORKS),
                        choices=list(tiny_models.SEED_NETWORKS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    info = machine_info(args.threads)
    rows = []
    with same_threads(args.threads):
        for name in args.models:
            row = bench_model(name, args.rounds)
            rows.append(row)
            print(f"{name:>15}: train {row['train_tinyconv_img_s']:7,.0f} vs "
                  f"{row['train_torch_img_s']:7,.0f} img/s (ratio {row['train_ratio']:.2f}) | "
                  f"eval {row['eval_tinyconv_img_s']:7,.0f} vs {row['eval_torch_img_s']:7,.0f} "
                  f"img/s (ratio {row['eval_ratio']:.2f})", flush=True)
    command = command_line("throughput.py", argv)
    write_report(args.out, "throughput", info, command, rows, markdown(rows, info, command))


if __name__ == "__main__":
    main()
