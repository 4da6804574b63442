"""What runs inside a DataLoader worker process, and the random state of every batch.

A worker takes tasks ``(epoch, task, indices, base_seed)`` from its own index queue, fetches and
collates that batch, and puts ``(epoch, task, batch)`` on the result queue shared by all workers;
``None`` tells it to stop. Errors travel as an ``ExceptionWrapper`` holding the worker's
traceback, re-raised in the parent. Results are pickled here, in the worker's own thread, so
that a batch that cannot be pickled becomes an error in the parent instead of being dropped
silently by the queue's background thread (the parent would wait for it forever).

Randomness: the loader draws ``base_seed`` from its generator when each epoch starts. Batch
number ``task`` of the epoch is fetched with tinyconv's global generator (``tinyconv.random``,
which tinyconv's random transforms use) set to a state that depends only on ``(base_seed,
task)``: in a worker, and with ``num_workers=0`` in the main process too, which then gets its
own state back (so augmentation never shifts, say, the dropout masks of training). The batches,
augmented, are thus the same for every ``num_workers``; batches fetched by different workers are
augmented differently; the same generator seed repeats an epoch. In workers, NumPy's legacy
``np.random`` and Python's ``random`` are seeded per batch as well (reproducible, different in
every batch, but not the same as with ``num_workers=0``, where they are left alone).
"""

import os
import pickle
import queue
import random as pyrandom
import signal
import sys
import traceback
from dataclasses import dataclass

import numpy as np

from tinyconv import random as tinyconv_random

# How often a waiting worker checks that it should stop (seconds).
_CHECK_INTERVAL = 0.1


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker, as in torch."""

    id: int  # noqa: A003 - torch's field name
    num_workers: int
    seed: int
    dataset: object


_worker_info = None


def get_worker_info():
    """In a DataLoader worker: its ``WorkerInfo`` (``id``, ``num_workers``, ``seed``,
    ``dataset``, the worker's own copy); in the main process: None."""
    return _worker_info


# ---- random state ------------------------------------------------------------------------

# Batch k draws from the epoch's stream starting at position k * BATCH_STRIDE: PCG64 can jump
# ahead that far at once (``advance``), so batches never share a number. (Seeding a fresh
# generator from ``SeedSequence([base_seed, k])`` for every batch would do too, but costs
# 10x more, noticeable on small batches without augmentation.)
BATCH_STRIDE = 1 << 64
_GOLDEN = 0x9E3779B97F4A7C15  # odd: task -> task * _GOLDEN is one-to-one modulo 2**32


class EpochSeeds:
    """The random state of every batch of one epoch, given the epoch's ``base_seed``."""

    def __init__(self, base_seed):
        self.base_seed = base_seed
        self.start = np.random.PCG64(np.random.SeedSequence(base_seed)).state

    def seed_tinyconv(self, task):
        """Put tinyconv's global generator where batch ``task`` starts drawing."""
        bit_generator = tinyconv_random.default_generator.bit_generator
        bit_generator.state = self.start
        bit_generator.advance(task * BATCH_STRIDE)

    def seed_all(self, task):
        """Also NumPy's legacy ``np.random`` and Python's ``random`` (in workers only: their
        states are slow to save and restore in the main process)."""
        self.seed_tinyconv(task)
        np.random.seed((self.base_seed + task * _GOLDEN) & 0xFFFFFFFF)
        pyrandom.seed(self.base_seed * (1 << 64) + task)


class batch_random_state:
    """``with batch_random_state(seeds, task):`` runs the block with tinyconv's global generator
    where batch ``task`` starts drawing, then gives the caller its own state back."""

    def __init__(self, seeds, task):
        self.seeds, self.task = seeds, task

    def __enter__(self):
        self.saved = tinyconv_random.default_generator.bit_generator.state
        self.seeds.seed_tinyconv(self.task)

    def __exit__(self, *exc):
        tinyconv_random.default_generator.bit_generator.state = self.saved
        return False


# ---- errors ------------------------------------------------------------------------------


class ExceptionWrapper:
    """An exception raised in a worker, with its traceback as text, to re-raise in the parent."""

    def __init__(self, exc_info, where):
        self.exc_type = exc_info[0]
        self.traceback = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self):
        message = (f"Caught {self.exc_type.__name__} {self.where}.\n"
                   f"Original {self.traceback}")
        try:
            error = self.exc_type(message)
        except Exception:  # an exception class that wants other arguments
            raise RuntimeError(message) from None
        raise error


