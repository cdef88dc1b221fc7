"""From an aponeurosis probability map to muscle geometry: two curves and the regions they bound.

A longitudinal calf image shows, from the skin down, the superficial aponeurosis of the medial
gastrocnemius (MG), the MG, the deep aponeurosis (the MG/soleus boundary) and the soleus (SOL).
:func:`fit_geometry` turns the network's probability map into

- the superficial and deep aponeurosis as curves ``row(column)`` (one depth per image column),
- the MG region between them and the SOL region below the deep one, down to a set depth,

and says what it could not find instead of guessing: a missing band leaves its curve NaN and an
entry in ``issues``. Fragments of one band broken by gaps (shadows, probe contact) are joined when
they lie on one line; an extra band (an intermediate aponeurosis, a bright fascicle) is reported
and passed over. :func:`smooth_geometries` smooths the curves over video frames.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musclestate.errors import InputError

LINES = ("superficial", "deep")
PAIR_RULES = ("shallowest", "strongest")


@dataclass(frozen=True)
class GeometryConfig:
    """Settings of :func:`fit_geometry` (saved with every ROI result).

    Attributes:
        threshold: probability above which a pixel is aponeurosis.
        min_fragment: shortest band fragment kept, as a fraction of the image width.
        min_coverage: a band must span this fraction of the longest band's columns (and at least
            ``min_fragment`` of the width) to count as an aponeurosis.
        join_tolerance: fragments whose rows lie within this fraction of the image height of a
            band's line (median over their columns) join that band.
        min_thickness_mm: least distance between superficial and deep aponeurosis.
        sol_depth_mm: depth of the SOL region below the deep aponeurosis.
        pair: how the two aponeuroses are chosen among more than two bands: "shallowest" (the
            shallowest long band is the superficial one) or "strongest" (the pair at least
            ``min_thickness_mm`` apart, within ``max_divergence_deg`` of parallel, of the largest
            summed probability mass; a brighter fascia above the superficial aponeurosis or a
            bright fascicle then loses to the aponeurosis).
        max_divergence_deg: largest angle between the two aponeuroses of a "strongest" pair.
    """

    threshold: float = 0.5
    min_fragment: float = 0.04
    min_coverage: float = 0.35
    join_tolerance: float = 0.025
    min_thickness_mm: float = 4.0
    sol_depth_mm: float = 20.0
    pair: str = "shallowest"
    max_divergence_deg: float = 15.0

    def __post_init__(self) -> None:
        if self.pair not in PAIR_RULES:
            raise InputError(f"unknown pair rule {self.pair!r}; use one of {PAIR_RULES}")
        if not 0 < self.threshold < 1:
            raise InputError(f"geometry threshold must be in (0, 1), got {self.threshold}")
        if self.sol_depth_mm <= 0 or self.min_thickness_mm < 0:
            raise InputError("sol_depth_mm must be > 0 and min_thickness_mm >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MuscleGeometry:
    """Aponeurosis curves of one frame.

    Attributes:
        shape: ``(H, W)`` of the frame.
        pixel_spacing_mm: ``(row_mm, col_mm)``.
        superficial_row, deep_row: ``(W,)`` float64 depth (rows, sub-pixel) of each aponeurosis at
            every column (fitted curve, extended linearly past the detected band); NaN if missing.
        superficial_cover, deep_cover: ``(W,)`` bool, columns where the band itself was detected.
        sol_depth_mm: depth of the SOL region below the deep aponeurosis.
        issues: what went wrong or was passed over ("deep aponeurosis not found", ...).
        source: "network", "manual" or "interpolated".
        band_halfwidth_rows: half the thickness (rows) of the superficial and deep band, so
            that thickness is measured between their inner edges.
    """

    shape: tuple[int, int]
    pixel_spacing_mm: tuple[float, float]
    superficial_row: np.ndarray
    deep_row: np.ndarray
    superficial_cover: np.ndarray
    deep_cover: np.ndarray
    sol_depth_mm: float = 20.0
    issues: tuple[str, ...] = ()
    source: str = "network"
    band_halfwidth_rows: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        w = int(self.shape[1])
        for name in ("superficial_row", "deep_row"):
            a = np.asarray(getattr(self, name), np.float64)
            if a.shape != (w,):
                raise InputError(f"{name} must have shape ({w},), got {a.shape}")
            object.__setattr__(self, name, a)
        for name in ("superficial_cover", "deep_cover"):
            a = np.asarray(getattr(self, name), bool)
            if a.shape != (w,):
                raise InputError(f"{name} must have shape ({w},), got {a.shape}")
            object.__setattr__(self, name, a)
        object.__setattr__(self, "shape", (int(self.shape[0]), w))
        sp = tuple(float(s) for s in self.pixel_spacing_mm)
        if len(sp) != 2 or min(sp) <= 0:
            raise InputError(f"pixel_spacing_mm must be two positive numbers, got {sp}")
        object.__setattr__(self, "pixel_spacing_mm", sp)

    # -- access ----------------------------------------------------------------------------------
    def line(self, name: str) -> np.ndarray:
        """``(W,)`` rows of the "superficial" or "deep" aponeurosis."""
        if name not in LINES:
            raise InputError(f"unknown aponeurosis {name!r}; use one of {LINES}")
        return self.superficial_row if name == "superficial" else self.deep_row

    def coverage(self, name: str) -> np.ndarray:
        """``(W,)`` bool: columns where that band was detected."""
        if name not in LINES:
            raise InputError(f"unknown aponeurosis {name!r}; use one of {LINES}")
        return self.superficial_cover if name == "superficial" else self.deep_cover

    @property
    def found_superficial(self) -> bool:
        return bool(np.isfinite(self.superficial_row).all())

    @property
    def found_deep(self) -> bool:
        return bool(np.isfinite(self.deep_row).all())

    @property
    def found(self) -> bool:
        """Both aponeuroses present (the MG region is defined)."""
        return self.found_superficial and self.found_deep

    def span(self) -> tuple[int, int]:
        """Columns ``[x0, x1)`` where the muscle is measured: where both bands were seen.

        Falls back to the union of both bands' columns when they overlap on less than a quarter
        of the width (each curve then extends linearly).
        """
        both = self.superficial_cover & self.deep_cover
        w = self.shape[1]
        cols = np.flatnonzero(both)
        if cols.size < 0.25 * w:
            cols = np.flatnonzero(self.superficial_cover | self.deep_cover)
        if cols.size == 0:
            return 0, w
        return int(cols[0]), int(cols[-1]) + 1

    def sol_bottom_row(self) -> np.ndarray:
        """``(W,)`` lower edge of the SOL region: deep aponeurosis + ``sol_depth_mm``, clipped."""
        return np.minimum(
            self.deep_row + self.sol_depth_mm / self.pixel_spacing_mm[0], self.shape[0] - 1
        )

    # -- measures ----------------------------------------------------------------------------------
    def thickness_mm(self) -> float:
        """Mean MG thickness over :meth:`span`, between the aponeuroses' inner edges (mm)."""
        x0, x1 = self.span()
        centre = np.mean(self.deep_row[x0:x1] - self.superficial_row[x0:x1])
        return float((centre - sum(self.band_halfwidth_rows)) * self.pixel_spacing_mm[0])

    def angle_deg(self, name: str) -> float:
        """Angle of an aponeurosis to the image horizontal in degrees (physical units).

        Positive when the line gets deeper towards larger columns (to the right of the image);
        a least-squares line over :meth:`span`.
        """
        x0, x1 = self.span()
        x = np.arange(x0, x1) * self.pixel_spacing_mm[1]
        y = self.line(name)[x0:x1] * self.pixel_spacing_mm[0]
        if x.size < 2 or not np.isfinite(y).all():
            return float("nan")
        slope = np.polyfit(x, y, 1)[0]
        return float(np.degrees(np.arctan(slope)))

    def region_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(H, W)`` bool masks of the MG and SOL regions within :meth:`span`."""
        h, w = self.shape
        rows = np.arange(h)[:, None]
        inside = np.zeros(w, bool)
        x0, x1 = self.span()
        inside[x0:x1] = True
        mg = (rows > self.superficial_row) & (rows < self.deep_row) & inside
        sol = (rows > self.deep_row) & (rows <= self.sol_bottom_row()) & inside
        return mg, sol


def _band_points(comp: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probability-weighted mean row of a component in each column it touches."""
    w = comp * prob
    mass = w.sum(axis=0)
    cols = np.flatnonzero(mass > 0)
    rows = (w[:, cols] * np.arange(comp.shape[0])[:, None]).sum(axis=0) / mass[cols]
    return cols, rows


