"""The recorded graph: a :class:`Node` per recorded call of an op, holding the op, its inputs and
the :class:`Context` in which its forward left what its backward needs.
"""

from __future__ import annotations


class Context:
    """What an :class:`ArrayFunction`'s ``forward`` leaves for ``backward``: saved arrays and
    any other attributes.

    ``recording`` is False when no backward will follow (under ``no_grad``, or no input
    requires a gradient): ``forward`` may then skip saving anything and take a cheaper route.
    """

    def __init__(self, needs_input_grad: tuple[bool, ...], recording: bool = True):
        self.needs_input_grad = needs_input_grad
        self.recording = recording
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


class InputRef:
    """What a :class:`Node` keeps of an input that another node made: its shape, dtype, the
    node that made it and which of that node's outputs it is; not its values.

    Keeping the input Tensor itself would keep its array alive as long as the graph: every
    intermediate result of a forward pass, even those no backward reads (the output of a
    convolution that a batch norm, which saves its own normalized copy, consumed). Those arrays
    are most of a network's memory: ResNet-18 at batch 32 kept about 770 MiB more than the ops
    save. Like PyTorch's graph, a node now holds only the arrays its op saved; a leaf (a
    parameter, an input tensor) is kept itself, since its ``.grad`` is filled at the end.
    """

    __slots__ = ("shape", "dtype", "grad_fn", "requires_grad", "_output_nr")

    def __init__(self, t):
        self.shape = t.shape
        self.dtype = t.dtype
        self.grad_fn = t.grad_fn
        self.requires_grad = t.requires_grad
        self._output_nr = getattr(t, "_output_nr", 0)

    @property
    def is_leaf(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<input {list(self.shape)}, dtype {self.dtype}, from {self.grad_fn!r}>"


class Node:
    """One recorded call of a Function: the graph is made of these.

    ``n_outputs`` is 1 except for the node of a custom :class:`Function` that returned several
    tensors: that node receives a list of gradients, one per output, each delivered through the
    output's own one-output node (see ``tinyconv/autograd/function.py``).
    """

    __slots__ = ("fn", "ctx", "inputs", "edges", "out_shape", "out_dtype", "saved_versions",
                 "hooks", "retained", "n_outputs", "__weakref__")

    def __init__(self, fn, ctx, inputs, out_shape, out_dtype, n_outputs=1):
        self.n_outputs = n_outputs
        self.fn = fn  # the ArrayFunction or Function subclass
        self.ctx = ctx
        # a leaf Tensor, an InputRef for the result of another node, or None (not a tensor)
        self.inputs = tuple(t if t is None or t.grad_fn is None else InputRef(t)
                            for t in inputs)
        # The node that made each input, fixed now: an in-place op may later give the input
        # tensor a new grad_fn, but this node's gradient belongs to the value it was given.
        self.edges = tuple(None if t is None else t.grad_fn for t in inputs)
        self.out_shape = out_shape
        self.out_dtype = out_dtype
        # (version counter, value when saved, what it is) for every saved array that is a
        # tensor's memory: backward refuses to run if an in-place op has changed one since.
        self.saved_versions = ()
        self.hooks = None  # the output tensor's register_hook functions, run on its gradient
        self.retained = None  # weak reference to the output tensor, if it called retain_grad()

    def name(self) -> str:
        return self.fn.__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"
