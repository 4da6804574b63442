"""What ``lockstep`` writes: lockstep.json (summary and per-step history) and lockstep.png."""

from __future__ import annotations

import json
import math
import os


def plot_lockstep(history, summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [h["step"] for h in history]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    top.plot(steps, [h["loss_tinyconv"] for h in history], label="tinyconv")
    top.plot(steps, [h["loss_torch"] for h in history], "--", label="torch")
    top.set_ylabel("training loss")
    top.set_title(f"lockstep {summary['model']} {summary['dtype']} ({summary['optimizer']})")
    top.legend()
    top.grid(alpha=0.3)
    def positive(key):  # a gap of exactly 0 has no place on a log scale: leave it out
        return [h[key] if h[key] > 0 else math.nan for h in history]

    bottom.semilogy(steps, positive("rel_gap"), label="rel loss gap")
    bottom.semilogy(steps, positive("drift"), label="weight drift (max abs)")
    bottom.axhline(summary["target"], color="grey", ls=":", label=f"target {summary['target']:g}")
    bottom.set_xlabel("step")
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lockstep_float32(history, summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [h["step"] for h in history]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    top.plot(steps, [h["loss_reference"] for h in history], label="float64 (reference)")
    top.plot(steps, [h["loss_tinyconv"] for h in history], "--", label="tinyconv float32")
    top.plot(steps, [h["loss_torch"] for h in history], ":", label="torch float32")
    top.set_ylabel("training loss")
    top.set_title(f"lockstep {summary['model']}: float32 against float64 ({summary['optimizer']})")
    top.legend()
    top.grid(alpha=0.3)
    for key, label in (("loss_dev_tinyconv", "tinyconv float32"),
                       ("loss_dev_torch", "torch float32")):
        bottom.semilogy(steps, [h[key] if h[key] > 0 else math.nan for h in history],
                        label=f"{label}: |loss - loss_float64| / |loss_float64|")
    bottom.axhline(summary["allowed"], color="grey", ls=":",
                   label=f"allowed for tinyconv {summary['allowed']:.1e}")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_lockstep(out, model, dtype, history, summary, plot, elapsed):
    """lockstep.json and lockstep.png (drawn by ``plot``) into ``out`` (default
    runs/parity/lockstep-MODEL-DTYPE); says where, and how long the run took."""
    out = out or os.path.join("runs", "parity", f"lockstep-{model}-{dtype}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "lockstep.json"), "w") as f:
        json.dump({"summary": summary, "history": history}, f, indent=1)
    plot(history, summary, os.path.join(out, "lockstep.png"))
    print(f"wrote {out}/lockstep.json and {out}/lockstep.png ({elapsed:.0f} s)")
