"""Phantom participants: anatomy, strength, echogenicity, EMG and scanner settings, seeded.

Every number is drawn from a uniform range taken from the literature (see each field), so a cohort
spans the variety a lab meets. Ranges:

- MG resting fascicle length 48-58 mm and pennation 18-25 deg, SOL thickness 12-20 mm, subcutaneous
  fat 2-10 mm (kept to 3-8 mm so that SOL stays in a 40-60 mm field of view): DESIGN.md section 3,
  Maganaris, Baltzopoulos & Sargeant (1998) J Physiol 512:603-614 (PMC2231202), Kawakami, Ichinose &
  Fukunaga (1998) J Appl Physiol 85:398-404.
- Plantarflexion MVC moment 110-220 N m (young adults, knee straight, neutral ankle).
- Achilles tendon strain at maximal force 5-8 % (De Groote et al. 2016 use 4.9 %; in-vivo
  ultrasound studies report up to ~10 %).
- Scanner: linear probe 6-10 MHz, depth 40-60 mm, dynamic range 45-65 dB (DESIGN.md section 4).
- Surface EMG amplitude at MVC 0.3-1.5 mV (SENIAM placement), crosstalk 5-20 %.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from musclestate.phantom import mechanics


@dataclass(frozen=True)
class Participant:
    """One phantom participant. Lengths in mm, angles in deg, levels in dB, EMG in mV.

    Anatomy is given at rest, knee straight, ankle neutral (0 deg).
    """

    id: str
    # anatomy (image geometry)
    mg_rest_fascicle_mm: float
    mg_rest_pennation_deg: float
    mg_thickness_mm: float
    sol_rest_fascicle_mm: float
    sol_rest_pennation_deg: float
    sol_thickness_mm: float
    sol_mvc_thickening_mm: float
    skin_mm: float
    fat_mm: float
    sup_apo_mm: float
    deep_apo_mm: float
    sup_apo_slope_deg: float
    deep_apo_slope_deg: float
    sol_floor_slope_deg: float
    fascicle_spacing_mm: float
    # mechanics
    tendon_strain_at_fmax: float
    moment_arm_scale: float
    mvc_moment_nm: float
    passive_stiffness: float
    force_scale: float
    # echogenicity (relative scatterer amplitudes)
    muscle_echo: float
    fascicle_contrast: float
    fat_echo: float
    apo_echo: float
    # scanner
    depth_mm: float
    width_mm: float
    frequency_mhz: float
    axial_sigma_mm: float
    lateral_sigma_mm: float
    speckle_smoothing_mm: float
    focus_mm: float
    gain_db: float
    dynamic_range_db: float
    tgc_residual_db_per_cm: float
    noise_db: float
    # EMG
    emg_mvc_mv: tuple[float, float]
    emg_crosstalk: float
    emg_noise_mv: float
    drive_correlation: float

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["emg_mvc_mv"] = list(self.emg_mvc_mv)
        return d

    def muscle_params(self) -> tuple[mechanics.MuscleParams, mechanics.MuscleParams]:
        """MG and SOL Hill parameters with this participant's tendon compliance."""
        return (
            dataclasses.replace(mechanics.MG, tendon_strain_at_fmax=self.tendon_strain_at_fmax),
            dataclasses.replace(mechanics.SOL, tendon_strain_at_fmax=self.tendon_strain_at_fmax),
        )


