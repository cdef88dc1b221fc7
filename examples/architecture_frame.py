"""Draw one real frame with its measured aponeuroses, fascicle and numbers (docs/architecture.md).

The frame is the first of a drazan2019-mg clip (Drazan, Hullfish & Baxter 2019, CC BY 4.0; read
../shared/data/README.md), its B-mode area cut with the clip's crop rectangle and measured with
the shipped segmenter and default settings.

    python examples/architecture_frame.py ../shared/data/drazan2019-mg docs/architecture-frame.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from musclestate.architecture.draw import draw_frame
from musclestate.architecture.frames import FrameSettings, frame_row
from musclestate.architecture.measure import measure_image
from musclestate.io import read_recording
from musclestate.roi.segment import load_segmenter

CLIP = "clips/p6_isokinetic030_01_push_01.mp4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("drazan", type=Path, help="the drazan2019-mg folder")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--width", type=int, default=560, help="width of the PNG in pixels")
    args = ap.parse_args()
    from scipy.io import loadmat

    params = loadmat(args.drazan / "p6_params.mat", squeeze_me=True, struct_as_record=False)
    x, y, w, h = (int(v) for v in params["Params"].imCropRect)
    mm = float(params["Params"].px2mmY)
    rec = read_recording(args.drazan / CLIP, crop=(x - 1, y - 1, w, h), pixel_spacing_mm=(mm, mm))
    frame = rec.frames[0]
    measured = measure_image(frame, load_segmenter().predict(frame))
    row = frame_row(frame, measured, rec.pixel_spacing_mm, FrameSettings())
    label = (
        f"fascicle {row['mg_fascicle_angle_deg']:.1f} deg, pennation "
        f"{row['mg_pennation_deg']:.1f} deg, thickness {row['mg_thickness_mm']:.1f} mm, "
        f"fascicle {row['mg_fascicle_length_mm']:.0f} mm"
        + (" (extrapolated)" if row["mg_fascicle_length_extrapolated"] else "")
    )
    rgb = draw_frame(frame, measured)
    img = Image.fromarray(rgb)
    img = img.resize((args.width, round(img.height * args.width / img.width)), Image.LANCZOS)
    canvas = Image.new("RGB", (img.width, img.height + 22), (0, 0, 0))
    canvas.paste(img, (0, 22))
    from PIL import ImageDraw

    ImageDraw.Draw(canvas).text((6, 5), label, fill=(255, 255, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.convert("P", palette=Image.ADAPTIVE, colors=160).save(args.out, optimize=True)
    print(label)
    print({k: round(v, 2) for k, v in row.items() if np.isfinite(v)})


if __name__ == "__main__":
    main()
