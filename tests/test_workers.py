"""tinyconv.data's DataLoader as torch.utils.data's: arguments, samplers, collate, workers.

Worker tests use small synthetic datasets; the datasets and callables they hand to workers are
module-level (picklable) unless a test is about lambdas. Each test that could hang without the
feature it checks (a dead worker, a timeout, a batch that cannot be pickled) passes a
``timeout`` or runs in a subprocess with one, so a regression fails instead of hanging CI.
"""

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinyconv
from tinyconv.data import (
    ArrayDataset,
    BatchSampler,
    Compose,
    DataLoader,
    Dataset,
    RandomHorizontalFlip,
    RandomRotation,
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
    default_collate,
    get_worker_info,
)
from tinyconv.tensor import Tensor

ROOT = Path(__file__).resolve().parents[1]


def augmented_dataset(n=96, size=10):
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.random((n, 1, size, size), dtype=np.float32), np.arange(n) % 10,
                        transform=Compose([RandomRotation(30), RandomHorizontalFlip()]))


def as_numpy(batches):
    return [[t.numpy().copy() for t in batch] for batch in batches]


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


# ---- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"shuffle": True, "sampler": [0, 1]}, "mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "shuffle": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "sampler": [0]}, "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, "disables auto-batching"),
    ({"num_workers": -1}, "num_workers option should be non-negative"),
    ({"timeout": -1}, "timeout option should be non-negative"),
    ({"prefetch_factor": 2}, "prefetch_factor option could only be specified"),
    ({"num_workers": 1, "prefetch_factor": -1}, "prefetch_factor option should be"),
    ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
    ({"multiprocessing_context": "fork"}, "multiprocessing_context can only be used"),
    ({"num_workers": 1, "multiprocessing_context": "nonsense"}, "valid start method"),
    ({"batch_size": 0}, "batch_size should be a positive integer value"),
    ({"batch_size": 2, "drop_last": "yes"}, "drop_last should be a boolean value"),
])
def test_bad_arguments_raise_torchs_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(augmented_dataset(4), **kwargs)


def test_bad_arguments_match_torch():
    torch_data = pytest.importorskip("torch.utils.data")
    data = list(range(4))
    for kwargs in ({"shuffle": True, "sampler": [0, 1]},
                   {"batch_sampler": [[0]], "batch_size": 2},
                   {"batch_size": None, "drop_last": True},
                   {"persistent_workers": True},
                   {"prefetch_factor": 2}):
        with pytest.raises(ValueError) as theirs:
            torch_data.DataLoader(data, **kwargs)
        with pytest.raises(ValueError) as ours:
            DataLoader(data, **kwargs)
        assert str(ours.value) == str(theirs.value)


