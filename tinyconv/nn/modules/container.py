"""Containers: Sequential and ModuleList."""

from __future__ import annotations

from collections import OrderedDict

# NOTE: the module, not the name: nn/fusion.py imports the layer classes, so either may be
# loaded first (Python finds the partly loaded module), and there is no import inside a function.
from tinyconv.nn import fusion
from tinyconv.nn.modules.module import Module


class _ModuleSequence(Module):
    """Children named '0', '1', ... (or by an OrderedDict for Sequential), reached by position.

    The indexing shared by Sequential and ModuleList; error messages name the container's class.
    """

    def _key(self, idx):
        """The name of the child at position ``idx`` (negative counts from the end)."""
        keys = list(self._modules)
        if not -len(keys) <= idx < len(keys):
            raise IndexError(f"index {idx} is out of range for a {type(self).__name__} of "
                             f"{len(keys)}")
        return keys[idx]

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self._slice(idx)
        return self._modules[self._key(idx)]

    def __setitem__(self, idx, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: can only hold Modules, got a "
                            f"{type(module).__name__}")
        self.add_module(self._key(idx), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class Sequential(_ModuleSequence):
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
            fused = fusion.try_fused(modules, i, input)
            if fused is not None:
                input, count = fused  # noqa: A001
                i += count
            else:
                input, i = modules[i](input), i + 1  # noqa: A001
        return input

    def _slice(self, idx):  # keeps the children's names
        return Sequential(OrderedDict(list(self._modules.items())[idx]))


class ModuleList(_ModuleSequence):
    """Holds modules in a list (registered as children, so their parameters are found); it has
    no forward: the owner calls them."""

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or []:
            self.append(module)

    def _slice(self, idx):  # renumbers the children from 0
        return ModuleList(list(self._modules.values())[idx])
