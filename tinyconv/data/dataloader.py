"""DataLoader, Dataset, ArrayDataset, Subset and default_collate, as in torch.utils.data.

The loader asks its batch sampler for lists of indices and turns each list into a batch:

* ``dataset.__getitems__(indices)``, when the dataset has it, else ``[dataset[i] for i in
  indices]``, gives the samples;
* ``collate_fn(samples)`` turns the list of samples into the batch (torch's convention);
  ``default_collate`` stacks arrays, numbers and tinyconv Tensors into Tensors, field by field.

The fast path: tinyconv's datasets (``ArrayDataset``, ``MNIST``, ``FashionMNIST``, ``CIFAR10``)
return from ``__getitems__`` the whole batch already stacked, a tuple ``(images, labels)`` of
NumPy arrays, their transforms applied to the batch at once. With the default ``collate_fn``
those arrays become the Tensors directly (what ``default_collate`` makes of the samples, without
cutting the batch into samples and stacking them again); a user's ``collate_fn`` gets the
samples ``[(images[0], labels[0]), ...]``. A ``__getitems__`` that returns a list is read as
torch's: a list of samples.

``num_workers > 0`` fetches whole batches in worker processes (see ``_worker``); batches and
their random augmentation are the same for every ``num_workers``.
"""

import collections.abc
import itertools
import multiprocessing
import numbers
import os
import pickle
import queue
import sys
import time
import warnings

import numpy as np

from tinyconv.data import _rng, _worker
from tinyconv.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler
from tinyconv.tensor import Tensor

# ---- collate -------------------------------------------------------------------------------

_COLLATE_HELP = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
                 "lists; found {}")


def _is_text_array(array):
    return array.dtype.kind in "SaUO"  # strings and objects: nothing to stack