def test_other_bad_arguments_and_frozen_attributes():
    with pytest.raises(TypeError, match="generator"):
        DataLoader(augmented_dataset(4), shuffle=True, generator="seed")
    with pytest.raises(TypeError, match="map-style"):
        DataLoader(iter(range(3)))
    loader = DataLoader(augmented_dataset(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 3
    loader.num_workers = 1  # not frozen in torch either
    with pytest.warns(UserWarning, match="pin_memory"):
        DataLoader(augmented_dataset(4), pin_memory=True)


def test_len_and_torch_signature():
    import inspect
    torch_data = pytest.importorskip("torch.utils.data")
    ours = inspect.signature(DataLoader)
    theirs = inspect.signature(torch_data.DataLoader)
    assert list(ours.parameters) == list(theirs.parameters)
    for name, parameter in theirs.parameters.items():
        if name != "generator":
            assert ours.parameters[name].default == parameter.default, name
            assert ours.parameters[name].kind == parameter.kind, name
    data = augmented_dataset(10)
    assert len(DataLoader(data, batch_size=3)) == 4
    assert len(DataLoader(data, batch_size=3, drop_last=True)) == 3
    assert len(DataLoader(data, batch_size=None)) == 10
    assert len(DataLoader(data, batch_sampler=[[0, 1], [2]])) == 2


# ---- samplers ---------------------------------------------------------------------------


def test_samplers():
    data = range(10)
    assert list(SequentialSampler(data)) == list(range(10))
    first = list(RandomSampler(data, generator=5))
    assert sorted(first) == list(range(10)) and all(isinstance(i, int) for i in first)
    sampler = RandomSampler(data, generator=5)
    assert list(sampler) == first and list(sampler) != first  # a fresh order each pass
    long = list(RandomSampler(data, num_samples=25, generator=0))
    assert len(long) == 25 and sorted(long[:10]) == sorted(long[10:20]) == list(range(10))
    assert len(set(long[20:])) == 5
    drawn = list(RandomSampler(data, replacement=True, num_samples=200, generator=0))
    assert len(drawn) == 200 and len(set(drawn)) == 10  # repeats: with replacement
    subset = list(SubsetRandomSampler([3, 7, 9], generator=1))
    assert sorted(subset) == [3, 7, 9]
    weighted = list(WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=0))
    counts = np.bincount(weighted, minlength=3)
    assert counts[0] == 0 and 60 < counts[1] < 140  # expected 100
    distinct = list(WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False, generator=0))
    assert sorted(distinct) == [0, 1, 2]
    assert list(BatchSampler(SequentialSampler(range(5)), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(SequentialSampler(range(5)), 2, True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3


@pytest.mark.parametrize("make, message", [
    (lambda: RandomSampler(range(3), replacement=1), "replacement should be a boolean"),
    (lambda: RandomSampler(range(3), num_samples=0), "num_samples should be a positive"),
    (lambda: WeightedRandomSampler([1.0], 0), "num_samples should be a positive"),
    (lambda: WeightedRandomSampler([[1.0]], 1), "weights should be a 1d sequence"),
    (lambda: WeightedRandomSampler([1.0, -1.0], 1), "non-negative"),
    (lambda: WeightedRandomSampler([1.0, 0.0], 2, replacement=False), "without replacement"),
])
def test_sampler_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_loader_with_samplers_and_any_iterable():
    data = ArrayDataset(np.arange(10)[:, None].astype(np.float32), np.arange(10))
    labels = [y.tolist() for _, y in DataLoader(data, batch_size=4, sampler=[9, 0, 5, 5, 1])]
    assert labels == [[9, 0, 5, 5], [1]]
    batches = [y.tolist() for _, y in DataLoader(data, batch_sampler=[[2, 3], [7]])]
    assert batches == [[2, 3], [7]]
    weighted = WeightedRandomSampler(np.eye(10)[4], 6, generator=0)
    assert [y.tolist() for _, y in DataLoader(data, batch_size=3, sampler=weighted)] == \
        [[4, 4, 4], [4, 4, 4]]


def test_shuffle_same_generator_same_epochs():
    data = augmented_dataset(30)
    first = as_numpy(DataLoader(data, batch_size=8, shuffle=True, generator=7))
    again = as_numpy(DataLoader(data, batch_size=8, shuffle=True, generator=7))
    assert_same_batches(first, again)
    seeded = as_numpy(DataLoader(data, batch_size=8, shuffle=True,
                                 generator=np.random.default_rng(7)))
    assert_same_batches(first, seeded)


# ---- collate ---------------------------------------------------------------------------


Point = collections.namedtuple("Point", "x y")


def to_numpy(value):
    """tinyconv Tensors and torch tensors alike -> NumPy, inside lists, dicts, namedtuples."""
    if isinstance(value, Tensor):
        return value.numpy()
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(to_numpy(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    return value


def assert_same_structure(ours, theirs):
    assert type(ours) is type(theirs), (ours, theirs)
    if isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
    elif isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert_same_structure(ours[key], theirs[key])
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_same_structure(a, b)
    else:
        assert ours == theirs


SAMPLES = {
    "tuple of array and int": [(np.full((2, 3), i, np.float32), i) for i in range(4)],
    "numbers": [1.5, 2.0, -1.0],
    "ints and bools": [(1, True), (2, False)],
    "numpy scalars": [np.int32(3), np.int32(4)],
    "dict": [{"image": np.ones(2), "label": i, "name": f"n{i}"} for i in range(3)],
    "namedtuple": [Point(np.zeros(2), 1.0), Point(np.ones(2), 2.0)],
    "list": [[np.arange(3), 1], [np.arange(3) + 1, 2]],
}


@pytest.mark.parametrize("name", SAMPLES)
def test_default_collate_matches_torch(name):
    torch_data = pytest.importorskip("torch.utils.data")
    import torch
    samples = SAMPLES[name]
    theirs = to_numpy(torch_data.default_collate(samples))
    ours = to_numpy(default_collate(samples))
    assert_same_structure(ours, theirs)
    # torch's and tinyconv's tensors as samples are stacked too
    as_torch = [(torch.from_numpy(np.full(3, i, np.float32)), i) for i in range(2)]
    as_ours = [(tinyconv.from_numpy(np.full(3, i, np.float32)), i) for i in range(2)]
    assert_same_structure(to_numpy(default_collate(as_ours)),
                          to_numpy(torch_data.default_collate(as_torch)))


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([object(), object()])


class PerItem(Dataset):
    """Items as torchvision's datasets give them: (image Tensor, int label)."""

    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return tinyconv.full((1, 2, 2), float(index)), index % 3


def test_fast_path_equals_default_collate_of_the_samples():
    data = augmented_dataset(20)
    fast = as_numpy(DataLoader(data, batch_size=6, shuffle=True, generator=1))

    # The same batches through a user collate_fn that gets the samples (the slow path).
    def collate(samples):
        assert isinstance(samples, list) and len(samples[0]) == 2
        return default_collate(samples)

    slow = as_numpy(DataLoader(data, batch_size=6, shuffle=True, generator=1,
                               collate_fn=collate))
    assert_same_batches(fast, slow)
    assert fast[0][0].shape == (6, 1, 10, 10) and fast[0][1].dtype == np.int64


def test_per_item_tensor_datasets_and_no_batching():
    images, labels = next(iter(DataLoader(PerItem(), batch_size=4)))
    assert isinstance(images, Tensor) and images.shape == (4, 1, 2, 2)
    assert labels.tolist() == [0, 1, 2, 0] and labels.dtype == tinyconv.int64
    # batch_size=None: no batching; samples go through default_convert
    data = ArrayDataset(np.arange(6, dtype=np.float32).reshape(3, 2), [0, 1, 2])
    samples = list(DataLoader(data, batch_size=None))
    assert len(samples) == 3 and isinstance(samples[1][0], Tensor)
    assert samples[1][0].tolist() == [2.0, 3.0] and samples[1][1] == 1


class TorchStyleGetitems(Dataset):
    """``__getitems__`` returning a list of samples, torch's convention."""

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return np.float32(index), index

    def __getitems__(self, indices):
        return [self[i] for i in indices]


def test_getitems_returning_a_list_is_read_as_samples():
    x, y = next(iter(DataLoader(TorchStyleGetitems(), batch_size=3)))
    assert x.tolist() == [0.0, 1.0, 2.0] and y.tolist() == [0, 1, 2]


# ---- workers ---------------------------------------------------------------------------


def test_workers_give_the_same_batches_as_the_main_process():
    data = augmented_dataset()
    kwargs = dict(batch_size=8, shuffle=True, generator=11)
    reference = DataLoader(data, **kwargs)
    epochs = [as_numpy(reference), as_numpy(reference)]
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])  # a new epoch, new draws
    for extra in ({"num_workers": 2}, {"num_workers": 3, "prefetch_factor": 1},
                  {"num_workers": 2, "persistent_workers": True}):
        loader = DataLoader(data, **kwargs, **extra, timeout=60)
        for expected in epochs:
            assert_same_batches(as_numpy(loader), expected)


def test_out_of_order_delivery_has_every_batch():
    data = augmented_dataset(40)
    expected = as_numpy(DataLoader(data, batch_size=5))
    got = as_numpy(DataLoader(data, batch_size=5, num_workers=2, in_order=False, timeout=60))
    key = lambda batch: batch[1].tolist()  # noqa: E731 - labels 0..39 % 10 with images
    assert sorted(map(key, got)) == sorted(map(key, expected))


def test_augmentation_differs_between_workers_and_batches():
    same = np.repeat(np.random.default_rng(0).random((1, 1, 10, 10), np.float32), 16, axis=0)
    data = ArrayDataset(same, np.zeros(16, np.int64), transform=RandomRotation(45))
    batches = as_numpy(DataLoader(data, batch_size=4, num_workers=2, timeout=60))
    images = [batch[0] for batch in batches]  # batches 0 and 2 on worker 0, 1 and 3 on 1
    # (one image of two batches may by chance get angles close enough to look the same)
    assert all(not np.array_equal(images[i], images[j]) for i in range(4) for j in range(i))


def test_unseeded_loader_follows_manual_seed():
    data = augmented_dataset(24)
    tinyconv.manual_seed(3)
    first = as_numpy(DataLoader(data, batch_size=8, shuffle=True, num_workers=2, timeout=60))
    tinyconv.manual_seed(3)
    again = as_numpy(DataLoader(data, batch_size=8, shuffle=True))
    assert_same_batches(first, again)


def test_augmentation_leaves_the_callers_random_state_alone():
    data = augmented_dataset(16)
    tinyconv.manual_seed(0)
    loader = DataLoader(data, batch_size=4, generator=0)
    expected = tinyconv.rand(3).tolist()
    tinyconv.manual_seed(0)
    for _ in loader:
        pass
    assert tinyconv.rand(3).tolist() == expected


class WhoFetched(Dataset):
    """Each sample says which worker fetched it, and what worker_init_fn left there."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        info = get_worker_info()
        return index, info.id, info.num_workers, os.environ.get("INIT_MARK", ""), os.getpid()


def mark_worker(worker_id):
    os.environ["INIT_MARK"] = f"init{worker_id}"


def test_worker_info_and_init_fn():
    assert get_worker_info() is None
    loader = DataLoader(WhoFetched(), batch_size=2, num_workers=3, worker_init_fn=mark_worker,
                        timeout=60)
    rows = []
    for index, worker, count, mark, pid in loader:
        rows += zip(index.tolist(), worker.tolist(), count.tolist(), mark, pid.tolist(),
                    strict=True)
    assert [r[0] for r in rows] == list(range(12))  # in order
    for index, worker, count, mark, pid in rows:
        assert worker == (index // 2) % 3 and count == 3 and mark == f"init{worker}"
        assert pid != os.getpid()
    assert "INIT_MARK" not in os.environ


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        if index == 5:
            raise KeyError(f"no sample {index}")
        return index


def test_worker_errors_carry_the_traceback():
    loader = DataLoader(Failing(), batch_size=2, num_workers=2, timeout=60)
    got = []
    with pytest.raises(KeyError) as error:
        for batch in loader:
            got.append(batch.tolist())
    assert got == [[0, 1], [2, 3]]  # the batches before the failing one, in order
    message = str(error.value)
    assert "in DataLoader worker process 0" in message and "no sample 5" in message
    assert "__getitem__" in message and "Traceback" in message


def failing_init(worker_id):
    raise ValueError(f"init of worker {worker_id} failed")


def test_worker_init_fn_errors():
    loader = DataLoader(Failing(), batch_size=2, num_workers=2, worker_init_fn=failing_init,
                        timeout=60)
    with pytest.raises(ValueError, match="worker_init_fn"):
        next(iter(loader))


class Suicidal(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        if index == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return index


def test_dead_worker_raises_instead_of_hanging():
    loader = DataLoader(Suicidal(), batch_size=2, num_workers=2, timeout=60)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"exited unexpectedly \(killed by SIGKILL\)"):
        list(loader)
    assert time.monotonic() - start < 30


class Slow(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        time.sleep(5 if index == 2 else 0)
        return index


def test_timeout():
    loader = DataLoader(Slow(), batch_size=2, num_workers=1, timeout=0.5)
    it = iter(loader)
    assert next(it).tolist() == [0, 1]
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.5 seconds"):
        next(it)
    assert time.monotonic() - start < 4


def unpicklable(samples):
    return lambda: samples


def test_a_batch_that_cannot_be_pickled_is_an_error():
    loader = DataLoader(augmented_dataset(8), batch_size=4, num_workers=1,
                        collate_fn=unpicklable, timeout=60)
    with pytest.raises(Exception, match="while sending a batch"):
        next(iter(loader))


def test_early_break_and_deletion_stop_the_workers():
    loader = DataLoader(augmented_dataset(64), batch_size=2, num_workers=2, timeout=60)
    it = iter(loader)
    next(it)
    workers = list(it._workers)
    assert all(w.is_alive() for w in workers)
    del it
    assert not any(w.is_alive() for w in workers)
    for _ in loader:  # a loop left by break: its iterator is dropped the same way
        break
    persistent = DataLoader(augmented_dataset(8), batch_size=2, num_workers=2,
                            persistent_workers=True, timeout=60)
    list(persistent)
    kept = list(persistent._iterator._workers)
    list(persistent)
    assert persistent._iterator._workers == kept and all(w.is_alive() for w in kept)
    del persistent
    import gc
    gc.collect()
    assert not any(w.is_alive() for w in kept)


def test_lambdas_work_with_fork():
    data = ArrayDataset(np.arange(8, dtype=np.float32)[:, None], np.arange(8),
                        transform=lambda x: x * 2)
    loader = DataLoader(data, batch_size=4, num_workers=2, multiprocessing_context="fork",
                        collate_fn=lambda samples: [s[1] for s in samples], timeout=60)
    assert list(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    nothing = DataLoader(data, batch_size=4, num_workers=2, collate_fn=lambda samples: None,
                         timeout=60)
    assert list(nothing) == [None, None]  # None is a batch like any other


def test_spawn_works_with_a_picklable_dataset():
    data = augmented_dataset(16)
    expected = as_numpy(DataLoader(data, batch_size=4, generator=0))
    got = as_numpy(DataLoader(data, batch_size=4, generator=0, num_workers=1,
                              multiprocessing_context="spawn", timeout=120))
    assert_same_batches(got, expected)


AFTER_TRAINING = """
import numpy as np, tinyconv
from tinyconv import _threads, models, nn, optim
from tinyconv.data import ArrayDataset, Compose, DataLoader, Normalize, RandomHorizontalFlip, \\
    RandomRotation

tinyconv.manual_seed(0)
model = models.FashionCNN()
optimizer = optim.Adam(model.parameters(), 1e-3)
rng = np.random.default_rng(0)
data = ArrayDataset(rng.random((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64),
                    transform=Compose([RandomRotation(10), RandomHorizontalFlip(),
                                       Normalize(0.5, 0.5)]))
for images, labels in DataLoader(data, batch_size=16, shuffle=True, generator=0):
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()

def epoch(**kwargs):
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=1, timeout=120, **kwargs)
    return [[t.numpy().copy() for t in batch] for batch in loader]

main, workers = epoch(), epoch(num_workers=2)
assert len(main) == len(workers) == 4
for a, b in zip(main, workers):
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and np.array_equal(x, y)
print("layer", _threads.LAYER, "same batches")
"""


def test_workers_after_training_steps_in_a_fresh_process():
    # A process whose numba kernels (on OpenMP, when tinyconv picks it) have run forks its
    # workers; they must neither be killed nor hang, and fetch the same batches.
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "TINYCONV_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", AFTER_TRAINING], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "same batches" in out.stdout


# ---- IterableDataset ---------------------------------------------------------------------


class Stream(tinyconv.data.IterableDataset):
    """0..n-1, split between workers as torch's documentation shows."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


def test_iterable_dataset():
    loader = DataLoader(Stream(10), batch_size=4)
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(loader) == 3
    assert [b.tolist() for b in DataLoader(Stream(10), batch_size=4, drop_last=True)] == \
        [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]
    # two workers, each its half, batches alternating between them; two epochs
    loader = DataLoader(Stream(11), batch_size=2, num_workers=2, timeout=60,
                        persistent_workers=True)
    for _ in range(2):
        assert [b.tolist() for b in loader] == [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9]]
    for kwargs, name in (({"shuffle": True}, "shuffle"), ({"sampler": [0]}, "sampler"),
                         ({"batch_sampler": [[0]]}, "batch_sampler")):
        with pytest.raises(ValueError, match=f"expected unspecified {name} option"):
            DataLoader(Stream(3), **kwargs)
