"""From joint state to what the ultrasound image shows: fascicles, pennation, thickness, lines.

The mechanics (:mod:`musclestate.phantom.mechanics`) give normalised fibre lengths and forces; the
image geometry is taken from in-vivo ranges instead of the model's small pennation (DESIGN.md
section 3): each participant has a resting fascicle length, pennation and thickness at 0 deg, knee
straight, rest; fascicle length scales with the model's normalised fibre length, and

- MG about keeps its thickness (planimetric parallelogram, ``sin(pennation) = thickness /
  fascicle``), so pennation rises as fascicles shorten (Maganaris et al. 1998; Narici et al. 1996);
- SOL pennation follows the constant-thickness rule on its own fascicle length, and SOL thickens
  with its force (6-7 mm rest -> MVC, DESIGN.md) and slightly as it shortens passively.

Image coordinates: ``x`` lateral in mm with 0 at the image centre, ``y`` depth in mm from the skin.
Lines are ``y = depth + slope * x``. MG fascicles run from the superficial aponeurosis down towards
+x; SOL fascicles from the deep aponeurosis down towards -x (the chevron of a longitudinal calf
image, as in the drazan2019-mg clips).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from musclestate.phantom import mechanics
from musclestate.phantom.participants import Participant


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
    mg_curvature: np.ndarray
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


@dataclass(frozen=True)
class Reference:
    """A participant's mechanics at rest and at MVC (0 deg, knee straight), for normalisation."""

    mg_l_norm_rest: float
    sol_l_norm_rest: float
    mg_force_mvc: float
    sol_force_mvc: float


def reference(p: Participant) -> Reference:
    """Rest and MVC mechanics of ``p`` at 0 deg ankle, knee straight."""
    mg, sol = p.muscle_params()
    ang = np.array([0.0, 0.0])
    act = np.array([0.0, 1.0])
    js = mechanics.joint_state(ang, 0.0, act, act, arm_scale=p.moment_arm_scale, mg=mg, sol=sol)
    return Reference(
        float(js.mg.l_norm[0]),
        float(js.sol.l_norm[0]),
        float(js.mg.force_n[1] / mg.fmax_n),
        float(js.sol.force_n[1] / sol.fmax_n),
    )


def image_geometry(
    p: Participant,
    placement: Placement,
    mg_l_norm: np.ndarray,
    sol_l_norm: np.ndarray,
    mg_force_norm: np.ndarray,
    sol_force_norm: np.ndarray,
    ankle_deg: np.ndarray | float = 0.0,
) -> Geometry:
    """Image geometry from the mechanics, for ``(T,)`` arrays of muscle states.

    Args:
        p: the participant.
        placement: this trial's probe placement.
        mg_l_norm, sol_l_norm: model fibre length / optimal length.
        mg_force_norm, sol_force_norm: tendon force / maximal isometric force.
        ankle_deg: ankle angle (deg, plantarflexion positive); MG thins by 0.3 %/deg of passive
            plantarflexion, which keeps the rest pennation rise over -15..30 deg near the 6-12 deg
            of Maganaris et al. (1998).
    """
    ref = reference(p)
    mg_l_norm = np.asarray(mg_l_norm, dtype=np.float64)
    sol_l_norm = np.asarray(sol_l_norm, dtype=np.float64)
    f_mg = np.asarray(mg_force_norm, dtype=np.float64) / max(ref.mg_force_mvc, 1e-6)
    f_sol = np.asarray(sol_force_norm, dtype=np.float64) / max(ref.sol_force_mvc, 1e-6)

    # MG: about constant thickness (+2 % at MVC, -0.3 %/deg of plantarflexion), pennation from
    # sin(pen) = thickness / fascicle.
    ankle = np.asarray(ankle_deg, dtype=np.float64)
    t_mg = p.mg_thickness_mm * (1.0 + 0.02 * np.clip(f_mg, 0.0, 1.5) - 0.003 * ankle)
    l_mg = p.mg_rest_fascicle_mm * mg_l_norm / ref.mg_l_norm_rest
    l_mg = np.maximum(l_mg, t_mg / np.sin(np.deg2rad(55.0)))
    pen_mg = np.arcsin(t_mg / l_mg)

    # SOL: fascicle from the model, pennation by the constant-thickness rule, bulging with force.
    l_sol = p.sol_rest_fascicle_mm * sol_l_norm / ref.sol_l_norm_rest
    sin_sol = np.sin(np.deg2rad(p.sol_rest_pennation_deg)) * p.sol_rest_fascicle_mm / l_sol
    pen_sol = np.arcsin(np.clip(sin_sol, np.sin(np.deg2rad(12.0)), np.sin(np.deg2rad(55.0))))
    t_sol = (
        p.sol_thickness_mm
        + p.sol_mvc_thickening_mm * np.clip(f_sol, 0.0, 1.5)
        + 8.0 * np.clip(ref.sol_l_norm_rest - sol_l_norm, -0.3, 0.5)
    )

    tilt = np.deg2rad(placement.tilt_deg)
    n = mg_l_norm.shape[0]
    ones = np.ones(n)
    s_sup = np.tan(np.deg2rad(p.sup_apo_slope_deg) + tilt) * ones
    # The deep aponeurosis turns a little as MG bulges distally during contraction.
    s_deep = np.tan(np.deg2rad(p.deep_apo_slope_deg) + tilt - np.deg2rad(1.5) * f_mg)
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
    proj_sol = l_sol * np.cos(pen_sol)
    proj_sol0 = p.sol_rest_fascicle_mm * np.cos(np.deg2rad(p.sol_rest_pennation_deg))
    shift_sol = -placement.lateral_mm + 0.5 * (proj - proj0) - 0.5 * (proj_sol - proj_sol0)
    shift_floor = -placement.lateral_mm * ones

    return Geometry(
        mg_fascicle_mm=l_mg,
        mg_pennation_deg=np.rad2deg(pen_mg),
        mg_thickness_mm=t_mg,
        sol_fascicle_mm=l_sol,
        sol_pennation_deg=np.rad2deg(pen_sol),
        sol_thickness_mm=t_sol,
        fat_mm=fat,
        sup_apo_depth_mm=sup_c,
        sup_apo_slope=s_sup,
        deep_apo_depth_mm=deep_c,
        deep_apo_slope=s_deep,
        sol_floor_depth_mm=floor_c,
        sol_floor_slope=s_floor,
        mg_curvature=0.04 + 0.06 * np.clip(f_mg, 0.0, 1.5),
        shift_sup_mm=shift_sup,
        shift_deep_mm=shift_deep,
        shift_sol_mm=shift_sol,
        shift_floor_mm=shift_floor,
    )


def rest_geometry(p: Participant, placement: Placement | None = None) -> Geometry:
    """One-frame geometry of ``p`` at rest, 0 deg ankle, knee straight."""
    ref = reference(p)
    one = np.ones(1)
    return image_geometry(
        p,
        placement or Placement(),
        ref.mg_l_norm_rest * one,
        ref.sol_l_norm_rest * one,
        0 * one,
        0 * one,
    )
