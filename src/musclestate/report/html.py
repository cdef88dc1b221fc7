"""The cross-validation report: one self-contained HTML file (figures embedded as base64 PNG, CSS
inline, no scripts, no external assets), built only from a run folder on disk and the dataset it
names.

Sections: summary (CNN against the mean predictor and the feature baseline), per target the
predicted and measured traces of every held-out participant with the predicted SD band and a
scatter plot, the per-participant metrics table, calibration of the predicted spread, example
frames with their ROI overlays, and the resolved configuration.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from musclestate import __version__
from musclestate._atomic import write_text_atomic
from musclestate.errors import MusclestateError
from musclestate.report import figures
from musclestate.report.results import (
    MODEL_LABELS,
    RunResults,
    as_float,
    load_run,
    summary_rows,
)

log = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 1.2em 2em 3em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd;
     padding-bottom: 0.2em; margin-top: 2em; } h3 { margin-bottom: 0.3em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.cnn td { font-weight: 600; } td.best { background: #e3f1e3; }
img { max-width: 100%; height: auto; display: block; margin: 0.4em 0; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
details pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
nav a { margin-right: 1em; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any, digits: int = 3) -> str:
    v = as_float(x)
    if not math.isfinite(v):
        return "–"
    return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.3g}"


def _img(fig: Any, alt: str) -> str:
    data = base64.b64encode(figures.to_png(fig)).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _summary_table(metrics: Mapping[str, Any]) -> str:
    rows = summary_rows(metrics)
    head = (
        "<tr><th class=l>target</th><th class=l>model</th><th>R² mean</th><th>R² SD</th>"
        "<th>r mean</th><th>RMSE mean</th><th>NRMSE mean</th></tr>"
    )
    best: dict[str, float] = {}
    for r in rows:
        if math.isfinite(r["r2_mean"]):
            best[r["target"]] = max(best.get(r["target"], -math.inf), r["r2_mean"])
    body = []
    for r in rows:
        is_best = math.isfinite(r["r2_mean"]) and r["r2_mean"] == best.get(r["target"])
        unit = f" ({_e(r['unit'])})" if r["unit"] else ""
        body.append(
            f"<tr class={_e(r['model'])}><td class=l>{_e(r['target'])}{unit}</td>"
            f"<td class=l>{_e(r['label'])}</td>"
            f"<td{' class=best' if is_best else ''}>{_fmt(r['r2_mean'])}</td>"
            f"<td>{_fmt(r['r2_sd'])}</td><td>{_fmt(r['r_mean'])}</td>"
            f"<td>{_fmt(r['rmse_mean'])}</td><td>{_fmt(r['nrmse_mean'])}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _frames_note(metrics: Mapping[str, Any]) -> str:
    if metrics.get("frames") == "tracking":
        return (
            "<p>Headline: the <b>tracking trials</b>, where ankle angle and activation vary "
            "independently (the protocol of Cunningham &amp; Loram 2019). All frames and each "
            "trial type follow below the table.</p>"
        )
    return "<p>Headline: all frames (the recordings carry no tracking-trial label).</p>"


def _beside_headline(metrics: Mapping[str, Any]) -> list[str]:
    """Collapsed tables of the same metrics over all frames and per trial type."""
    targets = metrics.get("targets", {})
    blocks = []
    if "all_frames" in metrics and metrics.get("frames") != "all":
        blocks.append(("all frames", metrics["all_frames"]))
    for task, block in metrics.get("by_trial_type", {}).items():
        if task != metrics.get("frames"):
            blocks.append((f"{task} trials ({block.get('n_frames', '?')} frames)", block))
    return [
        f"<details><summary>{_e(label)}</summary>"
        f"{_summary_table({'targets': targets, 'models': block.get('models', {})})}</details>"
        for label, block in blocks
    ]


def _participant_table(res: RunResults, model: str) -> str:
    per = res.metrics["models"][model].get("per_participant", {})
    pids = sorted(per)
    head = "<tr><th class=l rowspan=2>participant</th>" + "".join(
        f"<th colspan=4>{_e(t)} ({_e(res.units[t])})</th>" for t in res.targets
    )
    head += "</tr><tr>" + "<th>R²</th><th>r</th><th>RMSE</th><th>NRMSE</th>" * len(res.targets)
    head += "</tr>"
    body = []
    for pid in pids:
        cells = []
        for t in res.targets:
            m = per[pid].get(t, {})
            cells += [_fmt(m.get(k)) for k in ("r2", "r", "rmse", "nrmse")]
        body.append(
            f"<tr><td class=l>{_e(pid)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _calibration_table(res: RunResults, stats: Mapping[str, Mapping[str, float]]) -> str:
    """Coverage of the predicted spread per target: from the predictions (50 % / 90 % intervals,
    RMS standardised error) and, where metrics.json has them, the stored ±1/±2 SD figures."""
    stored = res.metrics.get("calibration")
    stored = stored if isinstance(stored, Mapping) else {}
    head = ["target", "within ±0.674 SD (50 %)", "within ±1.645 SD (90 %)", "RMS error / SD"]
    has_stored = any(isinstance(stored.get(t), Mapping) for t in res.targets)
    if has_stored:
        head += ["within ±1 SD (68.3 %)", "within ±2 SD (95.4 %)", "r(|error|, SD)", "mean SD"]
    rows = []
    for t in res.targets:
        s = stats.get(t, {})
        cells = [
            f"{_fmt(100 * as_float(s.get('coverage_50')), 1)} %",
            f"{_fmt(100 * as_float(s.get('coverage_90')), 1)} %",
            _fmt(s.get("z_rms"), 2),
        ]
        if has_stored:
            c = stored.get(t) or {}
            cells += [
                f"{_fmt(100 * as_float(c.get('within_1sd')), 1)} %",
                f"{_fmt(100 * as_float(c.get('within_2sd')), 1)} %",
                _fmt(c.get("abs_error_sd_r"), 2),
                f"{_fmt(c.get('mean_sd'), 3)} {_e(res.units[t])}",
            ]
        rows.append(
            f"<tr><td class=l>{_e(t)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    header = "".join(f"<th{' class=l' if i == 0 else ''}>{_e(h)}</th>" for i, h in enumerate(head))
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _roi_section(res: RunResults, n_examples: int) -> str:
    from musclestate.report.roi_examples import load_roi_examples

    if n_examples <= 0:
        return "<p>No example frames were asked for.</p>"
    try:
        examples, note = load_roi_examples(res, n_examples)
    except MusclestateError as exc:
        log.warning("example frames left out of the report: %s", exc)
        return f"<p class=note>Example frames left out: {_e(exc)}</p>"
    parts = []
    if note:
        parts.append(f"<p class=note>{_e(note)}</p>")
    if examples:
        parts.append(_img(figures.roi_examples_figure(examples), "example frames with ROI"))
    return "".join(parts)


def render_report(res: RunResults, *, n_examples: int = 4) -> str:
    """The report of a loaded run as one HTML string (see the module docstring)."""
    preds = [res.predictions[p] for p in res.participants]
    cnn_pp = res.metrics["models"]["cnn"].get("per_participant", {})
    folds = res.metrics.get("folds", "?")
    n_frames = sum(p.n_frames for p in preds)
    ds = res.dataset_path()
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    s: list[str] = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>musclestate report: {_e(res.run_dir.name)}</title><style>{_CSS}</style></head>",
        "<body>",
        f"<h1>musclestate cross-validation report: {_e(res.run_dir.name)}</h1>",
        f"<p class=meta>{len(preds)} held-out participants, {folds} participant-wise folds, "
        f"{n_frames} held-out frames, targets: {', '.join(_e(t) for t in res.targets)}. "
        f"Dataset: {_e(ds) if ds else 'not recorded'}. Run folder: {_e(res.run_dir.resolve())}. "
        f"Written {when} by musclestate {__version__}.</p>",
        "<nav><a href=#summary>summary</a><a href=#targets>traces</a>"
        "<a href=#participants>per participant</a><a href=#calibration>calibration</a>"
        "<a href=#frames>example frames</a><a href=#config>configuration</a></nav>",
        "<h2 id=summary>Summary: CNN against the baselines</h2>",
        "<p>Every figure is on participants the model never saw: each fold trains on the other "
        "participants (early stopping and normalisation on validation participants from the "
        "training side only) and predicts the held-out ones. R² = 1 − SSE/SST over one "
        "participant's frames, then mean ± SD across participants; NRMSE = RMSE / range. "
        "The mean predictor outputs the training participants' mean (no images); the feature "
        "baseline fits ridge regression on architecture measures (thickness, pennation, "
        "aponeurosis angle, echo intensity) in the same folds.</p>",
        _frames_note(res.metrics),
        _summary_table(res.metrics),
        *_beside_headline(res.metrics),
        _img(
            figures.model_comparison_figure(res.metrics, res.targets, res.models),
            "held-out R2 per model",
        ),
        "<h2 id=targets>Predicted and measured, per target</h2>",
    ]
    for t in res.targets:
        r2 = {pid: as_float(m.get(t, {}).get("r2")) for pid, m in cnn_pp.items()}
        s.append(f"<h3>{_e(t.replace('_', ' '))} ({_e(res.units[t])})</h3>")
        s.append(_img(figures.trace_figure(preds, t, res.units[t], r2), f"{t} traces"))
    s.append("<h3>Predicted against measured</h3>")
    s.append(_img(figures.scatter_figure(preds, res.targets, res.units), "scatter plots"))
    s.append("<h2 id=participants>Per held-out participant</h2>")
    for m in res.models:
        s.append(f"<h3>{_e(MODEL_LABELS.get(m, m))}</h3>")
        s.append(_participant_table(res, m))
    s.append("<h2 id=calibration>Calibration of the predicted spread</h2>")
    fig, stats = figures.calibration_figure(preds, res.targets)
    if stats:
        s.append(
            "<p>Fraction of held-out frames whose measured value lies within the predicted "
            "mean ± z·SD, against the fraction a Gaussian with that SD would give. Below the "
            "diagonal the spread is too narrow (over-confident).</p>"
        )
        s.append(_img(fig, "calibration"))
    else:
        s.append("<p class=note>The predictions carry no SD, so calibration cannot be shown.</p>")
    s.append(_calibration_table(res, stats))
    s.append("<h2 id=frames>Example frames and their ROI</h2>")
    s.append(_roi_section(res, n_examples))
    s.append("<h2 id=config>Configuration</h2>")
    s.append(
        "<details><summary>resolved configuration (config.json)</summary><pre>"
        + _e(json.dumps(res.config, indent=2, default=str))
        + "</pre></details>"
    )
    s.append("</body></html>\n")
    return "\n".join(s)


def write_report(
    run_dir: str | Path, out: str | Path | None = None, *, n_examples: int = 4
) -> Path:
    """Write the HTML report of a cross-validation run folder and return its path.

    Args:
        run_dir: folder written by ``musclestate cv`` (metrics.json, predictions/, config.json).
        out: HTML file to write; default ``run_dir/report.html``. Written atomically.
        n_examples: number of example frames with ROI overlays (one per held-out participant).

    Raises:
        InputError: the run folder lacks metrics.json or predictions, or they are malformed.
    """
    res = load_run(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    log.info("writing report of %s (%d participants) to %s", run_dir, len(res.predictions), out)
    text = render_report(res, n_examples=n_examples)
    return write_text_atomic(out, text)


__all__: Sequence[str] = ("render_report", "write_report")
