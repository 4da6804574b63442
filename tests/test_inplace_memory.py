"""What a recorded graph keeps alive (issue #20: ResNet-18's training memory).

* A node holds the arrays its op saved, not its input tensors (tinyconv/autograd/graph.py,
  InputRef): an intermediate result that no backward reads is freed as soon as the forward
  pass drops it.
* An in-place op of one step (``relu_``, ``+=``) reads and saves the tensor's own memory, as
  PyTorch does, instead of a snapshot and a second copy of its result
  (Tensor._write_one_op in tinyconv/tensor_inplace.py); a later in-place change of that memory
  is still refused in backward.
* No reference cycle keeps a graph alive until Python's cycle collector runs
  (tinyconv/autograd/version.py, _entry).

The oracle is PyTorch on the same program; its saved bytes come from saved_tensors_hooks.
"""

import gc
import weakref

import numpy as np
import pytest
import torch
import torchvision

import tinyconv
from tinyconv.autograd.engine import _topological_order
from tinyconv.vision.models.resnet import BasicBlock

VERSION_ERROR = "modified by an inplace operation"


def _conv_bn_relu(lib, x, w1, gamma, beta, w2, change=None):
    """conv -> batch norm (training) -> ReLU(inplace=True) -> conv, as in a ResNet block."""
    F = lib.nn.functional
    h = F.batch_norm(F.conv2d(x, w1, padding=1), None, None, gamma, beta, training=True)
    r = F.relu(h, inplace=True)
    assert r is h  # in place: the same tensor
    if change is not None:
        change(r)
    return r, F.conv2d(r, w2, padding=1)


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in [(2, 3, 6, 6), (4, 3, 3, 3), (4,), (4,), (5, 4, 3, 3)]]


def test_inplace_relu_of_batch_norm_output_matches_torch():
    values = {}
    for lib in (tinyconv, torch):
        leaves = [lib.tensor(a, requires_grad=True) for a in _arrays()]
        r, out = _conv_bn_relu(lib, *leaves)
        (out * out).sum().backward()
        values[lib] = [r.detach().numpy()] + [t.grad.numpy() for t in leaves]
    for mine, theirs in zip(values[tinyconv], values[torch], strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_inplace_relu_saves_the_tensor_memory_itself():
    x, w1, gamma, beta, w2 = [tinyconv.tensor(a, requires_grad=True) for a in _arrays()]
    r, out = _conv_bn_relu(tinyconv, x, w1, gamma, beta, w2)
    node = r.grad_fn
    assert node.name() == "ReLUBackward"
    (saved,) = node.ctx.saved_tensors
    assert saved is r._data  # not a second array with the same values
    assert [e[-1] for e in node.saved_versions] == ["output 0"]
    # the batch norm's node keeps its normalized input, not the output it handed to ReLU
    bn = node.edges[0]
    assert bn.name() == "BatchNormBackward"
    assert not any(np.shares_memory(a, r._data) for a in bn.ctx.saved_tensors
                   if isinstance(a, np.ndarray))


@pytest.mark.parametrize("change", [lambda r: r.add_(1), lambda r: r.mul_(2),
                                    lambda r: r.__setitem__(0, 5.0), lambda r: r[1:].zero_()],
                         ids=["add_", "mul_", "setitem", "view_zero_"])
def test_a_later_change_of_the_relu_output_is_refused_like_torch(change):
    for lib in (torch, tinyconv):
        leaves = [lib.tensor(a, requires_grad=True) for a in _arrays()]
        _, out = _conv_bn_relu(lib, *leaves, change=change)
        with pytest.raises(RuntimeError, match=VERSION_ERROR):
            out.sum().backward()


def test_an_op_that_saves_the_old_value_keeps_a_copy_of_it():
    """log_ saves its input (the old value): that one copy is still made, so the gradient is
    right although the tensor was overwritten (PyTorch refuses this program instead)."""
    x = tinyconv.tensor([1.0, 2.0, 4.0], requires_grad=True)
    y = x * 1.0
    y.log_()
    (saved,) = y.grad_fn.ctx.saved_tensors
    assert not np.shares_memory(saved, y._data)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 0.5, 0.25], rtol=1e-15)


