"""MG/SOL patches straightened along the aponeuroses, and the manual ROI fallback."""

from __future__ import annotations

import numpy as np
import pytest

from musclestate.errors import InputError
from musclestate.roi.geometry import MuscleGeometry
from musclestate.roi.patches import ManualROI, PatchConfig, extract_patches, sample_grid

H, W = 100, 140


def geometry(
    sup: float, deep: float, slope: float = 0.0, sol_depth_mm: float = 8.0
) -> MuscleGeometry:
    x = np.arange(W)
    return MuscleGeometry(
        shape=(H, W),
        pixel_spacing_mm=(0.5, 0.5),
        superficial_row=sup + slope * x,
        deep_row=deep + slope * x,
        superficial_cover=np.ones(W, bool),
        deep_cover=np.ones(W, bool),
        sol_depth_mm=sol_depth_mm,
    )


def layered_frame(g: MuscleGeometry) -> np.ndarray:
    """Frame with grey 50 above the MG, 100 in the MG, 200 in the SOL (and 2 rows past its lower
    edge, so that interpolation at the edge stays inside), 10 below."""
    rows = np.arange(H)[:, None]
    f = np.full((H, W), 10, np.uint8)
    f[rows < g.superficial_row] = 50
    f[(rows > g.superficial_row) & (rows < g.deep_row)] = 100
    f[(rows > g.deep_row) & (rows <= g.sol_bottom_row() + 2)] = 200
    return f


@pytest.mark.parametrize("slope", [0.0, 0.15, -0.1])
def test_patches_sample_only_their_region(slope: float) -> None:
    g = geometry(20 - min(slope, 0) * W, 55 - min(slope, 0) * W, slope)
    cfg = PatchConfig(height=16, width=32, margin_mm=1.5, mode="straightened")
    p = extract_patches(layered_frame(g), g, cfg)
    assert p.shape == (2, 16, 32) and p.dtype == np.uint8
    assert (p[0] == 100).all()  # MG only, whatever the slope
    assert (p[1] == 200).all()  # SOL only


def test_sol_region_below_the_image_is_zero() -> None:
    g = geometry(20, 80, sol_depth_mm=30.0)  # 60 rows below row 80 leaves the image
    p = extract_patches(layered_frame(g), g, PatchConfig(height=32, width=16, mode="straightened"))
    assert p[1, 0].max() == 200 and (p[1, -1] == 200).all()
    rows, _, valid = sample_grid(g, PatchConfig(height=32, width=16, mode="straightened"))
    assert valid.all() and rows.max() <= H - 1


def test_patch_refuses_missing_geometry() -> None:
    g = geometry(20, 60)
    missing = MuscleGeometry(
        (H, W), (0.5, 0.5), g.superficial_row, np.full(W, np.nan), g.superficial_cover,
        np.zeros(W, bool), issues=("deep aponeurosis not found",),
    )  # fmt: skip
    with pytest.raises(InputError, match="deep aponeurosis not found"):
        extract_patches(np.zeros((H, W), np.uint8), missing)
    with pytest.raises(InputError, match="shape"):
        extract_patches(np.zeros((H + 1, W), np.uint8), g)


@pytest.mark.parametrize(
    ("roi", "sup", "deep"),
    [
        (ManualROI.rectangle(10, 20, 100, 40), 20, 59),
        (ManualROI(((0, 10), (139, 30), (139, 70), (0, 50))), 10, 50),
        (ManualROI.from_dict({"rect": [10, 20, 100, 40]}), 20, 59),
    ],
)
def test_manual_roi_gives_the_same_kind_of_geometry(
    roi: ManualROI, sup: float, deep: float
) -> None:
    g = roi.geometry((H, W), (0.5, 0.5), sol_depth_mm=5.0)
    assert g.found and g.source == "manual"
    x0, _ = g.span()
    assert g.superficial_row[x0] == pytest.approx(sup, abs=1.5)
    assert g.deep_row[x0] == pytest.approx(deep, abs=1.5)
    p = extract_patches(layered_frame(g), g, PatchConfig(height=8, width=8, mode="straightened"))
    assert (p[0] == 100).all() and (p[1] == 200).all()
    assert ManualROI.from_dict(roi.to_dict()) == roi


def test_manual_roi_rejects_bad_shapes() -> None:
    with pytest.raises(InputError):
        ManualROI(((0, 0), (1, 1)))
    with pytest.raises(InputError):
        ManualROI.rectangle(0, 0, -5, 10)
    with pytest.raises(InputError, match="rect"):
        ManualROI.from_dict({"box": [1, 2, 3, 4]})


def test_physical_patches_keep_thickness_that_straightening_removes() -> None:
    thin, thick = geometry(20, 44), geometry(20, 60)
    cfg = PatchConfig(height=40, width=16, margin_mm=0.0, depth_mm=30.0, width_mm=40.0)
    mg_rows = [
        int((extract_patches(layered_frame(g), g, cfg)[0, :, 8] == 100).sum())
        for g in (thin, thick)
    ]
    # 24 and 40 image rows of MG at 0.5 mm = 12 and 20 mm of a 30 mm, 40-row patch.
    assert mg_rows[0] == pytest.approx(16, abs=2) and mg_rows[1] == pytest.approx(26.7, abs=2)
    straight = PatchConfig(height=40, width=16, margin_mm=0.0, mode="straightened")
    same = [(extract_patches(layered_frame(g), g, straight)[0] == 100).sum() for g in (thin, thick)]
    assert abs(int(same[0]) - int(same[1])) <= 0.1 * same[0]  # edge rows aside, the same


def test_physical_patches_do_not_depend_on_pixel_spacing() -> None:
    def scene(spacing: float) -> tuple[np.ndarray, MuscleGeometry]:
        h, w = int(50 / spacing), int(70 / spacing)  # 50 x 70 mm field of view
        x = np.arange(w)
        g = MuscleGeometry(
            shape=(h, w),
            pixel_spacing_mm=(spacing, spacing),
            superficial_row=np.full(w, 10 / spacing) + 0.1 * x,
            deep_row=np.full(w, 28 / spacing) + 0.1 * x,
            superficial_cover=np.ones(w, bool),
            deep_cover=np.ones(w, bool),
            sol_depth_mm=15.0,
        )
        rows = np.arange(h)[:, None]
        f = np.full((h, w), 10, np.uint8)
        f[(rows > g.superficial_row) & (rows < g.deep_row)] = 100
        f[rows >= g.deep_row] = 200
        return f, g

    cfg = PatchConfig(height=32, width=32, margin_mm=0.5, depth_mm=26.0, width_mm=36.0)
    coarse, fine = (extract_patches(*scene(s), cfg) for s in (0.5, 0.25))
    assert np.mean(coarse != fine) < 0.05
