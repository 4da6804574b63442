"""Which threads run tinyconv's parallel numba kernels (chosen once, when tinyconv is imported).

numba can run a ``prange`` loop on its OpenMP layer (GNU libgomp) or on its own "workqueue"
threads. Measured on 2 cores, a FashionCNN training step (batch 64):

    OpenMP, threads spinning after each loop (libgomp's default)    44-51 ms
    workqueue (threads sleep; the calling thread only waits)        28-31 ms
    OpenMP, threads sleeping after each loop (OMP_WAIT_POLICY=passive)  26-28 ms

Spinning threads take the cores from OpenBLAS's threads in the matrix product that follows.
Sleeping OpenMP threads are the fastest: the calling thread does its share of each loop, and
waking one thread costs about half of what the workqueue's hand-over does (an empty parallel
loop: 53 against 95 microseconds here).

libgomp reads its wait policy once, when it is loaded, and a process has one libgomp, which
PyTorch uses too. So tinyconv takes the OpenMP layer only when it can load libgomp itself, with
``OMP_WAIT_POLICY=passive`` set for that moment (the variable is put back afterwards): on Linux,
when no libgomp is loaded yet (that is, PyTorch was not imported first), and when neither
``NUMBA_THREADING_LAYER`` nor ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` is set by the user.
Otherwise it takes the workqueue layer (unless ``NUMBA_THREADING_LAYER`` says otherwise).

Side effects, for the whole process: a PyTorch imported after tinyconv shares that libgomp and
its threads then sleep too (its CPU ops ran 5-10% slower so); and GNU OpenMP does not survive
``fork``: a child process forked after tinyconv has run a kernel is killed when it runs one
itself ("Terminating: fork() called from a process already using GNU OpenMP, this is unsafe.",
numba's message). tinyconv therefore marks such a child (``os.register_at_fork``, see
``_after_fork_in_child``) and runs its kernels there on the calling thread alone, compiled a
second time without ``parallel`` (once per machine: the serial twins are cached on disk). So
``multiprocessing`` with "fork" works, only without threads in the child; the "spawn" start
method, or ``TINYCONV_THREADS=workqueue`` (which keeps tinyconv off OpenMP altogether), keep the
threads.
"""

from __future__ import annotations

import os
import sys
import types

import numba


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as maps:
            return "libgomp" in maps.read()
    except OSError:
        return True  # cannot tell: do not risk a spinning OpenMP


def _choose() -> str:
    env = os.environ
    if "NUMBA_THREADING_LAYER" in env:
        return env["NUMBA_THREADING_LAYER"]
    if (env.get("TINYCONV_THREADS", "") == "workqueue" or not sys.platform.startswith("linux")
            or "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env or _libgomp_loaded()):
        numba.config.THREADING_LAYER = "workqueue"
        return "workqueue"
    env["OMP_WAIT_POLICY"] = "passive"  # libgomp reads it when it loads, with omppool:
    try:
        from numba.np.ufunc import omppool  # noqa: F401 - numba's OpenMP layer, if it has one
        layer = "omp"
    except ImportError:
        layer = "workqueue"
    finally:
        del env["OMP_WAIT_POLICY"]
    numba.config.THREADING_LAYER = layer
    return layer


LAYER = _choose()
#: for reports: the layer, and whether tinyconv set OpenMP's threads to sleep
DESCRIPTION = (f"{LAYER} layer, threads sleep between loops"
               if LAYER == "omp" and "NUMBA_THREADING_LAYER" not in os.environ
               else f"{LAYER} layer")


# ---- fork -------------------------------------------------------------------------------------
#
# After a fork only the forking thread exists in the child, but libgomp still believes its thread
# pool is there: numba's OpenMP layer refuses to start a parallel loop in such a child and kills
# it with SIGTERM (a multiprocessing.Pool then waits forever for the lost task). A parallel loop
# compiled without ``parallel=True`` never enters OpenMP: ``prange`` is then a plain ``range``.
# So in the child every parallel kernel of tinyconv is swapped for such a serial twin. The
# kernels are module-level dispatchers named ``_..._loops``, looked up by the Python functions
# that call them at call time, and no compiled (nopython) code calls them, so replacing the
# module attribute is enough.

#: True in a process forked from one whose OpenMP threads had started: kernels run serially here
SERIAL_AFTER_FORK = False
_serial_twins = {}  # id(parallel dispatcher) -> its serial twin, made once per process


def _openmp_started() -> bool:
    from numba.np.ufunc import parallel
    return bool(parallel._is_initialized) and parallel._threading_layer == "omp"


def serial_twin(dispatcher):
    """``dispatcher``'s function compiled without ``parallel=True``, under another name.

    NOTE: numba names a function's cache files after its qualified name, so the twin gets its
    own name ("..._serial_after_fork"); under the same name the two would overwrite each
    other's cache files (see ``tinyconv.kernels.optim._renamed``).
    """
    twin = _serial_twins.get(id(dispatcher))
    if twin is None:
        from numba.core.caching import NullCache

        fn = dispatcher.py_func
        name = fn.__name__ + "_serial_after_fork"
        copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__,
                                  fn.__closure__)
        copy.__qualname__ = fn.__qualname__ + "_serial_after_fork"
        copy.__module__ = fn.__module__
        options = {k: v for k, v in dispatcher.targetoptions.items()
                   if k not in ("parallel", "nopython")}  # njit implies nopython
        twin = numba.njit(**options)(copy)
        if not isinstance(dispatcher._cache, NullCache):  # the kernel has cache=True
            twin.enable_caching()
        _serial_twins[id(dispatcher)] = twin
    return twin


def split_if(dispatcher, size, parallel_min):
    """``dispatcher`` when ``size`` (the elements its loop reads or writes) is at least
    ``parallel_min``, else its serial twin (the same loops on the calling thread alone).

    Starting a parallel loop costs more than a small loop: sleeping OpenMP threads take about
    55 microseconds to wake and finish an empty ``prange`` on 2 cores (measured), in which time
    one core copies some 500,000 floats. Each kernel module states its ``parallel_min``, measured
    where the two versions cross. A kernel already serial (a child after fork) stays as it is.
    """
    if size >= parallel_min or not dispatcher.targetoptions.get("parallel"):
        return dispatcher
    return serial_twin(dispatcher)


def _parallel_dispatchers():
    """(module, attribute name, dispatcher) for every parallel numba kernel tinyconv loaded."""
    from numba.core.registry import CPUDispatcher
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "tinyconv" or name.startswith("tinyconv.")):
            continue
        for attribute, value in list(vars(module).items()):
            if isinstance(value, CPUDispatcher) and value.targetoptions.get("parallel"):
                found.append((module, attribute, value))
    return found


def use_serial_kernels():
    """Replace every parallel kernel of tinyconv by its serial twin, in this process."""
    global SERIAL_AFTER_FORK
    SERIAL_AFTER_FORK = True
    for module, attribute, dispatcher in _parallel_dispatchers():
        setattr(module, attribute, serial_twin(dispatcher))


def _after_fork_in_child():
    if LAYER == "omp" and not SERIAL_AFTER_FORK and _openmp_started():
        use_serial_kernels()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
