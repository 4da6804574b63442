"""Smoke tests of the benchmark scripts (issue #5): the smallest settings, well-formed reports.

Each test runs a script's main() in this process with one round, one small network or one
kernel, into a temporary --out folder, and checks the JSON (keys, positive numbers) and the
Markdown table (one row per item). The numbers themselves are not checked: they are timings.
"""

import importlib.util
import json
import math
import platform
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(script):
    """Import benchmarks/<script>.py as a module (the folder is not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the scripts import _common from their folder
    spec = importlib.util.spec_from_file_location(f"bench_{script}", BENCH / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(out, name):
    """(JSON data, Markdown text) written by a script into the folder ``out``."""
    data = json.loads((out / f"{name}.json").read_text())
    markdown = (out / f"{name}.md").read_text()
    assert data["command"].startswith(f"python benchmarks/{name}.py")
    assert data["machine"]["threads"] == 1 and data["machine"]["cpu"]
    return data, markdown


def table_rows(markdown):
    """The body rows of the first Markdown table (header and separator left out)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table[2:]


def assert_positive(row, keys):
    for key in keys:
        assert isinstance(row[key], (int, float)) and row[key] > 0 and math.isfinite(row[key]), \
            (key, row[key])


@pytest.mark.parametrize("mode", [[], ["--same-process"]], ids=["worker processes", "one process"])
def test_throughput(tmp_path, mode):
    load("throughput").main(["--models", "fc2layer", "--rounds", "1", "--threads", "1",
                             "--out", str(tmp_path)] + mode)
    data, markdown = report(tmp_path, "throughput")
    (row,) = data["rows"]
    assert row["model"] == "fc2layer"
    assert_positive(row, ["train_tinyconv_img_s", "train_torch_img_s", "train_ratio",
                          "eval_tinyconv_img_s", "eval_torch_img_s", "eval_ratio"])
    assert len(table_rows(markdown)) == 1
    assert data["machine"]["processes"] == ("both in one process" if mode else "one process each")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="OPENBLAS_CORETYPE=Haswell names an x86 kernel set")
def test_throughput_coretype(tmp_path):
    load("throughput").main(["--models", "fc2layer", "--rounds", "1", "--threads", "1",
                             "--coretype", "Haswell", "--out", str(tmp_path)])
    data, markdown = report(tmp_path, "throughput")
    assert data["machine"]["blas"].endswith("(Haswell kernels in the tinyconv worker)")
    assert "OPENBLAS_CORETYPE=Haswell (worker processes)" in markdown
    with pytest.raises(SystemExit):  # one process cannot change its OpenBLAS kernels
        load("throughput").main(["--coretype", "Haswell", "--same-process"])


