"""Draw the autograd graph behind a tensor as Graphviz DOT text.

    loss = criterion(model(images), labels)
    dot = tinyconv.viz.graph(loss, params=dict(model.named_parameters()))
    tinyconv.viz.render(dot, "graph.png")          # needs Graphviz's `dot` program

Every recorded Function call (``tensor.grad_fn`` and the nodes behind it) is one box holding the
op's name and output shape; the leaves (parameters, inputs) are ellipses, named by their
parameter name when ``params`` is given; edges point the way the data flows.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tinyconv.autograd.engine import _topological_order
from tinyconv.tensor import Tensor

__all__ = ["graph", "render"]


def _shape(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _quote(text):
    """A DOT string literal; newlines become DOT's centred line breaks (\\n)."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + text + '"'


def graph(tensor: Tensor, params=None, rankdir: str = "TB") -> str:
    """DOT text of the graph that produced ``tensor``.

    Nodes: ``op<k>`` for the k-th Function call in data-flow order (label: the Function's name
    and output shape), ``leaf<k>`` for the k-th leaf tensor (label: its name from ``params``, a
    ``{name: tensor}`` dict such as ``dict(model.named_parameters())``, else "input" or "tensor",
    and its shape). Edges go from each input to the op that consumed it, in data-flow order.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"graph(): expected a tinyconv Tensor, got {type(tensor).__name__}")
    names = {id(t): n for n, t in (params or {}).items()}
    lines = ["digraph tinyconv {",
             f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555"];']
    if tensor.grad_fn is None:
        label = names.get(id(tensor), "tensor") + "\n" + _shape(tensor.shape)
        lines.append(f"  leaf0 [shape=ellipse, label={_quote(label)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    order = list(reversed(_topological_order(tensor.grad_fn)))  # producers first
    op_ids = {id(node): f"op{k}" for k, node in enumerate(order)}
    leaf_ids = {}
    leaf_lines, op_lines, edges = [], [], []
    for node in order:
        for t in node.inputs:
            if t is None:
                continue
            if t.grad_fn is not None:
                src = op_ids[id(t.grad_fn)]
            else:
                if id(t) not in leaf_ids:
                    leaf_ids[id(t)] = f"leaf{len(leaf_ids)}"
                    name = names.get(id(t))
                    if name is not None:
                        style = 'style=filled, fillcolor="#dbe9f6"'
                    else:
                        name = "input" if not t.requires_grad else "tensor"
                        style = 'style=filled, fillcolor="#e8e8e8"'
                    label = f"{name}\n{_shape(t.shape)}"
                    leaf_lines.append(f"  {leaf_ids[id(t)]} [shape=ellipse, {style}, "
                                      f"label={_quote(label)}];")
                src = leaf_ids[id(t)]
            edges.append(f"  {src} -> {op_ids[id(node)]};")
        label = f"{node.fn.__name__}\n{_shape(node.out_shape)}"
        fill = "#fde2c8" if node is tensor.grad_fn else "#fff5d6"
        op_lines.append(f"  {op_ids[id(node)]} [shape=box, style=\"rounded,filled\", "
                        f"fillcolor=\"{fill}\", label={_quote(label)}];")
    lines += leaf_lines + op_lines + edges + ["}"]
    return "\n".join(lines) + "\n"


def render(dot: str, path, dpi: int = 96) -> str | None:
    """Write ``dot`` next to ``path`` (as ``<stem>.dot``, always) and draw it into ``path``
    (.svg, .png or .pdf) with Graphviz's ``dot`` program. Returns the picture's path, or None
    (after printing how to install Graphviz) when ``dot`` is not installed."""
    path = os.fspath(path)
    stem, ext = os.path.splitext(path)
    fmt = ext.lstrip(".").lower() or "svg"
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render(): unsupported picture format {ext!r} (use .svg, .png or .pdf)")
    dot_path = stem + ".dot"
    with open(dot_path, "w") as f:
        f.write(dot)
    exe = shutil.which("dot")
    if exe is None:
        print(f"wrote {dot_path}; Graphviz's `dot` program is not installed, so no {fmt.upper()} "
              f"was drawn. Install it (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
              f"install graphviz; conda: conda install graphviz), then run: dot -T{fmt} "
              f"{dot_path} -o {path}")
        return None
    cmd = [exe, f"-T{fmt}", dot_path, "-o", path]
    if fmt == "png":
        cmd.insert(1, f"-Gdpi={dpi}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"Graphviz failed on {dot_path}: {proc.stderr.strip()}")
    return path
