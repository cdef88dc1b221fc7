"""Participant-grouped splits, and only those.

Consecutive ultrasound frames are nearly identical and a person's anatomy is recognisable in every
frame, so any split that puts frames or recordings of one participant on both sides measures
memory, not generalisation (DESIGN.md section 5). Every function here takes participant ids and
returns participant ids; frames follow their participant. Splits are seeded and saved as JSON keyed
by participant (never pickled).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musclestate._atomic import read_json, write_text_atomic
from musclestate.errors import ConfigError, InputError

SPLITS_FORMAT = "musclestate-splits"


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: participants to train on and to test on (disjoint).

    Attributes:
        index: fold number, 0-based.
        train: training participant ids, sorted.
        test: held-out participant ids, sorted.
    """

    index: int
    train: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        both = set(self.train) & set(self.test)
        if both:
            raise ConfigError(
                f"fold {self.index}: participant(s) {sorted(both)} on both the train and test side"
            )
        if not self.test:
            raise ConfigError(f"fold {self.index}: no test participants")


def _unique(participants: Iterable[str]) -> list[str]:
    ps = sorted({str(p) for p in participants})
    if not ps:
        raise ConfigError("no participants to split")
    return ps


def participant_folds(participants: Iterable[str], k: int, seed: int) -> list[Fold]:
    """Split participants into ``k`` folds; each participant is tested in exactly one fold.

    Args:
        participants: participant ids (repeats allowed, e.g. one per recording).
        k: number of folds, ``2 <= k <= number of participants`` (k = n is leave-one-out).
        seed: seed of the shuffle (``numpy.random.default_rng``).

    Returns:
        ``k`` folds whose test sets partition the participants, sizes differing by at most one.
    """
    ps = _unique(participants)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 2 <= k <= len(ps):
        raise ConfigError(f"k = {k!r} folds needs 2 <= k <= {len(ps)} (the number of participants)")
    order = np.random.default_rng(seed).permutation(len(ps))
    groups = np.array_split(order, int(k))
    folds = []
    for i, g in enumerate(groups):
        test = tuple(sorted(ps[j] for j in g))
        train = tuple(p for p in ps if p not in set(test))
        folds.append(Fold(i, train, test))
    return folds


def inner_validation(
    train_participants: Sequence[str],
    fraction: float | None = None,
    n: int | None = None,
    *,
    seed: int = 0,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Hold out validation participants from a training set (early stopping, model selection).

    Give ``fraction`` (of participants, rounded, at least 1) or ``n``. Both sides keep at least
    one participant.

    Returns:
        ``(train, validation)`` participant ids, each sorted.
    """
    ps = _unique(train_participants)
    if (fraction is None) == (n is None):
        raise ConfigError("give exactly one of fraction or n validation participants")
    if len(ps) < 2:
        raise ConfigError(
            f"need at least 2 training participants to hold one out for validation, got {ps}"
        )
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ConfigError(f"validation fraction must be in (0, 1), got {fraction!r}")
        n_val = max(1, round(fraction * len(ps)))
    else:
        n_val = int(n)  # type: ignore[arg-type]
    if not 1 <= n_val < len(ps):
        raise ConfigError(
            f"{n_val} validation participants out of {len(ps)}: need 1..{len(ps) - 1}"
        )
    order = np.random.default_rng(seed).permutation(len(ps))
    val = tuple(sorted(ps[j] for j in order[:n_val]))
    train = tuple(p for p in ps if p not in set(val))
    return train, val


def folds_to_json(folds: Sequence[Fold], *, seed: int | None = None) -> dict[str, Any]:
    """JSON form: ``{"participants": {id: test_fold}, "folds": [...]}``."""
    test_of: dict[str, int] = {}
    for f in folds:
        for p in f.test:
            if p in test_of:
                raise ConfigError(
                    f"participant {p!r} is tested in folds {test_of[p]} and {f.index}"
                )
            test_of[p] = f.index
    return {
        "format": SPLITS_FORMAT,
        "k": len(folds),
        "seed": seed,
        "participants": dict(sorted(test_of.items())),
        "folds": [{"index": f.index, "train": list(f.train), "test": list(f.test)} for f in folds],
    }


def save_folds(path: str | Path, folds: Sequence[Fold], *, seed: int | None = None) -> Path:
    """Write folds as JSON keyed by participant (atomic)."""
    return write_text_atomic(path, json.dumps(folds_to_json(folds, seed=seed), indent=2))


def load_folds(path: str | Path) -> list[Fold]:
    """Read folds written by :func:`save_folds`, checking that they are participant-disjoint."""
    path = Path(path)
    doc = read_json(path, "splits")
    if doc.get("format") != SPLITS_FORMAT:
        raise InputError(f"not a {SPLITS_FORMAT} file", path)
    try:
        folds = [Fold(int(f["index"]), tuple(f["train"]), tuple(f["test"])) for f in doc["folds"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed fold entry: {exc}", path) from None
    # participants map must agree with the folds
    mapped = folds_to_json(folds)["participants"]
    if mapped != doc.get("participants"):
        raise InputError("the participants map disagrees with the folds' test sets", path)
    return folds
