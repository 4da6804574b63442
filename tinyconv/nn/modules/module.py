"""Module and Parameter, with torch's bookkeeping: parameters, buffers, children, state_dict.

Assigning a Parameter, a Module or (through ``register_buffer``) a buffer to an attribute
registers it under that attribute's name; ``state_dict()`` lists parameters and buffers under
dotted paths (``layer1.0.weight``, ``layer1.1.running_mean``), exactly torch's keys, so weights
move between the two frameworks key for key.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Iterator

import numpy as np

from tinyconv.autograd import ArrayFunction, is_grad_enabled
from tinyconv.errors import ShapeError
from tinyconv.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a module's learnable parameter (requires_grad=True by default)."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data._data if isinstance(data, Tensor) else data)
        self.requires_grad = requires_grad

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (f"_IncompatibleKeys(missing_keys={self.missing_keys}, "
                f"unexpected_keys={self.unexpected_keys})")


class Module:
    """Base class of all layers and networks; subclasses define ``forward``."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required "
                                  f"\"forward\" function")

    # Hook registries live in the instance's __dict__ once a hook is registered; None here
    # keeps a module without hooks on the fast path (one check per call).
    _forward_pre_hooks = _forward_hooks = _backward_pre_hooks = _backward_hooks = None

    def __call__(self, *args, **kwargs):
        if not self._has_hooks():
            return self.forward(*args, **kwargs)
        return _call_with_hooks(self, args, kwargs)

    def _has_hooks(self):
        return bool(self._forward_pre_hooks or self._forward_hooks or self._backward_pre_hooks
                     or self._backward_hooks)

    def _add_hook(self, registry, hook):
        from tinyconv.utils.hooks import RemovableHandle

        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.get(registry)
        if hooks is None:
            hooks = OrderedDict()
            object.__setattr__(self, registry, hooks)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` runs before ``forward``; it may return new args (a tuple, or
        one value standing for a 1-tuple)."""
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` runs after ``forward``; it may return a new output.
        The usual way to look at a layer's feature maps (see examples/feature_maps.py)."""
        return self._add_hook("_forward_hooks", hook)

    def register_full_backward_pre_hook(self, hook):
        """``hook(module, grad_output)`` runs when the gradient of the module's output is known;
        it may return a new grad_output (a tuple)."""
        return self._add_hook("_backward_pre_hooks", hook)

    def register_full_backward_hook(self, hook):
        """``hook(module, grad_input, grad_output)`` runs when the gradients of the module's
        tensor inputs are known (each None where that input needs no gradient); it may return
        a new grad_input (a tuple)."""
        return self._add_hook("_backward_hooks", hook)

    # ----- registration ------------------------------------------------------------------------

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign to a Module before Module.__init__() is called "
                                 "(call super().__init__() first)")
        params, modules, buffers = self._parameters, self._modules, self._buffers
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in params or name in modules:
            if value is not None:  # e.g. `self.bias = None` is allowed, a stray array is not
                kind = "parameter" if name in params else "child module"
                raise TypeError(f"cannot assign '{type(value).__name__}' as {kind} '{name}' "
                                f"(a {'Parameter' if name in params else 'Module'} or None "
                                f"expected)")
            (params if name in params else modules)[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(tinyconv.Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the registries.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (tinyconv.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer "
                            f"'{name}' (tinyconv.Tensor or None required)")
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module

    register_module = add_module

    # ----- traversal ---------------------------------------------------------------------------

    def named_modules(self, memo=None, prefix=""):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix="", recurse=True) -> Iterator[tuple[str, Parameter]]:
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield mod_prefix + ("." if mod_prefix else "") + name, p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, b in module._buffers.items():
                if b is not None:
                    yield mod_prefix + ("." if mod_prefix else "") + name, b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----- modes and gradients ---------------------------------------------------------------

    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad._data[...] = 0

    # ----- dtype / device ----------------------------------------------------------------------

    def _cast(self, dtype):
        for m in self.modules():
            for registry in (m._parameters, m._buffers):
                for key, t in registry.items():
                    if t is not None and t.dtype.kind == "f" and t.dtype != dtype:
                        t._data = t._data.astype(dtype)
                        if t.grad is not None:
                            t.grad._data = t.grad._data.astype(dtype)
        return self

    def to(self, *args, **kwargs):
        """``to('cpu')`` is accepted; ``to(dtype)`` casts floating parameters and buffers."""
        from tinyconv._devices import device, require_cpu
        dtype = kwargs.get("dtype")
        for a in list(args) + ([kwargs["device"]] if "device" in kwargs else []):
            if isinstance(a, (str, device, int)) and not isinstance(a, bool):
                require_cpu(a, "a module")
            else:
                dtype = a
        return self._cast(np.dtype(dtype)) if dtype is not None else self

    def float(self):
        return self._cast(np.dtype(np.float32))

    def double(self):
        return self._cast(np.dtype(np.float64))

    def cpu(self):
        return self

    def cuda(self, device=None):  # noqa: A002
        from tinyconv._devices import require_cpu
        require_cpu("cuda" if device is None else device, "a module")

    # ----- state_dict --------------------------------------------------------------------------

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """OrderedDict of parameter and persistent buffer tensors under torch's dotted keys."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (tinyconv Tensors, NumPy arrays or CPU torch tensors) into this module.

        Every key is checked before anything is copied, so a failed load changes nothing.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors, staged = [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            arr = value._data if isinstance(value, Tensor) else _to_numpy(value, key)
            if tuple(arr.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{tuple(arr.shape)} from checkpoint, the shape in current model "
                              f"is {tuple(target.shape)}.")
                continue
            staged.append((target, arr))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise ShapeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                             + "\n\t".join(errors))
        for target, arr in staged:
            target._data[...] = arr.astype(target.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ----- printing ----------------------------------------------------------------------------

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        main = type(self).__name__ + "("
        if not lines:
            return main + ")"
        if len(lines) == 1 and not self._modules:
            return main + lines[0] + ")"
        return main + "\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(object.__dir__(self)) | set(self._parameters) | set(self._modules)
                      | set(self._buffers))


def _to_numpy(value, key):
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    except Exception as exc:  # noqa: BLE001 - report any conversion failure the same way
        raise TypeError(f"load_state_dict(): value for key {key!r} of type "
                        f"{type(value).__name__} cannot be read as an array ({exc})") from None
    if arr.dtype == object:
        raise TypeError(f"load_state_dict(): value for key {key!r} is not a numeric array")
    return arr


# ---------------------------------------------------------------------------------------------
# calling a module that has hooks


def _call_with_hooks(module, args, kwargs):
    for hook in list((module._forward_pre_hooks or {}).values()):
        new = hook(module, args)
        if new is not None:
            args = new if isinstance(new, tuple) else (new,)
    backward_hooks = bool(module._backward_hooks or module._backward_pre_hooks)
    state = None
    if backward_hooks and is_grad_enabled():
        state = _BackwardHookState(module, args)
        args = state.wrap_inputs(args)
    output = module.forward(*args, **kwargs)
    for hook in list((module._forward_hooks or {}).values()):
        new = hook(module, args, output)
        if new is not None:
            output = new
    if state is not None:
        output = state.wrap_output(output)
    return output


class _BackwardHookState:
    """Identity ops around a module's tensor inputs and output: the output's receives
    grad_output, the inputs' receive grad_input, and the module's backward hooks run there."""

    def __init__(self, module, args):
        self.module = module
        self.grad_output = None
        self.positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.grad_input = [None] * len(self.positions)
        self.pending = 0

    def wrap_inputs(self, args):
        args = list(args)
        for k, i in enumerate(self.positions):
            if args[i].requires_grad:
                self.pending += 1
                args[i] = _HookedInput.apply(args[i], self, k)
        return tuple(args)

    def wrap_output(self, output):
        if isinstance(output, Tensor) and output.requires_grad:
            return _HookedOutput.apply(output, self)
        return output

    def on_grad_output(self, gy):
        grad_output = (Tensor._wrap(gy),)
        for hook in list((self.module._backward_pre_hooks or {}).values()):
            new = hook(self.module, grad_output)
            if new is not None:
                grad_output = tuple(new) if isinstance(new, (tuple, list)) else (new,)
        self.grad_output = grad_output
        if self.pending == 0:  # no input needs a gradient: the hooks run now, with None
            self._run_hooks()
        return grad_output[0]._data

    def on_grad_input(self, k, g):
        self.grad_input[k] = Tensor._wrap(g)
        self.pending -= 1
        if self.pending == 0:
            return self._run_hooks()[k]
        return self.grad_input[k]

    def _run_hooks(self):
        grad_input = tuple(self.grad_input)
        for hook in list((self.module._backward_hooks or {}).values()):
            new = hook(self.module, grad_input, self.grad_output)
            if new is not None:
                new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
                if len(new) != len(grad_input):
                    raise RuntimeError(f"backward hook returned {len(new)} gradients; the "
                                       f"module has {len(grad_input)} tensor inputs")
                grad_input = new
        self.grad_input = list(grad_input)
        return grad_input


class _HookedOutput(ArrayFunction):
    @staticmethod
    def forward(ctx, a, state):
        ctx.state = state
        return a.view()

    @staticmethod
    def backward(ctx, gy):
        return ctx.state.on_grad_output(gy)


class _HookedInput(ArrayFunction):
    @staticmethod
    def forward(ctx, a, state, k):
        ctx.state, ctx.k = state, k
        return a.view()

    @staticmethod
    def backward(ctx, gy):
        g = ctx.state.on_grad_input(ctx.k, gy)
        return None if g is None else (g._data if isinstance(g, Tensor) else g)
