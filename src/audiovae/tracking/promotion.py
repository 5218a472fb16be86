"""The champion gate: promote a newly trained model only when it is measurably better.

A challenger is promoted when its evaluation is complete (every required metric present and
finite) and its primary metric beats the champion's by at least ``min_margin`` in the metric's
direction. The first model ever becomes champion. A failed or partial evaluation never is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger: float | None = None
    champion: float | None = None


def flat_metrics(metrics: dict) -> dict[str, float]:
    """``{"outer": {"test_rmse_db": 1}}`` -> ``{"outer.test_rmse_db": 1}``; non-numbers dropped."""
    out = {}
    for group, values in (metrics or {}).items():
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"{group}.{key}"] = float(value)
        elif isinstance(values, (int, float)) and not isinstance(values, bool):
            out[group] = float(values)
    return out


def decide(challenger: dict | None, champion: dict | None, metric: str, mode: str = "max",
           min_margin: float = 0.0, required: tuple[str, ...] = ()) -> Decision:
    """Compare flat metric dicts; ``challenger`` None means its evaluation failed."""
    if mode not in ("max", "min"):
        raise ValueError(f"retrain.mode must be 'max' or 'min', not {mode!r}")
    if not challenger:
        return Decision(False, "evaluation failed: no metrics")
    missing = [key for key in (metric, *required) if key not in challenger]
    if missing:
        return Decision(False, f"partial evaluation: missing {', '.join(missing)}")
    bad = [key for key in (metric, *required) if not math.isfinite(challenger[key])]
    if bad:
        return Decision(False, f"partial evaluation: non-finite {', '.join(bad)}")
    new = challenger[metric]
    if not champion or metric not in champion:
        return Decision(True, "first model: no champion yet", new, None)
    old = champion[metric]
    gain = (new - old) if mode == "max" else (old - new)
    if gain > min_margin:
        return Decision(True, f"{metric} improved by {gain:.4g} (> margin {min_margin:g})", new, old)
    return Decision(False, f"{metric} changed by {gain:+.4g}, not more than margin {min_margin:g}", new, old)
