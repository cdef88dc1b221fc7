"""Quasi-static Hill-type mechanics of medial gastrocnemius (MG) and soleus (SOL), vectorised.

From ankle angle, knee angle and per-muscle activation to fibre length, pennation, tendon force and
ankle moment. Everything works on numpy arrays of any (broadcastable) shape, so a whole trial at
1 kHz is solved at once.

Sources:

- Curves: De Groote, Kinney, Rao & Fregly (2016) "Evaluation of direct collocation optimal control
  problem formulations for solving the muscle redundancy problem", Ann Biomed Eng 44:2922-2936.
- Muscle-tendon lengths and parameters: Rajagopal et al. (2016) "Full-body musculoskeletal model for
  muscle-driven simulation of human gait", IEEE TBME 63:2068-2079 (polynomial fit to the OpenSim
  model, ankle ``a`` in rad with + = dorsiflexion, knee ``k`` in rad with + = flexion).
- Activation dynamics: first-order, 15 ms activation / 60 ms deactivation time constants.

Sign conventions of the public functions follow :mod:`musclestate.records`: ankle angle in degrees,
positive = plantarflexion; ankle moment in N m, plantarflexion positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# De Groote et al. (2016), active force-length: three Gaussian-like terms (b1, b2, b3, b4).
_FL_B = np.array(
    [
        [0.81507, 1.05503, 0.16238, 0.06330],
        [0.43300, 0.71678, -0.02995, 0.20036],
        [0.1, 1.0, 0.35355, 0.0],
    ]
)


@dataclass(frozen=True)
class MuscleParams:
    """Hill-type parameters of one muscle-tendon unit (Rajagopal et al. 2016).

    Attributes:
        name: ``"MG"`` or ``"SOL"``.
        fmax_n: maximal isometric force (N).
        l_opt_m: optimal fibre length (m).
        l_slack_m: tendon slack length (m).
        pennation_opt_rad: pennation at optimal fibre length (rad).
        tendon_strain_at_fmax: tendon strain at ``fmax`` (0.049 in De Groote et al. 2016).
    """

    name: str
    fmax_n: float
    l_opt_m: float
    l_slack_m: float
    pennation_opt_rad: float
    tendon_strain_at_fmax: float = 0.049

    @property
    def k_tendon(self) -> float:
        """Tendon stiffness shape factor ``ln(6) / strain``: ``f_T(1 + strain) = 1``."""
        return float(np.log(6.0) / self.tendon_strain_at_fmax)


MG = MuscleParams("MG", 3116.0, 0.051, 0.399, np.deg2rad(9.9))
SOL = MuscleParams("SOL", 6195.0, 0.044, 0.277, np.deg2rad(21.9))


def active_force_length(l_norm: np.ndarray) -> np.ndarray:
    """Active force-length factor ``f_L`` of normalised fibre length (De Groote et al. 2016)."""
    lm = np.asarray(l_norm, dtype=np.float64)
    out = np.zeros_like(lm)
    for b1, b2, b3, b4 in _FL_B:
        out += b1 * np.exp(-0.5 * ((lm - b2) / (b3 + b4 * lm)) ** 2)
    return out


def passive_force_length(l_norm: np.ndarray) -> np.ndarray:
    """Passive fibre force ``f_PE`` of normalised fibre length (De Groote et al. 2016)."""
    lm = np.asarray(l_norm, dtype=np.float64)
    return (np.exp(4.0 * (lm - 1.0) / 0.6) - 1.0) / (np.exp(4.0) - 1.0)


def tendon_force(l_tendon_norm: np.ndarray, k_tendon: float) -> np.ndarray:
    """Normalised tendon force ``f_T = 0.2 exp(k_T (l_T - 1)) - 0.2`` (De Groote et al. 2016)."""
    return 0.2 * np.exp(k_tendon * (np.asarray(l_tendon_norm, dtype=np.float64) - 1.0)) - 0.2


def mtu_length_m(
    muscle: str, ankle_deg: np.ndarray, knee_deg: np.ndarray | float = 0.0
) -> np.ndarray:
    """Muscle-tendon unit length (m) from the Rajagopal et al. (2016) polynomial fit.

    Args:
        muscle: ``"MG"`` or ``"SOL"``.
        ankle_deg: ankle angle in degrees, positive = plantarflexion (records convention).
        knee_deg: knee flexion in degrees (0 = straight); SOL does not cross the knee.
    """
    a = -np.deg2rad(np.asarray(ankle_deg, dtype=np.float64))  # the fit uses + = dorsiflexion
    if muscle == "MG":
        k = np.deg2rad(np.asarray(knee_deg, dtype=np.float64))
        return (
            0.45707 + 0.04289 * a - 0.00350 * a**2 - 0.00658 * a**3 - 0.00417 * k - 0.01113 * k**2
        )
    if muscle == "SOL":
        return 0.32283 + 0.04136 * a - 0.00709 * a**2 - 0.00592 * a**3
    raise ValueError(f"unknown muscle {muscle!r}; expected 'MG' or 'SOL'")


def moment_arm_m(muscle: str, ankle_deg: np.ndarray) -> np.ndarray:
    """Plantarflexion moment arm (m): ``dl_MT/da`` with ``a`` in rad, + = dorsiflexion.

    A dorsiflexion lengthens the unit, so its force acts in plantarflexion with this arm.
    """
    a = -np.deg2rad(np.asarray(ankle_deg, dtype=np.float64))
    if muscle == "MG":
        return 0.04289 - 2 * 0.00350 * a - 3 * 0.00658 * a**2
    if muscle == "SOL":
        return 0.04136 - 2 * 0.00709 * a - 3 * 0.00592 * a**2
    raise ValueError(f"unknown muscle {muscle!r}; expected 'MG' or 'SOL'")


@dataclass(frozen=True)
class MuscleState:
    """Quasi-static equilibrium of one muscle (arrays of the input's shape).

    Attributes:
        l_norm: fibre length / optimal fibre length.
        fibre_length_m: fibre length (m).
        pennation_rad: model pennation (rad), from ``l_M sin a = l_opt sin a0``.
        force_n: tendon force (N), never negative.
    """

    l_norm: np.ndarray
    fibre_length_m: np.ndarray
    pennation_rad: np.ndarray
    force_n: np.ndarray


def equilibrium(
    params: MuscleParams,
    l_mtu_m: np.ndarray,
    activation: np.ndarray,
    *,
    iterations: int = 32,
) -> MuscleState:
    """Solve ``f_T(l_T) = (a f_L(l) + f_PE(l)) cos(alpha)`` for the fibre length, by bisection.

    The tendon length is ``l_MT - l_M cos(alpha)`` and the pennation follows the constant-thickness
    rule ``l_M sin(alpha) = l_opt sin(alpha_0)``. Bisection on the normalised fibre length in
    [0.3, 2.0] is monotone (the residual tendon-minus-fibre force increases with the fibre length
    until the fibre reaches the unit length) and fully vectorised: 1e5 states take well under 1 s.

    Args:
        params: the muscle's parameters.
        l_mtu_m: muscle-tendon unit length (m), any shape.
        activation: activation in [0, 1], broadcastable to ``l_mtu_m``.
        iterations: bisection steps (32 narrow the interval to ~4e-10).
    """
    l_mtu, act = np.broadcast_arrays(
        np.asarray(l_mtu_m, dtype=np.float64), np.clip(np.asarray(activation, float), 0.0, 1.0)
    )
    h = params.l_opt_m * np.sin(params.pennation_opt_rad)  # constant "thickness" (m)
    kt = params.k_tendon

    def residual(ln: np.ndarray) -> np.ndarray:
        lm = ln * params.l_opt_m
        cos_a = np.sqrt(np.clip(1.0 - (h / lm) ** 2, 1e-9, 1.0))
        lt = (l_mtu - lm * cos_a) / params.l_slack_m
        fibre = (act * active_force_length(ln) + passive_force_length(ln)) * cos_a
        return tendon_force(lt, kt) - fibre

    lo = np.full(l_mtu.shape, 0.3)
    hi = np.full(l_mtu.shape, 2.0)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        r = residual(mid)
        # r < 0: the fibre pulls harder than the tendon, so the equilibrium fibre is shorter.
        too_long = r < 0.0
        hi = np.where(too_long, mid, hi)
        lo = np.where(too_long, lo, mid)
    ln = 0.5 * (lo + hi)
    lm = ln * params.l_opt_m
    alpha = np.arcsin(np.clip(h / lm, 0.0, 1.0))
    lt = (l_mtu - lm * np.cos(alpha)) / params.l_slack_m
    force = np.maximum(tendon_force(lt, kt), 0.0) * params.fmax_n
    return MuscleState(ln, lm, alpha, force)


def activation_dynamics(
    excitation: np.ndarray,
    fs_hz: float,
    *,
    tau_up_s: float = 0.015,
    tau_down_s: float = 0.060,
    a0: float | None = None,
) -> np.ndarray:
    """First-order activation dynamics ``da/dt = (u - a) / tau``, tau 15 ms up and 60 ms down.

    Args:
        excitation: ``(N,)`` neural excitation in [0, 1] sampled at ``fs_hz``.
        fs_hz: sampling rate (Hz).
        a0: initial activation (default: the first excitation sample).

    Returns:
        ``(N,)`` activation in [0, 1]. The exact exponential step is used per sample, so the result
        does not depend on the rate beyond sampling.
    """
    u = np.clip(np.asarray(excitation, dtype=np.float64), 0.0, 1.0)
    out = np.empty_like(u)
    # The switching time constant makes this a nonlinear recursion that no scipy filter covers;
    # a plain loop over python floats is ~10 ms per 30 000 samples.
    k_up = 1.0 - np.exp(-1.0 / (fs_hz * tau_up_s))
    k_down = 1.0 - np.exp(-1.0 / (fs_hz * tau_down_s))
    a = float(u[0] if a0 is None else a0)
    for i, ui in enumerate(u.tolist()):
        a += (ui - a) * (k_up if ui > a else k_down)
        out[i] = a
    return out


@dataclass(frozen=True)
class JointState:
    """Both muscles and the ankle moment for arrays of joint states.

    Attributes:
        mg, sol: per-muscle equilibrium states.
        moment_nm: net ankle moment (N m, plantarflexion positive), after the participant's force
            scale and including the passive joint moment.
        passive_joint_nm: the part of ``moment_nm`` from non-muscle passive structures (N m).
    """

    mg: MuscleState
    sol: MuscleState
    moment_nm: np.ndarray
    passive_joint_nm: np.ndarray


def passive_joint_moment_nm(ankle_deg: np.ndarray, stiffness: float = 1.0) -> np.ndarray:
    """Passive moment of the non-muscular ankle structures (N m, plantarflexion positive).

    A double exponential in the style of Riener & Edrich (1999), J Biomech 32:539-544, scaled by
    ``stiffness``: it rises steeply in dorsiflexion (negative angles) and resists extreme
    plantarflexion with a negative (dorsiflexing) moment.
    """
    th = np.deg2rad(np.asarray(ankle_deg, dtype=np.float64))
    # Positive theta = plantarflexion. Coefficients: ~+8 N m at 20 deg dorsiflexion.
    return stiffness * (0.9 * np.exp(-5.0 * (th + 0.05)) - 0.6 * np.exp(5.0 * (th - 0.7)) - 0.7)


def joint_state(
    ankle_deg: np.ndarray,
    knee_deg: np.ndarray | float,
    act_mg: np.ndarray,
    act_sol: np.ndarray,
    *,
    force_scale: float = 0.55,
    arm_scale: float = 1.0,
    passive_stiffness: float = 1.0,
    mg: MuscleParams = MG,
    sol: MuscleParams = SOL,
) -> JointState:
    """Quasi-static state of MG, SOL and the ankle moment.

    Args:
        ankle_deg: ankle angle (deg, positive = plantarflexion).
        knee_deg: knee flexion (deg, 0 = straight).
        act_mg, act_sol: activations in [0, 1].
        force_scale: multiplies the muscle forces so that the full-activation moment matches an
            in-vivo MVC (Rajagopal forces give ~320 N m; in vivo 100-200 N m).
        arm_scale: scales the moment arms and, consistently, the ankle-driven change of the
            muscle-tendon lengths (a participant with a longer heel).
        passive_stiffness: scale of :func:`passive_joint_moment_nm`.
    """
    l_mg0 = mtu_length_m("MG", 0.0, knee_deg)
    l_mg = l_mg0 + arm_scale * (mtu_length_m("MG", ankle_deg, knee_deg) - l_mg0)
    l_sol0 = mtu_length_m("SOL", 0.0)
    l_sol = l_sol0 + arm_scale * (mtu_length_m("SOL", ankle_deg) - l_sol0)
    s_mg = equilibrium(mg, l_mg, act_mg)
    s_sol = equilibrium(sol, l_sol, act_sol)
    muscle_nm = (
        force_scale
        * arm_scale
        * (
            s_mg.force_n * moment_arm_m("MG", ankle_deg)
            + s_sol.force_n * moment_arm_m("SOL", ankle_deg)
        )
    )
    passive = passive_joint_moment_nm(ankle_deg, passive_stiffness)
    return JointState(s_mg, s_sol, muscle_nm + passive, passive)
