"""Quasi-static Hill-type mechanics of medial gastrocnemius (MG) and soleus (SOL), vectorised.

From ankle angle, knee angle and per-muscle activation to fibre length, pennation, tendon force and
ankle moment. MG and SOL pull on one compliant Achilles tendon: force in either muscle stretches
it and shortens the fibres of both. Everything works on numpy arrays of any (broadcastable)
shape, so a whole trial at 1 kHz is solved at once.

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

from dataclasses import dataclass, fields

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

    The series elastic path is ``l_slack_m`` long; its compliance is the shared Achilles tendon
    (:class:`AchillesParams`).
    """

    name: str
    fmax_n: float
    l_opt_m: float
    l_slack_m: float
    pennation_opt_rad: float


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
class AchillesParams:
    """The Achilles tendon that MG and SOL share.

    Each muscle's series elastic path is its own inextensible part (``l_slack_m`` of the muscle
    minus ``slack_m``) plus this common compliant tendon, so force in either muscle stretches the
    tendon and shortens the fibres of both.

    Attributes:
        slack_m: slack length of the compliant common tendon (m).
        strain_at_fref: its strain at ``fref_n`` (De Groote et al. 2016 use 0.049 per muscle; a
            more compliant Achilles, ~0.10, is defensible: DESIGN.md section 3).
        fref_n: reference force (N): the sum of the two muscles' maximal isometric forces.
    """

    slack_m: float = 0.25
    strain_at_fref: float = 0.049
    fref_n: float = 3116.0 + 6195.0

    @property
    def k_tendon(self) -> float:
        """Stiffness shape factor ``ln(6) / strain``: ``f_T(1 + strain) = 1``."""
        return float(np.log(6.0) / self.strain_at_fref)


ACHILLES = AchillesParams()


def achilles_stiffness_n_per_mm(
    achilles: AchillesParams, strain: np.ndarray | float, force_scale: float = 1.0
) -> np.ndarray | float:
    """Stiffness ``dF/dl`` (N/mm) of the shared tendon at ``strain``: the slope of
    ``force_scale fref f_T(1 + strain)`` over its elongation (De Groote et al. 2016 curve)."""
    k = achilles.k_tendon
    slope = 0.2 * k * np.exp(k * np.asarray(strain, dtype=np.float64))  # d f_T / d strain
    return force_scale * achilles.fref_n * slope / (achilles.slack_m * 1000.0)


@dataclass(frozen=True)
class MuscleState:
    """Quasi-static equilibrium of one muscle (arrays of the input's shape).

    Attributes:
        l_norm: fibre length / optimal fibre length.
        fibre_length_m: fibre length (m).
        pennation_rad: model pennation (rad), from ``l_M sin a = l_opt sin a0``.
        force_n: fibre force along the tendon (N), never negative.
        active_force_n: its active part ``Fmax a f_L cos(alpha)`` (N).
    """

    l_norm: np.ndarray
    fibre_length_m: np.ndarray
    pennation_rad: np.ndarray
    force_n: np.ndarray
    active_force_n: np.ndarray

    def take(self, i: np.ndarray) -> MuscleState:
        """The states at indices ``i`` (along the first axis)."""
        return MuscleState(*(getattr(self, f.name)[i] for f in fields(self)))


