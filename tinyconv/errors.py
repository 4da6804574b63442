"""Exceptions raised for bad input.

torch raises ``RuntimeError`` for most shape and dtype mistakes; Python convention is
``ValueError``. :class:`ShapeError` is both, so ported code that catches either keeps working.
"""


class ShapeError(ValueError, RuntimeError):
    """A tensor has the wrong shape, number of dimensions or channel count."""


class DTypeError(TypeError, RuntimeError):
    """A tensor has the wrong dtype (e.g. float class targets, float64 input to float32 weights)."""
