"""Whether operations are recorded for backward: ``no_grad``, ``enable_grad``,
``set_grad_enabled``, ``is_grad_enabled`` (torch.autograd.grad_mode).

The switch is one flag per thread (``_grad_mode.enabled``), read by every ``apply``: with it off,
an op runs its forward only and records no node.
"""

from __future__ import annotations

import contextlib
import threading


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return _grad_mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager (and decorator) that switches graph recording on or off."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode  # like torch: takes effect even when not used in `with`

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False


class no_grad(contextlib.ContextDecorator):
    """``with tinyconv.no_grad():`` runs ops without recording a graph (evaluation, updates)."""

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False


class enable_grad(contextlib.ContextDecorator):
    """Re-enables graph recording inside a ``no_grad`` block."""

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = True
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False
