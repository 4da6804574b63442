"""Export a tinyconv model to ONNX, natively (the ``onnx`` package's helpers, no torch).

    import tinyconv.onnx
    tinyconv.onnx.export(model, example_input, "model.onnx")

How it works: one forward pass of ``model`` (eval mode) on ``example_input`` is *traced*. While it
runs, the functions that layers and hand-written ``forward``s call (``F.conv2d``, ``F.linear``,
``F.batch_norm``, ``F.relu``, ``F.max_pool2d``, ``F.log_softmax``..., and the Tensor methods
``view``, ``reshape``, ``flatten``, ``relu``, ``+``) are temporarily replaced by wrappers that
record (op, input tensors, output tensor, arguments). Tensors are told apart by identity, so the
recorded calls form the data-flow graph, which is written out node by node. Only the outermost
call is recorded (``Flatten`` calls ``reshape`` inside ``flatten``: one node). In eval mode
dropout returns its input unchanged, so it costs no node at all.

The trace runs with gradients on, so a tensor made by an op the exporter does not record still
carries a ``grad_fn`` naming that op: the error message can say which op (and module) to blame.
"""

from __future__ import annotations

import contextlib
import numbers

import numpy as np

from tinyconv.autograd import enable_grad
from tinyconv.nn import functional as F
from tinyconv.nn.modules.module import Module
from tinyconv.tensor import Tensor

__all__ = ["export", "ExportError", "SUPPORTED"]

SUPPORTED = ("conv2d", "linear", "batch_norm (eval statistics)", "relu", "sigmoid", "tanh",
             "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "dropout (identity in eval)",
             "softmax", "log_softmax", "view/reshape/flatten", "tensor + tensor")


class ExportError(RuntimeError):
    """The model uses a module, op or argument the ONNX exporter cannot translate."""


def _pair(v):
    return (int(v), int(v)) if isinstance(v, numbers.Integral) else tuple(int(x) for x in v)


class _Tracer:
    """Records the outermost traced calls of one forward pass."""

    def __init__(self, model):
        self.calls = []        # (op, inputs (Tensors), output Tensor, attrs dict, module path)
        self.known = {}        # id(tensor) -> tensor, for every tensor the graph can name
        self.depth = 0
        self.module_stack = [""]
        self.param_names = {id(p): n for n, p in model.named_parameters()}
        self.param_names.update({id(b): n for n, b in model.named_buffers()})

    def where(self):
        return self.module_stack[-1] or "the model's forward"

    def check_input(self, t, op):
        if id(t) in self.known or id(t) in self.param_names:
            return
        made_by = t.grad_fn.fn.__name__ if t.grad_fn is not None else None
        what = f"an op the exporter does not record ({made_by})" if made_by else \
            "something the exporter does not know (a constant or untraced tensor)"
        raise ExportError(f"ONNX export: the input of {op} in {self.where()} (shape "
                          f"{tuple(t.shape)}) was made by {what}. Supported: "
                          f"{', '.join(SUPPORTED)}.")

    def wrap(self, op, original, tensor_args):
        """A wrapper of ``original`` recording op; ``tensor_args(args, kwargs)`` -> (inputs,
        attrs) picks the traced input tensors and the attributes from the call."""
        tracer = self

        def traced(*args, **kwargs):
            if tracer.depth:
                return original(*args, **kwargs)
            tracer.depth += 1
            try:
                out = original(*args, **kwargs)
            finally:
                tracer.depth -= 1
            if isinstance(out, tuple):
                raise ExportError(f"ONNX export: {op} in {tracer.where()} returns several "
                                  f"tensors (return_indices=True?), which is not supported")
            if not isinstance(out, Tensor):
                return out
            inputs, attrs = tensor_args(args, kwargs)
            if inputs and out is inputs[0] and not attrs.get("inplace"):
                return out  # a no-op (flatten of nothing, dropout in eval)
            # (relu(x, inplace=True) returns x itself, changed: recorded as a node whose output
            # gets a new ONNX name for x's new value; later uses of x read that name)
            for t in inputs:
                if isinstance(t, Tensor):
                    tracer.check_input(t, op)
            tracer.calls.append((op, inputs, out, attrs, tracer.where()))
            tracer.known[id(out)] = out
            return out

        return traced


