"""Tests for tinyconv.nn's modules: the Module API, state_dict, repr, initialisation, BatchNorm
statistics, error messages and dropout, each against PyTorch built with the same structure."""

import inspect
import math
import re
from collections import OrderedDict

import numpy as np
import pytest

import tinyconv
from tinyconv import nn
from tinyconv.models import SEED_NETWORKS

torch = pytest.importorskip("torch")
parity_models = pytest.importorskip("parity.models")


# ---- helpers --------------------------------------------------------------------------------


def build_net(lib_nn):
    """The same network in either framework: nesting, every layer type, a parameter-free tail."""

    class Block(lib_nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib_nn.Conv2d(2, 4, 3, padding=1)
            self.bn = lib_nn.BatchNorm2d(4)
            self.act = lib_nn.ReLU()

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class Net(lib_nn.Module):
        def __init__(self):
            super().__init__()
            self.features = lib_nn.Sequential(
                Block(),
                lib_nn.MaxPool2d(2),
                lib_nn.Sequential(OrderedDict([
                    ("conv", lib_nn.Conv2d(4, 3, 1, bias=False)),
                    ("drop", lib_nn.Dropout2d(0.2))])))
            self.flatten = lib_nn.Flatten()
            self.fc = lib_nn.Linear(3 * 2 * 2, 5)
            self.bn1d = lib_nn.BatchNorm1d(5)
            self.head = lib_nn.Sequential(lib_nn.Dropout(0.5), lib_nn.Linear(5, 3))

        def forward(self, x):
            x = self.flatten(self.features(x))
            return self.head(self.bn1d(self.fc(x)))

    return Net()


def to_numpy(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t._data)


def tiny(arr, requires_grad=False):
    return tinyconv.tensor(np.ascontiguousarray(arr), requires_grad=requires_grad)


def copy_torch_weights(tiny_net, torch_net):
    tiny_net.load_state_dict(torch_net.state_dict())
    return tiny_net


def torch_twin(name):
    return {
        "fashioncnn": parity_models.FashionCNN,
        "deepfashioncnn": parity_models.DeepFashionCNN,
        "convmodule": parity_models.ConvModule,
        "fc2layer": lambda: parity_models.FC2Layer(784, 8, 10),
        "cnn": lambda: parity_models.CNN(6),
    }[name]()


# one of each layer that owns parameters or buffers, constructed in both frameworks
LAYERS = [
    "Linear(3, 4)",
    "Linear(3, 4, bias=False)",
    "Conv2d(2, 3, 3)",
    "Conv2d(2, 3, (3, 5), stride=2, padding=1, dilation=2, bias=False)",
    "BatchNorm1d(5)",
    "BatchNorm2d(4)",
    "BatchNorm2d(4, affine=False)",
    "BatchNorm2d(4, track_running_stats=False)",
    "BatchNorm2d(4, bias=False)",
    "Sequential(Linear(2, 3), Sequential(BatchNorm1d(3), Linear(3, 1)))",
]


def make(spec, lib_nn):
    return eval(spec, {"OrderedDict": OrderedDict,
                       **{name: getattr(lib_nn, name) for name in dir(lib_nn)}})


# ---- traversal: parameters, children, modules ----------------------------------------------


def test_parameters_and_named_parameters_match_torch():
    ours, theirs = build_net(nn), build_net(torch.nn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [tuple(p.shape) for p in ours.parameters()] == \
        [tuple(p.shape) for p in theirs.parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.parameters())
    assert all(p.dtype == np.float32 for p in ours.parameters())  # torch's default dtype
    # prefix and recurse=False
    assert [n for n, _ in ours.fc.named_parameters(prefix="fc")] == \
        [n for n, _ in theirs.fc.named_parameters(prefix="fc")]
    assert [n for n, _ in ours.named_parameters(recurse=False)] == []
    assert [n for n, _ in ours.fc.named_parameters(recurse=False)] == ["weight", "bias"]


def test_children_and_modules_match_torch():
    ours, theirs = build_net(nn), build_net(torch.nn)

    def kinds(mods):
        return [type(m).__name__ for m in mods]

    assert kinds(ours.children()) == kinds(theirs.children())
    assert kinds(ours.modules()) == kinds(theirs.modules())
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert next(iter(ours.modules())) is ours


def test_shared_modules_and_parameters_are_listed_once():
    for lib_nn in (nn, torch.nn):
        shared = lib_nn.Linear(2, 2)
        net = lib_nn.Sequential(shared, lib_nn.ReLU(), shared)
        assert len(list(net.parameters())) == 2
        assert [n for n, _ in net.named_modules()] == ["", "0", "1"]
        # state_dict lists every path, shared or not (torch does)
        assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_sequential_item_assignment_like_torch():
    for lib_nn in (nn, torch.nn):
        net = lib_nn.Sequential(lib_nn.Linear(2, 3), lib_nn.ReLU())
        net[1] = lib_nn.Tanh()
        net[-2] = lib_nn.Linear(2, 4)
        assert [type(m).__name__ for m in net] == ["Linear", "Tanh"]
        assert list(net.state_dict()) == ["0.weight", "0.bias"]
        assert net[0].out_features == 4
        with pytest.raises(IndexError):
            net[2] = lib_nn.ReLU()
    with pytest.raises(TypeError, match="Sequential: can only hold Modules, got a int"):
        nn.Sequential(nn.ReLU())[0] = 3


def test_train_and_eval_propagate_like_torch():
    ours, theirs = build_net(nn), build_net(torch.nn)

    def flags(net):
        return [(name, m.training) for name, m in net.named_modules()]

    assert flags(ours) == flags(theirs) and all(t for _, t in flags(ours))
    assert ours.eval() is ours
    theirs.eval()
    assert flags(ours) == flags(theirs) and not any(t for _, t in flags(ours))
    ours.features.train()
    theirs.features.train()
    assert flags(ours) == flags(theirs)
    assert ours.features[0].bn.training and not ours.fc.training and not ours.training
    ours.train(False)
    theirs.train(False)
    assert flags(ours) == flags(theirs)
    with pytest.raises(ValueError, match="boolean"):
        ours.train("yes")


def test_zero_grad_sets_to_none_by_default():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    x = tiny(np.ones((4, 3), dtype=np.float32))
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        assert p.grad is not None and not np.any(to_numpy(p.grad))
    net(x).sum().backward()
    net.zero_grad()  # torch 2.x default: set_to_none=True
    assert all(p.grad is None for p in net.parameters())
    # the same default as torch's, read from the signatures
    assert inspect.signature(nn.Module.zero_grad).parameters["set_to_none"].default is True
    assert inspect.signature(torch.nn.Module.zero_grad).parameters["set_to_none"].default is True


# ---- state_dict -----------------------------------------------------------------------------


def assert_same_state_dict_layout(ours, theirs):
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)  # same keys in the same order
    for key in tsd:
        assert tuple(sd[key].shape) == tuple(tsd[key].shape), key
        assert (sd[key].dtype == np.int64) == (tsd[key].dtype == torch.int64), key


@pytest.mark.parametrize("spec", LAYERS)
def test_state_dict_layout_matches_torch_for_each_layer(spec):
    ours, theirs = make(spec, nn), make(spec, torch.nn)
    assert_same_state_dict_layout(ours, theirs)
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]