def _fit_curve(cols: np.ndarray, rows: np.ndarray, width: int) -> np.ndarray:
    """Least-squares curve through band points, evaluated at every column.

    Quadratic where the band spans more than half the width, else straight; one pass drops
    points further than 3 robust SDs. Beyond the detected columns the curve continues along its
    end tangent, so a quadratic does not bend away where there is no evidence.
    """
    deg = 2 if (cols.max() - cols.min()) > 0.5 * width and cols.size > 10 else 1
    deg = min(deg, max(0, cols.size - 1))
    coef = np.polyfit(cols, rows, deg)
    res = rows - np.polyval(coef, cols)
    mad = np.median(np.abs(res - np.median(res))) * 1.4826
    keep = np.abs(res) <= max(3 * mad, 1.0)
    if keep.sum() > deg + 1 and not keep.all():
        coef = np.polyfit(cols[keep], rows[keep], deg)
    x = np.arange(width, dtype=np.float64)
    lo, hi = float(cols.min()), float(cols.max())
    y = np.polyval(coef, np.clip(x, lo, hi))
    d = np.polyder(coef)
    slope_lo = np.polyval(d, lo) if deg > 0 else 0.0
    slope_hi = np.polyval(d, hi) if deg > 0 else 0.0
    y = np.where(x < lo, y + (x - lo) * slope_lo, y)
    y = np.where(x > hi, y + (x - hi) * slope_hi, y)
    return y


