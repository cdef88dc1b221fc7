"""Choose the architecture settings with people held out, and report the held-out figures.

Leave-one-subject-out over the subjects of a labels file (TimTrack observer data, van der Zee &
Kuo 2022, PLOS ONE 17(3): e0265752): for each held-out subject, the fascicle settings (ridge scale,
least pennation) and the thickness edge window are chosen on the other subjects' images only,
and the held-out subject's images are measured with that choice. Prints per-dataset held-out
MAEs against the observers' mean and a final JSON line.

    python examples/tune_architecture.py ../shared/data/timtrack-architecture \
        ../shared/data/timtrack-architecture/labels.csv --out loso.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
from rich.progress import Progress

from musclestate._atomic import json_default, write_json_atomic
from musclestate.architecture.evaluate import (
    image_errors,
    load_labelled,
    read_labels,
    summary_by_dataset,
)
from musclestate.architecture.measure import (
    ArchitectureConfig,
    Line,
    fascicle_scores,
    inner_thickness_px,
    measure_image,
    pick_fascicle_angle,
)
from musclestate.roi.segment import load_segmenter

SIGMAS = (1.0, 1.5, 2.0)
MIN_PENNATION = (4.0, 8.0, 12.0)
EDGE_WINDOWS = (0.05, 0.1, 0.15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    items = read_labels(args.labels)
    seg = load_segmenter()
    base = ArchitectureConfig(ridge_sigmas_px=SIGMAS)
    cache = []
    with Progress() as bar:
        task = bar.add_task("measure", total=len(items))
        for item in items:
            image = load_labelled(args.root, item)
            m = measure_image(image, seg.predict(image), base)
            entry = {"item": item, "base": m, "angles": {}, "thickness": {}}
            if m.found:
                sup = Line(m.superficial_row_px, m.superficial_angle_deg)
                deep = Line(m.deep_row_px, m.deep_angle_deg)
                apo = 0.5 * (sup.angle_deg + deep.angle_deg)
                found = fascicle_scores(image, sup, deep, base)
                for (k, sigma), pen in itertools.product(enumerate(SIGMAS), MIN_PENNATION):
                    angle = float("nan")
                    if found is not None:
                        angle = pick_fascicle_angle(found[0], found[1][k], apo, pen)[0]
                    entry["angles"][(sigma, pen)] = angle
                for win in EDGE_WINDOWS:
                    entry["thickness"][win] = inner_thickness_px(image, sup, deep, win)
            cache.append(entry)
            bar.advance(task)

    def record(entry: dict, sigma: float, pen: float, win: float) -> dict:
        m = entry["base"]
        if m.found:
            m = dataclasses.replace(
                m,
                fascicle_angle_deg=entry["angles"][(sigma, pen)],
                thickness_px=entry["thickness"][win],
            )
        return image_errors(entry["item"], m)

    def mae(records: list[dict], key: str) -> float:
        v = np.array([r[key] for r in records if r["found"]], np.float64)
        v = v[np.isfinite(v)]
        return float(np.mean(np.abs(v))) if v.size else float("inf")

    subjects = sorted({e["item"].subject for e in cache})
    held_out, choices = [], {}
    for subject in subjects:
        train = [e for e in cache if e["item"].subject != subject]
        test = [e for e in cache if e["item"].subject == subject]
        sigma, pen = min(
            itertools.product(SIGMAS, MIN_PENNATION),
            key=lambda sp: mae([record(e, *sp, 0.1) for e in train], "fascicle_angle_error_deg"),
        )
        win = min(
            EDGE_WINDOWS,
            key=lambda w: mae([record(e, sigma, pen, w) for e in train], "thickness_error_px"),
        )
        choices[subject] = {"ridge_sigma_px": sigma, "min_pennation_deg": pen, "edge_window": win}
        held_out += [record(e, sigma, pen, win) for e in test]
        print(f"held out {subject}: chose {choices[subject]}")
    summary = summary_by_dataset(held_out)
    for name, s in [*summary["datasets"].items(), ("overall", summary["overall"])]:
        print(
            f"dataset {name}: found {s['found']}/{s['images']}, fascicle angle MAE "
            f"{s['fascicle_angle_mae_deg']:.2f} deg (observers "
            f"{s['observer_fascicle_angle_mae_deg']:.2f}), thickness MAE "
            f"{s['thickness_mae_px']:.1f} px (observers {s['observer_thickness_mae_px']:.1f})"
        )
    result = {"protocol": "leave-one-subject-out", "choices": choices, **summary}
    if args.out is not None:
        write_json_atomic(args.out, {**result, "images": held_out})
    print(json.dumps(result, default=json_default))


if __name__ == "__main__":
    main()