def draw_participant(pid: str, rng: np.random.Generator, spread: float = 1.0) -> Participant:
    """Draw one participant's parameters from the published ranges (module docstring).

    ``spread`` in [0, 1] scales every range about its centre: 1 spans the published ranges,
    0 makes every participant the average one (only speckle, probe placement and noise differ).
    The random draws are the same for any ``spread``, so a cohort keeps its ordering of people.
    """
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread must be within 0..1, got {spread}")

    def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
        centre = 0.5 * (lo + hi)
        return float(centre + spread * (rng.uniform(lo, hi) - centre))

    mg_l = _u(rng, 48.0, 58.0)
    mg_pen = _u(rng, 18.0, 25.0)
    mg_t = float(np.clip(mg_l * np.sin(np.deg2rad(mg_pen)), 15.0, 22.0))
    mg_pen = float(np.rad2deg(np.arcsin(mg_t / mg_l)))
    sol_t = _u(rng, 12.0, 20.0)
    skin = _u(rng, 1.0, 1.8)
    fat = _u(rng, 3.0, 8.0)
    sup_apo = _u(rng, 0.7, 1.3)
    deep_apo = _u(rng, 0.9, 1.6)
    # Field of view: deep enough for skin, fat, MG and most of SOL (a lab sets the depth so).
    needed = skin + fat + sup_apo + mg_t + deep_apo + 0.6 * sol_t
    depth = float(np.clip(max(_u(rng, 40.0, 60.0), needed + 4.0), 40.0, 65.0))
    freq = _u(rng, 6.0, 10.0)
    wavelength_mm = 1.54 / freq
    mvc = _u(rng, 110.0, 220.0)
    strain = _u(rng, 0.05, 0.08)
    arm = _u(rng, 0.9, 1.1)
    stiff = _u(rng, 0.7, 1.4)
    p = Participant(
        id=pid,
        mg_rest_fascicle_mm=mg_l,
        mg_rest_pennation_deg=mg_pen,
        mg_thickness_mm=mg_t,
        sol_rest_fascicle_mm=_u(rng, 32.0, 42.0),
        sol_rest_pennation_deg=_u(rng, 20.0, 28.0),
        sol_thickness_mm=sol_t,
        sol_mvc_thickening_mm=_u(rng, 4.5, 5.5),
        skin_mm=skin,
        fat_mm=fat,
        sup_apo_mm=sup_apo,
        deep_apo_mm=deep_apo,
        sup_apo_slope_deg=_u(rng, -3.0, 3.0),
        deep_apo_slope_deg=_u(rng, -6.0, 2.0),
        sol_floor_slope_deg=_u(rng, -5.0, 5.0),
        fascicle_spacing_mm=_u(rng, 1.5, 3.0),
        tendon_strain_at_fmax=strain,
        moment_arm_scale=arm,
        mvc_moment_nm=mvc,
        passive_stiffness=stiff,
        force_scale=1.0,
        muscle_echo=_u(rng, 0.8, 1.2),
        fascicle_contrast=_u(rng, 3.0, 7.0),
        fat_echo=_u(rng, 0.6, 1.2),
        apo_echo=_u(rng, 8.0, 16.0),
        depth_mm=depth,
        width_mm=_u(rng, 45.0, 60.0),
        frequency_mhz=freq,
        axial_sigma_mm=0.6 * wavelength_mm,
        lateral_sigma_mm=_u(rng, 3.0, 4.0) * wavelength_mm,
        speckle_smoothing_mm=_u(rng, 0.15, 0.3),
        focus_mm=_u(rng, 0.4, 0.6) * depth,
        gain_db=_u(rng, -2.0, 3.0),
        dynamic_range_db=_u(rng, 45.0, 65.0),
        tgc_residual_db_per_cm=_u(rng, -1.0, 0.3),
        noise_db=_u(rng, -42.0, -32.0),
        emg_mvc_mv=(_u(rng, 0.3, 1.5), _u(rng, 0.3, 1.5)),
        emg_crosstalk=_u(rng, 0.05, 0.2),
        emg_noise_mv=_u(rng, 0.004, 0.012),
        drive_correlation=_u(rng, 0.2, 0.5),
    )
    return dataclasses.replace(p, force_scale=calibrate_force_scale(p))


def calibrate_force_scale(p: Participant) -> float:
    """Force scale that makes this participant's full-activation moment at 0 deg equal its MVC."""
    mg, sol = p.muscle_params()
    js = mechanics.joint_state(
        np.array([0.0]),
        0.0,
        1.0,
        1.0,
        force_scale=1.0,
        arm_scale=p.moment_arm_scale,
        passive_stiffness=0.0,
        mg=mg,
        sol=sol,
    )
    return float(p.mvc_moment_nm / js.moment_nm[0])