def default_collate(batch):
    """Merge a list of samples into a batch, field by field, as torch's ``default_collate``.

    Given the list ``batch`` of B samples, whose first element is ``elem``:

    * tinyconv Tensors or NumPy arrays of one shape -> one Tensor, shape ``(B, *shape)``;
    * NumPy scalars -> a Tensor of their dtype; Python ints -> int64; floats -> float64;
      bools -> bool;
    * strings -> the list unchanged;
    * dicts -> a dict of collated values, key by key;
    * tuples and lists (all of one length) -> a list (a namedtuple: the same namedtuple) of the
      collated fields: ``[(x0, y0), (x1, y1)] -> [stack(x0, x1), tensor([y0, y1])]``.
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor._wrap(np.stack([sample.detach().numpy() for sample in batch]))
    if isinstance(elem, np.ndarray):
        if _is_text_array(elem):
            raise TypeError(_COLLATE_HELP.format(elem.dtype))
        return Tensor._wrap(np.stack(batch))
    if isinstance(elem, np.generic):
        if _is_text_array(np.asarray(elem)):
            return list(batch)
        return Tensor._wrap(np.asarray(batch))
    if isinstance(elem, bool):
        return Tensor._wrap(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        return Tensor._wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return Tensor._wrap(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([sample[key] for sample in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:  # a mapping type that cannot be built from a dict
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch, strict=True)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(field)) for field in zip(*batch, strict=True)]
        if isinstance(elem, tuple):
            return fields  # a list, as torch does
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_COLLATE_HELP.format(type(elem)))


def default_convert(data):
    """What the loader does to each sample when ``batch_size=None`` (no batching): NumPy
    arrays and scalars become Tensors, inside dicts, tuples and lists too; all else stays."""
    if isinstance(data, np.ndarray) or (isinstance(data, np.generic)
                                        and not _is_text_array(np.asarray(data))):
        return data if _is_text_array(np.asarray(data)) else Tensor._wrap(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return type(data)({key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, (tuple, list)):
        return type(data)(default_convert(value) for value in data)
    return data


def _unstack(stacked):
    """The samples of a stacked batch: ``(images, labels) -> [(images[0], labels[0]), ...]``."""
    return list(zip(*stacked, strict=True))


def _fetch_batch(dataset, indices, collate_fn):
    """One batch: the samples at ``indices``, collated (the fast path: see the module doc)."""
    if hasattr(dataset, "__getitems__"):
        samples = dataset.__getitems__(indices)
        if isinstance(samples, list):  # torch's convention: a list of samples
            return collate_fn(samples)
        if collate_fn is default_collate:  # tinyconv's: a tuple of stacked fields
            return [Tensor._wrap(np.ascontiguousarray(field)) for field in samples]
        return collate_fn(_unstack(samples))
    return collate_fn([dataset[i] for i in indices])


class _Fetcher:
    """``fetcher(dataset, indices)``: a batch (or, without batching, one converted sample).

    A plain class, so that it pickles for the "spawn" start method when ``collate_fn`` does.
    """

    def __init__(self, collate_fn, auto_collation):
        self.collate_fn, self.auto_collation = collate_fn, auto_collation

    def __call__(self, dataset, indices):
        if self.auto_collation:
            return _fetch_batch(dataset, indices, self.collate_fn)
        return self.collate_fn(dataset[indices])


class _IterableFetcher:
    """For an ``IterableDataset``: the next samples of this process's pass over it.

    ``start_epoch`` begins a new pass; a call asks for as many samples as there are (dummy)
    indices and raises StopIteration when the pass is over (or, with ``drop_last``, when
    only an incomplete batch is left), as torch's fetcher does.
    """

    def __init__(self, collate_fn, auto_collation, drop_last):
        self.collate_fn, self.auto_collation = collate_fn, auto_collation
        self.drop_last = drop_last
        self.samples = None

    def start_epoch(self, dataset):
        self.samples = iter(dataset)

    def __call__(self, dataset, indices):
        if not self.auto_collation:
            return self.collate_fn(next(self.samples))
        batch = list(itertools.islice(self.samples, len(indices)))
        if not batch or (self.drop_last and len(batch) < len(indices)):
            raise StopIteration
        return self.collate_fn(batch)


class _InfiniteConstantSampler(Sampler):
    """None, forever: an IterableDataset decides itself when a pass ends."""

    def __iter__(self):
        return itertools.repeat(None)


def fetch_batch(dataset, indices):
    """Return ``(images, labels)`` NumPy arrays for ``indices``, via ``__getitems__`` when the
    dataset has tinyconv's stacked one, else stacking ``dataset[i]`` sample by sample."""
    if hasattr(dataset, "__getitems__"):
        stacked = dataset.__getitems__(indices)
        if not isinstance(stacked, list):
            return stacked
        samples = stacked
    else:
        samples = [dataset[int(i)] for i in indices]
    images = np.stack([np.asarray(image) for image, _ in samples])
    labels = np.asarray([np.asarray(label) for _, label in samples])
    return images, labels


# ---- datasets ------------------------------------------------------------------------------


