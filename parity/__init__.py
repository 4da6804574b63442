"""The PyTorch side of tinyconv: the same networks in torch, for comparisons and tests.

This package imports torch; ``tinyconv`` itself never does.
"""