@dataclass
class _Band:
    cols: np.ndarray
    rows: np.ndarray
    widths: np.ndarray
    mass: float = 0.0

    def line(self) -> np.ndarray:
        deg = 1 if self.cols.size > 1 else 0
        return np.polyfit(self.cols, self.rows, deg)

    def n_cols(self) -> int:
        return int(np.unique(self.cols).size)


def _bands(prob: np.ndarray, config: GeometryConfig) -> list[_Band]:
    """Connected bright bands, with fragments on one line joined (robust to gaps)."""
    from scipy import ndimage

    h, w = prob.shape
    mask = prob > config.threshold
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    slices = ndimage.find_objects(labels)
    frags: list[_Band] = []
    for i, sl in enumerate(slices, start=1):
        if sl is None or (sl[1].stop - sl[1].start) < config.min_fragment * w:
            continue
        comp = labels[sl] == i
        cols, rows = _band_points(comp, prob[sl])
        widths = comp.sum(axis=0)[cols].astype(np.float64)
        mass = float((comp * prob[sl]).sum())
        frags.append(_Band(cols + sl[1].start, rows + sl[0].start, widths, mass))
    frags.sort(key=lambda b: -b.n_cols())
    tol = max(3.0, config.join_tolerance * h)
    bands: list[_Band] = []
    for f in frags:
        for b in bands:
            resid = np.abs(np.polyval(b.line(), f.cols) - f.rows)
            overlap = np.isin(f.cols, b.cols).mean()
            if np.median(resid) < tol and overlap < 0.3:
                b.cols = np.concatenate([b.cols, f.cols])
                b.rows = np.concatenate([b.rows, f.rows])
                b.widths = np.concatenate([b.widths, f.widths])
                b.mass += f.mass
                break
        else:
            bands.append(_Band(f.cols.copy(), f.rows.copy(), f.widths.copy(), f.mass))
    return bands


def strongest_pairs(
    curves: Sequence[tuple[Any, np.ndarray]], min_sep_rows: float, max_divergence_deg: float
) -> list[tuple[Any, Any]]:
    """Plausible (superficial, deep) pairs of bands, strongest first.

    A pair is plausible when the deeper band lies at least ``min_sep_rows`` below the other
    (median over the columns) and their straight-line angles differ by at most
    ``max_divergence_deg``; pairs are ranked by the summed probability mass of the two bands
    (a long, bright, continuous band outweighs a short or faint one).

    Args:
        curves: ``(band, (W,) rows)`` per band, the band having ``mass`` and ``line()``.
        min_sep_rows: least distance between the two bands in rows.
        max_divergence_deg: largest angle between them in degrees.
    """
    out = []
    for a, b in itertools.permutations(curves, 2):
        if np.median(b[1] - a[1]) < min_sep_rows:
            continue
        ang = [np.degrees(np.arctan(c[0].line()[0])) if c[0].cols.size > 1 else 0.0 for c in (a, b)]
        if abs(ang[0] - ang[1]) > max_divergence_deg:
            continue
        out.append((a[0].mass + b[0].mass, a, b))
    out.sort(key=lambda x: -x[0])
    return [(a, b) for _, a, b in out]


