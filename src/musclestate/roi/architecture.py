"""Muscle architecture measures from the geometry and the image.

Measures per frame (what DL_Track_US-style tools report, and the inputs of the feature baseline):

- ``mg_thickness_mm``: mean distance between the aponeuroses;
- ``superficial_angle_deg`` / ``deep_angle_deg``: aponeurosis angles to the image horizontal;
- ``fascicle_angle_deg``: dominant fascicle orientation in the MG region, from the angular
  distribution of the region's power spectrum within the band of fascicle spacings (the Fourier
  counterpart of a Radon-transform orientation estimate); the structure tensor (Bigun & Granlund
  1987; Rana, Hamarneh & Wakeling 2009, doi:10.1016/j.jbiomech.2009.05.019) is available too but
  is pulled towards the horizontal by laterally elongated speckle;
- ``pennation_deg``: angle between that orientation and the deep aponeurosis;
- ``superficial_pennation_deg``: angle between that orientation and the superficial aponeurosis;
- ``mg_fascicle_length_mm``: the trigonometric estimate thickness / sin(pennation) of a straight
  fascicle spanning the muscle between the aponeuroses (reviewed with its limits by Kwah et al.
  2013, J Appl Physiol 114:761-769); it extrapolates wherever the fascicle leaves the image;
- ``sol_fascicle_angle_deg`` / ``sol_pennation_deg``: the same orientation estimate in the SOL
  region below the deep aponeurosis, and its angle to that aponeurosis (SOL's thickness needs its
  deep boundary, which this stage does not find; ``musclestate architecture`` measures it);
- ``mg_echo`` / ``sol_echo``: mean grey level (0-255) of the MG and SOL regions (echo intensity).

Angles are in physical units (pixel spacing applied), in degrees, positive when the line gets
deeper towards the right of the image.
"""

from __future__ import annotations

import numpy as np

from musclestate.roi.geometry import MuscleGeometry

FEATURE_NAMES: tuple[str, ...] = (
    "mg_thickness_mm",
    "superficial_angle_deg",
    "deep_angle_deg",
    "fascicle_angle_deg",
    "pennation_deg",
    "superficial_pennation_deg",
    "mg_fascicle_length_mm",
    "sol_fascicle_angle_deg",
    "sol_pennation_deg",
    "mg_echo",
    "sol_echo",
)

FEATURE_UNITS: dict[str, str] = {
    "mg_thickness_mm": "mm",
    "superficial_angle_deg": "deg",
    "deep_angle_deg": "deg",
    "fascicle_angle_deg": "deg",
    "pennation_deg": "deg",
    "superficial_pennation_deg": "deg",
    "mg_fascicle_length_mm": "mm",
    "sol_fascicle_angle_deg": "deg",
    "sol_pennation_deg": "deg",
    "mg_echo": "grey level 0-255",
    "sol_echo": "grey level 0-255",
}


def tensor_orientation_deg(
    image: np.ndarray,
    region: np.ndarray,
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0),
    *,
    sigma_px: float = 1.0,
) -> float:
    """Dominant line orientation in ``region`` of ``image`` from the structure tensor.

    The structure tensor J = sum over the region of (g gᵀ), g the Gaussian-smoothed gradient,
    has its main eigenvector across the lines; the lines run at right angles to
    it. Summing over the region weights each pixel by its gradient energy, so bright coherent
    fascicles dominate speckle. scipy provides the Gaussian derivatives; the 2 x 2 eigen-angle is
    closed form.

    Args:
        image: ``(H, W)`` grey image.
        region: ``(H, W)`` bool, where to measure.
        pixel_spacing_mm: ``(row_mm, col_mm)``, so angles are physical.
        sigma_px: Gaussian scale of the gradient (pixels).

    Returns:
        Angle in degrees in (-90, 90], positive = deeper to the right; NaN for an empty region.
    """
    from scipy import ndimage

    if not region.any():
        return float("nan")
    rows, cols = np.nonzero(region)
    r0, r1 = max(rows.min() - 4, 0), rows.max() + 5
    c0, c1 = max(cols.min() - 4, 0), cols.max() + 5
    img = np.asarray(image[r0:r1, c0:c1], np.float32)
    reg = region[r0:r1, c0:c1]
    # The tensor is formed in pixel units, where speckle is roughly isotropic (in physical units
    # its gradient energy would favour the axis with the finer spacing and bias the angle); the
    # line direction is then mapped to physical units.
    gy = ndimage.gaussian_filter(img, sigma_px, order=(1, 0))
    gx = ndimage.gaussian_filter(img, sigma_px, order=(0, 1))
    jxx = float(np.sum(gx[reg] ** 2))
    jyy = float(np.sum(gy[reg] ** 2))
    jxy = float(np.sum(gx[reg] * gy[reg]))
    grad_angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)
    line_px = grad_angle + np.pi / 2  # line direction in pixels: (cos, sin) = (d col, d row)
    d_col = np.cos(line_px) * pixel_spacing_mm[1]
    d_row = np.sin(line_px) * pixel_spacing_mm[0]
    line = float(np.degrees(np.arctan2(d_row, d_col)))  # in (-180, 180]
    if line > 90.0:
        line -= 180.0
    elif line <= -90.0:
        line += 180.0
    return line


