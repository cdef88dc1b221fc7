"""MG and SOL patches for the estimator, and the manual ROI fallback.

Following Cunningham & Loram (2019, arXiv:1907.01649), the estimator sees the medial
gastrocnemius (MG) and soleus (SOL) regions rather than the whole frame. Each region is resampled
into a fixed-size array *straightened along the aponeuroses*: patch column ``u`` samples one image
column, patch row ``v`` runs from the region's upper boundary to its lower one. A muscle thicker or
thinner than average therefore fills the same array; the thickness itself is kept in the geometry
(and in the architecture features).

When the network cannot handle a recording, a :class:`ManualROI` (a rectangle or polygon around
the MG, drawn once per recording) gives the same geometry, and so the same patches.

Two layouts (:attr:`PatchConfig.mode`):

- ``"physical"`` (default): every patch pixel covers the same millimetres in every recording
  (``depth_mm`` x ``width_mm`` per patch, centred on the muscle). Rows follow the upper
  aponeurosis, so probe tilt is removed, but thickness, pennation and fascicle slope keep their
  physical size. This is what lets a network compare people scanned with different depth and
  field-of-view settings: in the straightened layout the apparent fascicle slope depends on each
  person's muscle thickness and on the scanner's field of view, which confounds the state with
  the anatomy.
- ``"straightened"``: columns span the muscle's found width and rows run from the upper boundary
  to the lower one, so a thicker or thinner muscle fills the same array (thickness then lives only
  in the geometry and the architecture features).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from musclestate.errors import InputError
from musclestate.roi.geometry import MuscleGeometry, _fit_curve

#: Channel order of every patch array.
PATCH_CHANNELS = ("MG", "SOL")


@dataclass(frozen=True)
class PatchConfig:
    """Size and placement of the MG/SOL patches.

    Attributes:
        height, width: rows and columns of each patch (default 64 x 128: small for CPU speed).
        margin_mm: distance kept from each aponeurosis so that its bright band stays out of the
            patch (the band's own brightness says little about the muscle's state).
        mode: ``"physical"`` (fixed millimetres per pixel) or ``"straightened"`` (module doc).
        depth_mm: physical mode: depth covered by each patch below its upper aponeurosis (the MG
            patch reaches past the deep aponeurosis of a 22 mm thick MG).
        width_mm: physical mode: lateral extent of each patch, centred on the muscle.
    """

    height: int = 64
    width: int = 128
    margin_mm: float = 1.0
    mode: str = "physical"
    depth_mm: float = 26.0
    width_mm: float = 36.0

    def __post_init__(self) -> None:
        if self.height < 4 or self.width < 4:
            raise InputError(f"patch size must be at least 4 x 4, got {self.height} x {self.width}")
        if self.margin_mm < 0:
            raise InputError(f"margin_mm must be >= 0, got {self.margin_mm}")
        if self.mode not in ("physical", "straightened"):
            raise InputError(f"patch mode must be 'physical' or 'straightened', got {self.mode!r}")
        if not (self.depth_mm > 0 and self.width_mm > 0):
            raise InputError(
                f"depth_mm and width_mm must be positive, got {self.depth_mm}, {self.width_mm}"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(2, height, width)``: channel 0 = MG, 1 = SOL."""
        return (len(PATCH_CHANNELS), self.height, self.width)

    def zeros(self, n: int, *, cut: bool = True) -> np.ndarray:
        """``(n, 2, height, width)`` uint8 zeros to cut ``n`` frames' patches into, or
        ``(n, 0, height, width)`` when no patches are cut (whole-frame estimators)."""
        channels, h, w = self.shape
        return np.zeros((n, channels if cut else 0, h, w), np.uint8)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sample_grid(
    geometry: MuscleGeometry, config: PatchConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image coordinates of every patch pixel.

    Returns:
        ``rows`` ``(2, h, w)`` (float, image rows), ``cols`` ``(w,)`` (float, image columns) and
        ``valid`` ``(2, h, w)`` bool (inside the image).
    """
    if not geometry.found:
        raise InputError(f"no MG region to sample: {'; '.join(geometry.issues) or 'not found'}")
    h_img, w_img = geometry.shape
    row_mm, col_mm = geometry.pixel_spacing_mm
    x0, x1 = geometry.span()
    if config.mode == "physical":
        half = 0.5 * config.width_mm / col_mm
        centre = 0.5 * (x0 + x1 - 1)
        cols = np.linspace(centre - half, centre + half, config.width)
    else:
        cols = np.linspace(x0, x1 - 1, config.width)
    # The curves extend linearly beyond the found columns (np.interp would hold them flat).
    xs = np.arange(w_img)
    sup = _extend(cols, xs, geometry.superficial_row)
    deep = _extend(cols, xs, geometry.deep_row)
    m = config.margin_mm / row_mm
    v = np.linspace(0.0, 1.0, config.height)[:, None]
    tops = np.stack([sup + m, deep + m])
    if config.mode == "physical":
        bots = tops + config.depth_mm / row_mm
    else:
        bottom = np.interp(cols, xs, geometry.sol_bottom_row())
        bots = np.stack([np.maximum(deep - m, sup + m), np.maximum(bottom, deep + m)])
    rows = tops[:, None, :] + (bots - tops)[:, None, :] * v[None]
    valid = (rows >= 0) & (rows <= h_img - 1) & (cols >= 0)[None, None] & (cols <= w_img - 1)
    return rows, cols, valid


def _extend(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``fp`` at ``x``, continued by the end slopes outside ``xp``."""
    y = np.interp(x, xp, fp)
    if xp.size > 1:
        lo, hi = x < xp[0], x > xp[-1]
        y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
        y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y


def extract_patches(
    frame: np.ndarray, geometry: MuscleGeometry, config: PatchConfig | None = None
) -> np.ndarray:
    """MG and SOL regions of ``frame`` straightened into a ``(2, h, w)`` uint8 array.

    Args:
        frame: ``(H, W)`` uint8 image the geometry belongs to.
        geometry: found geometry (both aponeuroses); otherwise :class:`InputError`.
        config: patch size and margin.

    Returns:
        ``(2, h, w)`` uint8; channel 0 = MG, 1 = SOL. Samples below the image (a SOL region deeper
        than the image) are 0.
    """
    from scipy.ndimage import map_coordinates

    config = config or PatchConfig()
    frame = np.asarray(frame)
    if frame.shape != geometry.shape:
        raise InputError(f"frame shape {frame.shape} differs from geometry shape {geometry.shape}")
    rows, cols, valid = sample_grid(geometry, config)
    cc = np.broadcast_to(cols[None, None, :], rows.shape)
    vals = map_coordinates(frame.astype(np.float32), [rows.ravel(), cc.ravel()], order=1)
    out = np.where(valid, vals.reshape(rows.shape), 0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ManualROI:
    """A hand-drawn MG region: polygon vertices ``(x, y)`` in image pixels (column, row).

    Its upper edge stands for the superficial aponeurosis and its lower edge for the deep one;
    the SOL region lies below as usual. Use :meth:`rectangle` for an axis-aligned box.
    """

    polygon: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        pts = tuple((float(x), float(y)) for x, y in self.polygon)
        if len(pts) < 3:
            raise InputError(f"a manual ROI polygon needs at least 3 vertices, got {len(pts)}")
        object.__setattr__(self, "polygon", pts)

    @classmethod
    def rectangle(cls, x: float, y: float, w: float, h: float) -> ManualROI:
        """Rectangle with top-left corner ``(x, y)``, width ``w`` and height ``h`` (pixels)."""
        if w <= 0 or h <= 0:
            raise InputError(f"manual ROI rectangle needs positive width and height, got {w} x {h}")
        return cls(((x, y), (x + w, y), (x + w, y + h), (x, y + h)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ManualROI:
        """``{"rect": [x, y, w, h]}`` or ``{"polygon": [[x, y], ...]}``."""
        if "rect" in d:
            return cls.rectangle(*d["rect"])
        if "polygon" in d:
            return cls(tuple(tuple(p) for p in d["polygon"]))
        raise InputError(f"manual ROI needs 'rect' or 'polygon', got keys {sorted(d)}")

    def to_dict(self) -> dict[str, Any]:
        return {"polygon": [list(p) for p in self.polygon]}

    def geometry(
        self,
        shape: Sequence[int],
        pixel_spacing_mm: tuple[float, float],
        sol_depth_mm: float = 20.0,
    ) -> MuscleGeometry:
        """The geometry this polygon stands for in a frame of ``shape`` (H, W)."""
        from matplotlib.path import Path as MplPath

        h, w = int(shape[0]), int(shape[1])
        yy, xx = np.mgrid[0:h, 0:w]
        inside = (
            MplPath(self.polygon)
            .contains_points(np.column_stack([xx.ravel() + 0.5, yy.ravel() + 0.5]))
            .reshape(h, w)
        )
        cover = inside.any(axis=0)
        if cover.sum() < 2:
            raise InputError(
                f"manual ROI {self.polygon} covers fewer than 2 columns of a {h} x {w} frame"
            )
        cols = np.flatnonzero(cover)
        top = np.argmax(inside[:, cols], axis=0).astype(np.float64)
        bottom = (h - 1 - np.argmax(inside[::-1, cols], axis=0)).astype(np.float64)
        return MuscleGeometry(
            shape=(h, w),
            pixel_spacing_mm=pixel_spacing_mm,
            superficial_row=np.clip(_fit_curve(cols, top, w), 0, h - 1),
            deep_row=np.clip(_fit_curve(cols, bottom, w), 0, h - 1),
            superficial_cover=cover,
            deep_cover=cover,
            sol_depth_mm=sol_depth_mm,
            source="manual",
        )
