"""Optimizer base class: parameter groups, per-parameter state, state_dict in torch's layout."""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from tinyconv.tensor import Tensor


def check_range(name, value, low, high=None, *, low_open=False, high_open=False, what=None):
    """Raise ValueError unless ``value`` is a finite real number with low <= value <= high.

    ``low_open`` / ``high_open`` make an end exclusive (low < value, value < high); ``high=None``
    means no upper end. NaN fails every comparison, so NaN is refused as PyTorch's ``not 0.0 <= lr``
    refuses it (tinyconv also refuses infinity). The message names the argument and shows the
    value, e.g. ``Invalid learning rate: lr=nan (expected a finite number >= 0.0)``.
    """
    if high is None:
        expected = f"a finite number {'>' if low_open else '>='} {low}"
    else:
        expected = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value) and (low < value if low_open else low <= value)
          and (high is None or (value < high if high_open else value <= high)))
    if not ok:
        raise ValueError(f"Invalid {what or name + ' value'}: {name}={value!r} "
                         f"(expected {expected})")


class Optimizer:
    """Holds ``param_groups`` (lists of parameters with their hyper-parameters) and ``state``.

    Subclasses implement ``step()``; updates are done on the arrays directly, outside autograd.
    Every hyper-parameter is validated per group (``_check_group``), so a group added with its
    own ``lr`` is checked like the constructor's defaults. PyTorch's implementation flags
    (``foreach``, ``fused``, ``capturable``, ``differentiable``) are kept in the groups, as in
    torch's state_dict, but only their off values (False / None) are accepted.
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state: dict = {}  # Parameter -> dict of arrays / numbers
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Validate one group's hyper-parameters; subclasses add theirs (``super()`` first)."""
        check_range("lr", group["lr"], 0.0, what="learning rate")
        if "weight_decay" in group:
            check_range("weight_decay", group["weight_decay"], 0.0)
        for flag in ("foreach", "fused", "capturable", "differentiable"):
            if group.get(flag):
                raise ValueError(f"{flag}={group[flag]!r} is not supported by tinyconv (its "
                                 f"updates are plain NumPy on the CPU); pass {flag}=False or "
                                 f"leave it at its default")

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad._data[...] = 0

    def step(self, closure=None):
        raise NotImplementedError

    def _params_with_grad(self):
        """(group, parameter, gradient array) for every parameter that has a gradient.

        The caller updates each parameter in place, so its version counter is bumped: a graph
        that saved the old weights (``loss.backward(retain_graph=True)``, then ``step()``, then
        ``loss.backward()`` again) refuses to run backward with the new ones, as in torch.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p._version_counter.value += 1
                    yield group, p, p.grad._data

    # ----- state_dict: torch's layout, parameters referred to by their index ------------------

    def state_dict(self):
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state; every size is checked before anything changes."""
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if groups is None or "state" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with 'state' and "
                             "'param_groups' keys")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, this "
                             f"optimizer has {len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"loaded state dict contains a parameter group {i} of "
                                 f"{len(saved['params'])} parameters, which doesn't match the "
                                 f"size of the optimizer's group ({len(own['params'])})")
        by_index = {}
        for saved, own in zip(groups, self.param_groups, strict=True):
            by_index.update(zip(saved["params"], own["params"], strict=True))
        new_state = {}
        for key, values in state_dict["state"].items():
            key = int(key)
            if key not in by_index:
                raise ValueError(f"optimizer state refers to parameter {key}, which no "
                                 f"parameter group contains")
            p = by_index[key]
            entry = {}
            for name, v in values.items():
                if isinstance(v, (np.ndarray, Tensor)) or hasattr(v, "__array__"):
                    if isinstance(v, Tensor):
                        v = v._data
                    elif hasattr(v, "detach"):  # a torch tensor
                        v = v.detach().cpu().numpy()
                    arr = np.array(v)
                    if arr.ndim == 0:
                        entry[name] = float(arr)  # e.g. torch's 'step' tensor
                        continue
                    if arr.shape != tuple(p.shape):
                        raise ValueError(f"optimizer state '{name}' of parameter {key} has "
                                         f"shape {arr.shape}, the parameter has "
                                         f"{tuple(p.shape)}")
                    entry[name] = arr.astype(p.dtype)
                else:
                    entry[name] = v
            new_state[p] = entry
        self.state = new_state
        for saved, own in zip(groups, self.param_groups, strict=True):
            for k, v in saved.items():
                if k != "params":
                    own[k] = copy.deepcopy(v)

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"
