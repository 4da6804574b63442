"""The PyTorch side of tinyconv: the same networks in torch, for comparisons and tests.

This package imports torch; ``tinyconv`` itself never does.

- ``parity.to_torch(model)`` / ``parity.from_torch(module)``: a model's twin in the other
  framework, with the same weights and buffers (``parity/convert.py``).
- ``parity.shared_dropout(tiny_model, torch_model)``: both twins draw the same dropout masks
  (``parity/twins.py``), and ``record_outputs`` for per-layer comparisons.
- ``python -m parity compare | lockstep | accuracy``: see ``parity/cli.py`` and the README.
"""

from .convert import UnsupportedModuleError, from_torch, register_twin, to_torch

__all__ = ["to_torch", "from_torch", "register_twin", "UnsupportedModuleError"]