def test_state_dict_layout_matches_torch_for_nested_net():
    ours, theirs = build_net(nn), build_net(torch.nn)
    assert_same_state_dict_layout(ours, theirs)
    sd = ours.state_dict()
    assert "features.0.bn.num_batches_tracked" in sd
    assert sd["features.0.bn.num_batches_tracked"].dtype == np.int64
    assert sd["features.0.bn.num_batches_tracked"].shape == ()


@pytest.mark.parametrize("name", sorted(SEED_NETWORKS))
def test_state_dict_layout_matches_torch_for_seed_networks(name):
    assert_same_state_dict_layout(SEED_NETWORKS[name][0](), torch_twin(name))


def test_state_dict_tensors_are_detached_views():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    assert not sd["weight"].requires_grad
    sd["weight"]._data[0, 0] = 123.0  # like torch: the state_dict shares memory
    assert to_numpy(lin.weight)[0, 0] == 123.0
    assert lin.state_dict(keep_vars=True)["weight"] is lin.weight


def test_load_torch_state_dict_directly():
    ours, theirs = build_net(nn), build_net(torch.nn)
    with torch.no_grad():  # make the buffers non-trivial too
        theirs.train()(torch.randn(3, 2, 4, 4))
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(to_numpy(ours.state_dict()[key]), value.numpy(), key)
        assert ours.state_dict()[key].dtype == (np.int64 if key.endswith("tracked")
                                                else np.float32)
    assert to_numpy(ours.features[0].bn.num_batches_tracked) == 1
    # and back: torch reads tinyconv's arrays
    back = build_net(torch.nn)
    back.load_state_dict({k: torch.from_numpy(to_numpy(v).copy())
                          for k, v in ours.state_dict().items()})
    for key, value in back.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[key]), key


