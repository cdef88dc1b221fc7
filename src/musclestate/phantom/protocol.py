"""The recording protocol: what the dynamometer and the participant do, and what the DAQ records.

Like the seed paper (Cunningham & Loram 2019, arXiv:1907.01649), the dynamometer rotates the
ankle passively along a smooth random trajectory while the participant tracks an activation target,
and the two are varied simultaneously and independently, so that angle and activation are not
confounded. Each participant also performs maximal voluntary contractions (an ``mvc`` trial, used
only to normalise EMG) and a passive range-of-motion trial (``rom``).

The DAQ records, on one clock: ankle angle (deg, plantarflexion positive) and ankle moment (N m,
plantarflexion positive, gravity-corrected) with measurement noise at 1 kHz, a frame-sync trigger
(one 5 V pulse whose rising edge marks each video frame), and raw surface EMG of MG and SOL at
2 kHz: activation-modulated band-limited noise (20-450 Hz), crosstalk and baseline noise (SENIAM
conventions; Hermens et al. 2000, J Electromyogr Kinesiol 10:361-374).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from musclestate.errors import ConfigError
from musclestate.phantom import mechanics
from musclestate.phantom.participants import Participant, joint_state


@dataclass(frozen=True)
class ProtocolConfig:
    """Protocol settings (validated on construction).

    Attributes:
        tracking_trials: tracking trials per participant; the tracking seconds are split evenly.
        mvc_seconds: length of the MVC trial (one ramp-hold-release contraction per 4 s).
        rom_seconds: length of the passive range-of-motion trial (one slow cycle).
        angle_range_deg: (dorsiflexed, plantarflexed) limits of the dynamometer (deg).
        activation_range: (low, high) excitation of the tracking target (fraction of MVC).
        daq_hz: dynamometer / trigger sampling rate (Hz).
        emg_hz: EMG sampling rate (Hz).
        knee_angle_deg: knee flexion during all trials (0 = straight).
    """

    tracking_trials: int = 2
    mvc_seconds: float = 5.0
    rom_seconds: float = 8.0
    angle_range_deg: tuple[float, float] = (-15.0, 30.0)
    activation_range: tuple[float, float] = (0.02, 0.7)
    daq_hz: float = 1000.0
    emg_hz: float = 2000.0
    knee_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.tracking_trials < 1:
            raise ConfigError(f"tracking_trials must be >= 1, got {self.tracking_trials}")
        for name in ("mvc_seconds", "rom_seconds"):
            if not getattr(self, name) >= 1.0:
                raise ConfigError(f"{name} must be >= 1 s, got {getattr(self, name)}")
        lo, hi = self.angle_range_deg
        if not -40.0 <= lo < hi <= 50.0:
            raise ConfigError(
                f"angle_range_deg must be (dorsiflexed, plantarflexed) within -40..50 deg, "
                f"got {self.angle_range_deg}"
            )
        a0, a1 = self.activation_range
        if not 0.0 <= a0 < a1 <= 1.0:
            raise ConfigError(f"activation_range must satisfy 0 <= low < high <= 1, got {a0, a1}")
        if self.emg_hz < 1000.0 or self.daq_hz < 100.0:
            raise ConfigError(
                f"emg_hz must be >= 1000 (band to 450 Hz) and daq_hz >= 100, got "
                f"{self.emg_hz}, {self.daq_hz}"
            )


@dataclass(frozen=True)
class Trial:
    """One simulated trial on the DAQ clock.

    Attributes:
        trial: trial id (``track_01``, ``mvc``, ``rom``).
        task: ``"tracking"``, ``"mvc"`` or ``"passive_rom"``.
        t_s: ``(N,)`` DAQ sample times (s), at ``daq_hz`` from 0.
        angle_deg: ``(N,)`` true ankle angle (deg, plantarflexion positive).
        excitation: ``(2, N)`` neural excitation of MG, SOL in [0, 1].
        activation: ``(2, N)`` activation after activation dynamics.
        state: the mechanics at every DAQ sample.
        frame_samples: ``(T,)`` DAQ sample index of each frame's trigger edge.
        angle_meas_deg, moment_meas_nm: ``(N,)`` recorded dynamometer channels (with noise).
        sync_v: ``(N,)`` trigger channel (V).
        emg_t_s: ``(M,)`` EMG sample times; ``emg_mv``: ``(2, M)`` raw EMG of MG, SOL (mV).
    """

    trial: str
    task: str
    t_s: np.ndarray
    angle_deg: np.ndarray
    excitation: np.ndarray
    activation: np.ndarray
    state: mechanics.JointState
    frame_samples: np.ndarray
    angle_meas_deg: np.ndarray
    moment_meas_nm: np.ndarray
    sync_v: np.ndarray
    emg_t_s: np.ndarray
    emg_mv: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.frame_samples.shape[0])

    @property
    def frame_t_s(self) -> np.ndarray:
        return self.t_s[self.frame_samples]


def smooth_random(
    n: int, fs_hz: float, cutoff_hz: float, rng: np.random.Generator, *, spread: float = 1.2
) -> np.ndarray:
    """A smooth random trajectory in (0, 1): low-passed white noise squashed by ``tanh``.

    Args:
        n: samples; fs_hz: rate; cutoff_hz: bandwidth of the trajectory (Hz).
        spread: how far the standardised noise is stretched before squashing (higher = more time
            near the limits).
    """
    pad = int(2 * fs_hz / cutoff_hz)
    w = rng.standard_normal(n + 2 * pad)
    sos = signal.butter(2, cutoff_hz, fs=fs_hz, output="sos")
    z = signal.sosfiltfilt(sos, w)[pad : pad + n]
    z = (z - z.mean()) / (z.std() + 1e-12)
    return 0.5 + 0.5 * np.tanh(spread * z)


def _mvc_excitation(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Ramp-hold-release contractions, one per 4 s (at least one)."""
    u = np.zeros(n)
    t = np.arange(n) / fs
    dur = n / fs
    k = max(1, int(dur // 4.0))
    seg = dur / k
    for i in range(k):
        t0 = i * seg + 0.15 * seg
        up, hold, down = 0.25 * seg, 0.35 * seg, 0.15 * seg
        level = rng.uniform(0.97, 1.0)
        ramp = np.clip((t - t0) / up, 0.0, 1.0) * np.clip((t0 + up + hold + down - t) / down, 0, 1)
        u = np.maximum(u, level * ramp)
    return u


def simulate_trial(
    p: Participant,
    trial: str,
    task: str,
    seconds: float,
    fps: float,
    cfg: ProtocolConfig,
    rng: np.random.Generator,
) -> Trial:
    """Simulate one trial: trajectories, mechanics, recorded channels and frame trigger times.

    The DAQ starts 0.3-0.6 s before the video and stops 0.3 s after its last frame.
    """
    fs = cfg.daq_hz
    lead = round(float(rng.uniform(0.3, 0.6)) * fs) / fs
    n_frames = max(1, round(seconds * fps))
    nominal = lead + np.arange(n_frames) / fps
    frame_samples = np.ceil(nominal * fs - 1e-9).astype(np.int64)
    n = int(frame_samples[-1] + round(0.3 * fs)) + 1
    t = np.arange(n) / fs
    lo, hi = cfg.angle_range_deg
    a0, a1 = cfg.activation_range

    if task == "tracking":
        angle = lo + (hi - lo) * smooth_random(n, fs, 0.12, rng, spread=1.0)
        # MG and SOL are co-activated synergists: one common plantarflexion drive plus a
        # smaller independent part each; MG receives a person-specific share of the drive.
        common = smooth_random(n, fs, 0.25, rng)
        ind = [smooth_random(n, fs, 0.25, rng) for _ in range(2)]
        w = p.drive_common_weight
        target = np.stack([w * common + (1 - w) * x for x in ind])
        target = (target - target.min(axis=1, keepdims=True)) / np.ptp(target, axis=1)[:, None]
        target[0] *= p.mg_drive_share
        target = a0 + (a1 - a0) * target
        # tracking error of the participant: small, faster wander around the target
        err = np.stack([smooth_random(n, fs, 1.5, rng) - 0.5 for _ in range(2)])
        excitation = np.clip(target + 0.06 * err, 0.0, 1.0)
    elif task == "mvc":
        angle = np.zeros(n)
        base = _mvc_excitation(n, fs, rng)
        excitation = np.stack([np.maximum(base, 0.01), np.maximum(base * 0.98, 0.01)])
    elif task == "passive_rom":
        # one slow cycle: neutral -> dorsiflexed -> plantarflexed -> neutral
        ph = np.clip((t - lead) / (n_frames / fps), 0.0, 1.0)
        mid = 0.5 * (lo + hi)
        angle = mid - 0.5 * (hi - lo) * np.sin(2 * np.pi * ph)
        excitation = np.full((2, n), 0.01)
    else:
        raise ConfigError(f"unknown task {task!r}; expected tracking, mvc or passive_rom")

    activation = np.stack([mechanics.activation_dynamics(excitation[i], fs) for i in range(2)])
    state = joint_state(p, angle, activation[0], activation[1], cfg.knee_angle_deg)

    drift = 0.3 * (smooth_random(n, fs, 0.05, rng) - 0.5)
    moment_meas = state.moment_nm + drift + 0.3 * rng.standard_normal(n)
    angle_meas = angle + 0.05 * rng.standard_normal(n)
    sync_v = np.zeros(n)
    width = max(1, min(5, int(fs / fps / 2)))
    for k in range(width):
        sync_v[np.minimum(frame_samples + k, n - 1)] = 5.0
    sync_v += 0.01 * rng.standard_normal(n)

    emg_t, emg_mv = _emg(p, excitation, t, cfg.emg_hz, rng)
    return Trial(
        trial=trial,
        task=task,
        t_s=t,
        angle_deg=angle,
        excitation=excitation,
        activation=activation,
        state=state,
        frame_samples=frame_samples,
        angle_meas_deg=angle_meas,
        moment_meas_nm=moment_meas,
        sync_v=sync_v,
        emg_t_s=emg_t,
        emg_mv=emg_mv,
    )


def _emg(
    p: Participant, excitation: np.ndarray, t: np.ndarray, emg_hz: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Raw EMG of MG and SOL (mV): amplitude-modulated 20-450 Hz noise + crosstalk + baseline."""
    m = int(np.floor(t[-1] * emg_hz)) + 1
    te = np.arange(m) / emg_hz
    u = np.stack([np.interp(te, t, excitation[i]) for i in range(2)])
    sos = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=emg_hz, output="sos")
    carrier = signal.sosfilt(sos, rng.standard_normal((2, m + 400)), axis=1)[:, 400:]
    carrier /= carrier.std(axis=1, keepdims=True)
    amp = np.asarray(p.emg_mvc_mv)[:, None]
    src = amp * u * carrier  # RMS at full excitation = emg_mvc_mv
    c = p.emg_crosstalk
    raw = np.stack([src[0] + c * src[1], src[1] + c * src[0]])
    hum = 0.002 * np.sin(2 * np.pi * 50.0 * te + rng.uniform(0, 2 * np.pi, (2, 1)))
    raw += p.emg_noise_mv * rng.standard_normal((2, m)) + hum
    return te, raw
