"""Choose the architecture settings with people held out, and report the held-out figures.

Leave-one-subject-out over the subjects of a labels file (TimTrack observer data, van der Zee &
Kuo 2022, PLOS ONE 17(3): e0265752): for each held-out subject, the settings are chosen on the
other subjects' images only, and the held-out subject's images are measured with that choice:

1. the line search for a deep aponeurosis the segmenter missed (ridge scale, probability weight)
   and the thickness reading (edge source, edge window, columns read, where it is read) by the
   thickness MAE;
2. then the fascicle settings (ridge scale, least pennation) by the fascicle-angle MAE.

Prints per-dataset held-out MAEs against the observers' mean and a final JSON line.

    python examples/tune_architecture.py ../shared/data/timtrack-architecture \
        ../shared/data/timtrack-architecture/labels.csv [--model W.safetensors] --out loso.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

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
    deep_line_search,
    fascicle_scores,
    inner_thickness_px,
    measure_image,
    pick_fascicle_angle,
)
from musclestate.roi.segment import load_segmenter

SIGMAS = (1.0, 1.5, 2.0)
MIN_PENNATION = (4.0, 8.0, 12.0)
#: line search: (band_sigma_rows, line_prob_weight)
SEARCHES = tuple(itertools.product((1.5, 3.0), (0.25, 0.5, 1.0)))
#: thickness: (edges, edge_window, thickness_span, thickness_at)
READINGS = tuple(
    itertools.product(("profile", "mask"), (0.1, 0.15, 0.25), (0.05, 0.1, 0.2), (0.0, 0.5))
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--model", type=Path, default=None, help="segmenter (default: shipped)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    items = read_labels(args.labels)
    seg = load_segmenter(args.model)
    base = ArchitectureConfig(ridge_sigmas_px=SIGMAS)
    cache = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} images"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("measure", total=len(items))
        for item in items:
            image = load_labelled(args.root, item)
            prob = seg.predict(image)
            m = measure_image(image, prob, base)
            entry: dict = {"item": item, "base": m, "variants": {}}
            if m.superficial_row_px == m.superficial_row_px:  # superficial found
                sup = Line(m.superficial_row_px, m.superficial_angle_deg)
                deeps: dict = {}
                for search in SEARCHES:
                    if m.deep_source == "network":
                        deeps[search] = Line(m.deep_row_px, m.deep_angle_deg)
                    else:
                        cfg = dataclasses.replace(
                            base, band_sigma_rows=search[0], line_prob_weight=search[1]
                        )
                        deeps[search] = deep_line_search(image, prob, sup, cfg)
                done: dict = {}
                for search, deep in deeps.items():
                    key = None if deep is None else (deep.row_c, deep.angle_deg)
                    if key not in done:
                        done[key] = _variant(image, prob, sup, deep, base)
                    entry["variants"][search] = done[key]
            cache.append(entry)
            bar.advance(task)

    def record(entry: dict, search: tuple, reading: tuple, fasc: tuple) -> dict:
        m, v = entry["base"], entry["variants"].get(search)
        if v is None:
            m = dataclasses.replace(m, found=False)
        else:
            m = dataclasses.replace(
                m,
                found=True,
                deep_row_px=v["deep"].row_c,
                deep_angle_deg=v["deep"].angle_deg,
                fascicle_angle_deg=v["angles"][fasc],
                thickness_px=v["thickness"][reading],
            )
        return image_errors(entry["item"], m)

    def mae(records: list[dict], key: str) -> float:
        v = np.array([r[key] for r in records if r["found"]], np.float64)
        v = v[np.isfinite(v)]
        return float(np.mean(np.abs(v))) if v.size else float("inf")

    default_fasc = (1.0, 12.0)
    subjects = sorted({e["item"].subject for e in cache})
    held_out, choices = [], {}
    for subject in subjects:
        train = [e for e in cache if e["item"].subject != subject]
        test = [e for e in cache if e["item"].subject == subject]
        search, reading = min(
            itertools.product(SEARCHES, READINGS),
            key=lambda sr: mae(
                [record(e, sr[0], sr[1], default_fasc) for e in train], "thickness_error_px"
            ),
        )
        fasc = min(
            itertools.product(SIGMAS, MIN_PENNATION),
            key=lambda sp: mae(
                [record(e, search, reading, sp) for e in train], "fascicle_angle_error_deg"
            ),
        )
        choices[subject] = {
            "band_sigma_rows": search[0],
            "line_prob_weight": search[1],
            "thickness_edges": reading[0],
            "edge_window": reading[1],
            "thickness_span": reading[2],
            "thickness_at": reading[3],
            "ridge_sigma_px": fasc[0],
            "min_pennation_deg": fasc[1],
        }
        held_out += [record(e, search, reading, fasc) for e in test]
        print(f"held out {subject}: chose {choices[subject]}")
    summary = summary_by_dataset(held_out)
    for name, s in [*summary["datasets"].items(), ("overall", summary["overall"])]:
        print(
            f"dataset {name}: found {s['found']}/{s['images']}, fascicle angle MAE "
            f"{s['fascicle_angle_mae_deg']:.2f} deg (observers "
            f"{s['observer_fascicle_angle_mae_deg']:.2f}), thickness MAE "
            f"{s['thickness_mae_px']:.1f} px (observers {s['observer_thickness_mae_px']:.1f})"
        )
    result = {
        "protocol": "leave-one-subject-out",
        "model": str(args.model) if args.model else "shipped",
        "choices": choices,
        **summary,
    }
    if args.out is not None:
        write_json_atomic(args.out, {**result, "images": held_out})
    print(json.dumps(result, default=json_default))


def _variant(
    image: np.ndarray, prob: np.ndarray, sup: Line, deep: Line | None, base: ArchitectureConfig
) -> dict | None:
    """Fascicle angles and thicknesses of one aponeurosis pair for every candidate setting."""
    if deep is None:
        return None
    apo = 0.5 * (sup.angle_deg + deep.angle_deg)
    found = fascicle_scores(image, sup, deep, base)
    angles = {}
    for (k, sigma), pen in itertools.product(enumerate(SIGMAS), MIN_PENNATION):
        angle = float("nan")
        if found is not None:
            angle = pick_fascicle_angle(found[0], found[1][k], apo, pen)[0]
        angles[(sigma, pen)] = angle
    thickness = {
        (edges, win, span, at): inner_thickness_px(
            image, sup, deep, win, probability=prob, edges=edges, at=at, span=span
        )
        for edges, win, span, at in READINGS
    }
    return {"deep": deep, "angles": angles, "thickness": thickness}


if __name__ == "__main__":
    main()
