"""Worker that reads one C3D file's analog channels with ezc3d in its own interpreter.

Run as ``python -m musclestate.io._c3d IN.c3d OUT.npz`` by
:func:`musclestate.io.signals.read_signals`: ezc3d is C++ and can loop forever or abort on a
damaged file, so it runs here, where the caller can impose a time limit and survive a crash.
Writes ``analogs`` ``(channels, samples)`` float64 and ``meta`` (JSON: labels, units, rate_hz,
t0_s) to OUT.npz; on failure prints one line to stderr and exits with status 1.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def _values(group: dict, key: str) -> list:
    entry = group.get(key)
    return list(entry["value"]) if entry is not None else []


def main(argv: list[str]) -> int:
    src, dest = argv
    try:
        import ezc3d

        c = ezc3d.c3d(src)
        analog = c["parameters"].get("ANALOG", {})
        point = c["parameters"].get("POINT", {})
        rate = _values(analog, "RATE") or [c["header"]["analogs"]["frame_rate"]]
        point_rate = _values(point, "RATE") or [c["header"]["points"]["frame_rate"]]
        first = int(c["header"]["points"]["first_frame"])
        analogs = np.asarray(c["data"]["analogs"], dtype=np.float64)
        analogs = analogs.reshape(analogs.shape[-2], analogs.shape[-1])
        meta = {
            "labels": [str(s).strip() for s in _values(analog, "LABELS")],
            "units": [str(s).strip() for s in _values(analog, "UNITS")],
            "rate_hz": float(rate[0]),
            # ezc3d's first_frame is 0-based; time zero is the recording's first frame.
            "t0_s": float(first) / float(point_rate[0]) if float(point_rate[0]) > 0 else 0.0,
        }
    except Exception as exc:  # report any ezc3d failure as one line to the parent
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    with open(dest, "wb") as fh:
        np.savez(fh, analogs=analogs, meta=np.array(json.dumps(meta)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