def fit_geometry(
    prob: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    config: GeometryConfig | None = None,
) -> MuscleGeometry:
    """Aponeurosis curves from a probability map.

    Args:
        prob: ``(H, W)`` float aponeurosis probability (or a binary mask).
        pixel_spacing_mm: ``(row_mm, col_mm)``.
        config: thresholds and region depth (:class:`GeometryConfig`).

    Returns:
        :class:`MuscleGeometry`. The shallowest long band is the superficial aponeurosis; the deep
        one is the longest band at least ``min_thickness_mm`` below it (of near-equal lengths, the
        shallower, so that a deeper soleus band is not taken for it); with ``config.pair ==
        "strongest"`` the pair is chosen by :func:`strongest_pairs` instead. A missing band leaves
        NaN and an issue; with only one band found, its depth (above or below a third of the
        image) decides which one it is, and the issues say so.
    """
    config = config or GeometryConfig()
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 2:
        raise InputError(f"fit_geometry expects one (H, W) map, got shape {prob.shape}")
    h, w = prob.shape
    row_mm = float(pixel_spacing_mm[0])
    bands = _bands(prob, config)
    issues: list[str] = []
    longest = max((b.n_cols() for b in bands), default=0)
    cands = [
        b
        for b in bands
        if b.n_cols() >= max(config.min_coverage * longest, config.min_fragment * w)
    ]
    curves = [(b, _fit_curve(b.cols, b.rows, w)) for b in cands]
    # depth of each candidate: median of its curve over its own columns
    curves.sort(key=lambda bc: float(np.median(bc[1][np.unique(bc[0].cols)])))
    sup = deep = None
    sep = config.min_thickness_mm / row_mm
    if len(curves) >= 2 and config.pair == "strongest":
        pairs = strongest_pairs(curves, sep, config.max_divergence_deg)
        if pairs:
            sup, deep = pairs[0]
        else:
            # no plausible pair: the strongest band alone, placed by depth below
            curves = [max(curves, key=lambda c: c[0].mass)]
            issues.append("no two bands form a plausible pair: the strongest band kept")
    if sup is not None:
        extra = [c for c in curves if c is not sup and c is not deep]
        if extra:
            rows_txt = ", ".join(f"{np.median(c[1]):.0f}" for c in extra)
            issues.append(f"{len(extra)} extra band(s) passed over (median rows {rows_txt})")
    elif len(curves) >= 2:
        sup = curves[0]
        below = [c for c in curves[1:] if np.median(c[1] - sup[1]) >= sep]
        if below:
            best = max(c[0].n_cols() for c in below)
            deep = next(c for c in below if c[0].n_cols() >= 0.8 * best)
        else:
            issues.append("bands closer than min_thickness_mm: deep aponeurosis not found")
        extra = [c for c in curves if c is not sup and c is not deep]
        if extra:
            rows_txt = ", ".join(f"{np.median(c[1]):.0f}" for c in extra)
            issues.append(f"{len(extra)} extra band(s) passed over (median rows {rows_txt})")
    elif len(curves) == 1:
        only = curves[0]
        if np.median(only[1]) < h / 3:
            sup = only
            issues.append("deep aponeurosis not found (one band, taken as superficial by depth)")
        else:
            deep = only
            issues.append("superficial aponeurosis not found (one band, taken as deep by depth)")
    else:
        issues.append("no aponeurosis found")
    nan = np.full(w, np.nan)
    no = np.zeros(w, bool)

    def cover(c: Any) -> np.ndarray:
        m = no.copy()
        if c is not None:
            m[np.unique(c[0].cols).astype(int)] = True
        return m

    sup_row = np.clip(sup[1], 0, h - 1) if sup is not None else nan
    deep_row = np.clip(deep[1], 0, h - 1) if deep is not None else nan
    if sup is not None and deep is not None and (deep_row <= sup_row).any():
        issues.append("aponeuroses cross within the image")
    return MuscleGeometry(
        shape=(h, w),
        pixel_spacing_mm=(row_mm, float(pixel_spacing_mm[1])),
        superficial_row=sup_row,
        deep_row=deep_row,
        superficial_cover=cover(sup),
        deep_cover=cover(deep),
        sol_depth_mm=config.sol_depth_mm,
        issues=tuple(issues),
        band_halfwidth_rows=(
            0.5 * float(np.median(sup[0].widths)) if sup is not None else 0.0,
            0.5 * float(np.median(deep[0].widths)) if deep is not None else 0.0,
        ),
    )