class Exhausted:
    """The answer of a worker whose pass over an IterableDataset has ended."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


def _dumps(epoch, task, data, worker_id):
    """Pickle a result here, so that a failure is reported instead of lost."""
    try:
        return pickle.dumps((epoch, task, data), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        error = ExceptionWrapper(sys.exc_info(), f"in DataLoader worker process {worker_id} "
                                                 f"while sending a batch to the main process")
    try:
        return pickle.dumps((epoch, task, error), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # the exception class itself cannot be pickled
        error.exc_type = RuntimeError
        return pickle.dumps((epoch, task, error), protocol=pickle.HIGHEST_PROTOCOL)


# ---- the worker process ------------------------------------------------------------------


def worker_loop(dataset, index_queue, result_queue, done, fetch, worker_init_fn, worker_id,
                num_workers, seed, parent_pid):
    """The body of worker process ``worker_id`` (see the module docstring).

    ``fetch(dataset, indices)`` returns a collated batch. ``seed`` (the epoch's base seed plus
    ``worker_id``, as in torch) seeds the process before ``worker_init_fn(worker_id)`` runs.
    The worker stops at ``None``, when the event ``done`` is set, or when its parent is gone.

    NOTE: ``done`` is needed besides ``None``: a queue's ``put`` hands the message to a
    background thread, and when the loader is collected as garbage (say, in a reference cycle
    with an exception), the queue may be finalized first, its thread stopped, and the ``None``
    never sent. Setting an event needs no thread.
    """
    global _worker_info
    # Ctrl-C reaches every process of the terminal's group; the parent handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed,
                              dataset=dataset)
    tinyconv_random.manual_seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    pyrandom.seed(seed)
    init_error = None
    if worker_init_fn is not None:
        try:
            worker_init_fn(worker_id)
        except Exception:
            init_error = ExceptionWrapper(sys.exc_info(), f"in DataLoader worker process "
                                                          f"{worker_id} in worker_init_fn")
    seeds, current_epoch = None, None
    while True:
        if done.is_set() or os.getppid() != parent_pid:  # the parent died: nobody else stops us
            break
        try:
            message = index_queue.get(timeout=_CHECK_INTERVAL)
        except queue.Empty:
            continue
        if message is None:
            break
        epoch, task, indices, base_seed = message
        if seeds is None or seeds.base_seed != base_seed:
            seeds = EpochSeeds(base_seed)
        if init_error is not None:
            data = init_error
        else:
            try:
                seeds.seed_all(task)
                if epoch != current_epoch and hasattr(fetch, "start_epoch"):
                    fetch.start_epoch(dataset)  # an IterableDataset: a new pass
                current_epoch = epoch
                data = fetch(dataset, indices)
            except StopIteration:
                if hasattr(fetch, "start_epoch"):
                    data = Exhausted(worker_id)
                else:  # raised by a map-style dataset: an error like any other
                    data = ExceptionWrapper(sys.exc_info(),
                                            f"in DataLoader worker process {worker_id}")
            except Exception:
                data = ExceptionWrapper(sys.exc_info(),
                                        f"in DataLoader worker process {worker_id}")
        result_queue.put(_dumps(epoch, task, data, worker_id))
    # Results the parent no longer reads must not keep this process alive at exit.
    result_queue.cancel_join_thread()
