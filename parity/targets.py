"""What ``lockstep`` must meet: the float64 target, the float32 rule, and the summaries that
judge a run against them."""

from __future__ import annotations

import numpy as np

# lockstep's target, float64: the relative gap between the two loss curves (issue #4). Both
# twins compute the same formulas in float64; only the order of their sums differs.
LOCKSTEP_TARGETS = {"float64": 1e-9}

# lockstep's rule, float32 (issue #16). Rounding at 2^-24 makes any float32 training run leave
# the exact trajectory, and Adam amplifies it: a parameter whose exact gradient is 0 (a conv bias
# before train-mode BatchNorm) gets rounding noise as its gradient, and Adam's update m/sqrt(v)
# turns noise comparable to its eps into steps of size lr. No float32 implementation can then stay
# within a fixed tolerance of another one for hundreds of steps; torch against itself does not.
# The reference is therefore a float64 run (rounding 2^-53: exact at this scale) from the same
# weights, batches and masks. A run's distance from it is its loss deviation, |loss - loss_float64|
# / |loss_float64| at each step: what training is about, and blind to the wandering of a bias
# that BatchNorm cancels (max |w - w_float64| is reported too, but such a bias dominates it).
# tinyconv-float32 passes when its largest deviation is at most FACTOR x torch-float32's largest
# deviation, or FLOOR:
# - FACTOR 4: two correct float32 implementations differ only in the order of their sums, which
#   moves the error by a small factor either way; a real bug (a wrong gradient, a lost term)
#   moves the loss by orders of magnitude more.
# - FLOOR 1e-6 (16 float32 roundings): when torch-float32 happens to stay almost exactly on the
#   float64 path (few steps, no amplified parameter), tinyconv is not asked to do better than
#   a handful of roundings.
FLOAT32_RULE = {"factor": 4.0, "floor": 1e-6}


def summarize(history, target):
    rel = np.array([h["rel_gap"] for h in history])
    by_step = {}
    for k in sorted(report_steps(len(history))):
        by_step[str(k)] = float(np.max(rel[:k]))
    worst = int(np.argmax(rel))
    return dict(max_rel_gap=float(rel.max()), max_rel_gap_step=worst + 1,
                max_abs_gap=float(max(h["abs_gap"] for h in history)),
                final_drift=history[-1]["drift"], max_drift=max(h["drift"] for h in history),
                max_rel_gap_by_step=by_step, target=target,
                target_met=bool(rel.max() <= target))


def summarize_float32(history, rule):
    """The largest deviations of both float32 runs from float64, and FLOAT32_RULE's verdict."""
    summary = {}
    for key in ("dist_tinyconv", "dist_torch", "loss_dev_tinyconv", "loss_dev_torch",
                "reference_twins_gap"):
        values = np.array([h[key] for h in history])
        worst = int(np.argmax(values))
        summary[f"max_{key}"] = float(values[worst])
        summary[f"max_{key}_step"] = worst + 1
        if key.startswith("dist_"):
            summary[f"max_{key}_param"] = history[worst][f"{key}_param"]
    allowed = max(rule["factor"] * summary["max_loss_dev_torch"], rule["floor"])
    reference_ok = summary["max_reference_twins_gap"] <= LOCKSTEP_TARGETS["float64"]
    summary.update(rule=dict(rule), allowed=allowed, target=allowed, reference_ok=reference_ok,
                   target_met=bool(summary["max_loss_dev_tinyconv"] <= allowed and reference_ok))
    return summary


def report_steps(steps):
    marks = {1, 2, 5, steps}
    for k in (10, 20, 50, 100, 150, 200, 300, 500, 1000):
        marks.add(k)
    return {s for s in marks if s <= steps}
