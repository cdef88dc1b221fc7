"""The HTML report: built from a run folder on disk, self-contained, faithful to metrics.json."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from musclestate.errors import InputError
from musclestate.report import load_run, write_report
from musclestate.report.results import coverage

UNITS = {"ankle_angle": "deg", "ankle_moment": "N m", "mg_activation": "%MVC"}


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    sse = float(np.sum((y - p) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    rmse = float(np.sqrt(np.mean((y - p) ** 2)))
    return {
        "r2": 1 - sse / sst,
        "r": float(np.corrcoef(y, p)[0, 1]) if np.std(p) > 0 else None,
        "rmse": rmse,
        "nrmse": rmse / float(np.ptp(y)),
    }


def make_fake_run(
    run: Path,
    *,
    participants: int = 4,
    frames: int = 60,
    noise: float = 0.3,
    sd_scale: float = 1.0,
    dataset: str | None = None,
    recordings: dict[str, list[str]] | None = None,
    seed: int = 0,
) -> Path:
    """A run folder shaped like ``musclestate cv``'s output, with noisy predictions of sine targets.

    The CNN predicts ``truth + N(0, noise * SD(truth))`` with a predicted SD of ``sd_scale`` times
    the true noise level; the feature baseline has three times the noise; the mean predictor
    predicts the pooled mean.
    """
    rng = np.random.default_rng(seed)
    (run / "predictions").mkdir(parents=True)
    pids = [f"P{i + 1:02d}" for i in range(participants)]
    models: dict = {
        m: {"per_participant": {}, "summary": {}}
        for m in ("cnn", "mean_predictor", "feature_baseline")
    }
    for k, pid in enumerate(pids):
        recs = (recordings or {}).get(pid, [f"{pid}/track_01", f"{pid}/track_02"])
        rows = []
        per = {m: {} for m in models}
        cols: dict[str, dict[str, list]] = {}
        for rec in recs:
            t = np.arange(frames) / 25.0
            for j, name in enumerate(UNITS):
                y = 10 * (j + 1) * np.sin(2 * np.pi * (0.2 + 0.05 * k) * t + j) + 5 * k
                s = noise * np.std(y)
                mu = y + rng.normal(0, s, y.shape)
                c = cols.setdefault(name, {"y": [], "mu": [], "sd": [], "fb": []})
                c["y"].append(y)
                c["mu"].append(mu)
                c["sd"].append(np.full_like(y, sd_scale * s))
                c["fb"].append(y + rng.normal(0, 3 * s, y.shape))
            for i in range(frames):
                rows.append({"recording": rec, "frame": i, "t_s": f"{t[i]:.4f}"})
        for name, c in cols.items():
            y, mu, sd, fb = (np.concatenate(c[key]) for key in ("y", "mu", "sd", "fb"))
            for r, a, b, cc, d in zip(rows, y, mu, sd, fb, strict=True):
                r[name], r[f"{name}_sd"], r[f"{name}_true"] = f"{b:.6f}", f"{cc:.6f}", f"{a:.6f}"
                r[f"{name}_mean_predictor"], r[f"{name}_feature_baseline"] = "5.0", f"{d:.6f}"
            per["cnn"][name] = _metrics(y, mu)
            per["feature_baseline"][name] = _metrics(y, np.concatenate(c["fb"]))
            per["mean_predictor"][name] = _metrics(y, np.full_like(y, 5.0))
        for m in models:
            models[m]["per_participant"][pid] = per[m]
        with (run / "predictions" / f"{pid}.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    for entry in models.values():
        for name in UNITS:
            vals = {
                k: [entry["per_participant"][p][name][k] for p in pids]
                for k in ("r2", "r", "rmse", "nrmse")
            }
            entry["summary"][name] = {
                "r2_mean": float(np.mean(vals["r2"])),
                "r2_sd": float(np.std(vals["r2"], ddof=1)),
                "r_mean": None if None in vals["r"] else float(np.mean(vals["r"])),
                "rmse_mean": float(np.mean(vals["rmse"])),
                "nrmse_mean": float(np.mean(vals["nrmse"])),
            }
    metrics = {
        "targets": {n: {"unit": u} for n, u in UNITS.items()},
        "folds": participants // 2,
        "models": models,
        "calibration": {
            n: {"within_1sd": 0.5, "within_2sd": 0.9, "abs_error_sd_r": 0.1, "mean_sd": 1.0}
            for n in UNITS
        },
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.json").write_text(json.dumps({"dataset": dataset, "seed": seed}))
    return run


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


@pytest.mark.slow
def test_report_is_self_contained_and_shows_every_participant_and_target(tmp_path):
    run = make_fake_run(tmp_path / "run", participants=3, frames=40)
    out = write_report(run, tmp_path / "r.html")
    html = out.read_text(encoding="utf-8")
    assert out == tmp_path / "r.html"
    # No external assets: every src/href is an embedded image or an in-page anchor.
    for ref in re.findall(r'(?:src|href)="?([^"\s>]+)', html):
        assert ref.startswith(("data:image/png;base64,", "#")), ref
    assert "<script" not in html
    pngs = _images(html)
    # summary chart + one trace figure per target + scatter + calibration
    assert len(pngs) == 1 + len(UNITS) + 1 + 1
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 2000 for p in pngs)
    for pid in ("P01", "P02", "P03"):
        assert f"<td class=l>{pid}</td>" in html
    for name, unit in UNITS.items():
        assert f"{name} ({unit})" in html


@pytest.mark.slow
def test_report_tables_show_the_figures_of_metrics_json(tmp_path):
    run = make_fake_run(tmp_path / "run", participants=3, frames=40, seed=3)
    html = write_report(run).read_text(encoding="utf-8")
    metrics = json.loads((run / "metrics.json").read_text())
    for model in ("cnn", "feature_baseline", "mean_predictor"):
        for pid, per in metrics["models"][model]["per_participant"].items():
            for vals in per.values():
                assert f"{vals['r2']:.3f}" in html, (model, pid)
                assert f"{vals['rmse']:.3f}" in html, (model, pid)
        for summ in metrics["models"][model]["summary"].values():
            assert f"{summ['r2_mean']:.3f}" in html
    # The best model per target is marked; here that is always the CNN.
    assert html.count("<td class=best>") == len(UNITS)
    best = re.findall(
        r"<tr class=(\w+)><td class=l>[^<]*</td><td class=l>[^<]*</td><td class=best>", html
    )
    assert set(best) == {"cnn"}


@pytest.mark.slow
def test_report_without_dataset_says_why_frames_are_missing(tmp_path):
    run = make_fake_run(tmp_path / "run", participants=2, frames=20, dataset=str(tmp_path / "gone"))
    html = write_report(run).read_text(encoding="utf-8")
    assert "Example frames left out" in html
    assert "gone" in html and "not found" in html


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "metrics.json").unlink(), "musclestate cv"),
        (lambda run: (run / "metrics.json").write_text("{not json"), "cannot read metrics.json"),
        (lambda run: (run / "metrics.json").write_text('{"targets": {}}'), "no 'targets'"),
        (
            lambda run: [p.unlink() for p in (run / "predictions").glob("*.csv")],
            "no per-participant predictions",
        ),
        (
            lambda run: (run / "predictions" / "P01.csv").write_text(
                "recording,frame,t_s\nx,0,0\n"
            ),
            "lack column",
        ),
    ],
)
def test_report_refuses_incomplete_runs_naming_the_file(tmp_path, damage, message):
    run = make_fake_run(tmp_path / "run", participants=2, frames=10)
    damage(run)
    with pytest.raises(InputError, match=message):
        write_report(run)
    assert not (run / "report.html").exists()


def test_load_run_reads_predictions_back(tmp_path):
    run = make_fake_run(tmp_path / "run", participants=2, frames=15)
    res = load_run(run)
    assert res.participants == ["P01", "P02"]
    assert res.targets == tuple(UNITS)
    p = res.predictions["P02"]
    assert p.n_frames == 30 and p.recordings() == ["P02/track_01", "P02/track_02"]
    assert np.all(np.isfinite(p.sd["ankle_moment"])) and np.all(p.sd["ankle_moment"] > 0)
    assert res.dataset_path() is None


def test_coverage_matches_nominal_when_sd_is_right_and_falls_when_overconfident():
    rng = np.random.default_rng(0)
    n = 20000
    sd = rng.uniform(0.5, 2.0, n)
    true = rng.normal(0, 1, n) * sd
    nominal = np.array([0.25, 0.5, 0.9])
    calibrated = coverage(true, np.zeros(n), sd, nominal)
    assert np.allclose(calibrated, nominal, atol=0.015)
    overconfident = coverage(true, np.zeros(n), sd / 2, nominal)
    assert np.all(overconfident < nominal - 0.1)
    assert np.isnan(coverage(true, np.zeros(n), np.full(n, np.nan), nominal)).all()


@pytest.mark.slow
def test_report_calibration_table_reflects_the_spread(tmp_path):
    good = write_report(
        make_fake_run(tmp_path / "a", participants=2, sd_scale=1.0, frames=300)
    ).read_text()
    narrow = write_report(
        make_fake_run(tmp_path / "b", participants=2, sd_scale=0.3, frames=300)
    ).read_text()

    def z_rms(html: str) -> list[float]:
        table = html[html.index("RMS error / SD") :]
        table = table[: table.index("</table>")]
        rows = re.findall(r"<tr><td class=l>\w+</td>(.*?)</tr>", table)
        return [float(re.findall(r"<td>([^<]*)</td>", r)[2]) for r in rows]

    assert all(0.85 < z < 1.15 for z in z_rms(good))
    assert all(z > 2.5 for z in z_rms(narrow))
