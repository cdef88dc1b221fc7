"""Architecture per image (aponeurosis lines, thickness, fascicle angle) and the evaluation
against observers' labels: synthetic images with known geometry, then a few real images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musclestate.architecture.evaluate import read_labels, summarise
from musclestate.architecture.measure import (
    ArchitectureConfig,
    Line,
    band_inner_edges,
    continuous_ridge_map,
    deep_line_search,
    inner_thickness_px,
    line_projection_scores,
    measure_image,
    thickness_at_column,
)
from musclestate.errors import InputError


@pytest.mark.parametrize("angle", [-35.0, -18.0, 14.0, 27.0])
def test_measure_image_finds_known_angle_and_thickness(angle: float, synthetic_muscle) -> None:
    img, prob = synthetic_muscle(angle, seed=int(abs(angle)))
    m = measure_image(img, prob)
    assert m.found and m.deep_source == "network"
    assert abs(m.fascicle_angle_deg - angle) <= 1.0
    # bands centred on rows 40 and 240, 9 rows thick: inner edges 200 - 9 apart (+-2 px)
    assert abs(m.thickness_px - 191) <= 3
    assert abs(m.superficial_angle_deg) < 0.5 and abs(m.deep_angle_deg) < 0.5
    assert m.pennation_deg == pytest.approx(abs(angle), abs=1.0)


def test_deep_band_missed_by_network_is_found_by_line_search(synthetic_muscle) -> None:
    img, prob = synthetic_muscle(20.0)
    prob[200:] = 0.0  # the network "misses" the deep band
    m = measure_image(img, prob)
    assert m.found and m.deep_source == "line search"
    assert abs(m.deep_row_px - 240) <= 3
    assert any("line search" in i for i in m.issues)


def test_no_band_means_not_found(synthetic_muscle) -> None:
    img, _ = synthetic_muscle(20.0)
    m = measure_image(img, np.zeros(img.shape, np.float32))
    assert not m.found and np.isnan(m.fascicle_angle_deg) and np.isnan(m.thickness_px)


def test_projection_score_peaks_at_line_angle_irrespective_of_length(synthetic_muscle) -> None:
    """Lines of 30 deg in a wide, flat region: the score must peak there, not at a flatter angle
    (where lines across the region are longer)."""
    img, _ = synthetic_muscle(30.0)
    region = np.zeros(img.shape, bool)
    region[60:220, 20:380] = True
    angles = np.arange(-60.0, 60.5, 0.5)
    scores = line_projection_scores(img.astype(np.float64), region, angles)
    assert abs(angles[np.argmax(scores)] - 30.0) <= 1.0


def test_inner_thickness_between_band_edges(synthetic_muscle) -> None:
    img, _ = synthetic_muscle(20.0, sup=50, deep=200)
    t = inner_thickness_px(img, Line(50.0, 0.0), Line(200.0, 0.0))
    assert abs(t - 141) <= 3


@pytest.mark.parametrize("use_mask", [False, True])
def test_band_inner_edges_face_the_muscle(synthetic_muscle, use_mask: bool) -> None:
    """Bands on rows 36-44 and 236-244: the superficial band's inner edge is its deep edge (44.5),
    the deep band's its superficial edge (235.5), from the grey levels or from the mask."""
    img, prob = synthetic_muscle(20.0)
    w = img.shape[1]
    mask = prob > 0.5 if use_mask else None
    top = band_inner_edges(img, np.full(w, 40.0), +1, 20.0, 20.0, mask)
    bottom = band_inner_edges(img, np.full(w, 240.0), -1, 20.0, 20.0, mask)
    assert np.nanmedian(top) == pytest.approx(44.5, abs=1.0)
    assert np.nanmedian(bottom) == pytest.approx(235.5, abs=1.0)
    # the outer edges are not taken: the edge lies on the muscle's side of each band
    assert np.nanmedian(top) > 40 and np.nanmedian(bottom) < 240


def test_band_inner_edges_rejects_bad_direction(synthetic_muscle) -> None:
    img, _ = synthetic_muscle(20.0)
    with pytest.raises(InputError, match="towards"):
        band_inner_edges(img, np.full(img.shape[1], 40.0), 0, 5.0, 5.0)


@pytest.mark.parametrize(
    ("column", "span", "expected"),
    [
        (0.0, 4.0, 150.2),  # left edge: columns 0..4, distance 150 + 0.05 c
        (100.0, 4.0, 155.0),  # centre of the columns 96..104
        (199.0, 10.0, 159.7),  # right edge, one-sided
    ],
)
def test_thickness_at_column_reads_where_asked(column: float, span: float, expected: float) -> None:
    cols = np.arange(200, dtype=np.float64)
    sup = 50.0 + 0.0 * cols
    deep = 200.0 + 0.05 * cols
    assert thickness_at_column(sup, deep, column, span) == pytest.approx(expected, abs=0.1)


def test_thickness_at_column_ignores_missing_columns() -> None:
    sup = np.array([10.0, np.nan, 10.0, 10.0, 10.0])
    deep = np.array([30.0, 30.0, np.nan, 31.0, 32.0])
    assert thickness_at_column(sup, deep, 0.0, 10.0) == pytest.approx(21.0)
    assert np.isnan(thickness_at_column(sup[:2], deep[:2], 0.0, 10.0))


def test_line_search_prefers_a_continuous_faint_band_over_bright_fascicles(
    synthetic_muscle,
) -> None:
    """The deep band made fainter than the (bright, oblique) fascicles and absent from the
    probability: the search follows the continuous band, not the brighter stripes."""
    img, prob = synthetic_muscle(25.0, seed=3)
    img = img.astype(np.float64)
    img[236:245] = 95.0  # fainter than the stripes (up to 110 + speckle)
    img = np.clip(img, 0, 255).astype(np.uint8)
    prob[200:] = 0.0
    deep = deep_line_search(img, prob, Line(40.0, 0.0), ArchitectureConfig())
    assert deep is not None and abs(deep.row_c - 240) <= 3 and abs(deep.angle_deg) <= 1.0
    ridge = continuous_ridge_map(img.astype(np.float32), 3.0)
    assert ridge[238:243].mean() > 0.9 > ridge[100:200].mean()


def test_measure_image_rejects_mismatched_shapes() -> None:
    with pytest.raises(InputError, match="same shape"):
        measure_image(np.zeros((10, 10), np.uint8), np.zeros((10, 11), np.float32))


def test_config_checks_itself() -> None:
    with pytest.raises(InputError):
        ArchitectureConfig(margin=0.6)


def _write_labels(folder: Path, rows: list[dict]) -> Path:
    path = folder / "labels.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_read_labels_groups_observers_and_reads_roi(tmp_path: Path) -> None:
    base = {"dataset": "1", "subject": "A", "image": "a.png", "thickness_px": "100"}
    rows = [
        {
            **base,
            "observer": o,
            "fascicle_angle_deg": str(v),
            "roi_x0": "2",
            "roi_x1": "9",
            "roi_y0": "3",
            "roi_y1": "8",
        }
        for o, v in (("x", 10.0), ("y", 12.0), ("z", 14.0))
    ]
    items = read_labels(_write_labels(tmp_path, rows))
    assert len(items) == 1
    assert items[0].fascicle_angle_deg == (10.0, 12.0, 14.0)
    assert items[0].roi == (2, 9, 3, 8)


def test_read_labels_names_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("dataset,image\n1,a.png\n")
    with pytest.raises(InputError, match="lacks column"):
        read_labels(path)


def test_summarise_observer_floor_is_one_against_the_others() -> None:
    rec = {
        "found": True,
        "fascicle_angle_error_deg": -2.0,
        "thickness_error_px": 4.0,
        "observer_fascicle_angle_mae_deg": 1.0,
        "observer_thickness_mae_px": 3.0,
    }
    s = summarise([rec, {**rec, "found": False, "fascicle_angle_error_deg": 50.0}])
    assert s["images"] == 2 and s["found"] == 1
    assert s["fascicle_angle_mae_deg"] == 2.0 and s["thickness_mae_px"] == 4.0


@pytest.mark.slow
def test_cli_evaluate_json_on_synthetic_labels(tmp_path: Path, synthetic_muscle) -> None:
    """End to end through the shipped segmenter on two synthetic screen images."""
    from PIL import Image

    from musclestate.cli import app

    rows = []
    for i, angle in enumerate((15.0, 25.0)):
        img, _ = synthetic_muscle(-angle, seed=i)
        screen = np.zeros((340, 440), np.uint8)
        screen[20:320, 20:420] = img
        Image.fromarray(screen).save(tmp_path / f"im{i}.png")
        for obs, d in (("a", -0.5), ("b", 0.5)):
            rows.append(
                {
                    "dataset": "9",
                    "subject": f"s{i}",
                    "image": f"im{i}.png",
                    "observer": obs,
                    "fascicle_angle_deg": str(angle + d),
                    "thickness_px": "191",
                    "roi_x0": "21",
                    "roi_x1": "420",
                    "roi_y0": "21",
                    "roi_y1": "320",
                }
            )
    labels = _write_labels(tmp_path, rows)
    res = CliRunner().invoke(
        app, ["architecture", "evaluate", str(tmp_path), str(labels), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    ds = out["datasets"]["9"]
    assert set(ds) == {
        "images",
        "found",
        "fascicle_angle_mae_deg",
        "thickness_mae_px",
        "observer_fascicle_angle_mae_deg",
        "observer_thickness_mae_px",
    }
    assert ds["images"] == 2
    assert ds["observer_fascicle_angle_mae_deg"] == pytest.approx(1.0)
    assert out["overall"]["images"] == 2


def test_real_timtrack_images_within_reach_of_observers(shared_data: Path, tmp_path: Path) -> None:
    """Four real images of different people and scanners (one per subject group): the fascicle
    angle magnitude lies within 4 deg of the observers' mean on each."""
    from musclestate.architecture.evaluate import evaluate_architecture

    root = shared_data / "timtrack-architecture"
    items = read_labels(root / "labels.csv")
    pick = {}
    for it in items:
        pick.setdefault(it.subject, it)
    names = {pick[s].image for s in ("S2", "S5", "LG1", "p6")}
    with (root / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["image"] in names]
    res = evaluate_architecture(root, _write_labels(tmp_path, rows))
    assert res["overall"]["images"] == 4 and res["overall"]["found"] == 4
    for rec in res["images"]:
        assert abs(rec["fascicle_angle_error_deg"]) <= 4.0, rec["image"]


def test_real_thickness_read_at_left_edge_between_inner_edges(shared_data: Path) -> None:
    """Dataset 3 of the TimTrack observer data (MG, drazan2019-mg p6): the observers read
    thickness between the bands' inner edges at the image's left edge. Read there, five images
    lie within 8 px of the observers' mean; read between the band centres at the image's centre
    (the old convention) they lie further than 10 px off."""
    from musclestate.architecture.evaluate import load_labelled
    from musclestate.roi.segment import load_segmenter

    root = shared_data / "timtrack-architecture"
    items = [it for it in read_labels(root / "labels.csv") if it.dataset == "3"][::20]
    seg = load_segmenter()
    for it in items:
        image = load_labelled(root, it)
        m = measure_image(image, seg.predict(image))
        obs = float(np.mean(it.thickness_px))
        assert m.found and m.deep_source == "network", it.image
        assert abs(m.thickness_px - obs) <= 8.0, (it.image, m.thickness_px, obs)
        assert m.deep_row_px - m.superficial_row_px - obs > 10.0, it.image
