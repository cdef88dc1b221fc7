"""From joint state to what the ultrasound image shows: fascicles, pennation, thickness, lines.

The mechanics (:mod:`musclestate.phantom.mechanics`) give normalised fibre lengths and forces; the
image geometry is taken from in-vivo ranges instead of the model's small pennation (DESIGN.md
section 3): each participant has a resting fascicle length, pennation and thickness at 0 deg, knee
straight, rest; fascicle length scales with the model's normalised fibre length, and

- MG keeps its thickness (from rest to MVC: Maganaris et al. 1998, J Physiol 512:603); its
  pennation follows the planimetric parallelogram
  ``sin(pennation) = thickness / fascicle``, so it rises as fascicles shorten, and its fascicles
  bow with active force, concave on the proximal side, from about 0.4 to 5.2 1/m (Muramatsu et
  al. 2002, J Appl Physiol 92:129);
- SOL thickens with its active force (6-7 mm rest -> MVC) and its pennation is taken from the
  published values rather than from the planimetric rule, which underestimates the SOL rise by
  9-14 deg (Maganaris et al. 1998): +0.2 deg per deg of passive plantarflexion (6-12 deg over
  -15..30 deg) and a person-specific rise with active force (MVC 26.3-40.1 deg, Manal et al.
  2006, J Appl Biomech 22:255);
- the deep aponeurosis keeps its angle (no published turn with force).

Image coordinates: ``x`` lateral in mm with 0 at the image centre, ``y`` depth in mm from the skin.
Lines are ``y = depth + slope * x``. MG fascicles run from the superficial aponeurosis down towards
+x; SOL fascicles from the deep aponeurosis down towards -x (the chevron of a longitudinal calf
image, as in the drazan2019-mg clips).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from musclestate.phantom import mechanics
from musclestate.phantom.participants import Participant, joint_state


@dataclass(frozen=True)
class Placement:
    """Probe placement of one trial relative to the participant's reference placement.

    Attributes:
        lateral_mm: probe shift along the muscle (mm); the tissue moves by ``-lateral_mm``.
        tilt_deg: rotation of the probe in the image plane (deg), tilts every line.
        pressure: compression of the subcutaneous fat (1 = none, 0.85 = 15 % thinner).
    """

    lateral_mm: float = 0.0
    tilt_deg: float = 0.0
    pressure: float = 1.0


def draw_placement(rng: np.random.Generator) -> Placement:
    """A probe placement as a lab re-places the probe between trials (+-4 mm, +-2 deg)."""
    return Placement(
        lateral_mm=float(rng.uniform(-4.0, 4.0)),
        tilt_deg=float(rng.uniform(-2.0, 2.0)),
        pressure=float(rng.uniform(0.85, 1.0)),
    )


@dataclass(frozen=True)
class Geometry:
    """Image geometry per frame: every field is a ``(T,)`` float64 array (mm, deg or 1).

    ``*_depth_mm`` are depths of the band centres at ``x = 0``; ``*_slope`` are ``dy/dx``.
    ``shift_*_mm`` are lateral tissue displacements of the layer anchored at that line.
    ``mg_curvature_per_m`` is the fascicles' curvature (1/m), positive when they are concave on
    the proximal (-x) side: their middle bows towards the superficial, distal side.
    """

    mg_fascicle_mm: np.ndarray
    mg_pennation_deg: np.ndarray
    mg_thickness_mm: np.ndarray
    sol_fascicle_mm: np.ndarray
    sol_pennation_deg: np.ndarray
    sol_thickness_mm: np.ndarray
    fat_mm: np.ndarray
    sup_apo_depth_mm: np.ndarray
    sup_apo_slope: np.ndarray
    deep_apo_depth_mm: np.ndarray
    deep_apo_slope: np.ndarray
    sol_floor_depth_mm: np.ndarray
    sol_floor_slope: np.ndarray
    mg_curvature_per_m: np.ndarray
    shift_sup_mm: np.ndarray
    shift_deep_mm: np.ndarray
    shift_sol_mm: np.ndarray
    shift_floor_mm: np.ndarray

    def __len__(self) -> int:
        return int(self.mg_fascicle_mm.shape[0])

    def at(self, i: int) -> dict[str, float]:
        """Frame ``i`` as a dict of floats."""
        return {f.name: float(getattr(self, f.name)[i]) for f in fields(self)}

    def columns(self) -> dict[str, np.ndarray]:
        """All fields by name (for the ground-truth file)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: Fraction of the model's passive (angle-driven) MG fibre excursion that the image fascicle