def snapshot(module):
    return {k: to_numpy(v).copy() for k, v in module.state_dict().items()}


def test_load_state_dict_strict_missing_key():
    ours = build_net(nn)
    before = snapshot(ours)
    sd = build_net(nn).state_dict()
    del sd["fc.bias"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "fc.bias"'):
        ours.load_state_dict(sd)
    assert all(np.array_equal(v, snapshot(ours)[k]) for k, v in before.items())


def test_load_state_dict_strict_unexpected_key():
    ours = build_net(nn)
    before = snapshot(ours)
    sd = build_net(nn).state_dict()
    sd["fc.extra"] = tinyconv.zeros(3)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "fc.extra"'):
        ours.load_state_dict(sd)
    assert all(np.array_equal(v, snapshot(ours)[k]) for k, v in before.items())


@pytest.mark.parametrize("strict", [True, False])
def test_load_state_dict_wrong_shape_names_key_and_both_shapes(strict):
    ours = build_net(nn)
    before = snapshot(ours)
    sd = build_net(nn).state_dict()  # other values, all the right shape ...
    sd["head.1.weight"] = np.zeros((5, 3), dtype=np.float32)  # ... but one: (3, 5) expected
    with pytest.raises(RuntimeError) as info:
        ours.load_state_dict(sd, strict=strict)
    message = str(info.value)
    assert "head.1.weight" in message
    assert "(5, 3)" in message and "(3, 5)" in message
    # a failed load changes nothing, not even the keys that were fine
    after = snapshot(ours)
    assert all(np.array_equal(v, after[k]) for k, v in before.items())


def test_load_state_dict_non_strict_returns_key_lists_like_torch():
    ours, theirs = build_net(nn), build_net(torch.nn)
    tsd = build_net(torch.nn).state_dict()
    del tsd["fc.weight"], tsd["features.0.bn.running_var"]
    tsd["bogus"] = torch.zeros(2)
    expected = theirs.load_state_dict(tsd, strict=False)
    result = ours.load_state_dict(tsd, strict=False)
    assert result.missing_keys == expected.missing_keys == ["features.0.bn.running_var",
                                                           "fc.weight"]
    assert result.unexpected_keys == expected.unexpected_keys == ["bogus"]
    # the keys that were there were loaded
    np.testing.assert_array_equal(to_numpy(ours.fc.bias), tsd["fc.bias"].numpy())


# ---- repr -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SEED_NETWORKS))
def test_repr_of_seed_networks_equals_torch(name):
    assert repr(SEED_NETWORKS[name][0]()) == repr(torch_twin(name))


@pytest.mark.parametrize("spec", LAYERS + [
    "Conv2d(2, 3, 3, padding='same')", "MaxPool2d(2)",
    "MaxPool2d((2, 3), stride=1, padding=1, dilation=1, ceil_mode=True)", "AvgPool2d(3, 2, 1)",
    "AdaptiveAvgPool2d((1, 1))", "Dropout()", "Dropout2d(0.1, inplace=True)", "ReLU()",
    "ReLU(inplace=True)", "Sigmoid()", "Tanh()", "Softmax(dim=1)", "LogSoftmax(dim=1)",
    "Flatten()", "Flatten(2, 3)", "Identity()", "CrossEntropyLoss()", "NLLLoss()",
    "Sequential()", "ModuleList([ReLU(), Linear(2, 2)])",
    "BatchNorm2d(4, eps=1e-3, momentum=None, affine=False, track_running_stats=False)",
    # every argument of the layers below away from its default, and back (torch 2.14 prints
    # BatchNorm's bias=..., which its keyword-only argument `bias` sets)
    "BatchNorm1d(5, eps=1e-3, momentum=0.01, affine=False)",
    "BatchNorm1d(5, momentum=None, track_running_stats=False)",
    "BatchNorm2d(4, momentum=0.3, bias=False, eps=0.001)",
    "Conv2d(2, 3, 1, padding='valid')", "Conv2d(2, 3, (1, 3), stride=(1, 2), padding=(0, 1))",
    "Conv2d(2, 3, 3, dilation=(2, 1), padding_mode='zeros', groups=1)",
    "Linear(3, 4, bias=True, dtype=None)", "Dropout(0.2, inplace=True)", "Dropout(p=0)",
    "MaxPool2d(3, 2, 1, ceil_mode=True)", "MaxPool2d(2, return_indices=True)",
    "MaxPool2d(kernel_size=(2, 2), stride=(1, 2))", "AvgPool2d(2)",
    "AvgPool2d((2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True, count_include_pad=False, "
    "divisor_override=3)",
    "AdaptiveAvgPool2d(1)", "AdaptiveAvgPool2d((None, 3))", "ReLU(False)", "LogSoftmax()",
    "Softmax()", "Flatten(0, 2)", "Flatten(start_dim=0)", "Identity(54, unused='x')",
    "CrossEntropyLoss(label_smoothing=0.1)", "NLLLoss(ignore_index=0)", "ModuleList()",
    # containers in containers
    "Sequential(OrderedDict(conv=Conv2d(1, 2, 3), act=ReLU(inplace=True)))",
    "Sequential(Sequential(Sequential(ReLU())), ModuleList([Flatten(), Sequential()]))",
    "Sequential(Linear(2, 3), Sequential(BatchNorm1d(3), Linear(3, 1)))[1:]",
])
def test_repr_of_layers_equals_torch(spec):
    assert repr(make(spec, nn)) == repr(make(spec, torch.nn))


def custom_net(lib_nn):
    """A user's module: an extra_repr of two lines, children, a None child, in a Sequential."""

    class Block(lib_nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib_nn.Conv2d(1, 2, 3)
            self.body = lib_nn.Sequential(lib_nn.ReLU(), lib_nn.Dropout())
            self.add_module("skip", None)

        def extra_repr(self):
            return "scale=2\nshift=1"

    class Plain(lib_nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    return lib_nn.Sequential(Block(), Plain(), lib_nn.LogSoftmax(dim=1))


def test_repr_of_a_user_module_equals_torch():
    assert repr(custom_net(nn)) == repr(custom_net(torch.nn))


def test_repr_of_nested_net_equals_torch():
    assert repr(build_net(nn)) == repr(build_net(torch.nn))


# ---- default initialisation -----------------------------------------------------------------


def ks_uniform(values, bound):
    """Kolmogorov-Smirnov distance between the sample and U(-bound, bound)."""
    v = np.sort(values.ravel().astype(np.float64))
    cdf = (v + bound) / (2 * bound)
    n = v.size
    return max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))


@pytest.mark.parametrize("spec, fan_in", [
    ("Conv2d(16, 32, 3)", 16 * 9), ("Conv2d(3, 64, (5, 3))", 3 * 15),
    ("Linear(200, 100)", 200), ("Linear(784, 8)", 784),
])
def test_default_init_is_kaiming_uniform_like_torch(spec, fan_in):
    tinyconv.manual_seed(1234)
    layer = make(spec, nn)
    tlayer = make(spec, torch.nn)
    assert torch.nn.init._calculate_fan_in_and_fan_out(tlayer.weight)[0] == fan_in
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)): sqrt(6 / 6 / fan_in)
    w = to_numpy(layer.weight).astype(np.float64)
    n = w.size
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() >= bound * (1 - 10 / n)  # the extremes reach the bound
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.03  # U(-b, b) has std b / sqrt(3)
    assert abs(w.mean()) < 4 * bound / math.sqrt(3 * n)  # 4 standard errors
    # close to uniform over the whole range: KS distance below the 0.1% critical value
    assert ks_uniform(w, bound) < 1.95 / math.sqrt(n)
    # torch's weights obey the same bound (the oracle is the same formula)
    assert to_numpy(tlayer.weight).__abs__().max() <= bound * (1 + 1e-6)
    b = to_numpy(layer.bias)
    assert np.abs(b).max() <= bound * (1 + 1e-6)
    assert np.ptp(b) > 0  # random, not constant