def _bind(names, defaults):
    """args/kwargs of a call as a dict over ``names`` (the called function's signature)."""
    def get(args, kwargs):
        values = dict(defaults)
        values.update(zip(names, args, strict=False))  # trailing defaults
        values.update(kwargs)
        return values
    return get


# For each traced function of tinyconv.nn.functional: its parameter names, defaults, and which
# of them are the graph's input tensors (the rest are attributes).
_FUNCTIONAL = {
    "conv2d": (("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
               dict(bias=None, stride=1, padding=0, dilation=1, groups=1), ("input",)),
    "linear": (("input", "weight", "bias"), dict(bias=None), ("input",)),
    "batch_norm": (("input", "running_mean", "running_var", "weight", "bias", "training",
                    "momentum", "eps"),
                   dict(weight=None, bias=None, training=False, momentum=0.1, eps=1e-5),
                   ("input",)),
    "relu": (("input", "inplace"), dict(inplace=False), ("input",)),
    "sigmoid": (("input",), {}, ("input",)),
    "tanh": (("input",), {}, ("input",)),
    "max_pool2d": (("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                    "return_indices"),
                   dict(stride=None, padding=0, dilation=1, ceil_mode=False,
                        return_indices=False), ("input",)),
    "avg_pool2d": (("input", "kernel_size", "stride", "padding", "ceil_mode",
                    "count_include_pad", "divisor_override"),
                   dict(stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None), ("input",)),
    "adaptive_avg_pool2d": (("input", "output_size"), {}, ("input",)),
    "softmax": (("input", "dim", "dtype"), dict(dim=None, dtype=None), ("input",)),
    "log_softmax": (("input", "dim", "dtype"), dict(dim=None, dtype=None), ("input",)),
}

_METHODS = ("view", "reshape", "flatten", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
            "__add__", "__radd__")


def _functional_args(name):
    names, defaults, tensor_names = _FUNCTIONAL[name]
    get = _bind(names, defaults)

    def pick(args, kwargs):
        values = get(args, kwargs)
        return [values[n] for n in tensor_names], values
    return pick


def _method_args(name):
    def pick(args, kwargs):
        self, rest = args[0], args[1:]
        if name in ("__add__", "__radd__"):
            return [self, rest[0]], {}
        if name in ("softmax", "log_softmax"):
            return [self], {"dim": rest[0] if rest else kwargs["dim"]}
        return [self], {}
    return pick


@contextlib.contextmanager
def _tracing(model):
    """Patch the traced functions and methods and every module's forward; undo everything."""
    tracer = _Tracer(model)
    saved_f = {name: getattr(F, name) for name in _FUNCTIONAL}
    saved_m = {name: Tensor.__dict__[name] for name in _METHODS}
    wrapped = []
    try:
        for name, fn in saved_f.items():
            setattr(F, name, tracer.wrap(name, fn, _functional_args(name)))
        for name, fn in saved_m.items():
            setattr(Tensor, name, tracer.wrap(name.strip("_"), fn, _method_args(name)))
        for path, module in model.named_modules():
            if "forward" in module.__dict__:
                continue
            module.__dict__["forward"] = _named_forward(tracer, path, module)
            wrapped.append(module)
        yield tracer
    finally:
        for name, fn in saved_f.items():
            setattr(F, name, fn)
        for name, fn in saved_m.items():
            setattr(Tensor, name, fn)
        for module in wrapped:
            module.__dict__.pop("forward", None)


def _named_forward(tracer, path, module):
    bound = type(module).forward.__get__(module)
    label = f"'{path}' ({type(module).__name__})" if path else type(module).__name__

    def forward(*args, **kwargs):
        tracer.module_stack.append(label)
        try:
            out = bound(*args, **kwargs)
        finally:
            tracer.module_stack.pop()
        if isinstance(out, Tensor) and tracer.depth == 0 and id(out) not in tracer.known:
            made_by = out.grad_fn.fn.__name__ if out.grad_fn is not None else "an untraced op"
            raise ExportError(f"ONNX export: module {label} is not supported: its output was "
                              f"made by {made_by}, which the exporter does not translate. "
                              f"Supported: {', '.join(SUPPORTED)}.")
        return out

    return forward


# ---------------------------------------------------------------------------------------------
# trace -> ONNX nodes


class _Builder:
    def __init__(self, helper, numpy_helper, tracer, dynamic_batch):
        self.h, self.nh = helper, numpy_helper
        self.tracer = tracer
        self.dynamic_batch = dynamic_batch
        self.nodes, self.inits = [], []
        self.names = {}  # id(tensor) -> ONNX value name
        self.used = set()
        self.counter = 0

    def fresh(self, base):
        base = base.replace(" ", "_")
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def const(self, t, base):
        """An initializer for a parameter, buffer or constant tensor (named by its key)."""
        if t is None:
            return ""
        key = id(t)
        if key in self.names:
            return self.names[key]
        arr = t._data if isinstance(t, Tensor) else np.asarray(t)
        name = self.fresh(self.tracer.param_names.get(key, base))
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
        if isinstance(t, Tensor):
            self.names[key] = name
            self.tracer.known[key] = t  # keep it alive: ids must not be reused
        return name

    def array(self, arr, base):
        name = self.fresh(base)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op_type, inputs, out, where, **attrs):
        self.counter += 1
        prefix = where.split("'")[1] if where.count("'") >= 2 else ""
        name = f"{prefix}/{op_type}_{self.counter}" if prefix else f"{op_type}_{self.counter}"
        out_name = self.fresh(f"{prefix or op_type.lower()}.out" if prefix else
                              f"{op_type.lower()}_{self.counter}")
        self.nodes.append(self.h.make_node(op_type, inputs, [out_name], name=name, **attrs))
        self.names[id(out)] = out_name
        return out_name

    def value(self, t):
        return self.names[id(t)]

    # --- one method per traced op -------------------------------------------------------------

    def emit(self, op, inputs, out, a, where):
        getattr(self, "op_" + op)(inputs, out, a, where)

    def op_conv2d(self, inputs, out, a, where):
        x = inputs[0]
        if a["groups"] != 1:
            raise ExportError(f"ONNX export: conv2d with groups={a['groups']} in {where}")
        w = a["weight"]
        kh, kw = w.shape[2:]
        stride, dilation = _pair(a["stride"]), _pair(a["dilation"])
        padding = a["padding"]
        if isinstance(padding, str):
            if padding == "valid":
                pads = [0, 0, 0, 0]
            else:  # 'same' (stride 1): torch puts the odd extra pixel at the end
                th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
                pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
        else:
            ph, pw = _pair(padding)
            pads = [ph, pw, ph, pw]
        ins = [self.value(x), self.const(w, "weight")]
        if a["bias"] is not None:
            ins.append(self.const(a["bias"], "bias"))
        self.node("Conv", ins, out, where, kernel_shape=[kh, kw], strides=list(stride),
                  pads=pads, dilations=list(dilation), group=1)

    def op_linear(self, inputs, out, a, where):
        x, w, b = inputs[0], a["weight"], a["bias"]
        if x.ndim == 2:
            ins = [self.value(x), self.const(w, "weight")]
            if b is not None:
                ins.append(self.const(b, "bias"))
            self.node("Gemm", ins, out, where, transB=1)
            return
        # (..., in) inputs: MatMul with W^T, then Add
        wt = self.array(w._data.T, self.tracer.param_names.get(id(w), "weight") + ".T")
        if b is None:
            self.node("MatMul", [self.value(x), wt], out, where)
            return
        tmp = Tensor._wrap(np.empty(0))
        self.tracer.known[id(tmp)] = tmp
        mid = self.node("MatMul", [self.value(x), wt], tmp, where)
        self.node("Add", [mid, self.const(b, "bias")], out, where)

    def op_batch_norm(self, inputs, out, a, where):
        x = inputs[0]
        if a["training"]:
            raise ExportError(f"ONNX export: batch_norm in {where} uses batch statistics in eval "
                              f"mode (track_running_stats=False), which ONNX cannot express")
        C = x.shape[1]
        dt = x._data.dtype
        scale = (self.const(a["weight"], "scale") if a["weight"] is not None
                 else self.array(np.ones(C, dt), "bn_scale"))
        bias = (self.const(a["bias"], "bias") if a["bias"] is not None
                else self.array(np.zeros(C, dt), "bn_bias"))
        self.node("BatchNormalization",
                  [self.value(x), scale, bias, self.const(a["running_mean"], "running_mean"),
                   self.const(a["running_var"], "running_var")], out, where,
                  epsilon=float(a["eps"]))

    def op_relu(self, inputs, out, a, where):
        self.node("Relu", [self.value(inputs[0])], out, where)

    def op_sigmoid(self, inputs, out, a, where):
        self.node("Sigmoid", [self.value(inputs[0])], out, where)

    def op_tanh(self, inputs, out, a, where):
        self.node("Tanh", [self.value(inputs[0])], out, where)

    def _pool_attrs(self, a):
        k = _pair(a["kernel_size"])
        s = _pair(a["stride"] if a["stride"] is not None else a["kernel_size"])
        p = _pair(a["padding"])
        return dict(kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                    ceil_mode=int(bool(a["ceil_mode"])))

    def op_max_pool2d(self, inputs, out, a, where):
        if a["return_indices"]:
            raise ExportError(f"ONNX export: max_pool2d(return_indices=True) in {where}")
        attrs = self._pool_attrs(a)
        self.node("MaxPool", [self.value(inputs[0])], out, where,
                  dilations=list(_pair(a["dilation"])), **attrs)

    def op_avg_pool2d(self, inputs, out, a, where):
        if a["divisor_override"] is not None:
            raise ExportError(f"ONNX export: avg_pool2d(divisor_override=...) in {where}")
        self.node("AveragePool", [self.value(inputs[0])], out, where,
                  count_include_pad=int(bool(a["count_include_pad"])),
                  **self._pool_attrs(a))

    def op_adaptive_avg_pool2d(self, inputs, out, a, where):
        x = inputs[0]
        H, W = x.shape[2:]
        OH, OW = out.shape[2:]
        if (OH, OW) == (1, 1):
            self.node("GlobalAveragePool", [self.value(x)], out, where)
        elif H % OH == 0 and W % OW == 0:
            k = [H // OH, W // OW]
            self.node("AveragePool", [self.value(x)], out, where, kernel_shape=k, strides=k)
        else:
            raise ExportError(f"ONNX export: adaptive_avg_pool2d from {H}x{W} to {OH}x{OW} in "
                              f"{where} (only output sizes that divide the input)")

    def _softmax(self, op_type, inputs, out, a, where):
        x = inputs[0]
        dim = a["dim"]
        if dim is None:
            dim = 0 if x.ndim in (0, 1, 3) else 1
        self.node(op_type, [self.value(x)], out, where, axis=int(dim) % x.ndim)

    def op_softmax(self, inputs, out, a, where):
        self._softmax("Softmax", inputs, out, a, where)

    def op_log_softmax(self, inputs, out, a, where):
        self._softmax("LogSoftmax", inputs, out, a, where)

    def _reshape(self, inputs, out, a, where):
        x = inputs[0]
        src, dst = tuple(x.shape), tuple(out.shape)
        if src[1:] and len(dst) == 2 and dst[0] == src[0] and self.dynamic_batch:
            self.node("Flatten", [self.value(x)], out, where, axis=1)
            return
        if self.dynamic_batch and dst and src and dst[0] == src[0]:
            shape = [-1] + list(dst[1:])
        elif self.dynamic_batch:
            raise ExportError(f"ONNX export: view/reshape from {src} to {dst} in {where} "
                              f"mixes the batch dimension into others; export with "
                              f"dynamic_batch=False")
        else:
            shape = list(dst)
        shape_name = self.array(np.array(shape, dtype=np.int64), "shape")
        self.node("Reshape", [self.value(x), shape_name], out, where)

    op_view = op_reshape = op_flatten = _reshape

    def op_add(self, inputs, out, a, where):
        x, y = inputs
        names = [self.value(t) if isinstance(t, Tensor) and id(t) in self.names
                 else self.const(t if isinstance(t, Tensor) else np.asarray(
                     t, dtype=out._data.dtype), "constant") for t in (x, y)]
        self.node("Add", names, out, where)

    op_radd = op_add


def export(model: Module, example_input: Tensor, path, opset_version: int = 17,
           dynamic_batch: bool = True, input_name: str = "input", output_name: str = "output"):
    """Write ``model`` as an ONNX file at ``path``; returns the ``onnx.ModelProto``.

    ``example_input`` is one batch, e.g. ``tinyconv.zeros(1, 1, 28, 28)``; its shape (but the
    batch, when ``dynamic_batch``) is fixed in the file. The model is traced in eval mode (batch
    norm uses its running statistics, dropout is the identity) and its mode restored after.
    Raises ExportError naming the module or op that ONNX export does not support.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("tinyconv.onnx.export needs the onnx package: pip install onnx "
                          "(or pip install -e '.[onnx]')") from None
    if not isinstance(model, Module):
        raise TypeError(f"export(): expected a tinyconv.nn.Module, got {type(model).__name__}")
    x = example_input if isinstance(example_input, Tensor) else Tensor(np.asarray(example_input))
    if x.dtype != np.float32:
        raise ExportError(f"ONNX export: the example input must be float32, got {x.dtype}")
    modes = {id(m): m.training for m in model.modules()}
    model.eval()
    try:
        with enable_grad(), _tracing(model) as tracer:
            tracer.known[id(x)] = x
            out = model(x)
            if not isinstance(out, Tensor):
                raise ExportError(f"ONNX export: the model returned {type(out).__name__}; only "
                                  f"a single output tensor is supported")
            tracer.check_input(out, "the model's output")
    finally:
        for m in model.modules():
            object.__setattr__(m, "training", modes[id(m)])

    b = _Builder(helper, numpy_helper, tracer, dynamic_batch)
    b.names[id(x)] = input_name
    b.used.update({input_name, output_name})
    for op, inputs, result, attrs, where in tracer.calls:
        b.emit(op, inputs, result, attrs, where)
    if id(out) == id(x):
        b.node("Identity", [input_name], out, "")
    # Rename the last value to the graph's output name.
    last = b.names[id(out)]
    for node in b.nodes:
        node.output[:] = [output_name if o == last else o for o in node.output]
        node.input[:] = [output_name if i == last else i for i in node.input]

    in_dims, out_dims = list(x.shape), list(out.shape)
    if dynamic_batch:
        in_dims[0] = "batch"
        if out_dims and out.shape[0] == x.shape[0]:
            out_dims[0] = "batch"
    graph = helper.make_graph(
        b.nodes, type(model).__name__,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_dims)],
        initializer=b.inits)
    proto = helper.make_model(graph, producer_name="tinyconv",
                              opset_imports=[helper.make_opsetid("", opset_version)])
    if opset_version <= 17:
        proto.ir_version = 8  # readable by every onnxruntime since 1.13
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto
