"""Tests for tinyconv.optim: optimizers and schedulers follow torch.optim step for step.

Both frameworks start from the same float64 weights and are fed the same sequence of random
gradients (``p.grad`` set directly, so only the update rule is under test); the weights are
compared after every step. Tolerance: rtol 1e-12 (plus atol 1e-14 for entries near zero).
The update formulas are the same operations in the same order as torch's single-tensor CPU
path, so the two differ by a few float64 roundings at most (torch's ``lerp`` for Adam's first
moment rounds differently from ``m + (1 - beta1) * (g - m)`` when 1 - beta1 >= 0.5).
"""

import copy
import math

import numpy as np
import pytest

import tinyconv
from tinyconv import nn, optim
from tinyconv.optim import lr_scheduler

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-12, 1e-14
SHAPES = [(3, 4), (4,), (2, 3, 2, 2)]


# ---- helpers --------------------------------------------------------------------------------


def twin_params(seed=0, shapes=SHAPES):
    """The same float64 initial weights as tinyconv Parameters and torch leaf tensors."""
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s) for s in shapes]
    ours = [nn.Parameter(a.copy()) for a in arrays]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    return ours, theirs


def gradient_stream(seed, shapes=SHAPES):
    rng = np.random.default_rng(seed + 1000)
    while True:
        yield [rng.normal(size=s) * rng.uniform(0.1, 3) for s in shapes]


def feed(ours, theirs, grads):
    for p, tp, g in zip(ours, theirs, grads, strict=True):
        p.grad = tinyconv.tensor(g.copy())
        tp.grad = torch.tensor(g.copy())


def assert_same_weights(ours, theirs, step):
    for i, (p, tp) in enumerate(zip(ours, theirs, strict=True)):
        assert p.dtype == np.float64
        np.testing.assert_allclose(p._data, tp.detach().numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"parameter {i} after step {step}")


def run_both(ours_opt, theirs_opt, ours, theirs, steps, grads, schedulers=()):
    for step in range(1, steps + 1):
        feed(ours, theirs, next(grads))
        ours_opt.step()
        theirs_opt.step()
        for ours_sched, theirs_sched in schedulers:
            ours_sched.step()
            theirs_sched.step()
            assert ours_sched.get_last_lr() == theirs_sched.get_last_lr(), step
        assert_same_weights(ours, theirs, step)


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(lr=0.05, momentum=0.9, maximize=True),
]

ADAM_CONFIGS = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99)),
    dict(lr=0.01, betas=(0.3, 0.7)),  # 1 - beta1 >= 0.5: torch's lerp takes its other branch
    dict(lr=0.01, eps=1e-3),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.01, amsgrad=True),
    dict(lr=0.01, maximize=True),
]

ADAMW_CONFIGS = ADAM_CONFIGS + [dict(lr=0.01, weight_decay=0.5)]


def make_pair(name, config, seed=0):
    ours, theirs = twin_params(seed)
    return (getattr(optim, name)(ours, **config), getattr(torch.optim, name)(theirs, **config),
            ours, theirs)


# ---- trajectories ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, config", [("SGD", c) for c in SGD_CONFIGS]
                         + [("Adam", c) for c in ADAM_CONFIGS]
                         + [("AdamW", c) for c in ADAMW_CONFIGS],
                         ids=lambda v: str(v) if isinstance(v, dict) else v)
def test_trajectory_follows_torch_for_20_steps(name, config):
    ours_opt, theirs_opt, ours, theirs = make_pair(name, config)
    run_both(ours_opt, theirs_opt, ours, theirs, 20, gradient_stream(0))


def test_default_hyper_parameters_match_torch():
    for name in ("SGD", "Adam", "AdamW"):
        ours_opt, theirs_opt, _, _ = make_pair(name, {})
        for key, value in ours_opt.defaults.items():
            assert value == theirs_opt.defaults[key], (name, key)


def test_parameters_without_grad_are_left_alone():
    for name in ("SGD", "Adam", "AdamW"):
        ours_opt, theirs_opt, ours, theirs = make_pair(name, dict(lr=0.1, weight_decay=0.1))
        grads = gradient_stream(3)
        for step in range(1, 6):
            g = next(grads)
            feed(ours[:2], theirs[:2], g[:2])  # the last parameter never gets a gradient
            ours_opt.step()
            theirs_opt.step()
            assert_same_weights(ours, theirs, step)
        assert ours[2] not in ours_opt.state


def test_param_groups_with_their_own_hyper_parameters():
    ours, theirs = twin_params(1)
    ours_opt = optim.SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.5,
                                                 "momentum": 0.9}], lr=0.01)
    theirs_opt = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.5,
                                                          "momentum": 0.9}], lr=0.01)
    run_both(ours_opt, theirs_opt, ours, theirs, 10, gradient_stream(1))


def test_optimizer_on_module_parameters_with_zero_grad():
    # the usual loop: backward fills .grad, step, zero_grad (set_to_none) in between
    rng = np.random.default_rng(4)
    lin, tlin = nn.Linear(3, 2, dtype=np.float64), torch.nn.Linear(3, 2, dtype=torch.float64)
    lin.load_state_dict(tlin.state_dict())
    ours_opt = optim.Adam(lin.parameters(), lr=0.05)
    theirs_opt = torch.optim.Adam(tlin.parameters(), lr=0.05)
    for step in range(1, 11):
        x = rng.normal(size=(5, 3))
        ours_opt.zero_grad()
        theirs_opt.zero_grad()
        assert all(p.grad is None for p in lin.parameters())
        (lin(tinyconv.tensor(x)) ** 2).sum().backward()
        (tlin(torch.from_numpy(x)) ** 2).sum().backward()
        ours_opt.step()
        theirs_opt.step()
        assert_same_weights(list(lin.parameters()), list(tlin.parameters()), step)


# ---- learning-rate schedulers ---------------------------------------------------------------


SCHEDULERS = [
    ("StepLR", dict(step_size=4)),
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1, gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=30)),
    ("CosineAnnealingLR", dict(T_max=7)),  # fewer than the 30 steps: the cosine goes back up
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=1, eta_min=0.001)),
]


@pytest.mark.parametrize("sched_name, kwargs", SCHEDULERS, ids=str)
def test_scheduler_get_last_lr_equals_torch_for_30_steps(sched_name, kwargs):
    ours_opt, theirs_opt, _, _ = make_pair("SGD", dict(lr=0.1, momentum=0.9))
    ours = getattr(lr_scheduler, sched_name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, sched_name)(theirs_opt, **kwargs)
    assert ours.get_last_lr() == theirs.get_last_lr() == [0.1]
    lrs = []
    for _ in range(30):
        ours_opt.step()  # no grads: nothing moves, but the call order is torch's
        theirs_opt.step()
        ours.step()
        theirs.step()
        assert ours.get_last_lr() == theirs.get_last_lr()  # the same floats, exactly
        assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"]
        lrs.append(ours.get_last_lr()[0])
    if sched_name == "CosineAnnealingLR" and kwargs["T_max"] < 30:
        # past T_max the learning rate rises again (the cosine is periodic, period 2 T_max)
        T, eta_min = kwargs["T_max"], kwargs.get("eta_min", 0.0)
        assert lrs[T - 1] == pytest.approx(eta_min, abs=1e-12)
        assert lrs[2 * T - 1] == pytest.approx(0.1, rel=1e-9)