def test_default_bias_init_is_uniform_over_one_over_sqrt_fan_in():
    tinyconv.manual_seed(99)
    layer = nn.Linear(400, 5000)
    bound = 1 / math.sqrt(400)
    b = to_numpy(layer.bias).astype(np.float64)
    assert np.abs(b).max() <= bound * (1 + 1e-6)
    assert np.abs(b).max() >= bound * (1 - 10 / b.size)
    assert abs(b.std() / (bound / math.sqrt(3)) - 1) < 0.03
    assert ks_uniform(b, bound) < 1.95 / math.sqrt(b.size)


def test_init_is_different_per_layer_and_reproducible_by_seed():
    tinyconv.manual_seed(0)
    a = [to_numpy(p).copy() for p in build_net(nn).parameters()]
    tinyconv.manual_seed(0)
    b = [to_numpy(p).copy() for p in build_net(nn).parameters()]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = [to_numpy(p).copy() for p in build_net(nn).parameters()]
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("cls", ["BatchNorm1d", "BatchNorm2d"])
def test_batchnorm_init_like_torch(cls):
    ours, theirs = getattr(nn, cls)(7), getattr(torch.nn, cls)(7)
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(to_numpy(ours.state_dict()[key]), value.numpy(), key)
    np.testing.assert_array_equal(to_numpy(ours.weight), np.ones(7))
    np.testing.assert_array_equal(to_numpy(ours.bias), np.zeros(7))
    np.testing.assert_array_equal(to_numpy(ours.running_mean), np.zeros(7))
    np.testing.assert_array_equal(to_numpy(ours.running_var), np.ones(7))
    assert to_numpy(ours.num_batches_tracked) == 0


