"""Phantom frames beside real ones: the small composite figure of docs/phantom.md.

Top row, real images (not part of musclestate; cited under the figure in docs/phantom.md): the
drazan2019-mg participant's medial gastrocnemius at rest and at the peak of an isometric maximal
push (B-mode area of the screen capture; Drazan, Hullfish & Baxter 2019, PeerJ Preprints
7:e27475v1, CC BY 4.0), and one dltrack-aponeurosis image (Cronin, Finni & Seynnes 2020,
arXiv:2009.04790, Apache-2.0). Bottom row, the phantom at a similar pixel size (about 0.1 mm):
one participant at rest and at MVC (0 deg ankle), and a second participant at rest.

    python examples/phantom-vs-real/figure.py ../shared/data docs/phantom-vs-real.png

Writes one small grey-scale PNG (frames resized to 200 rows); no real image is stored otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageDraw

from musclestate.io.images import read_image
from musclestate.io.video import iter_video
from musclestate.phantom import geometry
from musclestate.phantom.cohort import make_participant
from musclestate.phantom.realism import side_by_side

ROWS = 200


def drazan_rest_and_mvc(shared: Path) -> list[np.ndarray]:
    """B-mode area of the lowest- and highest-moment frames of one isometric maximal push."""
    data = shared / "drazan2019-mg"
    params = scipy.io.loadmat(data / "p6_params.mat", squeeze_me=True, struct_as_record=False)
    x, y, w, h = (int(v) for v in params["Params"].imCropRect)
    clips = scipy.io.loadmat(data / "push_data.mat", squeeze_me=True, struct_as_record=False)
    push = clips["clips"].p6_isometric_max_01.push_01
    moment = np.asarray(push.TOR)[np.asarray(push.frameInds) - 1]
    want = {int(np.argmin(moment)), int(np.argmax(moment))}
    frames = {}
    crop = (x - 1, y - 1, w, h)  # MATLAB's 1-based rectangle
    for k, (_, frame) in enumerate(
        iter_video(data / "clips" / "p6_isometric_max_01_push_01.mp4", crop=crop)
    ):
        if k in want:
            frames[k] = frame
    return [frames[int(np.argmin(moment))], frames[int(np.argmax(moment))]]


def dltrack_image(shared: Path) -> np.ndarray:
    img = read_image(shared / "dltrack-aponeurosis" / "images" / "img_00001.png")
    rows = np.flatnonzero(img.mean(axis=1) > 5)
    cols = np.flatnonzero(img.mean(axis=0) > 5)
    return img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def phantom_frames(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for index, acts in ((0, (0.0, 1.0)), (1, (0.0,))):
        p, tm = make_participant(seed, index, (480, 600))
        act = np.array(acts)
        _, geo = geometry.state_geometry(p, geometry.Placement(), np.zeros(act.size), act, act)
        out += [tm.render(geo.at(i), rng) for i in range(act.size)]
    return out


def label(img: np.ndarray, texts: list[tuple[int, str]]) -> np.ndarray:
    im = Image.fromarray(img)
    draw = ImageDraw.Draw(im)
    for x, text in texts:
        draw.text((x + 4, 4), text, fill=255)
    return np.asarray(im)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    shared, out = Path(argv[0]), Path(argv[1])
    real = [*drazan_rest_and_mvc(shared), dltrack_image(shared)]
    phantom = phantom_frames()
    grid = side_by_side(real, phantom, height=ROWS)
    widths = [round(a.shape[1] * ROWS / a.shape[0]) for a in real]
    pwidths = [round(a.shape[1] * ROWS / a.shape[0]) for a in phantom]
    top = label(
        grid[:ROWS],
        [
            (sum(widths[:i]), t)
            for i, t in enumerate(
                ("drazan2019-mg rest", "drazan2019-mg MVC", "dltrack-aponeurosis")
            )
        ],
    )
    bottom = label(
        grid[ROWS:],
        [
            (sum(pwidths[:i]), t)
            for i, t in enumerate(("phantom P01 rest", "phantom P01 MVC", "phantom P02 rest"))
        ],
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([top, bottom])).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
