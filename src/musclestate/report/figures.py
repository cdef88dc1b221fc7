"""Figures of the report, drawn with matplotlib's object API on the Agg canvas (no GUI, no pyplot
state), each returned as a :class:`matplotlib.figure.Figure` and turned into PNG bytes by
:func:`to_png`.

All inputs come from a run folder (see :mod:`musclestate.report.results`) or from the dataset the
run was made on (example frames); nothing here trains or predicts.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from musclestate.report.results import MODEL_LABELS, ParticipantPredictions, coverage

_PRED = "#1f77b4"
_TRUE = "#222222"
_MODEL_COLOURS = {"cnn": "#1f77b4", "feature_baseline": "#ff7f0e", "mean_predictor": "#9e9e9e"}
_ROI_COLOURS = ("#e41a1c", "#4daf4a")  # MG, SOL
_LINE_COLOURS = ("#ffd92f", "#00bcd4")  # superficial, deep aponeurosis


def to_png(fig: Figure, dpi: int = 96) -> bytes:
    """Render ``fig`` to PNG bytes with the Agg canvas."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _label(target: str, unit: str) -> str:
    return f"{target.replace('_', ' ')} ({unit})" if unit else target.replace("_", " ")


def _concat_time(p: ParticipantPredictions) -> tuple[np.ndarray, list[float]]:
    """Time axis with the participant's recordings laid end to end (1 s gap between them).

    Returns the ``(N,)`` plotting times and the x positions where a new recording starts.
    """
    x = np.empty(p.n_frames)
    starts: list[float] = []
    offset = 0.0
    for rec in p.recordings():
        sel = p.recording == rec
        t = p.t_s[sel]
        t0 = float(np.nanmin(t)) if t.size else 0.0
        x[sel] = t - t0 + offset
        starts.append(offset)
        offset = float(np.nanmax(x[sel])) + 1.0 if t.size else offset
    return x, starts