def test_cosine_schedule_matches_the_closed_form():
    # an oracle independent of both recursions: eta_min + (b - eta_min)(1 + cos(pi t / T)) / 2
    ours_opt, _, _, _ = make_pair("SGD", dict(lr=0.2))
    sched = lr_scheduler.CosineAnnealingLR(ours_opt, T_max=6, eta_min=0.02)
    for t in range(1, 25):
        ours_opt.step()
        sched.step()
        expected = 0.02 + (0.2 - 0.02) * (1 + math.cos(math.pi * t / 6)) / 2
        assert sched.get_last_lr()[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("opt_name, config", [("SGD", dict(lr=0.1, momentum=0.9)),
                                              ("Adam", dict(lr=0.05)),
                                              ("AdamW", dict(lr=0.05, weight_decay=0.1))])
@pytest.mark.parametrize("sched_name, kwargs", [("StepLR", dict(step_size=5, gamma=0.5)),
                                                ("CosineAnnealingLR", dict(T_max=6))])
def test_weights_follow_torch_with_a_scheduler_in_the_loop(opt_name, config, sched_name,
                                                           kwargs):
    ours_opt, theirs_opt, ours, theirs = make_pair(opt_name, config, seed=2)
    scheds = [(getattr(lr_scheduler, sched_name)(ours_opt, **kwargs),
               getattr(torch.optim.lr_scheduler, sched_name)(theirs_opt, **kwargs))]
    run_both(ours_opt, theirs_opt, ours, theirs, 20, gradient_stream(2), scheds)


def test_scheduler_state_dict_round_trip():
    ours_opt, _, _, _ = make_pair("SGD", dict(lr=0.1))
    sched = lr_scheduler.CosineAnnealingLR(ours_opt, T_max=4)
    for _ in range(3):
        ours_opt.step()
        sched.step()
    saved = copy.deepcopy(sched.state_dict())
    opt2, _, _, _ = make_pair("SGD", dict(lr=0.1))
    opt2.load_state_dict(ours_opt.state_dict())
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=4)
    sched2.load_state_dict(saved)
    for _ in range(6):
        for o, s in ((ours_opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert sched.get_last_lr() == sched2.get_last_lr()


# ---- optimizer state_dict -------------------------------------------------------------------


@pytest.mark.parametrize("name, config", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                          ("Adam", dict(lr=0.01, amsgrad=True)),
                                          ("AdamW", dict(lr=0.01))])
def test_state_dict_round_trip_continues_identically(name, config):
    # 20 uninterrupted steps ...
    straight, _, p_straight, _ = make_pair(name, config, seed=5)
    grads = gradient_stream(5)
    all_grads = [next(grads) for _ in range(20)]
    for g in all_grads:
        for p, gi in zip(p_straight, g, strict=True):
            p.grad = tinyconv.tensor(gi.copy())
        straight.step()
    # ... equal 10 steps, save, a new optimizer on the same weights, load, 10 more
    first, _, p_resumed, _ = make_pair(name, config, seed=5)
    for g in all_grads[:10]:
        for p, gi in zip(p_resumed, g, strict=True):
            p.grad = tinyconv.tensor(gi.copy())
        first.step()
    saved = copy.deepcopy(first.state_dict())
    del first
    resumed = getattr(optim, name)(p_resumed, lr=123.0)  # hyper-parameters come from the save
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == config["lr"]
    for g in all_grads[10:]:
        for p, gi in zip(p_resumed, g, strict=True):
            p.grad = tinyconv.tensor(gi.copy())
        resumed.step()
    for p, q in zip(p_straight, p_resumed, strict=True):
        np.testing.assert_array_equal(p._data, q._data)  # bit for bit


def test_state_dict_is_a_snapshot():
    opt, _, ours, _ = make_pair("Adam", dict(lr=0.01))
    for p in ours:
        p.grad = tinyconv.ones(*p.shape, dtype=tinyconv.float64)
    opt.step()
    saved = opt.state_dict()
    before = saved["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], before)


@pytest.mark.parametrize("name, config", [("SGD", dict(lr=0.05, momentum=0.9)),
                                          ("Adam", dict(lr=0.01)),
                                          ("Adam", dict(lr=0.01, amsgrad=True)),
                                          ("AdamW", dict(lr=0.01))])
def test_state_dict_layout_is_torch_layout(name, config):
    ours_opt, theirs_opt, ours, theirs = make_pair(name, config)
    ours_groups = ours_opt.state_dict()["param_groups"]
    assert ours_opt.state_dict()["state"] == {}
    run_both(ours_opt, theirs_opt, ours, theirs, 3, gradient_stream(0))
    sd, tsd = ours_opt.state_dict(), theirs_opt.state_dict()
    assert set(sd) == set(tsd) == {"state", "param_groups"}
    assert list(sd["state"]) == list(tsd["state"]) == [0, 1, 2]  # parameters as indices
    for i in tsd["state"]:
        assert set(sd["state"][i]) == set(tsd["state"][i])  # the same state names
        for key, value in tsd["state"][i].items():
            np.testing.assert_allclose(np.asarray(sd["state"][i][key], dtype=np.float64),
                                       value.numpy(), rtol=RTOL, atol=ATOL, err_msg=key)
    assert len(sd["param_groups"]) == len(tsd["param_groups"]) == 1
    group, tgroup = sd["param_groups"][0], tsd["param_groups"][0]
    assert group["params"] == tgroup["params"] == [0, 1, 2]
    for key, value in group.items():  # every tinyconv hyper-parameter is torch's, same value
        assert key in tgroup and tgroup[key] == value, key
    assert ours_groups[0]["params"] == [0, 1, 2]


@pytest.mark.parametrize("name, config", [("SGD", dict(lr=0.05, momentum=0.9)),
                                          ("Adam", dict(lr=0.01, amsgrad=True)),
                                          ("AdamW", dict(lr=0.01))])
def test_load_torch_optimizer_state_dict_and_continue(name, config):
    # torch runs 10 steps; tinyconv takes over its weights and optimizer state; both run 10 more
    _, theirs_opt, _, theirs = make_pair(name, config, seed=6)
    grads = gradient_stream(6)
    for _ in range(10):
        g = next(grads)
        for tp, gi in zip(theirs, g, strict=True):
            tp.grad = torch.tensor(gi)
        theirs_opt.step()
    ours = [nn.Parameter(tp.detach().numpy().copy()) for tp in theirs]
    ours_opt = getattr(optim, name)(ours, lr=1.0)
    ours_opt.load_state_dict(theirs_opt.state_dict())
    run_both(ours_opt, theirs_opt, ours, theirs, 10, grads)


def test_load_state_dict_rejects_mismatched_groups():
    opt, _, _, _ = make_pair("SGD", dict(lr=0.1, momentum=0.9))
    other = optim.SGD(twin_params(0)[0][:2], lr=0.1)
    with pytest.raises(ValueError, match="3 parameters"):
        other.load_state_dict(opt.state_dict())


# ---- invalid hyper-parameters ---------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs, shown", [
    ("SGD", dict(lr=-0.1), "-0.1"),
    ("Adam", dict(lr=-0.001), "-0.001"),
    ("AdamW", dict(lr=-2.0), "-2.0"),
    ("SGD", dict(lr=0.1, momentum=-0.5), "-0.5"),
    ("SGD", dict(lr=0.1, weight_decay=-0.25), "-0.25"),
    ("Adam", dict(weight_decay=-0.25), "-0.25"),
    ("Adam", dict(betas=(1.0, 0.999)), "1.0"),
    ("Adam", dict(betas=(0.9, 1.5)), "1.5"),
    ("Adam", dict(betas=(-0.1, 0.999)), "-0.1"),
    ("AdamW", dict(betas=(0.9, -0.2)), "-0.2"),
    ("Adam", dict(eps=-1e-8), "-1e-08"),
    ("SGD", dict(lr=0.1, nesterov=True), "momentum=0"),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening=0.1"),
])
def test_invalid_hyper_parameters_raise_value_error_naming_the_value(name, kwargs, shown):
    params = twin_params(0)[0]
    with pytest.raises(ValueError) as info:
        getattr(optim, name)(params, **kwargs)
    assert shown in str(info.value)
    with pytest.raises(ValueError):  # torch rejects the same
        getattr(torch.optim, name)(twin_params(0)[1], **kwargs)


def test_empty_parameter_list_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


def test_scheduler_rejects_bad_arguments():
    opt, _, _, _ = make_pair("SGD", dict(lr=0.1))
    with pytest.raises(ValueError, match="0"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="-3"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=-3)
