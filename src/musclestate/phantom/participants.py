"""Phantom participants: anatomy, strength, echogenicity, EMG and scanner settings, seeded.

Every number is drawn from a uniform range taken from the literature (see each field), so a cohort
spans the variety a lab meets. Ranges:

- MG resting fascicle length 48-58 mm and pennation 18-25 deg, SOL thickness 12-20 mm, subcutaneous
  fat 2-10 mm (kept to 3-8 mm so that SOL stays in a 40-60 mm field of view): DESIGN.md section 3,
  Maganaris, Baltzopoulos & Sargeant (1998) J Physiol 512:603-614 (PMC2231202), Kawakami, Ichinose &
  Fukunaga (1998) J Appl Physiol 85:398-404.
- Plantarflexion MVC moment (knee straight, neutral ankle) follows triceps surae size and the
  Achilles moment arm: ``MVC = 160 N m x size^1.5 x arm x q`` with ``size`` the MG plus SOL
  thickness over its mean (a volume-like index), ``arm`` the moment-arm scale (0.8-1.2) and ``q``
  the rest (specific tension, voluntary drive; 0.9-1.1). These widths make size explain about half
  and the moment arm about 40 % of the MVC variance across people, as Bamman et al. (2000, Med
  Sci Sports Exerc 32:1307; r 0.65-0.73 with triceps surae volume) and Baxter & Piazza (2014,
  J Appl Physiol 116:538; moment arm R^2 0.32-0.49) report, with MVC about 90-270 N m.
- Achilles tendon (shared by MG and SOL) strain at the summed maximal force of the two muscles
  6.5-14 %, which makes its stiffness at MVC about 220-700 N/mm, the between-person width of
  Peltonen et al. (2010, J Appl Physiol 109:1071: 430 +- 200 N/mm).
- MG fascicle curvature at rest 0-0.8 1/m and at MVC 3.5-7 1/m, concave on the proximal side
  (Muramatsu et al. 2002, J Appl Physiol 92:129: 0.4 and 5.2 1/m); SOL thickening rest -> MVC
  5.5-7.5 mm and SOL pennation rise 8-16 deg (Maganaris et al. 1998: 6-7 mm; the planimetric rule
  underestimates the SOL rise by 9-14 deg; Manal et al. 2006, J Appl Biomech 22:255: SOL MVC
  pennation 26.3-40.1 deg).
- Voluntary drive: MG and SOL share a common drive (weight 0.55-0.8 of each muscle's target) and
  MG receives a person-specific share of it (0.6-1.0), as co-activated synergists do.
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
    sol_pennation_rise_mvc_deg: float
    mg_curvature_rest_per_m: float
    mg_curvature_mvc_per_m: float
    skin_mm: float
    fat_mm: float
    sup_apo_mm: float
    deep_apo_mm: float
    sup_apo_slope_deg: float
    deep_apo_slope_deg: float
    sol_floor_slope_deg: float
    fascicle_spacing_mm: float
    # mechanics
    achilles_strain: float
    moment_arm_scale: float
    strength_factor: float
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
    drive_common_weight: float
    mg_drive_share: float

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["emg_mvc_mv"] = list(self.emg_mvc_mv)
        return d

    def muscle_params(self) -> tuple[mechanics.MuscleParams, mechanics.MuscleParams]:
        """MG and SOL Hill parameters (Rajagopal et al. 2016)."""
        return mechanics.MG, mechanics.SOL

    def achilles(self) -> mechanics.AchillesParams:
        """The shared Achilles tendon with this participant's compliance."""
        return dataclasses.replace(mechanics.ACHILLES, strain_at_fref=self.achilles_strain)


def joint_state(
    p: Participant,
    ankle_deg: np.ndarray,
    act_mg: np.ndarray,
    act_sol: np.ndarray,
    knee_deg: float = 0.0,
) -> mechanics.JointState:
    """:func:`musclestate.phantom.mechanics.joint_state` with ``p``'s muscles, tendon, moment
    arms, force scale and passive stiffness (arrays broadcast together)."""
    mg, sol = p.muscle_params()
    return mechanics.joint_state(
        ankle_deg,
        knee_deg,
        act_mg,
        act_sol,
        force_scale=p.force_scale,
        arm_scale=p.moment_arm_scale,
        passive_stiffness=p.passive_stiffness,
        mg=mg,
        sol=sol,
        achilles=p.achilles(),
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
    strain = _u(rng, 0.065, 0.14)
    arm = _u(rng, 0.8, 1.2)
    strength = _u(rng, 0.9, 1.1)
    size = (mg_t + sol_t) / (18.5 + 16.0)
    mvc = 160.0 * size**1.5 * arm * strength
    stiff = _u(rng, 0.7, 1.4)
    p = Participant(
        id=pid,
        mg_rest_fascicle_mm=mg_l,
        mg_rest_pennation_deg=mg_pen,
        mg_thickness_mm=mg_t,
        sol_rest_fascicle_mm=_u(rng, 32.0, 42.0),
        sol_rest_pennation_deg=_u(rng, 20.0, 28.0),
        sol_thickness_mm=sol_t,
        sol_mvc_thickening_mm=_u(rng, 5.5, 7.5),
        sol_pennation_rise_mvc_deg=_u(rng, 8.0, 16.0),
        mg_curvature_rest_per_m=_u(rng, 0.0, 0.8),
        mg_curvature_mvc_per_m=_u(rng, 3.5, 7.0),
        skin_mm=skin,
        fat_mm=fat,
        sup_apo_mm=sup_apo,
        deep_apo_mm=deep_apo,
        sup_apo_slope_deg=_u(rng, -3.0, 3.0),
        deep_apo_slope_deg=_u(rng, -6.0, 2.0),
        sol_floor_slope_deg=_u(rng, -5.0, 5.0),
        fascicle_spacing_mm=_u(rng, 1.5, 3.0),
        achilles_strain=strain,
        moment_arm_scale=arm,
        strength_factor=strength,
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
        drive_common_weight=_u(rng, 0.55, 0.8),
        mg_drive_share=_u(rng, 0.6, 1.0),
    )
    return dataclasses.replace(p, force_scale=calibrate_force_scale(p))


def calibrate_force_scale(p: Participant) -> float:
    """Force scale that makes this participant's full-activation moment at 0 deg equal its MVC."""
    unit = dataclasses.replace(p, force_scale=1.0, passive_stiffness=0.0)
    js = joint_state(unit, np.array([0.0]), 1.0, 1.0)
    return float(p.mvc_moment_nm / js.moment_nm[0])