def trace_figure(
    preds: Sequence[ParticipantPredictions],
    target: str,
    unit: str,
    r2: Mapping[str, float] | None = None,
) -> Figure:
    """Predicted (with a ±1 SD band) and measured traces of one target, one panel per participant,
    with the feature baseline's prediction where the predictions carry it.

    Args:
        preds: held-out participants' predictions.
        target, unit: which target and its unit (axis label).
        r2: optional participant -> held-out R^2, written in each panel's title.
    """
    n = len(preds)
    ncol = 1 if n <= 4 else 2
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(7.5 * ncol, 1.7 * nrow + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, p in zip(axes, preds, strict=False):
        x, starts = _concat_time(p)
        for k, rec in enumerate(p.recordings()):
            sel = np.flatnonzero(p.recording == rec)
            sel = sel[np.argsort(x[sel], kind="stable")]
            xs, mu, sd, y = x[sel], p.mean[target][sel], p.sd[target][sel], p.true[target][sel]
            first = k == 0
            if np.isfinite(sd).any():
                ax.fill_between(
                    xs,
                    mu - sd,
                    mu + sd,
                    color=_PRED,
                    alpha=0.25,
                    lw=0,
                    label="±1 SD" if first else None,
                )
            fb = p.baselines.get("feature_baseline", {}).get(target)
            if fb is not None:
                ax.plot(
                    xs,
                    fb[sel],
                    color=_MODEL_COLOURS["feature_baseline"],
                    lw=0.7,
                    alpha=0.8,
                    label="feature baseline" if first else None,
                )
            ax.plot(xs, y, color=_TRUE, lw=0.9, label="measured" if first else None)
            ax.plot(xs, mu, color=_PRED, lw=0.9, label="predicted" if first else None)
        for s in starts[1:]:
            ax.axvline(s - 0.5, color="#bbbbbb", lw=0.8, ls=":")
        # Scale to the measured trace and the CNN's band; a wild baseline is clipped, not
        # allowed to flatten the traces that matter.
        band = [p.true[target], p.mean[target]]
        if np.isfinite(p.sd[target]).any():
            band += [p.mean[target] - p.sd[target], p.mean[target] + p.sd[target]]
        vals = np.concatenate(band)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            lo, hi = float(vals.min()), float(vals.max())
            pad = 0.08 * (hi - lo) or 1.0
            ax.set_ylim(lo - pad, hi + pad)
        title = f"{p.participant}"
        if r2 is not None and p.participant in r2 and np.isfinite(r2[p.participant]):
            title += f"   R² = {r2[p.participant]:.2f}"
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        ax.set_ylabel(unit, fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[max(0, n - ncol) : n]:
        ax.set_xlabel("time (s), recordings end to end", fontsize=8)
    if n:
        axes[0].legend(fontsize=7, loc="upper right", ncol=4, frameon=False)
    fig.suptitle(_label(target, unit), fontsize=11)
    return fig


def scatter_figure(
    preds: Sequence[ParticipantPredictions],
    targets: Sequence[str],
    units: Mapping[str, str],
    max_points: int = 4000,
    seed: int = 0,
) -> Figure:
    """Predicted against measured, one panel per target, points coloured by participant.

    At most ``max_points`` points per panel are drawn (a fixed-seed random subset) so that a
    32-participant run keeps a small image; the identity line marks perfect prediction.
    """
    rng = np.random.default_rng(seed)
    n = len(targets)
    ncol = min(n, 2)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(4.2 * ncol, 3.9 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    colours = [f"C{i % 10}" for i in range(len(preds))]
    total = sum(p.n_frames for p in preds) or 1
    keep_frac = min(1.0, max_points / total)
    for ax, t in zip(axes, targets, strict=False):
        lo, hi = math.inf, -math.inf
        for c, p in zip(colours, preds, strict=True):
            y, mu = p.true[t], p.mean[t]
            ok = np.isfinite(y) & np.isfinite(mu)
            idx = np.flatnonzero(ok)
            if keep_frac < 1.0 and idx.size:
                idx = rng.choice(idx, size=max(1, int(idx.size * keep_frac)), replace=False)
            ax.scatter(y[idx], mu[idx], s=3, alpha=0.35, color=c, lw=0, rasterized=True)
            if idx.size:
                lo = min(lo, float(y[idx].min()), float(mu[idx].min()))
                hi = max(hi, float(y[idx].max()), float(mu[idx].max()))
        if math.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], color="#444444", lw=0.8, ls="--")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_aspect("equal", adjustable="box")
        if ax is axes[0] and len(preds) <= 12:
            handles = [
                ax.scatter([], [], s=12, color=c, label=p.participant)
                for c, p in zip(colours, preds, strict=True)
            ]
            ax.legend(handles=handles, fontsize=6, frameon=False, loc="upper left", ncol=2)
        ax.set_xlabel(f"measured ({units.get(t, '')})", fontsize=8)
        ax.set_ylabel(f"predicted ({units.get(t, '')})", fontsize=8)
        ax.set_title(t.replace("_", " "), fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def model_comparison_figure(
    metrics: Mapping, targets: Sequence[str], models: Sequence[str]
) -> Figure:
    """Bar chart of mean held-out R^2 (± SD across participants) per target and model."""
    fig = Figure(figsize=(1.9 * len(targets) + 2.2, 3.3), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(models))
    x = np.arange(len(targets))
    floor = 0.0
    for i, m in enumerate(models):
        summ = metrics["models"][m].get("summary", {})
        mean = np.array([summ.get(t, {}).get("r2_mean", np.nan) for t in targets], dtype=float)
        sd = np.array([summ.get(t, {}).get("r2_sd", np.nan) for t in targets], dtype=float)
        ax.bar(
            x + (i - (len(models) - 1) / 2) * width,
            np.nan_to_num(mean),
            width,
            yerr=np.nan_to_num(sd),
            capsize=2,
            color=_MODEL_COLOURS.get(m, f"C{i + 3}"),
            label=MODEL_LABELS.get(m, m),
        )
        for xi, v in zip(x + (i - (len(models) - 1) / 2) * width, mean, strict=True):
            if np.isfinite(v):
                ax.text(
                    xi,
                    max(v, -0.98) + (0.02 if v >= 0 else -0.02),
                    f"{v:.2f}",
                    ha="center",
                    va="bottom" if v >= 0 else "top",
                    fontsize=6.5,
                )
        if np.isfinite(mean - sd).any():
            floor = min(floor, float(np.nanmin(mean - sd)))
    ax.axhline(0.0, color="#444444", lw=0.8)
    ax.set_xticks(x, [t.replace("_", "\n") for t in targets], fontsize=8)
    ax.set_ylabel("held-out R² (mean ± SD)", fontsize=9)
    ax.set_ylim(max(floor - 0.05, -1.0), 1.05)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def calibration_figure(
    preds: Sequence[ParticipantPredictions], targets: Sequence[str]
) -> tuple[Figure, dict[str, dict[str, float]]]:
    """Coverage of the predicted ±z·SD intervals against their nominal level, per target.

    Returns the figure and, per target, the observed coverage at the 50 % and 90 % levels and the
    RMS of the standardised error ``(measured - predicted) / SD`` (1 when the spread is calibrated).
    """
    nominal = np.linspace(0.05, 0.95, 19)
    fig = Figure(figsize=(4.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#444444", lw=0.8, ls="--", label="calibrated")
    stats: dict[str, dict[str, float]] = {}
    for i, t in enumerate(targets):
        y = np.concatenate([p.true[t] for p in preds]) if preds else np.empty(0)
        mu = np.concatenate([p.mean[t] for p in preds]) if preds else np.empty(0)
        sd = np.concatenate([p.sd[t] for p in preds]) if preds else np.empty(0)
        obs = coverage(y, mu, sd, nominal)
        if not np.isfinite(obs).any():
            continue
        ax.plot(nominal, obs, marker="o", ms=3, lw=1.2, color=f"C{i}", label=t.replace("_", " "))
        ok = np.isfinite(y) & np.isfinite(mu) & np.isfinite(sd) & (sd > 0)
        z = (y[ok] - mu[ok]) / sd[ok]
        stats[t] = {
            "coverage_50": float(coverage(y, mu, sd, np.array([0.5]))[0]),
            "coverage_90": float(coverage(y, mu, sd, np.array([0.9]))[0]),
            "z_rms": float(np.sqrt(np.mean(z**2))),
        }
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal coverage of mean ± z·SD", fontsize=8)
    ax.set_ylabel("observed coverage (held-out frames)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return fig, stats


@dataclass(frozen=True)
class RoiExample:
    """One example frame with what the ROI stage found in it.

    Attributes:
        title: caption (participant, recording, frame).
        frame: ``(H, W)`` uint8 image, row 0 at the skin.
        lines: name -> ``(K, 2)`` polyline points ``(x, y)`` in pixels (e.g. aponeuroses).
        outlines: name -> ``(K, 2)`` closed polygon ``(x, y)`` in pixels (e.g. patch regions).
        patches: ``(C, h, w)`` uint8 patches the estimator sees (channel 0 MG, 1 SOL), or None.
        found: whether the ROI stage found the muscle in this frame.
    """

    title: str
    frame: np.ndarray
    lines: Mapping[str, np.ndarray]
    outlines: Mapping[str, np.ndarray]
    patches: np.ndarray | None = None
    found: bool = True


def roi_examples_figure(examples: Sequence[RoiExample]) -> Figure:
    """Example frames with their ROI overlays (left) and the patches cut from them (right)."""
    n = len(examples)
    n_patch = max((0 if e.patches is None else e.patches.shape[0]) for e in examples) if n else 0
    fig = Figure(figsize=(3.6 + 1.6 * n_patch, 3.0 * max(n, 1)), layout="constrained")
    if n == 0:
        return fig
    axes = fig.subplots(n, 1 + n_patch, squeeze=False, width_ratios=[2.2] + [1.0] * n_patch)
    for k, (row, e) in enumerate(zip(axes, examples, strict=True)):
        ax = row[0]
        ax.imshow(e.frame, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        for i, (name, pts) in enumerate(e.lines.items()):
            pts = np.asarray(pts, dtype=float)
            ax.plot(pts[:, 0], pts[:, 1], color=_LINE_COLOURS[i % 2], lw=1.2, label=name)
        for i, (name, pts) in enumerate(e.outlines.items()):
            pts = np.asarray(pts, dtype=float)
            closed = np.vstack([pts, pts[:1]])
            ax.plot(
                closed[:, 0], closed[:, 1], color=_ROI_COLOURS[i % 2], lw=1.4, ls="--", label=name
            )
        ax.set_title(e.title + ("" if e.found else "  (muscle not found)"), fontsize=8, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
        if (e.lines or e.outlines) and k == 0:
            ax.legend(fontsize=6, loc="lower right", framealpha=0.6)
        for j in range(n_patch):
            pa = row[1 + j]
            pa.set_xticks([])
            pa.set_yticks([])
            if e.patches is not None and j < e.patches.shape[0]:
                pa.imshow(e.patches[j], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                pa.set_title(("MG patch", "SOL patch")[j] if j < 2 else f"patch {j}", fontsize=8)
                for s in pa.spines.values():
                    s.set_color(_ROI_COLOURS[j % 2])
                    s.set_linewidth(2)
            else:
                pa.set_visible(False)
    return fig