# ---- BatchNorm running statistics -----------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm2d_running_stats_follow_torch(momentum, dtype):
    rng = np.random.default_rng(7)
    ours = nn.BatchNorm2d(3, momentum=momentum, dtype=dtype)
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum, dtype=torch.float64 if dtype == np.float64
                                  else torch.float32)
    # non-trivial affine parameters, shared
    w, b = rng.uniform(0.5, 2, 3).astype(dtype), rng.normal(size=3).astype(dtype)
    ours.load_state_dict({"weight": w, "bias": b}, strict=False)
    theirs.load_state_dict({"weight": torch.from_numpy(w), "bias": torch.from_numpy(b)},
                           strict=False)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for call in range(3):  # three training batches with different statistics
        x = (rng.normal(size=(4, 3, 5, 5)) * (call + 1) + call).astype(dtype)
        y, ty = ours(tiny(x)), theirs(torch.from_numpy(x))
        np.testing.assert_allclose(to_numpy(y), ty.detach().numpy(), **tol)
        for key in ("running_mean", "running_var"):
            np.testing.assert_allclose(to_numpy(getattr(ours, key)),
                                       getattr(theirs, key).numpy(), **tol, err_msg=key)
        assert to_numpy(ours.num_batches_tracked) == theirs.num_batches_tracked.item() == call + 1
    # eval: the running statistics normalise, and they stay put
    ours.eval()
    theirs.eval()
    x = rng.normal(size=(2, 3, 5, 5)).astype(dtype)
    np.testing.assert_allclose(to_numpy(ours(tiny(x))),
                               theirs(torch.from_numpy(x)).detach().numpy(), **tol)
    assert to_numpy(ours.num_batches_tracked) == 3
    np.testing.assert_allclose(to_numpy(ours.running_mean), theirs.running_mean.numpy(), **tol)


def test_batchnorm_momentum_none_is_the_cumulative_average():
    # momentum=None: running_mean after k batches is the plain mean of the k batch means
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm2d(2, momentum=None, dtype=np.float64)
    means = []
    for k in range(4):
        x = rng.normal(size=(3, 2, 4, 4)) + 5 * k
        means.append(x.mean(axis=(0, 2, 3)))
        bn(tiny(x))
    np.testing.assert_allclose(to_numpy(bn.running_mean), np.mean(means, axis=0), rtol=1e-12)


