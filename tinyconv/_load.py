"""Threads that follow the load: tinyconv uses only the cores other processes leave free.

What: a training step runs parallel numba loops and OpenBLAS matrix products, each on all the
cores (2 threads on 2 cores). Every few tenths of a second (``INTERVAL_S``), at the start of a
backward pass or a convolution, tinyconv looks at the machine (``maybe_adapt``): how busy its
cores were since the last look (/proc/stat), how much of that was this process's own CPU time,
so what other processes used, and how often this process's threads were preempted (involuntary
context switches, ``getrusage``). When others keep a core busy *and* its threads are crowded,
it runs one thread fewer in its numba kernels; when the core is free again, it takes it back.
numpy's OpenBLAS keeps the count the user chose (``set_num_threads``): its matrix products add
up their inner dimension in blocks that depend on its thread count, so the same product on 1 or
2 threads can differ in the last bits (DeepFashionCNN's (288, 3528) @ (3528, 64) weight
gradient: float32 values apart by a few units in the last place), and a training run would then
depend on what else the machine did. tinyconv's numba kernels give the same bits on any number
of threads (tests/test_threads_adaptive.py checks a training step of each conv seed network),
so their threads may follow the load and the numbers not.
``TINYCONV_ADAPTIVE_THREADS=all`` lets OpenBLAS's threads follow the load too: faster on a
shared machine (two copies at once below), at the price of results that vary in their last bits
with the load.

Why: each parallel loop and each matrix product ends when its slowest thread is done. With a
core taken by someone else, one of tinyconv's threads waits for a core, and the whole step waits
for it, a time slice at a time. Measured on 2 cores, FashionCNN training (batch 64, Adam), each
copy's fraction of its speed alone (benchmarks/shared.py, 5 s per case; one run of each setting
in one window, TINYCONV_ADAPTIVE_THREADS=0 / unset / all):

                          threads fixed at 2   numba follows (default)   both follow   PyTorch
    beside a busy core    0.34                 0.57                      0.67          0.29-0.31
    two copies at once    0.28 / 0.30          0.28 / 0.27               0.61 / 0.62   0.21-0.27

(An earlier session, when both followed by default: fixed 0.50-0.69 and 0.25-0.47 over 4 runs,
both following 0.57-0.76 and 0.53-0.78 over 6.) Two copies at once lose most of their time in
OpenBLAS's products, whose 2 threads each then wait for a core: only ``all`` helps there.

One thread alone runs at about 0.61 of two here: about what a copy keeps on one core (the
fractions scatter with the speed alone, their denominator). Alone, training stays at 2 threads:
1,819-2,109 img/s following the load, 1,964-2,154 with the threads fixed (one process, 4 s).

Why both signals: /proc/stat shows the others' load averaged over the time since the last look,
also while this process waited. Two processes that take turns (benchmarks/throughput.py's
workers) each see the other's load though they hardly compete; their threads are seldom
preempted (about 50 preemptions per CPU second here, against 250-420 when crowded: see
``PREEMPTIONS_PER_CPU_S``). Seldom is not never: behind PyTorch, whose threads spin on after
its turn, tinyconv still dropped to one thread in 2 of 5 runs of throughput.py, which therefore
fixes the threads (benchmarks/_common.py, ``Worker``). A window in which this process mostly
waited never counts as crowded (its first look, at start-up, had 720 preemptions per CPU
second).

The rule is ``decide``: up when the free cores exceed the threads by more than ``MARGIN``
(0.65 core), down when crowded by others; free cores near the thread count change nothing
(hysteresis). At a reduced count it tries one thread more now and then (``_Probe``: after 2 s,
then 4, 8, 16 s while each try ends crowded): only a try shows whether another load still
overlaps its own.

Never above what the user chose: ``tinyconv.set_num_threads(n)`` (torch's) sets the threads of
OpenBLAS and the most numba may use; so does ``numba.set_num_threads`` or threadpoolctl
(a count found changed since tinyconv last set it is taken as the user's; set back to the very
count tinyconv had chosen, it cannot be told apart). Off with ``TINYCONV_ADAPTIVE_THREADS=0``
(read at import; ``ENABLED`` at run time), and wherever /proc/stat cannot be read (not Linux).
OpenBLAS is found among the loaded libraries by its ``openblas_set_num_threads`` symbol (numpy's
scipy-openblas prefixes and suffixes it), for ``set_num_threads``. numba's count is per calling
thread: the thread that trains adapts its own.
"""

from __future__ import annotations

import ctypes
import os
import time

try:
    import resource
except ImportError:  # not a Unix: no getrusage, no /proc/stat either
    resource = None

import numba

from tinyconv._utils import env_choice

