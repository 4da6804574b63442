"""tinyconv/_threads.py: which numba threading layer tinyconv picks, in fresh processes.

The choice happens once, at import, and depends on what the process has loaded before
(libgomp, with torch) and on the environment; each case runs in its own interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

REPORT = ("import json, os, numba, numpy, tinyconv; from tinyconv import _threads\n"
          "@numba.njit(parallel=True)\n"
          "def ones(a):\n"
          "    for i in numba.prange(a.size):\n"
          "        a[i] = 1.0\n"
          "ones(numpy.zeros(8))\n"  # a parallel loop: numba starts its threading layer
          "print(json.dumps({'layer': _threads.LAYER, 'numba': numba.threading_layer(), "
          "'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY')}))")


def choice(code=REPORT, before="", **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                "TINYCONV_THREADS")}
    environment.update(env)
    environment["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", before + code], env=environment,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenMP layer: Linux only")
def test_alone_it_takes_openmp_with_sleeping_threads_and_restores_the_environment():
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        pytest.skip("this numba has no OpenMP layer")
    got = choice()
    assert got == {"layer": "omp", "numba": "omp", "omp_wait_policy": None}


def test_after_torch_it_keeps_off_torchs_openmp():
    pytest.importorskip("torch")
    got = choice(before="import torch; ")
    assert got["layer"] == got["numba"] == "workqueue"


@pytest.mark.parametrize("env", [{"TINYCONV_THREADS": "workqueue"},
                                 {"OMP_WAIT_POLICY": "active"},
                                 {"GOMP_SPINCOUNT": "1000"},
                                 {"NUMBA_THREADING_LAYER": "workqueue"}])
def test_the_users_settings_win(env):
    got = choice(**env)
    assert got["layer"] == got["numba"] == "workqueue"
    assert got["omp_wait_policy"] == env.get("OMP_WAIT_POLICY")


FORK = ("import multiprocessing as mp, json, tinyconv\n"
        "x = tinyconv.randn(4, 3, 8, 8)\n"
        "pool = tinyconv.nn.MaxPool2d(2)\n"
        "pool(x)\n"  # a parallel kernel in the parent
        "def child(q):\n"
        "    q.put(float(pool(x).sum().item()))\n"
        "if __name__ == '__main__':\n"
        "    ctx = mp.get_context('fork'); q = ctx.Queue()\n"
        "    p = ctx.Process(target=child, args=(q,)); p.start(); p.join(120)\n"
        "    same = q.get() == float(pool(x).sum().item()) if p.exitcode == 0 else None\n"
        "    print(json.dumps({'exitcode': p.exitcode, 'same': same}))\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_the_documented_way_out_of_fork_trouble_works():
    # GNU OpenMP does not survive fork (README, "Threads"); the workqueue layer does
    got = choice(code=FORK, TINYCONV_THREADS="workqueue")
    assert got == {"exitcode": 0, "same": True}
