"""The framework an example runs on, behind one interface: tinyconv or PyTorch.

``Backend.lib`` is either the ``tinyconv`` module or the ``torch`` module; the training loop
(epochs.py, training.py) is written once in PyTorch's idiom and runs unchanged on both. That is
the point of tinyconv: the same code, a different import.

Part of what common.py shares; import it from there (common.py prepares the process first).
"""

from __future__ import annotations

import numpy as np

import tinyconv
from tinyconv.data import DataLoader


def networks(models):
    """name -> (constructor, input shape) of every network of a models module (either backend)."""
    return {**models.SEED_NETWORKS, **models.COLOUR_NETWORKS}


class TorchBatches:
    """A tinyconv DataLoader whose batches come out as torch tensors (sharing memory)."""

    def __init__(self, loader, torch):
        self.loader, self.torch = loader, torch

    def __iter__(self):
        for batch in self.loader:
            yield [self.torch.from_numpy(t.numpy()) for t in batch]

    def __getattr__(self, name):  # len(), .dataset, .generator: the loader's
        return getattr(self.loader, name)

    def __len__(self):
        return len(self.loader)


class Backend:
    """The framework the example runs on: its module (``lib``), models, device and data plumbing."""

    def __init__(self, name: str, device: str | None = None):
        self.name = name
        if name == "tinyconv":
            from tinyconv import models
            if device not in (None, "cpu"):
                raise SystemExit(f"error: --device {device!r}: the tinyconv backend runs on the "
                                 f"CPU only (use --backend torch for CUDA)")
            self.lib, self.models, self.device = tinyconv, models, "cpu"
        elif name == "torch":
            try:
                import torch
            except ImportError:
                raise SystemExit("error: --backend torch needs PyTorch: "
                                 "pip install -e '.[torch]'") from None
            from parity import models
            if device is None:
                device = "cuda" if torch.cuda.is_available() else "cpu"
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise SystemExit(f"error: --device {device}: CUDA is not available here")
            # Full float32 matmuls on GPUs, so both backends compute the same thing.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            self.lib, self.models, self.device = torch, models, device
        else:
            raise SystemExit(f"error: unknown backend {name!r}: choose tinyconv or torch")

    def loader(self, dataset, batch_size, shuffle=False, seed=None):
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=seed)
        return loader if self.name == "tinyconv" else TorchBatches(loader, self.lib)

    def build(self, model_name: str, seed: int):
        """The network, initialised by tinyconv with ``seed``; the torch twin gets those weights,
        so that both backends start from the same point."""
        tinyconv.manual_seed(seed)
        ctor, _ = networks(tinyconv.models)[model_name]
        reference = ctor()
        if self.name == "tinyconv":
            return reference
        self.lib.manual_seed(seed)
        twin = networks(self.models)[model_name][0]()
        self.load_state(twin, reference.state_dict())
        return twin.to(self.device)

    def load_state(self, model, state):
        """Load a state_dict of NumPy arrays (or tensors of either backend)."""
        state = {k: np.asarray(v) for k, v in state.items()}
        if self.name == "torch":
            state = {k: self.lib.from_numpy(np.array(v)) for k, v in state.items()}
        model.load_state_dict(state)

    def optimizer(self, name, params, lr, momentum=0.9):
        if name == "adam":
            return self.lib.optim.Adam(params, lr=lr)
        if name == "sgd":
            return self.lib.optim.SGD(params, lr=lr, momentum=momentum)
        raise SystemExit(f"error: unknown optimizer {name!r}: choose adam or sgd")

    def optimizer_state_from_numpy(self, state):
        if self.name != "torch":
            return state
        torch = self.lib
        return {"state": {int(k): {n: torch.tensor(v) if isinstance(v, (np.ndarray, float))
                                   else v for n, v in s.items()}
                          for k, s in state["state"].items()},
                "param_groups": state["param_groups"]}

    def rng_state(self):
        state = {"tinyconv": tinyconv.get_rng_state()}
        if self.name == "torch":
            state["torch"] = self.lib.get_rng_state().numpy()
        return state

    def set_rng_state(self, state):
        tinyconv.set_rng_state(state["tinyconv"])
        if self.name == "torch" and "torch" in state:
            self.lib.set_rng_state(self.lib.from_numpy(np.array(state["torch"])))


def set_threads(backend, threads):
    if threads is None:
        return
    import numba
    numba.set_num_threads(threads)
    if backend.name == "torch":
        backend.lib.set_num_threads(threads)
