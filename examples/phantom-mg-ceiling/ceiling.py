"""How well can one frame's *true* muscle geometry tell the state of a person never seen?

Reads a phantom cohort (``musclestate simulate OUT`` or a demo's ``OUT/cohort``), takes the
ground-truth geometry that the images are drawn from (``truth.csv`` of every tracking and passive
trial: fascicle lengths, pennation, thicknesses, aponeurosis depths and slopes, MG fascicle
curvature), and fits a ridge regression from it to each state with leave-one-participant-out
cross-validation. R^2 is per held-out participant (as in ``metrics.json``), then averaged.

This is an upper reference for estimators that measure the geometry from the images: what is
lost below it is lost in measuring, not in the physics. Usage::

    python examples/phantom-mg-ceiling/ceiling.py demo-output/cohort
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

GEOMETRY = (
    "mg_fascicle [mm]", "mg_pennation [deg]", "mg_thickness [mm]", "sol_fascicle [mm]",
    "sol_pennation [deg]", "sol_thickness [mm]", "fat [mm]", "sup_apo_depth [mm]",
    "sup_apo_slope [1]", "deep_apo_depth [mm]", "deep_apo_slope [1]", "sol_floor_depth [mm]",
    "sol_floor_slope [1]", "mg_curvature [1/m]",
)  # fmt: skip
STATES = ("mg_activation [1]", "sol_activation [1]", "ankle_angle [deg]", "ankle_moment [N m]")
SUBSETS = {
    "all geometry": GEOMETRY,
    "all but MG curvature": tuple(g for g in GEOMETRY if g != "mg_curvature [1/m]"),
    "MG fascicle, pennation, thickness": GEOMETRY[:3],
    "MG curvature alone": ("mg_curvature [1/m]",),
}


def load(cohort: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """participant -> (geometry (N, G), states (N, 4)) over its tracking and passive trials."""
    out = {}
    for person in sorted(p for p in cohort.iterdir() if (p / "rom").is_dir()):
        rows = []
        for trial in sorted(person.iterdir()):
            if trial.name.startswith("track") or trial.name == "rom":
                with open(trial / "truth.csv", newline="") as fh:
                    rows += list(csv.DictReader(fh))
        if not rows:
            continue
        x = np.array([[float(r[g]) for g in GEOMETRY] for r in rows])
        y = np.array([[float(r[s]) for s in STATES] for r in rows])
        out[person.name] = (x, y)
    if len(out) < 3:
        sys.exit(f"{cohort}: expected a phantom cohort with at least 3 participants")
    return out


def lopo_r2(data: dict, columns: tuple[str, ...], alpha: float = 10.0) -> np.ndarray:
    """``(P, 4)`` R^2 of each held-out participant for each state (standardised ridge)."""
    idx = [GEOMETRY.index(c) for c in columns]
    r2 = []
    for test in data:
        xtr = np.vstack([data[p][0][:, idx] for p in data if p != test])
        ytr = np.vstack([data[p][1] for p in data if p != test])
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-12
        z = np.c_[np.ones(len(xtr)), (xtr - mu) / sd]
        w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ ytr)
        xte, yte = data[test]
        pred = np.c_[np.ones(len(xte)), (xte[:, idx] - mu) / sd] @ w
        r2.append(1 - ((yte - pred) ** 2).sum(0) / ((yte - yte.mean(0)) ** 2).sum(0))
    return np.array(r2)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = load(Path(sys.argv[1]))
    print(f"{len(data)} participants, leave-one-participant-out ridge on true geometry")
    print(f"{'inputs':36s}" + "".join(f"{s.split(' ')[0]:>16s}" for s in STATES))
    for name, cols in SUBSETS.items():
        r2 = lopo_r2(data, cols)
        cells = "".join(
            f"{m:9.3f} ({lo:4.2f})" for m, lo in zip(r2.mean(0), r2.min(0), strict=True)
        )
        print(f"{name:36s}{cells}")
    print("cells: mean R^2 over held-out participants (lowest in brackets)")


if __name__ == "__main__":
    main()
