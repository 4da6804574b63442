"""tinyconv: a small deep-learning framework on NumPy and numba with PyTorch's API.

Replace ``import torch`` by ``import tinyconv as torch``-style imports and a tutorial's CNN runs
unchanged; see README.md. This file is the table of contents of the package: it gathers
torch's names from the modules that define them.

Where things are: ``tinyconv.Tensor`` and the dtypes in tensor.py (its methods in tensor_math.py,
tensor_shape.py, tensor_inplace.py); ``tensor``, ``zeros``, ``randn``... in _factories.py;
``cat``, ``stack``, ``where`` and the free forms of Tensor methods (``tinyconv.sum(x)``) in
_functions.py; what importing tinyconv does to the process (threads, malloc) in _startup.py;
``set_num_threads`` and the thread counts that follow the machine's load in _load.py.
"""

from __future__ import annotations

from tinyconv import _startup  # noqa: F401 - first of all: it must run before numpy is imported

# isort: split

from tinyconv import autograd, nn, optim  # noqa: F401
from tinyconv._factories import (
    arange,
    as_tensor,
    empty,
    eye,
    from_numpy,
    full,
    is_tensor,
    linspace,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from tinyconv._functions import (
    abs,
    allclose,
    argmax,
    argmin,
    cat,
    clamp,
    concat,
    concatenate,
    cos,
    diag,
    eq,
    equal,
    exp,
    flatten,
    log,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    min,
    mm,
    numel,
    permute,
    relu,
    reshape,
    sigmoid,
    sin,
    softmax,
    sqrt,
    squeeze,
    stack,
    sum,
    t,
    tanh,
    transpose,
    unsqueeze,
    where,
)
from tinyconv._load import get_num_threads, set_num_threads
from tinyconv.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinyconv.errors import DTypeError, ShapeError
from tinyconv.random import get_rng_state, initial_seed, manual_seed, set_rng_state
from tinyconv.serialization import CheckpointError, load, save
from tinyconv.tensor import (
    Size,
    Tensor,
    bool,
    device,
    double,
    float,
    float16,
    float32,
    float64,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    short,
    uint8,
)

# isort: split
# Once the names above exist (these import tinyconv and use them): the data sets, models
# and utilities, summary and viz, and the devices tinyconv lacks (tinyconv.cuda...).
from tinyconv import accelerator, backends, cuda, data, models, utils, viz
from tinyconv.summary import summary

__version__ = "0.1.0"

# Subpackages imported on first use, so that ``import tinyconv`` stays fast: ``tinyconv.onnx``
# (``torch.onnx.export(...)`` right after ``import torch``) and ``tinyconv.vision``.
_LAZY_SUBMODULES = ("onnx", "vision")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"tinyconv.{name}")
    raise AttributeError(f"module 'tinyconv' has no attribute {name!r}")