def stack_lines(geoms: Sequence[MuscleGeometry]) -> dict[str, np.ndarray]:
    """Per-frame arrays of a geometry sequence: lines ``(T, W)`` float32, covers ``(T, W)`` bool."""
    return {
        "superficial_row": np.stack([g.superficial_row for g in geoms]).astype(np.float32),
        "deep_row": np.stack([g.deep_row for g in geoms]).astype(np.float32),
        "superficial_cover": np.stack([g.superficial_cover for g in geoms]),
        "deep_cover": np.stack([g.deep_cover for g in geoms]),
        "band_halfwidth": np.array([g.band_halfwidth_rows for g in geoms], np.float32),
    }


def _interp_missing(lines: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly fill runs of all-NaN frames of ``(T, W)`` up to ``max_gap`` frames long.

    Only gaps with a found frame on both sides are filled; returns (lines, filled (T,) bool).
    """
    ok = np.isfinite(lines).all(axis=1)
    filled = np.zeros(len(lines), bool)
    if max_gap <= 0 or ok.all() or not ok.any():
        return lines, filled
    out = lines.copy()
    idx = np.flatnonzero(ok)
    for a, b in itertools.pairwise(idx):
        gap = b - a - 1
        if 0 < gap <= max_gap:
            f = (np.arange(a + 1, b) - a)[:, None] / (b - a)
            out[a + 1 : b] = (1 - f) * lines[a] + f * lines[b]
            filled[a + 1 : b] = True
    return out, filled


def smooth_geometries(
    geoms: Sequence[MuscleGeometry], *, window: int = 5, max_gap: int = 0
) -> list[MuscleGeometry]:
    """Temporal smoothing of aponeurosis curves over consecutive video frames.

    Each curve becomes the running median (centred, ``window`` frames, odd, shrinking to stay
    centred near the ends) over the frames where it was found, which removes single-frame jumps
    while following real motion at typical frame rates. Frames where a band is missing stay
    missing unless ``max_gap`` > 0, in which case gaps of at most ``max_gap`` frames between
    found frames are filled by linear interpolation and marked with ``source="interpolated"``
    and an issue; longer gaps are never guessed.

    Args:
        geoms: geometries of consecutive frames of one recording (same shape).
        window: odd number of frames of the running median (1 = no smoothing).
        max_gap: longest run of missing frames to interpolate (0 = none).
    """
    if not geoms:
        return []
    if window < 1 or window % 2 == 0:
        raise InputError(f"smoothing window must be an odd number >= 1, got {window}")
    shape = geoms[0].shape
    if any(g.shape != shape for g in geoms):
        raise InputError("all frames of a recording must have the same shape to smooth geometry")
    r = window // 2
    out_lines = {}
    filled_any = np.zeros(len(geoms), bool)
    for name in LINES:
        lines = np.stack([g.line(name) for g in geoms])
        found = np.isfinite(lines).all(axis=1)
        if r > 0 and len(geoms) > 1:
            # centred window, shrunk near the ends so that a steady trend is not bent there
            n = len(lines)
            med = np.empty_like(lines)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
                for t in range(n):
                    rt = min(r, t, n - 1 - t)
                    med[t] = np.nanmedian(lines[t - rt : t + rt + 1], axis=0)
            lines = np.where(found[:, None], med, np.nan)
        lines, filled = _interp_missing(lines, max_gap)
        filled_any |= filled
        out_lines[name] = lines
    res = []
    for t, g in enumerate(geoms):
        issues = g.issues
        source = g.source
        if filled_any[t]:
            issues = (*issues, "curve interpolated from neighbouring frames")
            source = "interpolated"
        res.append(
            dataclasses.replace(
                g,
                superficial_row=out_lines["superficial"][t],
                deep_row=out_lines["deep"][t],
                issues=issues,
                source=source,
            )
        )
    return res
