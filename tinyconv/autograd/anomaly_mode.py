"""Anomaly detection: ``set_detect_anomaly`` / ``detect_anomaly`` (torch.autograd.anomaly_mode).

While it is on, every forward result and every gradient computed in backward is checked for
NaN and Inf, and the first one found raises a FloatingPointError naming the op and the pass.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np


class _AnomalyMode(threading.local):
    enabled = False


_anomaly_mode = _AnomalyMode()


def is_anomaly_enabled() -> bool:
    return _anomaly_mode.enabled


class set_detect_anomaly(contextlib.ContextDecorator):
    """Check every op's output in forward and every gradient in backward for NaN or Inf.

    The first op that produces one raises ``FloatingPointError`` naming it (torch's
    ``set_detect_anomaly``). Costs one pass over each array, so it is off by default.
    """

    def __init__(self, mode: bool = True):
        self.prev = _anomaly_mode.enabled
        _anomaly_mode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly_mode.enabled = self.prev
        return False


detect_anomaly = set_detect_anomaly


def _check_finite(arr, fn, where):
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        kind = "NaN" if np.isnan(arr).any() else "Inf"
        raise FloatingPointError(f"anomaly detected: {fn.__name__} produced {kind} in its "
                                 f"{where} pass (in an array of shape {arr.shape})")
