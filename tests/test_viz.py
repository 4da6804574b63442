"""tinyconv.viz: the DOT text of a small graph, node for node and edge for edge."""

import re

import pytest

import tinyconv
from tinyconv import viz


def parse(dot):
    nodes = dict(re.findall(r'^\s+(\w+) \[.*label="([^"]*)"\];$', dot, re.M))
    edges = re.findall(r"^\s+(\w+) -> (\w+);$", dot, re.M)
    return nodes, edges


def test_small_expression_has_exactly_the_expected_nodes_and_edges():
    a = tinyconv.randn(2, 3, requires_grad=True)
    b = tinyconv.randn(2, 3, requires_grad=True)
    c = tinyconv.randn(3, requires_grad=True)
    dot = viz.graph((a * b + c).sum(), params={"a": a, "b": b, "c": c})
    nodes, edges = parse(dot)
    assert nodes == {"leaf0": r"a\n(2, 3)", "leaf1": r"b\n(2, 3)", "leaf2": r"c\n(3)",
                     "op0": r"Mul\n(2, 3)", "op1": r"Add\n(2, 3)", "op2": r"Sum\n()"}
    assert edges == [("leaf0", "op0"), ("leaf1", "op0"), ("op0", "op1"), ("leaf2", "op1"),
                     ("op1", "op2")]
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")


def test_unnamed_leaves_and_a_leaf_alone():
    x = tinyconv.ones(4)  # data: no grad
    w = tinyconv.ones(4, requires_grad=True)
    nodes, edges = parse(viz.graph((x * w).relu()))
    assert nodes["leaf0"].startswith("input") and nodes["leaf1"].startswith("tensor")
    assert edges == [("leaf0", "op0"), ("leaf1", "op0"), ("op0", "op1")]
    nodes, edges = parse(viz.graph(w, params={"w": w}))
    assert nodes == {"leaf0": r"w\n(4)"} and edges == []
    with pytest.raises(TypeError):
        viz.graph([1, 2])


def test_a_model_graph_names_its_parameters():
    from tinyconv.models import CNN
    model = CNN(6)
    out = model(tinyconv.zeros(2, 1, 28, 28))
    dot = viz.graph(out, params=dict(model.named_parameters()))
    nodes, edges = parse(dot)
    labels = set(nodes.values())
    for name, p in model.named_parameters():
        assert name + r"\n(" + ", ".join(map(str, p.shape)) + ")" in labels
    assert sum(v.startswith("Conv2d") for v in labels) == 2
    assert nodes[edges[0][0]] == r"input\n(2, 1, 28, 28)"  # data flows from the images


def test_render_writes_the_dot_file_and_explains_without_graphviz(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    assert viz.render("digraph { a -> b }\n", tmp_path / "g.png") is None
    assert (tmp_path / "g.dot").read_text() == "digraph { a -> b }\n"
    assert "apt-get install graphviz" in capsys.readouterr().out
    with pytest.raises(ValueError):
        viz.render("digraph {}", tmp_path / "g.jpg")


def test_render_draws_with_graphviz(tmp_path):
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed")
    a = tinyconv.randn(2, requires_grad=True)
    out = viz.render(viz.graph((a * a).sum(), params={"a": a}), tmp_path / "g.svg")
    assert out and "<svg" in (tmp_path / "g.svg").read_text()


def test_graph_example_writes_the_dot_of_a_fashioncnn_step(tmp_path):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "examples", "graph.py"), "--out",
                           str(tmp_path / "step.svg"), "--batch-size", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    nodes, edges = parse((tmp_path / "step.dot").read_text())
    labels = list(nodes.values())
    assert r"fc1.weight\n(1000, 3136)" in labels and r"layer2.1.running_var\n(64)" in labels
    assert labels.count(r"Conv2d\n(2, 32, 28, 28)") == 1 and r"NLLLoss\n()" in labels
    # every module its own node by default (no fused op), as a student expects to see them
    assert any(label.startswith("BatchNorm") and "ReLU" not in label for label in labels)
    assert not any("BatchNormReLUMaxPool2d" in label for label in labels)
