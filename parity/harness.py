"""What the parity commands share: the data, the twins, one training step of both, differences.

Every command builds the seed network with tinyconv (``tinyconv.manual_seed(seed)``), makes its
torch twin with :func:`parity.to_torch` (same weights and buffers) and feeds both the same real
batches (Fashion-MNIST for fashioncnn / deepfashioncnn, MNIST for the others, normalised as their
tutorials do). The commands themselves: compare.py, lockstep.py, accuracy.py; cli.py parses the
command line.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

import tinyconv
import tinyconv.data
from tinyconv.data import transforms as T
from tinyconv.models import SEED_NETWORKS
from tinyconv.nn import functional as F

from .convert import to_torch

# FashionCNN applies Dropout2d to fc1's 2-D output (as its tutorial does): both frameworks warn.
warnings.filterwarnings("ignore", message=".*dropout2d.*")

# model -> (dataset, normalisation mean, std, loss): as in each network's tutorial
DATA = {
    "fashioncnn": ("FashionMNIST", 0.5, 0.5, "cross_entropy"),
    "deepfashioncnn": ("FashionMNIST", 0.5, 0.5, "cross_entropy"),
    "convmodule": ("MNIST", 0.5, 0.5, "cross_entropy"),
    "fc2layer": ("MNIST", 0.1307, 0.3081, "nll_loss"),
    "cnn": ("MNIST", 0.1307, 0.3081, "nll_loss"),
}


def pick_device(device):
    """--device, else cuda when available, else cpu; TF32 off so that float32 means float32."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"error: --device {device}: CUDA is not available here")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(device)


def load_dataset(model, data_dir, train):
    """The model's data set (train or test split) as NumPy-batch-producing dataset."""
    name, mean, std, _ = DATA[model]
    transform = T.Compose([T.ToTensor(), T.Normalize((mean,), (std,))])
    try:
        return getattr(tinyconv.data, name)(data_dir, train=train, transform=transform,
                                            download=False)
    except tinyconv.data.DataError as exc:
        raise SystemExit(f"error: {exc}") from None


def loader(dataset, batch_size, shuffle=False, seed=0):
    """Batches of NumPy arrays (float32 images, int64 labels), in an order fixed by ``seed``."""
    batches = tinyconv.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=seed)
    return NumpyBatches(batches)


class NumpyBatches:
    """A tinyconv DataLoader whose batches come out as NumPy arrays (no copy)."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        for batch in self.loader:
            yield tuple(t.numpy() for t in batch)

    def __len__(self):
        return len(self.loader)


def make_twins(model, dtype, device, seed=0):
    """The tinyconv network (initialised with ``seed``) and its torch twin, same weights."""
    tinyconv.manual_seed(seed)
    tiny = SEED_NETWORKS[model][0]().to(np.dtype(dtype))
    return tiny, to_torch(tiny, dtype=dtype, device=device)


def losses(model):
    kind = DATA[model][3]
    tiny_fn = F.cross_entropy if kind == "cross_entropy" else F.nll_loss
    torch_fn = (torch.nn.functional.cross_entropy if kind == "cross_entropy"
                else torch.nn.functional.nll_loss)
    return kind, tiny_fn, torch_fn


def as_inputs(x, y, dtype, device):
    x = np.asarray(x, dtype=np.dtype(dtype))
    y = np.asarray(y, dtype=np.int64)
    return ((tinyconv.tensor(x), tinyconv.tensor(y)),
            (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)))


def to_np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t.detach().numpy())


def difference(a, b):
    """(max abs difference, max abs difference / max |b|) of two arrays of the same shape."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: tinyconv {a.shape}, torch {b.shape}")
    if a.size == 0:
        return 0.0, 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return diff, diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def weight_drift(tiny, theirs, with_name=False):
    """Max |w_tinyconv - w_torch| over every parameter of the twins (and where, on request)."""
    ours = dict(tiny.named_parameters())
    drift, where = max((float(np.max(np.abs(to_np(ours[n]).astype(np.float64)
                                            - to_np(p).astype(np.float64)))), n)
                       for n, p in theirs.named_parameters())
    return (drift, where) if with_name else drift


def optimizers(name, tiny, theirs, lr, momentum=0.9):
    """The same optimizer for each twin: (tinyconv's, torch's)."""
    return (optimizer(tinyconv, name, tiny, lr, momentum),
            optimizer(torch, name, theirs, lr, momentum))


def optimizer(fw, name, model, lr, momentum=0.9):
    """``fw.optim.Adam`` or ``fw.optim.SGD`` (with momentum) over the model's parameters."""
    if name == "adam":
        return fw.optim.Adam(model.parameters(), lr=lr)
    return fw.optim.SGD(model.parameters(), lr=lr, momentum=momentum)


def train_step(tiny, theirs, opts, loss_fns, batch, dtype, device):
    """One optimizer step of both twins on the same batch (dropout masks: the caller's context).

    Returns the two losses as floats.
    """
    (x, y), (tx, ty) = as_inputs(*batch, dtype, device)
    tiny_loss = loss_fns[0](tiny(x), y)
    torch_loss = loss_fns[1](theirs(tx), ty)
    for opt in opts:
        opt.zero_grad()
    tiny_loss.backward()
    torch_loss.backward()
    for opt in opts:
        opt.step()
    return float(tiny_loss.item()), float(torch_loss.item())


def masks_note(seed):
    return (f"dropout masks: shared; parity.twins.MaskSource draws each mask once with NumPy "
            f"(default_rng({seed}), keep = u >= p, scaled by 1/(1-p)) and both twins' Dropout "
            f"modules apply that same array")


def cycle(batches):
    while True:
        yield from batches
