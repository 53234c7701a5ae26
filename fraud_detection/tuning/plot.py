"""The tuning trials drawn as parallel coordinates: one panel per family, one line per trial across its
parameters (each axis its range, on the log scale where the space samples so), coloured by validation AUPRC;
pruned trials grey. Embedded in the run's report page."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fraud_detection.reports import figure_png, new_figure
from fraud_detection.tuning.space import Parameter, SearchSpace


def _position(p: Parameter, value: Any) -> float:
    """Where ``value`` sits on ``p``'s axis, 0 to 1."""
    if p.kind == "categorical":
        names = [str(c) for c in p.choices]
        return names.index(str(value)) / max(len(names) - 1, 1) if str(value) in names else math.nan
    low, high, x = float(p.low), float(p.high), float(value)
    if p.log:
        low, high, x = math.log(low), math.log(high), math.log(max(x, 1e-300))
    return (x - low) / (high - low)


def trials_png(trials: Mapping[str, Sequence[Mapping[str, Any]]], spaces: Mapping[str, SearchSpace]) -> bytes | None:
    """The figure as PNG bytes, or None without trials. ``trials``: by family, each trial's ``values`` (by
    parameter), ``auprc`` and ``state``."""
    families = [f for f in trials if trials[f] and f in spaces]
    if not families:
        return None
    from matplotlib import colormaps

    fig = new_figure(9.0, 3.2 * len(families))
    axes = fig.subplots(len(families), 1, squeeze=False)[:, 0]
    cmap = colormaps["viridis"]
    for ax, family in zip(axes, families, strict=True):
        params = spaces[family].parameters
        done = [t for t in trials[family] if t.get("state") == "complete" and math.isfinite(float(t["auprc"]))]
        scores = [float(t["auprc"]) for t in done] or [0.0]
        low, high = min(scores), max(scores)
        for t in sorted(trials[family], key=lambda t: float(t["auprc"]) if t in done else -1.0):
            ys = [_position(p, t["values"][p.name]) if p.name in t["values"] else math.nan for p in params]
            if t in done:
                shade = (float(t["auprc"]) - low) / (high - low) if high > low else 1.0
                ax.plot(range(len(params)), ys, color=cmap(shade), alpha=0.9, linewidth=1.6)
            else:
                ax.plot(range(len(params)), ys, color="0.7", alpha=0.6, linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(params)), [p.name for p in params], fontsize=8)
        ax.set_yticks([0, 1], ["low", "high"], fontsize=8)
        ax.set_title(
            f"{family}: {len(trials[family])} trials, validation AUPRC {low:.3f} to {high:.3f} "
            "(brighter = better; dashed = pruned)",
            fontsize=9,
        )
    return figure_png(fig)
