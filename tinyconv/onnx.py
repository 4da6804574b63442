"""``tinyconv.onnx.export``: torch's call, ``torch.onnx.export(model, args, f, input_names=...,
output_names=..., dynamic_axes=...)``, and tinyconv's own, ``export(model, example_input,
path)``; both write the same file (see ``tinyconv/onnx_export.py``).

Importing this module does not import the ``onnx`` package; ``export`` does, when called.
"""

from tinyconv import onnx_export as _onnx_export
from tinyconv.onnx_export import SUPPORTED, ExportError

__all__ = ["export", "ExportError", "SUPPORTED"]


def export(model, args, f, *, input_names=None, output_names=None, dynamic_axes=None,
           opset_version=None, export_params=True, dynamo=None, verbose=None,
           dynamic_batch=None, input_name=None, output_name=None):
    """Write ``model`` traced on ``args`` (one input tensor, or a tuple holding one) as ONNX at
    ``f``; returns the ``onnx.ModelProto``.

    torch's arguments: ``input_names`` / ``output_names`` (one name each), ``dynamic_axes``
    (only the batch axis, 0, may be dynamic: ``{"input": {0: "batch"}, ...}``; without it the
    shapes are fixed, as in torch), ``opset_version`` (default 17). ``dynamo`` chooses between
    torch's two exporters; tinyconv has one, so it is accepted and ignored. ``verbose`` is
    ignored. ``export_params=False`` (a graph without its weights) is not supported.
    tinyconv's own spellings ``dynamic_batch``, ``input_name`` and ``output_name`` still work.
    """
    if isinstance(args, (tuple, list)):
        if len(args) != 1:
            raise ExportError(f"export(): args must be one input tensor (or a tuple of one); "
                              f"got {len(args)} inputs")
        args = args[0]
    if not export_params:
        raise ExportError("export(): export_params=False is not supported: tinyconv always "
                          "stores the weights in the file")

    def one_name(names, kind, given):
        if names is None:
            return given or kind
        if given is not None:
            raise TypeError(f"export(): give {kind}_names or {kind}_name, not both")
        names = list(names)
        if len(names) != 1:
            raise ExportError(f"export(): {kind}_names must hold one name, got {names}")
        return names[0]

    in_name = one_name(input_names, "input", input_name)
    out_name = one_name(output_names, "output", output_name)
    if dynamic_axes is not None:
        if dynamic_batch is not None:
            raise TypeError("export(): give dynamic_axes or dynamic_batch, not both")
        for name, axes in dynamic_axes.items():
            if name not in (in_name, out_name):
                raise ExportError(f"export(): dynamic_axes names {name!r}, which is neither "
                                  f"the input {in_name!r} nor the output {out_name!r}")
            if list(axes) != [0]:
                raise ExportError(f"export(): only axis 0 (the batch) can be dynamic, got "
                                  f"{name!r}: {axes!r}")
        dynamic_batch = in_name in dynamic_axes
    elif dynamic_batch is None:
        # torch fixes every shape unless dynamic_axes says otherwise; tinyconv's own call
        # (no torch arguments at all) keeps its historical default, a dynamic batch.
        dynamic_batch = input_names is None and output_names is None
    return _onnx_export.export(model, args, f, opset_version=opset_version or 17,
                               dynamic_batch=dynamic_batch, input_name=in_name,
                               output_name=out_name)
