"""Muscle architecture of one B-mode image: aponeurosis lines, thickness, fascicle angle.

The method follows the line-fitting family of TimTrack (van der Zee & Kuo 2022, PLOS ONE
17(3): e0265752): aponeuroses and fascicles are treated as straight lines, found by summing
evidence along candidate lines (a Radon/Hough transform), after a Hessian ridge filter that keeps
bright line-like structure (Frangi et al. 1998, MICCAI, LNCS 1496:130).

1. Aponeuroses. The aponeurosis segmenter (:mod:`musclestate.roi.segment`) gives a probability
   map; :func:`musclestate.roi.geometry.fit_geometry` finds its bands. A band the network misses
   (often the faint deep aponeurosis) is looked for by a line search over the sum of the
   probability and a horizontal-ridge map below the superficial band.
2. Thickness. Observers measure between the inner edges of the bright bands (the deep edge of the
   superficial aponeurosis, the superficial edge of the deep one; :func:`band_inner_edges`), and
   the TimTrack observers read it vertically at the left edge of the image: the distance is read
   at the column ``thickness_at`` (a fraction of the width, 0 = left edge), as the median over
   the nearby columns.
3. Fascicle angle. In the muscle between the aponeuroses (a margin off each), at a scale where the
   muscle is ``work_thickness_px`` rows thick, a bright-ridge map (largest-magnitude negative
   Hessian eigenvalue, at each scale of ``ridge_sigmas_px``) is projected along candidate angles;
   the angle whose projection varies most between parallel lines (long straight ridges line up
   with it) is the fascicle orientation. Angles within ``min_pennation_deg`` of the aponeuroses
   are not candidates: structure parallel to them (their own echoes, laterally elongated speckle)
   would otherwise win.

Angles here are in image pixels, in degrees, positive when the line gets deeper towards the right
(rows grow downwards); pixel spacing, where known, converts them afterwards.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from musclestate.errors import InputError

#: Where the inner edges of the aponeurosis bands come from (see :func:`inner_thickness_px`).
EDGE_SOURCES = ("profile", "mask")


@dataclass(frozen=True)
class ArchitectureConfig:
    """Settings of :func:`measure_image` (chosen with people held out; see docs/architecture.md).

    Attributes:
        work_thickness_px: the image is scaled so that the muscle is about this many rows thick
            before ridges are filtered (makes the method indifferent to the scanner's pixel size).
        ridge_sigmas_px: Gaussian scales of the ridge filter at that working scale; the
            normalised line scores of all scales are summed.
        min_pennation_deg: fascicle candidates closer than this to the aponeuroses' angle are
            not considered.
        max_angle_deg: largest fascicle angle magnitude considered.
        margin: fraction of the thickness left out next to each aponeurosis for the fascicles.
        ridge_quantile: > 0 keeps only ridge pixels above this quantile (a binary line map).
        edge_window: how far (fraction of the thickness) from a band's peak its inner edge is
            looked for.
        thickness_at: where thickness is read, as a fraction of the image width from the left
            (0 = the left edge of the B-mode area, as the TimTrack observers read it).
        thickness_edges: "profile" (edges from the grey-level profile across each band) or
            "mask" (from the segmenter's thresholded band where it covers the band).
        thickness_span: thickness is the median over columns within this fraction of the width
            of ``thickness_at``.
        min_thickness: least distance between the aponeuroses as a fraction of image height.
        apo_max_divergence_deg: largest angle between the superficial aponeurosis and a deep one
            that is looked for by line search.
        threshold: probability above which a pixel belongs to an aponeurosis band.
        band_sigma_rows: scale (rows, at a working height of 256 rows) of the ridge map that the
            line search for a missed deep aponeurosis follows (:func:`continuous_ridge_map`).
        line_prob_weight: weight of the segmenter's probability in that search.
        pair: how the aponeurosis pair is chosen among the segmenter's bands (see
            :class:`musclestate.roi.geometry.GeometryConfig`): "strongest" or "shallowest".
    """

    work_thickness_px: float = 120.0
    ridge_sigmas_px: tuple[float, ...] = (1.0,)
    min_pennation_deg: float = 12.0
    max_angle_deg: float = 70.0
    margin: float = 0.12
    ridge_quantile: float = 0.0
    edge_window: float = 0.1
    thickness_at: float = 0.0
    thickness_span: float = 0.1
    thickness_edges: str = "profile"
    min_thickness: float = 0.15
    apo_max_divergence_deg: float = 8.0
    threshold: float = 0.5
    band_sigma_rows: float = 3.0
    line_prob_weight: float = 0.25
    pair: str = "strongest"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ridge_sigmas_px", tuple(float(s) for s in self.ridge_sigmas_px))
        if self.work_thickness_px < 20 or not self.ridge_sigmas_px:
            raise InputError("work_thickness_px must be >= 20 and ridge_sigmas_px non-empty")
        if not 0 <= self.margin < 0.45 or not 0 < self.edge_window < 0.4:
            raise InputError("margin must be in [0, 0.45) and edge_window in (0, 0.4)")
        if not 0 <= self.thickness_at <= 1 or not 0 < self.thickness_span <= 1:
            raise InputError("thickness_at must be in [0, 1] and thickness_span in (0, 1]")
        if self.thickness_edges not in EDGE_SOURCES:
            raise InputError(
                f"unknown thickness_edges {self.thickness_edges!r}; use one of {EDGE_SOURCES}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ImageArchitecture:
    """Architecture of one image, in pixels of that image (NaN where not found).

    Attributes:
        found: both aponeuroses found (thickness and fascicle angle are defined).
        superficial_row_px, deep_row_px: each aponeurosis line's row at the image's centre column.
        superficial_angle_deg, deep_angle_deg: their angles to the horizontal (+ = deeper to the
            right).
        thickness_px: median distance between the aponeuroses' inner edges.
        fascicle_angle_deg: dominant fascicle orientation to the horizontal (+ = deeper to the
            right).
        pennation_deg: acute angle between the fascicle and the deep aponeurosis.
        fascicle_score: peak line score of the fascicle search over its median (>= 1; low means
            no clear orientation).
        deep_source: "network" or "line search".
        issues: what was not found or was guessed.
    """

    found: bool
    superficial_row_px: float
    deep_row_px: float
    superficial_angle_deg: float
    deep_angle_deg: float
    thickness_px: float
    fascicle_angle_deg: float
    pennation_deg: float
    fascicle_score: float
    deep_source: str = ""
    issues: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Block-average then resample ``image`` by ``1 / factor`` (``factor <= 1``: unchanged)."""
    from scipy import ndimage

    img = np.asarray(image, np.float32)
    if factor <= 1.0:
        return img
    k = max(1, int(factor))
    return ndimage.zoom(ndimage.uniform_filter(img, k), 1.0 / factor, order=1)


def ridge_map(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Bright-ridge strength ``max(-lambda_1, 0)`` of the Hessian at scale ``sigma_px``.

    ``lambda_1`` is the Hessian's most negative eigenvalue (across a bright line); Frangi et al.
    (1998) build their vesselness on the same eigenvalues. Returns ``(H, W)`` float32.
    """
    from scipy import ndimage

    img = np.asarray(image, np.float32)
    hyy = ndimage.gaussian_filter(img, sigma_px, order=(2, 0))
    hxx = ndimage.gaussian_filter(img, sigma_px, order=(0, 2))
    hxy = ndimage.gaussian_filter(img, sigma_px, order=(1, 1))
    l1 = 0.5 * (hxx + hyy - np.sqrt((hxx - hyy) ** 2 + 4 * hxy**2))
    return np.maximum(-l1, 0.0)


def line_projection_scores(
    values: np.ndarray, region: np.ndarray, angles_deg: np.ndarray
) -> np.ndarray:
    """How much ``values`` vary between parallel lines of each angle inside ``region``.

    For each angle the region's pixels are binned by the line (one row apart) they lie on; the
    score is the between-line variance of the line means, ``sum_l n_l (mean_l - mean)^2 /
    n_lines`` over lines at least 30 % as long as the longest (a discrete Radon transform with
    its variance as the peak measure). Hand-written because scikit-image's ``radon`` needs a
    square image and is not a dependency.

    Args:
        values: ``(H, W)`` float map.
        region: ``(H, W)`` bool.
        angles_deg: ``(A,)`` line angles (+ = deeper to the right).

    Returns:
        ``(A,)`` float64 scores (0 where the region is empty).
    """
    yy, xx = np.nonzero(region)
    out = np.zeros(len(angles_deg))
    if yy.size < 16:
        return out
    v = values[yy, xx].astype(np.float64)
    v -= v.mean()
    xs = xx - xx.mean()
    for i, a in enumerate(angles_deg):
        off = np.rint(yy - np.tan(np.radians(a)) * xs).astype(np.int64)
        off -= off.min()
        n = np.bincount(off)
        p = np.bincount(off, v)
        ok = n > 0.3 * n.max()
        out[i] = np.sum(p[ok] ** 2 / n[ok]) / max(int(n[ok].sum()), 1)
    return out


@dataclass(frozen=True)
class Line:
    """A straight line ``row = row_c + tan(angle) * (col - centre)`` in image pixels."""

    row_c: float
    angle_deg: float

    def rows(self, width: int) -> np.ndarray:
        """``(width,)`` rows of the line at every column."""
        x = np.arange(width) - (width - 1) / 2
        return self.row_c + np.tan(np.radians(self.angle_deg)) * x


def _fit_line(rows: np.ndarray, cover: np.ndarray) -> Line:
    width = rows.size
    cols = np.flatnonzero(cover)
    if cols.size < 2:
        cols = np.arange(width)
    slope, icpt = np.polyfit(cols, rows[cols], 1)
    return Line(float(icpt + slope * (width - 1) / 2), float(np.degrees(np.arctan(slope))))


def continuous_ridge_map(image: np.ndarray, sigma_rows: float) -> np.ndarray:
    """Where a near-horizontal bright band may run: 1 where the image's vertical second
    derivative (Gaussian, ``sigma_rows`` across, 1 pixel along) is more negative than its median
    over the image, else 0.

    Averaged along a line, this is the fraction of columns where the line lies on a horizontal
    ridge: an aponeurosis is such a ridge over most of the width, while a line across oblique
    fascicles meets ridges only where it crosses one, however bright they are.

    Returns:
        ``(H, W)`` float32 of 0 and 1.
    """
    from scipy import ndimage

    rv = -ndimage.gaussian_filter(np.asarray(image, np.float32), (sigma_rows, 1.0), order=(2, 0))
    return (rv > np.median(rv)).astype(np.float32)


def search_line(
    evidence: np.ndarray,
    row_min: float,
    max_angle_deg: float,
    step_deg: float = 0.5,
    centre_angle_deg: float = 0.0,
) -> tuple[Line, float] | None:
    """The straight line of highest mean ``evidence`` whose centre row is below ``row_min``.

    Args:
        evidence: ``(H, W)`` float map (bright where an aponeurosis is likely).
        row_min: least centre row searched.
        max_angle_deg: angles searched, ``centre - max .. centre + max``.
        step_deg: angle step.
        centre_angle_deg: the middle of the angles searched.

    Returns:
        ``(line, score)`` with score the mean evidence along it, or None when no line of at least
        60 % of the width fits below ``row_min``.
    """
    h, w = evidence.shape
    x = np.arange(w) - (w - 1) / 2
    r = np.arange(int(np.ceil(row_min)), h)[:, None]
    if r.size == 0:
        return None
    best: tuple[float, float, float] | None = None
    cols = np.arange(w)[None, :]
    for a in centre_angle_deg + np.arange(-max_angle_deg, max_angle_deg + 1e-9, step_deg):
        rows = np.rint(r + np.tan(np.radians(a)) * x[None, :]).astype(np.int64)
        ok = (rows >= 0) & (rows < h)
        vals = np.where(ok, evidence[np.clip(rows, 0, h - 1), cols], 0.0)
        n = ok.sum(axis=1)
        score = np.where(n >= 0.6 * w, vals.sum(axis=1) / np.maximum(n, 1), -np.inf)
        i = int(np.argmax(score))
        if np.isfinite(score[i]) and (best is None or score[i] > best[0]):
            best = (float(score[i]), float(r[i, 0]), float(a))
    if best is None:
        return None
    return Line(best[1], best[2]), best[0]


def band_inner_edges(
    image: np.ndarray,
    band_rows: np.ndarray,
    towards: int,
    search_px: np.ndarray | float,
    window_px: np.ndarray | float,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Row of a bright band's inner edge (the edge that faces the muscle) in every column.

    Convention (that of observers who draw an aponeurosis where the muscle begins): the inner
    edge of the superficial aponeurosis is its DEEP edge (``towards=+1``, the muscle lies below
    it), that of the deep aponeurosis its SUPERFICIAL edge (``towards=-1``). In each column the
    band's brightest row within ``search_px`` of ``band_rows`` is its peak; the edge is the row of
    steepest grey-level fall from that peak towards the muscle, within ``window_px`` of it (grey
    levels smoothed over 2 rows x 3 columns). Where ``mask`` (the segmenter's thresholded band)
    has pixels within ``search_px`` of the band, the edge is instead the mask's last pixel
    towards the muscle plus half a pixel (the boundary between band and muscle pixels).

    Args:
        image: ``(H, W)`` grey image.
        band_rows: ``(W,)`` rows of the band's centre line.
        towards: +1 where the muscle lies below the band, -1 where above.
        search_px: how far from ``band_rows`` the peak (or mask) is looked for, scalar or ``(W,)``.
        window_px: how far from the peak the edge is looked for, scalar or ``(W,)``.
        mask: optional ``(H, W)`` bool band mask.

    Returns:
        ``(W,)`` float64 edge rows (NaN in columns where the band lies outside the image).

    Raises:
        InputError: ``towards`` is not +1 or -1, or shapes do not match.
    """
    from scipy import ndimage

    if towards not in (1, -1):
        raise InputError(f"towards must be +1 (muscle below) or -1 (muscle above), got {towards}")
    image = np.asarray(image)
    h, w = image.shape
    band_rows = np.asarray(band_rows, np.float64)
    if band_rows.shape != (w,) or (mask is not None and np.shape(mask) != (h, w)):
        raise InputError(
            f"band_inner_edges: band_rows must be ({w},) and mask ({h}, {w}), got "
            f"{band_rows.shape} and {None if mask is None else np.shape(mask)}"
        )
    search = np.broadcast_to(np.asarray(search_px, np.float64), (w,))
    window = np.maximum(np.broadcast_to(np.asarray(window_px, np.float64), (w,)), 2.0)
    cols = np.arange(w)
    img = ndimage.gaussian_filter(np.asarray(image, np.float32), (2.0, 3.0))
    grad = np.gradient(img, axis=0)
    # peak: brightest row within +-search of the line (vectorised over columns)
    reach = int(np.ceil(search.max())) if np.isfinite(search).any() else 0
    offs = np.arange(-reach, reach + 1)[:, None]
    rows = np.rint(band_rows)[None, :] + offs
    inside = (np.abs(offs) <= search[None, :]) & (rows >= 0) & (rows < h)
    vals = np.where(inside, img[np.clip(rows, 0, h - 1).astype(np.int64), cols], -np.inf)
    has = inside.any(axis=0) & np.isfinite(band_rows)
    peak = rows[np.argmax(vals, axis=0), cols]
    # edge: steepest fall from the peak towards the muscle, within the window
    span = int(np.ceil(window.max()))
    steps = np.arange(0, span + 1)[:, None]
    erows = peak[None, :] + towards * steps
    ok = (steps <= window[None, :]) & (erows >= 0) & (erows < h)
    g = np.where(ok, towards * grad[np.clip(erows, 0, h - 1).astype(np.int64), cols], np.inf)
    edge = np.where(has, erows[np.argmin(g, axis=0), cols], np.nan).astype(np.float64)
    if mask is not None:
        r = np.arange(h)[:, None]
        near = np.asarray(mask, bool) & (np.abs(r - band_rows[None, :]) <= search[None, :])
        any_m = near.any(axis=0)
        if towards > 0:
            medge = h - 1 - np.argmax(near[::-1], axis=0) + 0.5
        else:
            medge = np.argmax(near, axis=0) - 0.5
        edge = np.where(any_m, medge, edge)
    return edge


def thickness_at_column(
    superficial_edge: np.ndarray, deep_edge: np.ndarray, column: float, span_cols: float
) -> float:
    """Vertical distance between two edge curves, read at one column.

    The median over the columns within ``span_cols`` of ``column`` (one-sided at the image's
    edges) of ``deep_edge - superficial_edge``; the median keeps single bad columns out.

    Args:
        superficial_edge, deep_edge: ``(W,)`` rows (NaN where not found).
        column: where to read, in columns (0 = the left edge of the image).
        span_cols: half-width of the columns used.

    Returns:
        Distance in rows (NaN with fewer than 3 columns where both edges exist).
    """
    d = np.asarray(deep_edge, np.float64) - np.asarray(superficial_edge, np.float64)
    cols = np.arange(d.size)
    d = d[(np.abs(cols - column) <= max(span_cols, 1.0)) & np.isfinite(d)]
    return float(np.median(d)) if d.size >= 3 else float("nan")


def inner_thickness_px(
    image: np.ndarray,
    sup: Line,
    deep: Line,
    edge_window: float = 0.15,
    *,
    probability: np.ndarray | None = None,
    threshold: float = 0.5,
    edges: str = "mask",
    at: float = 0.0,
    span: float = 0.1,
) -> float:
    """Distance between the inner edges of two aponeurosis bands, in pixels.

    The edges are those of :func:`band_inner_edges` (the superficial band's deep edge, the deep
    band's superficial edge), each band's peak sought within a tenth of the line distance of its
    line and its edge within ``edge_window`` times that distance; with ``edges="mask"`` and a
    ``probability``, its thresholded band gives the edge wherever it covers the band
    (``edges="profile"``: the grey-level profile alone). The distance is read
    vertically at the column ``at * (W - 1)`` (0 = the left edge of the image, where the observers
    of the TimTrack data read thickness, van der Zee & Kuo 2022, PLOS ONE 17(3): e0265752), as the
    median over the columns within ``span * W`` of it (:func:`thickness_at_column`).

    Returns:
        Thickness in pixels (NaN where the lines are under 8 rows apart or no edge was found).
    """
    w = image.shape[1]
    s_rows, d_rows = sup.rows(w), deep.rows(w)
    t = d_rows - s_rows
    if not np.isfinite(t).all() or np.median(t) < 8:
        return float("nan")
    t = np.maximum(t, 8.0)
    if edges not in EDGE_SOURCES:
        raise InputError(f"unknown edge source {edges!r}; use one of {EDGE_SOURCES}")
    use_mask = edges == "mask" and probability is not None
    mask = np.asarray(probability) > threshold if use_mask else None
    # only the columns read (and a margin for the smoothing) are filtered
    x = at * (w - 1)
    c0 = max(0, int(np.floor(x - max(span * w, 1.0))) - 12)
    c1 = min(w, int(np.ceil(x + max(span * w, 1.0))) + 13)
    cut = slice(c0, c1)
    sub_mask = None if mask is None else mask[:, cut]
    top = band_inner_edges(
        image[:, cut], s_rows[cut], +1, 0.1 * t[cut], edge_window * t[cut], sub_mask
    )
    bottom = band_inner_edges(
        image[:, cut], d_rows[cut], -1, 0.1 * t[cut], edge_window * t[cut], sub_mask
    )
    return thickness_at_column(top, bottom, x - c0, span * w)


def _acute(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return float(min(d, 180.0 - d))


def fascicle_scores(
    image: np.ndarray, sup: Line, deep: Line, config: ArchitectureConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """Line scores of the ridge map between two aponeuroses, per candidate angle and scale.

    Returns:
        ``(angles_deg (A,), scores (S, A))`` with each scale's scores divided by their maximum,
        or None where the muscle is too thin to measure.
    """
    w = image.shape[1]
    thick = float(np.median(deep.rows(w) - sup.rows(w)))
    if not np.isfinite(thick) or thick < 8:
        return None
    f = max(1.0, thick / config.work_thickness_px)
    small = _downscale(image, f)
    hs, ws = small.shape
    xs = np.arange(ws) * f
    srow = np.interp(xs, np.arange(w), sup.rows(w)) / f
    drow = np.interp(xs, np.arange(w), deep.rows(w)) / f
    t = drow - srow
    rows = np.arange(hs)[:, None]
    cols = np.zeros(ws, bool)
    cols[int(0.05 * ws) : int(0.95 * ws) + 1] = True
    core = (rows > srow + config.margin * t) & (rows < drow - config.margin * t) & cols
    if core.sum() < 64:
        return None
    angles = np.arange(-config.max_angle_deg, config.max_angle_deg + 1e-9, 0.5)
    scores = np.zeros((len(config.ridge_sigmas_px), angles.size))
    for k, sigma in enumerate(config.ridge_sigmas_px):
        ridge = ridge_map(small, sigma)
        if config.ridge_quantile > 0:
            # keep the strongest ridges only (a binary line map, as a Hough transform takes)
            ridge = (ridge > np.quantile(ridge[core], config.ridge_quantile)).astype(np.float32)
        sc = line_projection_scores(ridge, core, angles)
        scores[k] = sc / max(float(sc.max()), 1e-12)
    return angles, scores


def pick_fascicle_angle(
    angles: np.ndarray, total: np.ndarray, apo_angle_deg: float, min_pennation_deg: float
) -> tuple[float, float]:
    """The best-scoring angle at least ``min_pennation_deg`` from the aponeuroses' angle.

    Returns:
        ``(angle_deg, score)``: the score is the peak over the median allowed score (NaN, NaN
        when no angle is allowed).
    """
    allowed = np.abs(angles - apo_angle_deg) >= min_pennation_deg
    if not allowed.any():
        return float("nan"), float("nan")
    i = int(np.argmax(np.where(allowed, total, -np.inf)))
    return float(angles[i]), float(total[i] / max(float(np.median(total[allowed])), 1e-12))


def fascicle_orientation_deg(
    image: np.ndarray, sup: Line, deep: Line, config: ArchitectureConfig
) -> tuple[float, float]:
    """Dominant fascicle angle between two aponeurosis lines (see the module docstring).

    Returns:
        ``(angle_deg, score)``: angle in image pixels (+ = deeper to the right), and the peak
        score over the median score of the candidate angles (NaN, NaN where not measurable).
    """
    found = fascicle_scores(image, sup, deep, config)
    if found is None:
        return float("nan"), float("nan")
    angles, scores = found
    apo = 0.5 * (sup.angle_deg + deep.angle_deg)
    return pick_fascicle_angle(angles, scores.sum(axis=0), apo, config.min_pennation_deg)


def deep_line_search(
    image: np.ndarray, probability: np.ndarray, sup: Line, config: ArchitectureConfig
) -> Line | None:
    """The deep aponeurosis where the segmenter missed it: a straight line below ``sup``.

    At a working height of 256 rows, the line (within ``apo_max_divergence_deg`` of ``sup``,
    at least ``min_thickness`` of the image height below it) of the highest mean of
    :func:`continuous_ridge_map` plus ``line_prob_weight`` times the probability.

    Args:
        image: ``(H, W)`` grey image; probability: ``(H, W)`` segmenter output.
        sup: the superficial aponeurosis line.
        config: :class:`ArchitectureConfig`.

    Returns:
        The line in pixels of ``image``, or None where no line fits below ``sup``.
    """
    from scipy import ndimage

    h, w = image.shape
    f = max(1.0, h / 256.0)
    small = _downscale(image, f)
    prob_small = ndimage.zoom(
        np.asarray(probability, np.float32), (small.shape[0] / h, small.shape[1] / w), order=1
    )
    evidence = continuous_ridge_map(small, config.band_sigma_rows)
    evidence += config.line_prob_weight * prob_small
    return line_below(evidence, sup, h, f, config)


def line_below(
    evidence: np.ndarray, above: Line, h: int, f: float, config: ArchitectureConfig
) -> Line | None:
    """The straightest strong line of ``evidence`` (an image downscaled by ``f`` from ``h``
    rows) at least ``config.min_thickness * h`` below ``above`` and within
    ``config.apo_max_divergence_deg`` of it, in full-size pixels; None where none fits."""
    found = search_line(
        evidence,
        (above.row_c + config.min_thickness * h) / f,
        config.apo_max_divergence_deg,
        centre_angle_deg=above.angle_deg,
    )
    if found is None:
        return None
    line = found[0]
    return Line(line.row_c * f + (f - 1) / 2, line.angle_deg)


def measure_image(
    image: np.ndarray, probability: np.ndarray, config: ArchitectureConfig | None = None
) -> ImageArchitecture:
    """Aponeuroses, thickness and fascicle angle of one image.

    Args:
        image: ``(H, W)`` uint8 grey B-mode image (the B-mode area only, no scanner interface).
        probability: ``(H, W)`` aponeurosis probability of the segmenter for that image.
        config: :class:`ArchitectureConfig`.

    Returns:
        :class:`ImageArchitecture` in pixels of ``image``.

    Raises:
        InputError: shapes differ or are not 2-D.
    """
    from musclestate.roi.geometry import GeometryConfig, fit_geometry

    config = config or ArchitectureConfig()
    image = np.asarray(image)
    probability = np.asarray(probability, np.float32)
    if image.ndim != 2 or image.shape != probability.shape:
        raise InputError(
            f"measure_image needs one (H, W) image and a probability map of the same shape, got "
            f"{image.shape} and {probability.shape}"
        )
    h = image.shape[0]
    geo = fit_geometry(
        probability,
        (1.0, 1.0),
        GeometryConfig(
            threshold=config.threshold,
            min_thickness_mm=config.min_thickness * h,
            pair=config.pair,
            max_divergence_deg=2 * config.apo_max_divergence_deg,
        ),
    )
    issues = list(geo.issues)
    nan = float("nan")
    sup = _fit_line(geo.superficial_row, geo.superficial_cover) if geo.found_superficial else None
    deep = _fit_line(geo.deep_row, geo.deep_cover) if geo.found_deep else None
    source = "network" if deep is not None else ""
    if sup is not None and (deep is None or not geo.found):
        found = deep_line_search(image, probability, sup, config)
        if found is not None:
            deep = found
            source = "line search"
            issues.append("deep aponeurosis found by line search")
    if sup is None or deep is None:
        return ImageArchitecture(
            False,
            sup.row_c if sup else nan,
            deep.row_c if deep else nan,
            sup.angle_deg if sup else nan,
            deep.angle_deg if deep else nan,
            nan,
            nan,
            nan,
            nan,
            source,
            tuple(issues),
        )
    thickness = inner_thickness_px(
        image,
        sup,
        deep,
        config.edge_window,
        probability=probability,
        threshold=config.threshold,
        edges=config.thickness_edges,
        at=config.thickness_at,
        span=config.thickness_span,
    )
    angle, score = fascicle_orientation_deg(image, sup, deep, config)
    return ImageArchitecture(
        found=True,
        superficial_row_px=sup.row_c,
        deep_row_px=deep.row_c,
        superficial_angle_deg=sup.angle_deg,
        deep_angle_deg=deep.angle_deg,
        thickness_px=thickness,
        fascicle_angle_deg=angle,
        pennation_deg=_acute(angle, deep.angle_deg) if np.isfinite(angle) else nan,
        fascicle_score=score,
        deep_source=source,
        issues=tuple(issues),
    )
