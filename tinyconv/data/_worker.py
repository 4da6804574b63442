"""What runs inside a DataLoader worker process, and the random state of every batch.

A worker takes tasks ``(epoch, task, indices, base_seed)`` from its own index queue, fetches and
collates that batch, and puts ``(epoch, task, batch)`` on the result queue shared by all workers;
``None`` tells it to stop. Errors travel as an ``ExceptionWrapper`` holding the worker's
traceback, re-raised in the parent. Results are pickled here, in the worker's own thread, so
that a batch that cannot be pickled becomes an error in the parent instead of being dropped
silently by the queue's background thread (the parent would wait for it forever).

Randomness: the loader draws ``base_seed`` from its generator when each epoch starts. Before
fetching batch number ``task``, the global random state (``tinyconv.random``'s generator,
NumPy's legacy ``np.random`` and Python's ``random``) is seeded from ``(base_seed, task)``, in a
worker and, with ``num_workers=0``, in the main process too (which then gets its own state
back). So the random transforms of batch ``task`` draw the same numbers whichever process
fetches it: a loader yields the same batches for every ``num_workers``, batches fetched by
different workers are augmented differently, and the same generator seed repeats an epoch.
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

# How often a waiting worker checks that its parent is still alive (seconds).
_PARENT_CHECK_INTERVAL = 1.0


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


def _seed_everything(sequence):
    """Seed tinyconv's, NumPy's and Python's global generators from a ``SeedSequence``."""
    tinyconv_random.default_generator.bit_generator.state = np.random.PCG64(sequence).state
    numpy_seed, python_seed = sequence.generate_state(2)
    np.random.seed(int(numpy_seed))
    pyrandom.seed(int(python_seed))


def seed_for_batch(base_seed, task):
    """Seed the global generators for batch number ``task`` of the epoch ``base_seed``."""
    _seed_everything(np.random.SeedSequence([base_seed, task]))


class batch_random_state:
    """``with batch_random_state(base_seed, task):`` runs the block as a worker would fetch
    batch ``task`` (see the module docstring), then gives the caller its random state back."""

    def __init__(self, base_seed, task):
        self.base_seed, self.task = base_seed, task

    def __enter__(self):
        self.saved = (tinyconv_random.default_generator.bit_generator.state,
                      np.random.get_state(), pyrandom.getstate())
        seed_for_batch(self.base_seed, self.task)

    def __exit__(self, *exc):
        tinyconv_state, numpy_state, python_state = self.saved
        tinyconv_random.default_generator.bit_generator.state = tinyconv_state
        np.random.set_state(numpy_state)
        pyrandom.setstate(python_state)
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


def worker_loop(dataset, index_queue, result_queue, fetch, worker_init_fn, worker_id,
                num_workers, seed, parent_pid):
    """The body of worker process ``worker_id`` (see the module docstring).

    ``fetch(dataset, indices)`` returns a collated batch. ``seed`` (the epoch's base seed plus
    ``worker_id``, as in torch) seeds the process before ``worker_init_fn(worker_id)`` runs.
    """
    global _worker_info
    # Ctrl-C reaches every process of the terminal's group; the parent handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed,
                              dataset=dataset)
    tinyconv_random.manual_seed(seed)
    _seed_everything(np.random.SeedSequence(seed))
    init_error = None
    if worker_init_fn is not None:
        try:
            worker_init_fn(worker_id)
        except Exception:
            init_error = ExceptionWrapper(sys.exc_info(), f"in DataLoader worker process "
                                                          f"{worker_id} in worker_init_fn")
    while True:
        try:
            message = index_queue.get(timeout=_PARENT_CHECK_INTERVAL)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the parent died: nobody will ever stop us
                break
            continue
        if message is None:
            break
        epoch, task, indices, base_seed = message
        if init_error is not None:
            data = init_error
        else:
            try:
                seed_for_batch(base_seed, task)
                data = fetch(dataset, indices)
            except Exception:
                data = ExceptionWrapper(sys.exc_info(),
                                        f"in DataLoader worker process {worker_id}")
        result_queue.put(_dumps(epoch, task, data, worker_id))
    # Results the parent no longer reads must not keep this process alive at exit.
    result_queue.cancel_join_thread()