INTERVAL_S = 0.3  # the least time between two looks at the load
MARGIN = 0.65  # cores: how far the free cores must be from the threads in use to change them
PREEMPTIONS_PER_CPU_S = 150  # above: this process's threads wait for cores (see is_crowded)
PROBE_S = 2.0  # seconds at a reduced count before trying one thread more (see _Probe)
_SETTING = env_choice("TINYCONV_ADAPTIVE_THREADS", ("0", "1", "all"))
ENABLED = _SETTING != "0" and resource is not None


# ---- the decision (pure functions) -----------------------------------------------------------


def read_stat(text):
    """(busy seconds, idle seconds, number of cores) from the text of /proc/stat, all cores
    together. Busy: user, nice, system, irq, softirq and steal (a core the hypervisor gave to
    another machine is not free either); idle: idle and iowait. Guest time is inside user."""
    lines = text.splitlines()
    fields = [int(v) for v in lines[0].split()[1:]]
    fields += [0] * (8 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    cores = sum(1 for line in lines[1:] if line.startswith("cpu"))
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (user + nice + system + irq + softirq + steal) / tick, (idle + iowait) / tick, cores


def others_busy(before, after, own_cpu_s, wall_s):
    """Cores that other processes kept busy between two readings of /proc/stat (``read_stat``)
    taken ``wall_s`` apart, during which this process used ``own_cpu_s`` of CPU time."""
    if wall_s <= 0:
        return 0.0
    return max(0.0, (after[0] - before[0] - own_cpu_s) / wall_s)


def is_crowded(preempted, own_cpu_s, limit=None):
    """Whether this process's threads lacked cores: more than ``limit`` (default
    ``PREEMPTIONS_PER_CPU_S``) involuntary context switches per second of CPU it used."""
    limit = PREEMPTIONS_PER_CPU_S if limit is None else limit
    return own_cpu_s > 0 and preempted / own_cpu_s > limit


def decide(current, others, cores, ceiling, crowded=False, probe=False, margin=MARGIN):
    """The thread count to use now. ``current``: the threads in use; ``others``: the cores other
    processes kept busy (``others_busy``) of ``cores``; at most ``ceiling`` threads; ``crowded``:
    this process's threads lacked cores (``is_crowded``); ``probe``: time to try one more.

    Up to the free cores (rounded) when they exceed the threads by more than ``margin``; down
    by at least one when crowded by others (they keep more than half a core busy: our own
    threads alone are not a reason); one up on a probe; never below 1 nor above ``ceiling``.
    Free cores near the thread count change nothing (hysteresis).
    """
    free = cores - others
    target = current
    if free > current + margin:
        target = int(free + 0.5)
    elif crowded and others > 0.5:
        target = min(current - 1, int(free + 0.5))
    elif probe:
        target = current + 1
    return max(1, min(ceiling, target))


# ---- the two thread pools ----------------------------------------------------------------------


class Pool:
    """A thread pool whose size tinyconv adapts: get/set functions, the most threads it may
    have (``ceiling``: the user's choice) and the count tinyconv last gave it (``ours``)."""

    def __init__(self, name, get, set_):
        self.name, self.get, self.set = name, get, set_
        self.ceiling = self.ours = None

    def adapt(self, others, cores, crowded=False, probe=False):
        """Give the pool the threads ``decide`` picks; returns them. A size found changed since
        tinyconv last set it (or seen for the first time) is the user's choice: the ceiling
        from then on."""
        seen = self.get()
        if seen != self.ours:
            self.ceiling = seen
        n = decide(seen, others, cores, self.ceiling, crowded, probe)
        if n != seen:
            self.set(n)
        self.ours = n
        return n


def _openblas_path():
    """The file of the OpenBLAS that numpy loaded (None if none is loaded)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    paths = sorted(p for p in paths if ".so" in p)
    numpys = [p for p in paths if "numpy" in p]  # scipy may have loaded one of its own
    return (numpys or paths or [None])[0]


def _openblas_functions(path):
    """(get, set) of OpenBLAS's thread count in the library at ``path``, or None. numpy 2's
    scipy-openblas names them ``scipy_openblas_set_num_threads64_``; a plain OpenBLAS
    ``openblas_set_num_threads``."""
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            try:
                get = getattr(library, f"{prefix}openblas_get_num_threads{suffix}")
                set_ = getattr(library, f"{prefix}openblas_set_num_threads{suffix}")
            except AttributeError:
                continue
            get.restype, get.argtypes = ctypes.c_int, []
            set_.restype, set_.argtypes = None, [ctypes.c_int]
            return get, set_
    return None


def _pools():
    """The thread pools of this process that set_num_threads sets: numba's (unless kernels run
    serially after a fork, see tinyconv/_threads.py) and OpenBLAS's if found. Made on first use,
    once per process. All but those in ``NOT_ADAPTED`` follow the load."""
    global _POOLS
    if _POOLS is None:
        from tinyconv import _threads

        _POOLS = []
        if not _threads.SERIAL_AFTER_FORK:
            _POOLS.append(Pool("numba", numba.get_num_threads, numba.set_num_threads))
        path = _openblas_path()
        functions = _openblas_functions(path) if path else None
        if functions:
            _POOLS.append(Pool("openblas", *functions))
    return _POOLS


_POOLS = None
# OpenBLAS's results depend on its thread count (see the module docstring): it follows the load
# only when asked to, with TINYCONV_ADAPTIVE_THREADS=all
NOT_ADAPTED = () if _SETTING == "all" else ("openblas",)


# ---- torch's API -------------------------------------------------------------------------------

_requested = None  # the count given to set_num_threads


def set_num_threads(threads):
    """Use at most ``threads`` threads in tinyconv's parallel kernels and matrix products (torch:
    the intra-op threads). numba's pool cannot grow past its size at start (``NUMBA_NUM_THREADS``,
    the cores by default): a larger count gives it all of them. Below ``threads``, tinyconv still
    follows the load (see this module's docstring)."""
    global _requested
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"set_num_threads(): threads must be an int, got "
                        f"{type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"set_num_threads(): threads must be at least 1, got {threads}")
    for pool in _pools():
        n = min(threads, numba.config.NUMBA_NUM_THREADS) if pool.name == "numba" else threads
        pool.set(n)
        pool.ceiling = pool.ours = pool.get()
    _requested = threads


def get_num_threads():
    """The most threads tinyconv's kernels may use: what ``set_num_threads`` set, else numba's
    (the cores by default). Fewer run while other processes keep cores busy."""
    if _requested is not None:
        return _requested
    for pool in _pools():
        if pool.name == "numba" and pool.ceiling is not None:
            return pool.ceiling
    return numba.get_num_threads()


# ---- the hook -----------------------------------------------------------------------------------

_next_check = 0.0  # time.monotonic() of the next look
_last = None  # (monotonic, CPU seconds, preemptions, read_stat) at the last look
last_look = None  # what the last look found: {"others": cores, "crowded": bool}


def maybe_adapt():
    """Adapt the thread counts if ``INTERVAL_S`` has passed since the last look (cheap
    otherwise: one clock read). Called at the start of a backward pass and of a convolution."""
    global _next_check, _last, last_look
    now = time.monotonic()
    if now < _next_check or not ENABLED:
        return
    _next_check = now + INTERVAL_S
    try:
        stat = read_stat(_proc_stat())
    except (OSError, ValueError, IndexError):
        _disable()
        return
    sample = (now, *_own_usage(), stat)
    before, _last = _last, sample
    if before is None:
        return
    wall_s, own_cpu_s, preempted = now - before[0], sample[1] - before[1], sample[2] - before[2]
    others = others_busy(before[3], stat, own_cpu_s, wall_s)
    # a process that mostly waited was not crowded out of its cores, whatever the others did
    crowded = own_cpu_s >= 0.5 * wall_s and is_crowded(preempted, own_cpu_s)
    last_look = {"others": others, "crowded": crowded}
    _probe.step(now, [pool.adapt(others, stat[2], crowded, _probe.due(now))
                      for pool in _pools() if pool.name not in NOT_ADAPTED])


class _Probe:
    """When tinyconv runs fewer threads than it may, it tries one more now and then: the load
    it reads includes other processes' work while it waited, and only a try shows whether
    their load and its threads overlap. A try that ends crowded doubles the wait for the next
    (``PROBE_S`` up to 8 times that); one that holds, or a count taken from free cores, resets it.
    """

    def __init__(self):
        self.counts, self.since, self.wait, self.trying = None, 0.0, PROBE_S, False

    def due(self, now):
        return now - self.since >= self.wait

    def step(self, now, counts):
        if counts == self.counts:
            if self.trying:  # the try held
                self.trying, self.wait = False, PROBE_S
            return
        went_up = self.counts is not None and sum(counts) > sum(self.counts)
        if self.trying and not went_up:  # the try ended crowded: wait longer for the next
            self.wait = min(self.wait * 2, 8 * PROBE_S)
        elif went_up and not self.due(now):  # up to cores found free: not a try
            self.wait = PROBE_S
        self.trying = went_up and self.due(now)
        self.counts, self.since = counts, now


_probe = _Probe()


def _own_usage():
    """(CPU seconds, involuntary context switches) of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_nivcsw


def _proc_stat():
    with open("/proc/stat") as f:
        return f.read()


def _disable():
    global ENABLED
    ENABLED = False


def _after_fork_in_child():
    """A forked child starts afresh: its own pools (numba's may be serial now), no reading."""
    global _POOLS, _last, _next_check, _probe
    _POOLS, _last, _next_check, _probe = None, None, 0.0, _Probe()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
