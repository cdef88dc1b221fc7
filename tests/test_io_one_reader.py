"""One reading stack: ``import`` and ``predict`` see byte-identical frames and times.

For every media kind (video with rotation and an edit list, AVI, DICOM with a crop, a folder of
16-bit images, a TIFF stack, a single image), the frames and times stored by ``import`` (through
a manifest) equal, byte for byte, those the predict/stream source delivers for the same file and
settings.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from field_fixtures import (
    texture,
    write_avi_with_skips,
    write_dual_view_dicom,
    write_mp4,
    write_tiff16_folder,
    write_tiff_stack,
)
from musclestate.dataset import import_manifest, open_dataset
from musclestate.inference.batch import SourceOptions, plan_inputs
from musclestate.inference.sources import open_source


def _media(kind: str, lab: Path) -> tuple[str, dict]:
    """Write one input of ``kind`` into ``lab``; return its name and the read settings."""
    if kind == "video":
        stored = texture(24, 48, 64)
        write_mp4(lab / "v.mp4", stored, 25, rotation_ccw=-90, trim_first=4)
        return "v.mp4", {"crop": (2, 6, 40, 50), "flip_horizontal": True}
    if kind == "avi":
        write_avi_with_skips(lab / "a.avi", texture(8, 48, 64), [0, 1, 3, 4, 5, 7, 8, 9])
        return "a.avi", {}
    if kind == "dicom":
        write_dual_view_dicom(lab / "d.dcm", texture(5, 40, 64))
        return "d.dcm", {"crop": (32, 0, 32, 40)}
    if kind == "folder":
        write_tiff16_folder(lab / "frames", texture(6, 32, 48).astype(np.uint16) * 16)
        return "frames", {"fps": 20.0}
    if kind == "stack":
        write_tiff_stack(lab / "s.tif", texture(7, 32, 48))
        return "s.tif", {"fps": 12.5, "crop": (0, 4, 40, 24)}
    Image.fromarray(texture(1, 32, 48)[0]).save(lab / "one.png")
    return "one.png", {}


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


@pytest.mark.parametrize("kind", ["video", "avi", "dicom", "folder", "stack", "image"])
def test_import_and_predict_read_identical_frames_and_times(tmp_path: Path, kind: str) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    name, settings = _media(kind, lab)
    t = np.arange(0, 2.0, 0.001)
    (lab / "dyn.csv").write_text(
        "time,angle [deg]\n" + "\n".join(f"{a:.3f},{np.sin(a):.6f}" for a in t) + "\n"
    )
    keys = {"flip_horizontal": "flip_horizontal", "crop": "crop", "fps": "fps"}
    extra = "\n".join(f"{keys[k]} = {_toml_value(v)}" for k, v in settings.items())
    manifest = lab / "m.toml"
    manifest.write_text(
        textwrap.dedent(
            f"""
            [[recording]]
            participant = "P01"
            trial = "t"
            video = "{name}"
            signals = "dyn.csv"
            pixel_spacing_mm = 0.2
            sync = {{ method = "offset", offset_s = 0.0 }}
            targets.ankle_angle = {{ channel = "angle", unit = "deg" }}
            """
        )
        + extra
        + "\n"
    )
    ds = open_dataset(import_manifest(manifest, tmp_path / "ds"))
    rid = ds.recordings[0].id
    stored, stored_t = ds.frames(rid), ds.frame_times(rid)

    # predict: the same options as the CLI passes them
    job = plan_inputs(lab / name, tmp_path / "out.csv")[0]
    opts = SourceOptions(
        crop=settings.get("crop"),
        flip_horizontal=settings.get("flip_horizontal", False),
        pixel_spacing_mm=(0.2, 0.2),
        fps=settings.get("fps"),
    )
    with opts.open(job) as src:
        got = list(src)
    frames = np.stack([g.image for g in got])
    times = np.array([g.t_s for g in got], dtype=np.float64)
    assert frames.dtype == stored.dtype and frames.shape == stored.shape
    assert frames.tobytes() == np.ascontiguousarray(stored).tobytes()
    assert times.tobytes() == np.asarray(stored_t, dtype=np.float64).tobytes()
    with open_source(lab / name, **{k: v for k, v in settings.items()}) as src:
        assert src.info.frame_shape == stored.shape[1:]
