"""Small helpers shared across the package (no tinyconv imports, so any module may use them)."""

from __future__ import annotations

import numbers
import os


def _pair(value):
    """``v`` -> ``(v, v)`` for an int; a sequence (e.g. ``(height, width)``) -> a tuple of it.

    Only converts: the callers check length and range with their own error messages.
    """
    return (value, value) if isinstance(value, numbers.Integral) else tuple(value)


def env_choice(name, choices=("0", "1"), default="1"):
    """The value of the environment variable ``name`` (``default`` when unset), which must be one
    of ``choices``: anything else raises a ValueError that names the variable, the values it
    takes and the value given (a typo must not silently leave the default on)."""
    value = os.environ.get(name, default)
    if value not in choices:
        raise ValueError(f"environment variable {name} must be one of "
                         f"{', '.join(repr(c) for c in choices)} (default {default!r}); "
                         f"got {value!r}")
    return value
