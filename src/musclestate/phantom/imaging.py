"""Fast B-mode image formation from point scatterers fixed in tissue coordinates.

Each scatterer has material coordinates in one tissue layer (skin/fat, superficial aponeurosis, MG,
deep aponeurosis, SOL, SOL floor, deep tissue) and a fixed signed amplitude (random, times the
layer's echogenicity and its texture: fascicle septa with breaks and curvature, fat septa,
aponeurosis striations). Per frame the layer geometry (:mod:`musclestate.phantom.geometry`) maps
the scatterers to image positions, so speckle moves and decorrelates with the tissue.

Image formation (the fast model of DESIGN.md section 4): each scatterer adds its baseband echo
``A exp(-i 2 k y)`` to a complex IQ grid (bilinear splatting keeps sub-pixel motion), the grid is
blurred with a separable Gaussian point-spread function (axial pulse length, lateral beam width
widening away from the focus), electronic noise is added, then envelope, depth gain (attenuation
minus time-gain compensation), and log compression to the scanner's dynamic range. Everything is
float32 numpy/scipy; one 256 x 256 frame with ~1e5 scatterers takes a few ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from musclestate.phantom.participants import Participant

#: Label values of the masks (contract with the ROI stage).
BACKGROUND, SUP_APO, DEEP_APO, MG_REGION, SOL_REGION = 0, 1, 2, 3, 4

_SKIN_FAT, _SUP, _MG, _DEEP, _SOL, _FLOOR, _BELOW = range(7)
_SOUND_MM_PER_US = 1.54


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
        scatterers_per_px: mean scatterers per pixel area (~15 per resolution cell by default).
    """

    def __init__(
        self,
        p: Participant,
        grid: ImageGrid,
        rng: np.random.Generator,
        *,
        scatterers_per_px: float = 1.2,
    ) -> None:
        self.p = p
        self.grid = grid
        dy, dx = grid.spacing_mm
        self._density = scatterers_per_px / (dy * dx)  # per mm^2
        half = grid.width_mm / 2.0
        # Margins for tissue that slides into view: contraction pulls the deep layers towards -x
        # by up to ~30 mm (parallelogram model), so the right margin is the wide one.
        self._x_lo, self._x_hi = -half - 12.0, half + 32.0
        pen0 = np.deg2rad(p.mg_rest_pennation_deg)
        sol_pen0 = np.deg2rad(p.sol_rest_pennation_deg)

        pops: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

        def add(pop: int, area_mm2: float, a: np.ndarray, b: np.ndarray, amp: np.ndarray) -> None:
            pops.append((pop, a.astype(np.float32), b.astype(np.float32), amp.astype(np.float32)))

        def count(area: float) -> int:
            return int(rng.poisson(self._density * area))

        wx = self._x_hi - self._x_lo
        # skin + fat: a = x (mm), b = fraction of the depth above the superficial aponeurosis.
        top = p.skin_mm + p.fat_mm
        n = count(wx * top)
        a = rng.uniform(self._x_lo, self._x_hi, n)
        b = rng.uniform(0.0, 1.0, n)
        skin_frac = p.skin_mm / top
        septa = np.zeros(n)
        for _ in range(max(1, int(p.fat_mm / 2.0))):
            d0 = rng.uniform(skin_frac + 0.1, 0.9)
            amp_w, lam, ph = rng.uniform(0.02, 0.08), rng.uniform(8.0, 25.0), rng.uniform(0, 6.3)
            line = d0 + amp_w * np.sin(2 * np.pi * a / lam + ph)
            septa += _stripes((b - line) * top, 0.25) * (np.sin(a / rng.uniform(3, 9) + ph) > -0.3)
        amp = np.where(b < skin_frac, 0.5 * p.apo_echo, p.fat_echo * (1.0 + 4.0 * septa))
        add(_SKIN_FAT, 0, a, b, amp)

        # superficial aponeurosis: a = u (mm along), b = w in [-0.5, 0.5] of its thickness.
        for pop, thick, gain in ((_SUP, p.sup_apo_mm, 1.0), (_DEEP, p.deep_apo_mm, 0.9)):
            n = count(wx * thick * 1.2)
            a = rng.uniform(self._x_lo, self._x_hi, n)
            b = rng.uniform(-0.6, 0.6, n)
            stri = 0.6 + 0.4 * np.cos(2 * np.pi * b * rng.uniform(1.5, 2.5)) ** 2
            edge = np.clip((0.6 - np.abs(b)) / 0.2, 0.0, 1.0)
            add(pop, 0, a, b, gain * p.apo_echo * stri * edge)

        # MG: a = u (superficial attachment at rest-referenced x), b = s in [0, 1] along fascicle.
        n = count(wx * p.mg_thickness_mm)
        x_rest = rng.uniform(self._x_lo, self._x_hi, n)
        s = rng.uniform(0.0, 1.0, n)
        u = x_rest - s * p.mg_rest_fascicle_mm * np.cos(pen0)
        add(
            _MG, 0, u, s, p.muscle_echo * self._fascicle_texture(u, s, p, rng, sin_pen=np.sin(pen0))
        )

        # SOL: a = u (attachment on the deep aponeurosis), b = s in [0, 1] down the fascicle.
        sol_t = p.sol_thickness_mm + 0.5 * p.sol_mvc_thickening_mm
        n = count(wx * sol_t)
        x_rest = rng.uniform(self._x_lo, self._x_hi, n)
        s = rng.uniform(0.0, 1.0, n)
        u = x_rest + s * sol_t / np.tan(sol_pen0)
        tex = self._fascicle_texture(u, s, p, rng, sin_pen=np.sin(sol_pen0), contrast=0.7)
        add(_SOL, 0, u, s, 0.9 * p.muscle_echo * tex)

        # SOL floor band and the deep tissue below it (flexor hallucis longus, darker).
        floor = 0.7 * p.deep_apo_mm
        n = count(wx * floor * 1.2)
        a = rng.uniform(self._x_lo, self._x_hi, n)
        b = rng.uniform(-0.6, 0.6, n)
        add(_FLOOR, 0, a, b, 0.6 * p.apo_echo * np.clip((0.6 - np.abs(b)) / 0.2, 0.0, 1.0))
        below = max(grid.depth_mm, 10.0)
        n = count(wx * below * 0.5)
        a = rng.uniform(self._x_lo, self._x_hi, n)
        b = rng.uniform(0.0, below, n)
        add(_BELOW, 0, a, b, 0.45 * p.muscle_echo * np.ones(n))

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

        # Scanner: PSF in pixels, depth gain, phase factor.
        self._k2 = np.float32(4.0 * np.pi * p.frequency_mhz / _SOUND_MM_PER_US)  # rad/mm
        self._sig_ax = max(p.axial_sigma_mm / dy, 0.6)
        depth = (np.arange(grid.rows) + 0.5) * dy
        # Lateral beam width grows away from the focus; blend two blurs by depth.
        self._sig_lat_focus = max(p.lateral_sigma_mm / dx, 0.6)
        self._sig_lat_far = self._sig_lat_focus * 1.8
        off = np.abs(depth - p.focus_mm) / max(p.focus_mm, 1.0)
        self._w_far = np.clip(off, 0.0, 1.0).astype(np.float32)[:, None]
        self._gain_row = (10.0 ** (p.tgc_residual_db_per_cm * depth / 10.0 / 20.0)).astype(
            np.float32
        )[:, None]
        self._ref_db: float | None = None

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
        bend = rng.uniform(-0.15, 0.15, n_lines) * spacing_u * 3.0
        strength = rng.uniform(0.3, 1.0, n_lines) * (rng.uniform(size=n_lines) < 0.8)
        period = rng.uniform(0.25, 0.8, n_lines)
        phase = rng.uniform(0.0, 2 * np.pi, n_lines)
        width = 0.18 / sin_pen
        tex = np.zeros_like(u)
        for dk in (-1, 0, 1):
            idx = (k + dk - k0).astype(np.int64)
            centre = (k + dk) * spacing_u + jitter[idx] + bend[idx] * 4.0 * s * (1.0 - s)
            on = np.sin(2 * np.pi * s / period[idx] + phase[idx]) > -0.2  # breaks
            tex += strength[idx] * on * _stripes(u - centre, width)
        # slow echogenicity variation (fibre bundles), fixed in tissue
        blob = 1.0 + 0.25 * np.sin(u / rng.uniform(4, 8) + rng.uniform(0, 6.3)) * np.sin(
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
                bow = f32(g["mg_curvature"]) * 4.0 * b * (1.0 - b) * t
                x[sl] = xa + b * t * c - bow * sn
                y[sl] = ya + b * t * sn + bow * c
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

    def _iq(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear splat of the scatterers' baseband echoes onto a ``(2, rows, cols)`` grid."""
        g = self.grid
        dy, dx = g.spacing_mm
        r = y * np.float32(1.0 / dy) - np.float32(0.5)
        c = (x + np.float32(g.width_mm / 2.0)) * np.float32(1.0 / dx) - np.float32(0.5)
        keep = (r > -1.0) & (r < g.rows) & (c > -1.0) & (c < g.cols)
        r, c, yk, amp = r[keep], c[keep], y[keep], self._amp[keep]
        phase = self._k2 * yk
        re = amp * np.cos(phase)
        im = amp * np.sin(phase)
        r0 = np.floor(r)
        c0 = np.floor(c)
        fr = r - r0
        fc = c - c0
        r0 = r0.astype(np.int64) + 1  # padded grid: one extra row/col on each side
        c0 = c0.astype(np.int64) + 1
        pw = g.cols + 2
        size = (g.rows + 2) * pw
        base = r0 * pw + c0
        out = np.empty((2, g.rows + 2, g.cols + 2), dtype=np.float64)
        idx = np.concatenate([base, base + 1, base + pw, base + pw + 1])
        w = np.concatenate([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
        out[0] = np.bincount(idx, weights=np.tile(re, 4) * w, minlength=size).reshape(
            g.rows + 2, pw
        )
        out[1] = np.bincount(idx, weights=np.tile(im, 4) * w, minlength=size).reshape(
            g.rows + 2, pw
        )
        return out[:, 1:-1, 1:-1].astype(np.float32)

    def envelope(self, g: dict[str, float], rng: np.random.Generator) -> np.ndarray:
        """Linear envelope ``(rows, cols)`` float32 of one frame, before log compression."""
        x, y = self.positions(g)
        iq = self._iq(x, y)
        iq = ndimage.gaussian_filter1d(iq, self._sig_ax, axis=1, truncate=3.0)
        near = ndimage.gaussian_filter1d(iq, self._sig_lat_focus, axis=2, truncate=3.0)
        far = ndimage.gaussian_filter1d(iq, self._sig_lat_far, axis=2, truncate=3.0)
        iq = near + (far - near) * self._w_far
        noise_level = np.float32(10.0 ** (self.p.noise_db / 20.0) * self._muscle_rms())
        iq += noise_level * rng.standard_normal(iq.shape, dtype=np.float32)
        env = np.sqrt(iq[0] * iq[0] + iq[1] * iq[1])
        return env * self._gain_row

    def _muscle_rms(self) -> float:
        # Expected RMS of plain muscle speckle after blurring: sqrt(density * E[A^2] * PSF energy).
        dy, dx = self.grid.spacing_mm
        per_px = self._density * dy * dx
        psf = 1.0 / (4.0 * np.pi * self._sig_ax * self._sig_lat_focus)
        return float(np.sqrt(per_px * psf) * self.p.muscle_echo * 0.5)

    def to_uint8(self, env: np.ndarray) -> np.ndarray:
        """Log compression to the participant's dynamic range and gain."""
        p = self.p
        ref = 20.0 * np.log10(self._muscle_rms()) + 24.0  # display top: ~24 dB above muscle
        top = ref - p.gain_db
        db = np.float32(20.0) * np.log10(env + np.float32(1e-12))
        scale = np.float32(255.0 / p.dynamic_range_db)
        img = (db - np.float32(top - p.dynamic_range_db)) * scale
        return np.clip(img, 0.0, 255.0).astype(np.uint8)

    def render(self, g: dict[str, float], rng: np.random.Generator) -> np.ndarray:
        """One B-mode frame ``(rows, cols)`` uint8 for one frame's geometry (dict of floats)."""
        return self.to_uint8(self.envelope(g, rng))

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
