"""tinyconv/_load.py: thread counts that follow the machine's load, and set/get_num_threads.

The decision is tested on made-up /proc/stat readings (pure functions, no timing); the pools on
fakes and on numba's and OpenBLAS's real ones; the switch-off in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numba
import numpy as np
import pytest

import tinyconv
from tinyconv import _load

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def stat_text(user, system, idle, steal=0, cores=2):
    """/proc/stat as Linux writes it, with all-cores totals in clock ticks."""
    head = f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0"
    per_core = [f"cpu{i} 1 0 1 1 0 0 0 0 0 0" for i in range(cores)]
    return "\n".join([head, *per_core, "intr 12345 0 0", "ctxt 999", "btime 1"]) + "\n"


# ---- pure functions -----------------------------------------------------------------------------


def test_read_stat_sums_busy_fields_and_counts_cores():
    busy, idle, cores = _load.read_stat(stat_text(300, 100, 500, steal=20, cores=4))
    assert busy == pytest.approx(420 / TICK) and idle == pytest.approx(500 / TICK)
    assert cores == 4


def test_read_stat_of_an_old_kernel_without_steal():
    busy, idle, cores = _load.read_stat("cpu  10 0 10 50 5\ncpu0 1 0 1 1 1\n")
    assert busy == pytest.approx(20 / TICK) and idle == pytest.approx(55 / TICK) and cores == 1


def test_others_busy_subtracts_this_process():
    before = _load.read_stat(stat_text(0, 0, 0))
    # 1 s on 2 cores: 1.5 cores busy, of which this process used 0.5 s of CPU
    after = _load.read_stat(stat_text(int(1.2 * TICK), int(0.3 * TICK), int(0.5 * TICK)))
    assert _load.others_busy(before, after, own_cpu_s=0.5, wall_s=1.0) == pytest.approx(1.0)
    # never negative (clock ticks and process_time do not line up exactly)
    assert _load.others_busy(before, after, own_cpu_s=2.0, wall_s=1.0) == 0.0
    assert _load.others_busy(before, after, own_cpu_s=0.0, wall_s=0.0) == 0.0


def test_is_crowded():
    assert _load.is_crowded(preempted=400, own_cpu_s=1.0)
    assert not _load.is_crowded(preempted=60, own_cpu_s=1.0)
    assert not _load.is_crowded(preempted=0, own_cpu_s=0.0)


@pytest.mark.parametrize("current, others, cores, ceiling, crowded, probe, expected", [
    (2, 0.0, 2, 2, False, False, 2),  # idle machine: all threads
    (2, 0.7, 2, 2, True, False, 1),   # a core taken, our threads crowded: one fewer
    (2, 0.7, 2, 2, False, False, 2),  # others busy, but not while we ran: no change
    (2, 0.3, 2, 2, True, False, 2),   # crowded by our own threads, not by others: no change
    (1, 0.4, 2, 2, False, False, 1),  # free cores within the margin: no change (hysteresis)
    (1, 0.3, 2, 2, False, False, 2),  # the core is back
    (1, 1.0, 2, 2, False, True, 2),   # a probe: one more
    (2, 0.0, 2, 2, False, True, 2),   # ... never above the ceiling
    (1, 2.0, 2, 2, True, False, 1),   # never below one thread
    (1, 0.0, 8, 4, False, False, 4),  # never above the ceiling
    (2, 0.0, 2, 1, False, False, 1),  # a ceiling below the current count wins at once
    (8, 4.8, 8, 8, True, False, 3),   # more cores: down to the free cores, rounded
    (3, 2.1, 8, 8, False, False, 6),  # up to the free cores, rounded
])
def test_decide(current, others, cores, ceiling, crowded, probe, expected):
    assert _load.decide(current, others, cores, ceiling, crowded, probe) == expected


def test_decide_does_not_flip_flop_around_the_middle():
    n, history = 2, []
    for others in [0.5, 0.55, 0.45, 0.6, 0.4, 0.5] * 3:
        n = _load.decide(n, others, 2, 2, crowded=False)
        history.append(n)
    n = 1
    for others in [0.5, 0.55, 0.45, 0.6, 0.4, 0.5] * 3:
        n = _load.decide(n, others, 2, 2, crowded=False)
        history.append(n)
    assert history == [2] * 18 + [1] * 18


# ---- pools and the hook -----------------------------------------------------------------------


class FakePool(_load.Pool):
    def __init__(self, size):
        self.size = size
        self.calls = []
        super().__init__("fake", lambda: self.size, self._set)

    def _set(self, n):
        self.calls.append(n)
        self.size = n


def test_pool_follows_the_load_and_keeps_to_the_users_choice():
    pool = FakePool(2)
    pool.adapt(others=1.0, cores=2, crowded=True)
    assert pool.size == 1 and pool.ceiling == 2
    pool.adapt(others=0.0, cores=2)
    assert pool.size == 2
    pool.size = 1  # the user (numba.set_num_threads, threadpoolctl) chose 1
    pool.adapt(others=0.0, cores=2, probe=True)
    assert pool.size == 1 and pool.ceiling == 1
    pool.adapt(others=0.0, cores=2)
    assert pool.calls == [1, 2]  # nothing set when nothing changes


class Machine:
    """A fake clock, /proc/stat and getrusage on 2 cores: ``run(seconds, load)`` advances time
    by ``seconds`` with ``load(threads) -> (own cores, others' cores, preemptions per CPU
    second)`` for the pool's thread count at that moment."""

    def __init__(self, pool):
        self.pool, self.now, self.cpu, self.preempted, self.busy, self.idle = pool, 100, 0, 0, 0, 0

    def run(self, seconds, load):
        own, others, preemptions = load(self.pool.size)
        self.now += seconds
        self.cpu += own * seconds
        self.preempted += round(preemptions * own * seconds)
        self.busy += round((own + others) * seconds * TICK)
        self.idle += round((2 - own - others) * seconds * TICK)

    def install(self, monkeypatch):
        monkeypatch.setattr(_load, "time", types.SimpleNamespace(monotonic=lambda: self.now))
        monkeypatch.setattr(_load, "_own_usage", lambda: (self.cpu, self.preempted))
        monkeypatch.setattr(_load, "_proc_stat", lambda: stat_text(self.busy, 0, self.idle))
        monkeypatch.setattr(_load, "_pools", lambda: [self.pool])
        monkeypatch.setattr(_load, "ENABLED", True)
        monkeypatch.setattr(_load, "_next_check", 0.0)
        monkeypatch.setattr(_load, "_last", None)
        monkeypatch.setattr(_load, "_probe", _load._Probe())

    def sizes(self, loads, seconds=0.5):
        """The pool's size after each look, one look per ``seconds``, one load each."""
        got = []
        for load in loads:
            self.run(seconds, load)
            _load.maybe_adapt()
            got.append(self.pool.size)
        return got