@pytest.mark.parametrize("track", [True, False])
def test_batchnorm_without_affine_or_tracking_follows_torch(track):
    rng = np.random.default_rng(11)
    ours = nn.BatchNorm1d(4, affine=False, track_running_stats=track, dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(4, affine=False, track_running_stats=track,
                                  dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x = rng.normal(size=(6, 4)) * 3 + 1
        np.testing.assert_allclose(to_numpy(ours(tiny(x))),
                                   theirs(torch.from_numpy(x)).numpy(), rtol=1e-12, atol=1e-12)


# ---- error messages -------------------------------------------------------------------------


def test_conv2d_wrong_channel_count_names_expected_and_given():
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(RuntimeError) as info:
        conv(tinyconv.zeros(2, 5, 8, 8))
    message = str(info.value)
    assert "3 channels" in message and "5 channels" in message
    with pytest.raises(ValueError):  # ShapeError is both (Python convention and torch's)
        conv(tinyconv.zeros(2, 5, 8, 8))


@pytest.mark.parametrize("shape", [(8, 8), (1, 2, 3, 8, 8)])
def test_conv2d_rejects_non_4d_input(shape):
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(RuntimeError, match="4-D") as info:
        conv(tinyconv.zeros(*shape))
    assert str(shape) in str(info.value)
    with pytest.raises(RuntimeError):  # torch rejects it too
        torch.nn.Conv2d(3, 8, 3)(torch.zeros(*shape))


def test_conv2d_accepts_unbatched_3d_input_like_torch():
    rng = np.random.default_rng(0)
    ours, theirs = nn.Conv2d(2, 3, 3), torch.nn.Conv2d(2, 3, 3)
    ours.load_state_dict(theirs.state_dict())
    x = rng.normal(size=(2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(ours(tiny(x))), theirs(torch.from_numpy(x)).detach(),
                               rtol=1e-5, atol=1e-6)


def test_batchnorm2d_wrong_channel_count_names_expected_and_given():
    with pytest.raises(RuntimeError) as info:
        nn.BatchNorm2d(4)(tinyconv.zeros(2, 6, 3, 3))
    message = str(info.value)
    assert "4 channels" in message and "6 channels" in message
    with pytest.raises(RuntimeError, match=re.escape("(2, 4)")):
        nn.BatchNorm2d(4)(tinyconv.zeros(2, 4))  # 2-D input to a 2-D batch norm


def test_linear_wrong_in_features_names_expected_and_given():
    with pytest.raises(RuntimeError) as info:
        nn.Linear(7, 2)(tinyconv.zeros(3, 5))
    message = str(info.value)
    assert "5" in message and "7" in message
    assert re.search(r"\b5 features\b", message), message
    assert "in_features=7" in message and "(2, 7)" in message


# ---- dropout --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["Dropout", "Dropout2d"])
def test_dropout_respects_train_and_eval(cls):
    tinyconv.manual_seed(5)
    drop = getattr(nn, cls)(0.5)
    x = tinyconv.ones(8, 16, 4, 4)
    y = to_numpy(drop(x))
    assert set(np.unique(y)) == {0.0, 2.0}  # kept values scaled by 1 / (1 - p)
    assert 0.3 < (y == 0).mean() < 0.7
    if cls == "Dropout2d":  # whole channels go
        per_channel = y.reshape(8, 16, -1)
        assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))
    else:  # single elements go
        assert np.any(y.reshape(8, 16, -1).min(axis=2) != y.reshape(8, 16, -1).max(axis=2))
    drop.eval()
    np.testing.assert_array_equal(to_numpy(drop(x)), to_numpy(x))
    drop.train()
    assert np.any(to_numpy(drop(x)) == 0)


def test_dropout_inside_a_net_follows_the_net_mode():
    net = nn.Sequential(nn.Linear(10, 10), nn.Dropout(0.9))
    x = tinyconv.ones(4, 10)
    net.eval()
    np.testing.assert_array_equal(to_numpy(net(x)), to_numpy(net[0](x)))
    net.train()
    assert not np.array_equal(to_numpy(net(x)), to_numpy(net(x)))


def test_dropout_extreme_probabilities():
    x = tinyconv.ones(3, 4)
    np.testing.assert_array_equal(to_numpy(nn.Dropout(0.0)(x)), np.ones((3, 4)))
    np.testing.assert_array_equal(to_numpy(nn.Dropout(1.0)(x)), np.zeros((3, 4)))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match=str(p)):
            nn.Dropout(p)


def test_dropout_gradient_uses_the_same_mask():
    tinyconv.manual_seed(2)
    x = tinyconv.ones(50, 20, requires_grad=True)
    y = nn.Dropout(0.5)(x)
    y.sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), to_numpy(y))


# ---- containers: Sequential and ModuleList share their indexing -----------------------------


@pytest.mark.parametrize("make", [lambda *m: nn.Sequential(*m), lambda *m: nn.ModuleList(m)],
                         ids=["Sequential", "ModuleList"])
def test_container_indexing_and_errors_name_the_container(make):
    relu, tanh = nn.ReLU(), nn.Tanh()
    box = make(relu, tanh)
    name = type(box).__name__
    assert box[0] is relu and box[-1] is tanh and len(box) == 2 and list(box) == [relu, tanh]
    assert type(box[1:]) is type(box) and list(box[1:]) == [tanh]
    box[0] = nn.Sigmoid()
    assert type(box[0]) is nn.Sigmoid
    with pytest.raises(IndexError, match=f"index 2 is out of range for a {name} of 2"):
        box[2]
    with pytest.raises(IndexError, match=f"index -3 is out of range for a {name} of 2"):
        box[-3] = nn.ReLU()
    with pytest.raises(TypeError, match=f"{name}: can only hold Modules, got a int"):
        box[0] = 3