def dominant_orientation_deg(
    image: np.ndarray,
    region: np.ndarray,
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0),
    *,
    spacing_band_mm: tuple[float, float] = (0.8, 6.0),
) -> float:
    """Dominant line orientation in ``region`` from the angular power spectrum.

    The region (mean removed, zero outside, Hann-windowed) is Fourier transformed with the
    physical sample spacing; the power at wavelengths within ``spacing_band_mm`` (the spacing of
    fascicle septa, longer than speckle) is averaged per 1-degree bin of wave-vector angle,
    smoothed over +-2 degrees, and the strongest bin gives the normal of the lines. Taking the
    peak rather than a mean keeps the broad speckle background from pulling the estimate.

    Args:
        image: ``(H, W)`` grey image.
        region: ``(H, W)`` bool, where to measure.
        pixel_spacing_mm: ``(row_mm, col_mm)``.
        spacing_band_mm: shortest and longest line spacing counted, in mm.

    Returns:
        Angle in degrees in [-90, 90), positive = deeper to the right; NaN for an empty region.
    """
    from scipy import ndimage

    if region.sum() < 16:
        return float("nan")
    rows, cols = np.nonzero(region)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    sub = np.asarray(image[r0:r1, c0:c1], np.float64)
    m = region[r0:r1, c0:c1]
    # Fine pixels carry wavelengths far shorter than the band: average k x k blocks first (the
    # block mean low-passes before decimating), which keeps the band and cuts the FFT's cost.
    spacing = [float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])]
    for axis in (0, 1):
        k = int(spacing_band_mm[0] / (3.0 * spacing[axis]))
        if k >= 2 and sub.shape[axis] >= 8 * k:
            n = sub.shape[axis] // k * k
            if axis == 0:
                sub = sub[:n].reshape(n // k, k, -1).mean(axis=1)
                m = m[:n].reshape(n // k, k, -1).all(axis=1)
            else:
                sub = sub[:, :n].reshape(sub.shape[0], n // k, k).mean(axis=2)
                m = m[:, :n].reshape(m.shape[0], n // k, k).all(axis=2)
            spacing[axis] *= k
    if m.sum() < 16:
        return float("nan")
    sub = np.where(m, sub - sub[m].mean(), 0.0)
    sub *= np.outer(np.hanning(sub.shape[0]), np.hanning(sub.shape[1]))
    # The image is real, so its power spectrum is point-symmetric and a wave vector and its
    # negative give the same line orientation: the half plane kx >= 0 (rfft2) holds every bin's
    # mean power at half the cost.
    power = np.abs(np.fft.rfft2(sub)) ** 2
    ky = np.fft.fftfreq(sub.shape[0], spacing[0])[:, None]
    kx = np.fft.rfftfreq(sub.shape[1], spacing[1])[None, :]
    kr = np.hypot(kx, ky)
    band = (kr > 1.0 / spacing_band_mm[1]) & (kr < 1.0 / spacing_band_mm[0])
    if not band.any():
        return float("nan")
    normal = np.degrees(np.arctan2(np.broadcast_to(ky, power.shape), kx))
    line = (normal + 180.0) % 180.0 - 90.0  # lines run at right angles to their wave vector
    bins = np.arange(-90.0, 91.0, 1.0)
    tot, _ = np.histogram(line[band], bins=bins, weights=power[band])
    cnt, _ = np.histogram(line[band], bins=bins)
    prof = ndimage.gaussian_filter1d(tot / np.maximum(cnt, 1), 2.0, mode="wrap")
    return float(bins[int(np.argmax(prof))] + 0.5)


#: Least pennation at which :func:`fascicle_length_mm` gives a length (degrees).
MIN_PENNATION_FOR_LENGTH_DEG = 10.0


def fascicle_length_mm(thickness_mm: float, pennation_deg: float) -> float:
    """Length of a straight fascicle crossing a muscle of ``thickness_mm`` at ``pennation_deg``.

    ``L = thickness / sin(pennation)`` (the trigonometric estimate; Kwah et al. 2013, J Appl
    Physiol 114:761-769). NaN where either is undefined or the pennation is below
    :data:`MIN_PENNATION_FOR_LENGTH_DEG`: the relative error is ``dL / L = -cot(pennation) d
    pennation``, so below 10 degrees one degree of orientation error moves the length by more
    than 10 % (and the estimate diverges as the fascicle turns parallel to the aponeurosis).
    """
    if (
        not (np.isfinite(thickness_mm) and np.isfinite(pennation_deg))
        or pennation_deg < MIN_PENNATION_FOR_LENGTH_DEG
    ):
        return float("nan")
    return float(thickness_mm / np.sin(np.radians(pennation_deg)))


def _line_angle_difference(a: float, b: float) -> float:
    """Acute angle between two lines with angles ``a`` and ``b`` (degrees), in [0, 90]."""
    d = abs(a - b) % 180.0
    return float(min(d, 180.0 - d))


def measure(
    frame: np.ndarray,
    geometry: MuscleGeometry,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Architecture measures of one frame (see :data:`FEATURE_NAMES`; NaN where undefined).

    Args:
        frame: ``(H, W)`` uint8 image.
        geometry: its :class:`MuscleGeometry`.
        pixel_spacing_mm: ``(row_mm, col_mm)``; ``None`` uses the geometry's.
    """
    out = dict.fromkeys(FEATURE_NAMES, float("nan"))
    if pixel_spacing_mm is not None and tuple(pixel_spacing_mm) != geometry.pixel_spacing_mm:
        import dataclasses

        geometry = dataclasses.replace(geometry, pixel_spacing_mm=tuple(pixel_spacing_mm))
    if not geometry.found:
        return out
    mg, sol = geometry.region_masks()
    out["mg_thickness_mm"] = geometry.thickness_mm()
    out["superficial_angle_deg"] = geometry.angle_deg("superficial")
    out["deep_angle_deg"] = geometry.angle_deg("deep")
    # keep the aponeuroses' own bright bands out of the orientation estimate
    margin = max(2, round(1.0 / geometry.pixel_spacing_mm[0]))
    rows = np.arange(geometry.shape[0])[:, None]
    core = mg & (rows > geometry.superficial_row + margin) & (rows < geometry.deep_row - margin)
    if core.sum() >= 50:
        fasc = dominant_orientation_deg(frame, core, geometry.pixel_spacing_mm)
        out["fascicle_angle_deg"] = fasc
        out["pennation_deg"] = _line_angle_difference(fasc, out["deep_angle_deg"])
        out["superficial_pennation_deg"] = _line_angle_difference(
            fasc, out["superficial_angle_deg"]
        )
        out["mg_fascicle_length_mm"] = fascicle_length_mm(
            out["mg_thickness_mm"], out["pennation_deg"]
        )
    sol_core = sol & (rows > geometry.deep_row + margin)
    if sol_core.sum() >= 50:
        sol_fasc = dominant_orientation_deg(frame, sol_core, geometry.pixel_spacing_mm)
        out["sol_fascicle_angle_deg"] = sol_fasc
        out["sol_pennation_deg"] = _line_angle_difference(sol_fasc, out["deep_angle_deg"])
    if mg.any():
        out["mg_echo"] = float(frame[mg].mean())
    if sol.any():
        out["sol_echo"] = float(frame[sol].mean())
    return out


def feature_vector(features: dict[str, float]) -> np.ndarray:
    """``(F,)`` float32 in :data:`FEATURE_NAMES` order."""
    return np.array([features[k] for k in FEATURE_NAMES], np.float32)