def test_kernels_collects_every_layer_shape():
    kernels = load("kernels")
    items = kernels.benchmark_items(batch=64)
    names = {(kernel, shape) for kernel, shape, _, _ in items}
    users = {(kernel, shape): networks for kernel, shape, networks, _ in items}
    # FashionCNN's layers, found by running the network, not listed by hand
    for kernel in ("conv2d forward", "conv2d backward", "im2col", "col2im"):
        assert (kernel, "32x14x14 -> 64, k3x3 s1 p1") in names
    assert ("max_pool2d backward", "64x14x14, k2x2 s2 p0") in names
    assert ("batch_norm forward", "32x28x28") in names
    assert ("linear backward", "3136 -> 1000") in names
    assert ("cross_entropy forward", "64x10 logits") in names
    assert ("conv2d forward", "6x12x12 -> 6, k5x5 s1 p0") in names  # CNN, via F.conv2d
    assert ("max_pool2d forward", "6x8x8, k2x2 s2 p0") in names  # CNN's functional max-pool
    assert len(names) == len(items)  # each shape once
    # every conv layer of every network, the CIFAR LeNet and VGG included, with its users
    conv = {shape: users[(kernel, shape)] for kernel, shape in names
            if kernel == "conv2d backward"}
    assert conv == {
        "1x28x28 -> 32, k3x3 s1 p1": ["fashioncnn", "deepfashioncnn", "convmodule"],
        "32x14x14 -> 64, k3x3 s1 p1": ["fashioncnn", "deepfashioncnn", "convmodule"],
        "32x28x28 -> 32, k3x3 s1 p1": ["deepfashioncnn"],
        "64x14x14 -> 64, k3x3 s1 p1": ["deepfashioncnn"],
        "1x28x28 -> 6, k5x5 s1 p0": ["cnn"], "6x12x12 -> 6, k5x5 s1 p0": ["cnn"],
        "3x32x32 -> 6, k5x5 s1 p0": ["lenet"], "6x14x14 -> 16, k5x5 s1 p0": ["lenet"],
        "3x32x32 -> 64, k3x3 s1 p1": ["vgg"], "64x16x16 -> 128, k3x3 s1 p1": ["vgg"],
        "128x8x8 -> 256, k3x3 s1 p1": ["vgg"], "256x8x8 -> 256, k3x3 s1 p1": ["vgg"],
        "256x4x4 -> 512, k3x3 s1 p1": ["vgg"], "512x4x4 -> 512, k3x3 s1 p1": ["vgg"],
        "512x2x2 -> 512, k3x3 s1 p1": ["vgg"]}
    # the fused ops, as nn.Sequential runs them in training
    fused = {(kernel, shape): users[(kernel, shape)] for kernel, shape in names
             if "+" in kernel and kernel.endswith("forward")}
    assert fused == {
        ("conv+bn+relu+maxpool forward", "1x28x28 -> 32, k3x3 s1 p1"): ["fashioncnn"],
        ("conv+bn+relu+maxpool forward", "32x14x14 -> 64, k3x3 s1 p1"): ["fashioncnn"],
        ("conv+maxpool+relu forward", "1x28x28 -> 32, k3x3 s1 p1, ReLU in place"):
            ["convmodule"],
        ("conv+maxpool+relu forward", "32x14x14 -> 64, k3x3 s1 p1, ReLU in place"):
            ["convmodule"],
        ("conv+relu+maxpool forward", "32x28x28 -> 32, k3x3 s1 p1"): ["deepfashioncnn"],
        ("conv+relu+maxpool forward", "64x14x14 -> 64, k3x3 s1 p1"): ["deepfashioncnn"],
        # VGG: the conv layers followed by a pooling (the others run unfused)
        **{("conv+bn+relu+maxpool forward", f"{layer}, k3x3 s1 p1, ReLU in place"): ["vgg"]
           for layer in ("3x32x32 -> 64", "64x16x16 -> 128", "256x8x8 -> 256",
                         "512x4x4 -> 512", "512x2x2 -> 512")},
        # the fused epilogue alone, at the conv outputs it follows
        ("bn+relu+maxpool forward", "32x28x28"): ["fashioncnn"],
        ("bn+relu+maxpool forward", "64x14x14"): ["fashioncnn"],
        **{("bn+relu+maxpool forward", f"{size}, ReLU in place"): ["vgg"]
           for size in ("64x32x32", "128x16x16", "256x8x8", "512x4x4", "512x2x2")}}
    only_cnn = kernels.benchmark_items(batch=64, networks=["cnn"])
    assert {networks[0] for _, _, networks, _ in only_cnn} == {"cnn", "all"}


def test_kernels(tmp_path):
    rows = load("kernels").main(["--rounds", "1", "--threads", "1", "--batch", "4",
                                 "--only", "6x12x12", "--out", str(tmp_path)])
    data, markdown = report(tmp_path, "kernels")
    kinds = [row["kernel"] for row in data["rows"]]
    assert kinds == ["conv2d forward", "conv2d backward", "im2col", "col2im"]
    for row in data["rows"]:
        assert row["shape"] == "6x12x12 -> 6, k5x5 s1 p0" and row["networks"] == ["cnn"]
        assert_positive(row, ["tinyconv_ms", "torch_ms", "ratio", "repeat"])
    assert len(table_rows(markdown)) == len(rows) == 4
    assert data["machine"]["blas_architecture"] in markdown  # which OpenBLAS kernels ran
    (conv,) = data["summary"]["default"].values()  # conv2d only: no fused row was timed
    assert conv["forward"]["rows"] == conv["backward"]["rows"] == 1
    assert "## Summary" in markdown


def test_kernels_fused_ops(tmp_path):
    rows = load("kernels").main(["--rounds", "1", "--threads", "1", "--batch", "2",
                                 "--networks", "convmodule", "fashioncnn", "--only", "conv+",
                                 "--out", str(tmp_path)])
    assert [(r["kernel"], r["networks"]) for r in rows] == [
        ("conv+bn+relu+maxpool forward", ["fashioncnn"]),
        ("conv+bn+relu+maxpool backward", ["fashioncnn"])] * 2 + [
        ("conv+maxpool+relu forward", ["convmodule"]),
        ("conv+maxpool+relu backward", ["convmodule"])] * 2
    for row in rows:
        assert_positive(row, ["tinyconv_ms", "torch_ms", "ratio", "repeat"])


