"""tinyconv/_threads.py: which numba threading layer tinyconv picks, and forked children.

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



FORK_AFTER_TRAINING = """
import json, multiprocessing as mp, sys, numpy as np, tinyconv
from tinyconv import _threads, models, nn, optim

TRAIN_IN_CHILD = "--train-in-child" in sys.argv
tinyconv.manual_seed(0)
model = models.FashionCNN()
optimizer = optim.Adam(model.parameters(), 1e-3)
x = tinyconv.randn(32, 1, 28, 28)
y = tinyconv.tensor(np.arange(32) % 10)

def step():
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()

for _ in range(3):  # real training steps: numba's threads have run in this process
    step()
model.eval()

def forward_and_step(_):
    with tinyconv.no_grad():
        out = model(x).numpy().copy()
    loss = None
    if TRAIN_IN_CHILD:
        model.train()
        tinyconv.manual_seed(1)
        loss = step()
    return out, loss, _threads.SERIAL_AFTER_FORK

if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        results = pool.map(forward_and_step, range(2))
    out, loss, _ = forward_and_step(None)
    print(json.dumps({
        "layer": _threads.LAYER, "parent_serial": _threads.SERIAL_AFTER_FORK,
        "children_serial": [r[2] for r in results],
        "same_forward": all(np.array_equal(r[0], out) for r in results),
        "child_losses": [r[1] for r in results], "parent_loss": loss}))
"""


def fork_after_training(argument="", **env):
    return choice(code=f"import sys; sys.argv.append({argument!r})\n" + FORK_AFTER_TRAINING,
                  **env)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
@pytest.mark.parametrize("env", [{}, {"TINYCONV_THREADS": "workqueue"}])
def test_a_pool_forked_after_training_runs_kernels(env):
    # Before: under OpenMP the children were killed by SIGTERM and Pool.map waited forever.
    # Now they run serial twins of the kernels (OpenMP) or the workqueue's threads again.
    got = fork_after_training(**env)
    assert got["parent_serial"] is False
    assert got["children_serial"] == [got["layer"] == "omp"] * 2
    assert got["same_forward"]  # bit for bit: no sum here is split across threads


@pytest.mark.slow  # compiles every serial twin once (~40 s on 2 cores), cached afterwards
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_training_step_in_a_forked_child_matches_the_parents():
    got = fork_after_training("--train-in-child")
    assert got["same_forward"] and got["children_serial"] == [got["layer"] == "omp"] * 2
    # the same sums, split over threads differently (or not at all) in the child
    assert got["child_losses"] == pytest.approx([got["parent_loss"]] * 2, rel=1e-6)


def test_every_parallel_kernel_gets_a_serial_twin():
    code = ("import json, tinyconv, tinyconv.kernels.fused, tinyconv.optim\n"
            "from tinyconv import _threads\n"
            "kernels = _threads._parallel_dispatchers()\n"
            "_threads.use_serial_kernels()\n"
            "swapped = [getattr(m, a) for m, a, d in kernels]\n"
            "print(json.dumps({'kernels': len(kernels), 'left': "
            "len(_threads._parallel_dispatchers()), 'same_code': all(t.py_func.__code__ is "
            "d.py_func.__code__ and not t.targetoptions.get('parallel') "
            "for t, (m, a, d) in zip(swapped, kernels))}))\n")
    got = choice(code=code)
    assert got["kernels"] >= 20 and got["left"] == 0 and got["same_code"]
