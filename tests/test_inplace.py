"""In-place operations inside a graph: recorded so that gradients are right, or refused with
PyTorch's version-counter error when backward would need the overwritten values.

The oracle for "right" is PyTorch running the same program with a clone() before each in-place
op: nothing saved is ever overwritten there, so its gradients are the true ones.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyconv
from tinyconv import nn

VERSION_ERROR = "modified by an inplace operation"


def _grads(lib, program, x0, w0):
    x = lib.tensor(x0, requires_grad=True)
    w = lib.tensor(w0, requires_grad=True)
    loss = program(lib, x, w)
    loss.backward()
    return [None if t.grad is None else np.array(t.grad.detach().numpy()) for t in (x, w)]


def _outcome(lib, program, x0, w0):
    try:
        return "ok", _grads(lib, program, x0, w0)
    except RuntimeError as e:
        return "error", str(e)


# ---------------------------------------------------------------------------------------------
# the cases found by probing main (issue #16)


def test_mul_on_linear_output_gives_torch_gradient():
    for lib in (tinyconv, torch):
        lib.manual_seed(0)
    fc, tfc = nn.Linear(3, 4), torch.nn.Linear(3, 4)
    h = fc(tinyconv.ones(4, 3))
    h.mul_(0.5)
    h.sum().backward()
    th = tfc(torch.ones(4, 3))
    th.mul_(0.5)
    th.sum().backward()
    np.testing.assert_array_equal(fc.weight.grad.numpy(), tfc.weight.grad.numpy())
    np.testing.assert_array_equal(fc.weight.grad.numpy()[0], [2.0, 2.0, 2.0])


@pytest.mark.parametrize("make", [
    lambda lib, x: x.exp(),
    lambda lib, x: x.sigmoid(),
    lambda lib, x: x.tanh(),
    lambda lib, x: lib.relu(x),
    lambda lib, x: x.sqrt(),
])
@pytest.mark.parametrize("change", [
    lambda y: y.add_(1), lambda y: y.mul_(2), lambda y: y.__setitem__(0, 5.0),
    lambda y: y[1:].mul_(3), lambda y: y.view(-1).add_(1), lambda y: y.zero_(),
])
def test_changing_a_saved_output_raises_like_torch(make, change):
    x0 = np.array([0.5, 1.5, 2.0], dtype=np.float32)
    for lib in (torch, tinyconv):
        x = lib.tensor(x0, requires_grad=True)
        y = make(lib, x)
        change(y)
        with pytest.raises(RuntimeError, match=VERSION_ERROR):
            y.sum().backward()


def test_setitem_on_non_leaf_is_recorded():
    for lib in (torch, tinyconv):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        y[0] = 5.0
        y.sum().backward()
        np.testing.assert_array_equal(np.asarray(x.grad.detach().numpy()), [0.0, 2.0])


def test_setitem_with_a_tensor_that_requires_grad():
    x0, w0 = np.arange(6, dtype=np.float64).reshape(2, 3), np.array([7.0, 8.0, 9.0])

    def program(lib, x, w):
        y = x * 3
        y[1] = w * w
        return (y * y).sum()

    for a, b in zip(_grads(torch, program, x0, w0), _grads(tinyconv, program, x0, w0)):
        np.testing.assert_allclose(b, a, rtol=1e-12)


def test_leaf_and_view_of_leaf_are_refused():
    x = tinyconv.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x[0] = 2.0
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        x[1:].mul_(2)
    with tinyconv.no_grad():
        x.add_(1)  # optimizers do this
    np.testing.assert_array_equal(x.detach().numpy(), [2, 2, 2])


def test_version_counter_is_shared_with_views_and_detach():
    y = tinyconv.zeros(2, 3)
    v, d = y[0], y.detach()
    assert y._version == 0
    v.add_(1)
    assert y._version == v._version == d._version == 1
    d.mul_(2)
    assert y._version == 2
    np.testing.assert_array_equal(y.numpy()[0], [2, 2, 2])


def test_optimizer_style_update_does_not_break_the_graph_it_is_not_in():
    w = nn.Parameter(tinyconv.ones(3))
    (w * 2).sum().backward()
    with tinyconv.no_grad():
        w -= 0.1 * w.grad
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 0.8, 0.8], rtol=1e-6)
    assert w.is_leaf and w.requires_grad


def test_integer_tensor_refuses_a_float_in_place_like_torch():
    for lib in (torch, tinyconv):
        t = lib.tensor([1, 2, 3])
        with pytest.raises((RuntimeError, TypeError)):
            t.mul_(1.5)


def test_inplace_on_expanded_tensor_is_refused():
    x = tinyconv.zeros(1, 3).expand(2, 3)
    with pytest.raises(RuntimeError, match="read-only"):
        x.add_(1)


# ---------------------------------------------------------------------------------------------
# every in-place method, against torch (grads, or the same refusal)

METHODS = {
    "add_": lambda y, w: y.add_(w, alpha=2), "sub_": lambda y, w: y.sub_(w),
    "mul_": lambda y, w: y.mul_(w), "div_": lambda y, w: y.div_(w + 3),
    "pow_": lambda y, w: y.pow_(2), "neg_": lambda y, w: y.neg_(),
    "abs_": lambda y, w: y.abs_(), "exp_": lambda y, w: y.exp_(),
    "log_": lambda y, w: (y.abs_(), y.add_(1), y.log_()), "sqrt_": lambda y, w: (y.abs_(),
                                                                                y.sqrt_()),
    "relu_": lambda y, w: y.relu_(), "sigmoid_": lambda y, w: y.sigmoid_(),
    "tanh_": lambda y, w: y.tanh_(), "clamp_": lambda y, w: y.clamp_(-0.5, 0.5),
    "zero_": lambda y, w: y.zero_(), "fill_": lambda y, w: y.fill_(3.0),
    "copy_": lambda y, w: y.copy_(w), "masked_fill_": lambda y, w: y.masked_fill_(w > 0, 1.0),
    "iadd": lambda y, w: y.__iadd__(w), "isub": lambda y, w: y.__isub__(w),
    "imul": lambda y, w: y.__imul__(w), "itruediv": lambda y, w: y.__itruediv__(w + 3),
    "setitem": lambda y, w: y.__setitem__((slice(None), 1), w[:, 0]),
    "view_mul_": lambda y, w: y[1].mul_(w[0]), "reshape_add_": lambda y, w: y.view(-1).add_(1),
    "transpose_mul_": lambda y, w: y.t().mul_(2),
}


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("before", ["mul", "add", "exp"])
def test_every_inplace_method_matches_torch(name, before):
    rng = np.random.default_rng(1)
    x0, w0 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    pre = {"mul": lambda x, w: x * w, "add": lambda x, w: x + 1, "exp": lambda x, w: x.exp()}

    def program(lib, x, w, clone=False):
        y = pre[before](x, w)
        kept = y * 1.0
        if clone:
            y = y.clone()
        METHODS[name](y, w)
        return (y * y).sum() + (kept * 3).sum()

    t_status, t_result = _outcome(torch, program, x0, w0)
    status, result = _outcome(tinyconv, program, x0, w0)
    truth = _grads(torch, lambda lib, x, w: program(lib, x, w, clone=True), x0, w0)
    if status == "error":
        assert VERSION_ERROR in result
        assert t_status == "error", f"tinyconv refused where torch computed: {result}"
    else:
        for mine, right in zip(result, truth):
            if right is None:
                assert mine is None or not mine.any()
            else:
                np.testing.assert_allclose(mine, right, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# random programs mixing out-of-place ops, views, kept references and in-place changes

OUT_OF_PLACE = ["exp", "tanh", "sigmoid", "relu", "mulc", "addc", "mulw", "keep"]
IN_PLACE = ["add_", "mul_", "mulw_", "clamp_", "relu_", "sigmoid_", "exp_", "setitem",
            "setitem_w", "view_mul_", "view_add_w", "flat_add_"]


def _apply(lib, step, state, w):
    name, c, i = step
    y = state["y"]
    if name == "exp":
        state["y"] = (y * 0.3).exp()
    elif name in ("tanh", "sigmoid"):
        state["y"] = getattr(y, name)()
    elif name == "relu":
        state["y"] = lib.relu(y)
    elif name == "mulc":
        state["y"] = y * c
    elif name == "addc":
        state["y"] = y + c
    elif name == "mulw":
        state["y"] = y * w
    elif name == "keep":
        state["kept"].append(y)
    elif name == "add_":
        y.add_(c)
    elif name == "mul_":
        y.mul_(c)
    elif name == "mulw_":
        y.mul_(w)
    elif name == "clamp_":
        y.clamp_(-abs(c), abs(c))
    elif name == "relu_":
        y.relu_()
    elif name == "sigmoid_":
        y.sigmoid_()
    elif name == "exp_":
        y.mul_(0.3).exp_()
    elif name == "setitem":
        y[i % 3] = c
    elif name == "setitem_w":
        y[:, i % 4] = w[:, 0] * c
    elif name == "view_mul_":
        y[i % 3].mul_(c)
    elif name == "view_add_w":
        y[:, 1:3].add_(w[:, :2])
    elif name == "flat_add_":
        y.view(-1)[i % 12].add_(c)


def _random_program(steps, clone_before_inplace):
    def program(lib, x, w):
        state = {"y": x * 1.0, "kept": []}
        for step in steps:
            if clone_before_inplace and step[0] in IN_PLACE:
                # clone everything, keeping which names refer to the same tensor
                clones = {}
                state["y"] = clones.setdefault(id(state["y"]), state["y"].clone())
                state["kept"] = [clones.setdefault(id(k), k.clone()) for k in state["kept"]]
            _apply(lib, step, state, w)
        loss = (state["y"] * state["y"]).sum()
        for k in state["kept"]:
            loss = loss + (k * 2).sum()
        return loss
    return program


STEP = st.tuples(st.sampled_from(OUT_OF_PLACE + IN_PLACE),
                 st.floats(-2, 2, allow_nan=False).filter(lambda v: abs(v) > 0.1),
                 st.integers(0, 11))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=7), seed=st.integers(0, 2**16))
def test_random_programs_give_true_gradients_or_torchs_refusal(steps, seed):
    rng = np.random.default_rng(seed)
    x0, w0 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    program = _random_program(steps, clone_before_inplace=False)
    t_status, _ = _outcome(torch, program, x0, w0)
    status, result = _outcome(tinyconv, program, x0, w0)
    if status == "error":
        assert VERSION_ERROR in result, result
        assert t_status == "error", f"tinyconv refused where torch computed: {result}"
        return
    truth = _grads(torch, _random_program(steps, clone_before_inplace=True), x0, w0)
    for mine, right in zip(result, truth):
        if right is None:
            assert mine is None or not mine.any()
        else:
            np.testing.assert_allclose(mine, right, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# hooks, retain_grad, autograd.grad


def test_tensor_hooks_match_torch():
    seen = {}
    for lib in (torch, tinyconv):
        x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = x * x
        y.retain_grad()
        hy = y.register_hook(lambda g: g * 10)   # replaces the gradient of y
        hx = x.register_hook(lambda g, lib=lib: seen.setdefault(lib.__name__, g.clone()))
        (y * 2).sum().backward()
        seen[lib.__name__ + ".x"] = np.array(x.grad.detach().numpy())
        seen[lib.__name__ + ".y"] = np.array(y.grad.detach().numpy())
        hy.remove()
        hx.remove()
        x.grad = None
        (x * x * 2).sum().backward()
        seen[lib.__name__ + ".after"] = np.array(x.grad.detach().numpy())
    for key in ("x", "y", "after"):
        np.testing.assert_array_equal(seen["tinyconv." + key], seen["torch." + key])
    np.testing.assert_array_equal(np.asarray(seen["tinyconv"].detach().numpy()),
                                  seen["torch"].numpy())


def test_retain_grad_follows_an_inplace_change_like_torch():
    out = {}
    for lib in (torch, tinyconv):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        y.retain_grad()
        y.mul_(2)
        (y * y).sum().backward()
        out[lib.__name__] = (np.array(x.grad.numpy()), np.array(y.grad.numpy()), y.retains_grad)
    assert out["tinyconv"][2] == out["torch"][2]
    np.testing.assert_array_equal(out["tinyconv"][0], out["torch"][0])
    np.testing.assert_array_equal(out["tinyconv"][1], out["torch"][1])


def test_autograd_grad_matches_torch_and_leaves_grad_alone():
    x0 = np.array([[0.5, -1.0], [2.0, 0.25]])
    res = {}
    for lib in (torch, tinyconv):
        x = lib.tensor(x0, requires_grad=True)
        w = lib.tensor(x0 * 2, requires_grad=True)
        h = (x * w).tanh()
        out1, out2 = (h * h).sum(), (h * 3).sum()
        gx, gh = lib.autograd.grad([out1, out2], [x, h], retain_graph=True)
        (gw,) = lib.autograd.grad(out1, w, grad_outputs=lib.tensor(2.0, dtype=lib.float64))
        res[lib.__name__] = [np.array(g.numpy()) for g in (gx, gh, gw)]
        assert x.grad is None and w.grad is None
    for a, b in zip(res["torch"], res["tinyconv"]):
        np.testing.assert_allclose(b, a, rtol=1e-10)  # tanh differs from torch's by ulps


def test_autograd_grad_unused_input_and_create_graph():
    x = tinyconv.ones(2, requires_grad=True)
    z = tinyconv.ones(2, requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        tinyconv.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = tinyconv.autograd.grad(y, [x, z], allow_unused=True, retain_graph=True)
    assert gz is None and np.array_equal(gx.numpy(), [2, 2])
    with pytest.raises(NotImplementedError, match="double backward"):
        tinyconv.autograd.grad(y, x, create_graph=True)


def _net(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(1, 4, 3, padding=1), lib.nn.BatchNorm2d(4),
                             lib.nn.ReLU(), lib.nn.MaxPool2d(2, 2), lib.nn.Flatten(),
                             lib.nn.Linear(4 * 4 * 4, 3))


def test_module_hooks_match_torch_and_turn_fusion_off():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(2, 1, 8, 8))
    tnet = _net(torch).double()
    net = _net(tinyconv).double()
    net.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    logs = {}
    for lib, model in (("torch", tnet), ("tinyconv", net)):
        log = logs[lib] = []
        model[0].register_forward_pre_hook(lambda m, a: log.append(("pre", a[0].shape[0])))
        model[1].register_forward_hook(
            lambda m, a, o: log.append(("bn-out", np.array(o.detach().numpy()))))
        model[2].register_full_backward_hook(lambda m, gi, go: log.append(
            ("relu-bw", np.array(gi[0].numpy()), np.array(go[0].numpy()))))
        model[3].register_full_backward_pre_hook(
            lambda m, go: log.append(("pool-bw-pre", np.array(go[0].numpy()))))
        # a forward hook may replace the output
        model[5].register_forward_hook(lambda m, a, o: o * 2)
        x = (torch if lib == "torch" else tinyconv).tensor(x0, requires_grad=True)
        out = model(x)
        out.sum().backward()
        log.append(("x.grad", np.array(x.grad.numpy())))
        log.append(("out", np.array(out.detach().numpy())))
    assert [e[0] for e in logs["torch"]] == [e[0] for e in logs["tinyconv"]]
    for a, b in zip(logs["torch"], logs["tinyconv"]):
        for u, v in zip(a[1:], b[1:]):
            np.testing.assert_allclose(v, u, rtol=1e-9, atol=1e-12)


def test_hook_handles_remove_and_fusion_returns():
    net = _net(tinyconv)
    handle = net[2].register_forward_hook(lambda m, a, o: None)
    assert net[2]._has_hooks()
    handle.remove()
    assert not net[2]._has_hooks()
    calls = []
    with net[0].register_forward_hook(lambda m, a, o: calls.append(1)):
        net(tinyconv.ones(1, 1, 8, 8))
    net(tinyconv.ones(1, 1, 8, 8))
    assert calls == [1]


# ---------------------------------------------------------------------------------------------
# BatchNorm on an empty batch


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (0, 3)])
def test_batch_norm_on_empty_batch_like_torch(training, shape):
    results = {}
    for lib in (torch, tinyconv):
        bn = (lib.nn.BatchNorm2d(3) if len(shape) == 4 else lib.nn.BatchNorm1d(3))
        bn.train(training)
        x = lib.zeros(*shape, requires_grad=True)
        y = bn(x)
        y.sum().backward()
        results[lib.__name__] = (tuple(y.shape), int(bn.num_batches_tracked),
                                 np.array(bn.running_mean.numpy()),
                                 np.array(bn.running_var.numpy()),
                                 np.array(bn.weight.grad.numpy()), tuple(x.grad.shape))
    a, b = results["torch"], results["tinyconv"]
    assert a[0] == b[0] and a[1] == b[1] and a[5] == b[5]
    for u, v in zip(a[2:5], b[2:5]):
        np.testing.assert_array_equal(v, u)


# ---------------------------------------------------------------------------------------------
# inplace=True in the functional and module API changes the input, as in torch


@pytest.mark.parametrize("make", [
    lambda lib: (lambda x: lib.nn.functional.relu(x, inplace=True)),
    lambda lib: lib.nn.ReLU(inplace=True),
])
def test_relu_inplace_changes_its_input_and_keeps_gradients(make):
    x0 = np.array([[-1.0, 2.0], [3.0, -4.0]])
    res = {}
    for lib in (torch, tinyconv):
        w = lib.tensor(x0, requires_grad=True)
        h = w * 2
        out = make(lib)(h)
        assert out is h  # the input itself is returned, changed
        (out * out).sum().backward()
        res[lib.__name__] = (np.array(h.detach().numpy()), np.array(w.grad.numpy()))
    for a, b in zip(res["torch"], res["tinyconv"]):
        np.testing.assert_array_equal(b, a)


def test_dropout_inplace_changes_its_input():
    tinyconv.manual_seed(0)
    x = tinyconv.ones(4, 5, requires_grad=True)
    h = x * 1.0
    out = tinyconv.nn.Dropout(0.5, inplace=True)(h)
    assert out is h
    out.sum().backward()
    kept = h.detach().numpy() != 0
    np.testing.assert_array_equal(x.grad.numpy(), np.where(kept, 2.0, 0.0))


def test_backward_after_optimizer_step_refuses_stale_weights_like_torch():
    for lib in (torch, tinyconv):
        lib.manual_seed(0)
        fc = lib.nn.Linear(3, 2)
        opt = lib.optim.SGD(fc.parameters(), lr=0.1)
        x = lib.ones(4, 3, requires_grad=True)  # so that backward needs the weights
        loss = (fc(x) ** 2).sum()
        loss.backward(retain_graph=True)
        opt.step()
        with pytest.raises(RuntimeError, match=VERSION_ERROR):
            loss.backward()
