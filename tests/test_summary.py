"""tinyconv.summary: parameter counts (against the torch twins) and output shapes."""

import re

import numpy as np
import pytest

import tinyconv
from tinyconv.models import SEED_NETWORKS


def rows(text):
    """{name: (type, shape, params)} from the table's body."""
    out = {}
    body = text.split("\n")[3:]
    for line in body:
        if line.startswith("="):
            break
        cells = re.split(r"\s{2,}", line.strip())
        out[cells[0]] = (cells[1], cells[2], cells[3])
    return out


def total(text, label):
    return int(re.search(rf"^{label}: ([\d,]+)$", text, re.M).group(1).replace(",", ""))


@pytest.mark.parametrize("name", sorted(SEED_NETWORKS))
def test_totals_equal_parameter_counts_and_the_torch_twins(name):
    ctor, shape = SEED_NETWORKS[name]
    model = ctor()
    text = tinyconv.summary(model, shape, print_fn=None)
    expected = sum(p.nelement() for p in model.parameters())
    assert total(text, "Total params") == expected
    assert total(text, "Trainable params") == expected
    own = [int(r[2].replace(",", "")) for r in rows(text).values() if r[2] != "-"]
    assert sum(own) == expected  # each module's own parameters: the column sums to the total
    torch = pytest.importorskip("torch")
    from parity import models as twins
    twin = {n: c for n, (c, _) in twins.SEED_NETWORKS.items()}[name]()
    assert expected == sum(p.numel() for p in twin.parameters() if p.requires_grad)
    del torch


def test_the_lessons_counts():
    fc = tinyconv.summary(SEED_NETWORKS["fc2layer"][0](), (1, 28, 28), print_fn=None)
    cnn = tinyconv.summary(SEED_NETWORKS["cnn"][0](), (1, 28, 28), print_fn=None)
    assert "Total params: 6,442" in fc and "Total params: 6,422" in cnn


def test_rows_follow_named_modules_and_shapes_match_a_forward_pass():
    model = SEED_NETWORKS["fashioncnn"][0]()
    text = tinyconv.summary(model, (1, 28, 28), batch_size=3, print_fn=None)
    table = rows(text)
    names = [n or "(model)" for n, _ in model.named_modules()]
    assert list(table) == names
    # Reference shapes: run the pieces by hand.
    model.eval()
    with tinyconv.no_grad():
        x = tinyconv.zeros(3, 1, 28, 28)
        y1 = model.layer1(x)
        y2 = model.layer2(y1)
        f1 = model.fc1(y2.view(3, -1))
        out = model(x)
    assert table["layer1"][1] == str(list(y1.shape))
    assert table["layer2"][1] == str(list(y2.shape))
    assert table["fc1"][1] == str(list(f1.shape))
    assert table["(model)"][1] == str(list(out.shape))
    assert table["layer1.0"] == ("Conv2d", "[3, 32, 28, 28]", "320")
    assert table["fc1"][2] == "3,137,000"


def test_mode_is_restored_and_reused_modules_are_marked(capsys):
    model = SEED_NETWORKS["convmodule"][0]()
    model.train()
    text = tinyconv.summary(model, (1, 28, 28))
    assert capsys.readouterr().out.strip() == text.strip()  # printed and returned
    assert all(m.training for m in model.modules())
    assert "forward" not in model.fc1.__dict__  # the recording wrappers are gone
    assert rows(text)["relu"][1] == "[1, 1024] (x2)"
    model.eval()
    tinyconv.summary(model, (1, 28, 28), print_fn=None)
    assert not any(m.training for m in model.modules())


def test_sizes_in_megabytes():
    model = SEED_NETWORKS["fashioncnn"][0]()
    text = tinyconv.summary(model, (1, 28, 28), print_fn=None)
    params_mb = float(re.search(r"Params size \(MB\): ([\d.]+)", text).group(1))
    assert params_mb == pytest.approx(3_166_018 * 4 / 2**20, abs=1e-3)
    acts = float(re.search(r"activations \(MB\): ([\d.]+)", text).group(1))
    # leaf outputs: conv, bn, relu (32x28x28 each), pool 32x14x14, same for layer2, 1000+1000+10
    n = 3 * 32 * 28 * 28 + 32 * 14 * 14 + 3 * 64 * 14 * 14 + 64 * 7 * 7 + 2010
    assert acts == pytest.approx(n * 4 / 2**20, abs=1e-3)
    assert np.isfinite(acts)
