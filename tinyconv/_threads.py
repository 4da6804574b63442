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
numba's message); use multiprocessing's "spawn" start method. ``TINYCONV_THREADS=workqueue``
keeps tinyconv off OpenMP altogether.
"""

from __future__ import annotations

import os
import sys

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