def alone(threads):
    return 0.9 * threads, 0.0, 50


def beside_a_busy_core(threads):
    # at 2 threads the spinner gets less than its core, and our threads are preempted often
    return (1.3, 0.65, 300) if threads == 2 else (1.0, 1.0, 60)


def beside_a_copy_of_itself(threads):  # the other copy at 1 thread
    return (1.0, 1.0, 400) if threads == 2 else (1.0, 1.0, 60)


def beside_a_process_it_takes_turns_with(threads):
    # the other process works while this one waits (benchmarks/throughput.py's workers): its
    # load shows in /proc/stat, but this process's threads are not crowded by it
    return (0.9, 0.9, 60) if threads == 2 else (0.55, 0.9, 20)


def test_a_busy_core_comes_and_goes(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    loads = [alone] * 2 + [beside_a_busy_core] * 3 + [alone] * 2
    assert machine.sizes(loads) == [2, 2, 1, 1, 1, 2, 2]


def test_two_copies_settle_on_one_thread_each(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    assert machine.sizes([beside_a_copy_of_itself] * 4) == [2, 1, 1, 1]


def test_tries_to_take_a_thread_back_less_and_less_often(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    sizes = machine.sizes([beside_a_busy_core] * 120)  # 60 s
    assert sizes[:3] == [2, 1, 1]
    tries = [i for i in range(1, len(sizes)) if sizes[i] > sizes[i - 1]]
    assert 3 <= len(tries) <= 5  # after 2, 4, 8, 16, 16 s at one thread
    assert all(sizes[i + 1] == 1 for i in tries)  # each try ends at the next look
    assert sizes.count(2) <= 1 + len(tries)


def test_a_process_that_takes_turns_does_not_keep_it_down(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    # a crowded moment sends it down; a try shows the other load does not overlap its own
    sizes = machine.sizes([alone, beside_a_busy_core] + [beside_a_process_it_takes_turns_with] * 12)
    assert sizes[:3] == [2, 1, 1] and sizes[-6:] == [2] * 6


def mostly_waiting(threads):
    # this process used 0.2 core; the others were busy, and its few threads were preempted
    return 0.2, 1.6, 900


def test_a_window_in_which_it_mostly_waited_takes_no_thread_away(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    assert machine.sizes([alone] + [mostly_waiting] * 3) == [2] * 4


def test_a_try_goes_ahead_while_it_mostly_waits(monkeypatch):
    # e.g. evaluation in benchmarks/throughput.py: short calls, the other process working between
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    sizes = machine.sizes([alone, beside_a_busy_core] + [mostly_waiting] * 6)
    assert sizes[:3] == [2, 1, 1] and sizes[-2:] == [2, 2]


def test_maybe_adapt_looks_at_most_every_interval(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    assert machine.sizes([alone, beside_a_busy_core], seconds=_load.INTERVAL_S / 3) == [2, 2]
    assert machine.pool.calls == []


def test_switched_off_it_touches_nothing(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)
    monkeypatch.setattr(_load, "ENABLED", False)
    assert machine.sizes([beside_a_busy_core] * 4) == [2] * 4
    assert machine.pool.calls == []


def test_unreadable_proc_stat_switches_it_off(monkeypatch):
    machine = Machine(FakePool(2))
    machine.install(monkeypatch)

    def missing():
        raise OSError("no /proc here")
    monkeypatch.setattr(_load, "_proc_stat", missing)
    machine.sizes([beside_a_busy_core] * 2)
    assert _load.ENABLED is False and machine.pool.calls == []


def test_openblas_keeps_the_users_count_unless_asked(monkeypatch):
    # OpenBLAS's products sum in an order that depends on its threads: following the load there
    # would make a training run depend on what else the machine did (see _load's docstring)
    numba_pool, blas_pool = FakePool(2), FakePool(2)
    numba_pool.name, blas_pool.name = "numba", "openblas"
    machine = Machine(numba_pool)
    machine.install(monkeypatch)
    monkeypatch.setattr(_load, "_pools", lambda: [numba_pool, blas_pool])
    assert machine.sizes([alone] + [beside_a_busy_core] * 3) == [2, 1, 1, 1]
    assert blas_pool.calls == [] and blas_pool.size == 2
    monkeypatch.setattr(_load, "NOT_ADAPTED", ())  # TINYCONV_ADAPTIVE_THREADS=all
    numba_pool.size = 2
    assert machine.sizes([beside_a_busy_core] * 2) == [1, 1]
    assert blas_pool.calls == [1] and blas_pool.size == 1


def test_the_environment_variable_switches_it_off():
    code = ("import json, tinyconv; from tinyconv import _load\n"
            "print(json.dumps(_load.ENABLED))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code += "print(json.dumps(_load.NOT_ADAPTED))\n"
    for value, enabled, not_adapted in (("0", False, ["openblas"]), ("1", True, ["openblas"]),
                                        ("all", True, [])):
        env["TINYCONV_ADAPTIVE_THREADS"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-2]) is enabled
        assert json.loads(out.stdout.strip().splitlines()[-1]) == not_adapted


def test_a_forked_child_starts_afresh(monkeypatch):
    monkeypatch.setattr(_load, "_POOLS", ["parent's"])
    monkeypatch.setattr(_load, "_last", (1.0, 2.0, (3, 4, 2)))
    _load._after_fork_in_child()
    assert _load._POOLS is None and _load._last is None and _load._next_check == 0.0


# ---- the real pools and torch's API --------------------------------------------------------


def openblas():
    path = _load._openblas_path()
    return _load._openblas_functions(path) if path else None


@pytest.fixture
def restore_threads():
    numba_before = numba.get_num_threads()
    blas = openblas()
    blas_before = blas[0]() if blas else None
    requested = _load._requested
    yield
    numba.set_num_threads(numba_before)
    if blas:
        blas[1](blas_before)
    _load._requested = requested
    for pool in _load._pools():
        pool.ceiling = pool.ours = None


def test_numpys_openblas_is_found():
    import numpy as np

    if "openblas" not in str(np.show_config(mode="dicts")).lower():
        pytest.skip("numpy is not built with OpenBLAS here")
    get, set_ = openblas()
    assert get() >= 1
    assert [p.name for p in _load._pools()][-1] == "openblas"


def test_set_num_threads_sets_numba_and_openblas(restore_threads):
    tinyconv.set_num_threads(1)
    assert tinyconv.get_num_threads() == 1
    assert numba.get_num_threads() == 1
    if openblas():
        assert openblas()[0]() == 1
        threadpoolctl = pytest.importorskip("threadpoolctl")
        infos = [i for i in threadpoolctl.threadpool_info()
                 if i["internal_api"] == "openblas" and "numpy" in i["filepath"]]
        assert [i["num_threads"] for i in infos] == [1]  # the same library threadpoolctl sees


def test_adapting_never_exceeds_set_num_threads(restore_threads):
    tinyconv.set_num_threads(1)
    for pool in _load._pools():
        pool.adapt(others=0.0, cores=numba.config.NUMBA_NUM_THREADS, probe=True)  # idle
        assert pool.get() == 1


def test_set_num_threads_above_numbas_pool(restore_threads):
    size = numba.config.NUMBA_NUM_THREADS
    tinyconv.set_num_threads(size + 3)
    assert tinyconv.get_num_threads() == size + 3  # as torch: what was asked
    assert numba.get_num_threads() == size  # numba's pool cannot grow


def test_get_num_threads_without_set_is_numbas():
    if _load._requested is None:
        assert tinyconv.get_num_threads() >= numba.get_num_threads()


@pytest.mark.parametrize("bad, error, message", [
    (0, ValueError, "threads must be at least 1, got 0"),
    (-2, ValueError, "threads must be at least 1, got -2"),
    (1.5, TypeError, "threads must be an int, got float"),
    (True, TypeError, "threads must be an int, got bool"),
    ("2", TypeError, "threads must be an int, got str"),
])
def test_set_num_threads_errors(bad, error, message, restore_threads):
    with pytest.raises(error, match="set_num_threads\\(\\): " + message):
        tinyconv.set_num_threads(bad)


def test_torch_has_the_same_api():
    torch = pytest.importorskip("torch")
    for name in ("set_num_threads", "get_num_threads"):
        assert callable(getattr(torch, name)) and callable(getattr(tinyconv, name))


# ---- what may follow the load: numba's threads change no number ------------------------------


def training_step(name):
    """Loss, output, every gradient and BatchNorm buffer of one training step of a seed
    network at batch 64 (where most kernels run their parallel versions), fused where
    nn.Sequential fuses, then an evaluation forward."""
    from tinyconv.models import SEED_NETWORKS

    constructor, shape = SEED_NETWORKS[name]
    tinyconv.manual_seed(0)
    model = constructor()
    rng = np.random.default_rng(0)
    x = tinyconv.from_numpy(rng.standard_normal((64,) + shape).astype(np.float32))
    y = tinyconv.from_numpy(rng.integers(0, 10, 64))
    out = model(x)
    loss = tinyconv.nn.functional.cross_entropy(out, y)
    loss.backward()
    model.eval()
    with tinyconv.no_grad():
        evaluated = model(x)
    arrays = {"loss": loss.detach().numpy(), "out": out.detach().numpy(),
              "eval": evaluated.numpy()}
    arrays.update({k: p.grad.numpy() for k, p in model.named_parameters()})
    arrays.update({k: b.numpy() for k, b in model.named_buffers()})
    return arrays


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("name", ["fashioncnn", "deepfashioncnn", "convmodule", "cnn"])
def test_numbas_thread_count_changes_no_bit_of_a_training_step(name, restore_threads):
    # the load follower changes numba's threads in the middle of a run: every kernel must give
    # the same bits on any number of them (no sum may depend on how threads share the work)
    numba.set_num_threads(1)
    with_1 = training_step(name)
    numba.set_num_threads(2)
    with_2 = training_step(name)
    assert with_1.keys() == with_2.keys()
    for key in with_1:
        np.testing.assert_array_equal(with_1[key], with_2[key], err_msg=key)