def _tinyconv_graph_bytes(out, exclude):
    """Bytes of the distinct memory blocks the graph of ``out`` keeps: saved arrays, arrays
    kept as ctx attributes, and any input tensors a node holds (leaves ``exclude``d)."""
    seen = {id(a) for a in exclude}
    total = 0
    for node in _topological_order(out.grad_fn):
        arrays = [a for a in node.ctx.saved_tensors if isinstance(a, np.ndarray)]
        arrays += [v for v in vars(node.ctx).values() if isinstance(v, np.ndarray)]
        arrays += [t._data for t in node.inputs if hasattr(t, "_data")]
        for a in arrays:
            while isinstance(a.base, np.ndarray):
                a = a.base
            if id(a) not in seen:
                seen.add(id(a))
                total += a.nbytes
    return total


def _torch_saved_bytes(run, exclude):
    blocks = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in exclude:
            blocks[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(blocks.values())


def test_basic_block_keeps_no_more_than_torch_saves():
    """A ResNet BasicBlock with a downsampling shortcut, float32: the bytes its graph keeps
    after forward. Before issue #20 tinyconv kept 2.5x torch's (each batch norm's input, the
    snapshots of the in-place ReLU and +=, a copy of each ReLU output)."""
    tinyconv.manual_seed(0)
    down = tinyconv.nn.Sequential(tinyconv.nn.Conv2d(8, 16, 1, stride=2, bias=False),
                                  tinyconv.nn.BatchNorm2d(16))
    block = BasicBlock(8, 16, stride=2, downsample=down)
    tdown = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1, stride=2, bias=False),
                                torch.nn.BatchNorm2d(16))
    tblock = torchvision.models.resnet.BasicBlock(8, 16, stride=2, downsample=tdown)
    tblock.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in block.state_dict().items()})
    x0 = np.random.default_rng(0).standard_normal((4, 8, 16, 16)).astype(np.float32)
    x = tinyconv.tensor(x0, requires_grad=True)
    out = block(x)
    mine = _tinyconv_graph_bytes(out, [p._data for p in block.parameters()] + [x._data])
    tx = torch.tensor(x0, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in tblock.parameters()}
    params.add(tx.untyped_storage().data_ptr())
    tout = []
    theirs = _torch_saved_bytes(lambda: tout.append(tblock(tx)), params)
    np.testing.assert_allclose(out.detach().numpy(), tout[0].detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    # four arrays of the block's output size (each batch norm's normalized input and each
    # ReLU's output) and the shortcut's normalized input, plus per-channel statistics
    activation = 4 * 16 * 8 * 8 * 4
    assert mine <= theirs, (mine, theirs)
    assert 5 * activation <= mine < 5 * activation + 1024, mine


def test_graph_of_an_intermediate_result_frees_what_backward_does_not_read():
    x = tinyconv.tensor(np.ones((3, 4)), requires_grad=True)
    h = x * 2.0  # Mul by a number saves nothing of x * 2
    seen = weakref.ref(h._data)
    y = h.sum()
    del h
    assert seen() is None  # the Sum node does not hold its input tensor
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 2.0))


@pytest.mark.parametrize("backward", [True, False], ids=["after_backward", "never_backward"])
def test_a_finished_graph_is_freed_without_the_cycle_collector(backward):
    """Nodes whose op saved its output (ReLU, Exp), in place or not, and a block of a ResNet:
    once the last tensor is dropped, every node and saved array goes at once, whether backward
    ran or not (before, each such node and its output tensor formed a reference cycle)."""
    tinyconv.manual_seed(0)
    block = BasicBlock(4, 4)
    x0 = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    x = tinyconv.tensor(x0, requires_grad=True)
    gc.disable()
    try:
        h = block(x).exp() - 1.5
        h.relu_()
        out = h.relu().sum()
        nodes = [weakref.ref(n) for n in _topological_order(out.grad_fn)]
        arrays = [weakref.ref(a) for n in _topological_order(out.grad_fn)
                  for a in n.ctx.saved_tensors if isinstance(a, np.ndarray)]
        assert len(nodes) > 10 and len(arrays) > 10
        if backward:
            out.backward()
        del h, out
        assert [r for r in nodes if r() is not None] == []
        kept = [x._data] + [p._data for p in block.parameters()]  # still the caller's
        assert [r for r in arrays if r() is not None and not any(r() is a for a in kept)] == []
    finally:
        gc.enable()
