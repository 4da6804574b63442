"""DataLoader throughput: Fashion-MNIST with augmentation, batches per second, by num_workers.

    python benchmarks/loader.py                       # one epoch (938 batches), 0 and 2 workers
    python benchmarks/loader.py --batches 300 --workers 0 1 2 4 --rounds 3

The dataset is the Fashion-MNIST training split with the augmentation of the examples'
``--augment``: ToTensor, RandomRotation(10), RandomHorizontalFlip, Normalize(0.5, 0.5), batch 64,
shuffled. Nothing else runs: this measures how fast batches can be produced, the ceiling a
training loop can draw from (with workers, training and loading share the cores; on 2 cores
a training step leaves them little). For each ``num_workers`` a fresh loader runs
``--batches`` batches (default: one epoch), timed from ``iter(loader)``, so worker start-up
is included; ``first batch`` is the time to the first one. Rounds alternate between the
settings; the median round is reported. Writes JSON and a Markdown table (``--out``, default
benchmarks/results/).
"""

import argparse
import itertools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402 - sets OPENBLAS_THREAD_TIMEOUT before numpy loads
    DEFAULT_OUT,
    add_repo_to_path,
    command_line,
    machine_info,
    machine_line,
    markdown_table,
    write_report,
)

add_repo_to_path()


def make_dataset(root):
    from tinyconv.data import FashionMNIST
    from tinyconv.data import transforms as T

    augment = T.Compose([T.ToTensor(), T.RandomRotation(10), T.RandomHorizontalFlip(),
                         T.Normalize(0.5, 0.5)])
    return FashionMNIST(root, train=True, transform=augment, download=False)


def one_round(dataset, num_workers, batches, batch_size, seed):
    """(seconds to the first batch, seconds for all ``batches``, images seen)."""
    from tinyconv.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=seed,
                        num_workers=num_workers)
    start = time.perf_counter()
    first, images = None, 0
    for images_batch, _ in itertools.islice(loader, batches):
        images += len(images_batch)
        if first is None:
            first = time.perf_counter() - start
    return first, time.perf_counter() - start, images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="num_workers settings to compare (default: 0 2)")
    parser.add_argument("--batches", type=int, default=None,
                        help="batches per round (default: one epoch)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data-dir", default=None,
                        help="data root (default: $TINYCONV_DATA or ./data)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if any(w < 0 for w in args.workers):
        parser.error(f"--workers must be non-negative, got {args.workers}")

    from tinyconv.data import DataError
    try:
        dataset = make_dataset(args.data_dir)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    batches = args.batches or -(-len(dataset) // args.batch_size)
    samples = {w: [] for w in args.workers}
    for round_number in range(args.rounds):
        for workers in args.workers:
            first, total, images = one_round(dataset, workers, batches, args.batch_size,
                                             seed=round_number)
            samples[workers].append((first, total, images))
            print(f"round {round_number + 1}: num_workers={workers}: {batches / total:.1f} "
                  f"batches/s ({images / total:,.0f} img/s), first batch {first * 1000:.0f} ms",
                  flush=True)

    rows, table_rows = [], []
    for workers, runs in samples.items():
        total = statistics.median(run[1] for run in runs)
        first = statistics.median(run[0] for run in runs)
        row = {"num_workers": workers, "batches": batches, "batch_size": args.batch_size,
               "seconds": total, "batches_per_s": batches / total,
               "images_per_s": batches * args.batch_size / total, "first_batch_s": first}
        rows.append(row)
        table_rows.append([workers, batches, f"{total:.2f}", f"{row['batches_per_s']:.1f}",
                           f"{row['images_per_s']:,.0f}", f"{first * 1000:.0f}"])
    info = machine_info(os.cpu_count())
    table = "\n".join(markdown_table(
        ["num_workers", "batches", "seconds", "batches/s", "images/s", "first batch (ms)"],
        "rrrrrr", table_rows) + ["", machine_line(info), ""])
    write_report(args.out, "loader", info, command_line("loader.py", argv), rows, table)


if __name__ == "__main__":
    main()