#: follows.
PASSIVE_GEARING = 0.74


@dataclass(frozen=True)
class Reference:
    """A participant's mechanics at rest and at MVC (0 deg, knee straight), for normalisation."""

    mg_l_norm_rest: float
    sol_l_norm_rest: float
    mg_active_mvc_n: float
    sol_active_mvc_n: float


def reference(p: Participant) -> Reference:
    """Rest and MVC mechanics of ``p`` at 0 deg ankle, knee straight."""
    js = joint_state(p, np.zeros(2), np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    return Reference(
        float(js.mg.l_norm[0]),
        float(js.sol.l_norm[0]),
        float(js.mg.active_force_n[1]),
        float(js.sol.active_force_n[1]),
    )


def image_geometry(
    p: Participant,
    placement: Placement,
    js: mechanics.JointState,
    ankle_deg: np.ndarray | float = 0.0,
) -> Geometry:
    """Image geometry from the mechanics, for a ``(T,)`` joint state.

    Args:
        p: the participant.
        placement: this trial's probe placement.
        js: ``p``'s joint state (:func:`musclestate.phantom.participants.joint_state`), ``(T,)``.
        ankle_deg: ankle angle (deg, plantarflexion positive).
    """
    ref = reference(p)
    mg_l_norm = np.asarray(js.mg.l_norm, dtype=np.float64)
    sol_l_norm = np.asarray(js.sol.l_norm, dtype=np.float64)
    # Active force relative to the participant's MVC at 0 deg: what bows MG fascicles, thickens
    # SOL and raises its pennation beyond the passive trend.
    a_mg = np.clip(js.mg.active_force_n / max(ref.mg_active_mvc_n, 1e-6), 0.0, 1.5)
    a_sol = np.clip(js.sol.active_force_n / max(ref.sol_active_mvc_n, 1e-6), 0.0, 1.5)
    ankle = np.asarray(ankle_deg, dtype=np.float64) * np.ones_like(mg_l_norm)

    # MG: constant thickness, pennation from sin(pen) = thickness / fascicle.
    t_mg = p.mg_thickness_mm * np.ones_like(ankle)
    # Fascicle length: the model's fibre length at rest at this angle, with its change from 0 deg
    # geared down to PASSIVE_GEARING (the model's fibres take more of the passive excursion than
    # the 15-28 mm, 32-34 %, of Maganaris et al. 1998), plus the model's active shortening.
    rest = joint_state(p, ankle, 0.0, 0.0)
    passive = 1.0 + PASSIVE_GEARING * (rest.mg.l_norm / ref.mg_l_norm_rest - 1.0)
    l_mg = p.mg_rest_fascicle_mm * (passive + (mg_l_norm - rest.mg.l_norm) / ref.mg_l_norm_rest)
    l_mg = np.maximum(l_mg, t_mg / np.sin(np.deg2rad(55.0)))
    pen_mg = np.arcsin(t_mg / l_mg)
    curvature = p.mg_curvature_rest_per_m + (
        p.mg_curvature_mvc_per_m - p.mg_curvature_rest_per_m
    ) * np.minimum(a_mg, 1.2)

    # SOL: fascicle from the model; pennation and thickness from the published values.
    l_sol = p.sol_rest_fascicle_mm * sol_l_norm / ref.sol_l_norm_rest
    pen_sol = np.clip(
        p.sol_rest_pennation_deg + 0.2 * ankle + p.sol_pennation_rise_mvc_deg * a_sol, 12.0, 55.0
    )
    t_sol = p.sol_thickness_mm + p.sol_mvc_thickening_mm * a_sol

    tilt = np.deg2rad(placement.tilt_deg)
    n = mg_l_norm.shape[0]
    ones = np.ones(n)
    s_sup = np.tan(np.deg2rad(p.sup_apo_slope_deg) + tilt) * ones
    s_deep = np.tan(np.deg2rad(p.deep_apo_slope_deg) + tilt) * ones
    s_floor = np.tan(np.deg2rad(p.sol_floor_slope_deg) + tilt) * ones

    fat = p.fat_mm * placement.pressure * ones
    sup_c = p.skin_mm + fat + 0.5 * p.sup_apo_mm
    deep_c = sup_c + 0.5 * p.sup_apo_mm + t_mg / np.cos(np.arctan(s_deep)) + 0.5 * p.deep_apo_mm
    floor_band = 0.7 * p.deep_apo_mm
    floor_c = deep_c + 0.5 * p.deep_apo_mm + t_sol / np.cos(np.arctan(s_floor)) + 0.5 * floor_band

    # Lateral tissue motion: the belly slides proximally (-x) as fascicles shorten, the deep
    # aponeurosis follows the fascicles' horizontal projection (parallelogram model).
    proj = l_mg * np.cos(pen_mg)
    proj0 = p.mg_rest_fascicle_mm * np.cos(np.deg2rad(p.mg_rest_pennation_deg))
    shift_sup = -placement.lateral_mm + 0.15 * (proj - proj0)
    shift_deep = shift_sup + (proj - proj0)
    pen_sol_rad = np.deg2rad(pen_sol)
    proj_sol = l_sol * np.cos(pen_sol_rad)
    proj_sol0 = p.sol_rest_fascicle_mm * np.cos(np.deg2rad(p.sol_rest_pennation_deg))
    shift_sol = -placement.lateral_mm + 0.5 * (proj - proj0) - 0.5 * (proj_sol - proj_sol0)
    shift_floor = -placement.lateral_mm * ones

    return Geometry(
        mg_fascicle_mm=l_mg,
        mg_pennation_deg=np.rad2deg(pen_mg),
        mg_thickness_mm=t_mg,
        sol_fascicle_mm=l_sol,
        sol_pennation_deg=pen_sol,
        sol_thickness_mm=t_sol,
        fat_mm=fat,
        sup_apo_depth_mm=sup_c,
        sup_apo_slope=s_sup,
        deep_apo_depth_mm=deep_c,
        deep_apo_slope=s_deep,
        sol_floor_depth_mm=floor_c,
        sol_floor_slope=s_floor,
        mg_curvature_per_m=curvature,
        shift_sup_mm=shift_sup,
        shift_deep_mm=shift_deep,
        shift_sol_mm=shift_sol,
        shift_floor_mm=shift_floor,
    )


def state_geometry(
    p: Participant,
    placement: Placement,
    ankle_deg: np.ndarray,
    act_mg: np.ndarray,
    act_sol: np.ndarray,
    knee_deg: float = 0.0,
) -> tuple[mechanics.JointState, Geometry]:
    """Joint state and image geometry of ``p`` for ``(T,)`` arrays of angle and activations."""
    ankle = np.atleast_1d(np.asarray(ankle_deg, dtype=np.float64))
    a_mg = np.broadcast_to(np.asarray(act_mg, dtype=np.float64), ankle.shape)
    a_sol = np.broadcast_to(np.asarray(act_sol, dtype=np.float64), ankle.shape)
    js = joint_state(p, ankle, a_mg, a_sol, knee_deg)
    return js, image_geometry(p, placement, js, ankle)


def rest_geometry(p: Participant, placement: Placement | None = None) -> Geometry:
    """One-frame geometry of ``p`` at rest, 0 deg ankle, knee straight."""
    return state_geometry(p, placement or Placement(), 0.0, 0.0, 0.0)[1]
