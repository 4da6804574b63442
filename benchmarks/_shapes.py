"""The layer shapes of the seed networks, for benchmarks/kernels.py: each network is run once
on a small batch with tinyconv's functional ops and fusion entry points recorded, and every
distinct call becomes one benchmark row (``describe`` writes its label)."""

from __future__ import annotations

import contextlib

import tinyconv
from tinyconv import models as tiny_models
from tinyconv.nn import functional as TF
from tinyconv.nn import fusion

NETWORKS = {**tiny_models.SEED_NETWORKS, **tiny_models.COLOUR_NETWORKS}

# ---------------------------------------------------------------------------------------------
# collecting the layer shapes of the seed networks


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


@contextlib.contextmanager
def recording_calls(module, names, calls):
    """Temporarily wrap ``module.<name>`` for each name, appending (name, args, kwargs, result)
    to calls after each call."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name, fn):
        def recorder(*args, **kwargs):
            result = fn(*args, **kwargs)
            calls.append((name, args, kwargs, result))
            return result
        return recorder

    for name, fn in originals.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def _layer_key(name, args, kwargs, result):
    """The shape of one recorded call, batch left out: a hashable tuple, or None to skip it."""
    def arg(i, key, default=None):
        return args[i] if len(args) > i else kwargs.get(key, default)

    if name == "try_fused":  # (modules, i, input) -> (output, number of modules) or None
        modules, i, x = args
        return None if result is None else _fused_key(
            tuple(x.shape[1:]), [_module_spec(m) for m in modules[i:i + result[1]]])
    x = arg(0, "input")
    item = tuple(x.shape[1:])  # one sample's shape
    if name == "conv2d":
        weight = arg(1, "weight")
        return ("conv2d", item, weight.shape[0], tuple(weight.shape[2:]),
                _pair(arg(3, "stride", 1)), _pair(arg(4, "padding", 0)),
                _pair(arg(5, "dilation", 1)))
    if name == "max_pool2d":
        kernel = _pair(arg(1, "kernel_size"))
        stride = arg(2, "stride")
        return ("max_pool2d", item, kernel, _pair(stride) if stride else kernel,
                _pair(arg(3, "padding", 0)))
    if name == "batch_norm":
        return ("batch_norm", item) if arg(5, "training", False) else None
    if name == "linear":
        weight = arg(1, "weight")
        return ("linear", item[-1], weight.shape[0])
    return None


# a fused run of modules is described by the specs of its modules, enough to rebuild them
_SHORT_NAMES = {"Conv2d": "conv", "BatchNorm2d": "bn", "ReLU": "relu", "MaxPool2d": "maxpool"}


def _module_spec(module):
    """A hashable description of one module of a fused run (fusion.py accepts only these)."""
    name = type(module).__name__
    if name == "Conv2d":
        return (name, module.in_channels, module.out_channels, _pair(module.kernel_size),
                _pair(module.stride), _pair(module.padding), _pair(module.dilation))
    if name == "BatchNorm2d":
        return (name, module.num_features, module.eps, module.momentum)
    if name == "ReLU":
        return (name, bool(module.inplace))
    if name == "MaxPool2d":  # fusion takes only 2x2 windows, stride 2, no padding
        return (name,)
    raise ValueError(f"no spec for a fused {name}")


def _fused_key(item, specs):
    """(kind, one sample's input shape, module specs), kind e.g. 'conv+bn+relu+maxpool'."""
    return ("+".join(_SHORT_NAMES[spec[0]] for spec in specs), item, tuple(specs))


def _is_fused(kind):
    return "+" in kind


def _conv_output(item, conv_spec):
    """One sample's output shape of the Conv2d described by conv_spec."""
    _, _, out_channels, kernel, stride, padding, dilation = conv_spec
    return (out_channels,) + tuple(
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip(item[1:], kernel, stride, padding, dilation, strict=True))


def collect_layer_shapes(networks=None):
    """{layer key: [names of the networks that use it]}, in order of first appearance.

    ``networks``: names of tinyconv.models' SEED_NETWORKS or COLOUR_NETWORKS (default: all).
    """
    shapes = {}
    for net_name in networks or NETWORKS:
        constructor, input_shape = NETWORKS[net_name]
        model = constructor()
        model.train()  # batch_norm records its training-mode shape
        calls = []
        was_fusing = tinyconv.nn.fusion_enabled()
        try:
            # fusion off: nn.Sequential would run Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d as
            # one op and bypass the functions recorded here
            tinyconv.nn.set_fusion(False)
            with recording_calls(TF, ("conv2d", "max_pool2d", "batch_norm", "linear"), calls):
                with tinyconv.no_grad():
                    model(tinyconv.zeros(2, *input_shape))
            # fusion on, as in training: which runs of modules become one op
            tinyconv.nn.set_fusion(True)
            with recording_calls(fusion, ("try_fused",), calls):
                with tinyconv.no_grad():
                    model(tinyconv.zeros(2, *input_shape))
        finally:
            tinyconv.nn.set_fusion(was_fusing)
        keys = [_layer_key(*call) for call in calls]
        for key in list(keys):
            if key is not None and key[0] == "conv+bn+relu+maxpool":
                # the same run without the convolution: the fused epilogue alone
                keys.append(_fused_key(_conv_output(key[1], key[2][0]), key[2][1:]))
        for key in keys:
            if key is not None:
                users = shapes.setdefault(key, [])
                if net_name not in users:
                    users.append(net_name)
    return shapes


def _size(shape):
    return "x".join(str(s) for s in shape)


def _short(pair):
    """(1, 1) -> '1', (2, 1) -> '2x1'."""
    return str(pair[0]) if pair[0] == pair[1] else _size(pair)


def describe(key):
    """A short readable label of a layer key, e.g. '32x14x14 -> 64, k3x3 s1 p1'."""
    kind = key[0]
    if kind == "conv2d":
        _, item, out_channels, kernel, stride, padding, dilation = key
        text = (f"{_size(item)} -> {out_channels}, k{_size(kernel)} s{_short(stride)} "
                f"p{_short(padding)}")
        return text + (f" d{_short(dilation)}" if dilation != (1, 1) else "")
    if kind == "max_pool2d":
        _, item, kernel, stride, padding = key
        return f"{_size(item)}, k{_size(kernel)} s{_short(stride)} p{_short(padding)}"
    if _is_fused(kind):
        _, item, specs = key
        text = _size(item)
        if specs[0][0] == "Conv2d":
            _, _, out_channels, kernel, stride, padding, dilation = specs[0]
            text = describe(("conv2d", item, out_channels, kernel, stride, padding, dilation))
        inplace = any(spec == ("ReLU", True) for spec in specs)
        return text + (", ReLU in place" if inplace else "")
    if kind == "batch_norm":
        return _size(key[1])
    if kind == "linear":
        return f"{key[1]} -> {key[2]}"
    return str(key)
