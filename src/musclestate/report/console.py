"""The metrics summary as a rich table, for the terminal (``musclestate demo``, ``cv``, ``report``).

Library code builds the table; only the CLI prints it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from musclestate.report.results import MODEL_LABELS, as_float, summary_rows


def _f(v: float, digits: int) -> str:
    return "–" if not math.isfinite(v) else f"{v:.{digits}f}"


def metrics_tables(metrics: Mapping[str, Any]) -> list[Table]:
    """The zero-shot table, and the calibrated one where the run has calibrated models: two
    different claims (a new person as they come; a new person after their own calibration
    trials), never mixed in one table."""
    models = list(metrics.get("models", {}))
    zero = [m for m in models if not m.endswith("_calibrated")]
    cal = [m for m in models if m.endswith("_calibrated")]
    folds = metrics.get("folds", "?")
    frames = {"tracking": "tracking trials", "all": "all frames"}.get(metrics.get("frames", "all"))
    tables = [
        metrics_table(metrics, f"zero-shot: held-out participants, {frames}, {folds}-fold CV", zero)
    ]
    if cal:
        on = ", ".join(metrics.get("calibrated_on") or [])
        tables.append(
            metrics_table(
                metrics,
                f"calibrated on each held-out participant's own {on} trials: {frames}, "
                f"{folds}-fold CV",
                cal,
            )
        )
    return tables


def metrics_table(
    metrics: Mapping[str, Any], title: str | None = None, models: Sequence[str] | None = None
) -> Table:
    """Per target and model: held-out R² (mean ± SD across participants), mean r, mean RMSE
    (in the target's unit); the best R² per target in bold green.

    Args:
        metrics: parsed ``metrics.json`` of a cross-validation run.
        title: table title (default names the number of folds).
        models: the models to show (default all in the file).
    """
    rows = [r for r in summary_rows(metrics) if models is None or r["model"] in models]
    folds = metrics.get("folds", "?")
    frames = {"tracking": "tracking trials", "all": "all frames"}.get(metrics.get("frames", "all"))
    table = Table(
        title=title
        or f"held-out participants, {frames}, {folds}-fold participant-wise cross-validation",
        title_justify="left",
    )
    table.add_column("target", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("R² mean ± SD", justify="right")
    table.add_column("r", justify="right")
    table.add_column("RMSE", justify="right")
    best: dict[str, float] = {}
    for r in rows:
        if math.isfinite(r["r2_mean"]):
            best[r["target"]] = max(best.get(r["target"], -math.inf), r["r2_mean"])
    last = None
    for r in rows:
        if last is not None and r["target"] != last:
            table.add_section()
        name = f"{r['target']} ({r['unit']})" if r["target"] != last else ""
        last = r["target"]
        style = "bold green" if r["r2_mean"] == best.get(r["target"]) else None
        table.add_row(
            name,
            r["label"],
            f"{_f(r['r2_mean'], 3)} ± {_f(r['r2_sd'], 3)}",
            _f(r["r_mean"], 3),
            _f(r["rmse_mean"], 2),
            style=style,
        )
    return table


def seeds_table(seeds: Mapping[str, Any], title: str | None = None) -> Table:
    """Per target and model: the headline R² over training seeds (mean ± SD, min..max).

    Args:
        seeds: parsed ``seeds.json`` of a ``musclestate cv --seeds N`` run.
        title: table title (default names folds, seeds and frames).
    """
    frames = {"tracking": "tracking trials", "all": "all frames"}.get(seeds.get("frames", "all"))
    table = Table(
        title=title
        or f"held-out participants, {frames}, {seeds.get('folds', '?')}-fold cross-validation, "
        f"{len(seeds.get('seeds', []))} training seeds (R² over participants, then seeds)",
        title_justify="left",
    )
    table.add_column("target", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("R² mean ± SD over seeds", justify="right")
    table.add_column("min .. max", justify="right")
    models = seeds.get("models", {})
    order = [m for m in MODEL_LABELS if m in models] + [m for m in models if m not in MODEL_LABELS]
    for i, (target, info) in enumerate(seeds.get("targets", {}).items()):
        if i:
            table.add_section()
        for j, m in enumerate(order):
            s = models[m].get(target, {})
            table.add_row(
                f"{target} ({(info or {}).get('unit', '')})" if j == 0 else "",
                MODEL_LABELS.get(m, m),
                f"{_f(as_float(s.get('r2_mean')), 3)} ± {_f(as_float(s.get('r2_sd')), 3)}",
                f"{_f(as_float(s.get('r2_min')), 3)} .. {_f(as_float(s.get('r2_max')), 3)}",
            )
    return table
