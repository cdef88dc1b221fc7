"""Fast B-mode image formation from point scatterers fixed in tissue coordinates.

Each scatterer has material coordinates in one tissue layer (skin/fat, superficial aponeurosis, MG,
deep aponeurosis, SOL, SOL floor, deep tissue) and a fixed signed amplitude (random, times the
layer's echogenicity and its texture: fascicle septa with breaks and curvature, fat septa,
aponeurosis striations). Per frame the layer geometry (:mod:`musclestate.phantom.geometry`) maps
the scatterers to image positions, so speckle moves and decorrelates with the tissue.

Image formation (the fast model of DESIGN.md section 4): each scatterer adds its baseband echo
``A exp(-i 2 k y)`` to a complex IQ grid (linear in depth, so sub-pixel axial motion shows), the
grid is blurred with a separable Gaussian point-spread function (axial pulse length, lateral beam
width), electronic noise is added, then envelope, depth gain (attenuation minus time-gain
compensation), and log compression to the scanner's dynamic range.
Everything is float32 numpy/scipy; a 256 x 256 frame with ~7e4 scatterers takes ~10 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from musclestate.phantom.geometry import rest_geometry
from musclestate.phantom.participants import Participant

#: Label values of the masks (contract with the ROI stage).
BACKGROUND, SUP_APO, DEEP_APO, MG_REGION, SOL_REGION = 0, 1, 2, 3, 4

_SKIN_FAT, _SUP, _MG, _DEEP, _SOL, _FLOOR, _BELOW = range(7)
_SOUND_MM_PER_US = 1.54
_MUSCLE_DB = 9.0  # plain muscle speckle RMS above the display floor (dB), at 0 dB gain


@dataclass(frozen=True)
class ImageGrid:
    """Pixel grid of the B-mode image: ``(rows, cols)`` over ``depth_mm`` x ``width_mm``."""

    rows: int
    cols: int
    depth_mm: float
    width_mm: float

    @property
    def spacing_mm(self) -> tuple[float, float]:
        """``(row_mm, col_mm)``."""
        return (self.depth_mm / self.rows, self.width_mm / self.cols)


def _stripes(dist: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * (dist / width) ** 2)


class TissueModel:
    """Scatterers of one participant (fixed in tissue) and the scanner that images them.

    Args:
        p: the participant (anatomy, echogenicity, scanner settings).
        grid: the image grid.
        rng: source of the scatterers and their texture (consumed once, here).
        scatterers_per_px: mean scatterers per pixel area (~7 per resolution cell by default).
    """

    def __init__(
        self,
        p: Participant,
        grid: ImageGrid,
        rng: np.random.Generator,
        *,
        scatterers_per_px: float = 0.6,
    ) -> None:
        self.p = p
        self.grid = grid
        dy, dx = grid.spacing_mm
        self._density = scatterers_per_px / (dy * dx)  # per mm^2
        half = grid.width_mm / 2.0
        # Lateral extent of each layer at rest, with margins for tissue that slides into view:
        # probe re-placement moves everything by up to 4 mm; contraction pulls the deep
        # aponeurosis towards -x by up to ~30 mm (parallelogram model); SOL fascicles swing both
        # ways as their pennation changes.
        fixed = (-half - 6.0, half + 6.0)
        ext = {
            _SKIN_FAT: fixed,
            _SUP: (-half - 9.0, half + 9.0),
            _MG: (-half - 10.0, half + 30.0),
            _DEEP: (-half - 10.0, half + 30.0),
            _SOL: (-half - 20.0, half + 20.0),
            _FLOOR: fixed,
            _BELOW: fixed,
        }
        self._x_lo = min(lo for lo, _ in ext.values())

        pops: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

        def add(pop: int, a: np.ndarray, b: np.ndarray, amp: np.ndarray) -> None:
            pops.append((pop, a.astype(np.float32), b.astype(np.float32), amp.astype(np.float32)))

        def count(area: float) -> int:
            return int(rng.poisson(self._density * area))

        def lateral(pop: int, area_depth_mm: float) -> np.ndarray:
            lo, hi = ext[pop]
            return rng.uniform(lo, hi, count((hi - lo) * area_depth_mm))

        # skin + fat: a = x (mm), b = fraction of the depth above the superficial aponeurosis.
        top = p.skin_mm + p.fat_mm
        a = lateral(_SKIN_FAT, top)
        n = a.size
        b = rng.uniform(0.0, 1.0, n)
        skin_frac = p.skin_mm / top
        septa = np.zeros(n)
        for _ in range(max(1, int(p.fat_mm / 2.0))):
            d0 = rng.uniform(skin_frac + 0.1, 0.9)
            amp_w, lam, ph = rng.uniform(0.02, 0.08), rng.uniform(8.0, 25.0), rng.uniform(0, 6.3)
            line = d0 + amp_w * np.sin(2 * np.pi * a / lam + ph)
            septa += _stripes((b - line) * top, 0.25) * (np.sin(a / rng.uniform(3, 9) + ph) > -0.3)
        amp = np.where(b < skin_frac, 0.3 * p.apo_echo, p.fat_echo * (1.0 + 4.0 * septa))
        add(_SKIN_FAT, a, b, amp)

        # superficial aponeurosis: a = u (mm along), b = w in [-0.5, 0.5] of its thickness.
        for pop, thick, gain in ((_SUP, p.sup_apo_mm, 1.0), (_DEEP, p.deep_apo_mm, 0.9)):
            a = lateral(pop, thick * 1.2)
            n = a.size
            b = rng.uniform(-0.6, 0.6, n)
            stri = (0.5 + 0.5 * np.cos(2 * np.pi * b * rng.uniform(1.5, 2.5)) ** 2) * (
                0.6 + 0.4 * np.sin(a / rng.uniform(2.0, 6.0) + rng.uniform(0, 6.3)) ** 2
            )
            edge = np.clip((0.6 - np.abs(b)) / 0.2, 0.0, 1.0)
            add(pop, a, b, gain * p.apo_echo * stri * edge)

        # MG: a = u (attachment on the superficial aponeurosis), b = s in [0, 1] along the
        # fascicle. Scatterers are spread evenly over the resting muscle: for a resting position
        # x and fraction s, u solves x = u + s t(u) cos(phi) exactly (t is linear in u).
        g0 = rest_geometry(p).at(0)
        x_rest = lateral(_MG, p.mg_thickness_mm)
        n = x_rest.size
        s = rng.uniform(0.0, 1.0, n)
        phi = np.deg2rad(g0["mg_pennation_deg"]) + np.arctan(g0["deep_apo_slope"])
        c, sn = np.cos(phi), np.sin(phi)
        d = sn - g0["deep_apo_slope"] * c
        a0 = (g0["deep_apo_depth_mm"] - 0.5 * p.deep_apo_mm) - (
            g0["sup_apo_depth_mm"] + 0.5 * p.sup_apo_mm
        )
        k = g0["deep_apo_slope"] - g0["sup_apo_slope"]
        u = (x_rest - s * c * a0 / d) / (1.0 + s * c * k / d)
        add(_MG, u, s, p.muscle_echo * self._fascicle_texture(u, s, p, rng, sin_pen=sn))

        # SOL: a = u (attachment on the deep aponeurosis), b = s in [0, 1] down the fascicle
        # (towards -x); same exact inversion at rest.
        x_rest = lateral(_SOL, p.sol_thickness_mm)
        n = x_rest.size
        s = rng.uniform(0.0, 1.0, n)
        psi = np.deg2rad(g0["sol_pennation_deg"]) - np.arctan(g0["deep_apo_slope"])
        c, sn = np.cos(psi), np.sin(psi)
        e = sn + g0["sol_floor_slope"] * c
        b0 = (g0["sol_floor_depth_mm"] - 0.35 * p.deep_apo_mm) - (
            g0["deep_apo_depth_mm"] + 0.5 * p.deep_apo_mm
        )
        k = g0["sol_floor_slope"] - g0["deep_apo_slope"]
        u = (x_rest + s * c * b0 / e) / (1.0 - s * c * k / e)
        tex = self._fascicle_texture(u, s, p, rng, sin_pen=sn, contrast=0.35)
        add(_SOL, u, s, 1.4 * p.muscle_echo * tex)

        # SOL floor band and the deep tissue below it (flexor hallucis longus, darker).
        floor = 0.7 * p.deep_apo_mm
        a = lateral(_FLOOR, floor * 1.2)
        n = a.size
        b = rng.uniform(-0.6, 0.6, n)
        add(_FLOOR, a, b, 0.3 * p.apo_echo * np.clip((0.6 - np.abs(b)) / 0.2, 0.0, 1.0))
        below = max(grid.depth_mm, 10.0)
        a = lateral(_BELOW, below * 0.5)
        n = a.size
        b = rng.uniform(0.0, below, n)
        add(_BELOW, a, b, 0.7 * p.muscle_echo * np.ones(n))

        self._pop_slices: list[tuple[int, slice]] = []
        start = 0
        for pop, a, _, _ in pops:
            self._pop_slices.append((pop, slice(start, start + a.size)))
            start += a.size
        self._a = np.concatenate([q[1] for q in pops])
        self._b = np.concatenate([q[2] for q in pops])
        signs = rng.standard_normal(start).astype(np.float32)
        self._amp = np.concatenate([q[3] for q in pops]) * signs
        self.n_scatterers = start
        self._sol_slice = next(sl for pop, sl in self._pop_slices if pop == _SOL)
        self._sol_rest_mm = g0["sol_thickness_mm"]
        # Sort each layer by its resting pixel (row-major) so that splatting is cache-friendly.
        x0, y0 = self.positions(rest_geometry(p).at(0))
        key = np.floor(y0 / dy) * (grid.cols + 64) + np.floor((x0 - self._x_lo) / dx)
        order = np.concatenate(
            [sl.start + np.argsort(key[sl], kind="stable") for _, sl in self._pop_slices]
        )
        self._a, self._b, self._amp = self._a[order], self._b[order], self._amp[order]

        # Scanner: PSF in pixels, depth gain, phase factor.
        self._k2 = np.float32(4.0 * np.pi * p.frequency_mhz / _SOUND_MM_PER_US)  # rad/mm
        self._sig_ax = max(p.axial_sigma_mm / dy, 0.6)
        depth = (np.arange(grid.rows) + 0.5) * dy
        # One lateral beam width per participant (the depth-averaged width of a focused beam).
        self._sig_lat = max(p.lateral_sigma_mm / dx, 0.6)
        self._smooth_px = max(p.speckle_smoothing_mm / dy, 0.3)
        # Depth gain in dB: attenuation left over after time-gain compensation.
        self._gain_db_row = (p.tgc_residual_db_per_cm * depth / 10.0).astype(np.float32)[:, None]
        # Electronic noise: a bank of 8 complex white-noise fields (drawn once), one picked per
        # frame, saves drawing 2 x rows x cols normals per frame.
        level = np.float32(10.0 ** (p.noise_db / 20.0) * self._muscle_rms())
        self._noise = level * rng.standard_normal((8, 2, grid.rows, grid.cols), dtype=np.float32)

    @staticmethod
    def _fascicle_texture(
        u: np.ndarray,
        s: np.ndarray,
        p: Participant,
        rng: np.random.Generator,
        *,
        sin_pen: float,
        contrast: float = 1.0,
    ) -> np.ndarray:
        """Echogenicity of muscle in tissue coordinates: septa along fascicles, with breaks."""
        spacing_u = p.fascicle_spacing_mm / sin_pen  # septa spacing along the aponeurosis
        k = np.round(u / spacing_u)
        n_lines = int(k.max() - k.min()) + 3
        k0 = int(k.min()) - 1
        jitter = rng.uniform(-0.3, 0.3, n_lines) * spacing_u
        # a small static irregularity of each fascicle (under ~1 1/m), fixed in tissue
        bend = rng.uniform(-0.15, 0.15, n_lines) * spacing_u
        strength = rng.uniform(0.2, 1.0, n_lines) ** 2 * (rng.uniform(size=n_lines) < 0.85)
        period = rng.uniform(0.5, 1.3, n_lines)
        phase = rng.uniform(0.0, 2 * np.pi, n_lines)
        width = 0.15 / sin_pen
        tex = np.zeros_like(u)
        for dk in (-1, 0, 1):
            idx = (k + dk - k0).astype(np.int64)
            centre = (k + dk) * spacing_u + jitter[idx] + bend[idx] * 4.0 * s * (1.0 - s)
            on = np.sin(2 * np.pi * s / period[idx] + phase[idx]) > -0.3  # breaks
            tex += strength[idx] * on * _stripes(u - centre, width)
        # slow echogenicity variation (fibre bundles), fixed in tissue
        blob = 1.0 + 0.4 * np.sin(u / rng.uniform(4, 8) + rng.uniform(0, 6.3)) * np.sin(
            s * rng.uniform(3, 6) + rng.uniform(0, 6.3)
        )
        return (0.35 + contrast * p.fascicle_contrast * tex) * blob

    # ----------------------------------------------------------------------------------------
    def positions(self, g: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Image positions ``(x_mm, y_mm)`` of every scatterer for one frame's geometry."""
        p = self.p
        x = np.empty_like(self._a)
        y = np.empty_like(self._a)
        f32 = np.float32
        s_sup, s_deep, s_floor = (
            f32(g["sup_apo_slope"]),
            f32(g["deep_apo_slope"]),
            f32(g["sol_floor_slope"]),
        )
        sup_c, deep_c, floor_c = (
            f32(g["sup_apo_depth_mm"]),
            f32(g["deep_apo_depth_mm"]),
            f32(g["sol_floor_depth_mm"]),
        )
        floor_band = 0.7 * p.deep_apo_mm
        for pop, sl in self._pop_slices:
            a, b = self._a[sl], self._b[sl]
            if pop == _SKIN_FAT:
                x[sl] = a
                top = sup_c - f32(0.5 * p.sup_apo_mm) + s_sup * a
                y[sl] = b * top
            elif pop == _SUP:
                xs = a + f32(g["shift_sup_mm"])
                x[sl] = xs
                y[sl] = sup_c + s_sup * xs + b * f32(p.sup_apo_mm)
            elif pop == _DEEP:
                xs = a + f32(g["shift_deep_mm"])
                x[sl] = xs
                y[sl] = deep_c + s_deep * xs + b * f32(p.deep_apo_mm)
            elif pop == _MG:
                xa = a + f32(g["shift_sup_mm"])
                ya = sup_c + f32(0.5 * p.sup_apo_mm) + s_sup * xa
                phi = np.deg2rad(g["mg_pennation_deg"]) + np.arctan(g["deep_apo_slope"])
                c, sn = f32(np.cos(phi)), f32(np.sin(phi))
                y_bottom = deep_c - f32(0.5 * p.deep_apo_mm) + s_deep * xa
                t = (y_bottom - ya) / (sn - s_deep * c)
                # Circular-arc bow of curvature kappa: sagitta kappa t^2 / 8, towards the
                # superficial, distal side (concave on the proximal side).
                sagitta = f32(g["mg_curvature_per_m"] * 1e-3 / 8.0) * t * t
                bow = sagitta * 4.0 * b * (1.0 - b)
                x[sl] = xa + b * t * c + bow * sn
                y[sl] = ya + b * t * sn - bow * c
            elif pop == _SOL:
                xa = a + f32(g["shift_sol_mm"])
                ya = deep_c + f32(0.5 * p.deep_apo_mm) + s_deep * xa
                psi = np.deg2rad(g["sol_pennation_deg"]) - np.arctan(g["deep_apo_slope"])
                c, sn = f32(np.cos(psi)), f32(np.sin(psi))
                y_floor = floor_c - f32(0.5 * floor_band) + s_floor * xa
                t = (y_floor - ya) / (sn + s_floor * c)
                x[sl] = xa - b * t * c
                y[sl] = ya + b * t * sn
            elif pop == _FLOOR:
                xs = a + f32(g["shift_floor_mm"])
                x[sl] = xs
                y[sl] = floor_c + s_floor * xs + b * f32(floor_band)
            else:  # _BELOW
                xs = a + f32(g["shift_floor_mm"])
                x[sl] = xs
                y[sl] = floor_c + f32(0.5 * floor_band) + s_floor * xs + b
        return x, y

    def _iq(self, x: np.ndarray, y: np.ndarray, amp: np.ndarray) -> np.ndarray:
        """Splat the scatterers' baseband echoes onto a ``(2, rows, cols)`` grid.

        ``np.bincount`` does the accumulation; the scatterers are stored sorted by their resting
        pixel, so the accumulation walks memory almost in order (about 5x faster than random).
        Scatterers outside the image land in a one-pixel border that is cut off.
        """
        g = self.grid
        dy, dx = g.spacing_mm
        pw = g.cols + 2
        size = (g.rows + 2) * pw
        r = y * np.float32(1.0 / dy) + np.float32(0.5)  # +1 border, -0.5 pixel centre
        c = (x + np.float32(g.width_mm / 2.0)) * np.float32(1.0 / dx) + np.float32(1.0)
        keep = np.flatnonzero((r >= 0.0) & (r < g.rows + 1.0) & (c >= 0.0) & (c < g.cols + 1.0))
        r, c, y, amp = r[keep], c[keep], y[keep], amp[keep]
        phase = self._k2 * y
        re = amp * np.cos(phase)
        im = amp * np.sin(phase)
        r0 = np.floor(r)
        fr = r - r0
        gr = 1.0 - fr
        # Linear in depth (the axial PSF is under a pixel wide), nearest across (the lateral
        # PSF spans ~2 pixels): four bincounts instead of eight.
        base = r0.astype(np.int64) * pw + c.astype(np.int64)
        n = size + pw
        acc_re = np.bincount(base, re * gr, n) + np.bincount(base + pw, re * fr, n)
        acc_im = np.bincount(base, im * gr, n) + np.bincount(base + pw, im * fr, n)
        out = np.stack([acc_re[:size], acc_im[:size]]).reshape(2, g.rows + 2, pw)
        return out[:, 1:-1, 1:-1].astype(np.float32)

    def _power(self, g: dict[str, float], rng: np.random.Generator) -> np.ndarray:
        """Echo power ``|IQ|^2`` ``(rows, cols)`` float32 after PSF blur and noise."""
        x, y = self.positions(g)
        amp = self._amp
        stretch = g["sol_thickness_mm"] / self._sol_rest_mm
        if stretch != 1.0:
            # SOL keeps its scatterers while it thickens: keep its echo power per area constant.
            amp = amp.copy()
            amp[self._sol_slice] *= np.float32(1.0 / np.sqrt(stretch))
        iq = self._iq(x, y, amp)
        if self._sig_ax <= 1.0:
            # A sub-pixel axial PSF: a 5-tap kernel (the next taps weigh ~1 %) in plain numpy is
            # several times faster than scipy along the non-contiguous axis.
            w = np.exp(-0.5 * (np.arange(3) / self._sig_ax) ** 2)
            w = (w / (w[0] + 2 * w[1:].sum())).astype(np.float32)
            blurred = iq * w[0]
            for k in (1, 2):
                blurred[:, k:] += w[k] * iq[:, :-k]
                blurred[:, :-k] += w[k] * iq[:, k:]
            iq = blurred
        else:
            iq = ndimage.gaussian_filter1d(iq, self._sig_ax, axis=1, truncate=3.0)
        iq = ndimage.gaussian_filter1d(iq, self._sig_lat, axis=2, truncate=3.0)
        iq += self._noise[int(rng.integers(self._noise.shape[0]))]
        power = iq[0] * iq[0] + iq[1] * iq[1]
        # Scanner speckle reduction (spatial compounding / smoothing filters) softens the grain.
        return ndimage.gaussian_filter(power, self._smooth_px, truncate=2.0)

    def envelope(self, g: dict[str, float], rng: np.random.Generator) -> np.ndarray:
        """Linear envelope ``(rows, cols)`` float32 of one frame (with depth gain), before log
        compression."""
        return np.sqrt(self._power(g, rng)) * np.float32(10.0) ** (self._gain_db_row / 20.0)

    def _muscle_rms(self) -> float:
        # Expected RMS of plain muscle speckle after blurring: sqrt(density * E[A^2] * PSF energy).
        dy, dx = self.grid.spacing_mm
        per_px = self._density * dy * dx
        psf = 1.0 / (4.0 * np.pi * self._sig_ax * self._sig_lat)
        return float(np.sqrt(per_px * psf) * self.p.muscle_echo * 0.5)

    def _db_to_uint8(self, db: np.ndarray) -> np.ndarray:
        """Map echo level (dB) to grey: the participant's dynamic range above a display floor
        ``_MUSCLE_DB`` below plain muscle speckle (hypoechoic muscle, as on scanners), shifted by
        the gain."""
        p = self.p
        top = 20.0 * np.log10(self._muscle_rms()) + p.dynamic_range_db - _MUSCLE_DB - p.gain_db
        scale = np.float32(255.0 / p.dynamic_range_db)
        img = (db - np.float32(top - p.dynamic_range_db)) * scale
        return np.clip(img, 0.0, 255.0, out=img).astype(np.uint8)

    def to_uint8(self, env: np.ndarray) -> np.ndarray:
        """Log compression of a linear envelope to the participant's dynamic range and gain."""
        return self._db_to_uint8(np.float32(20.0) * np.log10(env + np.float32(1e-12)))

    def render(self, g: dict[str, float], rng: np.random.Generator) -> np.ndarray:
        """One B-mode frame ``(rows, cols)`` uint8 for one frame's geometry (dict of floats)."""
        power = self._power(g, rng)
        db = np.float32(10.0) * np.log10(power + np.float32(1e-24)) + self._gain_db_row
        return self._db_to_uint8(db)

    def labels(self, g: dict[str, float]) -> np.ndarray:
        """Label mask ``(rows, cols)`` uint8: 0 background, 1 superficial aponeurosis, 2 deep
        aponeurosis, 3 MG, 4 SOL, drawn from the same lines as the scatterers."""
        p = self.p
        grid = self.grid
        dy, dx = grid.spacing_mm
        xc = (np.arange(grid.cols) + 0.5) * dx - grid.width_mm / 2.0
        yr = ((np.arange(grid.rows) + 0.5) * dy)[:, None]
        sup = g["sup_apo_depth_mm"] + g["sup_apo_slope"] * xc
        deep = g["deep_apo_depth_mm"] + g["deep_apo_slope"] * xc
        floor = g["sol_floor_depth_mm"] + g["sol_floor_slope"] * xc
        floor_band = 0.7 * p.deep_apo_mm
        out = np.zeros((grid.rows, grid.cols), dtype=np.uint8)
        sup_lo, sup_hi = sup - 0.5 * p.sup_apo_mm, sup + 0.5 * p.sup_apo_mm
        deep_lo, deep_hi = deep - 0.5 * p.deep_apo_mm, deep + 0.5 * p.deep_apo_mm
        out[(yr >= sup_hi) & (yr < deep_lo)] = MG_REGION
        out[(yr >= deep_hi) & (yr < floor - 0.5 * floor_band)] = SOL_REGION
        out[(yr >= sup_lo) & (yr < sup_hi)] = SUP_APO
        out[(yr >= deep_lo) & (yr < deep_hi)] = DEEP_APO
        return out