def _fibre(params: MuscleParams, path_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised fibre length and ``cos(alpha)`` for a fibre whose projection on the tendon line
    is ``path_m``, at constant "thickness" ``l_opt sin(alpha_0)``."""
    h = params.l_opt_m * np.sin(params.pennation_opt_rad)
    path = np.maximum(path_m, 1e-6)
    lm = np.sqrt(path**2 + h**2)
    return lm / params.l_opt_m, path / lm


def shared_equilibrium(
    mg: MuscleParams,
    sol: MuscleParams,
    achilles: AchillesParams,
    l_mg_m: np.ndarray,
    l_sol_m: np.ndarray,
    act_mg: np.ndarray,
    act_sol: np.ndarray,
    *,
    iterations: int = 36,
) -> tuple[MuscleState, MuscleState, np.ndarray]:
    """Solve ``F_T(strain) = F_MG + F_SOL`` on the shared Achilles tendon by bisection on strain.

    Each muscle's fibre spans its unit length minus its inextensible part and the common tendon,
    at constant "thickness" ``l_M sin(alpha) = l_opt sin(alpha_0)``; its force along the tendon
    is ``Fmax (a f_L(l) + f_PE(l)) cos(alpha)`` and the tendon's ``fref f_T(1 + strain)``
    (De Groote et al. 2016 curves). The residual rises with the strain (the tendon pulls harder
    while the fibres shorten), so bisection on the strain in [-0.05, the strain at which the
    shorter fibre stands across the muscle] converges; fully vectorised (1e5 states well under
    1 s).

    Args:
        mg, sol: the muscles' parameters (``l_slack_m`` is the whole series path).
        achilles: the shared tendon.
        l_mg_m, l_sol_m: muscle-tendon unit lengths (m), broadcastable.
        act_mg, act_sol: activations in [0, 1], broadcastable.
        iterations: bisection steps (36 narrow the strain to ~1e-11).

    Returns:
        ``(mg_state, sol_state, strain)``: per-muscle states and the tendon strain (1).
    """
    l_mg, l_sol, a_mg, a_sol = np.broadcast_arrays(
        np.asarray(l_mg_m, dtype=np.float64),
        np.asarray(l_sol_m, dtype=np.float64),
        np.clip(np.asarray(act_mg, float), 0.0, 1.0),
        np.clip(np.asarray(act_sol, float), 0.0, 1.0),
    )
    length = achilles.slack_m
    own = {m.name: m.l_slack_m - length for m in (mg, sol)}
    units = ((mg, l_mg, a_mg), (sol, l_sol, a_sol))

    def paths(strain: np.ndarray) -> list[np.ndarray]:
        return [lmt - own[m.name] - length * (1.0 + strain) for m, lmt, _ in units]

    def fibre_forces(strain: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        out = []
        for (m, _, a), path in zip(units, paths(strain), strict=True):
            ln, cos_a = _fibre(m, path)
            active = m.fmax_n * a * active_force_length(ln) * cos_a
            # The curve dips below zero under the optimal length; a fibre cannot push.
            total = active + m.fmax_n * np.maximum(passive_force_length(ln), 0.0) * cos_a
            out.append((ln, cos_a, active, total))
        return out

    # Upper bound: the strain at which the shorter fibre stands across the muscle (no force).
    hi_each = [(lmt - own[m.name] - 1e-4) / length - 1.0 for m, lmt, _ in units]
    lo = np.full(l_mg.shape, -0.05)
    hi = np.maximum(np.minimum(*hi_each), lo + 1e-6)
    kt = achilles.k_tendon
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        f = fibre_forces(mid)
        r = achilles.fref_n * tendon_force(1.0 + mid, kt) - (f[0][3] + f[1][3])
        # r < 0: the fibres pull harder than the tendon, so the tendon stretches further.
        weak = r < 0.0
        lo = np.where(weak, mid, lo)
        hi = np.where(weak, hi, mid)
    strain = 0.5 * (lo + hi)
    states = []
    for (m, _, _), (ln, cos_a, active, total) in zip(units, fibre_forces(strain), strict=True):
        states.append(
            MuscleState(
                l_norm=ln,
                fibre_length_m=ln * m.l_opt_m,
                pennation_rad=np.arccos(np.clip(cos_a, 0.0, 1.0)),
                force_n=np.maximum(total, 0.0),
                active_force_n=np.maximum(active, 0.0),
            )
        )
    return states[0], states[1], strain


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
        achilles_strain: strain of the shared Achilles tendon (1).
    """

    mg: MuscleState
    sol: MuscleState
    moment_nm: np.ndarray
    passive_joint_nm: np.ndarray
    achilles_strain: np.ndarray

    def take(self, i: np.ndarray) -> JointState:
        """The states at indices ``i`` (along the first axis), e.g. a trial's frame samples."""
        return JointState(
            self.mg.take(i),
            self.sol.take(i),
            self.moment_nm[i],
            self.passive_joint_nm[i],
            self.achilles_strain[i],
        )


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
    achilles: AchillesParams = ACHILLES,
) -> JointState:
    """Quasi-static state of MG, SOL (on their shared Achilles tendon) and the ankle moment.

    Args:
        ankle_deg: ankle angle (deg, positive = plantarflexion).
        knee_deg: knee flexion (deg, 0 = straight).
        act_mg, act_sol: activations in [0, 1].
        force_scale: multiplies the muscle forces so that the full-activation moment matches an
            in-vivo MVC (Rajagopal forces give ~320 N m; in vivo 100-200 N m).
        arm_scale: scales the moment arms and, consistently, the ankle-driven change of the
            muscle-tendon lengths (a participant with a longer heel).
        passive_stiffness: scale of :func:`passive_joint_moment_nm`.
        mg, sol, achilles: the muscles' and the shared tendon's parameters.
    """
    l_mg0 = mtu_length_m("MG", 0.0, knee_deg)
    l_mg = l_mg0 + arm_scale * (mtu_length_m("MG", ankle_deg, knee_deg) - l_mg0)
    l_sol0 = mtu_length_m("SOL", 0.0)
    l_sol = l_sol0 + arm_scale * (mtu_length_m("SOL", ankle_deg) - l_sol0)
    s_mg, s_sol, strain = shared_equilibrium(mg, sol, achilles, l_mg, l_sol, act_mg, act_sol)
    muscle_nm = (
        force_scale
        * arm_scale
        * (
            s_mg.force_n * moment_arm_m("MG", ankle_deg)
            + s_sol.force_n * moment_arm_m("SOL", ankle_deg)
        )
    )
    passive = passive_joint_moment_nm(ankle_deg, passive_stiffness)
    return JointState(s_mg, s_sol, muscle_nm + passive, passive, strain)
