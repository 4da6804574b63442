"""What the example scripts share: backends, the training loop, evaluation, plots, checkpoints.

The training loop is written once, in PyTorch's idiom, and runs unchanged on both backends:
``lib`` is either the ``tinyconv`` module or the ``torch`` module. That is the point of
tinyconv: the same code, a different import.

This file prepares the process (below) and gathers the shared pieces, one idea per file, so
that a script needs one import, ``from common import ...``:

- backend.py: ``Backend``, the framework a run uses (tinyconv or torch), and its threads;
- epochs.py: the data sets, one epoch of training, one evaluation, the plots and JSON;
- options.py: the command line (argparse option types, the shared options, ``fail``);
- run_guard.py: the output folder and the checkpoints, checked before any work (a run never
  replaces another one by surprise), and what a Ctrl-C leaves on disk;
- training.py: ``run``, a whole training run (or the evaluation of a checkpoint).
"""

from __future__ import annotations

import os
import sys
import warnings

# Before numpy loads OpenBLAS: its threads must not spin after each matrix product while numba's
# threads want the cores (see tinyconv/_startup.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy  # noqa: F401  (OpenBLAS loads now, with the setting above)

# Make `python examples/fashion.py` work from a clone without installing the package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# With the torch backend, torch's OpenMP runtime must be loaded before tinyconv's: a process has
# one, and whoever loads it first sets whether its threads sleep (tinyconv's choice) or spin
# (torch's, which runs its CPU ops faster); see tinyconv/_threads.py. tinyconv only reads the
# data here, so torch keeps its own setting.
if any(a in ("--backend=torch",) or (a == "torch" and i > 0 and sys.argv[i - 1] == "--backend")
       for i, a in enumerate(sys.argv)):
    try:
        import torch  # noqa: F401
    except ImportError:
        pass  # Backend() says what to install

# FashionCNN applies Dropout2d to a 2-D tensor as the tutorial does; torch warns about it on
# every run and so does tinyconv. The behaviour (element-wise dropout) is intended here.
warnings.filterwarnings("ignore", message=".*dropout2d.*")

# The shared pieces (tinyconv is imported by them, after torch when torch is asked for above).
from backend import Backend, TorchBatches, networks, set_threads
from epochs import (
    evaluate,
    format_confusion,
    load_datasets,
    mnist_transform,
    save_plots,
    train_epoch,
    write_json,
)
from options import (
    DEFAULT_LR,
    DEFAULT_MOMENTUM,
    add_common_args,
    device_name,
    fail,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    thread_count,
)
from run_guard import (
    RUN_MARKERS,
    RUN_OUTPUTS,
    check_out_dir,
    check_output_file,
    check_resume,
    check_writable,
    finish_before_interrupt,
    interrupted_message,
    load_checkpoint,
    make_folder,
)
from training import augmented, export_onnx, make_scheduler, run

__all__ = [
    "Backend", "TorchBatches", "networks", "set_threads",
    "evaluate", "format_confusion", "load_datasets", "mnist_transform", "save_plots",
    "train_epoch", "write_json",
    "DEFAULT_LR", "DEFAULT_MOMENTUM", "add_common_args", "device_name", "fail",
    "nonnegative_float", "nonnegative_int", "positive_float", "positive_int", "thread_count",
    "RUN_MARKERS", "RUN_OUTPUTS", "check_out_dir", "check_output_file", "check_resume",
    "check_writable", "finish_before_interrupt", "interrupted_message", "load_checkpoint",
    "make_folder",
    "augmented", "export_onnx", "make_scheduler", "run",
]