def test_kernels_summary():
    kernels = load("kernels")

    def row(kernel, ratio):
        return {"kernel": kernel, "shape": f"s{ratio}", "ratio": ratio}
    rows = [row("conv2d forward", 1.0), row("conv2d backward", 0.99),
            row("conv2d forward", 0.5), row("conv2d backward", 2.0), row("im2col", 0.1),
            row("conv+maxpool+relu forward", 1.2), row("conv+maxpool+relu backward", 0.7),
            row("max_pool2d forward", 0.2), row("bn+relu+maxpool forward", 0.3)]
    summary = kernels.summarize(rows)
    assert summary["conv2d"]["forward"] == {"at_least_1": 1, "rows": 2}
    assert summary["conv2d"]["backward"] == {"at_least_1": 1, "rows": 2}
    assert [w["ratio"] for w in summary["conv2d"]["worst"]] == [0.5, 0.99, 1.0]
    assert summary["fused conv ops"]["forward"] == {"at_least_1": 1, "rows": 1}
    assert [w["ratio"] for w in summary["fused conv ops"]["worst"]] == [0.7, 1.2]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="OPENBLAS_CORETYPE=Haswell names an x86 kernel set")
def test_kernels_coretype(tmp_path):
    rows = load("kernels").main(["--rounds", "1", "--threads", "1", "--batch", "2",
                                 "--networks", "cnn", "--only", "6x8x8", "--coretype", "Haswell",
                                 "--out", str(tmp_path)])
    data, markdown = report(tmp_path, "kernels")
    assert [r["kernel"] for r in rows] == ["max_pool2d forward", "max_pool2d backward"]
    assert data["coretype"]["architecture"] == "Haswell"  # the child really got them
    for r in data["rows"]:
        assert_positive(r, ["coretype_tinyconv_ms", "coretype_ratio"])
    assert "tinyconv ms (Haswell)" in markdown and "OPENBLAS_CORETYPE=Haswell" in markdown


def test_kernels_unknown_only(tmp_path):
    with pytest.raises(SystemExit):
        load("kernels").main(["--only", "no such kernel", "--out", str(tmp_path)])


def test_memory(tmp_path):
    load("memory").main(["--models", "fc2layer", "--steps", "2", "--batch", "8",
                         "--threads", "1", "--out", str(tmp_path)])
    data, markdown = report(tmp_path, "memory")
    (row,) = data["rows"]
    assert row["model"] == "fc2layer" and row["steps"] == 2
    assert row["tinyconv_torch_imported"] is False  # the tinyconv child never imported torch
    assert row["children"]["torch"]["torch_imported"] is True
    assert_positive(row, ["peak_tinyconv_mib", "peak_torch_mib", "peak_ratio",
                          "baseline_tinyconv_mib", "baseline_torch_mib"])
    for fw in ("tinyconv", "torch"):
        assert row[f"peak_{fw}_mib"] >= row[f"baseline_{fw}_mib"]
    assert "lower is better" in markdown
    assert len(table_rows(markdown)) == 1


def check_startup(out, model):
    data, markdown = report(out, "startup")
    rows = data["rows"]
    assert [(r["framework"], r["run"]) for r in rows] == [
        ("tinyconv", 1), ("tinyconv", 2), ("torch", 1), ("torch", 2)]
    for row in rows:
        assert row["model"] == model
        assert_positive(row, ["wall_s", "import_s", "first_step_s", "since_top_s"])
        assert row["wall_s"] > row["since_top_s"]  # the interpreter starts before the script
    assert not any(r["torch_imported"] for r in rows if r["framework"] == "tinyconv")
    assert all(r["cache_files"] > 0 for r in rows if r["framework"] == "tinyconv")
    (summary,) = data["summaries"]
    assert summary["model"] == model
    assert len(table_rows(markdown)) == 4
    return summary


def test_startup_with_the_default_numba_cache(tmp_path):
    # numba's own cache (usually filled by earlier tests): no compilation from scratch here
    load("startup").main(["--models", "fc2layer", "--batch", "8", "--threads", "1",
                          "--cache-dir", "default", "--out", str(tmp_path)])
    check_startup(tmp_path, "fc2layer")


@pytest.mark.slow
def test_startup_from_an_empty_numba_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    load("startup").main(["--models", "fashioncnn", "--threads", "1", "--cache-dir",
                          str(cache), "--out", str(tmp_path)])
    summary = check_startup(tmp_path, "fashioncnn")
    assert summary["cold_first_run"] and summary["cache_files_written"] > 0
    assert summary["compile_s"] > 0  # the second run loads what the first one compiled
