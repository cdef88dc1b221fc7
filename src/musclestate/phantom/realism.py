"""Realism check: phantom frames against real calf ultrasound, by the same statistics.

Real images (not part of musclestate; cite them where results are shown):

- ``dltrack-aponeurosis``: longitudinal B-mode images of lower-limb muscles with aponeurosis
  masks, Cronin, Finni & Seynnes (2020), arXiv:2009.04790 (Apache-2.0);
- ``drazan2019-mg``: screen-captured MG clips, B-mode area from ``p6_params.mat`` (0.0883 mm/px),
  Drazan, Hullfish & Baxter (2019), PeerJ Preprints 7:e27475v1 (CC BY 4.0).

Statistics, computed identically on every image (grey values 0-255 as displayed):

- brightness: mean, median, 5th and 95th percentiles, and a 16-bin histogram;
- speckle SNR: median over 16 x 16 pixel windows of mean / standard deviation;
- speckle size: full width at half maximum of the grey-level autocorrelation peak, axial and
  lateral, in mm (only where the pixel spacing is known);
- aponeurosis contrast: mean grey of the aponeuroses / mean grey of the muscle between them (only
  where masks exist: dltrack masks, phantom labels).

Run as ``python -m musclestate.phantom.realism SHARED_DATA OUT_DIR``: writes ``realism.json`` and
``side_by_side.png`` (real frames top, phantom frames bottom) into ``OUT_DIR``. The PNG contains
real images: keep it out of the repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

DRAZAN_MM_PER_PX = 0.0883  # p6_params.mat px2mmX / px2mmY


def _fwhm(ac: np.ndarray) -> float:
    """Full width at half maximum (px) of a 1-D autocorrelation centred at its maximum."""
    c = int(np.argmax(ac))
    half = ac[c] / 2.0
    right = c + int(np.argmax(ac[c:] < half))
    left = c - int(np.argmax(ac[c::-1] < half))
    return float(right - left)


def speckle_size_px(img: np.ndarray) -> tuple[float, float]:
    """``(axial, lateral)`` FWHM in pixels of the autocorrelation of the grey-level texture.

    Slow structure (layers, brightness gradients) is removed with a 15-pixel median-free
    high-pass (image minus its Gaussian blur, sigma 6 px) before the FFT autocorrelation.
    """
    f = img.astype(np.float64)
    f = f - ndimage.gaussian_filter(f, 6.0)
    spec = np.abs(np.fft.fft2(f)) ** 2
    ac = np.fft.fftshift(np.real(np.fft.ifft2(spec)))
    cy, cx = np.unravel_index(np.argmax(ac), ac.shape)
    return _fwhm(ac[:, cx]), _fwhm(ac[cy, :])


def speckle_snr(img: np.ndarray, win: int = 16) -> float:
    """Median over ``win`` x ``win`` windows (with some signal) of mean / standard deviation."""
    h, w = (img.shape[0] // win) * win, (img.shape[1] // win) * win
    blocks = img[:h, :w].astype(np.float64).reshape(h // win, win, w // win, win)
    mean = blocks.mean(axis=(1, 3))
    sd = blocks.std(axis=(1, 3))
    ok = (mean > 8) & (sd > 0)
    return float(np.median(mean[ok] / sd[ok])) if ok.any() else float("nan")


def image_stats(
    img: np.ndarray,
    *,
    spacing_mm: tuple[float, float] | None = None,
    apo: np.ndarray | None = None,
    muscle: np.ndarray | None = None,
) -> dict[str, Any]:
    """Statistics of one greyscale B-mode image (see the module docstring)."""
    g = np.asarray(img)
    out: dict[str, Any] = {
        "mean": float(g.mean()),
        "median": float(np.median(g)),
        "p5": float(np.percentile(g, 5)),
        "p95": float(np.percentile(g, 95)),
        "hist": (np.histogram(g, bins=16, range=(0, 256))[0] / g.size).tolist(),
        "speckle_snr": speckle_snr(g),
    }
    ax, lat = speckle_size_px(g)
    out["speckle_px"] = [ax, lat]
    if spacing_mm is not None:
        out["speckle_mm"] = [ax * spacing_mm[0], lat * spacing_mm[1]]
    if apo is not None and muscle is not None and apo.any() and muscle.any():
        out["apo_contrast"] = float(g[apo].mean() / max(g[muscle].mean(), 1.0))
    return out


def _muscle_between(mask: np.ndarray) -> np.ndarray:
    """Pixels between the top-most and bottom-most aponeurosis of each column, off the bands."""
    rows = np.arange(mask.shape[0])[:, None]
    has = mask.any(axis=0)
    top = np.where(has, np.argmax(mask, axis=0), mask.shape[0])
    bottom = np.where(has, mask.shape[0] - 1 - np.argmax(mask[::-1], axis=0), -1)
    band = ndimage.binary_dilation(mask, iterations=6)
    return (rows > top) & (rows < bottom) & ~band


def real_stats(shared: Path, n_dltrack: int = 24, n_drazan: int = 6) -> dict[str, list[dict]]:
    """Statistics of real images: dltrack images (with masks) and drazan clip frames."""
    from musclestate.io.images import read_image

    out: dict[str, list[dict]] = {"dltrack": [], "drazan": []}
    images = sorted((shared / "dltrack-aponeurosis" / "images").glob("*.png"))[:n_dltrack]
    for path in images:
        img = read_image(path)
        mask = read_image(path.parent.parent / "masks" / path.name) > 127
        # the B-mode area: rows / columns that are not the black surround
        rows = np.flatnonzero(img.mean(axis=1) > 5)
        cols = np.flatnonzero(img.mean(axis=0) > 5)
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        out["dltrack"].append(image_stats(img[sl], apo=mask[sl], muscle=_muscle_between(mask[sl])))
    for frame in drazan_frames(shared, n_drazan):
        out["drazan"].append(image_stats(frame, spacing_mm=(DRAZAN_MM_PER_PX, DRAZAN_MM_PER_PX)))
    return out


def drazan_frames(shared: Path, n: int) -> list[np.ndarray]:
    """The B-mode area of one mid-clip frame from each of the first ``n`` drazan clips."""
    import scipy.io

    from musclestate.io.video import iter_video

    params = scipy.io.loadmat(
        shared / "drazan2019-mg" / "p6_params.mat", squeeze_me=True, struct_as_record=False
    )["Params"]
    x, y, w, h = (int(v) for v in params.imCropRect)
    frames = []
    for clip in sorted((shared / "drazan2019-mg" / "clips").glob("*.mp4"))[:n]:
        decoded = iter_video(clip, crop=(x - 1, y - 1, w, h))
        for i, (_, g) in enumerate(decoded):
            if i == 10:
                frames.append(g)
                decoded.close()
                break
    return frames


def phantom_stats(
    n: int = 8, size: tuple[int, int] = (256, 256), seed: int = 0
) -> tuple[list[dict], list[np.ndarray]]:
    """Statistics of ``n`` phantom frames (different participants, random poses)."""
    from musclestate.phantom import geometry
    from musclestate.phantom.cohort import make_participant

    stats, frames = [], []
    rng = np.random.default_rng(seed)
    for j in range(n):
        p, tm = make_participant(seed + 17, j, size)
        ang, act = rng.uniform(-15, 30, 1), rng.uniform(0, 0.6, 1)
        _, geo = geometry.state_geometry(p, geometry.draw_placement(rng), ang, act, act)
        g = geo.at(0)
        img, lab = tm.render(g, rng), tm.labels(g)
        frames.append(img)
        stats.append(
            image_stats(
                img, spacing_mm=tm.grid.spacing_mm, apo=(lab == 1) | (lab == 2), muscle=lab == 3
            )
        )
    return stats, frames


def summarise(stats: list[dict]) -> dict[str, float]:
    """Mean of every scalar statistic (and of the speckle size pairs) over images."""
    out: dict[str, float] = {}
    for key in ("mean", "median", "p5", "p95", "speckle_snr", "apo_contrast"):
        vals = [s[key] for s in stats if key in s and np.isfinite(s[key])]
        if vals:
            out[key] = float(np.mean(vals))
    for key in ("speckle_px", "speckle_mm"):
        vals = [s[key] for s in stats if key in s]
        if vals:
            out[f"{key}_axial"], out[f"{key}_lateral"] = (float(v) for v in np.mean(vals, axis=0))
    return out


def side_by_side(
    real: list[np.ndarray], phantom: list[np.ndarray], height: int = 256
) -> np.ndarray:
    """Real frames on the top row, phantom frames below, each resized to ``height`` rows."""
    from PIL import Image

    def fit(a: np.ndarray) -> np.ndarray:
        w = max(1, round(a.shape[1] * height / a.shape[0]))
        return np.asarray(Image.fromarray(a).resize((w, height), Image.BILINEAR))

    top = np.concatenate([fit(a) for a in real], axis=1)
    bottom = np.concatenate([fit(a) for a in phantom], axis=1)
    width = max(top.shape[1], bottom.shape[1])
    pad = [np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in (top, bottom)]
    return np.concatenate(pad, axis=0)


def realism_report(shared: str | Path, out_dir: str | Path, *, n: int = 8) -> dict[str, Any]:
    """Compare phantom and real images; write ``realism.json`` and ``side_by_side.png``."""
    from PIL import Image

    shared, out_dir = Path(shared), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    real = real_stats(shared)
    ph, ph_frames = phantom_stats(n, size=(480, 600))
    report = {
        "dltrack": summarise(real["dltrack"]),
        "drazan": summarise(real["drazan"]),
        "phantom": summarise(ph),
        "hist": {
            "dltrack": np.mean([s["hist"] for s in real["dltrack"]], axis=0).tolist(),
            "drazan": np.mean([s["hist"] for s in real["drazan"]], axis=0).tolist(),
            "phantom": np.mean([s["hist"] for s in ph], axis=0).tolist(),
        },
    }
    (out_dir / "realism.json").write_text(json.dumps(report, indent=2) + "\n")
    png = side_by_side(drazan_frames(shared, 3), ph_frames[:3])
    Image.fromarray(png).save(out_dir / "side_by_side.png")
    return report


if __name__ == "__main__":  # pragma: no cover - a script entry point
    if len(sys.argv) != 3:
        sys.exit("usage: python -m musclestate.phantom.realism SHARED_DATA OUT_DIR")
    rep = realism_report(sys.argv[1], sys.argv[2])
    for src in ("drazan", "dltrack", "phantom"):
        print(src, json.dumps({k: round(v, 3) for k, v in rep[src].items()}))
