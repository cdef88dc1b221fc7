"""Image folders: natural order, colour to luma, 16-bit, sizes, spacing and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from musclestate.errors import MediaError
from musclestate.io import read_recording
from musclestate.io.images import list_images, read_image, read_image_folder


def grey(k: int, h: int = 12, w: int = 16) -> np.ndarray:
    return ((np.arange(h * w).reshape(h, w) + 10 * k) % 256).astype(np.uint8)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "trial_7"
    d.mkdir()
    for k in (1, 2, 10):  # natural order 1, 2, 10 (lexical would give 1, 10, 2)
        Image.fromarray(grey(k)).save(d / f"frame{k}.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_natural_order_times_and_meta(folder: Path) -> None:
    assert [p.name for p in list_images(folder)] == ["frame1.png", "frame2.png", "frame10.png"]
    rec = read_image_folder(folder, fps=20.0, t0_s=1.0, pixel_spacing_mm=(0.1, 0.2))
    np.testing.assert_array_equal(rec.frames, np.stack([grey(1), grey(2), grey(10)]))
    np.testing.assert_allclose(rec.t_s, [1.0, 1.05, 1.1])
    assert rec.pixel_spacing_mm == (0.1, 0.2)
    assert rec.meta.trial == "trial_7" and rec.meta.participant == "unknown"
    assert rec.meta.spacing_source == "user:mm_per_pixel"
    assert rec.meta.extra["files"] == ["frame1.png", "frame2.png", "frame10.png"]
    via = read_recording(folder, fps=20.0)
    np.testing.assert_array_equal(via.frames, rec.frames)


def test_crop_flip_depth(folder: Path) -> None:
    rec = read_image_folder(folder, 10.0, crop=(2, 3, 8, 5), flip_horizontal=True, depth_mm=40)
    np.testing.assert_array_equal(rec.frames[0], grey(1)[3:8, 2:10][:, ::-1])
    assert rec.pixel_spacing_mm == (8.0, 8.0)  # 40 mm over 5 rows
    assert rec.meta.spacing_source == "user:depth_mm"
    with pytest.raises(MediaError, match=r"16x12"):
        read_image_folder(folder, 10.0, crop=(10, 0, 8, 5))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".jpg"])
def test_colour_becomes_luma(tmp_path: Path, suffix: str) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 150, 50
    Image.fromarray(rgb).save(tmp_path / f"a{suffix}")
    img = read_image(tmp_path / f"a{suffix}")
    expected = 0.299 * 100 + 0.587 * 150 + 0.114 * 50
    tol = 3 if suffix == ".jpg" else 0.5
    assert img.dtype == np.uint8 and img.shape == (8, 8)
    assert abs(float(img.mean()) - expected) <= tol


def test_sixteen_bit_scaled(tmp_path: Path) -> None:
    a = np.array([[0, 65535], [257 * 100, 257 * 200]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), [[0, 255], [100, 200]])


def test_bad_folders(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        read_image_folder(tmp_path / "missing", 10.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError, match=r"empty.*holds no images"):
        read_image_folder(empty, 10.0)
    with pytest.raises(MediaError, match="positive frame rate"):
        read_image_folder(folder, 0.0)
    with pytest.raises(MediaError, match=r"folder of \d+ images; give the rate.*--fps"):
        read_image_folder(folder)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "frame11.png")
    with pytest.raises(MediaError, match=r"frame11\.png.*all frames must have one size"):
        read_image_folder(folder, 10.0)


def test_corrupt_and_truncated_images(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(grey(0, 64, 64)).save(d / "a.png")
    data = (d / "a.png").read_bytes()
    (d / "b.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"b\.png.*(truncated|corrupt)"):
        read_image_folder(d, 10.0)
    (d / "b.png").write_bytes(b"garbage" * 20)
    with pytest.raises(MediaError, match=r"b\.png.*not an image"):
        read_image_folder(d, 10.0)


def test_multipage_tiff_is_refused(tmp_path: Path) -> None:
    pages = [Image.fromarray(grey(k)) for k in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(MediaError, match="3 pages"):
        read_image(tmp_path / "stack.tif")


def test_dltrack_image(dltrack_dir: Path) -> None:
    """A real greyscale ultrasound PNG reads unchanged."""
    path = sorted((dltrack_dir / "images").glob("*.png"))[0]
    img = read_image(path)
    ref = np.asarray(Image.open(path).convert("L"))
    np.testing.assert_array_equal(img, ref)
