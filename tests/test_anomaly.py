"""Anomaly mode (tinyconv.autograd.detect_anomaly): the first op to produce NaN/Inf is named."""

import numpy as np
import pytest

import tinyconv
from tinyconv.autograd import detect_anomaly, is_anomaly_enabled, set_detect_anomaly


def test_forward_nan_names_the_op():
    x = tinyconv.tensor([1.0, -1.0], requires_grad=True)
    with detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(FloatingPointError, match=r"Log produced NaN in its forward pass"):
            x.log()
    assert not is_anomaly_enabled()


def test_backward_inf_names_the_op():
    x = tinyconv.tensor([0.0, 4.0], requires_grad=True)
    y = x.sqrt().sum()  # forward is finite: sqrt(0) = 0
    with detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(FloatingPointError, match=r"Sqrt produced Inf in its backward pass"):
            y.backward()


def test_off_by_default_and_finite_graphs_pass():
    assert not is_anomaly_enabled()
    with np.errstate(invalid="ignore"):
        out = tinyconv.tensor([-1.0]).log()  # no check: NaN flows on, as in torch
    assert np.isnan(out.item())
    x = tinyconv.randn(3, 4, requires_grad=True)
    with detect_anomaly():
        (x * 2).relu().sum().backward()
    assert x.grad is not None


def test_set_detect_anomaly_as_a_call_and_as_a_context():
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled()
    finally:
        set_detect_anomaly(False)
    assert not is_anomaly_enabled()
