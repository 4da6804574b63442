"""Containers: Sequential and ModuleList."""

from __future__ import annotations

from collections import OrderedDict

from tinyconv.nn.fusion import try_fused
from tinyconv.nn.modules.module import Module


class Sequential(Module):
    """Calls its children in order; they are named '0', '1', ... (or by an OrderedDict)."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, "
                                    f"not a Module")
                self.add_module(str(i), module)

    def forward(self, input):  # noqa: A002
        # Some runs of modules are computed as one fused op (same results, fewer passes over
        # memory): see tinyconv/nn/fusion.py.
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            fused = try_fused(modules, i, input)
            if fused is not None:
                input, count = fused  # noqa: A001
                i += count
            else:
                input, i = modules[i](input), i + 1  # noqa: A001
        return input

    def _key(self, idx):
        """The name of the child at position ``idx`` (negative counts from the end)."""
        keys = list(self._modules)
        if not -len(keys) <= idx < len(keys):
            raise IndexError(f"index {idx} is out of range for a Sequential of {len(keys)}")
        return keys[idx]

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(idx)]

    def __setitem__(self, idx, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: can only hold Modules, got a {type(module).__name__}")
        self.add_module(self._key(idx), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        for module in modules or []:
            self.append(module)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return list(self._modules.values())[idx]

    def __setitem__(self, idx, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: can only hold Modules, got a {type(module).__name__}")
        keys = list(self._modules)
        if not -len(keys) <= idx < len(keys):
            raise IndexError(f"index {idx} is out of range for a Sequential of {len(keys)}")
        self.add_module(keys[idx], module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self