class Dataset:
    """Base class of map-style datasets: define ``__getitem__(index)`` and ``__len__``
    (optionally ``__getitems__(indices)``, see the module docstring)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class IterableDataset(Dataset):
    """Base class of iterable-style datasets: define ``__iter__``, yielding samples.

    The loader batches the samples in the order they come (no sampler, no shuffle). With
    workers, every worker iterates its own copy of the dataset: split the work in ``__iter__``
    with ``get_worker_info()`` (``id``, ``num_workers``), or each sample comes once per worker.
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class ArrayDataset(Dataset):
    """A dataset over NumPy arrays ``images[i], labels[i]``, like torch's TensorDataset.

    ``transform`` is applied to single images in ``__getitem__`` and to whole batches in
    ``__getitems__``; labels are returned untouched (ints one by one, arrays for batches).
    """

    def __init__(self, images, labels, transform=None):
        self.images = np.asarray(images)
        self.labels = np.asarray(labels)
        if len(self.images) != len(self.labels):
            raise ValueError(f"images and labels differ in length: {len(self.images)} images, "
                             f"{len(self.labels)} labels")
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image, label = self.images[index], self.labels[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, label.item() if isinstance(label, np.generic) else label

    def __getitems__(self, indices):
        indices = np.asarray(indices, dtype=np.intp)
        images = self.images[indices]
        if self.transform is not None:
            images = self.transform(images)
        return images, self.labels[indices]


class Subset(Dataset):
    """The part of ``dataset`` at ``indices``, in that order, like torch.utils.data.Subset."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.intp)
        if self.indices.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {self.indices.shape}")

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices):
        chosen = self.indices[np.asarray(indices, dtype=np.intp)]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(chosen)
        return [self.dataset[int(i)] for i in chosen]


# ---- the loader ----------------------------------------------------------------------------


def _default_context():
    """The start method of worker processes when ``multiprocessing_context`` is None.

    "fork" on Linux (as torch there): a worker starts in milliseconds with the parent's
    dataset already in memory (shared until written; "spawn" and "forkserver" would pickle the
    dataset, 47 MB for Fashion-MNIST, and import tinyconv and numba again in every worker, a
    second or more each, at every epoch without ``persistent_workers``), and transforms may be
    lambdas. Its one danger, GNU OpenMP's threads not surviving the fork, cannot bite: a child
    forked after tinyconv started them runs its kernels on one thread (``tinyconv._threads``),
    and the workers themselves only run NumPy. Elsewhere: the platform's default ("spawn" on
    macOS and Windows, where "fork" is unsafe or missing).
    """
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class DataLoader:
    """Iterate over ``dataset`` in batches, as torch.utils.data.DataLoader.

    Args:
        dataset: a map-style dataset: ``__len__`` and ``__getitem__`` (better for speed,
            tinyconv's ``__getitems__``, see the module docstring).
        batch_size: samples per batch; None turns batching off (each sample goes through
            ``collate_fn``, by default ``default_convert``).
        shuffle: a fresh random order every epoch (``RandomSampler``).
        sampler: the order of the indices, any iterable of them (excludes ``shuffle``).
        batch_sampler: yields whole lists of indices (excludes ``batch_size``, ``shuffle``,
            ``sampler`` and ``drop_last``).
        num_workers: worker processes fetching batches; 0 fetches in the main process.
        collate_fn: turns a list of samples into a batch (``default_collate``).
        pin_memory: accepted; nothing to pin on the CPU (a warning says so, as torch's).
        drop_last: drop the last batch when it is incomplete.
        timeout: with workers, seconds to wait for a batch before raising (0: no limit).
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each new worker.
        multiprocessing_context: a start method name ("fork", "spawn", "forkserver") or a
            multiprocessing context; None: "fork" on Linux, see ``_default_context``.
        generator: the loader's randomness (the order of ``shuffle``, the base seed of each
            epoch's augmentation): an int seed (the same seed gives the same sequence of
            epochs), a ``numpy.random.Generator``, or None for the global generator
            (``tinyconv.manual_seed``).
        prefetch_factor: batches in flight per worker (default 2 with workers).
        persistent_workers: keep the workers alive from one epoch to the next.
        pin_memory_device: accepted, unused (as ``pin_memory``).
        in_order: with workers, yield batches in the sampler's order (else as they come).

    Random transforms draw, for batch number k of an epoch, from tinyconv's global generator
    set to a state given by (the epoch's base seed, k) (see ``tinyconv.data._worker``): the
    batches are the same for any ``num_workers``, and ``manual_seed`` or ``generator`` repeats
    them. A transform built with its own ``generator`` draws from that instead, and each worker
    has its own copy of it (so workers would repeat each other's draws: leave ``generator``
    None in transforms used with workers).
    """

    _FIXED_AFTER_INIT = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
                         "persistent_workers")

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        iterable = isinstance(dataset, IterableDataset)
        if not iterable and not hasattr(dataset, "__getitem__") \
                and not hasattr(dataset, "__getitems__"):
            raise TypeError(f"dataset must be a map-style dataset (with __getitem__ and "
                            f"__len__) or an IterableDataset, got {type(dataset).__name__}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) \
                or num_workers < 0:
            raise ValueError(f"num_workers option should be non-negative; use num_workers=0 "
                             f"to disable multiprocessing, got num_workers={num_workers!r}")
        if not isinstance(timeout, numbers.Real) or timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got timeout={timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "
                             "multiprocessing.let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and (isinstance(prefetch_factor, bool) or not isinstance(
                prefetch_factor, numbers.Integral) or prefetch_factor < 0):
            raise ValueError(f"prefetch_factor option should be a non-negative int, got "
                             f"prefetch_factor={prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"worker_init_fn must be callable, got {worker_init_fn!r}")

        if iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler),
                                ("batch_sampler", batch_sampler)):
                if value not in (None, False) if name == "shuffle" else value is not None:
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                     f"{name} option, but got {name}={value}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        generator = _rng.make_generator(generator)
        if iterable:
            sampler = _InfiniteConstantSampler()
        elif sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        if pin_memory:
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, "
                          "then device pinned memory won't be used.", stacklevel=2)
        self.dataset = dataset
        self._iterable = iterable
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = int(num_workers)
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._iterator = None
        self.__initialized = True

    def __setattr__(self, name, value):
        if getattr(self, "_DataLoader__initialized", False) and name in self._FIXED_AFTER_INIT:
            raise ValueError(f"{name} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def multiprocessing_context(self):
        return self.__multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, context):
        if context is not None:
            if self.num_workers == 0:
                raise ValueError(f"multiprocessing_context can only be used with multi-process "
                                 f"loading (num_workers > 0), but got "
                                 f"num_workers={self.num_workers}")
            if isinstance(context, str):
                methods = multiprocessing.get_all_start_methods()
                if context not in methods:
                    raise ValueError(f"multiprocessing_context option should specify a valid "
                                     f"start method in {methods!r}, but got "
                                     f"multiprocessing_context={context!r}")
                context = multiprocessing.get_context(context)
            elif not isinstance(context, multiprocessing.context.BaseContext):
                raise TypeError(f"multiprocessing_context option must be a valid context "
                                f"object or a string specifying the start method, but got "
                                f"multiprocessing_context={context!r}")
        self.__multiprocessing_context = context

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self):
        if self._iterable:  # what the dataset says; with workers, only if __iter__ splits
            length = len(self.dataset)
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last \
                    else -(-length // self.batch_size)
            return length
        return len(self._index_sampler)

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if not self.persistent_workers:
            return _MultiProcessIter(self)
        if self._iterator is None or self._iterator._shut_down:
            self._iterator = _MultiProcessIter(self)
        else:
            self._iterator._reset()
        return self._iterator

    def _fetcher(self):
        if self._iterable:
            return _IterableFetcher(self.collate_fn, self._auto_collation, self.drop_last)
        return _Fetcher(self.collate_fn, self._auto_collation)


class _BaseIter:
    """Common to both iterators: the sampler's pass and the epoch's base seed."""

    def __init__(self, loader):
        self._loader = loader
        self._fetch = loader._fetcher()
        self._start_epoch()

    def _start_epoch(self):
        # First the sampler's order, then the base seed, both from the loader's generator.
        self._index_iter = iter(self._loader._index_sampler)
        self._base_seed = int(_rng.resolve(self._loader.generator).integers(0, 2**63))
        self._seeds = _worker.EpochSeeds(self._base_seed)
        self._next_task = 0  # the number of the next batch to hand out

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader)


class _SingleProcessIter(_BaseIter):
    def _start_epoch(self):
        super()._start_epoch()
        if isinstance(self._fetch, _IterableFetcher):
            self._fetch.start_epoch(self._loader.dataset)

    def __next__(self):
        indices = next(self._index_iter)
        task, self._next_task = self._next_task, self._next_task + 1
        with _worker.batch_random_state(self._seeds, task):
            return self._fetch(self._loader.dataset, indices)


# How often the main process checks that its workers are alive while it waits (seconds).
_WORKER_CHECK_INTERVAL = 0.2
_MISSING = object()


class _MultiProcessIter(_BaseIter):
    """Batches fetched by ``num_workers`` processes.

    Tasks (one batch each) go round-robin to the workers, through each worker's own index
    queue (task k to worker k % num_workers, unless an IterableDataset's pass ended in some
    of them); at most ``prefetch_factor * num_workers`` tasks are out at once. Results come
    back on one queue, in any order, and wait in ``_ready`` until their turn (``in_order``).
    """

    def __init__(self, loader):
        self._workers, self._index_queues = [], []
        self._shut_down = False
        self._epoch = 0
        super().__init__(loader)  # draws the first epoch's base seed, for the workers' seeds
        context = loader.multiprocessing_context or _default_context()
        self._result_queue = context.Queue()
        self._done = context.Event()
        for worker_id in range(loader.num_workers):
            index_queue = context.Queue()
            index_queue.cancel_join_thread()  # never wait at exit for a worker to read it
            process = context.Process(
                target=_worker.worker_loop, daemon=True,
                args=(loader.dataset, index_queue, self._result_queue, self._done, self._fetch,
                      loader.worker_init_fn, worker_id, loader.num_workers,
                      self._base_seed + worker_id, os.getpid()))
            process.start()
            self._workers.append(process)
            self._index_queues.append(index_queue)
        self._prime()

    def _start_epoch(self):
        super()._start_epoch()
        self._epoch += 1
        self._tasks_sent = 0
        self._exhausted = False
        self._active = [True] * self._loader.num_workers  # an IterableDataset's pass can end
        self._next_worker = 0
        self._ready = {}  # task -> batch (or ExceptionWrapper) waiting for its turn

    def _reset(self):
        """A new epoch on the same (persistent) workers; results of the old one are ignored."""
        self._start_epoch()
        self._prime()

    def _prime(self):
        for _ in range(self._loader.prefetch_factor * self._loader.num_workers):
            self._send_task()

    def _send_task(self):
        if self._exhausted:
            return
        try:
            indices = next(self._index_iter)
        except StopIteration:
            self._exhausted = True
            return
        for _ in range(len(self._active)):  # round-robin over the workers still active
            worker = self._next_worker
            self._next_worker = (worker + 1) % len(self._active)
            if self._active[worker]:
                break
        else:
            self._exhausted = True
            return
        task = self._tasks_sent
        self._tasks_sent += 1
        self._index_queues[worker].put((self._epoch, task, indices, self._base_seed))

    def __next__(self):
        if self._shut_down:
            raise StopIteration
        while True:
            if self._exhausted and self._next_task >= self._tasks_sent:
                if not self._loader.persistent_workers:
                    self._shutdown()
                raise StopIteration
            data = _MISSING  # (None could be a batch: a collate_fn may return anything)
            if self._loader.in_order:
                if self._next_task in self._ready:
                    data = self._ready.pop(self._next_task)
            elif self._ready:
                data = self._ready.pop(next(iter(self._ready)))
            if data is _MISSING:
                epoch, task, data = self._receive()
                if epoch == self._epoch:
                    if isinstance(data, _worker.Exhausted):
                        self._active[data.worker_id] = False
                    self._ready[task] = data
                continue
            self._next_task += 1
            self._send_task()
            if isinstance(data, _worker.ExceptionWrapper):
                data.reraise()
            if not isinstance(data, _worker.Exhausted):  # a worker's pass ended: no batch
                return data

    def _receive(self):
        """The next result from any worker; raises if one died or ``timeout`` passed."""
        timeout = self._loader.timeout
        start = time.monotonic()
        while True:
            wait = _WORKER_CHECK_INTERVAL
            if timeout > 0:
                wait = min(wait, max(0.0, start + timeout - time.monotonic()))
            try:
                return pickle.loads(self._result_queue.get(timeout=wait))
            except queue.Empty:
                pass
            dead = [w for w in self._workers if not w.is_alive()]
            if dead:
                self._shutdown(grace=0)
                pids = ", ".join(str(w.pid) for w in dead)
                how = ", ".join(_describe_exit(w.exitcode) for w in dead)
                raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly "
                                   f"({how})")
            if timeout > 0 and time.monotonic() - start >= timeout:
                self._shutdown(grace=0)
                raise RuntimeError(f"DataLoader timed out after {timeout} seconds")

    def _shutdown(self, grace=1.0):
        """Stop the workers: ask, wait up to ``grace`` seconds, terminate the ones still busy
        (a worker holds nothing that outlives it)."""
        if self._shut_down:
            return
        self._shut_down = True
        try:
            self._done.set()
            for index_queue in self._index_queues:
                try:
                    index_queue.put(None)
                except (ValueError, OSError):  # already closed, e.g. finalized by the garbage
                    pass                       # collector before us (see _worker.worker_loop)
            deadline = time.monotonic() + grace
            for process in self._workers:
                process.join(max(0.0, deadline - time.monotonic()))
            for process in self._workers:
                if process.is_alive():
                    process.terminate()
                    process.join()
            for q in (*self._index_queues, self._result_queue):
                q.close()
        except Exception:  # at the interpreter's exit parts of multiprocessing may be gone
            pass

    def __del__(self):
        self._shutdown()


def _describe_exit(code):
    if code is not None and code < 0:
        try:
            import signal
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"
