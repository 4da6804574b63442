"""Differentiable operations: one :class:`tinyconv.autograd.ArrayFunction` subclass per op.

Functions take and return NumPy arrays and never loop over elements themselves; loop nests live
in ``tinyconv/kernels``. ``tinyconv.tensor`` and ``tinyconv.nn.functional`` call them.
"""
