"""The report of benchmarks/kernels.py: the Markdown table, which OpenBLAS kernels ran, and the
summary of how many conv rows reach PyTorch's speed."""

from __future__ import annotations

from _common import machine_line, markdown_table


def is_conv_row(row):
    """A row of a convolution layer: conv2d itself or a fused op that starts with one."""
    kind, part = row["kernel"].split()[0], row["kernel"].split()[-1]
    return kind.startswith("conv") and part in ("forward", "backward")


def summarize(rows, ratio="ratio"):
    """For conv2d rows and fused conv rows: how many reach 1.0 forward and backward, and the
    worst three rows (forward and backward together) by ``ratio``."""
    groups = {"conv2d": [r for r in rows if is_conv_row(r) and r["kernel"].startswith("conv2d")],
              "fused conv ops": [r for r in rows if is_conv_row(r)
                                 and not r["kernel"].startswith("conv2d")]}
    summary = {}
    for group, members in groups.items():
        if not members:
            continue
        entry = {}
        for part in ("forward", "backward"):
            ratios = [r[ratio] for r in members if r["kernel"].endswith(part)]
            entry[part] = {"at_least_1": sum(x >= 1.0 for x in ratios), "rows": len(ratios)}
        worst = sorted(members, key=lambda r: r[ratio])[:3]
        entry["worst"] = [{"kernel": r["kernel"], "shape": r["shape"], "ratio": r[ratio]}
                          for r in worst]
        summary[group] = entry
    return summary


def _summary_lines(summary, title):
    lines = markdown_table(
        [title, "forward >= 1.0", "backward >= 1.0", "worst three (ratio)"], "lrrl",
        [[group, f"{e['forward']['at_least_1']} of {e['forward']['rows']}",
          f"{e['backward']['at_least_1']} of {e['backward']['rows']}",
          "; ".join(f"{w['kernel']} {w['shape']} ({w['ratio']:.2f})" for w in e["worst"])]
         for group, e in summary.items()])
    return lines + [""]


def blas_line(info, coretype=None):
    """Which OpenBLAS kernels ran tinyconv's matrix products (and the --coretype child's)."""
    set_by = (f"OPENBLAS_CORETYPE={info['openblas_coretype']}" if info["openblas_coretype"]
              else "OpenBLAS's own choice for this CPU")
    line = (f"OpenBLAS kernels for tinyconv's matrix products (numpy's BLAS; torch does not use "
            f"it): {info['blas_architecture']} ({set_by})")
    if coretype:
        line += (f"; in the {coretype['architecture']} columns: {coretype['architecture']} "
                 f"(child process with OPENBLAS_CORETYPE={coretype['requested']})")
    return line + ".  "


def markdown(rows, info, command, summary, coretype=None):
    lines = [f"Command: `{command}`  ", machine_line(info) + "  ", blas_line(info, coretype), "",
             "Median milliseconds per call, float32; ratio = torch / tinyconv (above 1: "
             "tinyconv is faster).", ""]
    header = ["kernel", "shape (one sample)", "batch", "tinyconv ms", "torch ms", "ratio"]
    align = "llrrrr"
    if coretype:
        header += [f"tinyconv ms ({coretype['architecture']})",
                   f"ratio ({coretype['architecture']})"]
        align += "rr"
    table = []
    for r in rows:
        cells = [r["kernel"], r["shape"], r["batch"], f"{r['tinyconv_ms']:.3f}",
                 f"{r['torch_ms']:.3f}", f"{r['ratio']:.2f}"]
        if coretype:
            cells += [f"{r['coretype_tinyconv_ms']:.3f}", f"{r['coretype_ratio']:.2f}"]
        table.append(cells + [", ".join(r["networks"])])
    lines += markdown_table(header + ["networks"], align + "l", table) + [""]
    if summary["default"]:
        lines += ["## Summary: conv layers against torch", "",
                  "Rows whose ratio (unrounded) is at least 1.0, forward and backward; conv2d is "
                  "the convolution alone, the fused conv ops are the runs of modules that "
                  "training computes as one op.", ""]
        lines += _summary_lines(summary["default"], f"{info['blas_architecture']} kernels")
        if coretype:
            lines += _summary_lines(summary["coretype"], f"{coretype['architecture']} kernels")
    return "\n".join(lines).rstrip() + "\n"
