"""Build the PyTorch twin of a tinyconv model (``to_torch``) and back (``from_torch``).

How a module is converted, by kind:

- a supported layer (Conv2d, Linear, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d,
  AdaptiveAvgPool2d, Dropout, Dropout2d, Flatten, LogSoftmax, Softmax, Sigmoid, Tanh, Identity) is
  rebuilt from its constructor attributes (``in_channels``, ``kernel_size``, ``eps``, ...);
- a container (Sequential, ModuleList) is rebuilt from its converted children, names kept;
- a network with its own ``forward`` (the seed networks, or any user Module) becomes an instance
  of its twin class: the same-named class of ``parity/models.py`` (``tinyconv/models.py`` going
  back), or one registered with :func:`register_twin`. Without a registered twin, a twin class is
  made on the fly whose ``forward`` is the original's code with ``nn`` / ``F`` / ``tinyconv``
  rebound to ``torch.nn`` / ``torch.nn.functional`` / ``torch`` (which works for forwards written
  in PyTorch's idiom, as tinyconv's API is PyTorch's). The instance is not constructed by calling
  ``__init__`` (whose arguments are unknown) but assembled: plain attributes (``input_size``,
  ``n_feature``, ...) are copied, children converted and registered in the same order,
  parameters and buffers copied.

Anything else raises ``UnsupportedModuleError`` naming the module and its path in the model.
Weights and buffers are copied exactly (float32 -> float32 is bit for bit); the ``training``
flag is copied too. Building layers does not disturb either framework's global random state.
"""

from __future__ import annotations

import types
from collections import OrderedDict

import numpy as np
import torch

import tinyconv
import tinyconv.models
import tinyconv.nn.functional
from tinyconv import nn as tnn
from tinyconv.tensor import Tensor

from . import models as torch_models

__all__ = ["to_torch", "from_torch", "register_twin", "UnsupportedModuleError"]


class UnsupportedModuleError(TypeError):
    """A module that the converter does not know how to build in the other framework."""


_NP_TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
_TORCH_TO_NP = {v: k for k, v in _NP_TO_TORCH.items()}


def torch_dtype(dtype):
    """'float32' / np.float32 / torch.float32 -> torch.float32 (same for float64)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _NP_TO_TORCH[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise ValueError(f"unsupported dtype {dtype!r}: choose float32 or float64") from None


def numpy_dtype(dtype):
    if isinstance(dtype, torch.dtype):
        if dtype not in _TORCH_TO_NP:
            raise ValueError(f"unsupported dtype {dtype}: choose float32 or float64")
        return _TORCH_TO_NP[dtype]
    return _TORCH_TO_NP[torch_dtype(dtype)]


# ---------------------------------------------------------------------------------------------
# layers: name -> the constructor arguments to read from the source layer (same in both APIs)

_LAYER_ARGS = {
    "Linear": lambda m: dict(in_features=m.in_features, out_features=m.out_features,
                             bias=m.bias is not None),
    "Conv2d": lambda m: dict(in_channels=m.in_channels, out_channels=m.out_channels,
                             kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                             dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                             padding_mode=m.padding_mode),
    "BatchNorm1d": lambda m: _bn_args(m),
    "BatchNorm2d": lambda m: _bn_args(m),
    "ReLU": lambda m: dict(inplace=m.inplace),
    "MaxPool2d": lambda m: dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                dilation=m.dilation, return_indices=m.return_indices,
                                ceil_mode=m.ceil_mode),
    "AvgPool2d": lambda m: dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
                                divisor_override=m.divisor_override),
    "AdaptiveAvgPool2d": lambda m: dict(output_size=m.output_size),
    "Dropout": lambda m: dict(p=m.p, inplace=m.inplace),
    "Dropout2d": lambda m: dict(p=m.p, inplace=m.inplace),
    "Flatten": lambda m: dict(start_dim=m.start_dim, end_dim=m.end_dim),
    "LogSoftmax": lambda m: dict(dim=m.dim),
    "Softmax": lambda m: dict(dim=m.dim),
    "Sigmoid": lambda m: {},
    "Tanh": lambda m: {},
    "Identity": lambda m: {},
}
_CONTAINERS = ("Sequential", "ModuleList")


def _bn_args(m):
    return dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                track_running_stats=m.track_running_stats, bias=m.bias is not None or
                not m.affine)


# user networks: tinyconv class <-> torch class
_TWINS_TO_TORCH: dict[type, type] = {}
_TWINS_FROM_TORCH: dict[type, type] = {}


def register_twin(tiny_cls, torch_cls):
    """Declare that ``tiny_cls`` (a tinyconv Module) and ``torch_cls`` are the same network."""
    _TWINS_TO_TORCH[tiny_cls] = torch_cls
    _TWINS_FROM_TORCH[torch_cls] = tiny_cls


# every network of tinyconv/models.py with a same-named class in parity/models.py
for _name, _cls in vars(tinyconv.models).items():
    _twin = getattr(torch_models, _name, None)
    if (isinstance(_cls, type) and issubclass(_cls, tnn.Module) and isinstance(_twin, type)
            and issubclass(_twin, torch.nn.Module)):
        register_twin(_cls, _twin)


# ---------------------------------------------------------------------------------------------
# the two directions share one walk; ``side`` holds what differs


class _Side:
    """One framework: its namespaces, its networks' twins in the other one, tensor helpers."""

    def __init__(self, name, nn, module_base, twins, lib, functional, array, param, buffer):
        self.name, self.nn, self.module_base, self.twins = name, nn, module_base, twins
        self.lib, self.functional = lib, functional
        self.array, self.param, self.buffer = array, param, buffer  # tensor <-> ndarray


