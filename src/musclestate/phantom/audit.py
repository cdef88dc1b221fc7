"""Physiology audit of a phantom cohort: every cue of muscle state beside its published range.

:func:`audit_cohort` reads a cohort written by :func:`musclestate.phantom.simulate_cohort`
(``cohort.json`` and every trial's ``truth.csv``) and measures each cue in :data:`CUES`, the same
way for any cohort. Values are cohort means (of per-participant values) at an ankle angle of
0 deg, knee straight, unless the name says otherwise:

- rest: the passive ``rom`` trial, each quantity fitted with a cubic in the ankle angle and read
  at 0 deg (and at -15 and +30 deg for the passive cues, the range of Maganaris et al. 1998);
- MVC: the ``mvc`` trial (0 deg), its frames within 0.05 of the highest MG activation; changes
  are MVC minus rest within one participant, the deep aponeurosis angle within the ``mvc`` trial
  (the angle depends on the probe placement), from its frames within 0.03 of the lowest
  activation;
- across people: Pearson r between each participant's MVC moment (highest moment of the ``mvc``
  trial) and the rest MG plus SOL thickness (a size index of the triceps surae);
- within person: Pearson r of MG and SOL activation over all tracking frames of one participant,
  median over participants.

With ``real_data`` (the ``shared/data`` folder) the audit also gives the values that the observers'
labels of the real drazan2019-mg participant show (``timtrack-architecture`` dataset 3, isometric
maximal pushes, moment from ``drazan2019-mg/push_data.mat``; van der Zee & Kuo 2022, PLOS ONE
17:e0265752, and Drazan, Hullfish & Baxter 2019, PeerJ Preprints 7:e27475v1, CC BY 4.0), in the
phantom's image orientation (those images are mirrored left-right).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import read_json
from musclestate.errors import InputError
from musclestate.phantom import mechanics


@dataclass(frozen=True)
class Cue:
    """One audited cue: what is measured, its published range and where the range comes from."""

    name: str
    unit: str
    low: float
    high: float
    source: str
    what: str
    across_people: bool = False


CUES: tuple[Cue, ...] = (
    Cue("mg_fascicle_rest_mm", "mm", 45.0, 60.0,
        "Maganaris et al. 1998 (J Physiol 512:603); Kawakami et al. 1998 (J Appl Physiol 85:398)",
        "MG fascicle length at rest"),
    Cue("mg_pennation_rest_deg", "deg", 18.0, 25.0,
        "Maganaris et al. 1998; Narici et al. 1996 (J Physiol 496:287)",
        "MG pennation at rest"),
    Cue("mg_thickness_rest_mm", "mm", 15.0, 22.0, "Maganaris et al. 1998; DESIGN.md section 3",
        "MG thickness at rest"),
    Cue("sol_thickness_rest_mm", "mm", 12.0, 20.0, "Maganaris et al. 1998; DESIGN.md section 3",
        "SOL thickness at rest"),
    Cue("mg_fascicle_shortening_rest_to_mvc_pct", "%", 28.0, 37.0,
        "about 30-35 % (Narici et al. 1996; Maganaris et al. 1998)",
        "MG fascicle shortening, rest to MVC"),
    Cue("mg_pennation_rise_rest_to_mvc_deg", "deg", 6.0, 16.0,
        "MVC 27.3-34.6 deg (Manal et al. 2006, J Appl Biomech 22:255) minus rest 18-25 deg, at "
        "constant MG thickness (Maganaris et al. 1998)",
        "MG pennation rise, rest to MVC"),
    Cue("mg_pennation_mvc_deg", "deg", 27.3, 34.6,
        "Manal et al. 2006: 27.3 (women) and 34.6 deg (men)", "MG pennation at MVC"),
    Cue("mg_thickness_change_rest_to_mvc_pct", "%", -3.0, 3.0,
        "no change (Maganaris et al. 1998)", "MG thickness change, rest to MVC"),
    Cue("sol_thickness_change_rest_to_mvc_mm", "mm", 6.0, 7.0,
        "6-7 mm (Maganaris et al. 1998)", "SOL thickening, rest to MVC"),
    Cue("sol_pennation_mvc_deg", "deg", 26.3, 40.1,
        "Manal et al. 2006: 26.3 (women) and 40.1 deg (men); the planimetric rule "
        "underestimates the SOL rise by 9-14 deg (Maganaris et al. 1998)",
        "SOL pennation at MVC"),
    Cue("deep_apo_angle_change_rest_to_mvc_deg", "deg", -0.5, 0.5,
        "no published turn with force (band: +-0.5 deg)",
        "deep aponeurosis angle change, rest to MVC"),
    Cue("mg_curvature_rest_per_m", "1/m", 0.0, 1.5,
        "0.4 1/m, concave on the proximal side (Muramatsu et al. 2002, J Appl Physiol 92:129; "
        "band assumed)", "MG fascicle curvature at rest"),
    Cue("mg_curvature_mvc_per_m", "1/m", 3.5, 7.0,
        "5.2 1/m, concave on the proximal side (Muramatsu et al. 2002; band assumed)",
        "MG fascicle curvature at MVC"),
    Cue("mg_fascicle_shortening_passive_pct", "%", 30.0, 36.0,
        "32-34 % (15-28 mm) from -15 to +30 deg at rest (Maganaris et al. 1998)",
        "MG fascicle shortening, -15 -> +30 deg at rest"),
    Cue("mg_pennation_rise_passive_deg", "deg", 6.0, 12.0,
        "6-12 deg from -15 to +30 deg at rest (Maganaris et al. 1998)",
        "MG pennation rise, -15 -> +30 deg at rest"),
    Cue("mg_sol_activation_r_within_person", "1", 0.5, 0.95,
        "MG and SOL co-activated in voluntary plantarflexion (band set by this project)",
        "MG-SOL activation r within a person (median)"),
    Cue("mvc_moment_nm", "N m", 100.0, 200.0, "DESIGN.md section 3 (young adults, knee straight)",
        "MVC moment"),
    Cue("mvc_moment_vs_triceps_size_r", "1", 0.65, 0.73,
        "r 0.65-0.73 with triceps surae volume (Bamman et al. 2000, Med Sci Sports Exerc "
        "32:1307), widened by the 90 % sampling interval of r for the cohort's size",
        "MVC moment vs triceps size, r across people", across_people=True),
    Cue("achilles_stiffness_mvc_n_per_mm", "N/mm", 230.0, 630.0,
        "430 +- 200 N/mm (Peltonen et al. 2010, J Appl Physiol 109:1071)",
        "Achilles tendon stiffness at MVC"),
)  # fmt: skip

CUE_NAMES: tuple[str, ...] = tuple(c.name for c in CUES)


@dataclass(frozen=True)
class CueResult:
    """One cue measured on a cohort (``value``), beside its range and the real-data value.

    Attributes:
        cue: the audited cue.
        value: the cohort's value in ``cue.unit`` (NaN when the cohort cannot give it).
        low, high: the accepted range: the published one, or for a correlation across people
            the published one widened by the 90 % sampling interval for the cohort's size.
        real: the real drazan2019-mg participant's value where the shared data give one.
    """

    cue: Cue
    value: float
    low: float
    high: float
    real: float | None = None

    @property
    def inside(self) -> bool:
        """Whether ``value`` lies within the accepted range ``[low, high]``."""
        return bool(self.low <= self.value <= self.high)

    def to_dict(self) -> dict[str, Any]:
        c = self.cue
        out: dict[str, Any] = {
            "value": None if math.isnan(self.value) else round(float(self.value), 4),
            "unit": c.unit,
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "source": c.source,
            "inside": self.inside,
        }
        if self.real is not None:
            out["real_drazan2019_mg"] = round(float(self.real), 4)
        return out


@dataclass(frozen=True)
class Audit:
    """The audit of one cohort: one :class:`CueResult` per cue of :data:`CUES`, in order."""

    cohort: Path
    participants: int
    anatomy_spread: float
    results: tuple[CueResult, ...]

    @property
    def passed(self) -> bool:
        """Every cue inside its published range."""
        return all(r.inside for r in self.results)

    def __getitem__(self, name: str) -> CueResult:
        for r in self.results:
            if r.cue.name == name:
                return r
        raise KeyError(f"no cue {name!r}; cues are {list(CUE_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        """``{"cues": {name: {"value", "unit", "low", "high", "source", ...}}, ...}``."""
        return {
            "cues": {r.cue.name: r.to_dict() for r in self.results},
            "cohort": str(self.cohort),
            "participants": self.participants,
            "anatomy_spread": self.anatomy_spread,
            "passed": self.passed,
        }


# ---------------------------------------------------------------------------------------------
def read_truth(path: Path) -> dict[str, np.ndarray]:
    """A ``truth.csv`` as ``{header: (T,) float64}``; headers carry their unit
    (``"mg_fascicle [mm]"``)."""
    try:
        with path.open(encoding="utf-8") as f:
            header = next(csv.reader(f))
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, StopIteration, ValueError) as exc:
        raise InputError(f"cannot read the phantom ground truth: {exc}", path) from None
    names = [h.strip() for h in header]
    if data.shape[1] != len(names):
        raise InputError(f"{len(names)} columns in the header, {data.shape[1]} in the rows", path)
    return {n: data[:, i] for i, n in enumerate(names)}


def _need(truth: Mapping[str, np.ndarray], names: tuple[str, ...], path: Path) -> None:
    missing = [n for n in names if n not in truth]
    if missing:
        raise InputError(
            f"ground truth lacks columns {missing}: written by an older phantom? Simulate the "
            "cohort again with this version",
            path,
        )


_COLUMNS = {
    "ankle_angle": "ankle_angle [deg]",
    "ankle_moment": "ankle_moment [N m]",
    "mg_activation": "mg_activation [1]",
    "sol_activation": "sol_activation [1]",
    "mg_fascicle": "mg_fascicle [mm]",
    "mg_pennation": "mg_pennation [deg]",
    "mg_thickness": "mg_thickness [mm]",
    "sol_pennation": "sol_pennation [deg]",
    "sol_thickness": "sol_thickness [mm]",
    "deep_apo_slope": "deep_apo_slope [1]",
    "mg_curvature": "mg_curvature [1/m]",
    "achilles_strain": "achilles_strain [1]",
}


def _apo_angle_deg(slope: np.ndarray) -> np.ndarray:
    """Angle of a line ``y = c + slope x`` (y down) with the image horizontal, positive rising to
    the right (the labels' convention)."""
    return -np.degrees(np.arctan(slope))


def _participant(folder: Path, record: Mapping[str, Any]) -> dict[str, float | np.ndarray]:
    """Per-participant measurements from its trials' ground truth."""
    trials: dict[str, list[dict[str, np.ndarray]]] = {}
    for t in record["trials"]:
        path = folder / t["folder"] / "truth.csv"
        truth = read_truth(path)
        _need(truth, tuple(_COLUMNS.values()), path)
        trials.setdefault(t["task"], []).append({k: truth[h] for k, h in _COLUMNS.items()})
    for task in ("mvc", "passive_rom", "tracking"):
        if task not in trials:
            raise InputError(f"participant has no {task} trial; the audit needs one", folder)
    rom = trials["passive_rom"][0]
    ang = rom["ankle_angle"]
    if np.ptp(ang) < 30.0:
        raise InputError(
            f"the range-of-motion trial spans {np.ptp(ang):.0f} deg; the audit needs -15..30",
            folder,
        )

    def fit(col: str, a: float) -> float:
        return float(np.polyval(np.polyfit(ang, rom[col], 3), a))

    mvc = trials["mvc"][0]
    act = mvc["mg_activation"]
    top = act >= act.max() - 0.05
    out: dict[str, Any] = {}

    def at(col: str, sel: np.ndarray) -> float:
        return float(np.mean(mvc[col][sel]))

    for col in ("mg_fascicle", "mg_pennation", "mg_thickness", "sol_thickness", "sol_pennation"):
        out[f"{col}_rest"] = fit(col, 0.0)
        out[f"{col}_mvc"] = at(col, top)
    out["mg_curvature_rest"] = fit("mg_curvature", 0.0)
    out["mg_curvature_mvc"] = at("mg_curvature", top)
    # The aponeurosis angle depends on the probe placement: compare within the MVC trial.
    least = act <= act.min() + 0.03
    apo = _apo_angle_deg(mvc["deep_apo_slope"])
    out["deep_apo_change"] = float(apo[top].mean() - apo[least].mean())
    out["mvc_moment"] = float(mvc["ankle_moment"].max())
    out["achilles_strain_mvc"] = at("achilles_strain", top)

    out["passive_fascicle"] = (fit("mg_fascicle", -15.0), fit("mg_fascicle", 30.0))
    out["passive_pennation"] = (fit("mg_pennation", -15.0), fit("mg_pennation", 30.0))

    mg = np.concatenate([t["mg_activation"] for t in trials["tracking"]])
    sol = np.concatenate([t["sol_activation"] for t in trials["tracking"]])
    out["activation_r"] = float(np.corrcoef(mg, sol)[0, 1])
    return out


def _stiffness_n_per_mm(params: Mapping[str, Any], strain: float) -> float:
    """Achilles stiffness (N/mm) at ``strain``, in the moment's force units (force scale)."""
    tendon = mechanics.AchillesParams(strain_at_fref=float(params["achilles_strain"]))
    return mechanics.achilles_stiffness_n_per_mm(tendon, strain, float(params["force_scale"]))


def audit_cohort(cohort: str | Path, *, real_data: str | Path | None = None) -> Audit:
    """Measure every cue of :data:`CUES` on a phantom cohort's ground truth.

    Args:
        cohort: a cohort folder written by :func:`musclestate.phantom.simulate_cohort` (or its
            ``manifest.toml``).
        real_data: the shared real-data folder (with ``timtrack-architecture`` and
            ``drazan2019-mg``); when given, cues the real participant's labels show carry its
            value too.

    Returns:
        :class:`Audit`, one result per cue.

    Raises:
        InputError: not a phantom cohort, or ground truth without the columns this version
            writes (simulate the cohort again), or a cohort without MVC, range-of-motion and
            tracking trials.
    """
    folder = Path(cohort)
    if folder.is_file():
        folder = folder.parent
    meta_path = folder / "cohort.json"
    if not meta_path.exists():
        raise InputError(
            "not a phantom cohort (no cohort.json); give the folder simulate wrote", folder
        )
    meta = read_json(meta_path, "cohort.json")
    records = meta.get("participants") or []
    if not records:
        raise InputError("cohort.json lists no participants", meta_path)
    per = [_participant(folder, r) for r in records]

    def mean(key: str) -> float:
        return float(np.mean([p[key] for p in per]))

    def mean_of(fn: Any) -> float:
        return float(np.mean([fn(p) for p in per]))

    values: dict[str, float] = {
        "mg_fascicle_rest_mm": mean("mg_fascicle_rest"),
        "mg_pennation_rest_deg": mean("mg_pennation_rest"),
        "mg_thickness_rest_mm": mean("mg_thickness_rest"),
        "sol_thickness_rest_mm": mean("sol_thickness_rest"),
        "mg_fascicle_shortening_rest_to_mvc_pct": mean_of(
            lambda p: 100.0 * (1.0 - p["mg_fascicle_mvc"] / p["mg_fascicle_rest"])
        ),
        "mg_pennation_rise_rest_to_mvc_deg": mean_of(
            lambda p: p["mg_pennation_mvc"] - p["mg_pennation_rest"]
        ),
        "mg_pennation_mvc_deg": mean("mg_pennation_mvc"),
        "mg_thickness_change_rest_to_mvc_pct": mean_of(
            lambda p: 100.0 * (p["mg_thickness_mvc"] / p["mg_thickness_rest"] - 1.0)
        ),
        "sol_thickness_change_rest_to_mvc_mm": mean_of(
            lambda p: p["sol_thickness_mvc"] - p["sol_thickness_rest"]
        ),
        "sol_pennation_mvc_deg": mean("sol_pennation_mvc"),
        "deep_apo_angle_change_rest_to_mvc_deg": mean("deep_apo_change"),
        "mg_curvature_rest_per_m": mean("mg_curvature_rest"),
        "mg_curvature_mvc_per_m": mean("mg_curvature_mvc"),
        "mg_fascicle_shortening_passive_pct": mean_of(
            lambda p: 100.0 * (1.0 - p["passive_fascicle"][1] / p["passive_fascicle"][0])
        ),
        "mg_pennation_rise_passive_deg": mean_of(
            lambda p: p["passive_pennation"][1] - p["passive_pennation"][0]
        ),
        "mg_sol_activation_r_within_person": float(np.median([p["activation_r"] for p in per])),
        "mvc_moment_nm": mean("mvc_moment"),
        "mvc_moment_vs_triceps_size_r": _r_across(
            [p["mvc_moment"] for p in per],
            [p["mg_thickness_rest"] + p["sol_thickness_rest"] for p in per],
        ),
        "achilles_stiffness_mvc_n_per_mm": float(
            np.mean(
                [
                    _stiffness_n_per_mm(r["parameters"], p["achilles_strain_mvc"])
                    for r, p in zip(records, per, strict=True)
                ]
            )
        ),
    }
    real = real_values(Path(real_data)) if real_data is not None else {}
    results = tuple(
        CueResult(c, values[c.name], *_accepted(c, len(records)), real.get(c.name)) for c in CUES
    )
    spread = float(meta.get("config", {}).get("anatomy_spread", 1.0))
    return Audit(folder, len(records), spread, results)


def _accepted(cue: Cue, n: int) -> tuple[float, float]:
    """The published range, or for a correlation across ``n`` people that range widened by the
    90 % sampling interval of r (Fisher z, standard error ``1 / sqrt(n - 3)``)."""
    if not cue.across_people:
        return cue.low, cue.high
    if n < 4:
        return -1.0, 1.0
    half = 1.6449 / math.sqrt(n - 3)
    return math.tanh(math.atanh(cue.low) - half), math.tanh(math.atanh(cue.high) + half)


def _r_across(a: list[float], b: list[float]) -> float:
    if len(a) < 3:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------------------------------------
def real_values(shared: Path) -> dict[str, float]:
    """Cues that the observers' labels of the real drazan2019-mg participant show.

    Isometric maximal pushes of ``timtrack-architecture`` dataset 3 (three observers; per image
    the mean fascicle and deep aponeurosis angles and the median thickness), the moment at each
    labelled frame from ``drazan2019-mg/push_data.mat`` (frame ``k`` of the file name taken at
    sample ``frameInds[k]``, 0-based ``k``). Rest = frames under 10 % of the push's highest
    moment, MVC = frames above 80 %. Pennation = fascicle angle minus deep aponeurosis angle.
    Angles are turned into the phantom's (clip) orientation: the dataset 3 images are mirrored.

    Raises:
        InputError: the folder lacks either data set.
    """
    import scipy.io

    labels = shared / "timtrack-architecture" / "labels.csv"
    mat = shared / "drazan2019-mg" / "push_data.mat"
    for p in (labels, mat):
        if not p.is_file():
            raise InputError("real-data file not found; give the shared data folder", p)
    clips = scipy.io.loadmat(mat, squeeze_me=True, struct_as_record=False)["clips"]
    rows: dict[str, list[dict[str, str]]] = {}
    with labels.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["dataset"] == "3" and "isometric" in row["image"]:
                rows.setdefault(row["image"], []).append(row)
    per_push: dict[str, list[tuple[float, float, float, float]]] = {}
    for image, obs in rows.items():
        parts = Path(image).stem.split("_")  # p6_isometric_max_01_push_01_10
        trial, push, frame_k = "_".join(parts[:-3]), "_".join(parts[-3:-1]), int(parts[-1])
        p = getattr(getattr(clips, trial), push)
        moment = float(np.asarray(p.TOR)[int(np.asarray(p.frameInds)[frame_k]) - 1])
        fas = np.mean([float(o["fascicle_angle_deg"]) for o in obs])
        deep = [float(o["deep_apo_angle_deg"]) for o in obs if o["deep_apo_angle_deg"]]
        thick = float(np.median([float(o["thickness_px"]) for o in obs]))
        if deep:
            d = float(np.mean(deep))
            per_push.setdefault(f"{trial}_{push}", []).append((moment, fas - d, -d, thick))
    rest_pen, mvc_pen, apo_change, thick_change = [], [], [], []
    for vals in per_push.values():
        a = np.array(vals)
        m = a[:, 0]
        r, t = m < 0.1 * m.max(), m > 0.8 * m.max()
        if not (r.any() and t.any()):
            continue
        rest_pen.append(a[r, 1].mean())
        mvc_pen.append(a[t, 1].mean())
        apo_change.append(a[t, 2].mean() - a[r, 2].mean())
        thick_change.append(100.0 * (a[t, 3].mean() / a[r, 3].mean() - 1.0))
    if not rest_pen:
        return {}
    return {
        "mg_pennation_rest_deg": float(np.mean(rest_pen)),
        "mg_pennation_mvc_deg": float(np.mean(mvc_pen)),
        "mg_pennation_rise_rest_to_mvc_deg": float(np.mean(mvc_pen) - np.mean(rest_pen)),
        "mg_thickness_change_rest_to_mvc_pct": float(np.mean(thick_change)),
        "deep_apo_angle_change_rest_to_mvc_deg": float(np.mean(apo_change)),
    }