def screen_layout(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where the B-mode image sits in a scanner-style screen of ``size`` = (rows, cols):
    ``(x, y, w, h)`` in 0-based pixels (the layout of the drazan2019-mg screen captures, whose
    B-mode area fills most of the height and ~60 % of the width, right of a grey-scale bar)."""
    rows, cols = size
    h = round(0.88 * rows / 2) * 2
    w = round(0.62 * cols / 2) * 2
    y = round(0.07 * rows)
    x = round(0.19 * cols)
    return x, y, w, h


def screen_canvas(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A static scanner user interface ``(rows, cols)`` uint8 around the B-mode area: dark grey
    panel, a grey-scale bar, depth ticks, a header line and text-like blocks of settings."""
    rows, cols = size
    x, y, w, h = screen_layout(size)
    c = np.full((rows, cols), 48, dtype=np.uint8)
    c[: max(2, y // 2), :] = 70  # header line
    bar_x, bar_w = int(0.01 * cols), max(2, int(0.025 * cols))
    ramp = np.linspace(255, 0, int(0.2 * rows)).astype(np.uint8)[:, None]
    c[int(0.12 * rows) : int(0.12 * rows) + ramp.shape[0], bar_x : bar_x + bar_w] = ramp
    tick_x = min(cols - 2, x + w + max(2, int(0.01 * cols)))
    for d in np.linspace(y, y + h - 1, 11).astype(int):
        c[d, tick_x : tick_x + 3] = 200
    # settings text, right of the image: short bright blocks on a few lines
    tx = min(cols - 4, x + w + int(0.05 * cols))
    for k in range(10):
        r = y + int(0.04 * rows) + k * max(3, int(0.025 * rows))
        if r + 2 >= rows:
            break
        length = int(rng.integers(3, max(4, cols - tx - 1)))
        c[r : r + 2, tx : min(cols, tx + length)] = 170
    return c
