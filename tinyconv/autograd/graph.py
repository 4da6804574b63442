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
        self.inputs = inputs  # tuple of Tensors (or None for non-tensor arguments)
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