_TORCH = _Side("torch", torch.nn, torch.nn.Module, _TWINS_FROM_TORCH, torch, torch.nn.functional,
               array=lambda t: t.detach().cpu().numpy().copy(),
               param=lambda a, rg: torch.nn.Parameter(torch.from_numpy(a), requires_grad=rg),
               buffer=torch.from_numpy)
_TINY = _Side("tinyconv", tnn, tnn.Module, _TWINS_TO_TORCH, tinyconv, tinyconv.nn.functional,
              array=lambda t: np.array(t._data, copy=True),
              param=lambda a, rg: tnn.Parameter(a, requires_grad=rg),
              buffer=Tensor)
_AUTO_TWINS: dict[tuple[str, type], type] = {}


def _is_builtin_layer(module, source):
    """True when ``module``'s class is the framework's own layer (not a user subclass)."""
    cls = type(module)
    return getattr(source.nn, cls.__name__, None) is cls


def _convert(module, source, target, path):
    cls_name = type(module).__name__
    where = f"'{path}'" if path else "the model"
    if _is_builtin_layer(module, source) and cls_name in _LAYER_ARGS:
        return getattr(target.nn, cls_name)(**_LAYER_ARGS[cls_name](module))
    if _is_builtin_layer(module, source) and cls_name in _CONTAINERS:
        children = [(n, _convert(c, source, target, _join(path, n)))
                    for n, c in module.named_children()]
        if cls_name == "Sequential":
            return target.nn.Sequential(OrderedDict(children))
        return target.nn.ModuleList([c for _, c in children])
    if _is_builtin_layer(module, source) or type(module).forward is source.module_base.forward:
        raise UnsupportedModuleError(
            f"{cls_name} (at {where}) is not supported by parity's {source.name} -> "
            f"{target.name} converter; supported layers: {', '.join(sorted(_LAYER_ARGS))}, "
            f"containers: {', '.join(_CONTAINERS)}, and networks with their own forward")
    return _convert_network(module, source, target, path)


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _convert_network(module, source, target, path):
    """A network with its own forward: an instance of its twin class, assembled (not __init__)."""
    cls = type(module)
    twin_cls = source.twins.get(cls) or _auto_twin(cls, source, target)
    twin = twin_cls.__new__(twin_cls)
    target.module_base.__init__(twin)
    for key, value in vars(module).items():
        if not key.startswith("_") and key != "training" and not callable(value):
            setattr(twin, key, value)  # plain attributes: input_size, n_feature, ...
    for name, child in module.named_children():
        twin.add_module(name, _convert(child, source, target, _join(path, name)))
    # the network's own parameters and buffers (values are copied afterwards, like all others)
    for name, t in module._parameters.items():
        twin.register_parameter(name, None if t is None else target.param(
            source.array(t), t.requires_grad))
    for name, t in module._buffers.items():
        twin.register_buffer(name, None if t is None else target.buffer(source.array(t)),
                             persistent=name not in _non_persistent(module))
    return twin


