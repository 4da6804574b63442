"""Small helpers shared across the package (no tinyconv imports, so any module may use them)."""

from __future__ import annotations

import numbers


def _pair(value):
    """``v`` -> ``(v, v)`` for an int; a sequence (e.g. ``(height, width)``) -> a tuple of it.

    Only converts: the callers check length and range with their own error messages.
    """
    return (value, value) if isinstance(value, numbers.Integral) else tuple(value)
