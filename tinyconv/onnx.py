"""``tinyconv.onnx.export(model, example_input, path)``: see ``tinyconv/onnx_export.py``.

Importing this module does not import the ``onnx`` package; ``export`` does, when called.
"""

from tinyconv.onnx_export import SUPPORTED, ExportError, export

__all__ = ["export", "ExportError", "SUPPORTED"]