def _non_persistent(module):
    return getattr(module, "_non_persistent", None) or getattr(
        module, "_non_persistent_buffers_set", set())


def _auto_twin(cls, source, target):
    """A twin class whose forward is ``cls.forward`` with the library names rebound."""
    key = (target.name, cls)
    if key in _AUTO_TWINS:
        return _AUTO_TWINS[key]
    fn = cls.forward
    rebind = {id(source.nn): target.nn, id(source.functional): target.functional,
              id(source.lib): target.lib}
    namespace = {k: rebind.get(id(v), v) for k, v in fn.__globals__.items()}
    forward = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__,
                                 fn.__closure__)
    twin_cls = type(cls.__name__, (target.module_base,), {
        "forward": forward, "__module__": __name__, "__qualname__": cls.__qualname__,
        "__doc__": f"{target.name} twin of {cls.__module__}.{cls.__qualname__} (made by parity)"})
    _AUTO_TWINS[key] = twin_cls
    return twin_cls


def _params_and_buffers(module):
    """Direct parameters and buffers of every submodule, by dotted name (None ones skipped)."""
    out = OrderedDict()
    for prefix, m in module.named_modules():
        for registry in (m._parameters, m._buffers):
            for name, t in registry.items():
                if t is not None:
                    out[_join(prefix, name)] = (m, name, registry is m._parameters, t)
    return out


# ---------------------------------------------------------------------------------------------
# public API


def to_torch(model, dtype=None, device=None):
    """The PyTorch twin of a tinyconv ``model``, with its weights, buffers and train/eval mode.

    ``dtype`` (float32 or float64, any spelling) defaults to the model's floating dtype;
    ``device`` defaults to the CPU.
    """
    if not isinstance(model, tnn.Module):
        raise TypeError(f"to_torch() expects a tinyconv.nn.Module, got {type(model).__name__}")
    rng_state = torch.get_rng_state()  # layer constructors draw initial weights: put it back
    try:
        twin = _convert(model, _TINY, _TORCH, "")
    finally:
        torch.set_rng_state(rng_state)
    _copy_state(model, twin, _TINY, _TORCH, None if dtype is None else numpy_dtype(dtype))
    return twin if device is None else twin.to(device)


def from_torch(module, dtype=None):
    """The tinyconv twin of a PyTorch ``module`` (on any device): weights, buffers and mode.

    ``dtype`` defaults to the module's own floating dtype.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch() expects a torch.nn.Module, got {type(module).__name__}")
    rng_state = tinyconv.get_rng_state()  # layer constructors draw initial weights
    try:
        twin = _convert(module, _TORCH, _TINY, "")
    finally:
        tinyconv.set_rng_state(rng_state)
    _copy_state(module, twin, _TORCH, _TINY, None if dtype is None else numpy_dtype(dtype))
    return twin


def _copy_state(src_model, dst_model, source, target, dtype):
    """Replace every parameter and buffer of ``dst_model`` by a copy of its source's value."""
    src, dst = _params_and_buffers(src_model), _params_and_buffers(dst_model)
    if list(src) != list(dst):
        raise UnsupportedModuleError(
            f"{type(src_model).__name__}: the {target.name} twin's parameters and buffers "
            f"{list(dst)} differ from the source's {list(src)}")
    floating = [source.array(t).dtype for (_, _, _, t) in src.values()]
    floating = [d for d in floating if d.kind == "f"]
    dtype = dtype if dtype is not None else (floating[0] if floating else np.dtype(np.float32))
    for key, (_, name, is_param, t) in src.items():
        arr = source.array(t)
        if arr.dtype.kind == "f":
            arr = arr.astype(dtype, copy=False)
        owner = dst[key][0]
        if is_param:
            owner._parameters[name] = target.param(arr, t.requires_grad)
        else:
            owner._buffers[name] = target.buffer(arr)
    for (_, a), (_, b) in zip(src_model.named_modules(), dst_model.named_modules(), strict=True):
        b.training = a.training
